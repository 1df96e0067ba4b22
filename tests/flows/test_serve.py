"""`rulewatch serve`: its own Prefect server, the schedule from config, a run now, a clean stop."""

from __future__ import annotations

import re
import signal
import socket
import subprocess

import pytest
import requests
from flows_support import child_env, poll, processes_with_env, rulewatch_cmd, stop_process
from sqlalchemy import create_engine, func, select

from rulewatch.flows.serve import PrefectServerError, start_local_server
from rulewatch.warehouse.schema import sync_run


def _runs(api: str, *states: str) -> list[dict]:
    body = {"flow_runs": {"state": {"type": {"any_": list(states)}}}}
    return requests.post(f"{api}/flow_runs/filter", json=body, timeout=10).json()


def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PrefectServerError, match=rf"\(port {port}\); see .*server\.log"):
            start_local_server(tmp_path / "home", port=port, env=child_env(tmp_path), timeout=60)


@pytest.mark.prefect_server
def test_serve_once_now_runs_on_its_own_server_and_stops_it(demo, sqlite_url, tmp_path):
    env = child_env(tmp_path, RULEWATCH_WAREHOUSE_URL=sqlite_url, **demo.env())
    env["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = "1"  # the server inherits it
    server_home = tmp_path / "data" / "prefect"  # settings.data_dir / "prefect"
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        serve = subprocess.Popen(
            rulewatch_cmd("serve", "--once-now"), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        ui = poll(
            lambda: (
                re.search(r"Prefect UI: (http://127\.0\.0\.1:\d+)", log.read_text())
                or serve.poll() is not None
            ),
            180,
            "serve to start its Prefect server",
        )
        assert serve.poll() is None, log.read_text()[-3000:]
        api = f"{ui.group(1)}/api"

        runs = poll(
            lambda: _runs(api, "COMPLETED", "FAILED", "CRASHED"),
            180,
            "the run triggered by --once-now",
        )
        assert [r["state_type"] for r in runs] == ["COMPLETED"], log.read_text()[-3000:]
        deployment = requests.get(f"{api}/deployments/name/rulewatch-nightly/serve", timeout=10)
        schedule = deployment.json()["schedules"][0]["schedule"]
        assert (schedule["cron"], schedule["timezone"]) == ("0 2 * * *", "Asia/Shanghai")
        assert runs[0]["deployment_id"] == deployment.json()["id"]
        scheduled = poll(lambda: _runs(api, "SCHEDULED"), 60, "Prefect's scheduler")
        assert {r["expected_start_time"][11:] for r in scheduled} == {"18:00:00Z"}  # 02:00 +08

        # A plain sync of the same data folder records its run on serve's server
        # rather than starting Prefect's temporary one.
        assert (server_home / "api-url").read_text().strip() == api
        sync = subprocess.run(
            rulewatch_cmd("sync"), env=env, capture_output=True, text=True, timeout=300
        )
        assert sync.returncode == 0, sync.stderr[-3000:]
        assert "temporary server" not in sync.stderr
        done = _runs(api, "COMPLETED", "FAILED", "CRASHED")
        assert [r["state_type"] for r in done] == ["COMPLETED", "COMPLETED"]
        assert len({r["flow_id"] for r in done}) == 1  # the same flow: rulewatch-nightly

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) == 0, log.read_text()[-3000:]
    finally:
        stop_process(serve)
    output = log.read_text()
    assert "stopping the local Prefect server" in output
    assert not (server_home / "api-url").exists()  # a later sync starts its own again
    assert processes_with_env("PREFECT_HOME", str(server_home)) == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{api}/health", timeout=5)

    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        statuses = conn.execute(select(sync_run.c.status, func.count()).group_by(sync_run.c.status))
        assert dict(statuses.all()) == {"succeeded": 6}  # serve's run, then the sync's
    engine.dispose()
