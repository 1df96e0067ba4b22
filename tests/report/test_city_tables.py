"""The report tables per agency and the city rollup's rows (issue 16 §2), SQLite and PostgreSQL.

Each agency's refresh writes and reads only its own rows; the city step writes the
rollup's ``report_metric`` rows (agency ``all``) when agencies.yaml exists; the
statuses come from each agency's own stored checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta

import pytest
from city_support import PII_KEY, CityData, city_data, city_warehouse
from pgschema import fresh_schema_url
from sqlalchemy import Engine, insert, select, update

from rulewatch.checks.results import Offender, TargetCheck, store_target_runs
from rulewatch.common.periods import Period
from rulewatch.common.workdays import calendar_of
from rulewatch.config.agencies import ALL_AGENCIES, load_agencies, settings_for
from rulewatch.config.settings import Settings, load_settings
from rulewatch.demo.data import DEMO_TODAY
from rulewatch.metrics.compute import compute_city_metrics, compute_metrics
from rulewatch.report.provisional import HISTORY_KEY, history_key
from rulewatch.report.tables import (
    backfill_rollup_history,
    refresh_report_tables,
    refresh_rollup_metrics,
    report_tables_current,
    store_statuses,
    target_statuses,
)
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.schema import (
    check_offender,
    check_result,
    check_run,
    now_utc,
    permit_application,
    report_metric,
    report_offender,
    report_target_status,
    sync_run,
    warehouse_meta,
)

PERIODS = [Period.parse("2023"), Period.parse("2024"), Period.parse("2024-Q2")]
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Iterator[CityData]:  # noqa: ANN001
    with city_data(tmp_path_factory.mktemp("city-report")) as found:
        yield found


@pytest.fixture(scope="module", params=BACKENDS)
def city(request, data: CityData, tmp_path_factory) -> Iterator[tuple[Engine, Settings]]:  # noqa: ANN001
    """A city warehouse of the three agencies, and the deployment's settings for it."""
    folder = tmp_path_factory.mktemp(f"city-{request.param}")

    def opened(url: str) -> tuple[Engine, Settings]:
        city_warehouse(url, data.singles)
        settings = load_settings(
            {
                "RULEWATCH_CONFIG_DIR": str(data.config_dir),
                "RULEWATCH_WAREHOUSE_URL": url,
                "RULEWATCH_DATA_DIR": str(folder),
                "RULEWATCH_PII_KEY": PII_KEY,
            }
        )
        return open_warehouse(url, calendar_of(settings)), settings

    if request.param == "sqlite":
        engine, settings = opened(f"sqlite:///{folder / 'city.db'}")
        yield engine, settings
        engine.dispose()
        return
    with fresh_schema_url() as url:
        engine, settings = opened(url)
        yield engine, settings
        engine.dispose()


def each(settings: Settings) -> list[Settings]:
    agencies = load_agencies(settings)
    return [settings_for(settings, agencies, a) for a in agencies]


def stored(engine: Engine, agency_id: str, period: str) -> dict[str, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(report_metric).where(
                report_metric.c.agency_id == agency_id,
                report_metric.c.period == period,
                report_metric.c.as_of == DEMO_TODAY,
            )
        ).all()
    return {r.metric: (r.value, r.numerator, r.denominator, r.target, r.status) for r in rows}


def figures(metrics) -> dict[str, tuple]:  # noqa: ANN001
    return {
        m.metric: (
            None if m.value is None else float(m.value),
            m.numerator,
            m.denominator,
            m.target,
            m.status,
        )
        for m in metrics
    }


def test_each_agency_refreshes_its_own_rows_and_the_city_step_the_rollup(city) -> None:  # noqa: ANN001
    engine, settings = city
    agencies = each(settings)
    ids = [s.agency_id for s in agencies]
    # An agency overriding a threshold keeps it to itself; the rollup uses targets.yaml's.
    strict = {m: t.model_copy(update={"target": 1.0}) for m, t in agencies[0].targets.items()}
    agencies[0] = replace(agencies[0], targets=strict)
    for one in agencies:
        refresh_report_tables(engine, one, DEMO_TODAY, periods=PERIODS, job_id="night-1")
    assert stored(engine, ALL_AGENCIES, "2023") == {}
    done = refresh_rollup_metrics(engine, settings, DEMO_TODAY, periods=PERIODS, job_id="night-1")
    assert done.periods == [p.label for p in PERIODS] and done.metric_rows == 22 * len(PERIODS)
    with engine.connect() as conn:
        for period in PERIODS:
            for one in agencies:
                mine = compute_metrics(
                    conn, period, DEMO_TODAY, one.targets, agency_id=one.agency_id
                )
                assert stored(engine, one.agency_id, period.label) == figures(mine)
            rollup = compute_city_metrics(
                conn, period, DEMO_TODAY, dict.fromkeys(ids, settings.targets), settings.targets
            )[ALL_AGENCIES]
            assert stored(engine, ALL_AGENCIES, period.label) == figures(rollup)
    on_time = "permits.on_time_rate"
    assert stored(engine, ids[0], "2023")[on_time][3] == 1.0
    assert stored(engine, ALL_AGENCIES, "2023")[on_time][3] == settings.targets[on_time].target
    parts = [stored(engine, a, "2023")[on_time] for a in ids]
    total = stored(engine, ALL_AGENCIES, "2023")[on_time]
    assert total[1:3] == (sum(p[1] for p in parts), sum(p[2] for p in parts))

    # Refreshing one agency again touches no other agency's rows.
    others = select(report_metric.c.agency_id, report_metric.c.computed_at).where(
        report_metric.c.agency_id != ids[1]
    )
    with engine.connect() as conn:
        before = conn.execute(others).all()
        assert report_tables_current(conn, agencies[1], DEMO_TODAY, "quiet")
    refresh_report_tables(engine, agencies[1], DEMO_TODAY, periods=PERIODS, job_id="night-2")
    with engine.connect() as conn:
        assert sorted(conn.execute(others).all()) == sorted(before)
    # An agency whose rows are gone is not current, whatever the others hold.
    with engine.begin() as conn:
        conn.execute(report_metric.delete().where(report_metric.c.agency_id == ids[0]))
    with engine.connect() as conn:
        assert not report_tables_current(conn, agencies[0], DEMO_TODAY, "quiet")
        assert report_tables_current(conn, agencies[2], DEMO_TODAY, "quiet")
    # A row an agency's job wrote is that agency's change (its runs are its own).
    writer = agencies[2].agency_id
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(
            insert(sync_run).values(
                sync_run_id="writer-run",
                job_id="quiet",
                agency_id=writer,
                source="permits",
                is_full_refresh=False,
                started_at=now_utc() - timedelta(days=1),
                status="succeeded",
            )
        )
        key = conn.execute(
            select(permit_application.c.application_id)
            .where(permit_application.c.agency_id == writer)
            .limit(1)
        ).scalar_one()
        conn.execute(
            update(permit_application)
            .where(
                permit_application.c.agency_id == writer,
                permit_application.c.application_id == key,
            )
            .values(sync_run_id="writer-run")
        )
        assert not report_tables_current(conn, agencies[2], DEMO_TODAY, "quiet")
        assert report_tables_current(conn, agencies[1], DEMO_TODAY, "quiet")
        tx.rollback()


def test_the_rollup_history_is_backfilled_once(city) -> None:  # noqa: ANN001
    engine, settings = city
    start, end = date(2024, 5, 1), date(2024, 5, 5)
    written = backfill_rollup_history(engine, settings, start, end)
    assert written == 22 * 5
    assert backfill_rollup_history(engine, settings, start, end) == 0
    ids = list(load_agencies(settings).ids)
    with engine.connect() as conn:
        day = date(2024, 5, 3)
        expected = compute_city_metrics(
            conn, Period.parse("2024"), day, dict.fromkeys(ids, settings.targets), settings.targets
        )[ALL_AGENCIES]
        rows = conn.execute(
            select(report_metric).where(
                report_metric.c.agency_id == ALL_AGENCIES,
                report_metric.c.period == "2024",
                report_metric.c.as_of == day,
            )
        ).all()
    assert {r.metric: (r.numerator, r.denominator) for r in rows} == {
        m.metric: (m.numerator, m.denominator) for m in expected
    }
    assert {r.computed_by for r in rows} == {"backfill"}


def _check(engine: Engine, agency_id: str, as_of: date, n: int, d: int, keys: list[str]) -> None:
    """A stored target check of docreview.filing_rate 2023 carrying the agency (as the
    "chk" slice stores them), with its offenders."""
    check = TargetCheck.of_counts(
        "docreview.filing_rate",
        "2023",
        as_of,
        numerator=n,
        denominator=d,
        target=1.0,
        severity="critical",
        offenders=[Offender(k, "not filed") for k in keys],
    )
    result = check.as_result(suite="targets", expectation_type="test", is_success=n == d)
    with engine.begin() as conn:
        [(run_id, result_ids)] = store_target_runs(conn, [("2023", as_of, [result])])
        conn.execute(
            update(check_run).where(check_run.c.check_run_id == run_id).values(agency_id=agency_id)
        )
        conn.execute(
            update(check_result)
            .where(check_result.c.check_run_id == run_id)
            .values(agency_id=agency_id)
        )
        conn.execute(
            update(check_offender)
            .where(check_offender.c.check_result_id.in_(result_ids))
            .values(agency_id=agency_id)
        )


def test_statuses_and_offenders_are_each_agencys_own_checks(city) -> None:  # noqa: ANN001
    engine, _ = city
    day, later = DEMO_TODAY + timedelta(days=30), DEMO_TODAY + timedelta(days=31)
    # The same target: met for one agency, slipped since the first date for the other.
    _check(engine, "science-tech", day, 3, 3, [])
    _check(engine, "market-regulation", day, 2, 3, ["DOC-2023-002"])
    _check(engine, "market-regulation", later, 1, 3, ["DOC-2023-001", "DOC-2023-002"])
    _check(engine, "science-tech", later, 3, 3, [])
    period = Period.parse("2023")
    with engine.begin() as conn:
        for agency_id in ("science-tech", "market-regulation"):
            statuses = [
                s
                for s in target_statuses(conn, period, later, agency_id=agency_id)
                if s.metric == "docreview.filing_rate"
            ]
            store_statuses(conn, statuses, agency_id=agency_id)
        assert target_statuses(conn, period, later) == []  # nothing is the default agency's
    with engine.connect() as conn:
        rows = {
            r.agency_id: r
            for r in conn.execute(
                select(report_target_status).where(
                    report_target_status.c.metric == "docreview.filing_rate",
                    report_target_status.c.period == "2023",
                )
            )
        }
        offenders = conn.execute(
            select(report_offender.c.agency_id, report_offender.c.natural_key)
            .where(
                report_offender.c.metric == "docreview.filing_rate",
                report_offender.c.period == "2023",
            )
            .order_by(report_offender.c.agency_id, report_offender.c.natural_key)
        ).all()
    assert rows["science-tech"].status == "met" and rows["science-tech"].slipped_since is None
    slipped = rows["market-regulation"]
    assert (slipped.status, slipped.numerator, slipped.slipped_since) == ("slipped", 1, day)
    assert [tuple(o) for o in offenders] == [
        ("market-regulation", "DOC-2023-001"),
        ("market-regulation", "DOC-2023-002"),
    ]


def test_no_rollup_without_agencies_yaml(tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'one.db'}"
    settings = load_settings({"RULEWATCH_WAREHOUSE_URL": url, "RULEWATCH_DATA_DIR": str(tmp_path)})
    engine = open_warehouse(url, calendar_of(settings))
    assert refresh_rollup_metrics(engine, settings, DEMO_TODAY).metric_rows == 0
    assert backfill_rollup_history(engine, settings, DEMO_TODAY, DEMO_TODAY) == 0
    with engine.connect() as conn:
        assert conn.execute(select(report_metric)).first() is None
    engine.dispose()


def test_each_agency_reconciles_its_provisional_history_under_its_own_key() -> None:
    """One agency's pass must not mark another's history reconciled (warehouse_meta is
    shared); the one agency without agencies.yaml keeps the key it always had."""
    assert history_key("default") == HISTORY_KEY == "provisional_history_calendar"
    keys = {history_key(a) for a in ("science-tech", "market-regulation", ALL_AGENCIES)}
    assert len(keys) == 3 and HISTORY_KEY not in keys
    assert len(history_key("a" * 40)) <= warehouse_meta.c.key.type.length
