"""What a history backfill costs on the demo data, for two source trees side by side.

    python bench/backfill.py --tree before=/tmp/rw-before --tree after=. [--flow-days 30]

Per tree, in a fresh process with ``PYTHONPATH`` at that tree: the demo sources
are synced into an SQLite warehouse, then two backfills are timed on it:

- ``history``: :func:`rulewatch.report.tables.backfill_history` over 2023-01-01 ..
  the demo's today (about 500 days), what ``rulewatch demo`` runs for its charts;
- ``flow``: :func:`rulewatch.flows.backfill.recompute_days` over the first
  ``--flow-days`` days of 2024 (the backfill flow's work for one chunk), with
  its default settings.

Timings are wall-clock seconds on a shared machine: compare the trees' ratio
within one run, not figures across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

HISTORY_FROM = date(2023, 1, 1)


def measure(flow_days: int) -> dict[str, float]:
    """Run in the measured tree: sync the demo, time both backfills (seconds)."""
    from rulewatch.common.workdays import calendar_of
    from rulewatch.config.settings import load_settings
    from rulewatch.demo.data import DEMO_TODAY
    from rulewatch.demo.servers import start_demo_sources
    from rulewatch.flows.backfill import recompute_days
    from rulewatch.report.tables import backfill_history
    from rulewatch.warehouse.db import open_warehouse
    from rulewatch.warehouse.sync import sync_source

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'warehouse.db'}"
        with start_demo_sources() as demo:
            env = {
                **demo.env(),
                "RULEWATCH_WAREHOUSE_URL": url,
                "RULEWATCH_DATA_DIR": folder,
                "RULEWATCH_PII_KEY": "bench",
            }
            settings = load_settings(env)
            engine = open_warehouse(url, calendar_of(settings))
            for source in ("permits", "enforcement", "docreview"):
                sync_source(engine, settings, source, job_id="bench")
        started = time.perf_counter()
        backfill_history(engine, settings, HISTORY_FROM, DEMO_TODAY)
        figures["history_seconds"] = time.perf_counter() - started
        figures["history_days"] = (DEMO_TODAY - HISTORY_FROM).days + 1
        first = date(2024, 1, 1)
        started = time.perf_counter()
        recompute_days(settings, first, first + timedelta(days=flow_days - 1))
        figures["flow_seconds"] = time.perf_counter() - started
        figures["flow_days"] = flow_days
        engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], help="name=path of a source tree")
    parser.add_argument("--flow-days", type=int, default=30)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.flow_days)))
        return
    results = {}
    for spec in args.tree:
        name, path = spec.split("=", 1)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RULEWATCH_")}
        env["PYTHONPATH"] = str(Path(path).resolve())
        out = subprocess.run(
            [sys.executable, __file__, "--measure", "--flow-days", str(args.flow_days)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
