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
``warehouse_meta`` per agency (``provisional_history_calendar`` for the one agency
without ``agencies.yaml``, ``provisional_history:<agency>`` otherwise, ``…:all`` for
the city rollup), beside the arrangement the calendar table was built from
(``calendar_arrangement``, shared); a run that dies half-way leaves its key
unchanged, so the next one does it again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from rulewatch.checks.results import TARGET_STATUSES
from rulewatch.checks.targets import check_history
from rulewatch.common.periods import Period
from rulewatch.config.agencies import ALL_AGENCIES
from rulewatch.config.settings import Settings
from rulewatch.metrics.compute import compute_city_metrics, compute_metrics
from rulewatch.report.tables import (
    rollup_agencies,
    store_metrics,
    store_statuses,
    target_statuses,
)
from rulewatch.warehouse.schema import (
    DEFAULT_AGENCY_ID,
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


def history_key(agency_id: str) -> str:
    """The ``warehouse_meta`` key of the arrangement an agency's history was reconciled with
    (at most 64 characters: an agency id has at most 40)."""
    return HISTORY_KEY if agency_id == DEFAULT_AGENCY_ID else f"provisional_history:{agency_id}"


def _provisional_checks(conn: Connection, agency_id: str) -> dict[str, list[date]]:
    """Per period, the as-of dates whose latest stored check of some target of the agency
    is provisional."""
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
        .where(
            check_result.c.agency_id == agency_id,
            check_result.c.metric.is_not(None),
            check_result.c.status.in_(TARGET_STATUSES),
        )
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
    """Recompute the agency's (``settings.agency_id``) stored provisional figures and re-run
    its provisional checks if the calendar changed since they were last reconciled; the
    agency's key last."""
    result = ProvisionalRecompute()
    agency = settings.agency_id
    key = history_key(agency)
    with engine.connect() as conn:
        arrangement = _meta(conn, ARRANGEMENT_KEY)
        if arrangement is None or arrangement == _meta(conn, key):
            return result
        rows = _provisional_rows(conn, agency)
        checked = _provisional_checks(conn, agency)
        latest = defaultdict(set)
        for metric, period, as_of in conn.execute(
            select(
                report_target_status.c.metric,
                report_target_status.c.period,
                report_target_status.c.as_of,
            ).where(
                report_target_status.c.agency_id == agency,
                report_target_status.c.is_provisional.is_(True),
            )
        ):
            latest[(period, as_of)].add(metric)
    for label, as_of in rows:  # one transaction per (period, as-of date)
        period = Period.parse(label)
        with engine.begin() as conn:
            computed_by, job_id = _computed_by(conn, agency, label, as_of)
            metrics = compute_metrics(conn, period, as_of, settings.targets, agency_id=agency)
            store_metrics(
                conn, period, metrics, computed_by=computed_by, job_id=job_id, agency_id=agency
            )
        result.recomputed.append((label, as_of))
        result.still_provisional += sum(m.provisional for m in metrics)
    for label, days in checked.items():
        check_history(engine, settings, Period.parse(label), days)
        result.rechecked += [(label, day) for day in days]
    for (label, as_of), names in sorted(latest.items()):
        with engine.begin() as conn:
            latest_of_day = target_statuses(conn, Period.parse(label), as_of, agency_id=agency)
            statuses = [s for s in latest_of_day if s.metric in names]
            written, _ = store_statuses(conn, statuses, agency_id=agency)
        result.statuses += written
    _reconciled(engine, key, arrangement)
    return result


def recompute_provisional_rollup(engine: Engine, settings: Settings) -> ProvisionalRecompute:
    """The city rollup's (agency ``all``) stored provisional figures recomputed once the
    calendar changed, as :func:`recompute_provisional_history` does for one agency (the
    rollup has no checks); nothing without ``agencies.yaml``. The city step runs it after
    the agencies'."""
    result = ProvisionalRecompute()
    agency_ids = rollup_agencies(settings)
    key = history_key(ALL_AGENCIES)
    with engine.connect() as conn:
        arrangement = _meta(conn, ARRANGEMENT_KEY)
        if not agency_ids or arrangement is None or arrangement == _meta(conn, key):
            return result
        rows = _provisional_rows(conn, ALL_AGENCIES)
    every = dict.fromkeys(agency_ids, settings.targets)
    for label, as_of in rows:
        period = Period.parse(label)
        with engine.begin() as conn:
            computed_by, job_id = _computed_by(conn, ALL_AGENCIES, label, as_of)
            city = compute_city_metrics(conn, period, as_of, every, settings.targets)
            metrics = city[ALL_AGENCIES]
            store_metrics(
                conn,
                period,
                metrics,
                computed_by=computed_by,
                job_id=job_id,
                agency_id=ALL_AGENCIES,
            )
        result.recomputed.append((label, as_of))
        result.still_provisional += sum(m.provisional for m in metrics)
    _reconciled(engine, key, arrangement)
    return result


def _provisional_rows(conn: Connection, agency_id: str) -> list[tuple[str, date]]:
    """The (period, as-of date) of the agency's stored provisional ``report_metric`` rows."""
    return [
        (period, as_of)
        for period, as_of in conn.execute(
            select(report_metric.c.period, report_metric.c.as_of)
            .where(report_metric.c.agency_id == agency_id, report_metric.c.is_provisional.is_(True))
            .distinct()
            .order_by(report_metric.c.as_of, report_metric.c.period)
        )
    ]


def _computed_by(conn: Connection, agency_id: str, period: str, as_of: date) -> tuple[str, Any]:
    """Who wrote the stored rows (kept when they are recomputed): (computed_by, job_id)."""
    row = conn.execute(
        select(report_metric.c.computed_by, report_metric.c.job_id)
        .where(
            report_metric.c.agency_id == agency_id,
            report_metric.c.period == period,
            report_metric.c.as_of == as_of,
        )
        .limit(1)
    ).one()
    return row.computed_by, row.job_id


def _reconciled(engine: Engine, key: str, arrangement: str) -> None:
    with engine.begin() as conn:
        conn.execute(warehouse_meta.delete().where(warehouse_meta.c.key == key))
        conn.execute(warehouse_meta.insert(), {"key": key, "value": arrangement})
