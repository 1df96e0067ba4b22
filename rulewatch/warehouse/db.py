"""Engines, migrations and the calendar table."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, OperationalError

from rulewatch.settings import ConfigError
from rulewatch.warehouse.schema import (
    calendar_day,
    inspection,
    permit_application,
    warehouse_meta,
)
from rulewatch.workdays import WorkingCalendar

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Bounds of the calendar table: it spans only the years the data needs, never more than these.
CALENDAR_FIRST_DAY = date(1990, 1, 1)
CALENDAR_LAST_DAY = date(2100, 12, 31)
_PG_MIGRATION_LOCK = 72_411_301  # advisory lock id: one migrator at a time


class WarehouseError(Exception):
    """The warehouse cannot be reached or set up; the message says which and why."""


def make_engine(url: str) -> Engine:
    """An engine for the warehouse URL; SQLite gets WAL and a busy timeout."""
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 60})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ModuleNotFoundError) as exc:
        raise ConfigError(f"RULEWATCH_WAREHOUSE_URL: cannot use {redact(url)}: {exc}") from None


#: SQLite page cache per connection (KiB): the unique index on record hashes takes
#: inserts at random places, and the default 2 MB cache re-reads its pages from disk.
SQLITE_CACHE_KIB = 64 * 1024


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI types
    # WAL with synchronous=NORMAL: a commit is atomic and the database is never
    # corrupted; only a power loss (not a crash of the process) may undo the last
    # commits, and each undoes its rows and the watermark that covers them together,
    # so the next sync re-reads them.
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def migrate(engine: Engine, calendar: WorkingCalendar | None = None) -> None:
    """Bring the schema to the newest Alembic revision (safe to call every run), and the
    calendar table to ``calendar`` if given, in one transaction: on PostgreSQL under an
    advisory lock, so two jobs starting at once never race on either."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            if calendar is not None:
                refresh_calendar(conn, calendar)
    except OperationalError as exc:
        raise WarehouseError(
            f"warehouse {redact(str(engine.url))}: cannot connect or migrate: "
            f"{str(exc.orig).strip().splitlines()[0]}"
        ) from None


def calendar_years(
    conn: Connection, calendar: WorkingCalendar, today: date | None = None
) -> tuple[int, int]:
    """The first and last year the calendar table covers: from the first published
    year (or the earliest date working days are counted from in the core tables, if
    earlier) to next year (or the latest such date, if later); bounded by 1990..2100
    against a mistyped date. Dates outside it have unknown working days and say so."""
    this_year = (today or date.today()).year
    years = {this_year - 1, this_year + 1}
    if calendar.published_years:
        years.add(min(calendar.published_years))
    for table, columns in (
        (permit_application, ("received_on", "decided_on")),
        (inspection, ("inspected_on", "published_on")),
    ):
        extremes = []
        for name in columns:
            extremes += [func.min(table.c[name]), func.max(table.c[name])]
        years |= {d.year for d in conn.execute(select(*extremes)).one() if d is not None}
    first = max(min(years), CALENDAR_FIRST_DAY.year)
    last = min(max(years), CALENDAR_LAST_DAY.year)
    return first, last


def calendar_fingerprint(calendar: WorkingCalendar, first_year: int, last_year: int) -> str:
    """The calendar table's identity: the arrangement and the years it spans."""
    return f"{calendar.fingerprint()}:{first_year}-{last_year}"


def refresh_calendar(
    conn: Connection, calendar: WorkingCalendar, today: date | None = None
) -> bool:
    """Rewrite ``calendar_day`` when the arrangement or the years the data needs changed
    (an edited override, a package upgrade, data of a new year); True if it did."""
    first_year, last_year = calendar_years(conn, calendar, today)
    fingerprint = calendar_fingerprint(calendar, first_year, last_year)
    current = _meta(conn, "calendar_fingerprint")
    if current == fingerprint:
        return False
    conn.execute(calendar_day.delete())
    rows = [
        {
            "day": d,
            "is_working": w,
            "workday_seq": s,
            "is_provisional": p,
            "provisional_seq": ps,
        }
        for d, w, s, p, ps in calendar.day_rows(date(first_year, 1, 1), date(last_year, 12, 31))
    ]
    conn.execute(calendar_day.insert(), rows)
    _set_meta(conn, "calendar_fingerprint", fingerprint)
    _set_meta(conn, "calendar_arrangement", calendar.fingerprint())
    return True


def _meta(conn: Connection, key: str) -> str | None:
    return conn.execute(
        select(warehouse_meta.c.value).where(warehouse_meta.c.key == key)
    ).scalar_one_or_none()


def _set_meta(conn: Connection, key: str, value: str) -> None:
    conn.execute(warehouse_meta.delete().where(warehouse_meta.c.key == key))
    conn.execute(warehouse_meta.insert(), {"key": key, "value": value})


def ensure_calendar(engine: Engine, calendar: WorkingCalendar) -> bool:
    """Bring the calendar table in step with the data (after a load brought dates of a
    new year), in its own transaction; on PostgreSQL under the migration lock."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        return refresh_calendar(conn, calendar)


def open_warehouse(url: str, calendar: WorkingCalendar) -> Engine:
    """Engine, migrated, with the calendar table current."""
    engine = make_engine(url)
    migrate(engine, calendar)
    return engine
