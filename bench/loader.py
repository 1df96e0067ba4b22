"""The loader alone: ``load_page`` of 10,000 parsed permit applications, then again.

A fresh warehouse per repetition; the first load inserts every row (landed and
current state), the second finds them all there (the conflict path a re-read
takes). Prints the median wall time and the client's CPU time of each, so a
change to the loader can be compared before and after on a busy machine too
(CPU time moves far less than wall time when other work shares the cores; on
PostgreSQL it leaves out the server's share). The records are parsed once,
outside the timing.

    python bench/loader.py --backend sqlite --backend postgresql --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, create_engine, text

from rulewatch.common.workdays import WorkingCalendar
from rulewatch.demo.store import DemoWorld
from rulewatch.extract import permits
from rulewatch.extract.engine import ParseContext
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.loader import load_page

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2024, 5, 1)


@contextmanager
def fresh_warehouse(backend: str, pg_url: str) -> Iterator[Engine]:
    """An empty warehouse: a SQLite file in a temporary folder, or a PostgreSQL schema."""
    calendar = WorkingCalendar.from_lists([], [])
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            engine = open_warehouse(f"sqlite:///{folder}/warehouse.db", calendar)
            yield engine
            engine.dispose()
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        engine = open_warehouse(f"{pg_url}?options=-csearch_path%3D{schema}", calendar)
        yield engine
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--pg-url", default=PG_URL)
    args = parser.parse_args()
    stream = permits.SPEC.streams[0]
    raws = DemoWorld(scale=4 * args.rows).store("permits").all_current()[: args.rows]
    ctx = ParseContext(ZoneInfo("Asia/Shanghai"), b"key", datetime(2024, 5, 1, tzinfo=UTC))
    records = [stream.parse_record(raw, ctx) for raw in raws]

    for backend in args.backend or ["sqlite"]:
        figures: dict[str, list[tuple[float, float]]] = {"first": [], "again": []}
        for _ in range(args.repeat):
            with fresh_warehouse(backend, args.pg_url) as engine:
                for label, run_id in (("first", "run-1"), ("again", "run-2")):

                    def load(run_id: str = run_id) -> None:
                        with engine.begin() as conn:
                            load_page(conn, stream, records, run_id, NOW)

                    figures[label].append(timed(load))
        shown = [
            f"{label} {statistics.median(w for w, _ in runs) * 1000:.0f} ms wall, "
            f"{statistics.median(c for _, c in runs) * 1000:.0f} ms CPU"
            for label, runs in figures.items()
        ]
        print(f"{backend}, {len(records)} rows, median of {args.repeat}: " + "; ".join(shown))


if __name__ == "__main__":
    main()
