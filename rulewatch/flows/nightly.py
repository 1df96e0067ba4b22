"""The nightly Prefect flow: one task per source, data quality, metrics, target checks.

Orchestration only: every task calls one plain function. Sources run
concurrently and independently; if one fails after its retries the others
still load, the metrics are still computed, and the flow run ends failed
naming the source.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar, cast
from uuid import UUID

from prefect import Task, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
from prefect.states import Failed, State
from sqlalchemy import Engine

from rulewatch.alerts.announce import AlertRun, run_alerting
from rulewatch.alerts.digest import DigestRun, run_digest
from rulewatch.alerts.health import announce_job_failure, health_pass
from rulewatch.checks.gx_runner import Recorder, RecordError
from rulewatch.checks.quality import QualityRun, run_quality_checks
from rulewatch.checks.targets import (
    TargetRun,
    job_changed_nothing,
    nightly_periods,
    run_target_checks,
)
from rulewatch.common.files import file_error
from rulewatch.common.periods import Period
from rulewatch.common.text import server_text
from rulewatch.common.workdays import calendar_of
from rulewatch.config.agencies import ALL_AGENCIES, load_agencies, settings_for
from rulewatch.config.settings import SOURCE_NAMES, ConfigError, Settings, load_settings
from rulewatch.extract.engine import SourceError
from rulewatch.flows.engine import quicken_prefect
from rulewatch.flows.limits import (
    WAREHOUSE_LIMIT,
    slots,
    source_limit,
    source_task,
    step_task,
    upsert_limits,
    wanted_limits,
    warehouse_slots,
)
from rulewatch.metrics.compute import MetricValue, compute_metrics
from rulewatch.report.provisional import recompute_provisional_history
from rulewatch.report.tables import (
    ReportTablesRefresh,
    refresh_report_tables,
    refresh_rollup_metrics,
    report_tables_current,
)
from rulewatch.warehouse.db import (
    WarehouseError,
    ensure_calendar,
    is_database_error,
    make_engine,
    migrate,
    refresh_statistics,
    warehouse_error,
)
from rulewatch.warehouse.lock import job_lock, migrate_if_behind
from rulewatch.warehouse.runs import heal_runs
from rulewatch.warehouse.sync import MAX_ERROR_TEXT, ProgressCallback, SourceSyncResult, sync_source

quicken_prefect()  # no wait for the heartbeat thread, no FastAPI import for parameters

#: Set by the CLI to show live progress; tasks run in threads of this process.
_PROGRESS_SINK: list[ProgressCallback | None] = [None]
#: Each running job's Great Expectations process, by job id (tasks run in threads of this one).
_RECORDERS: dict[str, Recorder] = {}
#: How many agencies' nights run at once in this process, by city run.
_AGENCY_SLOTS: dict[str, threading.BoundedSemaphore] = {}
#: The flow of one agency's night (its deployment: ``rulewatch-agency-nightly/<name>``).
AGENCY_FLOW = "rulewatch-agency-nightly"
F = TypeVar("F", bound=Callable[..., Any])


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


def expected_failures(doing: str) -> Callable[[F], F]:
    """A step whose warehouse fails (full, gone, read-only, ...), that cannot write a
    file (a full disk, a folder in the way) or whose GX record fails ends as one
    failed line naming what it could not ``doing``, the path or GX's reason, rather
    than a traceback in the log and an "unexpected" error: its task returns a failed
    state with the error (raised in the flow by :func:`step_value`)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def step(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if isinstance(exc, RecordError):  # GX's own line (a full disk, ...)
                    return Failed(message=str(exc), data=exc)
                failed = failed_state(exc, lambda: load_settings().warehouse_url, doing)
                if failed is None:
                    raise
                return failed

        return cast(F, step)

    return wrap


def failed_state(exc: BaseException, warehouse_url: Callable[[], str], doing: str) -> State | None:
    """The one-line failed state of an expected failure: the warehouse's (``doing``
    what, at ``warehouse_url()``) or a file's; None for anything else (a bug)."""
    if is_database_error(exc):
        error = warehouse_error(warehouse_url(), exc, doing)
        return Failed(message=str(error), data=error)
    if isinstance(exc, OSError) and exc.filename is not None:  # not a socket's
        return Failed(message=file_error(exc), data=exc)
    return None


def _step(task: Task, settings: Settings, *args: Any) -> Any:
    """Run a later step with its configured timeout; its value, or its error raised (a
    step whose database failed returns a failed state, :func:`expected_failures`)."""
    return step_value(step_task(task, settings)(*args))


def step_value(outcome: Any) -> Any:
    """A step's value; a failed state or an error in its place is raised."""
    if isinstance(outcome, State):
        error = outcome.result(raise_on_failure=False)
        if isinstance(error, Exception):
            raise error
        raise WarehouseError(outcome.message or outcome.name)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def agency_settings(agency: str | None = None) -> Settings:
    """The settings a step reads: one agency's of ``agencies.yaml`` (its sources,
    targets, alert channels, folder), or, for None, today's settings unchanged."""
    settings = load_settings()
    if agency is None:
        return settings
    agencies = load_agencies(settings)
    return settings_for(settings, agencies, agencies.get(agency))


@task(name="sync-source", cache_policy=NO_CACHE, task_run_name="sync-{source}")
@expected_failures("load a source")
def sync_source_task(
    source: str,
    job_id: str,
    full_refresh: bool,
    agency: str | None = None,
    limited: bool = False,
) -> SourceSyncResult | State:
    """Extract, validate and load one source (of one agency); ``limited``: holding a
    slot of the source host's concurrency limit while it reads."""
    settings = agency_settings(agency)
    engine = make_engine(settings.warehouse_url, settings.schedule.timeouts)
    try:
        host = [source_limit(settings.source(source).base_url)] if limited else []
        with slots(host, limited):
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
@expected_failures("compute the metrics")
def metrics_task(period: str, as_of: date, agency: str | None = None) -> list[MetricValue]:
    """The period's metrics from the warehouse, in SQL."""
    settings = agency_settings(agency)
    engine = make_engine(settings.warehouse_url, settings.schedule.timeouts)
    try:
        with engine.connect() as conn:
            return compute_metrics(
                conn, Period.parse(period), as_of, settings.targets, agency_id=settings.agency_id
            )
    finally:
        engine.dispose()


@task(name="data-quality", cache_policy=NO_CACHE)
@expected_failures("check data quality")
def quality_task(job_id: str, as_of: date, agency: str | None = None) -> QualityRun:
    """The data-quality suites over the rows this job wrote (critical failures set aside)."""
    settings = agency_settings(agency)
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
@expected_failures("check the targets")
def target_checks_task(
    job_id: str, as_of: date, quality: QualityRun | None, agency: str | None = None
) -> TargetRun:
    """The target checks of the nightly periods; the scorecard as Prefect artifacts."""
    from rulewatch.checks.config import load_checks_config
    from rulewatch.checks.display import publish_artifacts

    settings = agency_settings(agency)
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
@expected_failures("refresh the report tables")
def report_tables_task(job_id: str, as_of: date, agency: str | None = None) -> ReportTablesRefresh:
    """Refresh the report tables (metrics history, latest statuses, offenders) at as_of,
    unless they hold that date's figures already and nothing was written since."""
    settings = agency_settings(agency)
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
@expected_failures("record the checks")
def gx_record_task(job_id: str) -> None:
    """Wait for Great Expectations to write this job's validation results and Data Docs
    (it records in its own process while the job goes on); its own step, so the wait
    shows in Prefect and in the benchmark."""
    _RECORDERS[job_id].finish()


@task(name="alerts", cache_policy=NO_CACHE)
@expected_failures("record or send the alerts")
def alerts_task(
    as_of: date, check_run_id: str | None = None, agency: str | None = None
) -> AlertRun:
    """Announce slips, recoveries, reminders and early warnings of the target checks
    that ran one step before (``check_run_id``); send what is pending."""
    settings = agency_settings(agency)
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
    agency: str | None = None,
    agency_deployment: str | None = None,
    concurrency_limits: bool = False,
) -> NightlyResult | CityResult | State:
    """Sync every source (concurrently), then compute the year-to-date metrics.

    The whole run holds the agency's job lock (migrations, when the schema is behind,
    the warehouse-wide lock before it): a second sync waits up to ``lock_wait_seconds``,
    then fails with WarehouseBusy before writing anything.

    With ``agencies.yaml`` this is the city's night (:func:`city_night`): one
    child run per agency (``agency``: only that one), on ``agency_deployment``
    when given (workers share the night), else in threads of this process;
    ``concurrency_limits``: the runs take the Prefect limits ``rulewatch deploy``
    created. Without the file, the night of the one agency, as always.
    """
    settings = load_settings()
    agencies = load_agencies(settings)
    chosen = agencies.select(agency)  # an unknown id fails before any work
    as_of = as_of or today_in(settings)
    if agencies.path is not None:
        return city_night(
            settings,
            [a.agency_id for a in chosen],
            sources=sources,
            full_refresh=full_refresh,
            as_of=as_of,
            lock_wait_seconds=lock_wait_seconds,
            whole_city=agency in (None, ALL_AGENCIES),
            agency_deployment=agency_deployment,
            concurrency_limits=concurrency_limits,
        )
    names = list(sources or SOURCE_NAMES)
    for name in names:
        settings.source(name)  # a missing URL or credential fails before any work
    return _night(settings, None, names, full_refresh, as_of, lock_wait_seconds)


@flow(name=AGENCY_FLOW, flow_run_name="nightly-{agency}", log_prints=False)
def agency_nightly(
    agency: str,
    sources: list[str] | None = None,
    full_refresh: bool = False,
    as_of: date | None = None,
    lock_wait_seconds: float = 0,
    concurrency_limits: bool = False,
) -> NightlyResult | State:
    """One agency's night: its sources, quality, metrics, target checks, report tables
    and alerts, with its settings (``agencies.yaml``). Run by the city's night, as a
    subflow or from its deployment on a worker; a failure is this run's failed state,
    which the city's night names in the digest (no hook announces it on its own)."""
    try:
        settings = agency_settings(agency)
        names = agency_source_names(settings, agency, sources)
        for name in names:
            settings.source(name)  # a missing variable or Secret block: this agency fails
    except ConfigError as exc:
        return Failed(message=str(exc), data=exc)
    as_of = as_of or today_in(settings)
    try:
        with slots([WAREHOUSE_LIMIT], concurrency_limits):
            return _night(
                settings, agency, names, full_refresh, as_of, lock_wait_seconds, concurrency_limits
            )
    except ConcurrencySlotAcquisitionError as exc:  # a limit deploy made was deleted
        return Failed(message=f"Prefect concurrency limit: {exc}", data=exc)


def agency_source_names(settings: Settings, agency: str, sources: list[str] | None) -> list[str]:
    """The sources to sync for one agency: those asked for (default all) that it has."""
    has = load_agencies(settings).get(agency).sources
    return [name for name in (sources or SOURCE_NAMES) if name in has]


def _night(
    settings: Settings,
    agency: str | None,
    names: list[str],
    full_refresh: bool,
    as_of: date,
    lock_wait_seconds: float,
    limited: bool = False,
) -> NightlyResult | State:
    """The nightly steps of one agency (None: the settings' own), under its job lock."""
    recorder: Recorder | None = None
    stopped = False
    result = NightlyResult(job_id=str(uuid.uuid4()), as_of=as_of)
    try:
        with locked_warehouse(settings, "sync", lock_wait_seconds) as engine:
            heal_runs(engine)  # runs left `running` by a killed job become `abandoned`
            sync_task = source_task(sync_source_task, settings)
            futures = {
                n: sync_task.submit(n, result.job_id, full_refresh, agency, limited) for n in names
            }
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
            # (Started during the sync, its import slowed the sync by more than it saved;
            # the demo starts it before the flow, while Prefect's first start leaves a core.)
            # A night that wrote nothing starts it only if a check has a run to record.
            wrote = job_wrote(engine, settings, result.job_id)
            recorder = _RECORDERS[result.job_id] = Recorder.for_job(start=wrote)
            refresh_statistics(engine, wrote=wrote)  # the planner's, for the checks and reports
            # the years the new data needs
            calendar_after_sync(engine, settings, result.job_id, wrote=wrote)
            result.quality = _step(quality_task, settings, result.job_id, as_of, agency)
            # The metrics only read what data quality left, as the target checks do: both
            # at once, each waiting on the database (at 1M records on PostgreSQL, 0.25 s
            # of a quiet night's 1.5 s was the metrics waiting for the checks' turn).
            metrics = step_task(metrics_task, settings).submit(str(as_of.year), as_of, agency)
            try:
                result.targets = _step(
                    target_checks_task, settings, result.job_id, as_of, result.quality, agency
                )
            finally:
                metrics.wait()
            result.metrics = step_value(metrics.result(raise_on_failure=False))
            result.report_tables = _step(report_tables_task, settings, result.job_id, as_of, agency)
            result.alerts = _step(alerts_task, settings, as_of, result.targets.check_run_id, agency)
            _step(gx_record_task, settings, result.job_id)
    except (WarehouseError, RecordError) as exc:  # busy, unreachable, GX failed: one line
        return Failed(message=str(exc), data=exc)
    except BaseException as exc:
        # the database failing the flow's own reads and writes between the steps, or a file
        failed = failed_state(exc, lambda: settings.warehouse_url, "run the nightly job")
        if failed is not None:
            return failed
        stopped = not isinstance(exc, Exception)  # Ctrl-C, SIGTERM: no wait for GX
        raise
    finally:
        if recorder is not None:
            _RECORDERS.pop(result.job_id, None)
            if stopped:
                recorder.close()
            else:
                recorder.settle()  # a step failed after the checks: their record is kept
    if result.failed:  # the run ends failed, naming the sources; no traceback to show
        return Failed(message=str(SourcesFailed(result)), data=result)
    return result


# --- the city's night: one run per agency, then the city's steps --------------------------


@dataclass
class CityResult:
    """What a city's night did: each agency's nightly result (when it ran here), the
    agencies that failed with why, and the supervisor's digest."""

    as_of: date
    agencies: dict[str, NightlyResult | None] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # agency id -> one line
    digest: Any = None  # the digest sent (None for a night of some agencies only)


class AgenciesFailed(Exception):
    """One or more agencies' runs failed; the others ran and the digest names them."""

    def __init__(self, result: CityResult) -> None:
        self.result = result
        names = "; ".join(f"{k} ({v})" for k, v in result.failed.items())
        super().__init__(f"nightly run failed for agencies: {names}")


def city_night(
    settings: Settings,
    agency_ids: list[str],
    *,
    sources: list[str] | None,
    full_refresh: bool,
    as_of: date,
    lock_wait_seconds: float,
    whole_city: bool,
    agency_deployment: str | None,
    concurrency_limits: bool,
) -> CityResult | State:
    """Migrate and extend the calendar once under the warehouse's lock, run every agency,
    then the city's steps. One agency's failure is its run's failed state, never this
    run's exception; this run ends failed naming the agencies, after the digest."""
    try:
        with locked_warehouse(settings, "sync", lock_wait_seconds) as engine:
            heal_runs(engine)
            ensure_calendar(engine, calendar_of(settings))
    except WarehouseError as exc:
        return Failed(message=str(exc), data=exc)
    if concurrency_limits:  # hosts whose URL deploy could not see get the configured size
        upsert_limits(wanted_limits(settings, load_agencies(settings)), update=False)
    params: dict[str, Any] = {
        "sources": sources,
        "full_refresh": full_refresh,
        "as_of": as_of,
        "lock_wait_seconds": lock_wait_seconds,
        "concurrency_limits": concurrency_limits,
    }
    if agency_deployment:
        timeout = settings.schedule.timeouts.flow_seconds
        outcomes = run_on_workers(agency_deployment, agency_ids, params, timeout)
    else:
        at_once = min(
            warehouse_slots(settings), settings.schedule.concurrency.agencies_per_source_host
        )
        outcomes = run_here(agency_ids, params, at_once)
    result = CityResult(as_of=as_of)
    for agency_id, (nightly, failure) in outcomes.items():
        result.agencies[agency_id] = nightly
        if failure is not None:
            result.failed[agency_id] = failure
    logger = get_run_logger()
    for agency_id, why in result.failed.items():
        logger.warning("agency %s failed: %s", agency_id, why)
    try:
        result.digest = _step(city_task, settings, as_of, agency_ids, result.failed, whole_city)
    except WarehouseError as exc:
        return Failed(message=str(exc), data=exc)
    if result.digest is not None and result.digest.recorded:
        logger.info("digest of %s: %s", as_of, result.digest.title)
    if result.failed:
        return Failed(message=str(AgenciesFailed(result)), data=result)
    return result


Outcome = tuple[NightlyResult | None, str | None]  # the agency's result here; why it failed


@task(name="agency-night", cache_policy=NO_CACHE, task_run_name="night-{agency}")
def agency_night_task(agency: str, params: dict[str, Any], slot_key: str) -> Outcome:
    """One agency's night as a subflow, in a thread of this process (at most so many at once)."""
    with _AGENCY_SLOTS[slot_key]:
        state = agency_nightly(agency=agency, **params, return_state=True)
    outcome = state.result(raise_on_failure=False)
    nightly = outcome if isinstance(outcome, NightlyResult) else None
    if state.is_completed():
        return nightly, None
    return nightly, server_text(state.message or state.name, MAX_ERROR_TEXT)


def run_here(agency_ids: list[str], params: dict[str, Any], at_once: int) -> dict[str, Outcome]:
    """Every agency's night as a subflow of this run, ``at_once`` at a time (SQLite: one)."""
    key = str(uuid.uuid4())
    _AGENCY_SLOTS[key] = threading.BoundedSemaphore(at_once)
    try:
        futures = {a: agency_night_task.submit(a, params, key) for a in agency_ids}
        outcomes: dict[str, Outcome] = {}
        for agency_id, future in futures.items():
            future.wait()
            if future.state.is_completed():
                outcomes[agency_id] = future.result()
            else:  # the wrapper itself crashed (its subflow's failure is an outcome)
                why = server_text(future.state.message or "crashed", MAX_ERROR_TEXT)
                outcomes[agency_id] = (None, why)
        return outcomes
    finally:
        _AGENCY_SLOTS.pop(key, None)


def run_on_workers(
    deployment: str, agency_ids: list[str], params: dict[str, Any], timeout: float
) -> dict[str, Outcome]:
    """Every agency's night as a run of ``deployment``, picked up by the pool's workers
    (on any machine), linked to this run as subflows; waits for them all."""
    from prefect.deployments import run_deployment

    parameters = {**params, "as_of": params["as_of"].isoformat()}
    runs = {
        agency_id: run_deployment(
            deployment,
            parameters={**parameters, "agency": agency_id},
            flow_run_name=f"nightly-{agency_id}",
            timeout=0,
            as_subflow=True,
        )
        for agency_id in agency_ids
    }
    finished = asyncio.run(_wait_for_runs([run.id for run in runs.values()], timeout))
    outcomes: dict[str, Outcome] = {}
    for agency_id, run in runs.items():
        state = finished.get(run.id)
        if state is None:
            outcomes[agency_id] = (None, f"flow run {run.name} did not end within {timeout:.0f}s")
        elif state.is_completed():
            outcomes[agency_id] = (None, None)
        else:
            why = server_text(state.message or state.name, MAX_ERROR_TEXT)
            outcomes[agency_id] = (None, why if state.name == "Failed" else f"{state.name}: {why}")
    return outcomes


async def _wait_for_runs(run_ids: list[UUID], timeout: float) -> dict[UUID, State]:
    """The final state of each run that ended within ``timeout`` (Prefect's own wait)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import FlowRunWaitTimeout
    from prefect.flow_runs import wait_for_flow_run

    async with get_client() as client:

        async def one(run_id: UUID) -> tuple[UUID, State | None]:
            try:
                run = await wait_for_flow_run(run_id, timeout=int(timeout), client=client)
            except FlowRunWaitTimeout:
                return run_id, None
            return run_id, run.state

        ended = await asyncio.gather(*(one(run_id) for run_id in run_ids))
    return {run_id: state for run_id, state in ended if state is not None}


@task(name="city", cache_policy=NO_CACHE)
@expected_failures("write the city's rollup or digest")
def city_task(
    as_of: date, agency_ids: list[str], failed: dict[str, str], whole_city: bool
) -> DigestRun | None:
    """The city's steps after every agency's run: the rollup's report rows (summed
    numerators and denominators), and, for a night of every agency, the supervisor's
    one digest, naming the agencies whose run failed (``failed``)."""
    settings = load_settings()
    agencies = load_agencies(settings)
    engine = make_engine(settings.warehouse_url, settings.schedule.timeouts)
    try:
        rollup = refresh_rollup_metrics(engine, settings, as_of)
        digest = run_digest(engine, settings, agencies, as_of, failed) if whole_city else None
    finally:
        engine.dispose()
    logger = get_run_logger()
    logger.info(
        "city: %d agencies ran, %d failed; rollup: %d metric rows%s",
        len(agency_ids),
        len(failed),
        rollup.metric_rows,
        "" if whole_city else " (some agencies only: no digest)",
    )
    for d in digest.deliveries if digest is not None else ():
        logger.info("digest %s to %s: %s", d.alert_id, d.channel, d.status)
    return digest


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
            migrate(engine, calendar)  # current by now: the calendar table brought up to date
            yield engine
    finally:
        engine.dispose()


def calendar_after_sync(
    engine: Engine, settings: Settings, job_id: str, *, wrote: bool | None = None
) -> bool:
    """Bring the calendar table up to the years the rows job ``job_id`` wrote need
    (:func:`ensure_calendar`); True if it was rewritten.

    A job that wrote no core row of the agency (a quiet night) needs nothing new:
    opening the warehouse under the job lock brought the table up to the data as it
    was, and is. Reading the data's date extremes again cost 0.11 s at 1M records
    on PostgreSQL. ``wrote``: whether it did, when the caller has asked already.
    """
    if wrote is None:
        wrote = job_wrote(engine, settings, job_id)
    return ensure_calendar(engine, calendar_of(settings)) if wrote else False


def job_wrote(engine: Engine, settings: Settings, job_id: str) -> bool:
    """Whether job ``job_id`` wrote a core row of the agency (or moved one in data quality)."""
    with engine.connect() as conn:
        return not job_changed_nothing(conn, job_id, agency_id=settings.agency_id)


def today_in(settings: Settings) -> date:
    """Today's date in the configured timezone (the default as-of date)."""
    return datetime.now(settings.timezone).date()
