"""What the city rollup costs: every agency and the rollup in one pass against one agency's.

    PYTHONPATH=. python bench/city_metrics.py [--agencies 3] [--scale 0] [--repeat 7] [--pg URL]

The demo agencies (``rulewatch/demo/agencies.py``, ``scale`` synthetic records
shared out among them) are synced each into its own SQLite warehouse, and their
core rows written into one city warehouse under their ids (SQLite, or the
PostgreSQL schema of ``--pg``). Timed, the median of ``--repeat`` runs:

- ``own``: :func:`compute_metrics` of every agency in its own warehouse, one after
  the other (what the agencies' separate deployments pay today, summed);
- ``each_in_turn``: every agency's figures in the city warehouse, one
  :func:`compute_metrics` per agency;
- ``city``: :func:`compute_city_metrics`, every agency and the rollup in one pass;
- ``history_own`` / ``history_each_in_turn`` / ``history_city``: the same for a
  year-to-date history (:func:`compute_metrics_history`, :func:`compute_city_history`).

Wall-clock seconds on a shared machine: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agencies", type=int, default=3)
    parser.add_argument("--scale", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--pg", help="a PostgreSQL URL for the city warehouse")
    args = parser.parse_args()

    from city_support import BASE, _settings, copy_agencies

    from rulewatch.common.periods import Period
    from rulewatch.common.workdays import calendar_of
    from rulewatch.demo.agencies import demo_agencies, start_agency_sources
    from rulewatch.demo.data import DEMO_TODAY
    from rulewatch.metrics.compute import (
        compute_city_history,
        compute_city_metrics,
        compute_metrics,
        compute_metrics_history,
    )
    from rulewatch.warehouse.db import open_warehouse
    from rulewatch.warehouse.sync import sync_source

    targets = BASE.targets
    period = Period.parse("2023")
    year = Period.parse(str(DEMO_TODAY.year))
    days = [year.start + timedelta(days=n) for n in range((DEMO_TODAY - year.start).days + 1)]
    figures: dict[str, object] = {"agencies": args.agencies, "scale": args.scale}
    with tempfile.TemporaryDirectory() as folder:
        agencies = demo_agencies(args.agencies, scale=args.scale, failing=False)
        singles: dict[str, str] = {}
        with start_agency_sources(agencies) as city:
            for agency in agencies:
                url = f"sqlite:///{Path(folder) / (agency.agency_id + '.db')}"
                env = {
                    **city.single_env(agency.agency_id),
                    "RULEWATCH_WAREHOUSE_URL": url,
                    "RULEWATCH_DATA_DIR": folder,
                }
                settings = _settings(env)
                engine = open_warehouse(url, calendar_of(settings))
                for source in ("permits", "enforcement", "docreview"):
                    sync_source(engine, settings, source)
                engine.dispose()
                singles[agency.agency_id] = url
        city_url = args.pg or f"sqlite:///{Path(folder) / 'city.db'}"
        city_engine = open_warehouse(city_url, calendar_of(BASE))
        copy_agencies(singles, city_engine)
        ids = list(singles)
        every = dict.fromkeys(ids, targets)
        owns = [open_warehouse(url, calendar_of(BASE)) for url in singles.values()]
        own_conns = [engine.connect() for engine in owns]
        history_repeat = max(1, args.repeat // 2)
        with city_engine.connect() as conn:
            figures["own"] = _median(
                lambda: [compute_metrics(o, period, DEMO_TODAY, targets) for o in own_conns],
                args.repeat,
            )
            figures["each_in_turn"] = _median(
                lambda: [
                    compute_metrics(conn, period, DEMO_TODAY, targets, agency_id=a) for a in ids
                ],
                args.repeat,
            )
            figures["city"] = _median(
                lambda: compute_city_metrics(conn, period, DEMO_TODAY, every, targets),
                args.repeat,
            )
            figures["history_days"] = len(days)
            figures["history_own"] = _median(
                lambda: [compute_metrics_history(o, year, days, targets) for o in own_conns],
                history_repeat,
            )
            figures["history_each_in_turn"] = _median(
                lambda: [
                    compute_metrics_history(conn, year, days, targets, agency_id=a) for a in ids
                ],
                history_repeat,
            )
            figures["history_city"] = _median(
                lambda: compute_city_history(conn, year, days, every, targets), history_repeat
            )
        for own in own_conns:
            own.close()
        for engine in owns:
            engine.dispose()
        city_engine.dispose()
    figures["backend"] = "postgresql" if args.pg else "sqlite"
    figures["measured_on"] = date.today().isoformat()
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
