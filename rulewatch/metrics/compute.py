"""The 22 metrics of ``interface.md``, computed in SQL from the core tables.

Each rate is declared once as a population (the denominator's records), a pass
condition (the numerator's) and a reason for the records that fail. The same
declaration feeds :func:`compute_metrics` (conditional sums, one aggregate query
per core table) and :func:`rate_population` (one row per record, for checks,
alerts and reports), so the figures and the listed offenders cannot disagree.

Dates are the local ``*_on`` columns; working days come from joins on
``calendar_day`` (``working_days(a, b) = seq(b) - seq(a)`` for b > a, else 0). A
rate that counts a working day of a year whose arrangement is not published
(Monday to Friday stands in) is *provisional*: the flag travels with the figure,
and the reason of each such record says so.

Every query reads one agency's rows (``agency_id``, ``default`` without
``agencies.yaml``). The city rollup (agency ``all``, :func:`compute_city_metrics`,
:func:`compute_city_history`) comes with its agencies' figures from the same one
query per core table: grouped by agency, then their sums (a UNION ALL, which
SQLite runs as well as PostgreSQL), so its rates are summed numerators over
summed denominators, never a mean of the agencies' rates.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    CompoundSelect,
    Date,
    FromClause,
    Select,
    String,
    and_,
    case,
    cast,
    column,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    text,
    true,
    type_coerce,
    union_all,
    values,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from rulewatch.common.metric_ids import METRICS, RATE_METRICS
from rulewatch.common.periods import Period, year_earlier_as_of
from rulewatch.config.agencies import ALL_AGENCIES
from rulewatch.config.settings import TargetOptions
from rulewatch.warehouse.schema import (
    DEFAULT_AGENCY_ID,
    calendar_day,
    document,
    inspection,
    officer,
    permit_application,
)

PUBLICATION_LIMIT_WORKING_DAYS = 20
LEGALITY_REVIEWED_TYPES = ("normative_document", "government_contract", "major_decision")
_YOY_OF = {
    "permits.received_yoy": "permits.received",
    "permits.approved_yoy": "permits.approved",
    "permits.denied_yoy": "permits.denied",
}
_PREVIOUS = "previous:"  # prefix of X(P') counts inside the permits query

# A period cut at the as-of date (None when empty); its ends are dates, or columns
# of a days table when the history of many as-of dates is computed in one query.
Window = tuple[date | ColumnElement, date | ColumnElement] | None


@dataclass(frozen=True)
class MetricValue:
    """One metric of one period at one as-of date, as ``rulewatch kpis --json`` shows it."""

    metric: str
    period: str
    as_of: date
    value: int | float | None
    numerator: int | None
    denominator: int | None
    target: float | None
    status: str  # met, slipped, no_data, info
    provisional: bool = False  # counts working days of a year not yet published
    #: The agency the figure is of; ``all`` for the city rollup (summed numerators and
    #: denominators of the agencies it covers).
    agency_id: str = DEFAULT_AGENCY_ID

    def to_json(self, *, with_agency: bool = False) -> dict[str, Any]:
        """The object of the ``kpis --json`` array (as_of as ``YYYY-MM-DD``);
        ``"provisional": true`` only on a provisional figure, as the contract has it.
        ``with_agency`` (set when agencies.yaml exists) names the agency first."""
        data: dict[str, Any] = {"agency": self.agency_id} if with_agency else {}
        data |= {
            "metric": self.metric,
            "period": self.period,
            "as_of": self.as_of.isoformat(),
            "value": self.value,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "target": self.target,
            "status": self.status,
        }
        if self.provisional:
            data["provisional"] = True
        return data


# --- SQL building blocks --------------------------------------------------------------------


class _iso_date(FunctionElement):
    """A date as ``YYYY-MM-DD`` text, whatever the backend (for reasons)."""

    type = String()
    name = "iso_date"
    inherit_cache = True


@compiles(_iso_date)
def _iso_date_default(element: _iso_date, compiler: Any, **kw: Any) -> str:
    return compiler.process(cast(list(element.clauses)[0], String), **kw)


@compiles(_iso_date, "sqlite")
def _iso_date_sqlite(element: _iso_date, compiler: Any, **kw: Any) -> str:
    return compiler.process(list(element.clauses)[0], **kw)  # stored as ISO text already


@compiles(_iso_date, "postgresql")
def _iso_date_postgresql(element: _iso_date, compiler: Any, **kw: Any) -> str:
    return f"to_char({compiler.process(list(element.clauses)[0], **kw)}, 'YYYY-MM-DD')"


def _text(*parts: str | ColumnElement) -> ColumnElement:
    """SQL string concatenation of literal text and expressions (dates as ISO text)."""
    exprs: list[ColumnElement] = []
    for part in parts:
        if isinstance(part, str):
            exprs.append(literal(part, String))
        elif isinstance(part.type, String):
            exprs.append(part)
        elif part.type.python_type is date:
            exprs.append(_iso_date(part))
        else:
            exprs.append(cast(part, String))
    return functools.reduce(operator.add, exprs)


AsOf = date | ColumnElement  # a date, or a column of as-of dates (the history's days)


def _by(text: str, as_of: AsOf) -> str | ColumnElement:
    """``text`` followed by the as-of date, as a reason says it."""
    return f"{text}{as_of}" if isinstance(as_of, date) else _text(text, as_of)


def _in(column: ColumnElement, window: Window) -> ColumnElement:
    """``column`` falls in the cut period (false for an empty cut)."""
    if window is None:
        return false()
    return column.between(window[0], window[1])


def _count(condition: ColumnElement) -> ColumnElement:
    """Rows meeting ``condition`` (null counts as not met), 0 over no rows."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _working_days(a: ColumnElement, b: ColumnElement, cal_a: Any, cal_b: Any) -> ColumnElement:
    """working_days(a, b): 0 when b <= a; null when a date is missing or off the calendar."""
    return case((b <= a, 0), else_=cal_b.c.workday_seq - cal_a.c.workday_seq)


def _provisional_days(cal_a: Any, cal_b: Any) -> ColumnElement:
    """working_days(a, b) counts a day of an unpublished year (Monday to Friday stood in)."""
    return cal_b.c.provisional_seq > cal_a.c.provisional_seq


PROVISIONAL_NOTE = " (provisional: a year with no published working-day arrangement)"


def _noted(reason: ColumnElement, provisional: ColumnElement) -> ColumnElement:
    """The reason, saying so when its working-day count is provisional."""
    return case((provisional, _text(reason, PROVISIONAL_NOTE)), else_=reason)


@dataclass(frozen=True)
class _Rate:
    """A rate: its denominator records, its numerator condition, why a record fails."""

    population: ColumnElement
    passes: ColumnElement
    reason: ColumnElement  # for failing records; evaluated only when ``passes`` is not true
    provisional: ColumnElement | None = None  # the record counts provisional working days


@dataclass(frozen=True)
class _Table:
    """The metrics read from one core table: counts and rates over the same rows."""

    source: FromClause  # the table with its calendar joins
    key: ColumnElement  # natural key
    agency: ColumnElement  # the agency key: every query reads one agency, or a set of them
    valid: ColumnElement  # rows that count at all
    counts: dict[str, ColumnElement] = field(default_factory=dict)
    rates: dict[str, _Rate] = field(default_factory=dict)
    # Date windows, one of which every count and population implies: lets the
    # aggregate read only the period's rows through the date indexes.
    windows: tuple[ColumnElement, ...] = ()

    def _figures(self) -> list[ColumnElement]:
        """Every count, then (denominator, numerator, provisional records) of every rate
        (the last 0 for a rate that counts no working days)."""
        columns = [_count(c) for c in self.counts.values()]
        for rate in self.rates.values():
            columns += [_count(rate.population), _count(and_(rate.population, rate.passes))]
            columns.append(
                literal(0)
                if rate.provisional is None
                else _count(and_(rate.population, rate.provisional))
            )
        return columns

    def aggregate(self, agency_id: str = DEFAULT_AGENCY_ID) -> Select:
        """One row of the agency's figures (:meth:`_figures`)."""
        query = (
            select(*self._figures())
            .select_from(self.source)
            .where(self.valid, self.agency == agency_id)
        )
        return query.where(or_(*self.windows)) if self.windows else query

    @property
    def width(self) -> int:
        """Columns of :meth:`aggregate`."""
        return len(self.counts) + 3 * len(self.rates)

    def aggregate_by(
        self, days: FromClause, as_of: ColumnElement, agency_id: str = DEFAULT_AGENCY_ID
    ) -> Select:
        """:meth:`aggregate` per day of ``days`` (whose columns the declarations use):
        one row per day that has rows, the day first; a day without rows is all zeros."""
        on = or_(*self.windows) if self.windows else true()
        return (
            select(as_of, *self._figures())
            .select_from(self.source.join(days, on))
            .where(self.valid, self.agency == agency_id)
            .group_by(as_of)
        )

    def aggregate_agencies(
        self,
        agency_ids: Sequence[str],
        days: FromClause | None = None,
        as_of: ColumnElement | None = None,
    ) -> CompoundSelect:
        """The figures of each of ``agency_ids`` and of their rollup in one query: rows
        ``(agency_id, [as_of,] figures...)``, per agency (and day of ``days``) grouped,
        then ``all`` per day, each figure the sum of the agencies' (UNION ALL rather than
        ROLLUP, which SQLite lacks). An agency (or day) without rows has no row: zeros;
        the rollup of one as-of date always has its row."""
        keys: list[ColumnElement] = [self.agency]
        source: FromClause = self.source
        on = or_(*self.windows) if self.windows else true()
        if days is not None and as_of is not None:
            keys.append(as_of)
            source = self.source.join(days, on)
        figures = [c.label(f"f{i}") for i, c in enumerate(self._figures())]
        per_agency = (
            select(*[k.label(k.name) for k in keys], *figures)
            .select_from(source)
            .where(self.valid, self.agency.in_(list(agency_ids)))
            .group_by(*keys)
        )
        if days is None and self.windows:
            per_agency = per_agency.where(on)
        per = per_agency.cte(f"per_agency_{self.key.table.name}")
        day = [per.c.as_of] if len(keys) > 1 else []
        rollup = (
            select(
                literal(ALL_AGENCIES, String).label("agency_id"),
                *day,
                *[func.coalesce(func.sum(per.c[f.name]), 0) for f in figures],
            )
            .select_from(per)
            .group_by(*day)
        )
        return union_all(select(per), rollup)

    def population(self, metric: str, agency_id: str = DEFAULT_AGENCY_ID) -> Select:
        """One row per record of the rate's denominator: (natural_key, passes, reason)."""
        rate = self.rates[metric]
        return (
            select(*self._record(rate))
            .select_from(self.source)
            .where(self.valid, self.agency == agency_id, rate.population)
            .order_by(self.key)
        )

    def population_by(
        self,
        metric: str,
        days: FromClause,
        as_of: ColumnElement,
        agency_id: str = DEFAULT_AGENCY_ID,
    ) -> Select:
        """:meth:`population` at each day of ``days``: (as_of, natural_key, passes, reason)."""
        rate = self.rates[metric]
        on = or_(*self.windows) if self.windows else true()
        return (
            select(as_of.label("as_of"), *self._record(rate))
            .select_from(self.source.join(days, on))
            .where(self.valid, self.agency == agency_id, rate.population)
            .order_by(as_of, self.key)
        )

    def _record(self, rate: _Rate) -> list[ColumnElement]:
        passes = case((rate.passes, true()), else_=false())
        reason = case((rate.passes, null()), else_=rate.reason)
        return [
            self.key.label("natural_key"),
            type_coerce(passes, Boolean).label("passes"),
            type_coerce(reason, String).label("reason"),
        ]


# --- the metrics, declared per table --------------------------------------------------------


def _permits(window: Window, previous: Window) -> _Table:
    t = permit_application
    cal_received = calendar_day.alias("cal_received")
    cal_decided = calendar_day.alias("cal_decided")
    source = t.outerjoin(cal_received, cal_received.c.day == t.c.received_on).outerjoin(
        cal_decided, cal_decided.c.day == t.c.decided_on
    )

    def received(w: Window) -> ColumnElement:
        return _in(t.c.received_on, w)

    def decided(status: str, w: Window) -> ColumnElement:
        return and_(t.c.status == status, _in(t.c.decided_on, w))

    counts: dict[str, ColumnElement] = {}
    for prefix, w in (("", window), (_PREVIOUS, previous)):
        counts[prefix + "permits.received"] = received(w)
        counts[prefix + "permits.approved"] = decided("approved", w)
        counts[prefix + "permits.denied"] = decided("denied", w)

    days = _working_days(t.c.received_on, t.c.decided_on, cal_received, cal_decided)
    provisional = and_(
        t.c.decided_on > t.c.received_on, _provisional_days(cal_received, cal_decided)
    )
    on_time = _Rate(
        population=and_(t.c.status.in_(("approved", "denied")), _in(t.c.decided_on, window)),
        passes=and_(t.c.promised_days.is_not(None), days.is_not(None), days <= t.c.promised_days),
        reason=case(
            (t.c.received_on.is_(None), "no received date"),
            (t.c.promised_days.is_(None), "no promised days"),
            (days.is_(None), "working days unknown (date outside the calendar)"),
            else_=_noted(
                _text("decided in ", days, " working days, promised ", t.c.promised_days),
                provisional,
            ),
        ),
        provisional=provisional,
    )
    return _Table(
        source=source,
        key=t.c.application_id,
        agency=t.c.agency_id,
        valid=t.c.is_set_aside.is_(False),
        counts=counts,
        rates={"permits.on_time_rate": on_time},
        windows=tuple(
            _in(c, w) for w in (window, previous) for c in (t.c.received_on, t.c.decided_on)
        ),
    )


def _inspections(window: Window, as_of: AsOf) -> _Table:
    t = inspection
    cal_inspected = calendar_day.alias("cal_inspected")
    cal_published = calendar_day.alias("cal_published")
    source = t.outerjoin(cal_inspected, cal_inspected.c.day == t.c.inspected_on).outerjoin(
        cal_published, cal_published.c.day == t.c.published_on
    )
    in_p = _in(t.c.inspected_on, window)
    double_random = and_(in_p, t.c.task_type == "double_random")
    published = and_(
        t.c.is_published.is_(True), or_(t.c.published_on.is_(None), t.c.published_on <= as_of)
    )
    days = _working_days(t.c.inspected_on, t.c.published_on, cal_inspected, cal_published)
    provisional = and_(
        t.c.published_on > t.c.inspected_on, _provisional_days(cal_inspected, cal_published)
    )
    limit = PUBLICATION_LIMIT_WORKING_DAYS
    few_officers = or_(t.c.officer_count.is_(None), t.c.officer_count < 2)
    return _Table(
        source=source,
        key=t.c.inspection_no,
        agency=t.c.agency_id,
        valid=t.c.is_set_aside.is_(False),
        windows=(in_p,),
        counts={"enforcement.inspections": in_p, "enforcement.double_random": double_random},
        rates={
            "enforcement.credit_rule_rate": _Rate(
                population=double_random,
                passes=t.c.is_credit_rule_applied.is_(True),
                reason=literal("credit rule not applied", String),
            ),
            "enforcement.publication_rate": _Rate(
                population=and_(
                    double_random, or_(t.c.outcome.is_(None), t.c.outcome != "pending")
                ),
                passes=published,
                reason=case(
                    (t.c.is_published.is_(True), _by("result not published by ", as_of)),
                    else_="result not published",
                ),
            ),
            "enforcement.publication_timely_rate": _Rate(
                population=and_(double_random, published),
                passes=and_(t.c.published_on.is_not(None), days.is_not(None), days <= limit),
                reason=case(
                    (t.c.published_on.is_(None), "published without a publication date"),
                    (days.is_(None), "working days unknown (date outside the calendar)"),
                    else_=_noted(
                        _text("published in ", days, f" working days, limit {limit}"),
                        provisional,
                    ),
                ),
                provisional=provisional,
            ),
            "enforcement.certified_officer_rate": _Rate(
                population=in_p,
                passes=and_(t.c.officer_count >= 2, t.c.is_all_officers_certified.is_(True)),
                reason=case(
                    (t.c.officer_count.is_(None), "officer count unknown"),
                    (
                        and_(few_officers, t.c.is_all_officers_certified.is_not(True)),
                        _text(t.c.officer_count, " officer(s), not all certified"),
                    ),
                    (few_officers, _text(t.c.officer_count, " officer(s), at least 2 required")),
                    else_="not every officer certified",
                ),
            ),
        },
    )


def _roster(as_of: AsOf) -> _Table:
    # The roster has no dates: these counts ignore the period (and its cut), only
    # the certificate's expiry is read at the as-of date.
    t = officer
    active = and_(t.c.is_active.is_(True), t.c.is_set_aside.is_(False))
    certified = and_(
        t.c.role == "officer",
        t.c.is_certified.is_(True),
        or_(t.c.certificate_expires_on.is_(None), t.c.certificate_expires_on >= as_of),
    )
    return _Table(
        source=t,
        key=t.c.officer_id,
        agency=t.c.agency_id,
        valid=active,
        counts={
            "enforcement.certified_officers": certified,
            "enforcement.auxiliary_staff": t.c.role == "auxiliary",
        },
    )


def _filed_at(as_of: AsOf) -> ColumnElement:
    """Filed at the as-of date: a filing dated after it has not happened yet."""
    t = document
    return and_(t.c.is_filed.is_(True), or_(t.c.filed_on.is_(None), t.c.filed_on <= as_of))


def _valid_document() -> ColumnElement:
    return and_(document.c.is_set_aside.is_(False), document.c.is_deleted.is_(False))


def _documents(window: Window, as_of: AsOf) -> _Table:
    t = document
    issued = _in(t.c.issued_on, window)
    normative = and_(t.c.doc_type == "normative_document", issued)
    filed = _filed_at(as_of)
    reviewed_on = t.c.legality_reviewed_on
    return _Table(
        source=t,
        key=t.c.doc_id,
        agency=t.c.agency_id,
        valid=_valid_document(),
        windows=(issued, _in(reviewed_on, window), _in(t.c.status_changed_on, window)),
        counts={
            "docreview.normative_issued": normative,
            "docreview.contracts_reviewed": and_(
                t.c.doc_type == "government_contract",
                t.c.is_legality_reviewed.is_(True),
                _in(reviewed_on, window),
            ),
            "docreview.repealed": and_(
                t.c.doc_type == "normative_document",
                t.c.status == "repealed",
                _in(t.c.status_changed_on, window),
            ),
        },
        rates={
            "docreview.filing_rate": _Rate(
                population=and_(normative, or_(filed, t.c.filing_deadline_on < as_of)),
                passes=filed,
                reason=_text("not filed; deadline ", t.c.filing_deadline_on, " passed"),
            ),
            "docreview.filing_timely_rate": _Rate(
                population=and_(normative, filed),
                passes=and_(
                    t.c.filed_on.is_not(None),
                    t.c.filing_deadline_on.is_not(None),
                    t.c.filed_on <= t.c.filing_deadline_on,
                ),
                reason=case(
                    (t.c.filed_on.is_(None), "filed without a filing date"),
                    (t.c.filing_deadline_on.is_(None), "no filing deadline"),
                    else_=_text(
                        "filed ", t.c.filed_on, ", after the deadline ", t.c.filing_deadline_on
                    ),
                ),
            ),
            "docreview.filing_compliance_rate": _Rate(
                population=and_(normative, filed, t.c.is_filing_accepted.is_not(None)),
                passes=t.c.is_filing_accepted.is_(True),
                reason=literal("filing not accepted", String),
            ),
            "docreview.legality_review_rate": _Rate(
                population=and_(t.c.doc_type.in_(LEGALITY_REVIEWED_TYPES), issued),
                passes=and_(
                    t.c.is_legality_reviewed.is_(True),
                    reviewed_on.is_not(None),
                    reviewed_on <= t.c.issued_on,
                    reviewed_on <= as_of,
                ),
                reason=case(
                    (t.c.is_legality_reviewed.is_not(True), "no legality review"),
                    (reviewed_on.is_(None), "legality review without a date"),
                    (reviewed_on > as_of, _by("no legality review by ", as_of)),
                    else_=_text("legality reviewed ", reviewed_on, ", after issue ", t.c.issued_on),
                ),
            ),
        },
    )


def _tables(period: Period, as_of: date) -> list[_Table]:
    window = period.cut(as_of)
    previous = period.year_earlier().cut(year_earlier_as_of(as_of))
    return _declare(window, previous, as_of)


def _tables_at(period: Period, days: FromClause) -> list[_Table]:
    """The tables with the as-of date a column: the days of :func:`history_days`."""
    return _declare(*_history_windows(period, days), days.c.as_of)


def _history_windows(period: Period, days: FromClause) -> tuple[Window, Window]:
    """The cut period and its year-earlier cut, as columns of :func:`history_days`."""
    return (period.start, days.c.cut_on), (period.year_earlier().start, days.c.prev_cut_on)


def _declare(window: Window, previous: Window, as_of: AsOf) -> list[_Table]:
    return [
        _permits(window, previous),
        _inspections(window, as_of),
        _roster(as_of),
        _documents(window, as_of),
    ]


# --- public API -----------------------------------------------------------------------------


def compute_metrics(
    conn: Connection,
    period: Period,
    as_of: date,
    targets: Mapping[str, TargetOptions],
    *,
    agency_id: str = DEFAULT_AGENCY_ID,
    agencies: Sequence[str] = (),
) -> list[MetricValue]:
    """All 22 metrics of ``period`` cut at ``as_of``, in ``METRICS`` order, of one agency's
    core rows; for ``agency_id="all"`` the city rollup of ``agencies`` (summed numerators
    and denominators, :func:`compute_city_metrics`), with ``targets`` its thresholds.

    One aggregate query per core table; no record leaves the database.
    """
    if agency_id == ALL_AGENCIES:
        return compute_city_metrics(conn, period, as_of, dict.fromkeys(agencies, targets), targets)[
            ALL_AGENCIES
        ]
    tables = _tables(period, as_of)
    rows = [list(conn.execute(table.aggregate(agency_id)).one()) for table in tables]
    return _metric_values(period, as_of, tables, rows, targets, agency_id)


def compute_city_metrics(
    conn: Connection,
    period: Period,
    as_of: date,
    targets: Mapping[str, Mapping[str, TargetOptions]],
    rollup_targets: Mapping[str, TargetOptions],
) -> dict[str, list[MetricValue]]:
    """The metrics of each agency of ``targets`` (agency id -> its thresholds) and of their
    city rollup (key ``all``, statuses against ``rollup_targets``: targets.yaml's), as
    :func:`compute_metrics` gives them one agency at a time, from one query per core table.

    The rollup's numerator and denominator of every rate, count and year on year are the
    sums of the agencies' (summed in SQL), its rate their ratio: never a mean of rates.
    """
    agency_ids = list(targets)
    tables = _tables(period, as_of)
    found: dict[str, list[list[Any]]] = {a: [] for a in [*agency_ids, ALL_AGENCIES]}
    for table in tables:
        rows = {row[0]: list(row[1:]) for row in conn.execute(table.aggregate_agencies(agency_ids))}
        for agency, figures in found.items():
            figures.append(rows.get(agency, [0] * table.width))
    every = {**targets, ALL_AGENCIES: rollup_targets}
    return {
        agency: _metric_values(period, as_of, tables, rows, every[agency], agency)
        for agency, rows in found.items()
    }


def compute_metrics_history(
    conn: Connection,
    period: Period,
    days: Sequence[date],
    targets: Mapping[str, TargetOptions],
    *,
    agency_id: str = DEFAULT_AGENCY_ID,
    agencies: Sequence[str] = (),
) -> dict[date, list[MetricValue]]:
    """The metrics of ``period`` cut at each of ``days``, as :func:`compute_metrics`
    gives them one day at a time (of one agency, or the rollup ``all`` of ``agencies``),
    from one query per core table.

    The days join the core tables as a table of (as_of, year-earlier as_of) rows and
    every count is grouped by day, so a year of history costs four set operations
    rather than four queries per day. No day may be before ``period`` starts.
    """
    if agency_id == ALL_AGENCIES:
        return compute_city_history(conn, period, days, dict.fromkeys(agencies, targets), targets)[
            ALL_AGENCIES
        ]
    if not days:
        return {}
    day_rows = history_days(conn, period, days)
    as_of_col = day_rows.c.as_of
    tables = _tables_at(period, day_rows)
    by_day: dict[date, list[list[Any]]] = {d: [] for d in days}
    for table in tables:
        found: dict[date, list[Any]] = {}
        for row in conn.execute(table.aggregate_by(day_rows, as_of_col, agency_id)):
            found[as_date(row[0])] = list(row[1:])
        empty = [0] * table.width
        for day in days:
            by_day[day].append(found.get(day, empty))
    return {
        day: _metric_values(period, day, tables, rows, targets, agency_id)
        for day, rows in by_day.items()
    }


def compute_city_history(
    conn: Connection,
    period: Period,
    days: Sequence[date],
    targets: Mapping[str, Mapping[str, TargetOptions]],
    rollup_targets: Mapping[str, TargetOptions],
) -> dict[str, dict[date, list[MetricValue]]]:
    """:func:`compute_city_metrics` at each of ``days``: agency id (and ``all``) -> as-of
    date -> metrics, from one query per core table for every agency and day."""
    agency_ids = list(targets)
    every = {**targets, ALL_AGENCIES: rollup_targets}
    if not days:
        return {agency: {} for agency in every}
    day_rows = history_days(conn, period, days)
    tables = _tables_at(period, day_rows)
    found: dict[tuple[str, date], list[list[Any]]] = {
        (agency, day): [] for agency in every for day in days
    }
    for table in tables:
        query = table.aggregate_agencies(agency_ids, day_rows, day_rows.c.as_of)
        rows = {(row[0], as_date(row[1])): list(row[2:]) for row in conn.execute(query)}
        for key, figures in found.items():
            figures.append(rows.get(key, [0] * table.width))
    return {
        agency: {
            day: _metric_values(period, day, tables, found[(agency, day)], every[agency], agency)
            for day in days
        }
        for agency in every
    }


def history_days(conn: Connection, period: Period, days: Sequence[date]) -> FromClause:
    """``days`` as a table to join a declaration on, so the history of many as-of dates
    is one query: per day its as-of date, the year-earlier as-of date and where each
    cuts ``period`` and its year-earlier period (``cut_on``, ``prev_cut_on``). No day
    may be before ``period`` starts (its cut would be empty).

    The rows travel as one parameter per column (PostgreSQL arrays, an SQLite JSON
    array): a VALUES list of a year of days costs more to compile than to run, once
    per query of a backfill."""
    early = [d for d in days if d < period.start]
    if early:
        raise ValueError(f"{early[0]} is before {period.label}")
    previous = period.year_earlier()
    rows = [
        (d, year_earlier_as_of(d), min(d, period.end), min(year_earlier_as_of(d), previous.end))
        for d in days
    ]
    names = ("as_of", "prev_as_of", "cut_on", "prev_cut_on")
    columns = [column(name, Date) for name in names]
    if conn.dialect.name == "postgresql":
        arrays = ", ".join(f"CAST(:{n} AS date[])" for n in names)
        query = text(f"SELECT * FROM unnest({arrays}) AS d({', '.join(names)})").bindparams(
            **{n: [r[i] for r in rows] for i, n in enumerate(names)}
        )
    elif conn.dialect.name == "sqlite":
        picks = ", ".join(f"json_extract(value, '$[{i}]') AS {n}" for i, n in enumerate(names))
        query = text(f"SELECT {picks} FROM json_each(:days)").bindparams(
            days=json.dumps([[d.isoformat() for d in r] for r in rows])
        )
    else:
        return values(*columns, name="history_days").data(rows).cte()
    return query.columns(*columns).cte("history_days")


def as_date(value: Any) -> date:
    """A date read back from a days table (SQLite returns the ISO text)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _metric_values(
    period: Period,
    as_of: date,
    tables: Sequence[_Table],
    rows: Sequence[list[Any]],
    targets: Mapping[str, TargetOptions],
    agency_id: str,
) -> list[MetricValue]:
    """The 22 metrics of one agency (or ``all``) from each table's aggregate row (as
    :meth:`_Table.aggregate`)."""
    counts: dict[str, int] = {}
    fractions: dict[str, tuple[int, int]] = {}
    provisional: set[str] = set()
    for table, row in zip(tables, rows, strict=True):
        row = list(row)
        for name in table.counts:
            counts[name] = int(row.pop(0))
        for name in table.rates:
            denominator, numerator = int(row.pop(0)), int(row.pop(0))
            fractions[name] = (numerator, denominator)
            if int(row.pop(0)):
                provisional.add(name)

    def metric(name: str, value: Any, num: Any, den: Any, target: Any, status: str) -> MetricValue:
        return MetricValue(
            name, period.label, as_of, value, num, den, target, status, agency_id=agency_id
        )

    values_: list[MetricValue] = []
    for name, (kind, _, _) in METRICS.items():
        if kind == "count":
            values_.append(metric(name, counts[name], None, None, None, "info"))
        elif kind == "yoy":
            now, before = counts[_YOY_OF[name]], counts[_PREVIOUS + _YOY_OF[name]]
            ratio = (now - before) / before if before else None
            values_.append(metric(name, ratio, now - before, before, None, "info"))
        else:
            numerator, denominator = fractions[name]
            options = targets.get(name)
            target = None if options is None else float(options.target)
            value = numerator / denominator if denominator else None
            values_.append(
                replace(
                    metric(
                        name, value, numerator, denominator, target, target_status(value, target)
                    ),
                    provisional=name in provisional,
                )
            )
    return values_


def provisional_metrics(
    conn: Connection, period: Period, as_of: date, *, agency_id: str = DEFAULT_AGENCY_ID
) -> frozenset[str]:
    """The rates of ``period`` cut at ``as_of`` whose figure is provisional: some record
    of the agency's denominator counts working days of a year with no published
    arrangement."""
    found: set[str] = set()
    for table in _tables(period, as_of):
        rates = {n: r for n, r in table.rates.items() if r.provisional is not None}
        if not rates:
            continue
        query = select(
            *[_count(and_(r.population, r.provisional)) for r in rates.values()]
        ).select_from(table.source)
        query = query.where(table.valid, table.agency == agency_id)
        if table.windows:
            query = query.where(or_(*table.windows))
        row = conn.execute(query).one()
        found |= {name for name, n in zip(rates, row, strict=True) if n}
    return frozenset(found)


def target_status(value: float | None, target: float | None) -> str:
    """The one status rule: met when the value reaches the target, else slipped;
    info without a target (whatever the value); no_data for a target with no value."""
    if target is None:
        return "info"
    if value is None:
        return "no_data"
    return "met" if value >= target else "slipped"


def rate_population(
    metric: str, period: Period, as_of: date, *, agency_id: str = DEFAULT_AGENCY_ID
) -> Select:
    """The records of one agency's rate's denominator: rows ``(natural_key, passes, reason)``.

    ``passes`` is the numerator's condition; ``reason`` says in a few English
    words why a failing record fails (null when it passes). Ordered by key.
    ``count(*)`` and ``count(passes)`` equal the rate's denominator and numerator.
    """
    previous = period.year_earlier().cut(year_earlier_as_of(as_of))
    return _rate_table(metric, period.cut(as_of), previous, as_of).population(metric, agency_id)


def rate_population_history(
    metric: str, period: Period, days: FromClause, *, agency_id: str = DEFAULT_AGENCY_ID
) -> Select:
    """:func:`rate_population` at every as-of date of ``days`` (:func:`history_days`) in
    one query: rows ``(as_of, natural_key, passes, reason)``, by day and key."""
    window, previous = _history_windows(period, days)
    table = _rate_table(metric, window, previous, days.c.as_of)
    return table.population_by(metric, days, days.c.as_of, agency_id)


def _rate_table(metric: str, window: Window, previous: Window, as_of: AsOf) -> _Table:
    """The one table declaring ``metric`` (its domain's), built alone: declaring all four
    for every population a refresh or check reads cost more than running the queries."""
    if metric not in RATE_METRICS:
        raise ValueError(f"{metric!r} is not a rate; rates: {list(RATE_METRICS)}")
    domain = metric.split(".", 1)[0]
    if domain == "permits":
        table = _permits(window, previous)
    elif domain == "enforcement":
        table = _inspections(window, as_of)
    else:
        table = _documents(window, as_of)
    if metric not in table.rates:  # pragma: no cover - a rate declared on another table
        raise AssertionError(f"rate {metric} is not declared on its domain's table")
    return table


def early_warnings(
    conn: Connection, as_of: date, days: int, *, agency_id: str = DEFAULT_AGENCY_ID
) -> list[dict[str, Any]]:
    """One agency's normative documents that will slip ``docreview.filing_rate`` unless
    filed soon.

    Issued on or before ``as_of``, not filed at ``as_of``, and the filing deadline
    within ``as_of`` .. ``as_of + days`` (a deadline today is not yet missed).
    Each: doc_id, title, issued_on, deadline (dates) and days_left.
    """
    t = document
    query = (
        select(t.c.doc_id, t.c.title, t.c.issued_on, t.c.filing_deadline_on)
        .where(
            _valid_document(),
            t.c.agency_id == agency_id,
            t.c.doc_type == "normative_document",
            t.c.issued_on <= as_of,
            not_(_filed_at(as_of)),
            t.c.filing_deadline_on.between(as_of, as_of + timedelta(days=days)),
        )
        .order_by(t.c.filing_deadline_on, t.c.doc_id)
    )
    return [
        {
            "doc_id": row.doc_id,
            "title": row.title,
            "issued_on": row.issued_on,
            "deadline": row.filing_deadline_on,
            "days_left": (row.filing_deadline_on - as_of).days,
        }
        for row in conn.execute(query)
    ]
