"""The report tables (revision 0004): what BI tools and downstream reports read.

- ``report_metric`` — one row per metric per period per as-of date (the nightly
  history; a re-run of a date replaces its rows);
- ``report_target_status`` — one row per target per period: its latest status;
- ``report_offender`` — one row per offending record of that latest status.

The nightly job refreshes them for the periods around its as-of date
(:func:`report_periods`); :func:`backfill_history` rebuilds past dates from the
current state, which the contract allows ("events after the as-of date have
not happened yet"). A target's status is the stored target check
(:class:`rulewatch.checks.results.TargetCheck`) of the same period and date;
only a date no check ran on gets its figures from the metric declarations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.engine import Connection

from rulewatch.checks.results import (
    Offender,
    TargetCheck,
    latest_target_statuses,
    now_utc,
    offender_query,
    slipped_run_start,
)
from rulewatch.common.metric_ids import METRICS
from rulewatch.common.periods import Period
from rulewatch.config.settings import Settings
from rulewatch.metrics.compute import (
    MetricValue,
    compute_metrics,
    compute_metrics_history,
    rate_population,
)
from rulewatch.warehouse.schema import report_metric, report_offender, report_target_status


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
) -> int:
    """Replace the ``report_metric`` rows of the metrics' period and as-of date."""
    if not metrics:
        return 0
    return store_metrics_history(
        conn, period, {metrics[0].as_of: metrics}, computed_by=computed_by, job_id=job_id
    )


def store_metrics_history(
    conn: Connection,
    period: Period,
    history: Mapping[date, Sequence[MetricValue]],
    *,
    computed_by: str,
    job_id: str | None = None,
) -> int:
    """Replace the ``report_metric`` rows of ``period`` at each as-of date of ``history``
    (one delete and one bulk insert for them all); rows written."""
    days = [day for day, metrics in history.items() if metrics]
    if not days:
        return 0
    conn.execute(
        delete(report_metric).where(
            report_metric.c.period == period.label, report_metric.c.as_of.in_(days)
        )
    )
    computed_at = now_utc()
    rows = [
        {
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


def slipped_since(conn: Connection, metric: str, period: str, as_of: date) -> date:
    """Since when the target has slipped by the ``report_metric`` history (covering
    backfilled dates without a stored check), by the one rule of :func:`slipped_run_start`."""
    rows = conn.execute(
        select(report_metric.c.as_of, report_metric.c.status).where(
            report_metric.c.metric == metric,
            report_metric.c.period == period,
            report_metric.c.as_of < as_of,
        )
    )
    return slipped_run_start([*rows, (as_of, "slipped")])


def target_statuses(
    conn: Connection,
    settings: Settings,
    period: Period,
    as_of: date,
    metrics: Sequence[MetricValue],
    *,
    use_stored_checks: bool = True,
) -> list[TargetCheck]:
    """Every target's status for ``period`` at ``as_of``, with all its offenders.

    The stored target check of that period and date is the status (custom rates
    included). A built-in rate with no stored check of that date (a backfilled
    date, or ``use_stored_checks`` off: the check was made with an older calendar)
    gets its figures from the same declarations the checks validate.
    """
    stored = {
        c.metric: c
        for c in latest_target_statuses(conn, period.label)
        if use_stored_checks and c.as_of == as_of
    }
    statuses = []
    for m in metrics:
        options = settings.targets.get(m.metric)
        if options is None or m.target is None or m.metric in stored:
            continue
        population = rate_population(m.metric, period, as_of)
        stored[m.metric] = TargetCheck.of_counts(
            m.metric,
            period.label,
            as_of,
            numerator=m.numerator or 0,
            denominator=m.denominator or 0,
            target=m.target,
            severity=options.severity,
            offenders=[Offender(k, r) for k, r in conn.execute(offender_query(population))],
            provisional=m.provisional,
        )
    for metric, check in sorted(stored.items()):
        if check.status == "slipped":
            since = slipped_since(conn, metric, period.label, as_of)
            if check.slipped_since is not None:
                since = min(since, check.slipped_since)
            check = replace(check, slipped_since=since)
        statuses.append(check)
    return statuses


def store_statuses(conn: Connection, statuses: Iterable[TargetCheck]) -> tuple[int, int]:
    """Make these the latest statuses, unless a newer as-of date is stored already.

    Returns (statuses written, offenders written).
    """
    written = offenders = 0
    updated_at = now_utc()
    for s in statuses:
        key = (report_target_status.c.metric == s.metric, report_target_status.c.period == s.period)
        stored = conn.execute(select(report_target_status.c.as_of).where(*key)).scalar()
        if stored is not None and stored > s.as_of:
            continue
        conn.execute(delete(report_target_status).where(*key))
        conn.execute(
            delete(report_offender).where(
                report_offender.c.metric == s.metric, report_offender.c.period == s.period
            )
        )
        conn.execute(
            insert(report_target_status).values(
                **s.columns(),
                slipped_since=s.slipped_since,
                check_result_id=s.check_result_id,
                updated_at=updated_at,
            )
        )
        unique = {o.natural_key: o.reason for o in s.offenders}
        if unique:
            conn.execute(
                insert(report_offender),
                [
                    {
                        "metric": s.metric,
                        "period": s.period,
                        "natural_key": k,
                        "as_of": s.as_of,
                        "reason": r,
                    }
                    for k, r in unique.items()
                ],
            )
        written += 1
        offenders += len(unique)
    return written, offenders


def refresh_report_tables(
    engine: Engine,
    settings: Settings,
    as_of: date,
    *,
    computed_by: str = "nightly",
    job_id: str | None = None,
    periods: Sequence[Period] | None = None,
) -> ReportTablesRefresh:
    """Write the metrics, latest statuses and offenders of ``periods`` at ``as_of``.

    One transaction per period, so a reader never sees half a period.
    """
    result = ReportTablesRefresh(as_of=as_of)
    for period in periods if periods is not None else report_periods(as_of):
        with engine.begin() as conn:
            metrics = compute_metrics(conn, period, as_of, settings.targets)
            result.metric_rows += store_metrics(
                conn, period, metrics, computed_by=computed_by, job_id=job_id
            )
            written, offenders = store_statuses(
                conn, target_statuses(conn, settings, period, as_of, metrics)
            )
        result.periods.append(period.label)
        result.statuses += written
        result.offenders += offenders
    return result


def has_nightly_rows(conn: Connection, period: Period, as_of: date) -> bool:
    """Whether a job other than a backfill recorded ``period`` at ``as_of``: its rows
    hold the figures as they stood that day and are never replaced by a recomputation."""
    return (
        conn.execute(
            select(report_metric.c.metric)
            .where(
                report_metric.c.period == period.label,
                report_metric.c.as_of == as_of,
                report_metric.c.computed_by != "backfill",
            )
            .limit(1)
        ).first()
        is not None
    )


def backfill_history(engine: Engine, settings: Settings, start: date, end: date) -> int:
    """Rebuild the year-to-date ``report_metric`` rows of every as-of date in
    ``start..end`` that has none yet (a nightly row is never overwritten); rows written."""
    with engine.connect() as conn:
        have = {
            (period, day)
            for period, day in conn.execute(
                select(report_metric.c.period, report_metric.c.as_of)
                .where(report_metric.c.as_of.between(start, end))
                .distinct()
            )
        }
    missing: dict[int, list[date]] = {}
    day = start
    while day <= end:
        if (str(day.year), day) not in have:
            missing.setdefault(day.year, []).append(day)
        day += timedelta(days=1)
    written = 0
    for year, days in missing.items():
        period = Period.parse(str(year))
        with engine.begin() as conn:
            history = compute_metrics_history(conn, period, days, settings.targets)
            written += store_metrics_history(conn, period, history, computed_by="backfill")
    return written


def metric_history(
    conn: Connection, period: str, as_of: date, metrics: Sequence[str]
) -> dict[str, list[tuple[date, float | None, str]]]:
    """Each metric's stored values of ``period`` up to ``as_of``: (as_of, value, status)."""
    rows = conn.execute(
        select(
            report_metric.c.metric,
            report_metric.c.as_of,
            report_metric.c.value,
            report_metric.c.status,
        )
        .where(
            report_metric.c.period == period,
            report_metric.c.as_of <= as_of,
            report_metric.c.metric.in_(list(metrics)),
        )
        .order_by(report_metric.c.metric, report_metric.c.as_of)
    )
    history: dict[str, list[tuple[date, float | None, str]]] = {m: [] for m in metrics}
    for metric, day, value, status in rows:
        history[metric].append((day, value, status))
    return history
