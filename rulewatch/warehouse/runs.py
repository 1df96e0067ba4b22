"""Crashed runs heal: who runs a ``sync_run``/``check_run`` row, and whether it still lives.

Every process that writes a run row first takes a *holder lease* on the
warehouse, a lock that dies with the process (as the job lock does, see
``lock.py``): on PostgreSQL a session advisory lock on a dedicated connection,
on SQLite an exclusive ``flock`` on ``<warehouse file>.holders/<token>``. The
row carries the holder's token. After kill -9 the row stays ``running``, but
its lease is gone: :func:`heal_runs`, called at the start of every run (sync,
check, report, serve), finds such rows by trying each holder's lock without
waiting and marks them ``abandoned``. A live holder keeps its lock, so healing
never touches a run in progress and never waits for one.

:func:`snapshot` gives readers (``check``, ``report``) one consistent view while
a sync writes: REPEATABLE READ (read only) on PostgreSQL, one read transaction
on SQLite (WAL: the writer is never blocked).
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, Select, Table, create_engine, or_, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from rulewatch.warehouse.schema import CORE_TABLES, check_run, now_utc, sync_run

log = logging.getLogger("rulewatch.runs")

ABANDONED_REASON = "abandoned: its process ended without finishing (killed or crashed)"

_TOKEN = str(uuid.uuid4())  # this process's holder token
_LEASES: dict[str, object] = {}  # warehouse URL -> its lease (lock key or fd); database -> session
_GUARD = threading.Lock()


def _sqlite_file(engine: Engine) -> str | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file::memory:"):
        return None
    return database


def _holders_dir(database: str) -> Path:
    return Path(f"{database}.holders")


def _pg_key(conn: Connection, token: str) -> int:
    database, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
    digest = hashlib.sha256(f"rulewatch holder:{database}:{schema}:{token}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def holder_token(engine: Engine) -> str:
    """This process's token on the warehouse, its lease taken (once per process)."""
    url = engine.url.render_as_string(hide_password=False)
    with _GUARD:
        if url in _LEASES:
            return _TOKEN
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                key = _pg_key(conn, _TOKEN)  # of this warehouse's database and schema
            # One lease session per database (advisory locks are per database, not per
            # schema), however many warehouse schemas this process writes to.
            query = {k: v for k, v in engine.url.query.items() if k != "options"}
            server = engine.url.set(query=query).render_as_string(hide_password=False)
            session = _LEASES.get(server)
            if session is None:
                lease_engine = create_engine(server, poolclass=NullPool)
                session = lease_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                _LEASES[server] = session
            session.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            _LEASES[url] = key
        elif (database := _sqlite_file(engine)) is not None:
            folder = _holders_dir(database)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / _TOKEN
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
            _LEASES[url] = fd
            atexit.register(_drop_file_lease, path, fd)
        else:
            _LEASES[url] = None  # in memory: no other process sees these rows
    return _TOKEN


def _drop_file_lease(path: Path, fd: int) -> None:
    try:
        path.unlink(missing_ok=True)
        os.close(fd)
    except OSError:
        pass


def holder_gone(engine: Engine, token: str | None) -> bool:
    """True when the process that holds ``token``'s lease has ended (never waits)."""
    if token == _TOKEN:
        return False
    if token is None:
        return True  # a row written before holders were recorded, left running
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            key = _pg_key(conn, token)
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            return bool(got)
    database = _sqlite_file(engine)
    if database is None:
        return True  # in memory: a token of another process cannot be alive here
    path = _holders_dir(database) / token
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Healed:
    """Rows a run found left by dead processes and marked ``abandoned``."""

    sync_runs: tuple[str, ...] = ()
    check_runs: tuple[str, ...] = ()


def heal_runs(engine: Engine) -> Healed:
    """Mark every ``running`` sync or check run whose holder is gone ``abandoned``."""
    with engine.connect() as conn:
        syncs = conn.execute(
            select(sync_run.c.sync_run_id, sync_run.c.holder, sync_run.c.source).where(
                sync_run.c.status == "running"
            )
        ).all()
        checks = conn.execute(
            select(check_run.c.check_run_id, check_run.c.holder).where(
                check_run.c.status == "running"
            )
        ).all()
    alive: dict[str | None, bool] = {}

    def gone(token: str | None) -> bool:
        if token not in alive:
            alive[token] = not holder_gone(engine, token)
        return not alive[token]

    dead_syncs = [r for r in syncs if gone(r.holder)]
    dead_checks = [r for r in checks if gone(r.holder)]
    if not dead_syncs and not dead_checks:
        return Healed()
    now = now_utc()
    with engine.begin() as conn:
        for r in dead_syncs:
            conn.execute(
                update(sync_run)
                .where(sync_run.c.sync_run_id == r.sync_run_id, sync_run.c.status == "running")
                .values(status="abandoned", finished_at=now, error=ABANDONED_REASON)
            )
            log.warning("sync run %s of %s: %s", r.sync_run_id, r.source, ABANDONED_REASON)
        for r in dead_checks:
            conn.execute(
                update(check_run)
                .where(check_run.c.check_run_id == r.check_run_id, check_run.c.status == "running")
                .values(status="abandoned", finished_at=now)
            )
            log.warning("check run %s: %s", r.check_run_id, ABANDONED_REASON)
    return Healed(
        tuple(r.sync_run_id for r in dead_syncs), tuple(r.check_run_id for r in dead_checks)
    )


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection that reads one consistent state of the warehouse, never blocking a writer."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn = conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            with conn.begin():
                yield conn
        return
    with engine.connect() as conn:
        # pysqlite opens no transaction for a SELECT: each statement would see the newest
        # commit. Under AUTOCOMMIT the driver leaves transactions to us, so BEGIN holds one
        # read snapshot (WAL) for every statement until the end.
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("BEGIN")
        try:
            yield conn
        finally:
            conn.exec_driver_sql("ROLLBACK")


def rows_carry_runs(
    conn: Connection, runs: Select[tuple[str]] | Sequence[str], tables: Sequence[Table] = ()
) -> bool:
    """Whether a core row (of ``tables``, default every core table) carries one of the
    sync runs ``runs`` selects or lists (a handful of ids).

    The run ids are read first; then one statement asks, for each core table and each
    id, whether a row carries it (``EXISTS (SELECT sync_run_id .. WHERE sync_run_id =
    id)``, OR-ed, which both databases stop at the first true one): each probe is an
    equality on one id read from its index alone (with ``SELECT *``, SQLite's statistics
    after a full load, every row of one run, made it scan the table instead), and a
    night's dozen probes cost one round trip and one compiled statement (runs of many
    nights: :data:`PROBES_PER_STATEMENT` per statement). Asked as ``sync_run_id IN
    (SELECT ...)``, PostgreSQL's plan depends on its statistics, and both ways went
    wrong: with none on the small ``sync_run`` table it expected a match every few
    hundred rows and read a whole table per run under ``LIMIT 1`` (after a dozen quiet
    nights at a million records, 3-5 s per table); with them it expected half the table
    to match and read the whole index (60-270 ms per table). Sequential scans are
    turned off for the probes, so a run known to have written many rows is no exception.
    """
    run_ids = list(runs) if isinstance(runs, Sequence) else conn.execute(runs).scalars().all()
    if not run_ids:
        return False
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.exec_driver_sql("SET enable_seqscan = off")
    pairs = [(t, run_id) for t in tables or CORE_TABLES.values() for run_id in run_ids]
    found = any(
        conn.execute(carry_probes(pairs[i : i + PROBES_PER_STATEMENT])).scalar()
        for i in range(0, len(pairs), PROBES_PER_STATEMENT)
    )
    if postgres:  # not on an error: its rollback undoes the SET with the transaction
        conn.exec_driver_sql("RESET enable_seqscan")
    return found


#: Probes OR-ed in one statement at most: report tables kept over many quiet nights ask
#: about every run since (a year of them is thousands), and SQLite refuses an
#: expression over 1,000 deep.
PROBES_PER_STATEMENT = 64


def carry_probes(pairs: Sequence[tuple[Table, str]]) -> Select[tuple[bool]]:
    """The statement of :func:`rows_carry_runs`: whether a row of table ``t`` carries run
    ``run_id``, for one of the ``(t, run_id)`` pairs; one index probe per pair."""
    return select(
        or_(
            *(
                select(t.c.sync_run_id).where(t.c.sync_run_id == run_id).exists()
                for t, run_id in pairs
            )
        )
    )
