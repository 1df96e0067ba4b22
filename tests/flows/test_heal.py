"""kill -9 during a sync and during an alert delivery: the next run heals (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flows_support import child_env, poll, rulewatch_cmd, stop_process
from receivers import Webhook
from sqlalchemy import select

from rulewatch.alerts.announce import Channel, plan_alerts
from rulewatch.checks.results import Offender, TargetCheck
from rulewatch.common.periods import Period
from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import load_settings
from rulewatch.demo.data import DEMO_TODAY
from rulewatch.report.write import write_report
from rulewatch.warehouse.db import make_engine, open_warehouse
from rulewatch.warehouse.runs import ABANDONED_REASON
from rulewatch.warehouse.schema import alert_delivery, check_run, sync_run


class Hanging:
    """A source that takes every request and never answers (until closed)."""

    def __init__(self) -> None:
        self.reached, self.closing = threading.Event(), threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.reached.set()
                outer.closing.wait(120)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def _spawn(env: dict[str, str], *args: str) -> subprocess.Popen:
    """A rulewatch process in its own group, so kill -9 takes its Prefect server with it."""
    return subprocess.Popen(
        rulewatch_cmd(*args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _kill9(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        rulewatch_cmd(*args), env=env, capture_output=True, text=True, timeout=300
    )


def test_kill_9_during_a_sync_heals_on_the_next_run(demo, warehouse_url, tmp_path):
    hanging = Hanging()
    env = child_env(tmp_path, **demo.env(), RULEWATCH_WAREHOUSE_URL=warehouse_url)
    sync = ("sync", "--source", "docreview", "--as-of", DEMO_TODAY.isoformat())
    engine = make_engine(warehouse_url)

    def running_rows() -> list:
        try:
            with engine.connect() as conn:
                return conn.execute(select(sync_run).where(sync_run.c.status == "running")).all()
        except Exception:  # noqa: BLE001 - the tables may not exist yet
            return []

    victim = _spawn({**env, "RULEWATCH_DOCREVIEW_URL": hanging.url}, *sync)
    try:
        poll(lambda: hanging.reached.is_set() or victim.poll() is not None, 240, "the sync")
        assert victim.poll() is None, victim.communicate()[1][-3000:]
        killed = poll(running_rows, 30, "the running sync_run row")[0]
        # check and report while the sync runs: they finish, and leave the live run alone
        during = _run(env, "check", "--period", "2024", "--as-of", DEMO_TODAY.isoformat())
        assert during.returncode == 0, during.stderr[-3000:]
        assert "newest sync running" in during.stdout
        settings = load_settings(env)
        report = write_report(engine, settings, Period.parse("2024"), DEMO_TODAY, tmp_path / "r")
        assert {f.source: f.last_status for f in report.data.freshness}["docreview"] == "running"
        assert victim.poll() is None and running_rows()
        _kill9(victim)
    finally:
        if victim.poll() is None:
            _kill9(victim)
        hanging.close()
    assert running_rows()  # what kill -9 leaves behind

    again = _run(env, *sync)
    assert again.returncode == 0, again.stderr[-3000:]
    with engine.connect() as conn:
        runs = {r.sync_run_id: r for r in conn.execute(select(sync_run)).all()}
        unfinished_checks = conn.execute(
            select(check_run.c.check_run_id).where(check_run.c.finished_at.is_(None))
        ).all()
    engine.dispose()
    assert [r.status for r in runs.values() if r.status == "running"] == []
    assert unfinished_checks == []
    assert runs[killed.sync_run_id].status == "abandoned"
    assert runs[killed.sync_run_id].error == ABANDONED_REASON
    assert sorted(r.status for r in runs.values()) == ["abandoned", "succeeded"]


def test_kill_9_during_an_alert_delivery_is_retried_and_check_shows_it(
    sqlite_url, tmp_path, webhook
):
    settings = load_settings({})
    engine = open_warehouse(sqlite_url, calendar_of(settings))
    slip = TargetCheck(
        "docreview.filing_rate", "2024", date(2024, 5, 20), 0.5, 1, 2, 1.0, "critical",
        "slipped", (Offender("DOC-2024-002", "not filed; deadline 2024-04-04 passed"),), 1,
    )  # fmt: skip
    with engine.begin() as conn:
        (planned,) = plan_alerts(
            conn, [slip], [], [Channel(webhook.url)], reminder_interval=timedelta(days=7)
        )
    env = child_env(tmp_path, RULEWATCH_WAREHOUSE_URL=sqlite_url, RULEWATCH_ALERT_URLS=webhook.url)
    check = ("check", "--period", "2024", "--as-of", "2024-05-20")

    def delivery():
        with engine.connect() as conn:
            return conn.execute(select(alert_delivery)).one()

    webhook.hold = True
    victim = _spawn(env, *check)
    try:
        poll(lambda: webhook.reached.is_set() or victim.poll() is not None, 240, "the delivery")
        assert victim.poll() is None, victim.communicate()[1][-3000:]
        assert delivery().status == "sending"
        _kill9(victim)
    finally:
        if victim.poll() is None:
            _kill9(victim)
    assert delivery().status == "sending"  # what kill -9 leaves behind
    webhook.hold, webhook.up = False, False
    webhook.release.set()

    down = _run(env, *check)
    assert down.returncode == 0, down.stderr[-3000:]
    assert "alert deliveries not sent: 1" in down.stdout
    assert f"failed, will retry -> {Channel(webhook.url).display}: {planned.title}" in down.stdout
    assert "last error: " in down.stdout
    assert delivery().status == "pending"

    webhook.up = True
    up = _run(env, *check)
    assert up.returncode == 0, up.stderr[-3000:]
    assert "alert deliveries: none waiting" in up.stdout
    assert webhook.titles() == [planned.title]  # delivered, once
    assert delivery().status == "sent"
    engine.dispose()


@pytest.mark.prefect_server
def test_a_flow_run_killed_under_serve_is_marked_crashed_and_announced(
    demo, sqlite_url, tmp_path, webhook
):
    """kill -9 of the flow-run process: Prefect's runner marks it Crashed and runs the
    flow's on_crashed hook, which announces it and heals the run left behind."""
    hanging = Hanging()
    env = child_env(
        tmp_path,
        **{**demo.env(), "RULEWATCH_DOCREVIEW_URL": hanging.url},
        RULEWATCH_WAREHOUSE_URL=sqlite_url,
        RULEWATCH_ALERT_URLS=webhook.url,
    )
    holders = tmp_path / "warehouse.db.holders"
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        serve = subprocess.Popen(
            rulewatch_cmd("serve", "--once-now"), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        poll(lambda: hanging.reached.is_set() or serve.poll() is not None, 240, "the run")
        assert serve.poll() is None, log.read_text()[-3000:]
        (lease,) = poll(lambda: list(holders.glob("*")), 30, "the flow run's holder lease")
        flow_run_pid = int(lease.read_text().split()[1])
        assert flow_run_pid != serve.pid
        os.kill(flow_run_pid, signal.SIGKILL)
        crashed = "[rulewatch] 夜间任务 rulewatch-nightly: 失败"  # zh: the default language
        poll(lambda: webhook.titles(crashed), 120, "the crash to be announced")
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)
    finally:
        stop_process(serve)
        hanging.close()
    body = webhook.received[0]["message"]
    assert body.startswith("流程运行 ") and " 以 Crashed 结束：" in body, body
    assert "SIGKILL" in body
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        statuses = conn.execute(select(sync_run.c.source, sync_run.c.status)).all()
    engine.dispose()
    assert ("docreview", "abandoned") in statuses and ("docreview", "running") not in statuses
