"""rulewatch against dlt and against the floor, on SQLite and PostgreSQL, in one run.

    python bench/run.py --scale 100000,1000000 --db sqlite,postgresql

Prints issue 15's targets with met / missed, side by side for every scale and
database, and writes them to ``bench/results/<timestamp>.json`` (rewritten
after every step, so an interrupted run keeps what it measured).

For each scale the demo source systems run in their own process (``bench/serve.py``)
and every measured step runs in a fresh process of its own (``bench/contenders.py``),
so each peak RSS is that contender's alone. Once per run: ``rulewatch demo`` on a
first run, and Prefect's temporary server started alone (first and warm start).
Per scale and database:

1. the floor: a bare ``requests`` + ``json`` fetch of every page and a bare bulk
   insert of the same rows (COPY / one executemany);
2. full loads from empty: rulewatch's nightly flow (its Prefect server started
   first and timed apart; per-phase times from the task runs Prefect recorded)
   and dlt's ``rest_api`` source (merge on the natural keys);
3. nothing changed: the nightly flow again, the whole ``rulewatch sync`` process
   twice (with a temporary Prefect server, its start-up included, as info; then
   with the server ``rulewatch serve`` runs already up, target 3's ratio) and dlt
   again, in this process and as a whole process of its own (interpreter and
   imports included, like ``rulewatch sync``: info).

``--extras`` adds what no target needs: the fetch without keep-alive, and 1% of
the records re-versioned followed by both incremental loads. dlt is an optional
extra (``pip install -e ".[bench]"``); without it its rows are skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SYSTEM_URL_VARS = {
    "permits": "RULEWATCH_PERMITS_URL",
    "enforcement": "RULEWATCH_ENFORCEMENT_URL",
    "docreview": "RULEWATCH_DOCREVIEW_URL",
}
#: "A few seconds" for the report-table refresh and the alerts together (issue 15, target 2).
#: The scale at which issue 15 sets the checks' share of extract+load (target 2).
CHECKS_SHARE_SCALE = 1_000_000
TABLES_AND_ALERTS_MAX_S = 3.0
#: Target 3's process ratio: the server ``rulewatch serve`` runs (or PREFECT_API_URL) is up,
#: as on a machine that runs the nights on their schedule; a temporary server is info.
SERVED_RATIO = (
    "no-change `rulewatch sync` process, the server of `rulewatch serve` "
    "(or PREFECT_API_URL) up and past its first night / dlt no change"
)
SERVED_NEXT_DAY = (
    "no-change `rulewatch sync` process, serve's server up, the next day (a new as-of "
    "date: the checks run and recorded again, every report period refreshed)"
)
SERVED_SECONDS = (
    "no-change `rulewatch sync` process, the server of `rulewatch serve` "
    "(or PREFECT_API_URL) up and past its first night"
)
SERVED_FIRST = (
    "no-change `rulewatch sync` process, the first night on a just-started server "
    "of `rulewatch serve` (its warm-up included)"
)
console = Console(stderr=True)


@dataclass
class Servers:
    """The demo source systems in their own process."""

    process: subprocess.Popen
    env: dict[str, str]

    def requests_so_far(self) -> int:
        from rulewatch.demo.servers import admin_headers

        total = 0
        for system, var in SYSTEM_URL_VARS.items():
            url = self.env[var] + "/_demo/stats"
            total += requests.get(url, headers=admin_headers(system), timeout=30).json()["requests"]
        return total

    def touch(self, fraction: float) -> int:
        from rulewatch.demo.servers import touch_remote

        return sum(touch_remote(self.env[v], s, fraction) for s, v in SYSTEM_URL_VARS.items())

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(30)


def start_servers(scale: int, log: Path) -> Servers:
    process = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "serve.py"), "--scale", str(scale)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    if not line:
        raise SystemExit(f"rulewatch: error: the demo servers did not start; see {log}")
    return Servers(process, json.loads(line)["env"])


#: Databases of this run are named ``bench_<pid>_...``: two runs on one server (several
#: people benchmarking on one machine) must never drop each other's databases.
RUN_TAG = f"bench_{os.getpid()}"


def fresh_database(db: str, name: str, work: Path) -> str:
    """An empty database for one contender, as a SQLAlchemy URL (``name`` is this
    run's: see ``RUN_TAG``)."""
    if db == "sqlite":
        path = work / f"{name}.db"
        # dlt's SQLite destination keeps each dataset in an attached file beside the main one
        for old in [path, *work.glob(f"{name}__*.db")]:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{old}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_databases(dbs: list[str]) -> None:
    """Remove this run's databases (its SQLite files stay in the scratch folder)."""
    if "postgresql" not in dbs:
        return
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        names = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{RUN_TAG}\\_%",)
        ).fetchall()
        for (name,) in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run_step(step: str, work: Path, label: str, timeout: float, **opts: Any) -> dict[str, Any]:
    """Run one contender step in its own process and return its BENCH-RESULT.

    Every step shares one Prefect home and one PII key in the scratch folder, so
    nothing of the user's own Prefect or rulewatch set-up is read or written.
    """
    cmd = [sys.executable, str(BENCH_DIR / "contenders.py"), step, "--env", str(work / "env.json")]
    for key, value in opts.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    log = work / f"{label}.log"
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {label} …")
    started = time.perf_counter()
    env = {
        **os.environ,
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "RUNTIME__LOG_LEVEL": "WARNING",
        "PREFECT_HOME": str(work / "prefect"),
        "RULEWATCH_DATA_DIR": str(work / "data"),
        "RULEWATCH_PII_KEY": "bench",
        "DO_NOT_TRACK": "1",  # as the rulewatch command sets it: no Prefect telemetry
    }
    with log.open("w") as err:
        try:
            proc = subprocess.run(
                cmd, stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout, env=env
            )
        except subprocess.TimeoutExpired:
            console.print(f"[red]{label} passed its {timeout:.0f} s limit; see {log}")
            return {"error": f"over {timeout:.0f} s, see {log}"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH-RESULT ")]
    if proc.returncode != 0 or not lines:
        console.print(f"[red]{label} failed (exit {proc.returncode}); see {log}")
        return {"error": f"exit {proc.returncode}, see {log}"}
    out = json.loads(lines[-1].removeprefix("BENCH-RESULT "))
    out["process_s"] = time.perf_counter() - started
    console.print(
        f"[dim]   {out['wall_s']:.1f}s, {out.get('rows', 0)} rows, {out['peak_rss_mb']} MB"
    )
    return out


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in (
        "prefect",
        "great_expectations",
        "dlt",
        "sqlalchemy",
        "psycopg",
        "pandas",
        "requests",
    ):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _postgresql_version() -> str:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=5) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])
    except psycopg.Error as exc:
        return f"unreachable ({type(exc).__name__})"


def machine() -> dict[str, Any]:
    """The machine the figures come from: CPU, cores, memory, versions, load now."""
    cpu, mem_kb = "", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "postgresql": _postgresql_version(),
        "versions": _versions(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


@dataclass
class Results:
    """Every measured row of the run, saved after each one."""

    path: Path
    meta: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False

    def add(self, row: dict[str, Any]) -> dict[str, Any]:
        self.rows.append(row)
        self.save()
        return row

    def save(self) -> None:
        self.path.parent.mkdir(exist_ok=True)
        body = {**self.meta, "complete": self.complete, "results": self.rows}
        body["targets"] = self.targets
        self.path.write_text(json.dumps(body, indent=2) + "\n")


def bench_once(work: Path, results: Results) -> None:
    """Timings that do not depend on the scale: ``rulewatch demo`` on a first run (fresh
    data folder and Prefect home), and Prefect's temporary server alone, first on a
    new Prefect home (its database created) and then warm, as on any later night."""
    env_file = work / "env.json"
    if not env_file.exists():
        env_file.write_text("{}")
    demo = run_step("demo", work, "demo", 900, work_dir=work / "demo-data")
    results.add(
        {"scale": 0, "db": "sqlite", "contender": "rulewatch demo", "step": "first run", **demo}
    )
    shutil.rmtree(work / "prefect", ignore_errors=True)
    for step in ("first start", "warm start"):
        result = run_step("prefect-start", work, f"prefect-{step.split()[0]}", 300)
        results.add({"scale": 0, "db": "-", "contender": "Prefect server", "step": step, **result})


def bench_scale(
    scale: int,
    dbs: list[str],
    work: Path,
    results: Results,
    *,
    with_dlt: bool,
    dlt_max: int,
    extras: bool,
) -> None:
    """Every contender at one scale, on each database, in the order the targets need."""
    timeout = 600 + scale / 250  # generous: ~1.1 h per step at 1M

    def record(db: str, contender: str, step: str, result: dict[str, Any]) -> dict[str, Any]:
        entry = {"scale": scale, "db": db, "contender": contender, "step": step, **result}
        if result.get("wall_s") and result.get("rows"):
            entry["rows_per_s"] = round(result["rows"] / result["wall_s"])
        return results.add(entry)

    def step(where: str, contender: str, name: str, kind: str, label: str, **opts: Any) -> dict:
        """Run contender step ``kind`` on database ``where`` and record it as ``name``."""
        result = run_step(kind, work, f"{scale}-{label}", timeout, **opts)
        return record(where, contender, name, result)

    console.rule(f"scale {scale:,}")
    servers = start_servers(scale, work / f"servers-{scale}.log")
    try:
        (work / "env.json").write_text(json.dumps(servers.env))
        step("-", "floor", "fetch keep-alive", "fetch-keepalive", "fetch-ka")
        if extras:
            step("-", "floor", "fetch no keep-alive", "fetch-no-keepalive", "fetch-nka")
        rows_file = work / f"rows-{scale}.csv"
        run_step("dump-rows", work, f"{scale}-dump-rows", timeout, rows_file=rows_file)
        run_dlt = with_dlt and scale <= dlt_max
        urls: dict[str, dict[str, str]] = {}
        for db in dbs:
            url = fresh_database(db, f"{RUN_TAG}_floor", work)
            step(db, "floor", "bulk insert", "insert", f"{db}-insert", db=url, rows_file=rows_file)
            urls[db] = {"rulewatch": fresh_database(db, f"{RUN_TAG}_rw_{db}", work)}
            step(db, "rulewatch", "full", "rulewatch", f"{db}-rw-full", db=urls[db]["rulewatch"])
            if run_dlt:
                urls[db]["dlt"] = fresh_database(db, f"{RUN_TAG}_dlt_{db}", work)
                shutil.rmtree(work / f"dlt-{db}", ignore_errors=True)
                step(
                    db,
                    "dlt",
                    "full",
                    "dlt",
                    f"{db}-dlt-full",
                    db=urls[db]["dlt"],
                    work_dir=work / f"dlt-{db}",
                )
        rows_file.unlink(missing_ok=True)
        if extras:
            touched = servers.touch(0.01)
            console.print(f"touched {touched:,} records (1%)")
            for db in dbs:
                step(
                    db,
                    "rulewatch",
                    "incremental 1%",
                    "rulewatch",
                    f"{db}-rw-incr",
                    db=urls[db]["rulewatch"],
                )
                if run_dlt:
                    step(
                        db,
                        "dlt",
                        "incremental 1%",
                        "dlt",
                        f"{db}-dlt-incr",
                        db=urls[db]["dlt"],
                        work_dir=work / f"dlt-{db}",
                    )
        for db in dbs:
            before = servers.requests_so_far()
            entry = step(
                db,
                "rulewatch",
                "no change",
                "rulewatch",
                f"{db}-rw-none",
                db=urls[db]["rulewatch"],
                runs=2,  # then again on the same server, as serve's is after its first night
            )
            entry["server_requests"] = servers.requests_so_far() - before
            step(
                db,
                "rulewatch sync (process)",
                "no change",
                "sync-process",
                f"{db}-sync-none",
                db=urls[db]["rulewatch"],
            )
            step(
                db,
                "rulewatch sync (process, serve's server up)",
                "no change",
                "sync-served",
                f"{db}-sync-served-none",
                db=urls[db]["rulewatch"],
            )
            if run_dlt:
                step(
                    db,
                    "dlt",
                    "no change",
                    "dlt",
                    f"{db}-dlt-none",
                    db=urls[db]["dlt"],
                    work_dir=work / f"dlt-{db}",
                )
                step(
                    db,
                    "dlt (process)",
                    "no change",
                    "dlt-process",
                    f"{db}-dlt-process-none",
                    db=urls[db]["dlt"],
                    work_dir=work / f"dlt-{db}",
                )
        if with_dlt and not run_dlt:
            console.print(f"[yellow]dlt skipped at scale {scale:,} (--dlt-max-scale {dlt_max:,})")
    finally:
        servers.stop()
    results.save()


def _find(rows: list[dict], **match: Any) -> dict[str, Any] | None:
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()) and "error" not in r:
            return r
    return None


def ratios(rows: list[dict], scales: list[int], dbs: list[str]) -> list[dict[str, Any]]:
    """Issue 15's targets, each with its measured value and whether it is met.

    ``target`` is the issue's number (1-5); ``info`` rows are figures that explain
    the others (Prefect's start-up, which the job's ratios leave out) and carry no
    verdict. A target whose inputs failed or were skipped is left out: the table
    shows the failed step instead.
    """
    out: list[dict[str, Any]] = []

    def add(
        target: str,
        scale: int,
        db: str,
        name: str,
        value: float | None,
        limit: str,
        met: bool | None,
        unit: str = "x",
    ) -> None:
        out.append(
            {
                "target": target,
                "scale": scale,
                "db": db,
                "ratio": name,
                "value": None if value is None else round(value, 3),
                "unit": unit,
                "limit": limit,
                "met": met,
            }
        )

    for scale in scales:
        fetch = _find(rows, scale=scale, contender="floor", step="fetch keep-alive")
        for db in dbs:

            def get(contender: str, step: str) -> dict[str, Any] | None:
                return _find(rows, scale=scale, db=db, contender=contender, step=step)  # noqa: B023

            full, dlt = get("rulewatch", "full"), get("dlt", "full")
            insert = get("floor", "bulk insert")
            none, process = (
                get("rulewatch", "no change"),
                get("rulewatch sync (process)", "no change"),
            )
            served = get("rulewatch sync (process, serve's server up)", "no change")
            dlt_none = get("dlt", "no change")
            dlt_process = get("dlt (process)", "no change")
            if full:
                phases = full["phases"]
                el = phases["extract_load_s"]
                if fetch and insert:
                    v = el / (fetch["wall_s"] + insert["wall_s"])
                    add(
                        "1",
                        scale,
                        db,
                        "extract+load / floor (fetch + bulk insert)",
                        v,
                        "<= 1.5",
                        v <= 1.5,
                    )
                if dlt:
                    v = full["wall_s"] / dlt["wall_s"]
                    add(
                        "2",
                        scale,
                        db,
                        "whole nightly job (Prefect start-up apart) / dlt full",
                        v,
                        "<= 1.0",
                        v <= 1.0,
                    )
                checks = phases.get("quality_s", 0) + phases.get("targets_s", 0)
                v = (checks + phases.get("gx_record_wait_s", 0)) / el
                # the issue sets this share at 1M; below, GX's fixed cost (its import and
                # Data Docs, seconds whatever the rows) weighs on a short load: shown apart
                at_scale = scale >= CHECKS_SHARE_SCALE
                add(
                    "2",
                    scale,
                    db,
                    "quality + target checks (+ the wait for GX's record) / extract+load",
                    v,
                    f"<= 0.10 at {CHECKS_SHARE_SCALE:,}",
                    v <= 0.10 if at_scale else None,
                )
                add(
                    "info",
                    scale,
                    db,
                    "quality + target checks alone (no GX wait) / extract+load",
                    checks / el,
                    "",
                    None,
                )
                v = phases.get("report_tables_s", 0) + phases.get("alerts_s", 0)
                add(
                    "2",
                    scale,
                    db,
                    "report-table refresh + alerts, full load",
                    v,
                    f"<= {TABLES_AND_ALERTS_MAX_S:g} s",
                    v <= TABLES_AND_ALERTS_MAX_S,
                    "s",
                )
                add(
                    "info",
                    scale,
                    db,
                    "Prefect server start-up before the full job",
                    full["prefect_start_s"],
                    "apart",
                    None,
                    "s",
                )
            if none:
                warm = none.get("again")
                if warm:
                    v = warm["wall_s"]
                    add(
                        "3",
                        scale,
                        db,
                        "no-change nightly job, its own work, on a Prefect server that has "
                        "served a run (as `rulewatch serve`'s after its first night)",
                        v,
                        "<= 1 s",
                        v <= 1.0,
                        "s",
                    )
                v = none["wall_s"]
                add(
                    "info" if warm else "3",
                    scale,
                    db,
                    "no-change nightly job, its own work, the first run on a just-started "
                    "Prefect server (its warm-up included)",
                    v,
                    "<= 1 s",
                    v <= 1.0 if not warm else None,
                    "s",
                )
                add(
                    "info",
                    scale,
                    db,
                    "no-change requests to the sources",
                    none.get("server_requests"),
                    "changed pages only",
                    None,
                    "",
                )
            if served and dlt_none:
                v = served["wall_s"] / dlt_none["wall_s"]
                add(
                    "3",
                    scale,
                    db,
                    SERVED_RATIO,
                    v,
                    "<= 3.0",
                    v <= 3.0,
                )
            elif served:  # no dlt in this run: the seconds alone
                add("info", scale, db, SERVED_SECONDS, served["wall_s"], "apart", None, "s")
            if served and "first_s" in served:  # results of earlier runs have no first night
                first = served["first_s"]
                if dlt_none:
                    add(
                        "info",
                        scale,
                        db,
                        SERVED_FIRST + " / dlt no change",
                        first / dlt_none["wall_s"],
                        "apart",
                        None,
                    )
                else:
                    add("info", scale, db, SERVED_FIRST, first, "apart", None, "s")
            if served and "next_day_s" in served:  # results of earlier runs have none
                add("info", scale, db, SERVED_NEXT_DAY, served["next_day_s"], "apart", None, "s")
            if served and dlt_process:  # like for like: both whole processes
                v = served["wall_s"] / dlt_process["wall_s"]
                add(
                    "info",
                    scale,
                    db,
                    "no-change `rulewatch sync` process, serve's server up / dlt's whole "
                    "process (interpreter and imports included)",
                    v,
                    "apart",
                    None,
                )
            if process and dlt_none:
                v = process["wall_s"] / dlt_none["wall_s"]
                add(
                    "info",
                    scale,
                    db,
                    "no-change `rulewatch sync` process, a temporary Prefect server "
                    "/ dlt no change",
                    v,
                    "apart",
                    None,
                )
            elif process:
                add(
                    "info",
                    scale,
                    db,
                    "no-change `rulewatch sync` process, a temporary Prefect server",
                    process["wall_s"],
                    "apart",
                    None,
                    "s",
                )
    if len(scales) > 1:
        lo, hi = min(scales), max(scales)
        for db in dbs:
            a = _find(rows, scale=lo, db=db, contender="rulewatch", step="full")
            b = _find(rows, scale=hi, db=db, contender="rulewatch", step="full")
            if a and b:
                v = b["peak_rss_mb"] / a["peak_rss_mb"]
                add(
                    "4",
                    hi,
                    db,
                    f"peak RSS of the whole job, {hi:,} / {lo:,}",
                    v,
                    "0.8 .. 1.2",
                    0.8 <= v <= 1.2,
                )
    demo = _find(rows, contender="rulewatch demo")
    if demo:
        v = demo["wall_s"]
        add("5", 0, "sqlite", "`rulewatch demo`, first run", v, "<= 20 s", v <= 20.0, "s")
    for start in ("first start", "warm start"):
        once = _find(rows, contender="Prefect server", step=start)
        if once:
            add(
                "info",
                0,
                "-",
                f"Prefect temporary server alone, {start}",
                once["wall_s"],
                "apart",
                None,
                "s",
            )
    return out


def _value(c: dict[str, Any]) -> str:
    if c["value"] is None:
        return "-"
    if c["unit"] == "":
        return f"{c['value']:g}"
    return f"{c['value']:.2f} s" if c["unit"] == "s" else f"{c['value']:.2f}{c['unit']}"


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "missed", None: "info"}[met]


def markdown_targets(targets: list[dict[str, Any]], dbs: list[str], scales: list[int]) -> str:
    """The targets side by side, one column per scale and database (for the README)."""
    columns = [(s, d) for s in scales for d in dbs]
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    head = ["#", "target", "limit"] + [f"{s:,} {names.get(d, d)}" for s, d in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    seen: dict[tuple[str, str], dict[tuple[int, str], dict]] = {}
    for c in targets:
        seen.setdefault((c["target"], c["ratio"]), {})[(c["scale"], c["db"])] = c
    for (target, name), cells in seen.items():
        limit = next(iter(cells.values()))["limit"]
        texts = {k: f"{_value(c)} ({_verdict(c['met'])})" for k, c in cells.items()}
        if all(k in columns for k in cells):
            values = [texts.get(k, "") for k in columns]
        else:  # once per run (the demo, Prefect alone): in the first column
            values = [" / ".join(texts.values())] + [""] * (len(columns) - 1)
        lines.append("| " + " | ".join([target, name, limit, *values]) + " |")
    return "\n".join(lines)


def print_tables(rows: list[dict], checks: list[dict], meta: dict[str, Any]) -> None:
    out = Console(width=None if sys.stdout.isatty() else 220)
    table = Table(title="rulewatch vs dlt vs the floor")
    left = ("db", "contender", "step", "phases")
    columns = (
        "scale",
        "db",
        "contender",
        "step",
        "wall s",
        "rows",
        "rows/s",
        "peak RSS MB",
        "requests",
        "phases",
    )
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right")
    for r in rows:
        if "error" in r:
            table.add_row(
                f"{r['scale']:,}",
                r["db"],
                r["contender"],
                r["step"],
                "[red]failed",
                "",
                "",
                "",
                "",
                r["error"],
            )
            continue
        phases = " ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in r.get("phases", {}).items())
        if "prefect_start_s" in r:
            phases = f"(Prefect start {r['prefect_start_s']:.1f}) {phases}"
        reqs = r.get("server_requests", r.get("requests", ""))
        table.add_row(
            f"{r['scale']:,}",
            r["db"],
            r["contender"],
            r["step"],
            f"{r['wall_s']:.2f}",
            f"{r.get('rows', 0):,}",
            f"{r.get('rows_per_s', 0):,}",
            f"{r['peak_rss_mb']:.0f}",
            str(reqs),
            phases,
        )
    out.print(table)
    targets = Table(title="issue 15's targets")
    for col in ("#", "scale", "db", "target", "value", "limit", "verdict"):
        targets.add_column(col)
    colour = {True: "[green]met", False: "[red]missed", None: "info"}
    for c in checks:
        targets.add_row(
            c["target"],
            f"{c['scale']:,}",
            c["db"],
            c["ratio"],
            _value(c),
            c["limit"],
            colour[c["met"]],
        )
    out.print(targets)
    m = meta["machine"]
    out.print(
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, "
        f"PostgreSQL {m['postgresql']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f"; load average (1/5/15 min) at start {m['load_average_start']}, "
        f"at end {m.get('load_average_end')}"
    )


def show(path: Path) -> None:
    """Print the tables of a saved run (also a cut one: its targets from the steps it has)."""
    body = json.loads(path.read_text())
    rows = body["results"]
    scales = sorted({r["scale"] for r in rows if r["scale"]})
    dbs = [d for d in ("sqlite", "postgresql") if any(r["db"] == d for r in rows if r["scale"])]
    targets = ratios(rows, scales, dbs)
    print_tables(rows, targets, body)
    print()
    print(markdown_targets(targets, dbs, scales))
    if not body.get("complete"):
        console.print(f"[yellow]{path} is a cut run: only the steps it finished are shown")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", default="100000", help="comma-separated record counts, e.g. 100000,1000000"
    )
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--no-dlt", action="store_true", help="leave dlt out")
    parser.add_argument(
        "--dlt-max-scale", type=int, default=10**9, help="run dlt only up to this scale"
    )
    parser.add_argument(
        "--extras",
        action="store_true",
        help="also the fetch without keep-alive and the 1%% incremental loads",
    )
    parser.add_argument("--work-dir", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument(
        "--no-once", action="store_true", help="leave out the demo and Prefect start-up timings"
    )
    parser.add_argument(
        "--show", type=Path, help="print the tables of a saved results file (measure nothing)"
    )
    args = parser.parse_args()
    if args.show:
        show(args.show)
        return
    scales = [int(s.replace("_", "")) for s in args.scale.split(",")]
    dbs = [d.strip() for d in args.db.split(",")]
    if set(dbs) - {"sqlite", "postgresql"}:
        parser.error("--db: choose from sqlite, postgresql")
    with_dlt = not args.no_dlt and importlib.util.find_spec("dlt") is not None
    if not args.no_dlt and not with_dlt:
        console.print(
            '[yellow]dlt is not installed (pip install -e ".[bench]"): its rows are skipped'
        )
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="rulewatch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    console.print(f"scratch folder: {work}")
    started = datetime.now()
    meta = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "machine": machine(),
    }
    results = Results(RESULTS_DIR / f"{started:%Y%m%d-%H%M%S}.json", meta)
    console.print(f"results (rewritten after every step): {results.path}")
    steps: list[Callable[[], None]] = []
    if not args.no_once:
        steps.append(lambda: bench_once(work, results))
    for scale in scales:
        steps.append(
            lambda scale=scale: bench_scale(
                scale,
                dbs,
                work,
                results,
                with_dlt=with_dlt,
                dlt_max=args.dlt_max_scale,
                extras=args.extras,
            )
        )
    for run in steps:
        run()
        results.targets = ratios(results.rows, scales, dbs)
        results.save()
    drop_databases(dbs)
    meta["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["finished_at"] = datetime.now().isoformat(timespec="seconds")
    results.complete = True
    results.save()
    print_tables(results.rows, results.targets, meta)
    print()
    print(markdown_targets(results.targets, dbs, scales))
    console.print(f"results: {results.path}")


if __name__ == "__main__":
    main()
