"""The nightly Prefect flow: one task per source, then the metrics.

Orchestration only: every task calls one plain function. Sources run
concurrently and independently; if one fails after its retries the others
still load, the metrics are still computed, and the flow run ends failed
naming the source.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rulewatch.metrics import MetricValue, compute_metrics
from rulewatch.periods import Period
from rulewatch.settings import SOURCE_NAMES, Settings, load_settings
from rulewatch.sync import ProgressCallback, SourceSyncResult, sync_source
from rulewatch.warehouse.db import make_engine, open_warehouse
from rulewatch.workdays import WorkingCalendar

#: Set by the CLI to show live progress; tasks run in threads of this process.
_PROGRESS_SINK: list[ProgressCallback | None] = [None]


@dataclass
class NightlyResult:
    """What a nightly run did: per-source counts and the year-to-date metrics."""

    job_id: str
    as_of: date
    sources: dict[str, SourceSyncResult] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    metrics: list[MetricValue] = field(default_factory=list)


class SourcesFailed(Exception):
    """One or more sources failed after their retries; the others loaded."""

    def __init__(self, result: NightlyResult) -> None:
        self.result = result
        names = ", ".join(f"{k} ({v})" for k, v in result.failed.items())
        super().__init__(f"sync failed for: {names}")


def set_progress_sink(callback: ProgressCallback | None) -> None:
    """Where tasks report pages loaded (a Rich progress bar, or log lines)."""
    _PROGRESS_SINK[0] = callback


def calendar_of(settings: Settings) -> WorkingCalendar:
    return WorkingCalendar.from_lists(settings.calendar.holidays, settings.calendar.makeup_workdays)


@task(name="sync-source", cache_policy=NO_CACHE, task_run_name="sync-{source}")
def sync_source_task(source: str, job_id: str, full_refresh: bool) -> SourceSyncResult:
    """Extract, validate and load one source."""
    settings = load_settings()
    engine = make_engine(settings.warehouse_url)
    try:
        result = sync_source(
            engine,
            settings,
            source,
            job_id=job_id,
            full_refresh=full_refresh,
            progress=_PROGRESS_SINK[0],
        )
    finally:
        engine.dispose()
    get_run_logger().info(
        "%s: %d pages, %d read, %d loaded, %d set aside in %.1fs",
        source,
        result.pages,
        result.records_read,
        result.records_loaded,
        result.records_set_aside,
        result.duration_seconds,
    )
    return result


@task(name="compute-metrics", cache_policy=NO_CACHE)
def metrics_task(period: str, as_of: date) -> list[MetricValue]:
    """The period's metrics from the warehouse, in SQL."""
    settings = load_settings()
    engine = make_engine(settings.warehouse_url)
    try:
        with engine.connect() as conn:
            return compute_metrics(conn, Period.parse(period), as_of, settings.targets)
    finally:
        engine.dispose()


@flow(name="rulewatch-nightly", log_prints=False)
def nightly_sync(
    sources: list[str] | None = None,
    full_refresh: bool = False,
    as_of: date | None = None,
) -> NightlyResult:
    """Sync every source (concurrently), then compute the year-to-date metrics."""
    settings = load_settings()
    names = list(sources or SOURCE_NAMES)
    for name in names:
        settings.source(name)  # a missing URL or credential fails before any work
    as_of = as_of or today_in(settings)
    engine = open_warehouse(settings.warehouse_url, calendar_of(settings))
    engine.dispose()
    result = NightlyResult(job_id=str(uuid.uuid4()), as_of=as_of)
    futures = {n: sync_source_task.submit(n, result.job_id, full_refresh) for n in names}
    for name, future in futures.items():
        future.wait()
        state = future.state
        if state.is_completed():
            result.sources[name] = future.result()
        else:
            exc = future.result(raise_on_failure=False)
            result.failed[name] = str(exc)
    result.metrics = metrics_task(str(as_of.year), as_of)
    if result.failed:
        raise SourcesFailed(result)
    return result


def today_in(settings: Settings) -> date:
    """Today's date in the configured timezone (the default as-of date)."""
    return datetime.now(settings.timezone).date()
