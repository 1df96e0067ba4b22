"""Crashed runs heal: rows left `running` by a process killed with SIGKILL become `abandoned`.

Real child processes hold real leases (PostgreSQL advisory lock, SQLite flock);
the test kills one with SIGKILL and keeps another alive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Insert, insert, select

from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import load_settings
from rulewatch.warehouse.db import make_engine, open_warehouse
from rulewatch.warehouse.runs import (
    ABANDONED_REASON,
    carry_probes,
    heal_runs,
    rows_carry_runs,
    snapshot,
)
from rulewatch.warehouse.schema import check_run, officer, sync_run

CHILD = """
import sys, time, uuid
from datetime import datetime
from sqlalchemy import insert
from rulewatch.checks.results import start_check_run
from rulewatch.warehouse.db import make_engine
from rulewatch.warehouse.runs import holder_token
from rulewatch.warehouse.schema import sync_run
engine = make_engine(sys.argv[1])
with engine.begin() as conn:
    conn.execute(insert(sync_run).values(
        sync_run_id=sys.argv[2], job_id=sys.argv[2], source="permits", is_full_refresh=False,
        started_at=datetime.utcnow(), status="running", holder=holder_token(engine)))
    start_check_run(conn, "targets", period="2024")
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def engine(warehouse_url):
    eng = open_warehouse(warehouse_url, calendar_of(load_settings({})))
    yield eng
    eng.dispose()


def _start_child(url: str, run_id: str) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = child.stdout.readline()  # blocks until the rows are committed (or the child died)
    assert line.strip() == "ready", child.stderr.read()
    return child


def test_a_killed_run_is_abandoned_and_a_live_one_is_left_alone(engine, warehouse_url):
    dead_id, live_id = str(uuid.uuid4()), str(uuid.uuid4())
    dead, live = _start_child(warehouse_url, dead_id), _start_child(warehouse_url, live_id)
    try:
        os.kill(dead.pid, signal.SIGKILL)
        dead.wait(30)
        healed = heal_runs(engine)
        assert healed.sync_runs == (dead_id,)
        assert len(healed.check_runs) == 1
        with engine.connect() as conn:
            runs = {r.sync_run_id: r for r in conn.execute(select(sync_run)).all()}
            checks = conn.execute(select(check_run.c.status, check_run.c.finished_at)).all()
        assert runs[dead_id].status == "abandoned"
        assert runs[dead_id].error == ABANDONED_REASON
        assert runs[dead_id].finished_at is not None
        assert runs[live_id].status == "running"  # its process lives: never touched
        assert sorted(c.status for c in checks) == ["abandoned", "running"]
        assert heal_runs(engine).sync_runs == ()  # once
    finally:
        live.kill()
        live.wait(30)
    assert heal_runs(engine).sync_runs == (live_id,)  # and now that one too


def _sync_run(run_id: str, source: str, status: str) -> Insert:
    """A sync run ``run_id`` of ``source`` started now, with no holder (as before the upgrade)."""
    return insert(sync_run).values(
        sync_run_id=run_id,
        job_id=run_id,
        source=source,
        is_full_refresh=False,
        started_at=datetime.now(UTC).replace(tzinfo=None),
        status=status,
    )


def test_a_row_without_a_holder_from_before_the_upgrade_heals(engine):
    with engine.begin() as conn:
        conn.execute(_sync_run("old", "docreview", "running"))
    assert heal_runs(engine).sync_runs == ("old",)


def test_a_snapshot_reads_one_state_while_a_writer_commits(engine, warehouse_url):
    writer = make_engine(warehouse_url)
    committed = threading.Event()

    def write() -> None:
        with writer.begin() as conn:
            conn.execute(_sync_run("w", "permits", "succeeded"))
        committed.set()

    count = select(sync_run.c.sync_run_id)
    with snapshot(engine) as conn:
        before = conn.execute(count).all()
        thread = threading.Thread(target=write)
        thread.start()
        assert committed.wait(30), "the writer was blocked by the reader"
        assert conn.execute(count).all() == before  # the same state inside the snapshot
    thread.join(30)
    with engine.connect() as conn:
        assert len(conn.execute(count).all()) == len(before) + 1
    writer.dispose()


def test_revision_0006_matches_the_schema(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from rulewatch.warehouse.schema import metadata

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    touched = ("sync_run", "check_run", "alert_delivery")
    assert [d for d in diff if any(t in repr(d) for t in touched)] == []


def _officer_row(run_id: str, n: int = 1) -> dict[str, object]:
    """An officer row written by sync run ``run_id``."""
    now = datetime(2024, 5, 20, 3, 0)
    return {
        "officer_id": f"O-{n}",
        "first_seen_at": now,
        "changed_at": now,
        "record_hash": f"h{n}",
        "sync_run_id": run_id,
    }


def test_rows_carrying_a_run_are_found_through_the_index(engine):
    now = datetime(2024, 5, 20, 3, 0)
    with engine.begin() as conn:
        for run_id in ("wrote", "quiet"):
            conn.execute(
                insert(sync_run).values(
                    sync_run_id=run_id,
                    job_id=run_id,
                    source="enforcement",
                    is_full_refresh=False,
                    started_at=now,
                    status="succeeded",
                )
            )
        conn.execute(insert(officer).values(_officer_row("wrote")))

    def runs_of(job: str):  # noqa: ANN202 - a select of run ids
        return select(sync_run.c.sync_run_id).where(sync_run.c.job_id == job)

    with engine.connect() as conn:
        assert rows_carry_runs(conn, runs_of("wrote"))
        assert not rows_carry_runs(conn, runs_of("quiet"))
        if conn.dialect.name == "postgresql":  # the planner's setting is back for what follows
            assert conn.exec_driver_sql("SHOW enable_seqscan").scalar() == "on"


def test_the_probes_read_the_index_when_sqlites_statistics_see_one_run_in_every_row(tmp_path):
    """After a first load, SQLite's statistics say every row carries the same run; a
    probe selecting whole rows then scanned the table (the plan said SCAN officer)."""
    eng = open_warehouse(f"sqlite:///{tmp_path / 'w.db'}", calendar_of(load_settings({})))
    try:
        with eng.begin() as conn:
            conn.execute(insert(officer), [_officer_row("full-load", i) for i in range(500)])
            conn.exec_driver_sql("ANALYZE")
        stmt = carry_probes([(officer, "full-load"), (officer, "quiet")])
        sql = str(stmt.compile(eng, compile_kwargs={"literal_binds": True}))
        with eng.connect() as conn:
            plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
            assert rows_carry_runs(conn, ["quiet", "full-load"], [officer])
            assert not rows_carry_runs(conn, ["quiet"], [officer])
        probes = [step for step in plan if "officer" in step]
        assert len(probes) == 2
        assert all(step.startswith("SEARCH officer USING COVERING INDEX") for step in probes)
    finally:
        eng.dispose()


def test_the_runs_of_a_year_of_quiet_nights_are_probed_in_statements_a_database_takes(engine):
    """The report tables kept over many quiet nights ask about every run since: more
    probes than one statement may OR (SQLite refuses an expression 1,000 deep)."""
    with engine.begin() as conn:
        conn.execute(insert(officer).values(_officer_row("night-1500")))
    quiet = [f"night-{i}" for i in range(1500)]
    with engine.connect() as conn:
        assert not rows_carry_runs(conn, quiet)
        assert rows_carry_runs(conn, [*quiet, "night-1500"])


def test_a_run_end_the_full_database_refuses_is_logged_in_one_line(tmp_path, caplog):
    import logging
    import sqlite3

    from rulewatch.warehouse.sync import SourceSyncResult, _finish_run

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    eng = open_warehouse(url, calendar_of(load_settings({})))
    try:
        with eng.begin() as conn:
            conn.execute(
                insert(sync_run).values(
                    sync_run_id="r-1",
                    job_id="r-1",
                    source="permits",
                    is_full_refresh=False,
                    started_at=datetime.now(UTC).replace(tzinfo=None),
                    status="running",
                )
            )
        with sqlite3.connect(tmp_path / "warehouse.db") as db:
            db.execute(
                "CREATE TRIGGER refuse BEFORE UPDATE ON sync_run "
                "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
        with caplog.at_level(logging.ERROR, logger="rulewatch"):
            _finish_run(eng, SourceSyncResult(source="permits", sync_run_id="r-1"))
    finally:
        eng.dispose()
    (record,) = [r for r in caplog.records if "end of sync run" in r.getMessage()]
    assert (
        record.getMessage() == "could not record the end of sync run r-1: database or disk is full"
    )
    assert record.exc_info is None  # no traceback under it
