"""Engines, migrations and the calendar table."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, OperationalError

from rulewatch.settings import ConfigError
from rulewatch.warehouse.schema import calendar_day, warehouse_meta
from rulewatch.workdays import WorkingCalendar

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
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


def calendar_fingerprint(calendar: WorkingCalendar) -> str:
    parts = [f"h{d.isoformat()}" for d in sorted(calendar.holidays)]
    parts += [f"m{d.isoformat()}" for d in sorted(calendar.makeup_workdays)]
    parts.append(f"{CALENDAR_FIRST_DAY}:{CALENDAR_LAST_DAY}")
    return hashlib.sha256(",".join(parts).encode()).hexdigest()


def refresh_calendar(conn: Connection, calendar: WorkingCalendar) -> bool:
    """Rewrite ``calendar_day`` when the configured calendar changed; True if it did."""
    fingerprint = calendar_fingerprint(calendar)
    current = conn.execute(
        select(warehouse_meta.c.value).where(warehouse_meta.c.key == "calendar_fingerprint")
    ).scalar_one_or_none()
    if current == fingerprint:
        return False
    conn.execute(calendar_day.delete())
    rows = [
        {"day": d, "is_working": w, "workday_seq": s}
        for d, w, s in calendar.day_rows(CALENDAR_FIRST_DAY, CALENDAR_LAST_DAY)
    ]
    conn.execute(calendar_day.insert(), rows)
    conn.execute(warehouse_meta.delete().where(warehouse_meta.c.key == "calendar_fingerprint"))
    conn.execute(warehouse_meta.insert(), {"key": "calendar_fingerprint", "value": fingerprint})
    return True


def open_warehouse(url: str, calendar: WorkingCalendar) -> Engine:
    """Engine, migrated, with the calendar table current."""
    engine = make_engine(url)
    migrate(engine, calendar)
    return engine
