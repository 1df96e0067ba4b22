"""Shared by the report tests: a warehouse loaded from the real demo sources."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from rulewatch.demo.data import DEMO_TODAY
from rulewatch.demo.servers import start_demo_sources
from rulewatch.flows.nightly import calendar_of
from rulewatch.report.tables import backfill_history, refresh_report_tables
from rulewatch.settings import Settings, load_settings
from rulewatch.sync import sync_source
from rulewatch.warehouse.db import open_warehouse

HISTORY_FROM = date(2024, 4, 1)  # the filing slip starts on 2024-04-05
PG_URL = os.environ.get(  # as in tests/conftest.py, which cannot be imported
    "RULEWATCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def warehouse_url(backend: str, folder: Path) -> Iterator[str]:
    """An empty warehouse: an SQLite file in ``folder`` or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'warehouse.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        problem = f"PostgreSQL at {PG_URL} not reachable: {str(exc).splitlines()[0]}"
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (CI requires PostgreSQL)")
        pytest.skip(problem)
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def demo_warehouse(url: str, folder: Path) -> Iterator[tuple[Engine, Settings]]:
    """The demo sources synced into ``url``, report tables refreshed at the demo's today,
    with the year-to-date history of April and May 2024 rebuilt."""
    with start_demo_sources() as demo:
        env = {
            **demo.env(),
            "RULEWATCH_WAREHOUSE_URL": url,
            "RULEWATCH_DATA_DIR": str(folder),
            "RULEWATCH_PII_KEY": "report-test-key",
        }
        settings = load_settings(env)
        engine = open_warehouse(url, calendar_of(settings))
        for source in ("permits", "enforcement", "docreview"):
            sync_source(engine, settings, source, job_id="report-test")
    backfill_history(engine, settings, HISTORY_FROM, DEMO_TODAY)
    refresh_report_tables(engine, settings, DEMO_TODAY, job_id="report-test")
    try:
        yield engine, settings
    finally:
        engine.dispose()
