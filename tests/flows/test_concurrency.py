"""Two syncs at once: the warehouse's job lock lets one run and stops the other, cleanly."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from flows_support import child_env, poll, rulewatch_cmd, stop_process
from sqlalchemy import create_engine, func, select

from rulewatch.common.periods import Period
from rulewatch.config.settings import load_settings
from rulewatch.demo.data import DEMO_TODAY
from rulewatch.metrics.compute import compute_metrics
from rulewatch.warehouse.db import make_engine
from rulewatch.warehouse.lock import WarehouseBusy, job_lock, pg_lock_key
from rulewatch.warehouse.schema import landed_record, permit_application, sync_run

BUSY = "another rulewatch job is running on this warehouse"


# --- the lock itself, both backends ----------------------------------------------------------


def test_a_second_job_is_refused_naming_the_holder(warehouse_url):
    first, second = make_engine(warehouse_url), make_engine(warehouse_url)
    with job_lock(first, "sync"):
        with pytest.raises(WarehouseBusy) as refused, job_lock(second, "backfill"):
            pass
        assert BUSY in str(refused.value)
        assert "sync since" in refused.value.holder
        assert "this backfill did not run" in str(refused.value)
    with job_lock(second, "backfill"):  # released: free again
        pass
    first.dispose()
    second.dispose()


def test_a_waiting_job_gets_the_lock_when_the_holder_finishes(warehouse_url):
    first, second = make_engine(warehouse_url), make_engine(warehouse_url)
    holding, release, released = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        with job_lock(first, "sync"):
            holding.set()
            release.wait(30)
        released.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(30)
    timer = threading.Timer(0.3, release.set)
    timer.start()
    with job_lock(second, "sync", wait_seconds=30):
        assert released.is_set()
    holder.join(30)
    first.dispose()
    second.dispose()


def test_each_postgres_schema_is_its_own_warehouse():
    keys = {pg_lock_key("test", s) for s in ("public", "t_a", "t_b")} | {pg_lock_key("x", "t_a")}
    assert len(keys) == 4


def test_sqlite_in_memory_needs_no_lock():
    engine = make_engine("sqlite://")
    with job_lock(engine, "sync"), job_lock(engine, "sync"):
        pass


# --- two real `rulewatch sync` processes on PostgreSQL --------------------------------------


class Gate:
    """A proxy in front of one demo system that holds every request until opened.

    The sync that wins the lock reaches the gate and waits there, holding the
    lock, so the other sync meets the lock for certain, whatever the timing.
    """

    def __init__(self, upstream: str) -> None:
        self.opened, self.reached = threading.Event(), threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                gate.reached.set()
                gate.opened.wait(120)
                names = ("authorization", "x-api-key", "host", "accept")
                headers = {k: v for k, v in self.headers.items() if k.lower() in names}
                reply = requests.get(upstream + self.path, headers=headers, timeout=60)
                self.send_response(reply.status_code)
                for name in ("Content-Type", "Link", "Retry-After"):
                    if name in reply.headers:
                        self.send_header(name, reply.headers[name])
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Gate:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.opened.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gated_permits(demo) -> Iterator[Gate]:
    with Gate(demo.permits_url) as gate:
        yield gate


@pytest.mark.postgres
def test_two_syncs_at_once_leave_the_rows_of_one(demo, gated_permits, pg_url, tmp_path):
    env = {**demo.env(), "RULEWATCH_PERMITS_URL": gated_permits.url}
    procs = [
        subprocess.Popen(
            rulewatch_cmd("sync", "--as-of", DEMO_TODAY.isoformat()),
            env=child_env(tmp_path / f"p{i}", RULEWATCH_WAREHOUSE_URL=pg_url, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    try:
        poll(
            lambda: gated_permits.reached.is_set() or all(p.poll() is not None for p in procs),
            180,
            "a sync to reach the permits source",
        )
        if not gated_permits.reached.is_set():
            pytest.fail("no sync reached the source:\n" + "\n".join(p.stderr.read() for p in procs))
        loser = poll(
            lambda: next((p for p in procs if p.poll() is not None), None),
            180,
            "the second sync to give up",
        )
        gated_permits.opened.set()
        winner = next(p for p in procs if p is not loser)
        winner_out, winner_err = winner.communicate(timeout=180)
        _, loser_err = loser.communicate(timeout=30)
    finally:
        for p in procs:
            stop_process(p)

    assert winner.returncode == 0, winner_err[-3000:]
    assert loser.returncode == 1, loser_err[-3000:]
    assert f"rulewatch: failed: {BUSY}" in loser_err
    assert "this sync did not run" in loser_err
    assert "Traceback" not in loser_err

    engine = create_engine(pg_url)
    with engine.connect() as conn:
        runs = conn.execute(select(sync_run.c.sync_run_id, sync_run.c.job_id, sync_run.c.status))
        runs = runs.all()
        landed_from = set(conn.execute(select(landed_record.c.sync_run_id).distinct()).scalars())
        applications = conn.execute(select(func.count()).select_from(permit_application)).scalar()
        loaded = conn.execute(select(func.sum(sync_run.c.records_loaded))).scalar()
        landed = conn.execute(select(func.count()).select_from(landed_record)).scalar()
        settings = load_settings({"RULEWATCH_PII_KEY": "x"})
        metrics = compute_metrics(conn, Period.parse("2023"), DEMO_TODAY, settings.targets)
    engine.dispose()
    assert len(runs) == 3 and len({r.job_id for r in runs}) == 1
    assert {r.status for r in runs} == {"succeeded"}
    assert landed_from == {r.sync_run_id for r in runs}
    assert landed == loaded
    assert applications == demo.stores["permits"].live_count
    assert {m.metric: m.value for m in metrics}["permits.received"] == 606
