"""``rulewatch demo`` on a first run, for source trees side by side, with its timeline.

    python bench/demo.py --tree before=/path/to/main --tree after=. [--runs 3]

Each run is a fresh process with ``PYTHONPATH`` at its tree, a new data folder and
a new Prefect home (issue 15 target 5: <= 20 s); the trees alternate, run after
run, so a machine that grows busier weighs on both. Per run: the wall time, the
CPU (user + system) of the demo and every process it waited for, its peak RSS
(``ru_maxrss``: the largest of them), the load average, and the timeline its log
gives, in seconds from the start: Prefect's temporary server announced, the flow
begun, GX's record waited for, the flow finished, then "after": the scorecards,
the reports and the exit. Medians per tree are printed; every run goes to
``bench/results/demo-<timestamp>.json``. The CPU is the figure to compare on a
shared machine; the wall time on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

#: Log lines of the timeline, by the name each is reported under.
MARKS = {
    "server": r"Starting temporary server",
    "flow": r"Beginning flow run",
    "gx_record": r"task gx-record-\w+: Finished",
    "flow_end": r"flow rulewatch-nightly [\w-]+: Finished",
}


def _children_rusage() -> tuple[float, int]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def one_run(tree: Path, work: Path) -> dict[str, object]:
    """The demo once, from ``tree``, in a new data folder and Prefect home under ``work``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RULEWATCH_", "PREFECT_"))}
    env.update(
        PYTHONPATH=str(tree),
        RULEWATCH_DATA_DIR=str(work / "data"),
        PREFECT_HOME=str(work / "prefect"),
        COLUMNS="200",
    )
    cpu_before, _ = _children_rusage()
    load = os.getloadavg()[0]
    started_at = time.time()
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "rulewatch.cli.main", "demo"],
        env=env,
        cwd=tempfile.gettempdir(),  # not a folder whose settings files Prefect would read
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    cpu_after, peak_kb = _children_rusage()
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-2000:])
        raise SystemExit(f"rulewatch demo from {tree} exited {proc.returncode}")
    run: dict[str, object] = {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu_after - cpu_before, 2),
        # RUSAGE_CHILDREN's peak is the largest since this process started: the demo's
        # own, or an earlier run's if larger (all runs of a tree are alike)
        "peak_rss_mb": round(peak_kb / 1024),
        "load_start": round(load, 2),
        "load_end": round(os.getloadavg()[0], 2),
    }
    for name, pattern in MARKS.items():
        found = re.search(r"^(\S+) .*" + pattern, proc.stderr, re.M)
        at = datetime.fromisoformat(found.group(1)).timestamp() - started_at if found else None
        run[f"{name}_at_s"] = None if at is None else round(at, 2)
    flow_end = run["flow_end_at_s"]
    run["after_flow_s"] = None if flow_end is None else round(wall - float(flow_end), 2)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="name=path (repeatable)")
    parser.add_argument("--runs", type=int, default=3, help="runs per tree (default 3)")
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.tree)
    runs: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as scratch:
        for i in range(args.runs):
            for name, path in trees.items():
                run = one_run(Path(path).resolve(), Path(scratch) / f"{name}-{i}")
                runs[name].append(run)
                print(name, json.dumps(run), flush=True)
    keys = ["wall_s", "cpu_s", "server_at_s", "flow_at_s", "gx_record_at_s", "flow_end_at_s"]
    keys.append("after_flow_s")
    print("median of", args.runs, "runs:", " | ".join(keys))
    for name, done in runs.items():
        medians = [statistics.median(float(r[k]) for r in done if r[k] is not None) for k in keys]
        print(f"{name:>10}: " + " | ".join(f"{m:6.2f}" for m in medians))
    folder = Path(__file__).resolve().parent / "results"
    folder.mkdir(exist_ok=True)
    out = folder / f"demo-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    machine = {"cores": os.cpu_count(), "python": sys.version.split()[0]}
    trees_out = {name: str(Path(p).resolve()) for name, p in trees.items()}
    out.write_text(json.dumps({"machine": machine, "trees": trees_out, "runs": runs}, indent=1))
    print("results:", out)


if __name__ == "__main__":
    main()
