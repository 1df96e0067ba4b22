"""Stored check results: latest status per target, since when it slipped, its history."""

from __future__ import annotations

import dataclasses
from datetime import date

from checks_support import insert, row, warehouse
from sqlalchemy import update

from rulewatch.checks.results import latest_target_statuses, offenders_of, target_history
from rulewatch.checks.targets import run_target_checks
from rulewatch.common.periods import Period
from rulewatch.config.settings import TargetOptions
from rulewatch.warehouse.schema import check_result, document

NORMATIVE = {"doc_type": "normative_document", "status": "in_force", "has_filing": True}


def test_latest_status_slipped_since_and_history(tmp_path):  # noqa: ANN001
    with warehouse("sqlite", tmp_path) as (engine, settings):
        settings = dataclasses.replace(
            settings, targets={"docreview.filing_rate": TargetOptions(target=1.0)}
        )

        def check(day: date) -> None:
            run_target_checks(engine, settings, [Period.parse("2024")], day)

        insert(engine, document, [row(document, "D1", issued_on="2024-01-10", is_filed=True,
               filed_on="2024-01-20", filing_deadline_on="2024-02-09", **NORMATIVE)])  # fmt: skip
        check(date(2024, 5, 17))
        insert(engine, document, [row(document, "D2", issued_on="2024-03-05", is_filed=False,
               filing_deadline_on="2024-04-04", **NORMATIVE)])  # fmt: skip
        check(date(2024, 5, 18))
        check(date(2024, 5, 19))
        check(date(2024, 3, 1))  # a look back: D2 was not due yet, so met then
        with engine.connect() as conn:
            (latest,) = latest_target_statuses(conn)
            history = target_history(conn, "docreview.filing_rate", "2024")
        assert [h.status for h in history] == ["met", "slipped", "slipped", "met"]
        assert latest.status == "slipped" and latest.as_of == date(2024, 5, 19)
        assert latest.slipped_since == date(2024, 5, 18)
        assert [tuple(o) for o in latest.offenders] == [
            ("D2", "not filed; deadline 2024-04-04 passed")
        ]
        assert (latest.numerator, latest.denominator, latest.value) == (1, 2, 0.5)

        with engine.begin() as conn:
            conn.execute(
                update(document)
                .where(document.c.doc_id == "D2")
                .values(is_filed=True, filed_on=date(2024, 5, 1))
            )
        check(date(2024, 5, 20))
        with engine.connect() as conn:
            (latest,) = latest_target_statuses(conn, "2024")
            assert latest.status == "met" and latest.slipped_since is None
            assert latest_target_statuses(conn, "2023") == []
            slipped_id = (
                conn.execute(check_result.select().where(check_result.c.status == "slipped"))
                .first()
                .check_result_id
            )
            assert [o.natural_key for o in offenders_of(conn, slipped_id)] == ["D2"]
