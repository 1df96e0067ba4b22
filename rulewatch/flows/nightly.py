"""The nightly Prefect flow: one task per source, data quality, metrics, target checks.

Orchestration only: every task calls one plain function. Sources run
concurrently and independently; if one fails after its retries the others
still load, the metrics are still computed, and the flow run ends failed
naming the source.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State
from sqlalchemy import Engine

from rulewatch.alerts.announce import AlertRun, run_alerting
from rulewatch.alerts.health import announce_job_failure, health_pass
from rulewatch.checks.gx_runner import Recorder, RecordError
from rulewatch.checks.quality import QualityRun, run_quality_checks
from rulewatch.checks.targets import TargetRun, nightly_periods, run_target_checks
from rulewatch.common.periods import Period
from rulewatch.common.text import server_text
from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import SOURCE_NAMES, Settings, load_settings
from rulewatch.extract.engine import SourceError
from rulewatch.flows.limits import source_task, step_task
from rulewatch.metrics.compute import MetricValue, compute_metrics
from rulewatch.report.provisional import recompute_provisional_history
from rulewatch.report.tables import (
    ReportTablesRefresh,
    refresh_report_tables,
    report_tables_current,
)
from rulewatch.warehouse.db import WarehouseError, ensure_calendar, make_engine, open_warehouse
from rulewatch.warehouse.lock import job_lock, migrate_if_behind
from rulewatch.warehouse.runs import heal_runs
from rulewatch.warehouse.sync import MAX_ERROR_TEXT, ProgressCallback, SourceSyncResult, sync_source

#: Set by the CLI to show live progress; tasks run in threads of this process.
_PROGRESS_SINK: list[ProgressCallback | None] = [None]
#: Each running job's Great Expectations process, by job id (tasks run in threads of this one).
_RECORDERS: dict[str, Recorder] = {}


@dataclass
class NightlyResult:
    """What a nightly run did: per-source counts and the year-to-date metrics."""

    job_id: str
    as_of: date
    sources: dict[str, SourceSyncResult] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    metrics: list[MetricValue] = field(default_factory=list)
    quality: QualityRun | None = None  # data-quality suites over the rows this job wrote
    targets: TargetRun | None = None  # target checks, with every offender
    alerts: AlertRun | None = None  # state changes announced and deliveries made
    report_tables: ReportTablesRefresh | None = None  # report tables refreshed at as_of


class SourcesFailed(Exception):
    """One or more sources failed after their retries; the others loaded."""

    def __init__(self, result: NightlyResult) -> None:
        self.result = result
        names = ", ".join(f"{k} ({v})" for k, v in result.failed.items())
        super().__init__(f"sync failed for: {names}")


def set_progress_sink(callback: ProgressCallback | None) -> None:
    """Where tasks report pages loaded (a Rich progress bar, or log lines)."""
    _PROGRESS_SINK[0] = callback


@task(name="sync-source", cache_policy=NO_CACHE, task_run_name="sync-{source}")
def sync_source_task(source: str, job_id: str, full_refresh: bool) -> SourceSyncResult | State:
    """Extract, validate and load one source."""
    settings = load_settings()
    engine = make_engine(settings.warehouse_url, settings.schedule.timeouts)
    try:
        result = sync_source(
            engine,
            settings,
            source,
            job_id=job_id,
            full_refresh=full_refresh,
            progress=_PROGRESS_SINK[0],
        )
    except SourceError as exc:  # an expected failure: one line, no traceback
        return Failed(message=str(exc), data=exc)
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
    engine = make_engine(settings.warehouse_url, settings.schedule.timeouts)
    try:
        with engine.connect() as conn:
            return compute_metrics(conn, Period.parse(period), as_of, settings.targets)
    finally:
        engine.dispose()


@task(name="data-quality", cache_policy=NO_CACHE)
def quality_task(job_id: str, as_of: date) -> QualityRun:
    """The data-quality suites over the rows this job wrote (critical failures set aside)."""
    settings = load_settings()
    engine = make_engine(settings.warehouse_url, settings.schedule.timeouts)
    try:
        run = run_quality_checks(
            engine, settings, job_id=job_id, as_of=as_of, recorder=_RECORDERS.get(job_id)
        )
    finally:
        engine.dispose()
    get_run_logger().info(
        "data quality: %d rows, %d expectations failed, %d set aside, %d released in %.1fs",
        run.rows_checked,
        len(run.failed),
        run.set_aside,
        run.released,
        run.seconds,
    )
    return run


@task(name="target-checks", cache_policy=NO_CACHE)
def target_checks_task(job_id: str, as_of: date, quality: QualityRun | None) -> TargetRun:
    """The target checks of the nightly periods; the scorecard as Prefect artifacts."""
    from rulewatch.checks.config import load_checks_config
    from rulewatch.checks.display import publish_artifacts

    settings = load_settings()
    checks = load_checks_config(settings)
    engine = make_engine(settings.warehouse_url, settings.schedule.timeouts)
    try:
        periods = nightly_periods(as_of, checks.target_periods)
        run = run_target_checks(
            engine,
            settings,
            periods,
            as_of,
            job_id=job_id,
            checks=checks,
            recorder=_RECORDERS.get(job_id),
        )
    finally:
        engine.dispose()
    publish_artifacts(run, quality, checks.listed_offenders)
    logger = get_run_logger()
    for c in run.slipped:
        logger.warning(
            "%s %s slipped: %s / %s, target %s; %d record(s), first %s",
            c.metric,
            c.period,
            c.numerator,
            c.denominator,
            c.target,
            c.offender_count,
            ", ".join(o.natural_key for o in c.offenders[:5]),
        )
    logger.info("target checks: %d checked, %d slipped", len(run.checks), len(run.slipped))
    return run


@task(name="report-tables", cache_policy=NO_CACHE)
def report_tables_task(job_id: str, as_of: date) -> ReportTablesRefresh:
    """Refresh the report tables (metrics history, latest statuses, offenders) at as_of,
    unless they hold that date's figures already and nothing was written since."""
    settings = load_settings()
    engine = make_engine(settings.warehouse_url, settings.schedule.timeouts)
    try:
        recomputed = recompute_provisional_history(engine, settings)
        with engine.connect() as conn:
            current = not recomputed.ran and report_tables_current(conn, settings, as_of, job_id)
        if current:
            refreshed = ReportTablesRefresh(as_of=as_of)
        else:
            refreshed = refresh_report_tables(engine, settings, as_of, job_id=job_id)
    finally:
        engine.dispose()
    if current:
        get_run_logger().info(
            "report tables: already hold %s and nothing was written since; kept", as_of
        )
        return refreshed
    if recomputed.ran:
        get_run_logger().info(
            "calendar changed: %d stored (period, as-of) figures recomputed, %d re-checked, "
            "%d statuses rewritten",
            len(recomputed.recomputed),
            len(recomputed.rechecked),
            recomputed.statuses,
        )
    get_run_logger().info(
        "report tables: %d periods, %d metric rows, %d statuses, %d offenders",
        len(refreshed.periods),
        refreshed.metric_rows,
        refreshed.statuses,
        refreshed.offenders,
    )
    return refreshed


@task(name="gx-record", cache_policy=NO_CACHE)
def gx_record_task(job_id: str) -> None:
    """Wait for Great Expectations to write this job's validation results and Data Docs
    (it records in its own process while the job goes on); its own step, so the wait
    shows in Prefect and in the benchmark."""
    _RECORDERS[job_id].finish()


@task(name="alerts", cache_policy=NO_CACHE)
def alerts_task(as_of: date, check_run_id: str | None = None) -> AlertRun:
    """Announce slips, recoveries, reminders and early warnings of the target checks
    that ran one step before (``check_run_id``); send what is pending."""
    settings = load_settings()
    engine = make_engine(settings.warehouse_url, settings.schedule.timeouts)
    try:
        # source failures, recoveries, stale data and the job's own recovery, sent below
        health = health_pass(engine, settings, job_got_through=True, deliver=False)
        run = run_alerting(engine, settings, as_of, check_run_id=check_run_id)
    finally:
        engine.dispose()
    run.planned[:0] = health.planned
    logger = get_run_logger()
    for a in health.planned:
        logger.warning("alert raised: %s", a.title)
    for d in run.deliveries:
        logger.info("alert %s to %s: %s", d.alert_id, d.channel, d.status)
    return run


@flow(
    name="rulewatch-nightly",
    log_prints=False,
    on_failure=[announce_job_failure],  # a failed or crashed night is announced
    on_crashed=[announce_job_failure],
)
def nightly_sync(
    sources: list[str] | None = None,
    full_refresh: bool = False,
    as_of: date | None = None,
    lock_wait_seconds: float = 0,
) -> NightlyResult | State:
    """Sync every source (concurrently), then compute the year-to-date metrics.

    The whole run holds the agency's job lock (migrations, when the schema is behind,
    the warehouse-wide lock before it): a second sync waits up to ``lock_wait_seconds``,
    then fails with WarehouseBusy before writing anything.
    """
    settings = load_settings()
    names = list(sources or SOURCE_NAMES)
    for name in names:
        settings.source(name)  # a missing URL or credential fails before any work
    as_of = as_of or today_in(settings)
    recorder: Recorder | None = None
    try:
        with locked_warehouse(settings, "sync", lock_wait_seconds) as engine:
            heal_runs(engine)  # runs left `running` by a killed job become `abandoned`
            result = NightlyResult(job_id=str(uuid.uuid4()), as_of=as_of)
            sync_task = source_task(sync_source_task, settings)
            futures = {n: sync_task.submit(n, result.job_id, full_refresh) for n in names}
            for name, future in futures.items():
                future.wait()
                state = future.state
                if state.is_completed():
                    result.sources[name] = future.result()
                else:
                    # a crash's message quotes its exception, which may quote a server
                    result.failed[name] = server_text(state.message or "failed", MAX_ERROR_TEXT)
            # GX imports in its own process while the checks decide in SQL, then writes
            # their results and Data Docs while the job goes on; the job waits for it last.
            # (Started during the sync, its import slowed the sync by more than it saved.)
            recorder = _RECORDERS[result.job_id] = Recorder()
            ensure_calendar(engine, calendar_of(settings))  # the years the new data needs
            result.quality = step_task(quality_task, settings)(result.job_id, as_of)
            result.metrics = step_task(metrics_task, settings)(str(as_of.year), as_of)
            result.targets = step_task(target_checks_task, settings)(
                result.job_id, as_of, result.quality
            )
            result.report_tables = step_task(report_tables_task, settings)(result.job_id, as_of)
            result.alerts = step_task(alerts_task, settings)(as_of, result.targets.check_run_id)
            step_task(gx_record_task, settings)(result.job_id)
    except (WarehouseError, RecordError) as exc:  # busy, unreachable, GX failed: one line
        return Failed(message=str(exc), data=exc)
    finally:
        if recorder is not None:
            _RECORDERS.pop(result.job_id, None)
            recorder.close()
    if result.failed:  # the run ends failed, naming the sources; no traceback to show
        return Failed(message=str(SourcesFailed(result)), data=result)
    return result


@contextmanager
def locked_warehouse(settings: Settings, job: str, wait_seconds: float) -> Iterator[Engine]:
    """The warehouse for one writing job of ``settings``' agency: the schema migrated
    first if behind (under the warehouse-wide lock, briefly), then the agency's job lock
    held for the block (else WarehouseBusy), the engine disposed at the end."""
    engine = make_engine(settings.warehouse_url, settings.schedule.timeouts)
    try:
        calendar = calendar_of(settings)
        migrate_if_behind(engine, job, calendar, wait_seconds=wait_seconds)
        with job_lock(engine, job, wait_seconds=wait_seconds, agency_id=settings.agency_id):
            timeouts = settings.schedule.timeouts
            # current by now: this brings the calendar table up to date only
            open_warehouse(settings.warehouse_url, calendar, timeouts).dispose()
            yield engine
    finally:
        engine.dispose()


def today_in(settings: Settings) -> date:
    """Today's date in the configured timezone (the default as-of date)."""
    return datetime.now(settings.timezone).date()
