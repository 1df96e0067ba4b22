"""Published figures (``config/published.yaml``) reconciled with the warehouse.

A bureau's annual report states figures it computed by hand. Each is set beside
the value the warehouse computes for the same period at the as-of date, and a
mismatch is flagged with the arithmetic that shows which one is right: for the
seed's 2023 report, 606 applications against 547 a year earlier is +10.79%, and
no whole number of 2022 applications gives the published +10.88%.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from rich.console import Console
from sqlalchemy import Engine

from rulewatch.common.metric_ids import METRICS
from rulewatch.common.numbers import format_percent, round_percent
from rulewatch.common.periods import Period, PeriodError
from rulewatch.config.agencies import ALL_AGENCIES
from rulewatch.config.settings import ConfigError, Settings, _read_yaml
from rulewatch.metrics.compute import MetricValue, compute_metrics
from rulewatch.warehouse.schema import DEFAULT_AGENCY_ID

PUBLISHED_FILE = "published.yaml"
_PERCENT = re.compile(r"^(?P<sign>[+-]?)(?P<number>\d+(?:\.\d+)?)%$")


class PublishedFigure(BaseModel):
    """One figure as published: a count, or a rate or growth as a percentage string."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    value: int | str
    quote: str | None = None  # the sentence it was published in

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; known: {list(METRICS)}")
        return value

    @model_validator(mode="after")
    def _value_fits_metric(self) -> PublishedFigure:
        kind = METRICS[self.metric][0]
        if kind == "count":
            if not isinstance(self.value, int) or self.value < 0:
                raise ValueError(
                    f"{self.metric} is a count: write a whole number, not {self.value!r}"
                )
        elif not isinstance(self.value, str) or not _PERCENT.match(self.value.strip()):
            raise ValueError(
                f'{self.metric} is a {kind}: write a percentage such as "100%" or "+10.88%", '
                f"not {self.value!r}"
            )
        return self

    @property
    def percent(self) -> Decimal:
        """A rate or growth as published, in percent (``+10.88%`` -> 10.88)."""
        match = _PERCENT.match(str(self.value).strip())
        assert match is not None  # checked at load
        number = Decimal(match["number"])
        return -number if match["sign"] == "-" else number

    @property
    def decimals(self) -> int:
        """How many decimals the percentage was published with."""
        number = _PERCENT.match(str(self.value).strip())["number"]  # type: ignore[index]
        return len(number.split(".")[1]) if "." in number else 0


class PublishedReport(BaseModel):
    """One published document and the figures it states for one period.

    ``agency`` is whose figures they are: an agency id of ``agencies.yaml``, or ``all``
    for figures the city published about every agency together (the rollup); left out,
    the ``default`` agency's, the one agency of a deployment without ``agencies.yaml``
    (with the file, such a report belongs to no agency unless one has the id ``default``).
    """

    model_config = ConfigDict(extra="forbid")

    period: str
    agency: str | None = None  # None: the default agency's
    title: str
    published_on: date | None = None
    figures: list[PublishedFigure]

    @property
    def agency_id(self) -> str:
        return self.agency or DEFAULT_AGENCY_ID

    @field_validator("period", mode="before")
    @classmethod
    def _period(cls, value: object) -> str:
        try:
            return Period.parse(str(value)).label
        except PeriodError as exc:
            raise ValueError(str(exc)) from None


class PublishedFile(BaseModel):
    """``published.yaml``: the published reports, each with its figures."""

    model_config = ConfigDict(extra="forbid")

    reports: list[PublishedReport] = []


def load_published(settings: Settings) -> PublishedFile:
    """The published figures of the config folder; none when the file is absent."""
    path: Path = settings.config_dir / PUBLISHED_FILE
    if not path.exists():
        return PublishedFile()
    return _read_yaml(path, PublishedFile)  # type: ignore[return-value]


def published_by(published: PublishedFile, agency_id: str) -> PublishedFile:
    """The reports one agency (or ``all``, the city) published."""
    return PublishedFile(reports=[r for r in published.reports if r.agency_id == agency_id])


def check_published_agencies(
    published: PublishedFile, agency_ids: Sequence[str], settings: Settings
) -> None:
    """A ConfigError naming ``published.yaml: reports[N].agency`` when a report names an
    agency ``agencies.yaml`` does not list (a typo would silently reconcile nothing)."""
    known = [*agency_ids, ALL_AGENCIES]
    for number, report in enumerate(published.reports):
        if report.agency is not None and report.agency not in known:
            raise ConfigError(
                f"{settings.config_dir / PUBLISHED_FILE}: reports[{number}].agency: "
                f"{report.agency!r} is not an agency of agencies.yaml (known: {', '.join(known)})"
            )


@dataclass(frozen=True)
class Reconciled:
    """A published figure beside the warehouse value, and whether they agree.

    ``status`` is ``match``, ``mismatch`` or ``no_data`` (the warehouse has no
    value: e.g. growth over an empty year); ``arithmetic`` shows the working.
    """

    metric: str
    period: str
    as_of: date
    title: str
    published: str
    warehouse: str
    status: str
    arithmetic: str
    quote: str | None = None

    @property
    def is_mismatch(self) -> bool:
        return self.status == "mismatch"


def _growth_check(figure: PublishedFigure, m: MetricValue, previous_period: str) -> str:
    """Why a published growth rate cannot be right: the base year it would need."""
    now = (m.numerator or 0) + (m.denominator or 0)
    growth = figure.percent / 100
    if growth <= -1:
        return ""
    implied = Decimal(now) / (1 + growth)
    low, high = math.floor(implied), math.ceil(implied)
    candidates = [b for b in dict.fromkeys((low, high)) if b > 0]
    shown = ", ".join(
        f"{b} → {format_percent(Decimal(now - b) / b, figure.decimals, sign=True)}"
        for b in candidates
    )
    whole = "" if low != high else " (a whole number)"
    return (
        f"; {figure.value} would need {previous_period} = {now} / {1 + growth} = "
        f"{implied:.1f}{whole}" + (f" ({shown})" if shown and low != high else "")
    )


def reconcile_figure(figure: PublishedFigure, m: MetricValue, title: str) -> Reconciled:
    """One published figure beside its warehouse value, with the arithmetic."""
    kind = METRICS[figure.metric][0]
    period = Period.parse(m.period)
    previous = period.year_earlier().label

    def result(warehouse: str, status: str, arithmetic: str) -> Reconciled:
        return Reconciled(
            metric=figure.metric,
            period=m.period,
            as_of=m.as_of,
            title=title,
            published=str(figure.value),
            warehouse=warehouse,
            status=status,
            arithmetic=arithmetic,
            quote=figure.quote,
        )

    if kind == "count":
        value = int(m.value or 0)
        if value == figure.value:
            return result(str(value), "match", f"{value} = {figure.value}")
        return result(
            str(value),
            "mismatch",
            f"warehouse {value} − published {figure.value} = {value - int(figure.value):+d}",
        )
    if m.value is None:
        why = f"{previous} has no records" if kind == "yoy" else "the denominator is 0"
        return result("—", "no_data", f"no value: {why}")
    decimals = figure.decimals
    shown = format_percent(m.value, decimals, sign=kind == "yoy")
    exact = format_percent(m.value, max(decimals, 2) + 2, sign=kind == "yoy")
    if kind == "yoy":
        before = m.denominator or 0
        now = (m.numerator or 0) + before
        working = f"({now} − {before}) / {before} = {m.numerator} / {before} = {exact}"
    else:
        working = f"{m.numerator} / {m.denominator} = {exact}"
    matches = round_percent(m.value, decimals) == figure.percent
    if matches:
        rounded = "" if exact == shown else f" → {shown}"
        return result(shown, "match", f"{working}{rounded}")
    tail = _growth_check(figure, m, previous) if kind == "yoy" else ""
    return result(shown, "mismatch", f"{working} → {shown} ≠ published {figure.value}{tail}")


def reconcile(
    published: PublishedFile, metrics: Sequence[MetricValue], period: str | None = None
) -> list[Reconciled]:
    """Every published figure of the metrics' period beside its warehouse value."""
    by_key = {(m.metric, m.period): m for m in metrics}
    rows = []
    for report in published.reports:
        if period is not None and report.period != period:
            continue
        for figure in report.figures:
            m = by_key.get((figure.metric, report.period))
            if m is not None:
                rows.append(reconcile_figure(figure, m, report.title))
    return rows


def published_periods(published: PublishedFile) -> list[str]:
    """The periods some published report states figures for."""
    return list(dict.fromkeys(r.period for r in published.reports))


def reconcile_period(
    engine: Engine, settings: Settings, period: Period, as_of: date
) -> list[Reconciled]:
    """The published figures of ``period`` beside the warehouse values at ``as_of``."""
    published = published_by(load_published(settings), settings.agency_id)
    if period.label not in published_periods(published):
        return []
    with engine.connect() as conn:
        metrics = compute_metrics(
            conn, period, as_of, settings.targets, agency_id=settings.agency_id
        )
    return reconcile(published, metrics, period.label)


def print_reconciliation(console: Console, rows: Sequence[Reconciled]) -> None:
    """One line per published figure; mismatches in red with their arithmetic."""
    if not rows:
        return
    mismatches = sum(r.is_mismatch for r in rows)
    console.print(
        f"published figures ({rows[0].title}): {len(rows)} reconciled, {mismatches} mismatch(es)"
    )
    for r in rows:
        mark = "[bold red]mismatch[/]" if r.is_mismatch else f"[green]{r.status}[/]"
        console.print(
            f"  {mark} {r.metric} {r.period}: published {r.published}, warehouse {r.warehouse}"
            + (f" — {r.arithmetic}" if r.is_mismatch else ""),
            highlight=False,
        )
