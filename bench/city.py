"""A city's night on Prefect workers: one worker against two, and the fixed cost per agency.

Issue 16's benchmark. N demo agencies (``--agencies``) sharing ``--scale``
synthetic records (unevenly, as ``demo_agencies`` shares them) are served by the
demo systems in their own process (``bench/serve.py --agencies``'s twin below:
one server per system, a path per agency). For each worker count (``--workers
1 2``): a fresh PostgreSQL database, ``prefect server start``, ``rulewatch
deploy`` (deployments and concurrency limits), that many ``prefect worker
start`` processes, then two runs of ``rulewatch-nightly/workers``:

- **first night**: every agency loaded from nothing (wall time, from the run's
  creation to its end as Prefect recorded them);
- **quiet night**: the same again with nothing changed anywhere; its wall time
  divided by N is the fixed cost of one agency's night.

No agency fails here (``failing=False``). Results go to ``bench/results/city-<stamp>.json``
and a table on standard output. Prints what it measured, nothing it did not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
POOL = "rulewatch-bench"


def _sources_process(agencies: int, scale: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    code = (
        "import json, sys, yaml\n"
        "from rulewatch.demo.agencies import demo_agencies, start_agency_sources\n"
        f"s = start_agency_sources(demo_agencies({agencies}, scale={scale}, failing=False))\n"
        "print(json.dumps({'env': s.env(), 'config': s.agencies_config()}), flush=True)\n"
        "sys.stdin.read(); s.stop()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())


def _database(name: str) -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _night(api_url: str, timeout: float) -> dict[str, Any]:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    started = time.monotonic()
    with temporary_settings({PREFECT_API_URL: api_url}):
        run = run_deployment(
            "rulewatch-nightly/workers",
            parameters={"as_of": "2024-05-20"},
            timeout=timeout,
            poll_interval=1,
        )
    return {
        "state": run.state.name if run.state else None,
        "message": (run.state.message or "")[:300] if run.state else None,
        "wall_seconds": round(time.monotonic() - started, 1),
        "prefect_seconds": round(run.total_run_time.total_seconds(), 1),
    }


def bench(
    agencies: int, scale: int, workers: int, worker_limit: int, work: Path, sources: dict
) -> dict[str, Any]:
    """One worker count: fresh database and Prefect server, deploy, workers, two nights."""
    from rulewatch.flows.serve import start_local_server

    run_dir = work / f"w{workers}"
    shutil.rmtree(run_dir, ignore_errors=True)
    config = run_dir / "config"
    shutil.copytree(
        REPO / "rulewatch" / "config",
        config,
        ignore=lambda _d, n: [x for x in n if not x.endswith(".yaml")],
    )
    (config / "agencies.yaml").write_text(
        yaml.safe_dump(sources["config"], allow_unicode=True), encoding="utf-8"
    )
    db = f"bench_city_{agencies}_{workers}"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RULEWATCH_", "PREFECT_"))}
    base.update(
        PYTHONPATH=str(REPO),
        PREFECT_HOME=str(run_dir / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        RULEWATCH_DATA_DIR=str(run_dir / "data"),
        RULEWATCH_PII_KEY="bench-key",
        RULEWATCH_CONFIG_DIR=str(config),
        RULEWATCH_WAREHOUSE_URL=_database(db),
        **sources["env"],
    )
    server = start_local_server(
        run_dir / "server", env={**base, "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}
    )
    env = {**base, "PREFECT_API_URL": server.api_url}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        deployed = subprocess.run(
            [sys.executable, "-m", "rulewatch.cli.main", "deploy", "--pool", POOL],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if deployed.returncode != 0:
            raise SystemExit(deployed.stderr)
        for n in range(workers):
            with (run_dir / f"worker-{n}.log").open("w") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL]
                        + ["--limit", str(worker_limit)],
                        env={**env, "PREFECT_WORKER_QUERY_SECONDS": "1"},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        first = _night(server.api_url, 6 * 3600)
        quiet = _night(server.api_url, 6 * 3600)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(60)
        server.stop()
        _drop(db)
    return {
        "agencies": agencies,
        "scale": scale,
        "workers": workers,
        "worker_limit": worker_limit,
        "first_night": first,
        "quiet_night": quiet,
        "quiet_seconds_per_agency": round(quiet["wall_seconds"] / agencies, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agencies", type=int, default=50)
    parser.add_argument("--scale", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--worker-limit",
        type=int,
        default=3,
        help="flow runs one worker runs at once (prefect worker start --limit): the city's "
        "run and that many agencies less one; a worker's capacity, as on a real machine",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-city-"))
    process, sources = _sources_process(args.agencies, args.scale)
    rows = []
    try:
        for count in args.workers:
            rows.append(bench(args.agencies, args.scale, count, args.worker_limit, work, sources))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(60)
    one = next((r for r in rows if r["workers"] == 1), None)
    print(
        f"\n{args.agencies} agencies, {args.scale} records, PostgreSQL, "
        f"--limit {args.worker_limit} per worker"
    )
    print("| workers | first night (s) | speed-up | quiet night (s) | per agency (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        speed = (
            f"{one['first_night']['wall_seconds'] / r['first_night']['wall_seconds']:.2f}x"
            if one
            else ""
        )
        print(
            f"| {r['workers']} | {r['first_night']['wall_seconds']} | {speed} "
            f"| {r['quiet_night']['wall_seconds']} | {r['quiet_seconds_per_agency']} |"
        )
    out = REPO / "bench" / "results" / f"city-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
