"""One writing job at a time per agency, and warehouse-wide steps alone: the job lock.

Two syncs of one agency at once (two workers, or a manual run during the nightly
one) would race on its watermarks, current state and alert state. Every job that
writes holds this lock for its whole run; a second job waits up to
``wait_seconds`` and then stops with :class:`WarehouseBusy`, naming who holds the
lock (and the agency), before it has written anything.

Two scopes (issue 16):

- **an agency's** (``agency_id`` given): that agency's jobs run one at a time;
  other agencies' jobs run alongside it.
- **warehouse-wide** (``agency_id=None``): nothing else runs meanwhile. Migrations
  take it, briefly (:func:`migrate_if_behind`), so a schema never changes under a
  running job and no job starts in the middle of a migration.

How each backend does it:

- **PostgreSQL**: session-level advisory locks on a dedicated connection, keyed
  by the warehouse's database and schema (tests run many warehouses on one
  server): the warehouse key, held *shared* by every agency job and *exclusive*
  by a warehouse-wide step, and one key per agency (:func:`pg_lock_key`), held
  exclusive. The holder is named in ``pg_stat_activity.application_name``. A
  crashed holder's session ends and its locks with it.
- **SQLite**: one writer at a time, so one lock for everything: an exclusive
  ``flock`` on ``<warehouse file>.lock``, holding a line that names the holder;
  the kernel drops it when the holder dies. Agencies sharing a SQLite warehouse
  run one after another; PostgreSQL loads them in parallel.

No table is needed, so no migration.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from rulewatch.common.files import file_error
from rulewatch.common.workdays import WorkingCalendar
from rulewatch.warehouse.db import (
    WarehouseError,
    migrate,
    redact,
    schema_state,
)
from rulewatch.warehouse.schema import DEFAULT_AGENCY_ID

log = logging.getLogger("rulewatch.lock")
POLL_SECONDS = 0.5
#: How long a job waits, at least, for another one's migration to finish (seconds).
MIGRATION_WAIT_SECONDS = 30.0

_SQLITE_ONE_AT_A_TIME = (
    " A SQLite warehouse runs one job at a time, whatever the agency: run the agencies one "
    "after another, or use PostgreSQL to load them in parallel."
)


class WarehouseBusy(WarehouseError):
    """Another job holds the lock this one needs (its agency's, or the warehouse's);
    this one did not run."""

    def __init__(
        self,
        job: str,
        holder: str,
        waited: float,
        *,
        agency_id: str | None = None,
        note: str = "",
    ) -> None:
        self.job, self.holder, self.agency_id = job, holder, agency_id
        waited_text = f" after waiting {waited:.0f}s" if waited >= 1 else ""
        named = agency_id is not None and agency_id != DEFAULT_AGENCY_ID
        what = f"{job} of agency {agency_id}" if named else job
        super().__init__(
            f"another rulewatch job is running on this warehouse ({holder}); "
            f"this {what} did not run{waited_text}.{note} "
            "Run it again when that one has finished."
        )


def describe_holder(job: str, agency_id: str | None = None) -> str:
    """Who holds the lock, as the other side will read it (host last: PostgreSQL keeps 63
    chars); a named agency's job says whose it is."""
    since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if agency_id is not None and agency_id != DEFAULT_AGENCY_ID:
        job = f"{job} of {agency_id}"
    return f"{job} since {since}, pid {os.getpid()} on {socket.gethostname()}"


@contextmanager
def job_lock(
    engine: Engine, job: str, *, wait_seconds: float = 0, agency_id: str | None = None
) -> Iterator[None]:
    """Hold a job lock for the block, or raise :class:`WarehouseBusy`.

    ``job`` names this job in messages ("sync", "backfill"); ``wait_seconds`` is
    how long to wait for the lock before giving up (0: give up at once).
    ``agency_id``: hold that agency's lock (other agencies run alongside, on
    PostgreSQL); None: the warehouse-wide lock (nothing else runs meanwhile).
    """
    dialect = engine.dialect.name
    if dialect == "postgresql":
        with _pg_lock(engine, job, wait_seconds, agency_id):
            yield
    elif dialect == "sqlite":
        path = _sqlite_path(engine)
        if path is None:  # in-memory: no other process can see this warehouse
            yield
        else:
            with _file_lock(Path(f"{path}.lock"), job, wait_seconds, agency_id):
                yield
    else:
        raise WarehouseError(f"no job lock for the {dialect!r} dialect: use PostgreSQL or SQLite")


def migrate_if_behind(
    engine: Engine,
    job: str,
    calendar: WorkingCalendar | None = None,
    *,
    wait_seconds: float = 0,
) -> bool:
    """Bring an empty or older schema to this rulewatch's, holding the warehouse-wide lock
    while migrating; True if this job migrated it.

    A current schema is left alone without the lock, so agencies starting together never
    queue on it. Otherwise the lock is waited for up to ``wait_seconds``, and at least
    :data:`MIGRATION_WAIT_SECONDS` (another job's migration takes seconds, and leaves the
    schema current); agency jobs hold it shared, so a migration waits for them and, if
    they run on, stops with :class:`WarehouseBusy` having changed nothing.
    """

    def current() -> bool:
        try:
            with engine.connect() as conn:
                state, _, _ = schema_state(conn)
        except DBAPIError as exc:
            if engine.dialect.name == "postgresql":  # unreachable: said once, not after 2 waits
                raise _cannot_connect(engine, exc) from None
            return False  # a corrupt or unreadable file: migrate() says so, as before
        return state in ("current", "newer")  # newer: migrate() says what to do

    if current():
        return False
    try:
        with job_lock(engine, job, wait_seconds=max(wait_seconds, MIGRATION_WAIT_SECONDS)):
            migrate(engine, calendar)
    except WarehouseBusy:
        if current():  # the holder was migrating it: done
            return False
        raise
    return True


def _poll(try_once: Callable[[], bool], wait_seconds: float) -> float | None:
    """Call ``try_once`` until it succeeds or ``wait_seconds`` pass; None if it never did."""
    started = time.monotonic()
    deadline = started + max(wait_seconds, 0)
    while True:
        if try_once():
            return time.monotonic() - started
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        time.sleep(min(POLL_SECONDS, remaining))


# --- PostgreSQL ---------------------------------------------------------------------------


def pg_lock_key(database: str, schema: str, agency_id: str | None = None) -> int:
    """The advisory-lock key (a signed 64-bit integer) of one warehouse, or of one agency's
    jobs in it. The key says which lock, not which job: a sync and a backfill of one
    agency write the same rows, so they share the agency's lock."""
    name = f"rulewatch job lock:{database}:{schema}"  # the warehouse's: as before agencies
    if agency_id is not None:
        name = f"rulewatch agency job lock:{database}:{schema}:{agency_id}"
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _pg_lock(
    engine: Engine, job: str, wait_seconds: float, agency_id: str | None
) -> Iterator[None]:
    try:
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    except OperationalError as exc:
        raise _cannot_connect(engine, exc) from None
    try:
        database, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
        warehouse = pg_lock_key(database, schema or "")
        agency = None if agency_id is None else pg_lock_key(database, schema or "", agency_id)
        me = describe_holder(job, agency_id)
        conn.execute(text("SELECT set_config('application_name', :n, false)"), {"n": me[:63]})
        blocked_by = [warehouse]

        def take(function: str, key: int) -> bool:
            return bool(conn.execute(text(f"SELECT {function}(:k)"), {"k": key}).scalar())

        def try_once() -> bool:
            if agency is None:
                return take("pg_try_advisory_lock", warehouse)
            if not take("pg_try_advisory_lock_shared", warehouse):
                blocked_by[0] = warehouse  # a warehouse-wide step runs
                return False
            if not take("pg_try_advisory_lock", agency):
                conn.execute(text("SELECT pg_advisory_unlock_shared(:k)"), {"k": warehouse})
                blocked_by[0] = agency  # this agency's job runs
                return False
            return True

        waited = _poll(try_once, wait_seconds)
        if waited is None:
            holder = _pg_holder(conn, blocked_by[0])
            raise WarehouseBusy(job, holder, wait_seconds, agency_id=agency_id)
        scope = "the warehouse" if agency_id is None else f"agency {agency_id}"
        log.info("job lock of %s taken for %s on schema %s", scope, job, schema)
        try:
            yield
        finally:
            try:
                if agency is None:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": warehouse})
                else:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": agency})
                    conn.execute(text("SELECT pg_advisory_unlock_shared(:k)"), {"k": warehouse})
                conn.execute(text("RESET application_name"))
            except Exception:  # noqa: BLE001 - a lost session has released the lock already
                log.warning("could not release the job lock cleanly", exc_info=True)
                conn.invalidate()
    finally:
        conn.close()


def _cannot_connect(engine: Engine, exc: DBAPIError) -> WarehouseError:
    first_line = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
    return WarehouseError(f"warehouse {redact(str(engine.url))}: cannot connect: {first_line}")


def _pg_holder(conn: Connection, key: int) -> str:
    """The holders' own descriptions (their application_name), or their backend pids:
    one for an exclusive lock, the first few of the agency jobs sharing the warehouse's."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    rows = conn.execute(
        text(
            "SELECT a.pid, a.application_name, a.client_addr FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = CAST(:hi AS oid) AND l.objid = CAST(:lo AS oid) "
            "AND a.pid <> pg_backend_pid() ORDER BY a.backend_start, a.pid"
        ),
        {"hi": unsigned >> 32, "lo": unsigned & 0xFFFF_FFFF},
    ).all()
    if not rows:
        return "holder unknown"
    shown = []
    for pid, name, addr in rows[:3]:
        where = f" from {addr}" if addr else ""
        shown.append(f"{name or 'unnamed session'}; PostgreSQL backend {pid}{where}")
    more = f"; and {len(rows) - 3} more" if len(rows) > 3 else ""
    return " / ".join(shown) + more


# --- SQLite -------------------------------------------------------------------------------


def _sqlite_path(engine: Engine) -> str | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return database


@contextmanager
def _file_lock(path: Path, job: str, wait_seconds: float, agency_id: str | None) -> Iterator[None]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise WarehouseError(f"warehouse lock file {path}: {exc.strerror}") from None
    try:

        def try_once() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        waited = _poll(try_once, wait_seconds)
        if waited is None:
            holder = path.read_text(encoding="utf-8").strip() or "holder unknown"
            named = agency_id is not None and agency_id != DEFAULT_AGENCY_ID
            note = _SQLITE_ONE_AT_A_TIME if named else ""
            raise WarehouseBusy(job, holder, wait_seconds, agency_id=agency_id, note=note)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (describe_holder(job, agency_id) + "\n").encode("utf-8"), 0)
        except OSError as exc:  # its disk is full: the warehouse beside it cannot be written
            fcntl.flock(fd, fcntl.LOCK_UN)
            raise WarehouseError(file_error(OSError(exc.errno, exc.strerror, str(path)))) from None
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
