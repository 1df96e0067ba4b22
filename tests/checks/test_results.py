"""Stored check results: latest status per target, since when it slipped, its history."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from checks_support import insert, row, warehouse
from sqlalchemy import event, update

from rulewatch.checks import results
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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_offenders_of_many_results_are_read_in_few_statements_and_grouped_as_one_by_one(
    backend: str,
    tmp_path,
    monkeypatch,  # noqa: ANN001
) -> None:
    """Alerting reads the latest check of every target and period: their offenders come
    in one statement per chunk of results, each result's in natural-key order, the same
    as reading them one result at a time."""
    monkeypatch.setattr(results, "RESULTS_PER_STATEMENT", 2)  # chunk borders inside 5
    with warehouse(backend, tmp_path) as (engine, settings):
        settings = dataclasses.replace(
            settings, targets={"docreview.filing_rate": TargetOptions(target=1.0)}
        )
        late = [
            row(document, f"D{n}", issued_on="2024-01-05", is_filed=False,
                filing_deadline_on="2024-02-04", **NORMATIVE)
            for n in (3, 1, 2)
        ]  # fmt: skip
        insert(engine, document, late)
        periods = [Period.parse(p) for p in ("2024", "2024-01", "2024-Q1", "2024-02", "2023")]
        run_target_checks(engine, settings, periods, date(2024, 5, 17))
        statements: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        with engine.connect() as conn:
            latest = latest_target_statuses(conn)
            one_by_one = {c.period: offenders_of(conn, c.check_result_id) for c in latest}
        reads = [s for s in statements[: -len(latest)] if "FROM check_offender" in s]
    assert len(latest) == 5 and len(reads) == 3  # 2 + 2 + 1 results
    assert {c.period: list(c.offenders) for c in latest} == one_by_one
    assert [o.natural_key for o in one_by_one["2024"]] == ["D1", "D2", "D3"]
    assert one_by_one["2023"] == []


def test_latest_checks_of_a_date_or_run_leave_out_targets_checked_later(tmp_path) -> None:  # noqa: ANN001
    """``latest_on`` and ``check_run_id`` keep a target only when its latest check is of
    that date (and run); a target checked again later is left out, never stood in for by
    its older check."""
    with warehouse("sqlite", tmp_path) as (engine, settings):
        settings = dataclasses.replace(
            settings, targets={"docreview.filing_rate": TargetOptions(target=1.0)}
        )
        insert(engine, document, [row(document, "D1", issued_on="2024-01-10", is_filed=False,
               filing_deadline_on="2024-02-09", **NORMATIVE)])  # fmt: skip
        first = run_target_checks(engine, settings, [Period.parse("2024")], date(2024, 5, 17))
        run_target_checks(engine, settings, [Period.parse("2024-Q1")], date(2024, 5, 17))
        later = run_target_checks(engine, settings, [Period.parse("2024")], date(2024, 5, 18))
        with engine.connect() as conn:
            on_17 = latest_target_statuses(conn, latest_on=date(2024, 5, 17))
            on_18 = latest_target_statuses(conn, latest_on=date(2024, 5, 18))
            of_first = latest_target_statuses(conn, check_run_id=first.checks[0].check_run_id)
            of_later = latest_target_statuses(
                conn, latest_on=date(2024, 5, 18), check_run_id=later.checks[0].check_run_id
            )
    assert [c.period for c in on_17] == ["2024-Q1"]
    assert [(c.period, c.as_of) for c in on_18] == [("2024", date(2024, 5, 18))]
    assert of_first == []  # its only target was checked again on the 18th
    assert of_later == on_18 and [o.natural_key for o in on_18[0].offenders] == ["D1"]
