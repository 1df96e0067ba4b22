"""Shared by the report tests: a warehouse loaded from the real demo sources."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from pgschema import fresh_schema_url
from sqlalchemy import Engine

from rulewatch.config.settings import Settings, load_settings
from rulewatch.demo.data import DEMO_TODAY
from rulewatch.demo.servers import start_demo_sources
from rulewatch.flows.nightly import calendar_of
from rulewatch.report.tables import backfill_history, refresh_report_tables
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.sync import sync_source

HISTORY_FROM = date(2024, 4, 1)  # the filing slip starts on 2024-04-05


@contextmanager
def warehouse_url(backend: str, folder: Path) -> Iterator[str]:
    """An empty warehouse: an SQLite file in ``folder`` or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'warehouse.db'}"
        return
    with fresh_schema_url() as url:
        yield url


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
