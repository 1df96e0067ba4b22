"""One writing job at a time per warehouse: the job lock.

Two syncs at once (two workers, or a manual run during the nightly one) would
race on watermarks, current state and alert state. Every job that writes holds
this lock for its whole run; a second job waits up to ``wait_seconds`` and
then stops with :class:`WarehouseBusy`, naming who holds the lock, before it
has written anything.

- **PostgreSQL**: a session-level advisory lock on a dedicated connection, keyed
  by the warehouse's database and schema (tests run many warehouses on one
  server). The holder is named in ``pg_stat_activity.application_name``. A
  crashed holder's session ends and the lock with it.
- **SQLite**: an exclusive ``flock`` on ``<warehouse file>.lock``, holding a line
  that names the holder; the kernel drops it when the holder dies.

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
from sqlalchemy.exc import OperationalError

from rulewatch.warehouse.db import WarehouseError, redact

log = logging.getLogger("rulewatch.lock")
POLL_SECONDS = 0.5


class WarehouseBusy(WarehouseError):
    """Another job holds the warehouse's job lock; this one did not run."""

    def __init__(self, job: str, holder: str, waited: float) -> None:
        self.job, self.holder = job, holder
        waited_text = f" after waiting {waited:.0f}s" if waited >= 1 else ""
        super().__init__(
            f"another rulewatch job is running on this warehouse ({holder}); "
            f"this {job} did not run{waited_text}. Run it again when that one has finished."
        )


def describe_holder(job: str) -> str:
    """Who holds the lock, as the other side will read it (host last: PostgreSQL keeps 63 chars)."""
    since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{job} since {since}, pid {os.getpid()} on {socket.gethostname()}"


@contextmanager
def job_lock(engine: Engine, job: str, *, wait_seconds: float = 0) -> Iterator[None]:
    """Hold the warehouse's job lock for the block, or raise :class:`WarehouseBusy`.

    ``job`` names this job in messages ("sync", "backfill"); ``wait_seconds`` is
    how long to wait for the lock before giving up (0: give up at once).
    """
    dialect = engine.dialect.name
    if dialect == "postgresql":
        with _pg_lock(engine, job, wait_seconds):
            yield
    elif dialect == "sqlite":
        path = _sqlite_path(engine)
        if path is None:  # in-memory: no other process can see this warehouse
            yield
        else:
            with _file_lock(Path(f"{path}.lock"), job, wait_seconds):
                yield
    else:
        raise WarehouseError(f"no job lock for the {dialect!r} dialect: use PostgreSQL or SQLite")


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


def pg_lock_key(database: str, schema: str) -> int:
    """The advisory-lock key of one warehouse (a signed 64-bit integer)."""
    digest = hashlib.sha256(f"rulewatch job lock:{database}:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _pg_lock(engine: Engine, job: str, wait_seconds: float) -> Iterator[None]:
    try:
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    except OperationalError as exc:
        first_line = str(exc.orig).strip().splitlines()[0]
        raise WarehouseError(
            f"warehouse {redact(str(engine.url))}: cannot connect: {first_line}"
        ) from None
    try:
        database, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
        key = pg_lock_key(database, schema or "")
        me = describe_holder(job)
        conn.execute(text("SELECT set_config('application_name', :n, false)"), {"n": me[:63]})

        def try_once() -> bool:
            return bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())

        waited = _poll(try_once, wait_seconds)
        if waited is None:
            raise WarehouseBusy(job, _pg_holder(conn, key), wait_seconds)
        log.info("job lock taken for %s on schema %s", job, schema)
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.execute(text("RESET application_name"))
            except Exception:  # noqa: BLE001 - a lost session has released the lock already
                log.warning("could not release the job lock cleanly", exc_info=True)
                conn.invalidate()
    finally:
        conn.close()


def _pg_holder(conn: Connection, key: int) -> str:
    """The holder's own description (its application_name), or its backend pid."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    row = conn.execute(
        text(
            "SELECT a.pid, a.application_name, a.client_addr FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = CAST(:hi AS oid) AND l.objid = CAST(:lo AS oid)"
        ),
        {"hi": unsigned >> 32, "lo": unsigned & 0xFFFF_FFFF},
    ).first()
    if row is None:
        return "holder unknown"
    pid, name, addr = row
    where = f" from {addr}" if addr else ""
    return f"{name or 'unnamed session'}; PostgreSQL backend {pid}{where}"


# --- SQLite -------------------------------------------------------------------------------


def _sqlite_path(engine: Engine) -> str | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return database


@contextmanager
def _file_lock(path: Path, job: str, wait_seconds: float) -> Iterator[None]:
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
            raise WarehouseBusy(job, holder, wait_seconds)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (describe_holder(job) + "\n").encode("utf-8"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
