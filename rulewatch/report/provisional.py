"""Provisional figures made final: history recomputed once a year's arrangement arrives.

A figure that counts working days of a year with no published arrangement is
stored with ``is_provisional`` (``report_metric``, ``report_target_status``). When
the calendar's arrangement changes (a package upgrade brings the year, or
``calendar.yaml`` lists it), the next nightly run recomputes every stored
provisional figure with the calendar as it now is: the report tables then show
the corrected figures, ``slipped_since`` follows the corrected history, and the
alerting step, which reads the current figures, announces a recovery where a slip
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

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from rulewatch.common.periods import Period
from rulewatch.config.settings import Settings
from rulewatch.metrics.compute import compute_metrics
from rulewatch.report.tables import store_metrics, store_statuses, target_statuses
from rulewatch.warehouse.schema import report_metric, report_target_status, warehouse_meta

HISTORY_KEY = "provisional_history_calendar"
ARRANGEMENT_KEY = "calendar_arrangement"


@dataclass
class ProvisionalRecompute:
    """What one pass recomputed: (period, as-of) figures and latest statuses."""

    recomputed: list[tuple[str, date]] = field(default_factory=list)
    statuses: int = 0
    still_provisional: int = 0  # metric rows that are provisional with the new calendar too

    @property
    def ran(self) -> bool:
        return bool(self.recomputed or self.statuses)


def _meta(conn: Connection, key: str) -> str | None:
    return conn.execute(
        select(warehouse_meta.c.value).where(warehouse_meta.c.key == key)
    ).scalar_one_or_none()


def recompute_provisional_history(engine: Engine, settings: Settings) -> ProvisionalRecompute:
    """Recompute the stored provisional figures if the calendar changed since they were
    last reconciled; one transaction per (period, as-of date), the key last."""
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
        latest = defaultdict(set)
        for metric, period, as_of in conn.execute(
            select(
                report_target_status.c.metric,
                report_target_status.c.period,
                report_target_status.c.as_of,
            ).where(report_target_status.c.is_provisional.is_(True))
        ):
            latest[(period, as_of)].add(metric)
    for label, as_of in rows:
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
    for (label, as_of), names in sorted(latest.items()):
        period = Period.parse(label)
        with engine.begin() as conn:
            metrics = compute_metrics(conn, period, as_of, settings.targets)
            statuses = [
                s
                for s in target_statuses(
                    conn, settings, period, as_of, metrics, use_stored_checks=False
                )
                if s.metric in names
            ]
            written, _ = store_statuses(conn, statuses)
        result.statuses += written
    with engine.begin() as conn:
        conn.execute(warehouse_meta.delete().where(warehouse_meta.c.key == HISTORY_KEY))
        conn.execute(warehouse_meta.insert(), {"key": HISTORY_KEY, "value": arrangement})
    return result
