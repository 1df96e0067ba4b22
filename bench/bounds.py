"""How long rulewatch's time bounds take to act, and how fast the demo's data is made.

    python bench/bounds.py              # everything
    python bench/bounds.py --only demo  # one group: engine, cli, postgres, demo, warehouse

The tests assert that each guard ends a run by itself, with its message and
exit code; the seconds it took are measured here, not asserted there (a loaded
machine makes any tight bound flaky, a loose one proves nothing). Each figure is
printed beside the limit it is about, and all of them are written to
``bench/results/bounds-<timestamp>.json``.

The scenarios are the tests' own: the scripted servers of ``tests/`` (a silent
TCP host, trickling and silent HTTP sources) and the real ``rulewatch`` command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

BENCH_DIR = Path(__file__).resolve().parent
TESTS_DIR = BENCH_DIR.parent / "tests"
sys.path.insert(0, str(TESTS_DIR))  # the tests' scripted servers and CLI helpers

from cli_support import clean_env, rulewatch_cmd  # noqa: E402
from ops_servers import SilentServer  # noqa: E402
from scripted_sources import ScriptedSource, silent, trickle  # noqa: E402

from rulewatch.config.settings import PACKAGE_CONFIG_DIR, SourceEndpoint, SourceOptions  # noqa: E402
from rulewatch.extract import docreview, enforcement, permits  # noqa: E402
from rulewatch.extract.engine import ParseContext, SourceClient, SourceError, SourceSpec  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CREDENTIALS = {"token": "t0ken", "api_key": "k3y", "user": "u", "password": "s3cret"}
Figure = dict[str, Any]


@contextmanager
def timed(figures: list[Figure], name: str, limit: str) -> Iterator[dict[str, Any]]:
    """Time the block as one figure; the block may add fields (e.g. the message)."""
    extra: dict[str, Any] = {}
    started = time.perf_counter()
    yield extra
    seconds = time.perf_counter() - started
    figures.append({"name": name, "seconds": round(seconds, 3), "limit": limit, **extra})
    print(f"  {seconds:7.2f} s  {name}" + (f" ({limit})" if limit else ""), flush=True)


# --- the source engine's deadlines (in process) ---------------------------------------------


def _read_until_error(spec: SourceSpec, url: str, **options: float) -> str:
    """One pass over the first stream, which must end in a SourceError; its message."""
    opts = {"page_size": 2, "max_retries": 0, "backoff_factor": 0, **options}
    ctx = ParseContext(ZoneInfo("Asia/Shanghai"), b"key", datetime(2024, 5, 1, tzinfo=UTC))
    endpoint = SourceEndpoint(spec.name, url, CREDENTIALS, SourceOptions(**opts))
    client = SourceClient(spec, endpoint, ctx)
    stream = spec.streams[0]
    try:
        for _page in stream.paginator.pages(client, stream, None):
            pass
    except SourceError as exc:
        return str(exc)
    finally:
        client.close()
    raise RuntimeError(f"{spec.name}: the pass ended without the expected error")


def engine_bounds(figures: list[Figure]) -> None:
    body = b'{"data": [], "next_cursor": null}' + b" " * 200
    with ScriptedSource("permits", []) as source:
        source.raw = trickle(source, body, 0.2)
        with timed(figures, "engine: body trickled 1 byte / 0.2 s", "request deadline 1.5 s") as f:
            f["message"] = _read_until_error(
                permits.SPEC, source.url, timeout_seconds=1, request_deadline_seconds=1.5
            )
    with ScriptedSource("enforcement", []) as source:
        source.raw = trickle(source, b"{}", 0.2, headers_too=True)
        with timed(figures, "engine: head trickled, retried", "retry deadline 2.5 s") as f:
            f["message"] = _read_until_error(
                enforcement.SPEC,
                source.url,
                timeout_seconds=1,
                request_deadline_seconds=1,
                retry_deadline_seconds=2.5,
                max_retries=10,
            )
    with ScriptedSource("docreview", []) as source:
        source.raw = silent(source)
        with timed(figures, "engine: a server that never answers", "retry deadline 1.8 s") as f:
            f["message"] = _read_until_error(
                docreview.SPEC,
                source.url,
                timeout_seconds=0.5,
                retry_deadline_seconds=1.8,
                max_retries=10,
            )
    with ScriptedSource("permits", []) as source:
        source.misbehave = lambda _n, _p, _q: (429, {"error": "slow down"}, {"Retry-After": "30"})
        with timed(
            figures, "engine: Retry-After 30 s past the deadline", "fails at once, deadline 10 s"
        ) as f:
            f["message"] = _read_until_error(
                permits.SPEC, source.url, max_retries=5, retry_deadline_seconds=10
            )


# --- the rulewatch command (a subprocess, as an operator runs it) ---------------------------


def _config(folder: Path, source_timeout: float, **schedule: str) -> Path:
    """The packaged config with sources that give up fast and ``schedule`` replacements."""
    shutil.copytree(PACKAGE_CONFIG_DIR, folder)
    text = (folder / "sources.yaml").read_text(encoding="utf-8")
    text = re.sub(r"max_retries: \d+", "max_retries: 2", text)
    text = re.sub(r"backoff_factor: [\d.]+", "backoff_factor: 0", text)
    text = re.sub(r"timeout_seconds: [\d.]+", f"timeout_seconds: {source_timeout}", text)
    (folder / "sources.yaml").write_text(text, encoding="utf-8")
    text = (folder / "schedule.yaml").read_text(encoding="utf-8")
    text = text.replace("source_task: 1", "source_task: 0")
    for old, new in schedule.items():
        text = text.replace(old, new)
    (folder / "schedule.yaml").write_text(text, encoding="utf-8")
    return folder


def _env(work: Path, config: Path, **values: str) -> dict[str, str]:
    """A clean environment for one ``rulewatch`` run in ``work``; ``values`` win."""
    defaults = {
        "RULEWATCH_DATA_DIR": str(work / "data"),
        "RULEWATCH_WAREHOUSE_URL": f"sqlite:///{work / 'wh.db'}",
        "RULEWATCH_CONFIG_DIR": str(config),
        "PREFECT_HOME": str(work / "prefect"),
        "RULEWATCH_PII_KEY": "bench",
        "RULEWATCH_PERMITS_TOKEN": "t",
    }
    return clean_env(**{**defaults, **values})


def _last_line(err: Path) -> str:
    lines = err.read_text(encoding="utf-8").strip().splitlines()
    return lines[-1] if lines else ""


def cli_bounds(figures: list[Figure], work: Path) -> None:
    config = _config(
        work / "config-silent-wh",
        30,
        **{"warehouse_connect_seconds: 15": "warehouse_connect_seconds: 2"},
    )
    with SilentServer() as host:
        url = f"postgresql+psycopg://root@127.0.0.1:{host.port}/test"
        env = _env(work, config, RULEWATCH_WAREHOUSE_URL=url)
        with timed(figures, "cli: `kpis` against a silent warehouse host", "connect 2 s") as f:
            res = subprocess.run(
                rulewatch_cmd("kpis", "--period", "2023"),
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            f["exit"], f["message"] = res.returncode, res.stderr.strip()[-300:]

    config = _config(work / "config-blocked", 600)
    with SilentServer() as source:
        env = _env(work, config, RULEWATCH_PERMITS_URL=f"http://127.0.0.1:{source.port}")
        err = work / "sigterm.log"
        proc = subprocess.Popen(
            rulewatch_cmd("sync", "--source", "permits"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err.open("w"),
            start_new_session=True,
        )
        try:
            if not source.accepted.wait(300):
                raise RuntimeError(f"the sync never reached the source: {err.read_text()}")
            with timed(figures, "cli: SIGTERM to exit, sync blocked on a source", "") as f:
                proc.send_signal(signal.SIGTERM)
                f["exit"] = proc.wait(300)
            f["message"] = _last_line(err)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)

    config = _config(
        work / "config-flow-timeout", 600, **{"flow_seconds: 14400": "flow_seconds: 20"}
    )
    with SilentServer() as source:
        env = _env(work, config, RULEWATCH_PERMITS_URL=f"http://127.0.0.1:{source.port}")
        err = work / "flow-timeout.log"
        with timed(
            figures, "cli: sync blocked on a source, start to exit", "flow timeout 20 s"
        ) as f:
            with err.open("w") as stderr:
                res = subprocess.run(
                    rulewatch_cmd("sync", "--source", "permits"),
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    timeout=600,
                )
            f["exit"], f["message"] = res.returncode, _last_line(err)


def postgres_bounds(figures: list[Figure]) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from rulewatch.config.settings import TimeoutsSection
    from rulewatch.warehouse.db import make_engine

    engine = make_engine(PG_URL, TimeoutsSection(warehouse_statement_seconds=1))
    try:
        name, limit = "PostgreSQL: `SELECT pg_sleep(30)`", "statement timeout 1 s"
        with engine.connect() as conn, timed(figures, name, limit) as f:
            try:
                conn.execute(text("SELECT pg_sleep(30)"))
            except OperationalError as exc:
                f["message"] = str(exc.orig).strip()
    finally:
        engine.dispose()


# --- the demo's data, and the calendar table --------------------------------------------


def demo_bounds(figures: list[Figure]) -> None:
    from rulewatch.demo import data
    from rulewatch.demo.servers import start_demo_sources
    from rulewatch.demo.store import DemoWorld

    with timed(figures, "demo: start the three source systems", ""):
        handle = start_demo_sources()
    handle.stop()
    with timed(figures, "demo: start the source systems with 20,000 synthetic records", ""):
        handle = start_demo_sources(scale=20_000)
    handle.stop()
    with timed(figures, "demo: DemoWorld of 1,000,000 synthetic records", "made on demand"):
        world = DemoWorld(scale=1_000_000)
    store = world.store("enforcement")
    with timed(figures, "demo: page 1,400 of the inspections (200 a page)", "at 1,000,000"):
        store.page_number(None, 1_400, 200)
    with timed(figures, "demo: touch 1% of the documents", "at 1,000,000") as f:
        f["touched"] = world.touch_fraction("docreview", 0.01)
    synthetic = data.SyntheticPermits(500_000)
    with timed(figures, "demo: 20,000 synthetic permit payloads", ""):
        for i in range(0, 500_000, 25):
            synthetic.payload(i)


def warehouse_bounds(figures: list[Figure], work: Path) -> None:
    from rulewatch.common.workdays import calendar_of
    from rulewatch.config.settings import load_settings
    from rulewatch.warehouse.db import open_warehouse

    settings = load_settings({"RULEWATCH_DATA_DIR": str(work / "data"), "RULEWATCH_PII_KEY": "b"})
    url = f"sqlite:///{work / 'calendar.db'}"
    with timed(figures, "warehouse: open a new SQLite warehouse (schema + calendar)", ""):
        engine = open_warehouse(url, calendar_of(settings))
    engine.dispose()


GROUPS: dict[str, Callable[[list[Figure], Path], None]] = {
    "engine": lambda figures, _work: engine_bounds(figures),
    "cli": cli_bounds,
    "postgres": lambda figures, _work: postgres_bounds(figures),
    "demo": lambda figures, _work: demo_bounds(figures),
    "warehouse": warehouse_bounds,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=sorted(GROUPS), action="append", help="one group")
    args = parser.parse_args()
    started = datetime.now()
    load_start = [round(x, 2) for x in os.getloadavg()]
    figures: list[Figure] = []
    work = Path(tempfile.mkdtemp(prefix="rulewatch-bounds-"))
    try:
        for name in args.only or list(GROUPS):
            print(f"{name}:", flush=True)
            GROUPS[name](figures, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = BENCH_DIR / "results" / f"bounds-{started:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    body = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "cores": os.cpu_count(),
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "figures": figures,
    }
    out.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"load average (1/5/15 min) {load_start} -> {body['load_average_end']}; {out}")


if __name__ == "__main__":
    main()
