"""Extract+load alone: the three sources synced concurrently, as the nightly flow runs them.

Against demo sources already running in another process (``bench/serve.py`` prints
the env this reads), each repetition syncs every source from an empty warehouse
(a fresh PostgreSQL database or SQLite file), one thread per source, without
Prefect. Prints per repetition the wall time, this process's CPU time (user +
system: the servers' CPU is never in it), peak RSS and the rows, then the medians,
so a change can be compared before and after (``PYTHONPATH`` picks the code) on a
busy machine: CPU time moves far less than wall time when others share the cores.

    python bench/serve.py --scale 100000 > env.json &   # keep its stdin open
    python bench/extract_load.py --env env.json --db postgresql --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextmanager
def fresh_warehouse(db: str) -> Iterator[str]:
    """The URL of an empty warehouse, dropped afterwards."""
    if db == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/warehouse.db"
        return
    name = f"extract_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def one_run(env: dict[str, str], db: str, sources: list[str]) -> dict[str, object]:
    from rulewatch.common.workdays import calendar_of
    from rulewatch.config.settings import load_settings
    from rulewatch.warehouse.db import make_engine, open_warehouse
    from rulewatch.warehouse.sync import sync_source

    with fresh_warehouse(db) as url, tempfile.TemporaryDirectory() as data:
        settings = load_settings(
            {
                **env,
                "RULEWATCH_WAREHOUSE_URL": url,
                "RULEWATCH_DATA_DIR": data,
                "RULEWATCH_PII_KEY": "bench-key",
            }
        )
        timeouts = settings.schedule.timeouts
        open_warehouse(url, calendar_of(settings), timeouts).dispose()
        results: dict[str, object] = {}
        ended: dict[str, float] = {}

        def run(source: str) -> None:  # an engine per source, as the flow's tasks have
            engine = make_engine(url, timeouts)
            try:
                results[source] = sync_source(engine, settings, source, full_refresh=True)
            finally:
                ended[source] = round(time.perf_counter() - wall0, 2)
                engine.dispose()

        threads = [threading.Thread(target=run, args=(s,)) for s in sources]
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - wall0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    if len(results) != len(sources):
        raise SystemExit("a source failed")
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime, 3),
        "rows": sum(r.records_read for r in results.values()),  # type: ignore[attr-defined]
        "requests": sum(r.requests for r in results.values()),  # type: ignore[attr-defined]
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "ended_s": ended,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", type=Path, required=True, help="bench/serve.py's JSON line")
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--source", action="append", help="only this source (again for more)")
    args = parser.parse_args()
    from rulewatch.extract import SOURCES

    sources = args.source or list(SOURCES)
    env = json.loads(args.env.read_text().splitlines()[0])["env"]
    runs = []
    for _ in range(args.repeat):
        out = one_run(env, args.db, sources)
        out["load"] = os.getloadavg()[0]
        runs.append(out)
        print(json.dumps(out), flush=True)
    wall = statistics.median(float(r["wall_s"]) for r in runs)  # type: ignore[arg-type]
    cpu = statistics.median(float(r["cpu_s"]) for r in runs)  # type: ignore[arg-type]
    print(f"{args.db}: median of {args.repeat}: {wall:.2f} s wall, {cpu:.2f} s CPU")


if __name__ == "__main__":
    main()
