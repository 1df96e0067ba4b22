"""End to end on Prefect's own engine: server, process work pool, worker, deployments.

`prefect server start` on a free loopback port (its own home), `rulewatch deploy`
onto a new process pool, `prefect worker start` on that pool, then runs of the
nightly and backfill deployments against the demo sources into a fresh
PostgreSQL schema. The permits token reaches the run only through a Prefect
Secret block, so the test also shows that wiring. Everything is stopped after.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from flows_support import child_env, processes_with_env, rulewatch_cmd, stop_process
from sqlalchemy import create_engine, func, select

from rulewatch.common.periods import Period
from rulewatch.config.settings import load_settings
from rulewatch.demo.data import DEMO_PERMITS_TOKEN, DEMO_TODAY
from rulewatch.flows.serve import start_local_server
from rulewatch.metrics.compute import compute_metrics
from rulewatch.warehouse.schema import sync_run

pytestmark = [pytest.mark.postgres, pytest.mark.prefect_server]
POOL = "rulewatch-e2e"


def _tail(path, lines: int = 40) -> str:  # noqa: ANN001 - a Path
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def test_a_worker_runs_the_deployed_flows_into_postgres(demo, pg_url, tmp_path):
    from prefect.blocks.system import Secret
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    started = time.monotonic()
    env = child_env(tmp_path)
    server_home = tmp_path / "server"
    server = start_local_server(
        server_home, env={**env, "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}
    )
    worker = None
    worker_log = tmp_path / "worker.log"
    try:
        api = {**env, "PREFECT_API_URL": server.api_url}
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            Secret(value=DEMO_PERMITS_TOKEN).save("rulewatch-permits-token")

        deployed = subprocess.run(
            rulewatch_cmd("deploy", "--pool", POOL),
            env=api,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        assert "rulewatch-nightly/workers" in deployed.stdout
        assert f"prefect worker start --pool {POOL}" in deployed.stdout

        sources = {k: v for k, v in demo.env().items() if k != "RULEWATCH_PERMITS_TOKEN"}
        with worker_log.open("w") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL],
                env={
                    **api,
                    **sources,
                    "RULEWATCH_WAREHOUSE_URL": pg_url,
                    "PREFECT_WORKER_QUERY_SECONDS": "1",
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        with temporary_settings({PREFECT_API_URL: server.api_url}):
            nightly = run_deployment(
                "rulewatch-nightly/workers",
                parameters={"as_of": DEMO_TODAY.isoformat()},
                timeout=240,
                poll_interval=1,
            )
            assert nightly.state.is_completed(), f"{nightly.state!r}\n{_tail(worker_log)}"
            backfill = run_deployment(
                "rulewatch-backfill/workers",
                parameters={"start": "2023-12-30", "end": "2024-01-02"},
                timeout=240,
                poll_interval=1,
            )
            assert backfill.state.is_completed(), f"{backfill.state!r}\n{_tail(worker_log)}"
        assert "backfill 2023-12-30..2024-01-02: 4 days recomputed" in worker_log.read_text()
    finally:
        if worker is not None:
            stop_process(worker)
        server.stop()
    assert processes_with_env("PREFECT_HOME", str(server_home)) == []
    assert not server.is_healthy()

    engine = create_engine(pg_url)
    with engine.connect() as conn:
        statuses = conn.execute(select(sync_run.c.status, func.count()).group_by(sync_run.c.status))
        assert dict(statuses.all()) == {"succeeded": 3}
        settings = load_settings({"RULEWATCH_PII_KEY": "x"})
        metrics = compute_metrics(conn, Period.parse("2023"), DEMO_TODAY, settings.targets)
    engine.dispose()
    by_id = {m.metric: m.value for m in metrics}
    assert (by_id["permits.received"], by_id["permits.approved"], by_id["permits.denied"]) == (
        606,
        593,
        13,
    )
    print(f"server + worker end to end: {time.monotonic() - started:.1f}s")
