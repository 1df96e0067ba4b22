"""The report tables (revision 0004): what BI tools and downstream reports read.

- ``report_metric`` — one row per metric per period per as-of date (the nightly
  history; a re-run of a date replaces its rows);
- ``report_target_status`` — one row per target per period: its latest status;
- ``report_offender`` — one row per offending record of that latest status.

The nightly job refreshes them for the periods around its as-of date
(:func:`report_periods`); :func:`backfill_history` rebuilds past dates from the
current state, which the contract allows ("events after the as-of date have
not happened yet"). A target's status comes from the stored Great Expectations
check of the same period and date when there is one, otherwise from the same
metric declarations (:func:`rulewatch.metrics.rate_population`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.engine import Connection

from rulewatch.checks.results import Offender, latest_target_statuses, now_utc
from rulewatch.metric_ids import METRICS
from rulewatch.metrics import (
    MetricValue,
    compute_metrics,
    compute_metrics_history,
    rate_population,
)
from rulewatch.periods import Period
from rulewatch.settings import Settings
from rulewatch.warehouse.schema import report_metric, report_offender, report_target_status


@dataclass(frozen=True)
class TargetStatus:
    """A target's status for one period at one as-of date, with every offending record."""

    metric: str
    period: str
    as_of: date
    value: float | None
    numerator: int
    denominator: int
    target: float
    severity: str
    status: str  # met, slipped, no_data
    offenders: tuple[Offender, ...] = ()
    slipped_since: date | None = None
    check_result_id: int | None = None  # the stored GX check it was read from
    provisional: bool = False  # counts working days of a year not yet published

    @property
    def offender_count(self) -> int:
        return len(self.offenders)


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
    """The first as-of date of the unbroken run of slipped days ending at ``as_of``,
    from the ``report_metric`` history (``as_of`` itself when there is none)."""
    rows = conn.execute(
        select(report_metric.c.as_of, report_metric.c.status)
        .where(
            report_metric.c.metric == metric,
            report_metric.c.period == period,
            report_metric.c.as_of < as_of,
        )
        .order_by(report_metric.c.as_of.desc())
    )
    since = as_of
    for day, status in rows:
        if status != "slipped":
            break
        since = day
    return since


def target_statuses(
    conn: Connection,
    settings: Settings,
    period: Period,
    as_of: date,
    metrics: Sequence[MetricValue],
    *,
    use_stored_checks: bool = True,
) -> list[TargetStatus]:
    """Every target's status for ``period`` at ``as_of``, with all its offenders.

    Read from the stored target check of that period and date when there is one
    (same figures by construction), otherwise from the metrics and their populations
    (always, with ``use_stored_checks`` off: a check made with an older calendar).
    """
    stored = {
        c.metric: c
        for c in latest_target_statuses(conn, period.label)
        if use_stored_checks and c.as_of == as_of and c.metric in METRICS
    }
    statuses = []
    for m in metrics:
        options = settings.targets.get(m.metric)
        if options is None or m.target is None:
            continue
        check = stored.get(m.metric)
        if check is not None:
            statuses.append(
                TargetStatus(
                    metric=m.metric,
                    period=period.label,
                    as_of=as_of,
                    value=check.value,
                    numerator=check.numerator,
                    denominator=check.denominator,
                    target=check.target,
                    severity=check.severity,
                    status=check.status,
                    offenders=tuple(check.offenders),
                    slipped_since=_earliest(
                        check.slipped_since,
                        slipped_since(conn, m.metric, period.label, as_of)
                        if check.status == "slipped"
                        else None,
                    ),
                    check_result_id=_check_result_id(conn, check.check_run_id, m.metric, period),
                    provisional=m.provisional,
                )
            )
            continue
        population = rate_population(m.metric, period, as_of).subquery()
        offenders = tuple(
            Offender(key, reason)
            for key, reason in conn.execute(
                select(population.c.natural_key, population.c.reason)
                .where(population.c.passes.is_(False))
                .order_by(population.c.natural_key)
            )
        )
        since = (
            slipped_since(conn, m.metric, period.label, as_of) if m.status == "slipped" else None
        )
        statuses.append(
            TargetStatus(
                metric=m.metric,
                period=period.label,
                as_of=as_of,
                value=m.value,
                numerator=m.numerator or 0,
                denominator=m.denominator or 0,
                target=m.target,
                severity=options.severity,
                status=m.status,
                offenders=offenders,
                slipped_since=since,
                provisional=m.provisional,
            )
        )
    return statuses


def _earliest(*days: date | None) -> date | None:
    known = [d for d in days if d is not None]
    return min(known) if known else None


def _check_result_id(
    conn: Connection, check_run_id: str | None, metric: str, period: Period
) -> int | None:
    from rulewatch.warehouse.schema import check_result

    if check_run_id is None:
        return None
    return conn.execute(
        select(check_result.c.check_result_id).where(
            check_result.c.check_run_id == check_run_id,
            check_result.c.metric == metric,
            check_result.c.period == period.label,
        )
    ).scalar()


def store_statuses(conn: Connection, statuses: Iterable[TargetStatus]) -> tuple[int, int]:
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
                metric=s.metric,
                period=s.period,
                as_of=s.as_of,
                value=s.value,
                numerator=s.numerator,
                denominator=s.denominator,
                target=s.target,
                severity=s.severity,
                status=s.status,
                offender_count=s.offender_count,
                slipped_since=s.slipped_since,
                check_result_id=s.check_result_id,
                updated_at=updated_at,
                is_provisional=s.provisional,
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
