"""The report tables (revision 0004): what BI tools and downstream reports read.

- ``report_metric`` — one row per metric per period per as-of date (the nightly
  history; a re-run of a date replaces its rows);
- ``report_target_status`` — one row per target per period: its latest status;
- ``report_offender`` — one row per offending record of that latest status.

Every row is one agency's (``agency_id``, ``settings.agency_id``); with
``agencies.yaml`` the city step adds the rollup's ``report_metric`` rows, agency
``all`` (:func:`refresh_rollup_metrics`), summed numerators and denominators of
every agency. The nightly job refreshes them for the periods around its as-of
date (:func:`report_periods`); :func:`backfill_history` rebuilds past dates from the
current state, which the contract allows ("events after the as-of date have
not happened yet"). A target's status is always a stored target check
(:class:`rulewatch.checks.results.TargetCheck`) of the same period and date:
a period or date no check ran on is checked first
(:func:`rulewatch.checks.targets.ensure_target_checks`, ``check_history``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.engine import Connection

from rulewatch.checks.config import load_checks_config
from rulewatch.checks.results import (
    TargetCheck,
    checked_days,
    latest_target_statuses,
)
from rulewatch.checks.targets import check_history
from rulewatch.common.metric_ids import METRICS
from rulewatch.common.periods import Period
from rulewatch.config.agencies import ALL_AGENCIES, load_agencies
from rulewatch.config.settings import Settings
from rulewatch.metrics.compute import (
    MetricValue,
    compute_city_history,
    compute_city_metrics,
    compute_metrics,
    compute_metrics_history,
)
from rulewatch.warehouse.runs import rows_carry_runs
from rulewatch.warehouse.schema import (
    DEFAULT_AGENCY_ID,
    check_run,
    now_utc,
    report_metric,
    report_offender,
    report_target_status,
    sync_run,
)


@dataclass
class ReportTablesRefresh:
    """What one refresh wrote: periods, metric rows, statuses and offenders."""

    as_of: date
    periods: list[str] = field(default_factory=list)
    metric_rows: int = 0
    statuses: int = 0
    offenders: int = 0


def period_kind(period: Period) -> str:
    return "quarter" if "-Q" in period.label else ("month" if "-" in period.label else "year")


def report_periods(as_of: date) -> list[Period]:
    """The periods a nightly refresh covers: the year to date and the previous year
    (late records still change it), every quarter and month of the year to date."""
    year = as_of.year
    periods = [Period.parse(str(year)), Period.parse(str(year - 1))]
    periods += [Period.parse(f"{year}-Q{q}") for q in range(1, (as_of.month - 1) // 3 + 2)]
    periods += [Period.parse(f"{year}-{m:02d}") for m in range(1, as_of.month + 1)]
    return periods


def months_of(period: Period, as_of: date) -> list[Period]:
    """The months of ``period`` that have started by ``as_of``."""
    months = []
    day = period.start
    while day <= min(period.end, as_of):
        months.append(Period.parse(f"{day.year}-{day.month:02d}"))
        day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return months


def store_metrics(
    conn: Connection,
    period: Period,
    metrics: Sequence[MetricValue],
    *,
    computed_by: str,
    job_id: str | None = None,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> int:
    """Replace the agency's ``report_metric`` rows of the metrics' period and as-of date."""
    if not metrics:
        return 0
    return store_metrics_history(
        conn,
        period,
        {metrics[0].as_of: metrics},
        computed_by=computed_by,
        job_id=job_id,
        agency_id=agency_id,
    )


def store_metrics_history(
    conn: Connection,
    period: Period,
    history: Mapping[date, Sequence[MetricValue]],
    *,
    computed_by: str,
    job_id: str | None = None,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> int:
    """Replace the agency's (or the rollup's, ``all``) ``report_metric`` rows of ``period``
    at each as-of date of ``history`` (one delete and one bulk insert for them all); rows
    written. Every metric must be the agency's."""
    days = [day for day, metrics in history.items() if metrics]
    if not days:
        return 0
    strays = {m.agency_id for d in days for m in history[d]} - {agency_id}
    if strays:
        raise ValueError(f"metrics of agency {sorted(strays)} stored as {agency_id!r}")
    conn.execute(
        delete(report_metric).where(
            report_metric.c.agency_id == agency_id,
            report_metric.c.period == period.label,
            report_metric.c.as_of.in_(days),
        )
    )
    computed_at = now_utc()
    rows = [
        {
            "agency_id": agency_id,
            "metric": m.metric,
            "period": period.label,
            "as_of": as_of,
            "period_kind": period_kind(period),
            "period_start_on": period.start,
            "period_end_on": period.end,
            "metric_kind": METRICS[m.metric][0],
            "value": None if m.value is None else float(m.value),
            "numerator": m.numerator,
            "denominator": m.denominator,
            "target": m.target,
            "status": m.status,
            "computed_by": computed_by,
            "job_id": job_id,
            "computed_at": computed_at,
            "is_provisional": m.provisional,
        }
        for as_of in days
        for m in history[as_of]
    ]
    conn.execute(insert(report_metric), rows)
    return len(rows)


def target_statuses(
    conn: Connection, period: Period, as_of: date, *, agency_id: str = DEFAULT_AGENCY_ID
) -> list[TargetCheck]:
    """Every target's status of one agency for ``period`` at ``as_of``, with all its
    offenders: the agency's stored target checks of that date (the last run of it), since
    when each slipped by the stored checks before it. Run the checks of the date first."""
    return latest_target_statuses(conn, period.label, as_of=as_of, agency_id=agency_id)


def store_statuses(
    conn: Connection, statuses: Iterable[TargetCheck], *, agency_id: str = DEFAULT_AGENCY_ID
) -> tuple[int, int]:
    """Make these the agency's latest statuses, unless a newer as-of date is stored already.

    Each must be a stored check (``check_result_id``): a status is never computed
    beside the checks. Returns (statuses written, offenders written). A few statements
    per period, whatever the number of targets: the stored dates are read at once,
    and the statuses replaced, with their offenders, in bulk (a night writes the
    statuses of every report period).
    """
    statuses = list(statuses)
    for s in statuses:
        if s.check_result_id is None:
            raise ValueError(f"{s.metric} {s.period} {s.as_of}: a status that is no stored check")
    stored = _stored_status_dates(conn, statuses, agency_id)
    # a later status of a key replaces an earlier one; each with its offenders by key
    chosen: dict[tuple[str, str], tuple[TargetCheck, dict[str, str | None]]] = {}
    written = offenders = 0
    for s in statuses:
        key = (s.metric, s.period)
        if (have := stored.get(key)) is not None and have > s.as_of:
            continue
        stored[key] = s.as_of
        unique = {o.natural_key: o.reason for o in s.offenders}
        chosen[key] = (s, unique)
        written += 1
        offenders += len(unique)
    if not chosen:
        return written, offenders
    by_period: dict[str, list[str]] = {}
    for metric, period in chosen:
        by_period.setdefault(period, []).append(metric)
    for table in (report_target_status, report_offender):
        for period, metrics in by_period.items():
            conn.execute(
                delete(table).where(
                    table.c.agency_id == agency_id,
                    table.c.period == period,
                    table.c.metric.in_(metrics),
                )
            )
    updated_at = now_utc()
    conn.execute(
        insert(report_target_status),
        [
            {
                "agency_id": agency_id,
                **s.columns(),
                "slipped_since": s.slipped_since,
                "check_result_id": s.check_result_id,
                "updated_at": updated_at,
            }
            for s, _ in chosen.values()
        ],
    )
    rows = [
        {
            "agency_id": agency_id,
            "metric": s.metric,
            "period": s.period,
            "natural_key": key,
            "as_of": s.as_of,
            "reason": reason,
        }
        for s, unique in chosen.values()
        for key, reason in unique.items()
    ]
    if rows:
        conn.execute(insert(report_offender), rows)
    return written, offenders


def _stored_status_dates(
    conn: Connection, statuses: list[TargetCheck], agency_id: str
) -> dict[tuple[str, str], date]:
    """The as-of date of each stored status of these statuses' (metric, period)s."""
    if not statuses:
        return {}
    keys = {(s.metric, s.period) for s in statuses}
    rows = conn.execute(
        select(
            report_target_status.c.metric,
            report_target_status.c.period,
            report_target_status.c.as_of,
        ).where(
            report_target_status.c.agency_id == agency_id,
            report_target_status.c.period.in_(sorted({period for _, period in keys})),
            report_target_status.c.metric.in_(sorted({metric for metric, _ in keys})),
        )
    )
    return {(m, p): as_of for m, p, as_of in rows if (m, p) in keys}


def refresh_report_tables(
    engine: Engine,
    settings: Settings,
    as_of: date,
    *,
    computed_by: str = "nightly",
    job_id: str | None = None,
    periods: Sequence[Period] | None = None,
) -> ReportTablesRefresh:
    """Write the agency's (``settings.agency_id``) metrics, latest statuses and offenders
    of ``periods`` at ``as_of``.

    The statuses are the agency's stored target checks of that date; a period with
    none (by the job ``job_id``, when given) is checked first. One transaction per
    period, so a reader never sees half a period. The city rollup is the city step's
    (:func:`refresh_rollup_metrics`), once every agency is done.
    """
    result = ReportTablesRefresh(as_of=as_of)
    agency = settings.agency_id
    periods = list(periods if periods is not None else report_periods(as_of))
    # each period's figures once: the checks of a period with none stored (as
    # ensure_target_checks) count from them too, instead of computing them again
    # (check_history's history gives a day exactly what compute_metrics gives it)
    with engine.connect() as conn:
        figures = {
            p.label: compute_metrics(conn, p, as_of, settings.targets, agency_id=agency)
            for p in periods
        }
        unchecked = [
            p
            for p in periods
            if not checked_days(conn, p.label, [as_of], job_id=job_id, agency_id=agency)
        ]
    checks = load_checks_config(settings) if unchecked else None
    for period in unchecked:
        check_history(
            engine,
            settings,
            period,
            [as_of],
            job_id=job_id,
            checks=checks,
            metrics={as_of: figures[period.label]},
        )
    for period in periods:
        with engine.begin() as conn:
            metrics = figures[period.label]
            result.metric_rows += store_metrics(
                conn, period, metrics, computed_by=computed_by, job_id=job_id, agency_id=agency
            )
            statuses = target_statuses(conn, period, as_of, agency_id=agency)
            written, offenders = store_statuses(conn, statuses, agency_id=agency)
        result.periods.append(period.label)
        result.statuses += written
        result.offenders += offenders
    return result


def rollup_agencies(settings: Settings) -> tuple[str, ...]:
    """The agencies the city rollup sums: every one of ``agencies.yaml``; none without it
    (one agency has no city above it, and its report tables stay as they were)."""
    agencies = load_agencies(settings)
    return () if agencies.path is None else agencies.ids


def refresh_rollup_metrics(
    engine: Engine,
    settings: Settings,
    as_of: date,
    *,
    computed_by: str = "nightly",
    job_id: str | None = None,
    periods: Sequence[Period] | None = None,
) -> ReportTablesRefresh:
    """Write the city rollup's ``report_metric`` rows (agency ``all``) of ``periods`` at
    ``as_of`` when ``agencies.yaml`` exists: every agency's figures summed in SQL
    (:func:`compute_city_metrics`), statuses against targets.yaml's thresholds
    (``settings`` are the deployment's, not an agency's). The city step runs it once
    after every agency's refresh: run per agency, two agencies' refreshes would write the
    same rows at once. Without ``agencies.yaml`` it writes nothing."""
    result = ReportTablesRefresh(as_of=as_of)
    agency_ids = rollup_agencies(settings)
    if not agency_ids:
        return result
    every = dict.fromkeys(agency_ids, settings.targets)
    for period in periods if periods is not None else report_periods(as_of):
        with engine.begin() as conn:
            rollup = compute_city_metrics(conn, period, as_of, every, settings.targets)
            result.metric_rows += store_metrics(
                conn,
                period,
                rollup[ALL_AGENCIES],
                computed_by=computed_by,
                job_id=job_id,
                agency_id=ALL_AGENCIES,
            )
        result.periods.append(period.label)
    return result


def _years(start: date, end: date) -> dict[int, list[date]]:
    years: dict[int, list[date]] = {}
    day = start
    while day <= end:
        years.setdefault(day.year, []).append(day)
        day += timedelta(days=1)
    return years


def _stored_days(conn: Connection, agency_id: str, start: date, end: date) -> set[tuple[str, date]]:
    return {
        (period, day)
        for period, day in conn.execute(
            select(report_metric.c.period, report_metric.c.as_of)
            .where(
                report_metric.c.agency_id == agency_id, report_metric.c.as_of.between(start, end)
            )
            .distinct()
        )
    }


def backfill_history(engine: Engine, settings: Settings, start: date, end: date) -> int:
    """Rebuild the agency's (``settings.agency_id``) year-to-date history of every as-of
    date in ``start..end``: the ``report_metric`` rows of each date that has none yet (a
    nightly row is never overwritten) and the target checks (:func:`check_history`) of
    each date with no stored check, so every date's status is a stored check. Metric rows
    written. The rollup's history is :func:`backfill_rollup_history`'s."""
    agency = settings.agency_id
    with engine.connect() as conn:
        have = _stored_days(conn, agency, start, end)
    written = 0
    for year, days in _years(start, end).items():
        period = Period.parse(str(year))
        missing = [d for d in days if (period.label, d) not in have]
        with engine.begin() as conn:
            checked = checked_days(conn, period.label, days, agency_id=agency)
            unchecked = sorted(set(days) - checked)
            needed = sorted({*missing, *unchecked})
            history = compute_metrics_history(
                conn, period, needed, settings.targets, agency_id=agency
            )
            written += store_metrics_history(
                conn,
                period,
                {d: history[d] for d in missing},
                computed_by="backfill",
                agency_id=agency,
            )
        check_history(engine, settings, period, unchecked, metrics=history)
    return written


def backfill_rollup_history(engine: Engine, settings: Settings, start: date, end: date) -> int:
    """The city rollup's (agency ``all``) year-to-date ``report_metric`` rows of every
    as-of date in ``start..end`` that has none yet, from one query per core table and
    year (:func:`compute_city_history`); none without ``agencies.yaml``. Rows written."""
    agency_ids = rollup_agencies(settings)
    if not agency_ids:
        return 0
    with engine.connect() as conn:
        have = _stored_days(conn, ALL_AGENCIES, start, end)
    every = dict.fromkeys(agency_ids, settings.targets)
    written = 0
    for year, days in _years(start, end).items():
        period = Period.parse(str(year))
        missing = [d for d in days if (period.label, d) not in have]
        if not missing:
            continue
        with engine.begin() as conn:
            history = compute_city_history(conn, period, missing, every, settings.targets)
            written += store_metrics_history(
                conn,
                period,
                history[ALL_AGENCIES],
                computed_by="backfill",
                agency_id=ALL_AGENCIES,
            )
    return written


def report_tables_current(conn: Connection, settings: Settings, as_of: date, job_id: str) -> bool:
    """Whether the report tables already hold what a refresh of the agency
    (``settings.agency_id``) at ``as_of`` would write.

    So a quiet night recomputes nothing that is stored: true only when the newest
    refresh (any but a backfill's) was at ``as_of``, no row changed since
    (:func:`rows_changed_since`: by job ``job_id`` or by a sync of another job that
    started since, one that crashed before its own refresh or a quiet night that kept
    the tables), and the stored targets and severities are the configured ones. The
    caller also rules out a recomputed calendar. The statuses then keep the check they
    came from: the previous one, of the same data, date and targets.
    """
    agency = settings.agency_id
    newest = conn.execute(
        select(report_metric.c.as_of, report_metric.c.computed_at)
        .where(report_metric.c.agency_id == agency, report_metric.c.computed_by != "backfill")
        .order_by(report_metric.c.computed_at.desc())
        .limit(1)
    ).first()
    if newest is None or newest.as_of != as_of:
        return False
    if rows_changed_since(conn, agency, newest.computed_at, job_id):
        return False
    year = str(as_of.year)
    stored_targets = dict(
        conn.execute(
            select(report_metric.c.metric, report_metric.c.target).where(
                report_metric.c.agency_id == agency,
                report_metric.c.period == year,
                report_metric.c.as_of == as_of,
                report_metric.c.target.is_not(None),
            )
        ).all()
    )
    severities = dict(
        conn.execute(
            select(report_target_status.c.metric, report_target_status.c.severity).where(
                report_target_status.c.agency_id == agency, report_target_status.c.period == year
            )
        ).all()
    )
    configured = settings.targets
    return {m: t.target for m, t in configured.items()} == stored_targets and all(
        severities.get(m, t.severity) == t.severity for m, t in configured.items()
    )


def rows_changed_since(conn: Connection, agency_id: str, since: datetime, job_id: str) -> bool:
    """Whether a core row of the agency changed after ``since`` or by job ``job_id``.

    Every row a sync writes, updates or marks departed carries its sync run, so a
    core row carrying a run of the agency that started after ``since`` (or one of
    ``job_id``'s) is a change; data quality moves rows in or out of the figures
    without a sync run, so a data-quality run since (or ``job_id``'s) that set rows
    aside or released them is one too. A sync of another job that wrote nothing (a
    quiet night that kept the report tables) is none: quiet nights in a row keep
    them, where counting every later sync refreshed them every other night.
    """
    runs = select(sync_run.c.sync_run_id).where(
        sync_run.c.agency_id == agency_id,
        (sync_run.c.started_at > since) | (sync_run.c.job_id == job_id),
    )
    if rows_carry_runs(conn, runs):
        return True
    moved = conn.execute(
        select(check_run.c.check_run_id)
        .where(
            check_run.c.agency_id == agency_id,
            check_run.c.kind == "data_quality",
            (check_run.c.started_at > since) | (check_run.c.job_id == job_id),
            (check_run.c.set_aside > 0) | (check_run.c.released > 0),
        )
        .limit(1)
    ).first()
    return moved is not None
