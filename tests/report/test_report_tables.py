"""Report tables: created by revision 0004, equal to kpis, refreshed idempotently,
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from report_support import demo_warehouse, warehouse_url
from sqlalchemy import Engine, func, select

from rulewatch.common.periods import Period
from rulewatch.config.settings import Settings
from rulewatch.demo.data import DEMO_TODAY, MISSED_FILING_DOC_ID
from rulewatch.metrics.compute import compute_metrics
from rulewatch.report.tables import refresh_report_tables, report_periods
from rulewatch.warehouse.schema import (
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
