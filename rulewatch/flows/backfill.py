"""The backfill flow: the figures and target checks of every as-of date in a range.

A warehouse set up mid-year has no record of what its figures were on earlier
days. Under the contract a past as-of date is computed from the current state
("events after the as-of date have not happened yet"), so the history can be
rebuilt at any time: this flow does it one task per month, the months
concurrently, while holding the warehouse's job lock. It never syncs and never
sends alerts (a past slip is history, not news). Each month goes through
:func:`recompute_days`, which stores every day's report rows and target checks
(:func:`rulewatch.checks.targets.check_history`, the bulk form of the nightly
checks), so each day's status is a stored check.

With agencies.yaml it recomputes every agency's days (or one agency's,
``agency``), each with that agency's settings.

Run it from a deployment (``rulewatch deploy`` or ``rulewatch serve`` register
it) with ``start`` and ``end`` parameters, e.g. every day of 2023.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State
from sqlalchemy import Engine, select

from rulewatch.checks.results import TargetCheck, checked_days
from rulewatch.checks.targets import check_history
from rulewatch.common.periods import Period
from rulewatch.config.agencies import load_agencies
from rulewatch.config.settings import ConfigError, Settings, load_settings
from rulewatch.flows.nightly import (
    agency_settings,
    expected_failures,
    failed_state,
    locked_warehouse,
    step_value,
    today_in,
)
from rulewatch.metrics.compute import MetricValue, compute_metrics_history
from rulewatch.report.tables import (
    backfill_rollup_history,
    store_metrics_history,
    store_statuses,
    target_statuses,
)
from rulewatch.warehouse.db import WarehouseError, make_engine
from rulewatch.warehouse.schema import DEFAULT_AGENCY_ID, report_metric

MAX_DAYS = 3660  # ten years: a bigger range is almost certainly a typo


@dataclass(frozen=True)
class DayFigures:
    """What one as-of date's year-to-date figures came to: targets per stored check
    status, and the metrics without a target (``info``)."""

    as_of: date
    met: int
    slipped: int
    no_data: int
    info: int
    slipped_metrics: tuple[str, ...] = ()


@dataclass
class BackfillResult:
    """A backfill's counts: the days recomputed and how many had a slipped target."""

    start: date
    end: date
    days: list[DayFigures] = field(default_factory=list)

    @property
    def days_with_slips(self) -> int:
        return sum(1 for d in self.days if d.slipped)


def recompute_as_of(engine: Engine, settings: Settings, as_of: date) -> DayFigures:
    """Recompute the figures and target checks of one as-of date (its year to date)."""
    (day,) = _recompute(engine, settings, [as_of])
    return day


def _recompute(engine: Engine, settings: Settings, days: list[date]) -> list[DayFigures]:
    """The year-to-date figures and checks of ``days`` (one year), kept.

    The ``report_metric`` rows are stored (``computed_by`` ``backfill``) except on a
    day the nightly job recorded: it keeps its own rows, the figures as they stood
    that night, and likewise its own target checks. Every other day is checked
    again and stored like a nightly check. No alerting: a past slip is history, not
    news. Days are independent, so months run concurrently; the latest statuses
    are written once at the end (:func:`store_latest_statuses`).
    """
    period = Period.parse(str(days[0].year))
    agency = settings.agency_id
    with engine.begin() as conn:
        recorded = set(
            conn.execute(
                select(report_metric.c.as_of)
                .where(
                    report_metric.c.agency_id == agency,
                    report_metric.c.period == period.label,
                    report_metric.c.as_of.in_(days),
                    report_metric.c.computed_by != "backfill",
                )
                .distinct()
            ).scalars()
        )
        checked = checked_days(conn, period.label, days, by_a_job=True, agency_id=agency)
        history = compute_metrics_history(conn, period, days, settings.targets, agency_id=agency)
        store_metrics_history(
            conn,
            period,
            {d: m for d, m in history.items() if d not in recorded},
            computed_by="backfill",
            agency_id=agency,
        )
    unchecked = [d for d in days if d not in checked]
    statuses = {
        run.as_of: run.checks
        for run in check_history(engine, settings, period, unchecked, metrics=history)
    }
    with engine.connect() as conn:
        for day in sorted(checked):
            statuses[day] = target_statuses(conn, period, day, agency_id=agency)
    return [_figures(d, statuses[d], history[d]) for d in days]


def _figures(
    as_of: date, checks: Sequence[TargetCheck], metrics: Sequence[MetricValue]
) -> DayFigures:
    statuses = Counter(c.status for c in checks)
    return DayFigures(
        as_of=as_of,
        met=statuses["met"],
        slipped=statuses["slipped"],
        no_data=statuses["no_data"],
        info=sum(1 for m in metrics if m.target is None),
        slipped_metrics=tuple(sorted(c.metric for c in checks if c.status == "slipped")),
    )


def store_latest_statuses(engine: Engine, as_of: date, agency_id: str = DEFAULT_AGENCY_ID) -> int:
    """The year-to-date target statuses at ``as_of``: its stored checks, with since when
    each has been slipping by the checks just stored (unless a newer date is stored);
    count."""
    with engine.begin() as conn:
        period = Period.parse(str(as_of.year))
        written, _ = store_statuses(
            conn, target_statuses(conn, period, as_of, agency_id=agency_id), agency_id=agency_id
        )
    return written


def check_range(start: date, end: date) -> None:
    """A ConfigError unless ``start..end`` is a range a backfill should run."""
    if end < start:
        raise ConfigError(f"backfill: end {end} is before start {start}")
    if (end - start).days + 1 > MAX_DAYS:
        raise ConfigError(f"backfill: {start}..{end} is more than {MAX_DAYS} days")


def month_chunks(start: date, end: date) -> list[tuple[date, date]]:
    """``start..end`` (both included) cut at month ends: one chunk per calendar month."""
    chunks = []
    first = start
    while first <= end:
        next_month = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        last = min(next_month - timedelta(days=1), end)
        chunks.append((first, last))
        first = next_month
    return chunks


def recompute_days(settings: Settings, first: date, last: date) -> list[DayFigures]:
    """Recompute every day of ``first..last`` (one calendar month, or less), in order."""
    engine = make_engine(settings.warehouse_url, settings.schedule.timeouts)
    try:
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        figures = []
        for year in sorted({d.year for d in days}):
            figures += _recompute(engine, settings, [d for d in days if d.year == year])
        return figures
    finally:
        engine.dispose()


@task(name="backfill-days", cache_policy=NO_CACHE, task_run_name="backfill-{first}..{last}")
@expected_failures("recompute the days")
def backfill_days_task(first: date, last: date, agency: str | None = None) -> list[DayFigures]:
    """Recompute one chunk of days (of one agency of agencies.yaml)."""
    return recompute_days(agency_settings(agency), first, last)


@flow(name="rulewatch-backfill", log_prints=False)
def backfill(
    start: date,
    end: date | None = None,
    lock_wait_seconds: float = 0,
    agency: str | None = None,
) -> BackfillResult | State:
    """Recompute the figures and target checks of every as-of date from ``start`` to
    ``end`` (default today) into the report tables and check results.

    With agencies.yaml, of every agency (``agency``: one of them): one task per
    agency and month, all concurrent, each with its agency's settings."""
    settings = load_settings()
    end = end or today_in(settings)
    check_range(start, end)
    agencies = load_agencies(settings)
    chosen = agencies.select(agency)
    ids = [None] if agencies.path is None else [a.agency_id for a in chosen]
    result = BackfillResult(start=start, end=end)
    try:
        with locked_warehouse(settings, "backfill", lock_wait_seconds) as engine:
            futures = [
                backfill_days_task.submit(first, last, agency_id)
                for agency_id in ids
                for first, last in month_chunks(start, end)
            ]
            for future in futures:
                result.days.extend(step_value(future.result(raise_on_failure=False)))
            for agency_id in ids:
                store_latest_statuses(engine, end, agency_id or DEFAULT_AGENCY_ID)
            # the city rollup's rows of every day (none without agencies.yaml)
            backfill_rollup_history(engine, settings, start, end)
    except WarehouseError as exc:  # another job runs, a day failed: one line, no traceback
        return Failed(message=str(exc), data=exc)
    except Exception as exc:  # the flow's own writes after the days
        failed = failed_state(exc, lambda: settings.warehouse_url, "store the backfill")
        if failed is None:
            raise
        return failed
    get_run_logger().info(
        "backfill %s..%s: %d days recomputed and checked, %d with a slipped target%s",
        start,
        end,
        len(result.days) // len(ids),
        result.days_with_slips,
        "" if agencies.path is None else f" (days of {len(ids)} agencies)",
    )
    return result
