"""Checks vs extract+load: what Great Expectations costs on a full sync of the demo at scale.

Starts the demo sources in their own process (``bench/serve.py``) with ``--scale``
synthetic records, syncs the three sources into a fresh warehouse (extract+load,
timed), then runs, as the nightly flow does, the data-quality suites over every
row the sync wrote and the target checks of the demo's year and of a synthetic
year with a large population (each timed, GX's import apart); then the next
night (1% of every system changed): its incremental sync and data-quality run. Prints one JSON
object and writes it to ``bench/results/checks-<scale>-<backend>.json``.

    python bench/checks.py --scale 1000000
    python bench/checks.py --scale 1000000 --warehouse postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import requests
from sqlalchemy import func, select

from rulewatch.checks.quality import run_quality_checks
from rulewatch.checks.targets import run_target_checks
from rulewatch.common.periods import Period
from rulewatch.config.settings import SOURCE_NAMES, load_settings
from rulewatch.demo.data import DEMO_TODAY
from rulewatch.flows.nightly import calendar_of
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.schema import CORE_TABLES
from rulewatch.warehouse.sync import sync_source

HERE = Path(__file__).parent
TOUCHED = 0.01


def _touch(settings, fraction: float) -> int:  # noqa: ANN001 - Settings
    """Change a fraction of every system's records (the demo's admin endpoint)."""
    touched = 0
    for name in ("permits", "enforcement", "docreview"):
        endpoint = settings.source(name)
        creds = endpoint.credentials
        session = requests.Session()
        if name == "permits":
            session.headers["Authorization"] = f"Bearer {creds['token']}"
        elif name == "enforcement":
            session.headers["X-Api-Key"] = creds["api_key"]
        else:
            session.auth = (creds["user"], creds["password"])
        response = session.post(f"{endpoint.base_url}/_demo/touch", params={"fraction": fraction})
        response.raise_for_status()
        touched += response.json()["touched"]
    return touched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--warehouse", help="SQLAlchemy URL (an empty schema); default SQLite")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rulewatch-bench-"))
    url = args.warehouse or f"sqlite:///{folder / 'warehouse.db'}"
    server = subprocess.Popen(
        [sys.executable, str(HERE / "serve.py"), "--scale", str(args.scale)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        sources_env = json.loads(server.stdout.readline())["env"]
        env = {
            **sources_env,
            "RULEWATCH_WAREHOUSE_URL": url,
            "RULEWATCH_DATA_DIR": str(folder),
            "RULEWATCH_PII_KEY": "bench",
        }
        result = run(load_settings(env), args.scale)
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(30)
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result, indent=2))
    backend = url.split(":", 1)[0].split("+", 1)[0]
    out = HERE / "results" / f"checks-{args.scale}-{backend}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


def _timed(fn):  # noqa: ANN001, ANN202 - any callable
    started = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - started, 2)


def run(settings, scale: int) -> dict:  # noqa: ANN001 - Settings
    engine = open_warehouse(settings.warehouse_url, calendar_of(settings))
    syncs, extract_load = _timed(lambda: [sync_source(engine, settings, s) for s in SOURCE_NAMES])
    with engine.connect() as conn:
        rows = {
            stream: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for stream, t in CORE_TABLES.items()
        }
    _, gx_import = _timed(lambda: __import__("great_expectations"))
    run_ids = [s.sync_run_id for s in syncs]
    quality, quality_s = _timed(
        lambda: run_quality_checks(engine, settings, sync_run_ids=run_ids, as_of=DEMO_TODAY)
    )
    demo_year, demo_year_s = _timed(
        lambda: run_target_checks(engine, settings, [Period.parse("2024")], DEMO_TODAY)
    )
    big_year, big_year_s = _timed(
        lambda: run_target_checks(engine, settings, [Period.parse("2018")], date(2018, 12, 31))
    )
    # the next night: 1% of every system changed; an incremental sync and its checks
    touched = _touch(settings, TOUCHED)
    again, again_s = _timed(lambda: [sync_source(engine, settings, s) for s in SOURCE_NAMES])
    again_ids = [s.sync_run_id for s in again]
    quality_again, quality_again_s = _timed(
        lambda: run_quality_checks(engine, settings, sync_run_ids=again_ids, as_of=DEMO_TODAY)
    )
    engine.dispose()
    checks = quality_s + demo_year_s
    return {
        "scale": scale,
        "backend": engine.dialect.name,
        "records_read": sum(s.records_read for s in syncs),
        "core_rows": rows,
        "extract_load_seconds": extract_load,
        "gx_import_seconds": gx_import,
        "data_quality_seconds": quality_s,
        "data_quality_gx_seconds": round(quality.gx_seconds, 2),
        "data_quality_rows": quality.rows_checked,
        "data_quality_expectations": len(quality.results),
        "data_quality_failed": len(quality.failed),
        "target_checks_2024_seconds": demo_year_s,
        "target_checks_2018_seconds": big_year_s,
        "target_checks_2018_records": sum(c.denominator for c in big_year.checks),
        "slipped_2024": [c.metric for c in demo_year.slipped],
        "incremental_touched": touched,
        "incremental_records_read": sum(s.records_read for s in again),
        "incremental_extract_load_seconds": again_s,
        "incremental_data_quality_seconds": quality_again_s,
        "incremental_data_quality_rows": quality_again.rows_checked,
        "checks_vs_extract_load": round((gx_import + checks) / extract_load, 3),
    }


if __name__ == "__main__":
    main()
