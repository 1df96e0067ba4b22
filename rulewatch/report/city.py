"""The city report (issue 16 §4): every agency side by side, read from the report tables.

A city's rule-of-law office assesses every department on the same targets. This
report shows, for one period at one as-of date:

- the **league table**: per target, one row per agency (value, numerator /
  denominator, its own target, status, slipped since, rank by value) from
  ``report_target_status``, and the city row (agency ``all``) from the rollup's
  ``report_metric`` rows, which the metrics layer sums from numerators and
  denominators (never an average of rates);
- the **trends**: each agency's and the city's monthly values (``report_metric``);
- the **offending records** by agency (``report_offender``);
- the **freshness** of each agency's sources (``sync_run``, ``sync_state``);
- each agency's **published figures** reconciled (``published.yaml``, a report's
  ``agency``) with its stored figures, and the city's with the rollup.

It computes nothing the tables hold: a figure missing there is shown missing,
not worked out here. Agency names and record keys are data from outside: the
exports neutralise them as formulas (:func:`rulewatch.report.exports.inert`), the
page escapes them (an autoescaped Jinja2 template), the chart names agencies by id.
Files go to ``city/`` under the data folder: ``city-report-P.html``,
``city-report-P.xlsx`` and one CSV per table (``city-league-P.csv``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, and_, func, select
from sqlalchemy.engine import Connection

from rulewatch.common.messages import t
from rulewatch.common.metric_ids import METRICS
from rulewatch.common.periods import Period
from rulewatch.common.staging import moved, written_together
from rulewatch.common.templates import environment
from rulewatch.config.agencies import ALL_AGENCIES, Agencies, load_agencies
from rulewatch.config.settings import SOURCE_NAMES, Settings
from rulewatch.metrics.compute import MetricValue
from rulewatch.report.charts import Chart, city_trends_chart
from rulewatch.report.data import source_freshness
from rulewatch.report.exports import (
    FRESHNESS_EXPORT_COLUMNS,
    RECONCILIATION_COLUMNS,
    freshness_rows,
    inert,
    reconciliation_row,
    write_book,
    write_csv,
)
from rulewatch.report.published import (
    Reconciled,
    check_published_agencies,
    load_published,
    published_by,
    reconcile,
)
from rulewatch.report.tables import months_of
from rulewatch.warehouse.db import redact
from rulewatch.warehouse.runs import snapshot
from rulewatch.warehouse.schema import (
    now_utc,
    report_metric,
    report_offender,
    report_target_status,
)

CITY_FOLDER = "city"  # under the data folder, beside ``agencies/<id>``

LEAGUE_COLUMNS = [
    "metric",
    "rank",
    "agency_id",
    "agency_name",
    "value",
    "numerator",
    "denominator",
    "target",
    "severity",
    "status",
    "slipped_since",
    "offender_count",
    "as_of",
]
FRESHNESS_COLUMNS = ["agency_id", "agency_name", *FRESHNESS_EXPORT_COLUMNS]
_METRIC_COLUMNS = ["value", "numerator", "denominator", "target", "status", "as_of"]


@dataclass
class CityData:
    """The city report of one period at one as-of date: pandas frames of one grain each."""

    period: Period
    as_of: date
    language: str
    generated_at: datetime
    city_name: str  # the supervising office (agencies.yaml), or a plain "city"
    agency_ids: list[str]  # agencies.yaml's order
    names: dict[str, str]  # agency id (and ``all``) -> name in the report's language
    targets: list[str]  # the targets of targets.yaml, in its order
    league: pd.DataFrame  # one row per target per agency, ranked; LEAGUE_COLUMNS
    rollup: pd.DataFrame  # one row per target: the city's (agency ``all``) stored figure
    trends: pd.DataFrame  # one row per agency (and ``all``) per target per month
    offenders: pd.DataFrame  # one row per offending record per target per agency
    freshness: pd.DataFrame  # one row per source per agency
    reconciliation: list[tuple[str, Reconciled]] = field(default_factory=list)  # (agency, row)
    stale_after_hours: float | None = None  # alerts.yaml; a source's is_stale is against it

    @property
    def slipped(self) -> pd.DataFrame:
        return self.league[self.league["status"] == "slipped"]


def _frame(rows: Sequence[object], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame([tuple(r) for r in rows], columns=list(columns), dtype=object)


def _nones(frame: pd.DataFrame) -> pd.DataFrame:
    """Every missing cell (NaN, NA, NaT: what a merge or a concat leaves) as None."""
    return frame.astype(object).where(frame.notna(), None)


def newest_metric_rows(
    conn: Connection,
    agency_ids: Sequence[str],
    periods: Sequence[str],
    metrics: Sequence[str],
    as_of: date,
) -> pd.DataFrame:
    """The stored ``report_metric`` row of each agency, period and metric at the newest
    as-of date up to ``as_of`` (a night that did not run shows the one before it)."""
    where = (
        report_metric.c.agency_id.in_(list(agency_ids)),
        report_metric.c.period.in_(list(periods)),
        report_metric.c.metric.in_(list(metrics)),
        report_metric.c.as_of <= as_of,
    )
    newest = (
        select(
            report_metric.c.agency_id,
            report_metric.c.period,
            report_metric.c.metric,
            func.max(report_metric.c.as_of).label("as_of"),
        )
        .where(*where)
        .group_by(report_metric.c.agency_id, report_metric.c.period, report_metric.c.metric)
        .subquery()
    )
    columns = ["agency_id", "period", "metric", *_METRIC_COLUMNS, "is_provisional"]
    rows = conn.execute(
        select(*(report_metric.c[c] for c in columns))
        .join(
            newest,
            and_(
                newest.c.agency_id == report_metric.c.agency_id,
                newest.c.period == report_metric.c.period,
                newest.c.metric == report_metric.c.metric,
                newest.c.as_of == report_metric.c.as_of,
            ),
        )
        .order_by(report_metric.c.agency_id, report_metric.c.period, report_metric.c.metric)
    ).all()
    return _frame(rows, columns)


def league_table(
    conn: Connection,
    agency_ids: Sequence[str],
    names: dict[str, str],
    targets: Sequence[str],
    period: str,
    as_of: date,
) -> pd.DataFrame:
    """Per target, every agency's latest stored status (``report_target_status``, as of
    ``as_of`` at the latest), ranked by value: the highest is 1, equal values share a rank,
    an agency without a value has none and comes last. An agency never checked has a row
    with no status."""
    columns = [c for c in LEAGUE_COLUMNS if c not in ("rank", "agency_name")]
    rows = conn.execute(
        select(*(report_target_status.c[c] for c in columns)).where(
            report_target_status.c.agency_id.in_(list(agency_ids)),
            report_target_status.c.period == period,
            report_target_status.c.metric.in_(list(targets)),
            report_target_status.c.as_of <= as_of,
        )
    ).all()
    stored = _frame(rows, columns)
    grid = pd.DataFrame(
        [(m, a) for m in targets for a in agency_ids], columns=["metric", "agency_id"], dtype=object
    )
    league = _nones(grid.merge(stored, on=["metric", "agency_id"], how="left"))
    values = pd.to_numeric(league["value"], errors="coerce").astype("float64")
    league["rank"] = (
        values.groupby(league["metric"]).rank(method="min", ascending=False).astype("Int64")
    )
    league["agency_name"] = league["agency_id"].map(names)
    league["_metric"] = league["metric"].map({m: i for i, m in enumerate(targets)})
    league["_agency"] = league["agency_id"].map({a: i for i, a in enumerate(agency_ids)})
    league["_unranked"] = league["rank"].isna()
    league = league.sort_values(["_metric", "_unranked", "rank", "_agency"], kind="stable")
    return league[LEAGUE_COLUMNS].reset_index(drop=True)


def city_offenders(
    conn: Connection, agency_ids: Sequence[str], period: str, as_of: date
) -> pd.DataFrame:
    """Every offending record of every agency's latest statuses (``report_offender``)."""
    columns = ["agency_id", "metric", "natural_key", "reason", "as_of"]
    rows = conn.execute(
        select(*(report_offender.c[c] for c in columns))
        .where(
            report_offender.c.agency_id.in_(list(agency_ids)),
            report_offender.c.period == period,
            report_offender.c.as_of <= as_of,
        )
        .order_by(
            report_offender.c.agency_id, report_offender.c.metric, report_offender.c.natural_key
        )
    ).all()
    return _frame(rows, columns)


def _metric_values(frame: pd.DataFrame) -> list[MetricValue]:
    """Stored ``report_metric`` rows as metric values (a count's stored float as an int)."""
    values = []
    for r in frame.itertuples(index=False):
        value = r.value
        if value is not None and METRICS.get(r.metric, ("rate",))[0] == "count":
            value = int(value)
        values.append(
            MetricValue(
                metric=r.metric,
                period=r.period,
                as_of=r.as_of,
                value=value,
                numerator=r.numerator,
                denominator=r.denominator,
                target=r.target,
                status=r.status,
                provisional=bool(r.is_provisional),
            )
        )
    return values


def _sources(agencies: Agencies, agency_id: str) -> tuple[str, ...]:
    if agencies.path is None:
        return SOURCE_NAMES
    return tuple(s for s in SOURCE_NAMES if agencies.get(agency_id).has_source(s))


def gather_city(
    conn: Connection, settings: Settings, period: Period, as_of: date, language: str | None = None
) -> CityData:
    """Read the city report of ``period`` at ``as_of`` from the report tables, the sync
    records and ``published.yaml``; in the supervising office's language by default."""
    agencies = load_agencies(settings)
    if language is not None:
        lang = language
    elif agencies.supervisor is not None:
        lang = agencies.supervisor.alerts.language
    else:
        lang = settings.alerts.language
    ids = list(agencies.ids)
    names = {a.agency_id: a.name(lang) for a in agencies}
    if agencies.supervisor is not None:
        city_name = agencies.supervisor.name_zh if lang == "zh" else agencies.supervisor.name_en
    else:
        city_name = t("city.city", lang)
    names[ALL_AGENCIES] = t("city.rollup", lang)
    targets = list(settings.targets)

    months = [m.label for m in months_of(period, as_of)]
    trends = newest_metric_rows(conn, [*ids, ALL_AGENCIES], months, targets, as_of)
    trends.insert(1, "agency_name", trends["agency_id"].map(names))
    rollup = newest_metric_rows(conn, [ALL_AGENCIES], [period.label], targets, as_of)

    published = load_published(settings)
    if agencies.path is not None:
        check_published_agencies(published, ids, settings)
    reconciliation: list[tuple[str, Reconciled]] = []
    stated = sorted({f.metric for r in published.reports for f in r.figures})
    if stated:
        figures = newest_metric_rows(conn, [*ids, ALL_AGENCIES], [period.label], stated, as_of)
        for agency in [*ids, ALL_AGENCIES]:
            mine = _metric_values(figures[figures["agency_id"] == agency])
            for row in reconcile(published_by(published, agency), mine, period.label):
                reconciliation.append((agency, row))

    offenders = city_offenders(conn, ids, period.label, as_of)
    offenders.insert(1, "agency_name", offenders["agency_id"].map(names))
    now = now_utc()
    freshness_records = [
        {"agency_id": a, "agency_name": names[a], **row}
        for a in ids
        for row in freshness_rows(
            source_freshness(
                conn,
                settings.alerts.stale_after_hours,
                now,
                agency_id=a,
                sources=_sources(agencies, a),
            )
        )
    ]
    return CityData(
        period=period,
        as_of=as_of,
        language=lang,
        generated_at=now,
        city_name=city_name,
        agency_ids=ids,
        names=names,
        targets=targets,
        league=league_table(conn, ids, names, targets, period.label, as_of),
        rollup=rollup,
        trends=trends,
        offenders=offenders,
        freshness=pd.DataFrame(freshness_records, columns=FRESHNESS_COLUMNS, dtype=object),
        reconciliation=reconciliation,
        stale_after_hours=settings.alerts.stale_after_hours,
    )


# --- exports --------------------------------------------------------------------------------


def _iso(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value


def league_frame(data: CityData) -> pd.DataFrame:
    """The league table, each target's city row (agency ``all``, no rank) after its agencies."""
    rollup = data.rollup.set_index("metric")
    parts = []
    for metric in data.targets:
        parts.append(data.league[data.league["metric"] == metric])
        if metric in rollup.index:
            r = rollup.loc[metric]
            city = {
                "metric": metric,
                "rank": None,
                "agency_id": ALL_AGENCIES,
                "agency_name": data.names[ALL_AGENCIES],
                **{c: r[c] for c in _METRIC_COLUMNS},
                "severity": None,
                "slipped_since": None,
                "offender_count": None,
            }
            parts.append(pd.DataFrame([city], columns=LEAGUE_COLUMNS, dtype=object))
    frame = pd.concat(parts, ignore_index=True) if parts else data.league.iloc[0:0]
    for column in ("slipped_since", "as_of"):
        frame[column] = frame[column].map(_iso)
    return _nones(frame[LEAGUE_COLUMNS])


def trends_frame(data: CityData) -> pd.DataFrame:
    frame = data.trends.drop(columns=["is_provisional"]).copy()
    frame["as_of"] = frame["as_of"].map(_iso)
    return frame


def offenders_frame(data: CityData) -> pd.DataFrame:
    frame = data.offenders.copy()
    frame["as_of"] = frame["as_of"].map(_iso)
    return frame


def reconciliation_frame(data: CityData) -> pd.DataFrame:
    columns = ["agency_id", "agency_name", *RECONCILIATION_COLUMNS]
    rows = [
        (agency, data.names[agency], *reconciliation_row(r)) for agency, r in data.reconciliation
    ]
    return pd.DataFrame(rows, columns=columns, dtype=object)


def city_frames(data: CityData) -> dict[str, pd.DataFrame]:
    """The city report's tables by name, every text cell made inert."""
    return {
        "league": inert(league_frame(data)),
        "trends": inert(trends_frame(data)),
        "offenders": inert(offenders_frame(data)),
        "freshness": inert(data.freshness),
        "reconciliation": inert(reconciliation_frame(data)),
    }


# --- files ----------------------------------------------------------------------------------


@dataclass
class CityFiles:
    """The files the city report wrote, and the data they show."""

    data: CityData
    html: Path
    xlsx: Path
    csvs: list[Path] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [self.html, self.xlsx, *self.csvs]


def render_city_html(data: CityData, charts: Sequence[Chart], warehouse: str) -> str:
    """The city report page (``templates/city.html.j2``, autoescaped)."""
    lang = data.language
    league = league_frame(data)
    offenders = {
        (agency, metric): group
        for (agency, metric), group in data.offenders.groupby(["agency_id", "metric"], sort=False)
    }
    return (
        environment()
        .get_template("city.html.j2")
        .render(
            data=data,
            lang=lang,
            title=f"{t('city.title', lang)} {data.period.label} — {data.city_name}",
            league={m: league[league["metric"] == m].to_dict("records") for m in data.targets},
            trends=data.trends,
            offenders=offenders,
            freshness=data.freshness.to_dict("records"),
            stale_hours=data.stale_after_hours,
            trend_tables=trend_tables(data),
            charts=charts,
            warehouse=warehouse,
            listed=OFFENDERS_LISTED,
        )
    )


OFFENDERS_LISTED = 20  # per agency and target on the page; the exports hold every one


@dataclass(frozen=True)
class TrendTable:
    """One target's monthly values: a row per agency (the city last), a column per month."""

    months: list[str]
    rows: list[tuple[str, str, list[float | None]]]  # (agency id, name, value per month)


def trend_tables(data: CityData) -> dict[str, TrendTable]:
    """The trends as the page's tables, one per target that has monthly figures."""
    tables = {}
    months = sorted(data.trends["period"].unique())
    for metric in data.targets:
        points = data.trends[data.trends["metric"] == metric]
        if points.empty:
            continue
        rows = []
        for agency in [*data.agency_ids, ALL_AGENCIES]:
            mine = points[points["agency_id"] == agency].set_index("period")["value"]
            rows.append((agency, data.names[agency], [mine.get(m) for m in months]))
        tables[metric] = TrendTable(months, rows)
    return tables


def write_city_report(
    engine: Engine,
    settings: Settings,
    period: Period,
    as_of: date,
    out_dir: Path,
    language: str | None = None,
) -> CityFiles:
    """Write the city report of ``period`` at ``as_of`` into ``out_dir`` (made if missing):
    ``city-report-P.html``, ``city-report-P.xlsx`` and ``city-<table>-P.csv``."""
    with snapshot(engine) as conn:  # one consistent state, also while a sync writes
        data = gather_city(conn, settings, period, as_of, language)
    charts = []
    if not data.trends.empty:
        charts.append(city_trends_chart(data.trends, data.targets, data.language))
    label = period.label
    with written_together(out_dir) as stage:  # the earlier set stays whole on an error
        html = stage / f"city-report-{label}.html"
        html.write_text(render_city_html(data, charts, redact(str(engine.url))), encoding="utf-8")
        frames = city_frames(data)
        csvs = [
            write_csv(frame, stage / f"city-{name}-{label}.csv") for name, frame in frames.items()
        ]
        xlsx = write_book(frames, stage / f"city-report-{label}.xlsx")
    return CityFiles(
        data=data,
        html=moved(html, out_dir),
        xlsx=moved(xlsx, out_dir),
        csvs=[moved(p, out_dir) for p in csvs],
    )
