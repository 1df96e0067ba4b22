"""Report tables: created by revision 0004, equal to kpis, refreshed idempotently,
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from report_support import HISTORY_FROM, demo_warehouse, warehouse_url
from sqlalchemy import Engine, event, func, select

from rulewatch.checks.results import checked_days, latest_target_statuses
from rulewatch.checks.targets import run_target_checks
from rulewatch.common.periods import Period
from rulewatch.config.settings import Settings
from rulewatch.demo.data import DEMO_TODAY, MISSED_FILING_DOC_ID
from rulewatch.metrics.compute import compute_metrics
from rulewatch.report.tables import refresh_report_tables, report_periods, store_statuses
from rulewatch.warehouse.schema import (
    check_result,
    metadata,
    report_metric,
    report_offender,
    report_target_status,
)

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request, tmp_path_factory) -> Iterator[tuple[Engine, Settings]]:  # noqa: ANN001
    folder = tmp_path_factory.mktemp(f"report-tables-{request.param}")
    with warehouse_url(request.param, folder) as url, demo_warehouse(url, folder) as loaded:
        yield loaded


def test_revision_0004_matches_the_schema(loaded):
    engine, _ = loaded
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diff if "report_" in repr(d)] == []


def test_metric_rows_equal_kpis_for_every_nightly_period(loaded):
    engine, settings = loaded
    with engine.connect() as conn:
        for period in report_periods(DEMO_TODAY):
            kpis = compute_metrics(conn, period, DEMO_TODAY, settings.targets)
            rows = {
                r.metric: r
                for r in conn.execute(
                    select(report_metric).where(
                        report_metric.c.period == period.label, report_metric.c.as_of == DEMO_TODAY
                    )
                )
            }
            assert len(rows) == 22
            for m in kpis:
                row = rows[m.metric]
                assert (row.numerator, row.denominator, row.status) == (
                    m.numerator,
                    m.denominator,
                    m.status,
                )
                assert row.value == (None if m.value is None else pytest.approx(m.value))


def test_latest_status_names_the_missed_filing_and_when_it_began(loaded):
    engine, _ = loaded
    with engine.connect() as conn:
        status = conn.execute(
            select(report_target_status).where(
                report_target_status.c.metric == "docreview.filing_rate",
                report_target_status.c.period == "2024",
            )
        ).one()
        offenders = conn.execute(
            select(report_offender.c.natural_key, report_offender.c.reason).where(
                report_offender.c.metric == "docreview.filing_rate",
                report_offender.c.period == "2024",
            )
        ).all()
    assert (status.status, status.numerator, status.denominator) == ("slipped", 1, 2)
    assert status.slipped_since == date(2024, 4, 5)  # deadline 2024-04-04 passed
    assert [k for k, _ in offenders] == [MISSED_FILING_DOC_ID]
    assert "deadline 2024-04-04" in offenders[0][1]


def test_history_charts_with_plain_sql(loaded):
    engine, _ = loaded
    with engine.connect() as conn:
        series = conn.execute(
            select(report_metric.c.as_of, report_metric.c.status)
            .where(report_metric.c.metric == "docreview.filing_rate")
            .where(report_metric.c.period == "2024")
            .order_by(report_metric.c.as_of)
        ).all()
    statuses = dict(series)
    assert statuses[date(2024, 4, 4)] != "slipped"
    assert statuses[date(2024, 4, 5)] == "slipped"
    assert len(series) == (DEMO_TODAY - date(2024, 4, 1)).days + 1


def test_refresh_is_idempotent_and_an_older_date_never_hides_the_latest(loaded):
    engine, settings = loaded

    def snapshot():
        with engine.connect() as conn:
            return (
                conn.execute(select(func.count()).select_from(report_metric)).scalar_one(),
                sorted(
                    conn.execute(
                        select(
                            report_target_status.c.metric,
                            report_target_status.c.period,
                            report_target_status.c.as_of,
                            report_target_status.c.status,
                        )
                    ).all()
                ),
                sorted(conn.execute(select(report_offender)).all()),
            )

    before = snapshot()
    refresh_report_tables(engine, settings, DEMO_TODAY, job_id="report-test")
    assert snapshot() == before
    refresh_report_tables(engine, settings, date(2024, 3, 1), periods=[Period.parse("2024")])
    after = snapshot()
    assert after[1] == before[1]  # statuses still those of the newest as-of date
    assert after[0] == before[0] + 22  # one more as-of date of 2024 in the history


def test_every_status_is_a_stored_check_equal_to_what_check_finds(loaded):
    """No status is computed beside the checks: every ``report_target_status`` row is a
    stored check result, every backfilled day has its stored checks, and a backfilled
    day's checks (counted in bulk) equal what ``rulewatch check`` (GX) finds that day."""
    engine, settings = loaded
    fields = ("metric", "period", "as_of", "value", "numerator", "denominator", "status")
    with engine.connect() as conn:
        rows = conn.execute(select(report_target_status)).all()
        assert {r.period for r in rows} == {p.label for p in report_periods(DEMO_TODAY)}
        for r in rows:
            stored = conn.execute(
                select(check_result).where(check_result.c.check_result_id == r.check_result_id)
            ).one()
            assert [getattr(stored, f) for f in fields] == [getattr(r, f) for f in fields]
        days = [
            HISTORY_FROM + timedelta(days=n) for n in range((DEMO_TODAY - HISTORY_FROM).days + 1)
        ]
        assert checked_days(conn, "2024", days) == set(days)
        day = date(2024, 4, 5)  # the filing slip's first day
        backfilled = {c.metric: c for c in latest_target_statuses(conn, "2024", as_of=day)}
    checked = run_target_checks(engine, settings, [Period.parse("2024")], day)
    assert (
        sorted(backfilled) == sorted(c.metric for c in checked.checks) == sorted(settings.targets)
    )
    assert backfilled["docreview.filing_rate"].status == "slipped"
    for c in checked.checks:
        b = backfilled[c.metric]
        assert (b.value, b.numerator, b.denominator, b.status, b.severity, b.provisional) == (
            c.value,
            c.numerator,
            c.denominator,
            c.status,
            c.severity,
            c.provisional,
        ), c.metric
        assert b.offenders == c.offenders, c.metric


def test_a_status_that_is_no_stored_check_is_refused(loaded):
    engine, _ = loaded
    with engine.connect() as conn:
        (status, *_) = latest_target_statuses(conn, "2024", as_of=DEMO_TODAY)
    with engine.begin() as conn, pytest.raises(ValueError, match="no stored check"):
        store_statuses(conn, [replace(status, check_result_id=None)])


def test_a_periods_statuses_are_stored_in_a_few_statements_and_never_over_a_newer_date(loaded):
    """Storing nine targets' statuses with their offenders is five statements (the
    stored dates read at once, statuses and offenders deleted and inserted in bulk), not
    four or five per target; it leaves the tables as they were when they already hold
    these statuses, and a status of an earlier date writes nothing."""
    engine, _ = loaded
    earlier = date(2024, 4, 5)  # a backfilled day, with its stored checks

    def tables(conn) -> tuple[list, list]:  # noqa: ANN001
        return (
            sorted(conn.execute(select(*status_columns)).all()),
            sorted(conn.execute(select(report_offender)).all()),
        )

    status_columns = [c for c in report_target_status.c if c.name != "updated_at"]
    with engine.connect() as conn, conn.begin() as transaction:
        statuses = latest_target_statuses(conn, "2024", as_of=DEMO_TODAY)
        older = latest_target_statuses(conn, "2024", as_of=earlier)
        store_statuses(conn, statuses)  # the tables hold these (another test may have checked)
        before = tables(conn)
        statements: list[str] = []
        event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
        written, offenders = store_statuses(conn, statuses)
        assert len(statements) == 5, statements
        assert written == len(statuses) == 9
        assert offenders == sum(len({o.natural_key for o in s.offenders}) for s in statuses) > 0
        assert tables(conn) == before  # the same statuses again (their updated_at apart)
        statements.clear()
        assert store_statuses(conn, older) == (0, 0)
        assert len(statements) == 1  # the stored dates: all newer, nothing written
        assert tables(conn) == before
        transaction.rollback()
