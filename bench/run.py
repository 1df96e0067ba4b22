"""rulewatch against dlt and against the floor, on SQLite and PostgreSQL, in one run.

    python bench/run.py --scale 100000,1000000 --db sqlite,postgresql

For each scale the demo source systems run in their own process (``bench/serve.py``)
and every measured step runs in a fresh process of its own (``bench/contenders.py``),
so each peak RSS is that contender's alone. Per scale and database:

1. the floor: a bare ``requests`` + ``json`` fetch of every page (with and without
   keep-alive) and a bare bulk insert of the same rows (COPY / one executemany);
2. full loads from empty: rulewatch (extract, validate, load, checks, metrics)
   and dlt's ``rest_api`` source (merge on the natural keys);
3. 1% of the records re-versioned on the servers, then both incremental loads;
4. a rulewatch sync with nothing changed, counting the requests it made.

Prints a table and the target ratios, and writes everything to
``bench/results/<timestamp>.json``. dlt is an optional extra
(``pip install -e ".[bench]"``); without it its rows are skipped.
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
from dataclasses import dataclass
from datetime import datetime
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
        raise SystemExit(f"the demo servers did not start; see {log}")
    return Servers(process, json.loads(line)["env"])


def fresh_database(db: str, name: str, work: Path) -> str:
    """An empty database for one contender, as a SQLAlchemy URL."""
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


def run_step(step: str, work: Path, label: str, timeout: float, **opts: Any) -> dict[str, Any]:
    """Run one contender step in its own process and return its BENCH-RESULT."""
    cmd = [sys.executable, str(BENCH_DIR / "contenders.py"), step, "--env", str(work / "env.json")]
    for key, value in opts.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    log = work / f"{label}.log"
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {label} …")
    started = time.perf_counter()
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING", "RUNTIME__LOG_LEVEL": "WARNING"}
    with log.open("w") as err:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout, env=env
        )
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


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    versions = {"python": platform.python_version()}
    for package in ("dlt", "sqlalchemy", "psycopg", "requests"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:  # noqa: BLE001 - not installed
            pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "versions": versions,
    }


def bench_once(work: Path) -> list[dict[str, Any]]:
    """Timings that do not depend on the scale: Prefect's temporary server start-up
    alone, and ``rulewatch demo`` on a first run (fresh data folder)."""
    env_file = work / "env.json"
    if not env_file.exists():
        env_file.write_text("{}")
    rows = []
    for contender, step in (("Prefect", "prefect-start"), ("rulewatch demo", "demo")):
        result = run_step(step, work, step, 900, work_dir=work / "demo-data")
        rows.append({"scale": 0, "db": "-" if step != "demo" else "sqlite",
                     "contender": contender, "step": "first run", **result})  # fmt: skip
    return rows


def bench_scale(
    scale: int, dbs: list[str], work: Path, with_dlt: bool, dlt_max: int, prefect: bool
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    timeout = 600 + scale / 250  # generous: ~1.1 h per step at 1M

    def record(db: str, contender: str, step: str, result: dict[str, Any]) -> dict[str, Any]:
        entry = {"scale": scale, "db": db, "contender": contender, "step": step, **result}
        if result.get("wall_s") and result.get("rows") is not None:
            entry["rows_per_s"] = round(result["rows"] / result["wall_s"])
        rows.append(entry)
        return entry

    console.rule(f"scale {scale:,}")
    servers = start_servers(scale, work / f"servers-{scale}.log")
    try:
        (work / "env.json").write_text(json.dumps(servers.env))
        record(
            "-",
            "floor",
            "fetch keep-alive",
            run_step("fetch-keepalive", work, f"{scale}-fetch-ka", timeout),
        )
        record(
            "-",
            "floor",
            "fetch no keep-alive",
            run_step("fetch-no-keepalive", work, f"{scale}-fetch-nka", timeout),
        )
        rows_file = work / f"rows-{scale}.csv"
        run_step("dump-rows", work, f"{scale}-dump-rows", timeout, rows_file=rows_file)
        run_dlt = with_dlt and scale <= dlt_max
        urls: dict[str, dict[str, str]] = {}
        for db in dbs:
            url = fresh_database(db, "bench_floor", work)
            record(
                db,
                "floor",
                "bulk insert",
                run_step(
                    "insert", work, f"{scale}-{db}-insert", timeout, db=url, rows_file=rows_file
                ),
            )
            urls[db] = {"rulewatch": fresh_database(db, f"bench_rw_{db}", work)}
            record(
                db,
                "rulewatch",
                "full",
                run_step(
                    "rulewatch", work, f"{scale}-{db}-rw-full", timeout, db=urls[db]["rulewatch"]
                ),
            )
            if run_dlt:
                urls[db]["dlt"] = fresh_database(db, f"bench_dlt_{db}", work)
                shutil.rmtree(work / f"dlt-{db}", ignore_errors=True)
                record(
                    db,
                    "dlt",
                    "full",
                    run_step(
                        "dlt",
                        work,
                        f"{scale}-{db}-dlt-full",
                        timeout,
                        db=urls[db]["dlt"],
                        work_dir=work / f"dlt-{db}",
                    ),
                )
        rows_file.unlink(missing_ok=True)
        touched = servers.touch(0.01)
        console.print(f"touched {touched:,} records (1%)")
        for db in dbs:
            record(
                db,
                "rulewatch",
                "incremental 1%",
                run_step(
                    "rulewatch", work, f"{scale}-{db}-rw-incr", timeout, db=urls[db]["rulewatch"]
                ),
            )
            if run_dlt:
                record(
                    db,
                    "dlt",
                    "incremental 1%",
                    run_step(
                        "dlt",
                        work,
                        f"{scale}-{db}-dlt-incr",
                        timeout,
                        db=urls[db]["dlt"],
                        work_dir=work / f"dlt-{db}",
                    ),
                )
            before = servers.requests_so_far()
            entry = record(
                db,
                "rulewatch",
                "no change",
                run_step(
                    "rulewatch", work, f"{scale}-{db}-rw-none", timeout, db=urls[db]["rulewatch"]
                ),
            )
            entry["server_requests"] = servers.requests_so_far() - before
            record(
                db,
                "rulewatch sync (process)",
                "no change",
                run_step(
                    "sync-process",
                    work,
                    f"{scale}-{db}-sync-none",
                    timeout,
                    db=urls[db]["rulewatch"],
                    work_dir=work / f"data-{db}",
                ),
            )
            if run_dlt:
                record(
                    db,
                    "dlt",
                    "no change",
                    run_step(
                        "dlt",
                        work,
                        f"{scale}-{db}-dlt-none",
                        timeout,
                        db=urls[db]["dlt"],
                        work_dir=work / f"dlt-{db}",
                    ),
                )
            if prefect:
                before = servers.requests_so_far()
                entry = record(
                    db,
                    "rulewatch (Prefect flow)",
                    "no change",
                    run_step(
                        "prefect",
                        work,
                        f"{scale}-{db}-prefect-none",
                        timeout,
                        db=urls[db]["rulewatch"],
                    ),
                )
                entry["server_requests"] = servers.requests_so_far() - before
        if with_dlt and not run_dlt:
            console.print(f"[yellow]dlt skipped at scale {scale:,} (--dlt-max-scale {dlt_max:,})")
    finally:
        servers.stop()
    return rows


def _find(rows: list[dict], **match: Any) -> dict[str, Any] | None:
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()) and "error" not in r:
            return r
    return None


def _extract_load(result: dict[str, Any]) -> float:
    return result["phases"]["extract_load_s"] + result["phases"]["open_s"]


def ratios(rows: list[dict], scales: list[int], dbs: list[str]) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured value and whether it is met."""
    out: list[dict[str, Any]] = []

    def add(
        scale: int, db: str, name: str, value: float | None, target: str, met: bool | None
    ) -> None:
        out.append(
            {"scale": scale, "db": db, "ratio": name, "value": value, "target": target, "met": met}
        )

    for scale in scales:
        fetch = _find(rows, scale=scale, contender="floor", step="fetch keep-alive")
        for db in dbs:
            rw = _find(rows, scale=scale, db=db, contender="rulewatch", step="full")
            if rw is None:
                continue
            el = _extract_load(rw)
            dlt = _find(rows, scale=scale, db=db, contender="dlt", step="full")
            if dlt:
                v = el / dlt["wall_s"]
                add(scale, db, "rulewatch extract+load / dlt full", round(v, 3), "<= 0.5", v <= 0.5)
            ins = _find(rows, scale=scale, db=db, contender="floor", step="bulk insert")
            if fetch and ins:
                floor = fetch["wall_s"] + ins["wall_s"]
                v = el / floor
                add(
                    scale,
                    db,
                    "rulewatch extract+load / floor (fetch + insert)",
                    round(v, 3),
                    "<= 1.5",
                    v <= 1.5,
                )
                v = rw["wall_s"] / floor
                add(
                    scale,
                    db,
                    "rulewatch whole job / floor (fetch + insert)",
                    round(v, 3),
                    "info",
                    None,
                )
            inc = _find(rows, scale=scale, db=db, contender="rulewatch", step="incremental 1%")
            if inc:
                v = inc["wall_s"] / rw["wall_s"]
                add(
                    scale,
                    db,
                    "rulewatch incremental 1% / full (whole job)",
                    round(v, 3),
                    "<= 0.05",
                    v <= 0.05,
                )
                v = _extract_load(inc) / el
                add(
                    scale,
                    db,
                    "rulewatch incremental 1% / full (extract+load)",
                    round(v, 3),
                    "<= 0.05",
                    v <= 0.05,
                )
            none = _find(rows, scale=scale, db=db, contender="rulewatch", step="no change")
            if none:
                ok = none["wall_s"] < 2.0
                add(
                    scale,
                    db,
                    "rulewatch no-change wall, whole job (s)",
                    round(none["wall_s"], 2),
                    "< 2 s",
                    ok,
                )
                v = _extract_load(none)
                add(
                    scale,
                    db,
                    "rulewatch no-change wall, extract+load (s)",
                    round(v, 2),
                    "< 2 s",
                    v < 2.0,
                )
                add(
                    scale,
                    db,
                    "rulewatch no-change requests",
                    none.get("server_requests"),
                    "changed pages only",
                    None,
                )
            # GX's record runs in its own process; what the job still waits for at its end counts
            gx_wait = rw["phases"].get("gx_record_wait_s", 0.0)
            checks = sum(rw["phases"][k] for k in ("quality_s", "metrics_s", "targets_s")) + gx_wait
            v = checks / rw["wall_s"]
            add(scale, db, "rulewatch metrics+checks / full", round(v, 3), "<= 0.10", v <= 0.10)
            # issue 15: the whole job against dlt, checks against extract+load, quiet nights
            if dlt:
                v = rw["wall_s"] / dlt["wall_s"]
                add(scale, db, "whole nightly job (no Prefect) / dlt full", round(v, 3),
                    "<= 1.0", v <= 1.0)  # fmt: skip
            checks = rw["phases"]["quality_s"] + rw["phases"]["targets_s"] + gx_wait
            v = checks / el
            add(scale, db, "quality + target checks / extract+load", round(v, 3),
                "<= 0.10", v <= 0.10)  # fmt: skip
            tables = rw["phases"].get("report_tables_s")
            if tables is not None:
                add(scale, db, "report-table refresh (s)", round(tables, 2), "<= 5 s",
                    tables <= 5.0)  # fmt: skip
            if none:
                v = none["wall_s"]
                add(scale, db, "no-change job work (s)", round(v, 2), "<= 1 s", v <= 1.0)
            process = _find(rows, scale=scale, db=db, contender="rulewatch sync (process)")
            dlt_none = _find(rows, scale=scale, db=db, contender="dlt", step="no change")
            if process and dlt_none:
                v = process["wall_s"] / dlt_none["wall_s"]
                add(scale, db, "no-change rulewatch sync process / dlt no change", round(v, 3),
                    "<= 3.0", v <= 3.0)  # fmt: skip
    for once in rows:
        if once["contender"] == "Prefect" and "error" not in once:
            add(0, "-", "Prefect temporary server start-up (s)", round(once["wall_s"], 2),
                "info", None)  # fmt: skip
        if once["contender"] == "rulewatch demo" and "error" not in once:
            v = once["wall_s"]
            add(0, "sqlite", "rulewatch demo, first run (s)", round(v, 2), "<= 20 s", v <= 20.0)
    if len(scales) > 1:
        lo, hi = min(scales), max(scales)
        for db in dbs:
            a = _find(rows, scale=lo, db=db, contender="rulewatch", step="full")
            b = _find(rows, scale=hi, db=db, contender="rulewatch", step="full")
            if a and b:
                v = b["peak_rss_mb"] / a["peak_rss_mb"]
                add(
                    hi,
                    db,
                    f"rulewatch full peak RSS {hi:,} / {lo:,}",
                    round(v, 3),
                    "0.8 .. 1.2",
                    0.8 <= v <= 1.2,
                )
    return out


def print_tables(rows: list[dict], checks: list[dict]) -> None:
    out = Console(width=None if sys.stdout.isatty() else 220)
    table = Table(title="rulewatch vs dlt vs the floor")
    for col in (
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
    ):
        table.add_column(
            col, justify="right" if col not in ("db", "contender", "step", "phases") else "left"
        )
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
    targets = Table(title="targets")
    for col in ("scale", "db", "ratio", "value", "target", "met"):
        targets.add_column(col)
    for c in checks:
        met = {True: "[green]yes", False: "[red]no", None: "-"}[c["met"]]
        targets.add_row(f"{c['scale']:,}", c["db"], c["ratio"], str(c["value"]), c["target"], met)
    out.print(targets)


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
        "--prefect",
        action="store_true",
        help="also time the no-change sync through the Prefect flow",
    )
    parser.add_argument("--work-dir", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument(
        "--no-once", action="store_true", help="leave out the demo and Prefect start-up timings"
    )
    args = parser.parse_args()
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
    rows: list[dict[str, Any]] = []
    if not args.no_once:
        rows += bench_once(work)
    for scale in scales:
        rows += bench_scale(scale, dbs, work, with_dlt, args.dlt_max_scale, args.prefect)
    checks = ratios(rows, scales, dbs)
    print_tables(rows, checks)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{started:%Y%m%d-%H%M%S}.json"
    path.write_text(
        json.dumps(
            {
                "started_at": started.isoformat(timespec="seconds"),
                "command": " ".join(sys.argv),
                "machine": machine(),
                "results": rows,
                "targets": checks,
            },
            indent=2,
        )
    )
    console.print(f"results: {path}")


if __name__ == "__main__":
    main()
