"""Provisional figures made final: history recomputed once a year's arrangement arrives.

A figure that counts working days of a year with no published arrangement is
stored with ``is_provisional`` (``report_metric``, ``report_target_status``). When
the calendar's arrangement changes (a package upgrade brings the year, or
``calendar.yaml`` lists it), the next nightly run recomputes every stored
provisional figure with the calendar as it now is and re-runs the target checks
of every date whose stored check is provisional (:func:`check_history`): the
report tables then show the corrected figures and the statuses of the new
checks, ``slipped_since`` follows the corrected history of checks, and the
alerting step, which reads the nightly checks, announces a recovery where a slip
was only an artefact of the Monday-to-Friday stand-in.

Which arrangement the stored history was last reconciled with is kept in
``warehouse_meta`` (``provisional_history_calendar``), beside the arrangement the
calendar table was built from (``calendar_arrangement``); a run that dies half-way
leaves the key unchanged, so the next one does it again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from rulewatch.checks.results import TARGET_STATUSES
from rulewatch.checks.targets import check_history
from rulewatch.common.periods import Period
from rulewatch.config.settings import Settings
from rulewatch.metrics.compute import compute_metrics
from rulewatch.report.tables import store_metrics, store_statuses, target_statuses
from rulewatch.warehouse.schema import (
    check_result,
    report_metric,
    report_target_status,
    warehouse_meta,
)

HISTORY_KEY = "provisional_history_calendar"
ARRANGEMENT_KEY = "calendar_arrangement"


@dataclass
class ProvisionalRecompute:
    """What one pass recomputed: (period, as-of) figures, checks and latest statuses."""

    recomputed: list[tuple[str, date]] = field(default_factory=list)
    rechecked: list[tuple[str, date]] = field(default_factory=list)
    statuses: int = 0
    still_provisional: int = 0  # metric rows that are provisional with the new calendar too

    @property
    def ran(self) -> bool:
        return bool(self.recomputed or self.rechecked or self.statuses)


def _meta(conn: Connection, key: str) -> str | None:
    return conn.execute(
        select(warehouse_meta.c.value).where(warehouse_meta.c.key == key)
    ).scalar_one_or_none()


def _provisional_checks(conn: Connection) -> dict[str, list[date]]:
    """Per period, the as-of dates whose latest stored check of some target is provisional."""
    rank = (
        func.row_number()
        .over(
            partition_by=(check_result.c.metric, check_result.c.period, check_result.c.as_of),
            order_by=check_result.c.check_result_id.desc(),
        )
        .label("rank")
    )
    latest = (
        select(check_result.c.period, check_result.c.as_of, check_result.c.is_provisional, rank)
        .where(check_result.c.metric.is_not(None), check_result.c.status.in_(TARGET_STATUSES))
        .subquery()
    )
    days: dict[str, list[date]] = defaultdict(list)
    for period, as_of in conn.execute(
        select(latest.c.period, latest.c.as_of)
        .where(latest.c.rank == 1, latest.c.is_provisional.is_(True))
        .distinct()
        .order_by(latest.c.period, latest.c.as_of)
    ):
        days[period].append(as_of)
    return days


def recompute_provisional_history(engine: Engine, settings: Settings) -> ProvisionalRecompute:
    """Recompute the stored provisional figures and re-run the provisional checks if the
    calendar changed since they were last reconciled; the key last."""
    result = ProvisionalRecompute()
    with engine.connect() as conn:
        arrangement = _meta(conn, ARRANGEMENT_KEY)
        if arrangement is None or arrangement == _meta(conn, HISTORY_KEY):
            return result
        rows = conn.execute(
            select(report_metric.c.period, report_metric.c.as_of)
            .where(report_metric.c.is_provisional.is_(True))
            .distinct()
            .order_by(report_metric.c.as_of, report_metric.c.period)
        ).all()
        checked = _provisional_checks(conn)
        latest = defaultdict(set)
        for metric, period, as_of in conn.execute(
            select(
                report_target_status.c.metric,
                report_target_status.c.period,
                report_target_status.c.as_of,
            ).where(report_target_status.c.is_provisional.is_(True))
        ):
            latest[(period, as_of)].add(metric)
    for label, as_of in rows:  # one transaction per (period, as-of date)
        period = Period.parse(label)
        with engine.begin() as conn:
            computed_by, job_id = conn.execute(
                select(report_metric.c.computed_by, report_metric.c.job_id)
                .where(report_metric.c.period == label, report_metric.c.as_of == as_of)
                .limit(1)
            ).one()
            metrics = compute_metrics(conn, period, as_of, settings.targets)
            store_metrics(conn, period, metrics, computed_by=computed_by, job_id=job_id)
        result.recomputed.append((label, as_of))
        result.still_provisional += sum(m.provisional for m in metrics)
    for label, days in checked.items():
        check_history(engine, settings, Period.parse(label), days)
        result.rechecked += [(label, day) for day in days]
    for (label, as_of), names in sorted(latest.items()):
        with engine.begin() as conn:
            statuses = [
                s for s in target_statuses(conn, Period.parse(label), as_of) if s.metric in names
            ]
            written, _ = store_statuses(conn, statuses)
        result.statuses += written
    with engine.begin() as conn:
        conn.execute(warehouse_meta.delete().where(warehouse_meta.c.key == HISTORY_KEY))
        conn.execute(warehouse_meta.insert(), {"key": HISTORY_KEY, "value": arrangement})
    return result
