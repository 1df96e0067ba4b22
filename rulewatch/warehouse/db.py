"""Engines, migrations and the calendar table."""

from __future__ import annotations

import ctypes
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from rulewatch.common.workdays import WorkingCalendar
from rulewatch.config.settings import ConfigError, TimeoutsSection
from rulewatch.warehouse.schema import (
    calendar_day,
    inspection,
    landed_record,
    permit_application,
    warehouse_meta,
)

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: The newest revision in ``migrations/versions`` (a test holds it to Alembic's head). A
#: warehouse at this revision is current without asking Alembic, whose import and reading
#: of every migration script cost a quiet night about 0.15 s; Alembic is imported only to
#: migrate, or to tell an older revision from a newer one.
SCHEMA_HEAD = "0011"
# Bounds of the calendar table: it spans only the years the data needs, never more than these.
CALENDAR_FIRST_DAY = date(1990, 1, 1)
CALENDAR_LAST_DAY = date(2100, 12, 31)
_PG_MIGRATION_LOCK = 72_411_301  # advisory lock id: one migrator at a time
log = logging.getLogger("rulewatch.warehouse")


class WarehouseError(Exception):
    """The warehouse cannot be reached or set up; the message says which and why."""


class SchemaNotCurrent(WarehouseError):
    """The warehouse's schema is not the one this rulewatch expects; the message says what to do."""


def make_engine(url: str, timeouts: TimeoutsSection | None = None) -> Engine:
    """An engine for the warehouse URL, bounded in time (``schedule.yaml``'s ``timeouts``).

    PostgreSQL gets a connect timeout and a statement timeout, so a host that
    accepts the connection and never answers cannot hang a command; SQLite gets
    WAL and a busy timeout.
    """
    timeouts = timeouts or TimeoutsSection()
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:" and not path.startswith("file:"):
                _make_parent(Path(path))
            pool: dict[str, object] = {}
            if _sqlite_file(url):
                # LIFO: the sources' writes take turns (one writer at a time), so they
                # reuse one connection and its page cache, instead of each filling a
                # cache of its own (SQLITE_CACHE_KIB each: the memory grew with the data)
                pool["pool_use_lifo"] = True
            engine = create_engine(
                url, connect_args={"timeout": timeouts.sqlite_busy_seconds}, **pool
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "checkin", _return_freed_memory)
            return engine
        return create_engine(url, pool_pre_ping=True, connect_args=_pg_bounds(url, timeouts))
    except (ArgumentError, ModuleNotFoundError) as exc:
        raise ConfigError(f"RULEWATCH_WAREHOUSE_URL: cannot use {redact(url)}: {exc}") from None


def _sqlite_file(url: str) -> bool:
    """A SQLite database in a file (pooled), not in memory (one connection per thread)."""
    database = make_url(url).database
    return database not in (None, "", ":memory:") and "mode=memory" not in url


def _pg_bounds(url: str, timeouts: TimeoutsSection) -> dict[str, object]:
    """libpq's connect timeout and PostgreSQL's statement timeout; a value in the URL wins."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        return {}
    args: dict[str, object] = {}
    if "connect_timeout" not in parsed.query:
        args["connect_timeout"] = max(1, round(timeouts.warehouse_connect_seconds))
    options = parsed.query.get("options", "")
    options = " ".join(options) if isinstance(options, tuple) else options
    if "statement_timeout" not in options:
        ms = round(timeouts.warehouse_statement_seconds * 1000)
        args["options"] = f"{options} -c statement_timeout={ms}".strip()
    return args


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WarehouseError(
            f"warehouse {path}: cannot create the folder {path.parent}: "
            f"{exc.strerror or type(exc).__name__}"
        ) from None


#: SQLite page cache per connection (KiB): a load writes the landed versions' index and
#: the core tables' keys and dates, and the default 2 MB cache re-reads their pages from
#: disk. Bounded, since each connection fills its own. (Until revision 0011 the landed
#: versions were unique on their hash, taking inserts at random places: beyond ~300k
#: records most of them missed this cache.)
SQLITE_CACHE_KIB = 32 * 1024
#: All of this process's SQLite memory together (bytes): one connection's page cache
#: and room for statements and schemas. ``soft_heap_limit`` holds for the whole
#: process, so a second connection's cache (a reader beside the writer, a pool's
#: spare) recycles pages instead of filling 32 MB of its own; without it the peak
#: memory grew with the data (two full caches at 1M records, half-full ones at 100k).
SQLITE_HEAP_LIMIT_BYTES = (SQLITE_CACHE_KIB + 16 * 1024) * 1024


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
    # temp_store stays at its default (files) on purpose: with MEMORY, the savepoint
    # each loaded batch is written in keeps the old content of every page it changes
    # in the heap, outside cache_size and soft_heap_limit. A batch's hashes land on
    # pages all over the unique index, so that grew with the index: ~40 MB more at
    # 1M records. The default keeps the first 64 KiB in memory, the rest in a file.
    cur.execute(f"PRAGMA soft_heap_limit={SQLITE_HEAP_LIMIT_BYTES}")
    cur.close()


#: Least seconds between two returns of freed heap memory to the system (one takes ~ms).
MALLOC_TRIM_EVERY_SECONDS = 1.0
_TRIM = {"last": 0.0}
_TRIM_LOCK = threading.Lock()


def _load_malloc_trim():  # noqa: ANN202 - a ctypes function or None
    """glibc's ``malloc_trim``, or None where the C library is not glibc."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def _return_freed_memory(_dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI types
    """Give the heap memory freed since the last time back to the system, at most once
    a second, when a SQLite connection goes back to its pool.

    glibc keeps what a thread freed in its arena for reuse, and the sync's threads
    (three sources, each with a reader) free batches, pages and SQLite's pages in
    arenas of their own: the job held ~100 MB freed but not given back. Returning it
    lowers the job's peak by ~40 MB at 100k and at 1M records, for ~0.15 s of trims
    in a 1M load. Where the C library is not glibc, nothing is done.
    """
    if _MALLOC_TRIM is None:
        return
    now = time.monotonic()
    if now - _TRIM["last"] < MALLOC_TRIM_EVERY_SECONDS or not _TRIM_LOCK.acquire(blocking=False):
        return
    try:
        _TRIM["last"] = now
        _MALLOC_TRIM(0)
    finally:
        _TRIM_LOCK.release()


def refresh_statistics(engine: Engine, *, wrote: bool = True) -> bool:
    """Give the query planner the statistics of the rows just written (``ANALYZE``);
    True if it ran.

    Without them SQLite prefers an index whose leading column an equality names (the
    key's ``agency_id``, the same on every row of a one-agency warehouse) over a date
    column's index that a range names, and reads every row of a table for a month's
    figures: at a million records the report tables' refresh took 11 s instead of
    0.7 s. A full ``ANALYZE`` of that warehouse takes about half a second; a night
    that wrote rows runs it, under the job's lock.

    PostgreSQL's autovacuum analyzes a table once its changed rows pass 50 plus 10%
    of it, but on its own schedule (a minute apart by default, or never where it is
    off), so the checks and report tables that follow a large load planned their
    aggregates without statistics: at a million records the figures of the report
    periods took 1.27 s instead of 0.56 s. The tables past autovacuum's threshold
    (:func:`_pg_stale_tables`) are analyzed now; a night of a few changed rows
    passes none and analyzes nothing. PostgreSQL's tables are looked at every night
    (one catalog query), so a night that wrote nothing still analyzes what an
    earlier night could not; SQLite's whole-file ``ANALYZE`` runs only when the
    night ``wrote``.

    Statistics make the night faster, not right: when the database refuses or
    times out (a lock held elsewhere past the statement timeout), a warning says
    so and the night goes on without them (False).
    """
    try:
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                stale = _pg_stale_tables(conn)
                quote = conn.dialect.identifier_preparer.quote
                for table in stale:
                    conn.exec_driver_sql(f"ANALYZE {quote(table)}")
            return bool(stale)
        if engine.dialect.name != "sqlite" or not wrote:
            return False
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    except DBAPIError as exc:
        log.warning(
            "planner statistics not refreshed (%s); the checks and report tables go on "
            "without them",
            database_reason(exc),
        )
        return False
    return True


#: autovacuum's defaults (``autovacuum_analyze_threshold``, ``..._scale_factor``)
_PG_ANALYZE_ROWS = 50
_PG_ANALYZE_SHARE = 0.1
#: The archive of every version received, read only through its keys' index (a plan
#: that needs no statistics): left to autovacuum (at 1M records its ANALYZE took 0.4 s).
_PG_NOT_ANALYZED = (landed_record.name,)


def _pg_stale_tables(conn: Connection) -> list[str]:
    """The warehouse schema's tables whose rows changed since their last ``ANALYZE``
    by more than autovacuum's threshold, or that hold rows and were never analyzed
    (the archive of received versions aside), by name: two agencies' nights analyze
    in one order, each holding the tables it analyzed until it commits."""
    return [
        name
        for name in conn.execute(
            text(
                "SELECT relname FROM pg_stat_user_tables"
                " WHERE schemaname = current_schema()"
                " AND (n_mod_since_analyze > :rows + :share * n_live_tup"
                " OR (n_live_tup > 0 AND last_analyze IS NULL AND last_autoanalyze IS NULL))"
                " ORDER BY relname"
            ),
            {"rows": _PG_ANALYZE_ROWS, "share": _PG_ANALYZE_SHARE},
        ).scalars()
        if name not in _PG_NOT_ANALYZED
    ]


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def schema_head() -> str:
    """The newest schema revision this rulewatch knows."""
    return SCHEMA_HEAD


def stored_revision(conn: Connection) -> str | None:
    """The schema revision the warehouse records (Alembic's ``alembic_version``), or None."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def schema_state(conn: Connection) -> tuple[str, str | None, str]:
    """Where the warehouse's schema stands: ``(state, its revision, this rulewatch's head)``.

    ``state`` is ``empty`` (no rulewatch tables yet), ``current``, ``behind``
    (an older revision: ``sync`` or ``upgrade`` brings it up) or ``newer`` (a
    revision this rulewatch does not know: a newer rulewatch migrated it).
    """
    head = SCHEMA_HEAD
    revision = stored_revision(conn)
    if revision is None:
        tables = set(inspect(conn).get_table_names()) - {"alembic_version"}
        return ("empty" if not tables else "behind"), None, head
    if revision == head:
        return "current", revision, head
    from alembic.script import ScriptDirectory

    known = {s.revision for s in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}
    return ("behind" if revision in known else "newer"), revision, head


def _where(engine: Engine | str) -> str:
    url = engine.url if isinstance(engine, Engine) else make_url(engine)
    if url.drivername.startswith("sqlite"):
        return str(url.database)
    return redact(str(url))


def newer_schema_error(engine: Engine, revision: str | None, head: str) -> SchemaNotCurrent:
    return SchemaNotCurrent(
        f"warehouse {_where(engine)}: schema revision {revision} is newer than this "
        f"rulewatch knows (its newest is {head}); a newer rulewatch migrated it: "
        "install that version (or newer) here"
    )


def database_reason(exc: BaseException) -> str:
    """The first line of what the database (its driver) said."""
    orig = getattr(exc, "orig", None) or exc  # SQLAlchemy's wrapper: the driver's own error
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


def is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the database's: SQLAlchemy's, or a driver's raised where
    rulewatch talks to the driver itself (PostgreSQL's COPY)."""
    if isinstance(exc, DBAPIError | sqlite3.Error):
        return True
    psycopg = sys.modules.get("psycopg")  # not imported: none of its errors can occur
    return psycopg is not None and isinstance(exc, psycopg.Error)


def warehouse_error(engine: Engine | str, exc: BaseException, doing: str) -> WarehouseError:
    """One line for a database error while ``doing``: unreachable, read-only, corrupt,
    full ... (``engine``: the warehouse's engine or URL, named without its password)."""
    why = database_reason(exc)
    if "file is not a database" in why or "malformed" in why:
        why += " (the SQLite file is corrupt or not SQLite: restore it from a backup)"
    elif "readonly database" in why or "unable to open database file" in why:
        why += " (check that the file and its folder are writable by this user)"
    elif any(full in why for full in ("disk is full", "No space left", "could not extend")):
        why += " (free space on the warehouse's disk, then run again: what was committed stays)"
    elif "disk I/O error" in why:
        why += " (its disk may be full or failing: check its free space and the system log)"
    return WarehouseError(f"warehouse {_where(engine)}: cannot {doing}: {why}")


def migrate(engine: Engine, calendar: WorkingCalendar | None = None) -> None:
    """Bring the schema to the newest Alembic revision (safe to call every run), and the
    calendar table to ``calendar`` if given, in one transaction: on PostgreSQL under an
    advisory lock, so two jobs starting at once never race on either.

    A schema newer than this rulewatch knows is refused (:class:`SchemaNotCurrent`)."""
    try:
        upgrading = engine.dialect.name == "sqlite" and not _current(engine)
        with _one_transaction(engine) if upgrading else engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            state, revision, head = schema_state(conn)
            if state == "newer":
                raise newer_schema_error(engine, revision, head)
            if state != "current":  # at head already: no need to run Alembic's environment
                from alembic import command

                _drop_failed_copies(conn, engine)
                cfg = _alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            if calendar is not None:
                refresh_calendar(conn, calendar)
    except DBAPIError as exc:
        raise warehouse_error(engine, exc, "connect or migrate") from None


def _current(engine: Engine) -> bool:
    with engine.connect() as conn:
        return schema_state(conn)[0] == "current"


@contextmanager
def _one_transaction(engine: Engine) -> Iterator[Connection]:
    """A SQLite connection whose every statement, DDL included, is in one transaction,
    the database's write lock taken first (waiting as long as the busy timeout).

    pysqlite opens a transaction only before an INSERT, UPDATE or DELETE, so an
    Alembic batch migration's ``CREATE TABLE _alembic_tmp_<table>`` (SQLite copies a
    table to change its constraints) was committed at once: when the copy then failed
    (a full disk), the half-made copy stayed and every later upgrade stopped on it.
    Here the driver's transaction handling is set aside and BEGIN IMMEDIATE .. COMMIT
    wrap everything. (Only to upgrade: a current warehouse's runs keep pysqlite's
    transactions, which take the write lock only to write.)"""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.connection.driver_connection.in_transaction:  # SQLite may have ended it
                conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")


#: The table an Alembic batch migration copies a table into, on SQLite
_BATCH_COPY = "_alembic_tmp_"


def _drop_failed_copies(conn: Connection, engine: Engine) -> None:
    """Drop what an upgrade that failed under an earlier rulewatch left on SQLite: a
    batch migration's copy (``_alembic_tmp_<table>``) beside its intact table, which
    kept its rows (the copy was committed, the rest rolled back). A copy without its
    table is not guessed at: the upgrade stops, naming it."""
    if conn.dialect.name != "sqlite":
        return
    tables = set(inspect(conn).get_table_names())
    for copy in sorted(t for t in tables if t.startswith(_BATCH_COPY)):
        table = copy.removeprefix(_BATCH_COPY)
        if table not in tables:
            raise WarehouseError(
                f"warehouse {_where(engine)}: table {copy} is left from a failed upgrade "
                f"and {table} is missing: restore the backup taken before the upgrade"
            )
        log.warning("dropping %s, left by an upgrade that failed; %s is intact", copy, table)
        conn.exec_driver_sql(f'DROP TABLE "{copy}"')


def open_current(engine: Engine, calendar: WorkingCalendar | None = None) -> None:
    """For commands that only read: use the schema as it is, never upgrade it.

    An empty warehouse is set up (there is nothing to protect); a schema behind
    or ahead of this rulewatch is a :class:`SchemaNotCurrent` saying which
    command upgrades it. The calendar table is brought up to the configured
    calendar, as every command computes with it.
    """
    try:
        with engine.connect() as conn:
            state, revision, head = schema_state(conn)
    except DBAPIError as exc:
        raise warehouse_error(engine, exc, "connect") from None
    if state == "newer":
        raise newer_schema_error(engine, revision, head)
    if state == "behind":
        raise SchemaNotCurrent(
            f"warehouse {_where(engine)}: schema is at revision {revision or 'none'}, "
            f"behind this rulewatch ({head}); read-only commands do not upgrade it: run "
            "`rulewatch upgrade` (or the nightly `rulewatch sync`) first"
        )
    migrate(engine, calendar)  # empty: create; current: only the calendar table


def upgrade_warehouse(
    url: str, calendar: WorkingCalendar, timeouts: TimeoutsSection | None = None
) -> tuple[str | None, str]:
    """Upgrade the schema to this rulewatch's newest revision: ``(revision before, after)``."""
    engine = make_engine(url, timeouts)
    try:
        try:
            with engine.connect() as conn:
                _, before, _ = schema_state(conn)
        except DBAPIError as exc:
            raise warehouse_error(engine, exc, "connect") from None
        migrate(engine, calendar)
        with engine.connect() as conn:
            _, after, _ = schema_state(conn)
    finally:
        engine.dispose()
    return before, after or ""


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
        # one subquery per extreme: each is a single min() or max(), which SQLite
        # answers from the column's index; asked together, it read the whole table
        # (0.3 s a night at 1M records)
        extremes = [
            select(extreme(table.c[name])).scalar_subquery()
            for name in columns
            for extreme in (func.min, func.max)
        ]
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


def open_warehouse(
    url: str,
    calendar: WorkingCalendar,
    timeouts: TimeoutsSection | None = None,
    *,
    upgrade: bool = True,
) -> Engine:
    """Engine with the calendar table current; the schema migrated to the newest revision,
    or with ``upgrade=False`` (read-only commands) checked to be current, never changed."""
    engine = make_engine(url, timeouts)
    try:
        if upgrade:
            migrate(engine, calendar)
        else:
            open_current(engine, calendar)
    except BaseException:
        engine.dispose()
        raise
    return engine
