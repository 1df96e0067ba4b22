"""One benchmark contender per process: rulewatch, dlt, or the floor.

``python bench/contenders.py NAME --env FILE --db URL ...`` runs one measured
step and prints one JSON line: wall seconds (imports excluded), rows, requests,
peak RSS (``ru_maxrss`` of the process and of any children) and per-phase times.
The orchestrator (``bench/run.py``) starts each step in its own process, so one
contender's memory never counts against another's and the demo servers (another
process again) are never part of what is measured.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests

AS_OF = date(2024, 5, 20)  # the demo's own "today"
#: How long Prefect's temporary server may take to come up on a busy machine (its own
#: default, 20 s, is too short for a first start with a new database under load).
STARTUP_TIMEOUT_S = 300
SYSTEM_STREAMS = {
    "permits": ("permits.applications", "application_id", "updated_at"),
    "enforcement": ("enforcement.inspections", "inspection_no", "modified"),
    "docreview": ("docreview.documents", "doc_id", "last_modified_ms"),
}


def peak_rss_mb() -> float:
    """Peak resident set of this process and its children, in MB (Linux: KiB units)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, kids) / 1024, 1)


# --- the floor: fetch ---------------------------------------------------------------------


def _pages(env: dict[str, str], get: Callable[..., requests.Response]) -> Iterator[tuple[str, Any]]:
    """Every page of every stream at each source's maximum page size, as (stream, records)."""
    from rulewatch.demo.servers import admin_headers

    url = env["RULEWATCH_PERMITS_URL"] + "/api/v1/applications"
    params: dict[str, Any] = {"limit": 500}
    headers = admin_headers("permits")
    while True:
        body = json.loads(get(url, params=params, headers=headers).content)
        yield "permits.applications", body["data"]
        if body["next_cursor"] is None:
            break
        params = {"limit": 500, "cursor": body["next_cursor"]}

    base, headers = env["RULEWATCH_ENFORCEMENT_URL"], admin_headers("enforcement")
    page = 1
    while True:
        response = get(
            f"{base}/api/inspections", params={"page": page, "page_size": 200}, headers=headers
        )
        records = json.loads(response.content)["records"]
        yield "enforcement.inspections", records
        if len(records) < 200:
            break
        page += 1
    officers = json.loads(get(f"{base}/api/officers", headers=headers).content)["officers"]
    yield "enforcement.officers", officers

    next_url: str | None = env["RULEWATCH_DOCREVIEW_URL"] + "/v2/documents?per_page=100"
    headers = admin_headers("docreview")
    while next_url:
        response = get(next_url, headers=headers)
        yield "docreview.documents", json.loads(response.content)
        next_url = response.links.get("next", {}).get("url")


def fetch_floor(env: dict[str, str], keep_alive: bool, dump: Path | None) -> dict[str, Any]:
    """Page through every source with bare ``requests`` + ``json``.

    With ``dump`` it also writes the rows as CSV for the insert floor (an untimed
    preparation step: the measured fetch runs without it).
    """
    session = requests.Session()
    counter = {"requests": 0}

    def get(url: str, **kw: Any) -> requests.Response:
        counter["requests"] += 1
        if keep_alive:
            response = session.get(url, timeout=60, **kw)
        else:  # a fresh connection per request
            kw["headers"] = {**kw.get("headers", {}), "Connection": "close"}
            response = requests.get(url, timeout=60, **kw)
        response.raise_for_status()
        return response

    started = time.perf_counter()
    rows = 0
    out = dump.open("w", newline="", encoding="utf-8") if dump else None
    writer = csv.writer(out) if out else None
    keys = {s: (k, t) for s, k, t in SYSTEM_STREAMS.values()}
    keys["enforcement.officers"] = ("officer_id", "")
    for stream, records in _pages(env, get):
        rows += len(records)
        if writer is not None:
            key, changed = keys[stream]
            writer.writerows(
                (
                    stream,
                    r.get(key),
                    r.get(changed) if changed else None,
                    json.dumps(r, ensure_ascii=False),
                )
                for r in records
            )
    wall = time.perf_counter() - started
    if out:
        out.close()
    return {"wall_s": wall, "rows": rows, "requests": counter["requests"]}


# --- the floor: bulk insert ---------------------------------------------------------------

_FLOOR_DDL = "CREATE TABLE floor_record (stream TEXT NOT NULL, natural_key TEXT, changed_at TEXT, payload TEXT NOT NULL)"


def insert_floor(db_url: str, rows_file: Path) -> dict[str, Any]:
    """Bulk-insert the fetched rows: COPY on PostgreSQL, one executemany transaction on SQLite."""
    rows = 0
    if db_url.startswith("sqlite"):
        import sqlite3

        con = sqlite3.connect(db_url.split("///", 1)[1])
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("DROP TABLE IF EXISTS floor_record")
        con.execute(_FLOOR_DDL)
        con.commit()
        started = time.perf_counter()
        with rows_file.open(newline="", encoding="utf-8") as f, con:
            cur = con.executemany("INSERT INTO floor_record VALUES (?, ?, ?, ?)", csv.reader(f))
            rows = cur.rowcount
        wall = time.perf_counter() - started
        con.close()
    else:
        import psycopg

        dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as con:
            con.execute("DROP TABLE IF EXISTS floor_record")
            con.execute(_FLOOR_DDL)
            con.commit()
            started = time.perf_counter()
            with con.cursor() as cur:
                with (
                    cur.copy("COPY floor_record FROM STDIN (FORMAT csv)") as copy,
                    rows_file.open("rb") as f,
                ):
                    while chunk := f.read(1 << 20):
                        copy.write(chunk)
                rows = cur.rowcount
            con.commit()
            wall = time.perf_counter() - started
    return {"wall_s": wall, "rows": rows}


# --- rulewatch ----------------------------------------------------------------------------


#: The nightly flow's tasks, by the start of their names, and the phase each one is.
TASK_PHASES = {
    "sync-": "extract_load_s",
    "data-quality": "quality_s",
    "compute-metrics": "metrics_s",
    "target-checks": "targets_s",
    "report-tables": "report_tables_s",
    "alerts": "alerts_s",
    "gx-record": "gx_record_wait_s",
}


def _phases(flow_run_id: Any, wall: float) -> dict[str, float]:
    """Per-phase seconds of one flow run, from the task runs Prefect recorded.

    The sources run concurrently, so extract+load is the span from the first
    source task's start to the last one's end. ``other_s`` is the rest of the
    flow's wall time: the job lock, opening the warehouse, and Prefect's own
    work between the tasks.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    spans: dict[str, tuple[float, float]] = {}
    for run in runs:
        phase = next((p for k, p in TASK_PHASES.items() if run.name.startswith(k)), None)
        if phase is None or run.start_time is None or run.end_time is None:
            continue
        begin, end = run.start_time.timestamp(), run.end_time.timestamp()
        if phase in spans:
            begin, end = min(begin, spans[phase][0]), max(end, spans[phase][1])
        spans[phase] = (begin, end)
    phases = {p: round(spans[p][1] - spans[p][0], 3) for p in TASK_PHASES.values() if p in spans}
    # the metrics run beside the target checks: "other" is what no task covered
    covered, reach = 0.0, float("-inf")
    for begin, end in sorted(spans.values()):
        covered += max(0.0, end - max(begin, reach))
        reach = max(reach, end)
    phases["other_s"] = round(wall - covered, 3)
    return phases


def rulewatch_step(env: dict[str, str], db_url: str, runs: int = 1) -> dict[str, Any]:
    """The whole nightly job: the real Prefect flow, its server already up.

    Prefect's temporary server is the one its client would start for the flow
    (the same object); here it is started first and timed on its own
    (``prefect_start_s``), so the job's wall time is the flow alone: the job
    lock, the three sources concurrently, data quality, metrics, target checks,
    report tables and alerts, with Prefect recording every task. Per-phase
    times come from the task runs Prefect recorded. Imports are not timed.

    With ``runs`` > 1 the flow runs again on the same server, and the last run's
    figures come as ``again``: a server that has served a run before, as the one
    ``rulewatch serve`` keeps up is on every night after its first. (A just-started
    server's first flow run pays its own warm-up: about 0.6 s more on this machine.)
    """
    os.environ["RULEWATCH_WAREHOUSE_URL"] = db_url
    import gc

    from prefect.server.api.server import SubprocessASGIServer

    from rulewatch.flows.nightly import NightlyResult, nightly_sync

    gc.freeze()  # as `rulewatch sync` does once the flow's modules are imported
    started = time.perf_counter()
    server = SubprocessASGIServer()
    server.start(timeout=STARTUP_TIMEOUT_S)
    prefect_start = time.perf_counter() - started
    try:
        started = time.perf_counter()
        state = nightly_sync(as_of=AS_OF, return_state=True)
        wall = time.perf_counter() - started
        result = state.result(raise_on_failure=False)
        if not isinstance(result, NightlyResult) or result.failed:
            raise SystemExit(f"the nightly flow did not complete: {state.message}")
        phases = _phases(state.state_details.flow_run_id, wall)
        again: dict[str, Any] = {}
        for _ in range(runs - 1):
            started = time.perf_counter()
            rerun = nightly_sync(as_of=AS_OF, return_state=True)
            rewall = time.perf_counter() - started
            if not rerun.is_completed():
                raise SystemExit(f"the nightly flow did not complete again: {rerun.message}")
            again = {
                "wall_s": rewall,
                "phases": _phases(rerun.state_details.flow_run_id, rewall),
            }
    finally:
        server.stop()
    sources = result.sources.values()
    return {
        "wall_s": wall,
        "prefect_start_s": prefect_start,
        "rows": sum(r.records_read for r in sources),
        "requests": sum(r.requests for r in sources),
        "phases": phases,
        "set_aside": sum(r.records_set_aside for r in sources),
        "metrics": len(result.metrics),
        "quality_rows": result.quality.rows_checked if result.quality else None,
        "target_checks": len(result.targets.checks) if result.targets else None,
        "alerts_planned": len(result.alerts.planned) if result.alerts else None,
        **({"again": again} if again else {}),
    }


def _timed_sync(child: dict[str, str], as_of: date = AS_OF) -> tuple[float, str]:
    """One ``rulewatch sync --as-of as_of`` process with environment ``child``: its wall
    seconds and standard error; exits when the job itself did not run (3, a target
    slipped, did)."""
    import subprocess

    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "rulewatch.cli.main", "sync", "--as-of", as_of.isoformat()],
        env=child,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 3):
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"rulewatch sync exited {proc.returncode}")
    return wall, proc.stderr


def sync_process_step(env: dict[str, str], db_url: str) -> dict[str, Any]:
    """``rulewatch sync`` as an operator runs it: the whole process, Prefect included
    (data folder, Prefect home and PII key: the ones ``bench/run.py`` gives every step)."""
    wall, _ = _timed_sync({**os.environ, **env, "RULEWATCH_WAREHOUSE_URL": db_url})
    return {"wall_s": wall, "rows": 0}


def sync_served_step(env: dict[str, str], db_url: str) -> dict[str, Any]:
    """``rulewatch sync`` as an operator runs it while ``rulewatch serve`` is up: the
    whole process, timed, against the Prefect server ``serve`` starts for the data
    folder (``prefect server start``, its URL in ``<data>/prefect/api-url``), which is
    started first and not timed, as it is up before the night on such a machine.

    Two nights run on that server: the second is the figure (``wall_s``), as on
    ``serve``'s server after its first night, which has served runs before; the first
    (``first_s``) is a just-started server's, its own warm-up included. Both keep the
    as-of date, so the second carries the first's checks and report tables over; a
    third night, the next day (``next_day_s``), has a new date, as the next real night
    does: its figures checked again and recorded by GX, every report period refreshed."""
    from rulewatch.config.settings import load_settings
    from rulewatch.flows.prefect_start import served_api_file
    from rulewatch.flows.serve import start_local_server

    child = {**os.environ, **env, "RULEWATCH_WAREHOUSE_URL": db_url}
    child.pop("PREFECT_API_URL", None)
    api_file = served_api_file(load_settings(child))
    server = start_local_server(api_file.parent, timeout=STARTUP_TIMEOUT_S)
    try:
        api_file.write_text(server.api_url + "\n", encoding="utf-8")
        nights = [_timed_sync(child) for _ in range(2)]
        nights.append(_timed_sync(child, AS_OF + timedelta(days=1)))
    finally:
        api_file.unlink(missing_ok=True)
        server.stop()
    if any("Starting temporary server" in stderr for _, stderr in nights):
        raise SystemExit("rulewatch sync started a temporary server beside serve's")
    return {"wall_s": nights[1][0], "first_s": nights[0][0], "next_day_s": nights[2][0], "rows": 0}


def dlt_process_step(env: dict[str, str], db_url: str, work_dir: Path) -> dict[str, Any]:
    """dlt's run as a whole process, interpreter start and imports included, as
    ``rulewatch sync`` is timed: this file's ``dlt`` step in a child process."""
    import subprocess

    env_file = work_dir / "dlt-process-env.json"
    work_dir.mkdir(parents=True, exist_ok=True)
    env_file.write_text(json.dumps(env))
    cmd = [sys.executable, __file__, "dlt", "--env", str(env_file), "--db", db_url]
    started = time.perf_counter()
    proc = subprocess.run(
        [*cmd, "--work-dir", str(work_dir)], capture_output=True, text=True, env=os.environ
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"the dlt process exited {proc.returncode}")
    inner = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH-RESULT ")]
    rows = json.loads(inner[-1].removeprefix("BENCH-RESULT "))["rows"] if inner else 0
    return {"wall_s": wall, "rows": rows}


def demo_step(work_dir: Path) -> dict[str, Any]:
    """``rulewatch demo`` on a first run: a fresh data folder and Prefect home, Prefect's
    temporary server."""
    import shutil
    import subprocess

    shutil.rmtree(work_dir, ignore_errors=True)
    child = {k: v for k, v in os.environ.items() if not k.startswith("RULEWATCH_")}
    child["RULEWATCH_DATA_DIR"] = str(work_dir)
    child["PREFECT_HOME"] = str(work_dir / "prefect")  # no Prefect database yet either
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "rulewatch.cli.main", "demo"],
        env=child,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 3):
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"rulewatch demo exited {proc.returncode}")
    return {"wall_s": wall, "rows": 0}


def prefect_start_step() -> dict[str, Any]:
    """Prefect's temporary server alone: import, start until healthy (then stopped)."""
    started = time.perf_counter()
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=STARTUP_TIMEOUT_S)
    wall = time.perf_counter() - started
    server.stop()
    return {"wall_s": wall, "rows": 0}


# --- dlt ----------------------------------------------------------------------------------


def dlt_step(env: dict[str, str], db_url: str, work_dir: Path) -> dict[str, Any]:
    """dlt's ``rest_api`` source for the three contracts, merge on the natural keys."""
    import dlt
    from dlt.sources.helpers.rest_client.auth import APIKeyAuth, BearerTokenAuth, HttpBasicAuth
    from dlt.sources.helpers.rest_client.paginators import (
        HeaderLinkPaginator,
        JSONResponseCursorPaginator,
        PageNumberPaginator,
        SinglePagePaginator,
    )
    from dlt.sources.rest_api import rest_api_source

    permits = rest_api_source(
        {
            "client": {
                "base_url": env["RULEWATCH_PERMITS_URL"],
                "auth": BearerTokenAuth(env["RULEWATCH_PERMITS_TOKEN"]),
            },
            "resources": [
                {
                    "name": "permit_application",
                    "primary_key": "application_id",
                    "write_disposition": "merge",
                    "endpoint": {
                        "path": "/api/v1/applications",
                        "data_selector": "data",
                        "params": {
                            "limit": 500,
                            "updated_since": {
                                "type": "incremental",
                                "cursor_path": "updated_at",
                                "initial_value": "1970-01-01T00:00:00+00:00",
                            },
                        },
                        "paginator": JSONResponseCursorPaginator(
                            cursor_path="next_cursor", cursor_param="cursor"
                        ),
                    },
                }
            ],
        },
        name="permits",
    )
    enforcement = rest_api_source(
        {
            "client": {
                "base_url": env["RULEWATCH_ENFORCEMENT_URL"],
                "auth": APIKeyAuth(
                    name="X-Api-Key",
                    api_key=env["RULEWATCH_ENFORCEMENT_API_KEY"],
                    location="header",
                ),
            },
            "resources": [
                {
                    "name": "inspection",
                    "primary_key": "inspection_no",
                    "write_disposition": "merge",
                    "endpoint": {
                        "path": "/api/inspections",
                        "data_selector": "records",
                        "params": {
                            "page_size": 200,
                            "modified_after": {
                                "type": "incremental",
                                "cursor_path": "modified",
                                "initial_value": "1970-01-01 00:00:00",
                            },
                        },
                        "paginator": PageNumberPaginator(
                            base_page=1,
                            page_param="page",
                            total_path=None,
                            stop_after_empty_page=True,
                        ),
                    },
                },
                {
                    "name": "officer",
                    "primary_key": "officer_id",
                    "write_disposition": "merge",
                    "endpoint": {
                        "path": "/api/officers",
                        "data_selector": "officers",
                        "paginator": SinglePagePaginator(),
                    },
                },
            ],
        },
        name="enforcement",
    )
    docreview = rest_api_source(
        {
            "client": {
                "base_url": env["RULEWATCH_DOCREVIEW_URL"],
                "auth": HttpBasicAuth(
                    env["RULEWATCH_DOCREVIEW_USER"], env["RULEWATCH_DOCREVIEW_PASSWORD"]
                ),
            },
            "resources": [
                {
                    "name": "document",
                    "primary_key": "doc_id",
                    "write_disposition": "merge",
                    "endpoint": {
                        "path": "/v2/documents",
                        "data_selector": "$",
                        "params": {
                            "per_page": 100,
                            "since": {
                                "type": "incremental",
                                "cursor_path": "last_modified_ms",
                                "initial_value": 0,
                            },
                        },
                        "paginator": HeaderLinkPaginator(),
                    },
                }
            ],
        },
        name="docreview",
    )
    if db_url.startswith("sqlite"):
        destination = dlt.destinations.sqlalchemy(credentials=db_url)
    else:
        # dlt insists on a password; the benchmark server trusts local connections
        dsn = db_url.replace("postgresql+psycopg://postgres@", "postgresql://postgres:bench@")
        destination = dlt.destinations.postgres(credentials=dsn)
    pipeline = dlt.pipeline(
        pipeline_name="bench",
        pipelines_dir=str(work_dir / "dlt_pipelines"),
        destination=destination,
        dataset_name="dlt_bench",
    )
    started = time.perf_counter()
    rows = 0
    for source in (permits, enforcement, docreview):
        pipeline.run(source)
        rows += sum(
            n
            for t, n in pipeline.last_trace.last_normalize_info.row_counts.items()
            if not t.startswith("_dlt") and "__" not in t
        )
    wall = time.perf_counter() - started
    return {"wall_s": wall, "rows": rows}


# --- entry --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "step",
        choices=[
            "fetch-keepalive",
            "fetch-no-keepalive",
            "dump-rows",
            "insert",
            "rulewatch",
            "dlt",
            "dlt-process",
            "sync-process",
            "sync-served",
            "demo",
            "prefect-start",
        ],
    )
    parser.add_argument(
        "--env", type=Path, required=True, help="JSON file of RULEWATCH_* variables"
    )
    parser.add_argument("--db", default="", help="SQLAlchemy URL of the warehouse")
    parser.add_argument("--rows-file", type=Path, help="CSV of the fetched rows (floor)")
    parser.add_argument("--work-dir", type=Path, default=Path("."))
    parser.add_argument("--runs", type=int, default=1, help="rulewatch: flow runs on one server")
    args = parser.parse_args()
    env = json.loads(args.env.read_text())
    os.environ.update(env)
    if args.step.startswith("fetch"):
        out = fetch_floor(env, args.step == "fetch-keepalive", None)
    elif args.step == "dump-rows":
        out = fetch_floor(env, True, args.rows_file)
    elif args.step == "insert":
        out = insert_floor(args.db, args.rows_file)
    elif args.step == "rulewatch":
        out = rulewatch_step(env, args.db, args.runs)
    elif args.step == "sync-process":
        out = sync_process_step(env, args.db)
    elif args.step == "sync-served":
        out = sync_served_step(env, args.db)
    elif args.step == "demo":
        out = demo_step(args.work_dir)
    elif args.step == "prefect-start":
        out = prefect_start_step()
    elif args.step == "dlt-process":
        out = dlt_process_step(env, args.db, args.work_dir)
    else:
        out = dlt_step(env, args.db, args.work_dir)
    out["peak_rss_mb"] = peak_rss_mb()
    print("BENCH-RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
