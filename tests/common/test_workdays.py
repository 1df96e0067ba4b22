"""The official working-day calendar (chinesecalendar + calendar.yaml overrides), the
calendar table that follows the data, and provisional figures for unpublished years.

The hand-built records sit around the 2025 and 2026 Spring Festival, 清明, 劳动节 and
National Day breaks; each comment works out the official count and the Monday-to-
Friday count, which the old calendar (lists stopping at 2024) silently used.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import chinese_calendar
import pytest
from cli_support import clean_env, run_rulewatch
from pgschema import fresh_schema_url
from receivers import Webhook
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from rulewatch.alerts.announce import run_alerting
from rulewatch.checks.targets import run_target_checks
from rulewatch.common.periods import Period
from rulewatch.common.workdays import (
    WorkingCalendar,
    calendar_of,
    official_calendar,
    package_calendar,
)
from rulewatch.config.settings import PACKAGE_CONFIG_DIR, ConfigError, load_settings
from rulewatch.metrics.compute import compute_metrics, rate_population
from rulewatch.warehouse.db import ensure_calendar, open_warehouse
from rulewatch.warehouse.schema import calendar_day, inspection, permit_application

D = date.fromisoformat
FAR = 2031  # a year no chinesecalendar release carries yet: provisional
SETTINGS = load_settings({})
TARGETS = SETTINGS.targets

# --- the calendar itself ---------------------------------------------------------------------


def test_the_package_covers_2004_through_2026_and_refuses_other_years() -> None:
    pkg = package_calendar()
    assert pkg.first_year == 2004 and pkg.last_year >= 2026
    assert list(pkg.years) == list(range(2004, pkg.last_year + 1))
    with pytest.raises(NotImplementedError):  # how the package says "not published"
        chinese_calendar.is_workday(date(pkg.last_year + 1, 7, 1))
    cal = calendar_of(SETTINGS)
    assert cal.is_published(2025) and cal.is_published(2026) and not cal.is_published(FAR)
    assert cal.source.startswith(f"chinesecalendar {pkg.version} (2004-")


@pytest.mark.parametrize(
    ("a", "b", "official", "monday_to_friday"),
    [
        # 2025 Spring Festival: 28 Jan .. 4 Feb off, make-up Sun 26 Jan and Sat 8 Feb
        ("2025-01-24", "2025-02-07", 5, 10),
        ("2025-02-07", "2025-02-10", 2, 1),
        # 2025 清明: Fri 4 Apr off
        ("2025-04-03", "2025-04-07", 1, 2),
        # 2025 劳动节: 1 .. 5 May off, make-up Sun 27 Apr
        ("2025-04-25", "2025-05-06", 5, 7),
        # 2025 National Day: 1 .. 8 Oct off, make-up Sun 28 Sep and Sat 11 Oct
        ("2025-09-26", "2025-10-11", 6, 10),
        # 2026 Spring Festival: 15 .. 23 Feb off, make-up Sat 14 Feb and Sat 28 Feb
        ("2026-02-13", "2026-02-25", 3, 8),
        ("2026-02-27", "2026-03-02", 2, 1),
        # 2026 清明: Mon 6 Apr off
        ("2026-04-03", "2026-04-07", 1, 2),
        # 2026 劳动节: 1 .. 5 May off, make-up Sat 9 May
        ("2026-04-30", "2026-05-11", 5, 7),
        # 2026 中秋 Fri 25 Sep and National Day 1 .. 7 Oct off, make-up Sun 20 Sep, Sat 10 Oct
        ("2026-09-18", "2026-10-09", 10, 15),
        # New Year 2025 across the year boundary
        ("2024-12-31", "2025-01-02", 1, 2),
    ],
)
def test_official_counts_around_the_2025_and_2026_breaks(
    a: str, b: str, official: int, monday_to_friday: int
) -> None:
    cal = calendar_of(SETTINGS)
    assert cal.working_days(D(a), D(b)) == official
    assert not cal.is_provisional(D(a), D(b))
    weekdays = WorkingCalendar.from_lists([], [], published_years=[])
    assert weekdays.working_days(D(a), D(b)) == monday_to_friday


def test_overrides_apply_on_top_and_publish_their_year() -> None:
    # a bureau's own closure on Mon 2 Mar 2026, a Saturday worked on 7 Mar 2026, and a
    # far year published ahead of the package
    cal = official_calendar([D("2026-03-02"), D(f"{FAR}-02-03")], [D("2026-03-07")])
    assert not cal.is_working(D("2026-03-02")) and cal.is_working(D("2026-03-07"))
    assert cal.is_working(D("2026-02-28"))  # the package's make-up day stays
    assert cal.is_published(FAR) and not cal.is_working(D(f"{FAR}-02-03"))
    assert cal.fingerprint() != calendar_of(SETTINGS).fingerprint()
    assert "calendar.yaml (2026, 2031)" in cal.source
    # an override can also undo the package: 14 Feb 2026 not worked after all
    undo = official_calendar([D("2026-02-14")], [])
    assert not undo.is_working(D("2026-02-14"))


def test_provisional_when_a_count_touches_an_unpublished_year() -> None:
    cal = calendar_of(SETTINGS)
    assert cal.is_provisional(D(f"{FAR}-01-02"), D(f"{FAR}-01-06"))
    assert cal.is_provisional(D(f"{FAR - 1}-12-30"), D(f"{FAR}-01-02"))
    assert not cal.is_provisional(D(f"{FAR}-01-06"), D(f"{FAR}-01-06"))  # counts nothing
    assert cal.unpublished_years(2025, FAR) == list(
        range(package_calendar().last_year + 1, FAR + 1)
    )


def test_a_day_both_holiday_and_makeup_is_a_config_error(tmp_path: Path) -> None:
    config = _config(tmp_path, "holidays: [2026-03-02]\nmakeup_workdays: [2026-03-02]\n")
    with pytest.raises(ConfigError, match=r"calendar\.yaml: makeup_workdays: .*2026-03-02"):
        load_settings({"RULEWATCH_CONFIG_DIR": str(config)})


def _config(tmp_path: Path, overrides: str) -> Path:
    """A copy of the shipped config with ``calendar.yaml``'s overrides replaced."""
    config = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, config, dirs_exist_ok=True)
    (config / "calendar.yaml").write_text(f"timezone: Asia/Shanghai\n{overrides}")
    return config


# --- hand-built records on SQLite and PostgreSQL ---------------------------------------------

_BOOKKEEPING = {
    "changed_at": datetime(2026, 1, 1),
    "record_hash": "0" * 64,
    "is_set_aside": False,
    "sync_run_id": "test-run",
}


def add_permit(conn: Connection, key: str, received: str, decided: str, promised: int) -> None:
    conn.execute(
        permit_application.insert(),
        {
            "application_id": key,
            "status": "approved",
            "received_on": D(received),
            "decided_on": D(decided),
            "promised_days": promised,
            **_BOOKKEEPING,
        },
    )


def add_inspection(conn: Connection, key: str, inspected: str, published: str | None) -> None:
    conn.execute(
        inspection.insert(),
        {
            "inspection_no": key,
            "task_type": "double_random",
            "inspected_on": D(inspected),
            "outcome": "compliant",
            "officer_count": 2,
            "is_all_officers_certified": True,
            "is_credit_rule_applied": True,
            "is_published": True,
            "published_on": None if published is None else D(published),
            **_BOOKKEEPING,
        },
    )


def load_breaks(conn: Connection) -> None:
    """Permits and double-random inspections across the 2025 and 2026 breaks."""
    # permits: (received, decided, promised) -> official verdict (Monday-to-Friday verdict)
    add_permit(conn, "P25-SF-A", "2025-01-24", "2025-02-07", 5)  # 5 on time (10 late)
    add_permit(conn, "P25-SF-B", "2025-02-07", "2025-02-10", 1)  # 2 late (1 on time)
    add_permit(conn, "P25-QM", "2025-04-03", "2025-04-07", 1)  # 1 on time (2 late)
    add_permit(conn, "P25-LD", "2025-04-25", "2025-05-06", 5)  # 5 on time (7 late)
    add_permit(conn, "P25-ND", "2025-09-26", "2025-10-11", 6)  # 6 on time (10 late)
    add_permit(conn, "P26-SF-A", "2026-02-13", "2026-02-25", 5)  # 3 on time (8 late)
    add_permit(conn, "P26-SF-C", "2026-02-13", "2026-02-26", 3)  # 4 late (9 late)
    add_permit(conn, "P26-SF-B", "2026-02-27", "2026-03-02", 1)  # 2 late (1 on time)
    add_permit(conn, "P26-QM", "2026-04-03", "2026-04-07", 1)  # 1 on time (2 late)
    add_permit(conn, "P26-LD", "2026-04-30", "2026-05-11", 5)  # 5 on time (7 late)
    add_permit(conn, "P26-ND", "2026-09-18", "2026-10-09", 10)  # 10 on time (15 late)
    # publications, limit 20 working days
    # Tue 24 Feb 2026 -> Tue 24 Mar: make-up Sat 28 Feb makes it 21, late (Mon-Fri 20)
    add_inspection(conn, "I26-SF", "2026-02-24", "2026-03-24")
    # Fri 18 Sep 2026 -> Fri 16 Oct: 16 working days, on time (Mon-Fri 20)
    add_inspection(conn, "I26-ND", "2026-09-18", "2026-10-16")
    # Fri 26 Sep 2025 -> Thu 30 Oct: 20 working days, on time (Mon-Fri 24, late)
    add_inspection(conn, "I25-ND", "2025-09-26", "2025-10-30")


#: (period, as-of) -> on_time_rate and publication_timely_rate as (numerator, denominator)
EXPECTED = {
    ("2026", "2026-11-30"): ((4, 6), (1, 2)),
    ("2026-02", "2026-11-30"): ((1, 2), (0, 1)),
    ("2025", "2025-12-31"): ((4, 5), (1, 1)),
}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def breaks_url(request, tmp_path_factory) -> Iterator[str]:  # noqa: ANN001
    """A warehouse holding the break records, built once per backend for this module."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('wh') / 'w.db'}"
        yield _built(url)
        return
    with fresh_schema_url() as url:
        yield _built(url)


def _built(url: str) -> str:
    engine = open_warehouse(url, calendar_of(SETTINGS))
    with engine.begin() as conn:
        load_breaks(conn)
    engine.dispose()
    return url


@pytest.fixture
def breaks(breaks_url: str) -> Iterator[Engine]:
    engine = open_warehouse(breaks_url, calendar_of(SETTINGS))
    yield engine
    engine.dispose()


@pytest.mark.parametrize(("period", "as_of"), list(EXPECTED))
def test_working_day_rates_follow_the_official_calendar(
    breaks: Engine, period: str, as_of: str
) -> None:
    with breaks.connect() as conn:
        m = {x.metric: x for x in compute_metrics(conn, Period.parse(period), D(as_of), TARGETS)}
    on_time, timely = EXPECTED[(period, as_of)]
    assert (m["permits.on_time_rate"].numerator, m["permits.on_time_rate"].denominator) == on_time
    publication = m["enforcement.publication_timely_rate"]
    assert (publication.numerator, publication.denominator) == timely
    assert not any(x.provisional for x in m.values())


def test_offender_reasons_give_the_official_counts(breaks: Engine) -> None:
    with breaks.connect() as conn:
        permits = conn.execute(
            rate_population("permits.on_time_rate", Period.parse("2026"), D("2026-11-30"))
        ).all()
        published = conn.execute(
            rate_population(
                "enforcement.publication_timely_rate", Period.parse("2026"), D("2026-11-30")
            )
        ).all()
    assert {k: r for k, _, r in permits if r} == {
        "P26-SF-B": "decided in 2 working days, promised 1",
        "P26-SF-C": "decided in 4 working days, promised 3",
    }
    assert {k: r for k, _, r in published if r} == {
        "I26-SF": "published in 21 working days, limit 20"
    }


@pytest.mark.parametrize(("period", "as_of"), list(EXPECTED))
def test_kpis_json_gives_the_official_figures(
    breaks_url: str, tmp_path: Path, period: str, as_of: str
) -> None:
    res = cli(["kpis", "--period", period, "--as-of", as_of, "--json"], breaks_url, tmp_path)
    assert res.returncode == 0, res.stderr
    rows = {r["metric"]: r for r in json.loads(res.stdout)}
    on_time, timely = EXPECTED[(period, as_of)]
    r = rows["permits.on_time_rate"]
    assert (r["numerator"], r["denominator"]) == on_time
    assert r["value"] == pytest.approx(on_time[0] / on_time[1])
    r = rows["enforcement.publication_timely_rate"]
    assert (r["numerator"], r["denominator"]) == timely
    assert all("provisional" not in r for r in rows.values())  # the JSON shape as before


def cli(args: list[str], url: str, tmp_path: Path, **env_extra: str) -> subprocess.CompletedProcess:
    env = clean_env(
        RULEWATCH_DATA_DIR=str(tmp_path / "data"),
        RULEWATCH_WAREHOUSE_URL=url,
        PREFECT_HOME=str(tmp_path / "prefect"),
        RULEWATCH_PII_KEY="calendar-test-key",
        **env_extra,
    )
    return run_rulewatch(env, *args)


# --- the calendar table -------------------------------------------------------------------------


def _span(engine: Engine) -> tuple[date, date, int]:
    with engine.connect() as conn:
        first, last, n = conn.execute(
            select(func.min(calendar_day.c.day), func.max(calendar_day.c.day), func.count())
        ).one()
    return first, last, n


def test_the_calendar_table_follows_the_data_and_the_overrides(
    warehouse_url: str, tmp_path: Path
) -> None:
    started = time.perf_counter()
    engine = open_warehouse(warehouse_url, calendar_of(SETTINGS))
    seconds = time.perf_counter() - started
    assert seconds < 60  # a guard, not a benchmark: the refresh is a few thousand rows
    first, last, n = _span(engine)
    assert first == date(2004, 1, 1)  # the first published year
    assert last == date(date.today().year + 1, 12, 31)  # as-of dates up to next year
    assert n == (last - first).days + 1
    with engine.begin() as conn:  # data of a far year arrives: the next run covers it
        add_permit(conn, "FAR-1", f"{FAR}-03-03", f"{FAR}-03-10", 5)
    assert ensure_calendar(engine, calendar_of(SETTINGS)) is True
    assert _span(engine)[1] == date(FAR, 12, 31)
    assert ensure_calendar(engine, calendar_of(SETTINGS)) is False  # nothing changed
    with engine.connect() as conn:
        provisional = dict(
            conn.execute(
                select(calendar_day.c.day, calendar_day.c.is_provisional).where(
                    calendar_day.c.day.in_([D("2026-12-31"), D(f"{FAR}-01-01")])
                )
            ).all()
        )
    assert provisional == {D("2026-12-31"): False, D(f"{FAR}-01-01"): True}
    # an override edited: the next run rebuilds the table with it
    config = _config(tmp_path, "holidays: [2026-03-02]\nmakeup_workdays: []\n")
    edited = calendar_of(load_settings({"RULEWATCH_CONFIG_DIR": str(config)}))
    assert ensure_calendar(engine, edited) is True
    with engine.connect() as conn:
        working = conn.execute(
            select(calendar_day.c.is_working).where(calendar_day.c.day == D("2026-03-02"))
        ).scalar_one()
    assert working is False
    engine.dispose()


# --- a year not published: provisional everywhere ------------------------------------------


def load_far_year(conn: Connection) -> None:
    """Records of a year no calendar carries yet: counted Monday to Friday."""
    add_permit(conn, "F-1", f"{FAR}-01-06", f"{FAR}-01-13", 5)  # Mon -> Mon: 5, on time
    add_permit(conn, "F-2", f"{FAR}-01-06", f"{FAR}-01-20", 5)  # 10, late
    add_permit(conn, "F-3", f"{FAR}-01-06", f"{FAR}-01-06", 0)  # 0 days: not provisional
    add_inspection(conn, "FI-1", f"{FAR}-01-06", f"{FAR}-01-08")  # 2, on time


def test_a_far_year_is_provisional_in_json_tables_report_and_alerts(
    warehouse_url: str, tmp_path: Path
) -> None:
    engine = open_warehouse(warehouse_url, calendar_of(SETTINGS))
    with engine.begin() as conn:
        load_far_year(conn)
    ensure_calendar(engine, calendar_of(SETTINGS))
    as_of, period = f"{FAR}-01-31", str(FAR)

    res = cli(["kpis", "--period", period, "--as-of", as_of, "--json"], warehouse_url, tmp_path)
    assert res.returncode == 0, res.stderr
    rows = {r["metric"]: r for r in json.loads(res.stdout)}
    assert rows["permits.on_time_rate"]["provisional"] is True
    assert rows["permits.on_time_rate"]["numerator"] == 2  # F-1, F-3 of 3
    assert rows["enforcement.publication_timely_rate"]["provisional"] is True
    assert {m for m, r in rows.items() if "provisional" in r} == {
        "permits.on_time_rate",
        "enforcement.publication_timely_rate",
    }

    res = cli(["kpis", "--period", period, "--as-of", as_of], warehouse_url, tmp_path)
    assert res.returncode == 0, res.stderr
    line = next(x for x in res.stdout.splitlines() if "permits.on_time_rate" in x)
    assert "66.67% *" in line
    assert "* provisional" in res.stdout
    assert f"arrangement of {FAR} is not published" in " ".join(res.stdout.split())

    res = cli(["check", "--period", period, "--as-of", as_of], warehouse_url, tmp_path)
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "provisional" in text
    line = next(x for x in res.stdout.splitlines() if x.lstrip("│ ").startswith("permits.on_time"))
    assert "66.67% *" in line
    assert f"arrangement of {FAR} is not published" in text
    assert "pip install -U chinesecalendar" in text and "calendar.yaml" in text

    res = cli(
        ["report", "--period", period, "--as-of", as_of, "--out", str(tmp_path / "out")],
        warehouse_url,
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    files = [Path(p) for p in res.stdout.split()]
    html = next(p for p in files if p.suffix == ".html").read_text(encoding="utf-8")
    assert (
        'data-metric="permits.on_time_rate" data-status="slipped" data-provisional="true"' in html
    )
    assert "provisional-note" in html
    metrics_csv = next(p for p in files if p.name.endswith(".csv") and "metric" in p.name)
    with metrics_csv.open(encoding="utf-8-sig") as f:
        flags = {(r["metric"], r["period"]): r["provisional"] for r in csv.DictReader(f)}
    assert flags[("permits.on_time_rate", period)] == "True"
    assert flags[("docreview.filing_rate", period)] == "False"

    hook = Webhook()
    try:
        settings = replace(SETTINGS, warehouse_url=warehouse_url, alert_urls=(hook.url,))
        checked = run_target_checks(engine, settings, [Period.parse(period)], D(as_of))
        run_alerting(engine, settings, D(as_of), check_run_id=checked.check_run_id)
    finally:
        hook.close()
        engine.dispose()
    slipped = next(m for m in hook.received if "permits.on_time_rate" in m["title"])
    assert slipped["title"].endswith("未达标 (暂定, provisional)")  # zh, the shipped language
    assert "暂定 (provisional)" in slipped["message"]
    # the record-level reason in the bureau's language too
    assert "F-2: 10个工作日办结,承诺5个工作日(暂定:该年度放假安排尚未公布)" in slipped["message"]


def test_an_early_warning_near_the_limit_says_it_is_provisional(warehouse_url: str) -> None:
    engine = open_warehouse(warehouse_url, calendar_of(SETTINGS))
    with engine.begin() as conn:
        # Mon 6 Jan -> Fri 31 Jan: 19 working days used of 20, not yet published
        add_inspection(conn, "FW-1", f"{FAR}-01-06", None)
        conn.execute(
            inspection.update()
            .where(inspection.c.inspection_no == "FW-1")
            .values(is_published=False)
        )
    ensure_calendar(engine, calendar_of(SETTINGS))
    from rulewatch.alerts.announce import early_warning_list

    with engine.connect() as conn:
        warnings = early_warning_list(conn, D(f"{FAR}-01-31"), 7)
    engine.dispose()
    (w,) = [w for w in warnings if w.natural_key == "FW-1"]
    assert w.reason.startswith("result not published; 19 of 20 working days used (provisional")


def test_revision_0005_upgrades_a_0004_warehouse_and_rebuilds_its_calendar(
    warehouse_url: str,
) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import insert

    from rulewatch.warehouse.db import MIGRATIONS_DIR, make_engine
    from rulewatch.warehouse.schema import warehouse_meta

    engine = make_engine(warehouse_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        # a day of the old Monday-to-Friday calendar, and its fingerprint
        conn.exec_driver_sql(
            "INSERT INTO calendar_day (day, is_working, workday_seq) VALUES ('2026-02-16', true, 1)"
            if conn.dialect.name == "postgresql"
            else "INSERT INTO calendar_day (day, is_working, workday_seq) VALUES ('2026-02-16', 1, 1)"
        )
        conn.execute(insert(warehouse_meta).values(key="calendar_fingerprint", value="old"))
    engine.dispose()
    engine = open_warehouse(warehouse_url, calendar_of(SETTINGS))
    with engine.connect() as conn:
        row = conn.execute(
            select(calendar_day.c.is_working, calendar_day.c.is_provisional).where(
                calendar_day.c.day == D("2026-02-16")
            )
        ).one()
    assert tuple(row) == (False, False)  # Spring Festival 2026, from the package
    assert _span(engine)[0] == date(2004, 1, 1)
    engine.dispose()
