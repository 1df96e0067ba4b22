"""Stored provisional figures are recomputed once the year's arrangement arrives, and the
alert state follows: a slip that was only an artefact of Monday to Friday recovers."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

from receivers import Webhook
from sqlalchemy import select

from rulewatch.alerts.announce import run_alerting
from rulewatch.checks.targets import run_target_checks
from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import PACKAGE_CONFIG_DIR, load_settings
from rulewatch.report.provisional import recompute_provisional_history
from rulewatch.report.tables import refresh_report_tables, store_metrics
from rulewatch.warehouse.db import ensure_calendar, open_warehouse
from rulewatch.warehouse.schema import permit_application, report_metric, report_target_status

FAR = 2031  # a year no chinesecalendar release carries yet
D = date.fromisoformat


def _settings(tmp_path: Path, warehouse_url: str, webhook: str, overrides: str):  # noqa: ANN202
    config = tmp_path / f"config-{abs(hash(overrides))}"
    shutil.copytree(PACKAGE_CONFIG_DIR, config)
    (config / "calendar.yaml").write_text(f"timezone: Asia/Shanghai\n{overrides}")
    settings = load_settings(
        {"RULEWATCH_CONFIG_DIR": str(config), "RULEWATCH_WAREHOUSE_URL": warehouse_url}
    )
    alerts = settings.alerts.model_copy(update={"language": "en"})
    return replace(settings, alert_urls=(webhook,), alerts=alerts)


def _stored(engine, metric: str) -> list[tuple]:  # noqa: ANN001
    with engine.connect() as conn:
        return conn.execute(
            select(
                report_metric.c.as_of,
                report_metric.c.numerator,
                report_metric.c.status,
                report_metric.c.is_provisional,
                report_metric.c.computed_by,
            )
            .where(report_metric.c.metric == metric, report_metric.c.period == str(FAR))
            .order_by(report_metric.c.as_of)
        ).all()


def test_history_and_alerts_follow_when_the_arrangement_arrives(
    warehouse_url: str, tmp_path: Path
) -> None:
    hook = Webhook()
    try:
        before = _settings(tmp_path, warehouse_url, hook.url, "holidays: []\n")
        engine = open_warehouse(warehouse_url, calendar_of(before))
        with engine.begin() as conn:
            # Fri 31 Jan -> Mon 10 Feb, promised 2: Monday to Friday counts 6 (late); with
            # the year's arrangement (3 .. 7 Feb off) it is 1 (on time)
            conn.execute(
                permit_application.insert(),
                {
                    "application_id": "F-SF",
                    "status": "approved",
                    "received_on": D(f"{FAR}-01-31"),
                    "decided_on": D(f"{FAR}-02-10"),
                    "promised_days": 2,
                    "changed_at": datetime(FAR, 2, 10),
                    "record_hash": "0" * 64,
                    "is_set_aside": False,
                    "sync_run_id": "test-run",
                },
            )
        ensure_calendar(engine, calendar_of(before))
        nights = [D(f"{FAR}-02-10") + timedelta(days=k) for k in range(3)]
        for night in nights:
            assert not _night(engine, before, night).ran
        rows = _stored(engine, "permits.on_time_rate")
        assert [(r.numerator, r.status, r.is_provisional) for r in rows] == [
            (0, "slipped", True)
        ] * 3
        assert _latest(engine) == ("slipped", True, nights[0])
        slipped = [m for m in hook.received if "permits.on_time_rate" in m["title"]]
        assert [m["title"].rsplit(": ", 1)[1] for m in slipped] == ["SLIPPED (provisional)"]
        assert "F-SF: decided in 6 working days, promised 2 (provisional" in slipped[0]["message"]
        # nothing changes while the calendar does not
        assert not recompute_provisional_history(engine, before).ran

        # the arrangement arrives (here in calendar.yaml); the next nightly run:
        after = _settings(
            tmp_path,
            warehouse_url,
            hook.url,
            "holidays: [" + ", ".join(f"{FAR}-02-0{d}" for d in range(3, 8)) + "]\n",
        )
        ensure_calendar(engine, calendar_of(after))
        night = nights[-1] + timedelta(days=1)
        done = _night(engine, after, night, report=False)
        assert sorted(done.recomputed) == [(str(FAR), n) for n in nights]
        assert done.statuses == 1 and done.still_provisional == 0
        rows = _stored(engine, "permits.on_time_rate")
        assert [(r.numerator, r.status, r.is_provisional, r.computed_by) for r in rows] == [
            (1, "met", False, "nightly")
        ] * 3
        assert _latest(engine) == ("met", False, None)
        _night(engine, after, night)
        slipped = [m for m in hook.received if "permits.on_time_rate" in m["title"]]
        assert [m["title"].rsplit(": ", 1)[1] for m in slipped] == [
            "SLIPPED (provisional)",
            "recovered",
        ]
        # done once: the next run recomputes nothing
        assert not recompute_provisional_history(engine, after).ran
        engine.dispose()
    finally:
        hook.close()


def test_backfilled_provisional_rows_are_recomputed_too(warehouse_url: str, tmp_path: Path) -> None:
    before = _settings(tmp_path, warehouse_url, "json://127.0.0.1:9/none", "holidays: []\n")
    engine = open_warehouse(warehouse_url, calendar_of(before))
    from rulewatch.metrics.compute import MetricValue

    with engine.begin() as conn:
        stale = MetricValue(
            "permits.on_time_rate", str(FAR), D(f"{FAR}-03-01"), 0.0, 0, 1, 1.0, "slipped", True
        )
        from rulewatch.common.periods import Period

        store_metrics(conn, Period.parse(str(FAR)), [stale], computed_by="backfill")
    after = _settings(
        tmp_path, warehouse_url, "json://127.0.0.1:9/none", f"holidays: [{FAR}-02-03]\n"
    )
    ensure_calendar(engine, calendar_of(after))
    done = recompute_provisional_history(engine, after)
    assert done.recomputed == [(str(FAR), D(f"{FAR}-03-01"))]
    rows = _stored(engine, "permits.on_time_rate")
    assert [(r.numerator, r.status, r.is_provisional, r.computed_by) for r in rows] == [
        (0, "no_data", False, "backfill")
    ]
    engine.dispose()


def _night(engine, settings, night: date, report: bool = True):  # noqa: ANN001, ANN202
    """What the nightly flow does after loading: recompute stale provisional history,
    refresh the report tables, alert (``report=False``: the first step only)."""
    done = recompute_provisional_history(engine, settings)
    if report:
        checked = run_target_checks(engine, settings, _periods(), night)
        refresh_report_tables(engine, settings, night, periods=_periods())
        run_alerting(engine, settings, night, check_run_id=checked.check_run_id)
    return done


def _periods():  # noqa: ANN202
    from rulewatch.common.periods import Period

    return [Period.parse(str(FAR))]


def _latest(engine) -> tuple:  # noqa: ANN001
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                select(
                    report_target_status.c.status,
                    report_target_status.c.is_provisional,
                    report_target_status.c.slipped_since,
                ).where(
                    report_target_status.c.metric == "permits.on_time_rate",
                    report_target_status.c.period == str(FAR),
                )
            ).one()
        )
