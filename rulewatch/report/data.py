"""Everything one period's report shows, read from the warehouse in one place.

The HTML page, the CSV and XLSX exports and the annual-report draft are all
renderings of one :class:`ReportData`, so they cannot disagree. Its tables of
many rows (the months of the period, the nightly history) are pandas frames,
which the charts pivot and the exports write.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from rulewatch.checks.results import TargetCheck
from rulewatch.common.metric_ids import RATE_METRICS
from rulewatch.common.periods import Period
from rulewatch.config.agencies import Agencies, Agency, load_agencies
from rulewatch.config.settings import SOURCE_NAMES, Settings
from rulewatch.metrics.compute import MetricValue, compute_metrics, early_warnings
from rulewatch.report.published import (
    Reconciled,
    check_published_agencies,
    load_published,
    published_by,
    reconcile,
)
from rulewatch.report.tables import months_of, target_statuses
from rulewatch.warehouse.schema import (
    CORE_TABLES,
    DEFAULT_AGENCY_ID,
    now_utc,
    quarantined_record,
    report_metric,
    sync_run,
    sync_state,
)

#: The columns of a metric frame, one per field of :class:`MetricValue`. ``value`` keeps each
#: metric's own type (a count is an int, a rate a float), so an export writes ``230``, not
#: ``230.0``; numerator and denominator are whole numbers or missing.
METRIC_DTYPES: dict[str, Any] = {
    "metric": "str",
    "period": "str",
    "as_of": object,  # datetime.date
    "value": object,
    "numerator": "Int64",
    "denominator": "Int64",
    "target": "float64",
    "status": "str",
    "provisional": "bool",
}


def metric_frame(metrics: Iterable[MetricValue]) -> pd.DataFrame:
    """One row per metric per period: the fields of each :class:`MetricValue`."""
    records = [asdict(m) for m in metrics]
    return pd.DataFrame(records, columns=list(METRIC_DTYPES), dtype=object).astype(METRIC_DTYPES)


@dataclass(frozen=True)
class SourceFreshness:
    """How current one source's data is: its last sync, last success and watermarks."""

    source: str
    last_status: str | None  # of the newest sync: succeeded, failed, running; None: never
    last_started_at: datetime | None
    last_succeeded_at: datetime | None  # finished_at of the newest successful sync
    records_read: int  # by the newest sync
    records_loaded: int
    records_set_aside: int
    error: str | None
    syncs: int  # syncs ever run
    watermarks: tuple[tuple[str, datetime | None], ...] = ()  # (stream, newest change loaded)
    stale_after_hours: float | None = None  # alerts.yaml; set when the last success is older


@dataclass(frozen=True)
class QuarantineCount:
    """Records of one stream set aside by one check: versions received and still set aside."""

    stream: str
    check_name: str
    versions: int


@dataclass
class ReportData:
    """One period's report at one as-of date."""

    period: Period
    as_of: date
    language: str
    generated_at: datetime
    metrics: list[MetricValue]
    targets: list[TargetCheck]
    monthly: pd.DataFrame  # metric_frame of every month of the period started by as_of
    history: pd.DataFrame  # report_metric of the targets' rates: metric, as_of, value, status
    reconciliation: list[Reconciled]
    freshness: list[SourceFreshness]
    quarantine: list[QuarantineCount]
    set_aside_now: dict[str, int]  # stream -> records whose newest version is set aside
    early_warnings: list[dict[str, Any]] = field(default_factory=list)
    agency_id: str = DEFAULT_AGENCY_ID
    #: The agency's names by language (agencies.yaml); None without the file, where the
    #: report names no agency and its files are as before agencies existed.
    agency_names: dict[str, str] | None = None

    @property
    def agency_name(self) -> str | None:
        """The agency's name in the report's language; None without agencies.yaml."""
        return self.agency_name_in(self.language)

    def agency_name_in(self, language: str) -> str | None:
        return None if self.agency_names is None else self.agency_names[language]

    def metric(self, metric_id: str) -> MetricValue:
        return next(m for m in self.metrics if m.metric == metric_id)

    @property
    def slipped(self) -> list[TargetCheck]:
        return [t for t in self.targets if t.status == "slipped"]

    @property
    def is_year_to_date(self) -> bool:
        return self.as_of < self.period.end


def source_freshness(
    conn: Connection,
    stale_after_hours: float | None = None,
    now: datetime | None = None,
    *,
    agency_id: str = DEFAULT_AGENCY_ID,
    sources: Sequence[str] = SOURCE_NAMES,
) -> list[SourceFreshness]:
    """Per source of the agency: the newest sync, the newest successful one, the stream
    watermarks; stale when the newest success is more than ``stale_after_hours`` before
    ``now`` (UTC)."""
    watermarks = conn.execute(
        select(sync_state.c.stream, sync_state.c.watermark_at)
        .where(sync_state.c.agency_id == agency_id)
        .order_by(sync_state.c.stream)
    ).all()
    result = []
    for source in sources:
        runs = (sync_run.c.agency_id == agency_id, sync_run.c.source == source)
        newest = conn.execute(
            select(sync_run).where(*runs).order_by(sync_run.c.started_at.desc()).limit(1)
        ).first()
        succeeded = conn.execute(
            select(func.max(sync_run.c.finished_at)).where(*runs, sync_run.c.status == "succeeded")
        ).scalar()
        syncs = conn.execute(select(func.count()).select_from(sync_run).where(*runs)).scalar_one()
        result.append(
            SourceFreshness(
                source=source,
                last_status=None if newest is None else newest.status,
                last_started_at=None if newest is None else newest.started_at,
                last_succeeded_at=succeeded,
                records_read=0 if newest is None else newest.records_read,
                records_loaded=0 if newest is None else newest.records_loaded,
                records_set_aside=0 if newest is None else newest.records_set_aside,
                error=None if newest is None else newest.error,
                syncs=int(syncs),
                watermarks=tuple((s, w) for s, w in watermarks if s.split(".", 1)[0] == source),
                stale_after_hours=stale_after_hours
                if stale_after_hours is not None
                and now is not None
                and succeeded is not None
                and (now - succeeded).total_seconds() > stale_after_hours * 3600
                else None,
            )
        )
    return result


def metric_history(
    conn: Connection,
    period: str,
    as_of: date,
    metrics: Sequence[str],
    *,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> pd.DataFrame:
    """The agency's stored values of ``metrics`` in ``period`` up to ``as_of``
    (``report_metric``): one row per metric per as-of date, columns metric, as_of,
    value, status."""
    query = (
        select(
            report_metric.c.metric,
            report_metric.c.as_of,
            report_metric.c.value,
            report_metric.c.status,
        )
        .where(
            report_metric.c.agency_id == agency_id,
            report_metric.c.period == period,
            report_metric.c.as_of <= as_of,
            report_metric.c.metric.in_(list(metrics)),
        )
        .order_by(report_metric.c.metric, report_metric.c.as_of)
    )
    return pd.read_sql(query, conn, parse_dates=["as_of"], dtype={"value": "float64"})


def quarantine_counts(
    conn: Connection, *, agency_id: str = DEFAULT_AGENCY_ID
) -> tuple[list[QuarantineCount], dict[str, int]]:
    """The agency's set-aside record versions per stream and check, and its records set
    aside right now."""
    rows = conn.execute(
        select(quarantined_record.c.stream, quarantined_record.c.check_name, func.count())
        .where(quarantined_record.c.agency_id == agency_id)
        .group_by(quarantined_record.c.stream, quarantined_record.c.check_name)
        .order_by(quarantined_record.c.stream, quarantined_record.c.check_name)
    ).all()
    now = {
        stream: int(
            conn.execute(
                select(func.count())
                .select_from(table)
                .where(table.c.agency_id == agency_id, table.c.is_set_aside.is_(True))
            ).scalar_one()
        )
        for stream, table in CORE_TABLES.items()
    }
    return [QuarantineCount(s, c, int(n)) for s, c, n in rows], now


def gather_report(
    conn: Connection, settings: Settings, period: Period, as_of: date, language: str | None = None
) -> ReportData:
    """Read everything the report of ``period`` at ``as_of`` shows (the targets: the
    stored checks of that date; :func:`rulewatch.report.write.write_report` runs them
    when none are stored). Every figure is the settings' agency's."""
    agency = settings.agency_id
    metrics = compute_metrics(conn, period, as_of, settings.targets, agency_id=agency)
    monthly = metric_frame(
        m
        for month in months_of(period, as_of)
        for m in compute_metrics(conn, month, as_of, settings.targets, agency_id=agency)
    )
    quarantine, set_aside_now = quarantine_counts(conn, agency_id=agency)
    warnings = (
        early_warnings(conn, as_of, settings.alerts.early_warning_days, agency_id=agency)
        if period.start <= as_of <= period.end
        else []
    )
    published = load_published(settings)
    agencies = load_agencies(settings)
    if agencies.path is not None:
        check_published_agencies(published, agencies.ids, settings)
    return ReportData(
        period=period,
        as_of=as_of,
        language=language or settings.alerts.language,
        generated_at=now_utc(),
        metrics=metrics,
        targets=target_statuses(conn, period, as_of, agency_id=agency),
        monthly=monthly,
        history=metric_history(
            conn,
            period.label,
            as_of,
            [m for m in RATE_METRICS if m in settings.targets],
            agency_id=agency,
        ),
        reconciliation=reconcile(published_by(published, agency), metrics, period.label),
        freshness=source_freshness(
            conn,
            settings.alerts.stale_after_hours,
            now_utc(),
            agency_id=agency,
            sources=_sources_of(agencies, agency),
        ),
        quarantine=quarantine,
        set_aside_now=set_aside_now,
        early_warnings=warnings,
        agency_id=agency,
        agency_names=None if agencies.path is None else _names(agencies.get(agency)),
    )


def _names(agency: Agency) -> dict[str, str]:
    return {"zh": agency.name_zh, "en": agency.name_en}


def _sources_of(agencies: Agencies, agency_id: str) -> tuple[str, ...]:
    """The sources an agency has (agencies.yaml); every source without the file."""
    if agencies.path is None:
        return SOURCE_NAMES
    return tuple(s for s in SOURCE_NAMES if agencies.get(agency_id).has_source(s))
