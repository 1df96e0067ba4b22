"""Issue 16, done when: a city of three agencies on a real Prefect server and two workers.

Three demo agencies served by real HTTP demo systems (one server per system, a path
per agency; the last agency's enforcement system answers every request with a 5xx),
a PostgreSQL warehouse, ``prefect server start``, a ``process`` work pool with two
``prefect worker start`` processes (two flow runs each: the city's run and its three
agency runs need both), the deployments and concurrency limits made by ``rulewatch
deploy``, and the city's nightly run through the server. Then:

- each agency's ``kpis --json`` equals what a one-agency SQLite warehouse gives,
  loaded by ``rulewatch sync`` from the same agency's systems (``single_env``);
- the rollup's numerators and denominators are the agencies' sums;
- the failing agency fails alone: its run is the failed one, the parent names it,
  the others' figures are their own and their channels got no source alert; the
  supervisor's one digest names it, and why;
- the backfill deployment recomputes every agency's days, and the rollup's.

One test, the servers shared: it is the suite's slowest.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_support import run_rulewatch
from flows_support import child_env, processes_with_env, stop_process
from receivers import Webhook
from sqlalchemy import create_engine, distinct, func, select

from rulewatch.config.settings import PACKAGE_CONFIG_DIR
from rulewatch.demo.agencies import demo_agencies, start_agency_sources
from rulewatch.demo.data import DEMO_TODAY
from rulewatch.flows.limits import WAREHOUSE_LIMIT, source_limit
from rulewatch.flows.serve import start_local_server
from rulewatch.warehouse.schema import report_metric

pytestmark = [pytest.mark.postgres, pytest.mark.prefect_server]
POOL = "rulewatch-city"
PERIOD = str(DEMO_TODAY.year)


def _config(folder: Path, agencies: dict | None) -> Path:
    """The package's YAML files, a failing source given up on quickly, and ``agencies``."""
    shutil.copytree(
        PACKAGE_CONFIG_DIR,
        folder,
        ignore=lambda _d, names: [n for n in names if not n.endswith(".yaml")],
    )
    schedule = yaml.safe_load((folder / "schedule.yaml").read_text(encoding="utf-8"))
    schedule["retries"]["source_task"] = 0
    (folder / "schedule.yaml").write_text(yaml.safe_dump(schedule), encoding="utf-8")
    sources = yaml.safe_load((folder / "sources.yaml").read_text(encoding="utf-8"))
    sources["enforcement"].update(max_retries=1, backoff_factor=0)
    (folder / "sources.yaml").write_text(yaml.safe_dump(sources), encoding="utf-8")
    if agencies is not None:
        (folder / "agencies.yaml").write_text(
            yaml.safe_dump(agencies, allow_unicode=True), encoding="utf-8"
        )
    return folder


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _kpis(env: dict[str, str], *agency: str) -> list[dict]:
    done = run_rulewatch(
        env, "kpis", "--period", PERIOD, "--as-of", DEMO_TODAY.isoformat(), "--json", *agency
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_a_city_night_on_two_workers_matches_each_agency_alone(pg_url, tmp_path):
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    agencies = demo_agencies(3)
    ok_ids = [a.agency_id for a in agencies[:-1]]
    failing = agencies[-1].agency_id
    hooks = {a.agency_id: Webhook() for a in agencies}
    supervisor = Webhook()
    server = workers = None
    with start_agency_sources(agencies) as sources:
        try:
            city = sources.agencies_config()
            city["supervisor"]["alerts"] = {"urls": [supervisor.url], "language": "en"}
            for item in city["agencies"]:
                item["alerts"] = {"urls": [hooks[item["id"]].url]}
            city_config = _config(tmp_path / "city-config", city)
            base = child_env(tmp_path)
            server_home = tmp_path / "server"
            server = start_local_server(
                server_home, env={**base, "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}
            )
            api = {**base, "PREFECT_API_URL": server.api_url}
            city_env = {
                **api,
                **sources.env(),
                "RULEWATCH_CONFIG_DIR": str(city_config),
                "RULEWATCH_WAREHOUSE_URL": pg_url,
            }

            deployed = run_rulewatch(city_env, "deploy", "--pool", POOL, timeout=180)
            assert deployed.returncode == 0, deployed.stderr[-3000:]
            for name in (
                "rulewatch-nightly/workers",
                "rulewatch-agency-nightly/workers",
                "rulewatch-backfill/workers",
            ):
                assert f"deployment {name} on work pool {POOL}" in deployed.stdout
            for system in ("permits", "enforcement", "docreview"):
                host = source_limit(sources.base_url(failing, system))
                assert f"concurrency limit {host}: 4 at once" in deployed.stdout
            assert f"concurrency limit {WAREHOUSE_LIMIT}: 8 at once" in deployed.stdout

            logs = [tmp_path / f"worker-{n}.log" for n in (1, 2)]
            workers = []
            for log_path in logs:
                with log_path.open("w") as log:
                    workers.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "prefect", "worker", "start"]
                            + ["--pool", POOL, "--limit", "2"],
                            env={**city_env, "PREFECT_WORKER_QUERY_SECONDS": "1"},
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )

            # meanwhile, each agency alone in its own SQLite warehouse, by `rulewatch sync`
            single_config = _config(tmp_path / "single-config", None)
            singles = {}
            for agency in agencies:
                folder = tmp_path / f"single-{agency.agency_id}"
                singles[agency.agency_id] = {
                    **api,
                    **sources.single_env(agency.agency_id),
                    "RULEWATCH_CONFIG_DIR": str(single_config),
                    "RULEWATCH_DATA_DIR": str(folder),
                    "RULEWATCH_WAREHOUSE_URL": f"sqlite:///{folder / 'warehouse.db'}",
                }
            alone = {
                agency_id: subprocess.Popen(
                    [sys.executable, "-m", "rulewatch.cli.main", "sync"]
                    + ["--as-of", DEMO_TODAY.isoformat()],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for agency_id, env in singles.items()
            }

            with temporary_settings({PREFECT_API_URL: server.api_url}):
                night = run_deployment(
                    "rulewatch-nightly/workers",
                    parameters={"as_of": DEMO_TODAY.isoformat()},
                    timeout=900,
                    poll_interval=1,
                )
            worker_logs = "\n".join(_tail(p) for p in logs)
            assert night.state.is_failed(), f"{night.state!r}\n{worker_logs}"
            assert f"failed for agencies: {failing} (" in night.state.message
            for agency_id in ok_ids:
                assert agency_id not in night.state.message

            with temporary_settings({PREFECT_API_URL: server.api_url}):
                backfill = run_deployment(
                    "rulewatch-backfill/workers",
                    parameters={"start": "2024-05-18", "end": "2024-05-19"},
                    timeout=600,
                    poll_interval=1,
                )
            assert backfill.state.is_completed(), f"{backfill.state!r}\n{worker_logs}"

            for agency_id, process in alone.items():
                _, stderr = process.communicate(timeout=600)
                assert process.returncode == (1 if agency_id == failing else 0), stderr[-3000:]
        finally:
            for worker in workers or []:
                stop_process(worker)
            if server is not None:
                server.stop()
            for hook in (*hooks.values(), supervisor):
                hook.close()

    assert processes_with_env("PREFECT_HOME", str(server_home)) == []
    # both workers ran flow runs: four runs at two per worker cannot go to one
    for log_path in logs:
        assert "submitted to infrastructure" in log_path.read_text(), _tail(log_path)

    every = _kpis(city_env, "--agency", "all")
    by_agency: dict[str, list[dict]] = {}
    for item in every:
        by_agency.setdefault(item.pop("agency"), []).append(item)
    assert list(by_agency) == [*ok_ids, failing, "all"]
    for agency_id, env in singles.items():
        assert by_agency[agency_id] == _kpis(env), agency_id
    for rolled in by_agency["all"]:
        parts = [next(m for m in by_agency[a] if m["metric"] == rolled["metric"]) for a in singles]
        if rolled.get("denominator") is not None:
            assert rolled["numerator"] == sum(p["numerator"] for p in parts), rolled
            assert rolled["denominator"] == sum(p["denominator"] for p in parts), rolled

    engine = create_engine(pg_url)  # the backfill wrote every agency's days and the rollup's
    with engine.connect() as conn:
        days = conn.execute(
            select(report_metric.c.agency_id, func.count(distinct(report_metric.c.as_of)))
            .where(report_metric.c.computed_by == "backfill", report_metric.c.period == PERIOD)
            .group_by(report_metric.c.agency_id)
        ).all()
    engine.dispose()
    assert dict(days) == dict.fromkeys([*ok_ids, failing, "all"], 2)

    failure_titles = hooks[failing].titles("enforcement")
    assert failure_titles, hooks[failing].received
    for agency_id in ok_ids:
        titles = hooks[agency_id].titles()
        assert not [t for t in titles if "enforcement" in t and "slipped" not in t], titles
    assert len(supervisor.received) == 1, supervisor.received
    digest = supervisor.received[0]
    named = [line for line in digest["message"].splitlines() if f"({failing})" in line]
    assert any("enforcement" in line for line in named), digest  # failed, and why
    for agency in agencies:  # every agency in the one digest, the failed one said to be
        assert agency.name_en in digest["message"]
    print("digest as received:\n" + digest["title"] + "\n" + digest["message"])
