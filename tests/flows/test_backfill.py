"""The backfill: every as-of date of a range, month by month, as the metrics define it."""

from __future__ import annotations

from datetime import date

import pytest

from rulewatch.common.periods import Period
from rulewatch.config.settings import ConfigError, load_settings
from rulewatch.flows.backfill import check_range, month_chunks, recompute_days
from rulewatch.flows.nightly import calendar_of
from rulewatch.metrics.compute import compute_metrics
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.sync import sync_source


def test_a_range_is_cut_at_month_ends():
    assert month_chunks(date(2023, 11, 15), date(2024, 2, 3)) == [
        (date(2023, 11, 15), date(2023, 11, 30)),
        (date(2023, 12, 1), date(2023, 12, 31)),
        (date(2024, 1, 1), date(2024, 1, 31)),
        (date(2024, 2, 1), date(2024, 2, 3)),
    ]
    assert month_chunks(date(2024, 2, 29), date(2024, 2, 29)) == [
        (date(2024, 2, 29), date(2024, 2, 29))
    ]
    assert len(month_chunks(date(2023, 1, 1), date(2023, 12, 31))) == 12


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (date(2024, 1, 2), date(2024, 1, 1), "before start"),
        (date(2000, 1, 1), date(2024, 1, 1), "more than 3660 days"),
    ],
)
def test_a_bad_range_is_refused(start, end, message):
    with pytest.raises(ConfigError, match=message):
        check_range(start, end)


def test_each_day_gets_the_figures_of_its_own_as_of_date(demo, sqlite_url, tmp_path):
    env = {**demo.env(), "RULEWATCH_WAREHOUSE_URL": sqlite_url, "RULEWATCH_PII_KEY": "k"}
    settings = load_settings({**env, "RULEWATCH_DATA_DIR": str(tmp_path)})
    engine = open_warehouse(sqlite_url, calendar_of(settings))
    for source in ("permits", "enforcement", "docreview"):
        sync_source(engine, settings, source)

    days = recompute_days(settings, date(2023, 12, 30), date(2024, 1, 2))

    assert [d.as_of for d in days] == [date(2023, 12, d) for d in (30, 31)] + [
        date(2024, 1, d) for d in (1, 2)
    ]
    with engine.connect() as conn:
        for day in days:
            metrics = compute_metrics(
                conn, Period.parse(str(day.as_of.year)), day.as_of, settings.targets
            )
            slipped = tuple(sorted(m.metric for m in metrics if m.status == "slipped"))
            assert day.slipped_metrics == slipped
            assert day.met + day.slipped + day.no_data + day.info == len(metrics) == 22
    engine.dispose()


def test_a_backfill_keeps_each_day_in_the_report_tables_and_checks(demo, sqlite_url, tmp_path):
    from sqlalchemy import func, select

    from rulewatch.flows.backfill import recompute_as_of, store_latest_statuses
    from rulewatch.report.tables import store_metrics
    from rulewatch.warehouse.schema import check_result, report_metric, report_target_status

    env = {**demo.env(), "RULEWATCH_WAREHOUSE_URL": sqlite_url, "RULEWATCH_PII_KEY": "k"}
    settings = load_settings({**env, "RULEWATCH_DATA_DIR": str(tmp_path)})
    engine = open_warehouse(sqlite_url, calendar_of(settings))
    for source in ("permits", "enforcement", "docreview"):
        sync_source(engine, settings, source)
    # The nightly job recorded 2024-04-05 itself: a recomputation never replaces that.
    with engine.begin() as conn:
        nightly = compute_metrics(conn, Period.parse("2024"), date(2024, 4, 5), settings.targets)
        store_metrics(conn, Period.parse("2024"), nightly, computed_by="nightly")

    recompute_as_of(engine, settings, date(2024, 4, 4), with_checks=True)
    recompute_as_of(engine, settings, date(2024, 4, 5), with_checks=False)
    recompute_as_of(engine, settings, date(2024, 4, 6), with_checks=False)
    store_latest_statuses(engine, settings, date(2024, 4, 6))

    with engine.connect() as conn:
        rows = conn.execute(
            select(report_metric.c.as_of, report_metric.c.computed_by, func.count())
            .where(report_metric.c.period == "2024")
            .group_by(report_metric.c.as_of, report_metric.c.computed_by)
            .order_by(report_metric.c.as_of)
        ).all()
        assert rows == [
            (date(2024, 4, 4), "backfill", 22),
            (date(2024, 4, 5), "nightly", 22),
            (date(2024, 4, 6), "backfill", 22),
        ]
        filing = conn.execute(
            select(
                report_target_status.c.as_of,
                report_target_status.c.status,
                report_target_status.c.slipped_since,
            ).where(
                report_target_status.c.metric == "docreview.filing_rate",
                report_target_status.c.period == "2024",
            )
        ).one()
        # DOC-2024-002's deadline 2024-04-04 is passed from 2024-04-05 on.
        assert filing == (date(2024, 4, 6), "slipped", date(2024, 4, 5))
        checked = conn.execute(select(func.count()).select_from(check_result)).scalar()
        assert checked > 0
    engine.dispose()
