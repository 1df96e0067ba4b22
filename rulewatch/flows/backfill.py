"""The backfill flow: the figures of every as-of date in a range, for history.

A warehouse set up mid-year has no record of what its figures were on earlier
days. Under the contract a past as-of date is computed from the current state
("events after the as-of date have not happened yet"), so the history can be
rebuilt at any time: this flow does it day by day, one task per month, the
months concurrently, while holding the warehouse's job lock. It never syncs
and never sends alerts (a past slip is history, not news). Each day goes
through :func:`recompute_as_of`, which stores the day's report rows and, unless
``with_checks`` is off, its target check results.

Run it from a deployment (``rulewatch deploy`` or ``rulewatch serve`` register
it) with ``start`` and ``end`` parameters, e.g. every day of 2023.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State
from sqlalchemy import Engine

from rulewatch.checks.targets import run_target_checks
from rulewatch.common.periods import Period
from rulewatch.config.settings import ConfigError, Settings, load_settings
from rulewatch.flows.nightly import locked_warehouse, today_in
from rulewatch.metrics.compute import compute_metrics
from rulewatch.report.tables import has_nightly_rows, store_metrics, store_statuses, target_statuses
from rulewatch.warehouse.db import make_engine
from rulewatch.warehouse.lock import WarehouseBusy

_GX_ONE_AT_A_TIME = threading.Lock()
MAX_DAYS = 3660  # ten years: a bigger range is almost certainly a typo


@dataclass(frozen=True)
class DayFigures:
    """What one as-of date's year-to-date figures came to: counts per status."""

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


def recompute_as_of(
    engine: Engine, settings: Settings, as_of: date, *, with_checks: bool = True
) -> DayFigures:
    """Recompute the figures of one as-of date (its year to date) and keep them.

    The day's ``report_metric`` rows are stored (``computed_by`` ``backfill``; a
    day the nightly job already recorded keeps its own rows, the figures as they
    stood that night). With ``with_checks`` the Great Expectations target checks
    run for the day too and are stored like a nightly check. No alerting: a past
    slip is history, not news. Days are independent, so months run concurrently;
    the latest statuses are written once at the end (:func:`store_latest_statuses`).
    """
    period = Period.parse(str(as_of.year))
    if with_checks:
        with _GX_ONE_AT_A_TIME:  # one GX context and Data Docs site: not for two threads
            run_target_checks(engine, settings, [period], as_of)
    with engine.begin() as conn:
        metrics = compute_metrics(conn, period, as_of, settings.targets)
        if not has_nightly_rows(conn, period, as_of):
            store_metrics(conn, period, metrics, computed_by="backfill")
    statuses = Counter(m.status for m in metrics)
    return DayFigures(
        as_of=as_of,
        met=statuses["met"],
        slipped=statuses["slipped"],
        no_data=statuses["no_data"],
        info=statuses["info"],
        slipped_metrics=tuple(sorted(m.metric for m in metrics if m.status == "slipped")),
    )


def store_latest_statuses(engine: Engine, settings: Settings, as_of: date) -> int:
    """The year-to-date target statuses at ``as_of`` (with since when each has been
    slipping, from the history just rebuilt), unless a newer date is stored; count."""
    period = Period.parse(str(as_of.year))
    with engine.begin() as conn:
        metrics = compute_metrics(conn, period, as_of, settings.targets)
        written, _ = store_statuses(conn, target_statuses(conn, settings, period, as_of, metrics))
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


def recompute_days(
    settings: Settings, first: date, last: date, *, with_checks: bool = True
) -> list[DayFigures]:
    """Recompute every day of ``first..last``, in order."""
    engine = make_engine(settings.warehouse_url, settings.schedule.timeouts)
    try:
        days = []
        day = first
        while day <= last:
            days.append(recompute_as_of(engine, settings, day, with_checks=with_checks))
            day += timedelta(days=1)
        return days
    finally:
        engine.dispose()


@task(name="backfill-days", cache_policy=NO_CACHE, task_run_name="backfill-{first}..{last}")
def backfill_days_task(first: date, last: date, with_checks: bool) -> list[DayFigures]:
    """Recompute one chunk of days."""
    return recompute_days(load_settings(), first, last, with_checks=with_checks)


@flow(name="rulewatch-backfill", log_prints=False)
def backfill(
    start: date,
    end: date | None = None,
    with_checks: bool = True,
    lock_wait_seconds: float = 0,
) -> BackfillResult | State:
    """Recompute the figures of every as-of date from ``start`` to ``end`` (default today):
    report tables always, the target checks too unless ``with_checks`` is off (they
    cost about a second a day)."""
    settings = load_settings()
    end = end or today_in(settings)
    check_range(start, end)
    result = BackfillResult(start=start, end=end)
    try:
        with locked_warehouse(settings, "backfill", lock_wait_seconds) as engine:
            futures = [
                backfill_days_task.submit(first, last, with_checks)
                for first, last in month_chunks(start, end)
            ]
            for future in futures:
                result.days.extend(future.result())
            store_latest_statuses(engine, settings, end)
    except WarehouseBusy as exc:  # another job runs: one line, no traceback
        return Failed(message=str(exc), data=exc)
    get_run_logger().info(
        "backfill %s..%s: %d days recomputed, %d with a slipped target",
        start,
        end,
        len(result.days),
        result.days_with_slips,
    )
    return result
