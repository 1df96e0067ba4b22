"""The report's charts as PNG images (matplotlib, no display needed).

Labels are in the bureau's language (``alerts.language``) when a font with
Chinese glyphs is installed (e.g. Debian's ``fonts-wqy-microhei`` or
``fonts-noto-cjk``); without one the charts fall back to English labels rather
than draw empty boxes.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import pandas as pd

matplotlib.use("Agg")  # before anything touches pyplot; rulewatch never opens a window

from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rulewatch.checks.results import TargetCheck  # noqa: E402
from rulewatch.common.messages import t as msg  # noqa: E402
from rulewatch.common.metric_ids import METRICS, label  # noqa: E402
from rulewatch.common.numbers import format_percent  # noqa: E402

_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Droid Sans Fallback",
)
_COLOURS = {"met": "#2e7d32", "slipped": "#c62828", "no_data": "#9e9e9e", "info": "#1565c0"}


@dataclass(frozen=True)
class Chart:
    """One chart: a key (for tests and anchors), its title and the PNG bytes."""

    key: str
    title: str
    png: bytes


@functools.cache
def cjk_font() -> str | None:
    """The name of an installed font with Chinese glyphs, if any."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in _CJK_FONTS if name in installed), None)


def chart_language(language: str) -> str:
    """``zh`` only when a Chinese font is installed."""
    return "zh" if language == "zh" and cjk_font() else "en"


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


@dataclass(frozen=True)
class _Margins:
    """A panel grid's fixed margins and gaps, in inches."""

    bottom: float
    row_gap: float
    right: float = 0.04
    col_gap: float = 0.36
    left: float = 0.32
    top: float = 0.49  # the figure's title, then the panel's


#: Panels with dates under them, turned 30 degrees (the last may overhang the right edge).
_DATED = _Margins(bottom=0.49, row_gap=0.73, right=0.24, col_gap=0.57)
_MONTHS = _Margins(bottom=0.24, row_gap=0.47)
#: One row of counts: no panel titles, and room for counts of five digits.
_COUNTED = _Margins(bottom=0.24, row_gap=0.0, left=0.45, col_gap=0.45, top=0.33)


def _panels(
    rows: int, cols: int, height: float, margins: _Margins, title: str
) -> tuple[Figure, Any]:
    """A figure titled ``title`` of ``rows`` x ``cols`` panels (4 inches wide each), laid
    out by fixed margins.

    The grid charts' panels all carry the same kind of labels, so the margins
    constrained layout found for them are fixed here: it measured every label of
    every panel twice per chart, a third of the demo's drawing time.
    """
    width = 4.0 * cols
    fig = Figure(figsize=(width, height), dpi=100)
    fig.suptitle(title, x=0.01, y=1 - 0.04 / height, ha="left")  # as constrained layout put it
    panel_width = (width - margins.left - margins.right - (cols - 1) * margins.col_gap) / cols
    panel_height = (height - margins.top - margins.bottom - (rows - 1) * margins.row_gap) / rows
    axes = fig.subplots(
        rows,
        cols,
        squeeze=False,
        gridspec_kw={
            "left": margins.left / width,
            "right": 1 - margins.right / width,
            "bottom": margins.bottom / height,
            "top": 1 - margins.top / height,
            "wspace": margins.col_gap / panel_width,
            "hspace": margins.row_gap / panel_height,
        },
    )
    return fig, axes.flatten()


def _fonts(language: str) -> Any:
    """Fonts for the chart's language (fonts are looked up when the figure is drawn)."""
    fonts = [cjk_font(), "DejaVu Sans"] if language == "zh" else ["DejaVu Sans"]
    return matplotlib.rc_context(
        {"font.family": "sans-serif", "font.sans-serif": fonts, "axes.unicode_minus": False}
    )


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _rendered(builder: Callable[..., Chart]) -> Callable[..., Chart]:
    """Build and draw a chart inside the font settings of its ``language`` argument."""

    @functools.wraps(builder)
    def wrapper(*args: Any, **kwargs: Any) -> Chart:
        language = kwargs.get("language", args[-1] if args else "en")
        with _fonts(chart_language(language)):
            return builder(*args, **kwargs)

    return wrapper


@_rendered
def scorecard_chart(targets: Sequence[TargetCheck], language: str) -> Chart:
    """One bar per target: its value against the target line, coloured by status."""
    lang = chart_language(language)
    title = msg("chart.targets", lang)
    fig = _figure(9, 0.45 * max(len(targets), 1) + 1.2)
    ax = fig.add_subplot()
    names = [label(t.metric, lang) for t in targets][::-1]
    values = [0 if t.value is None else t.value * 100 for t in targets][::-1]
    colours = [_COLOURS[t.status] for t in targets][::-1]
    bars = ax.barh(names, values, color=colours)
    for t, bar in zip(targets[::-1], bars, strict=True):
        text = msg("no_data", lang) if t.value is None else format_percent(t.value, 1)
        ax.text(bar.get_width() + 1, bar.get_y() + bar.get_height() / 2, text, va="center")
        y = bar.get_y()
        ax.plot([t.target * 100] * 2, [y - 0.1, y + bar.get_height() + 0.1], color="black", lw=1.5)
    ax.set_xlim(0, 115)
    ax.set_xlabel(msg("chart.percent_axis", lang))
    ax.set_title(title, loc="left")
    return Chart("scorecard", title, _png(fig))


def _grid(n: int) -> tuple[int, int]:
    cols = 3 if n > 4 else max(n, 1)
    return math.ceil(max(n, 1) / cols), cols


@_rendered
def history_chart(
    history: pd.DataFrame, targets: Sequence[TargetCheck], period: str, language: str
) -> Chart:
    """Each target's value over the nightly history of the period (one panel each);
    ``history`` has one row per metric per as-of date (metric, as_of, value, status)."""
    lang = chart_language(language)
    title = msg("chart.history", lang, period=period)
    rows, cols = _grid(len(targets))
    fig, axes = _panels(rows, cols, 2.4 * rows + 0.6, _DATED, title)
    for ax, t in zip(axes, targets, strict=False):
        points = history[(history["metric"] == t.metric) & history["value"].notna()]
        slipped = points[points["status"] == "slipped"]
        if points.empty:
            ax.text(
                0.5,
                0.5,
                msg("chart.no_history", lang),
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="grey",
            )
        else:
            marker = "o" if len(points) < 15 else None
            ax.plot(
                points["as_of"], points["value"] * 100, color=_COLOURS["met"], lw=1.5, marker=marker
            )
            ax.scatter(
                slipped["as_of"], slipped["value"] * 100, color=_COLOURS["slipped"], s=10, zorder=3
            )
        ax.axhline(t.target * 100, color="black", ls="--", lw=1)
        ax.set_ylim(-5, 110)
        ax.set_title(label(t.metric, lang), fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        ax.tick_params(axis="x", labelrotation=30)
    for ax in axes[len(targets) :]:
        ax.set_visible(False)
    return Chart("history", title, _png(fig))


def _by_month(monthly: pd.DataFrame, column: str) -> pd.DataFrame:
    """``column`` of a metric frame pivoted to one row per month and one column per metric."""
    return monthly.pivot(index="period", columns="metric", values=column)


@_rendered
def monthly_targets_chart(
    monthly: pd.DataFrame, targets: Sequence[TargetCheck], language: str
) -> Chart:
    """Each target's value per month of the period (a metric frame), bars coloured by status."""
    values = _by_month(monthly, "value").astype("float64")
    statuses = _by_month(monthly, "status")
    targets = [t for t in targets if t.metric in values]  # custom rates have no months
    lang = chart_language(language)
    title = msg("chart.targets_monthly", lang)
    rows, cols = _grid(len(targets))
    fig, axes = _panels(rows, cols, 2.4 * rows + 0.6, _MONTHS, title)
    months = list(values.index.str[5:])
    for ax, t in zip(axes, targets, strict=False):
        ax.bar(
            months, values[t.metric].fillna(0) * 100, color=list(statuses[t.metric].map(_COLOURS))
        )
        for i, missing in enumerate(values[t.metric].isna()):
            if missing:
                ax.text(i, 2, "–", ha="center", color="grey")
        ax.axhline(t.target * 100, color="black", ls="--", lw=1)
        ax.set_ylim(0, 110)
        ax.set_title(label(t.metric, lang), fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
    for ax in axes[len(targets) :]:
        ax.set_visible(False)
    return Chart("monthly-targets", title, _png(fig))


_COUNTS = (
    "permits.received",
    "permits.approved",
    "permits.denied",
    "enforcement.inspections",
    "enforcement.double_random",
    "docreview.contracts_reviewed",
)


@_rendered
def monthly_counts_chart(monthly: pd.DataFrame, language: str) -> Chart:
    """Applications, inspections and contracts reviewed per month (a metric frame)."""
    lang = chart_language(language)
    title = msg("chart.counts_monthly", lang)
    groups = (_COUNTS[:3], _COUNTS[3:5], _COUNTS[5:])
    fig, axes = _panels(1, len(groups), 3.2, _COUNTED, title)
    counts = _by_month(monthly, "value").astype("float64").fillna(0)
    months = list(counts.index.str[5:])
    for ax, group in zip(axes, groups, strict=True):
        width = 0.8 / len(group)
        for i, metric in enumerate(group):
            assert METRICS[metric][0] == "count"
            xs = [x + (i - (len(group) - 1) / 2) * width for x in range(len(months))]
            ax.bar(xs, counts[metric], width=width, label=label(metric, lang))
        ax.set_xticks(range(len(months)), months)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    return Chart("monthly-counts", title, _png(fig))


NAMED_AGENCIES = 10  # agencies a trends chart tells apart by colour and legend


@_rendered
def city_trends_chart(trends: pd.DataFrame, targets: Sequence[str], language: str) -> Chart:
    """Each target's monthly value per agency (one line each, named by agency id, which is
    a slug: a name from outside never reaches matplotlib's text parser) and the city's in
    black; ``trends`` has one row per agency per metric per month (agency_id, metric,
    period, value). Beyond :data:`NAMED_AGENCIES` agencies their lines are grey and
    unnamed (the page's tables name them): fifty colours name nobody."""
    lang = chart_language(language)
    title = msg("chart.city_trends", lang)
    shown = [m for m in targets if (trends["metric"] == m).any()]
    rows, cols = _grid(len(shown))
    fig = _figure(4 * cols, 2.6 * rows + 0.8)
    fig.suptitle(title, x=0.01, ha="left")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    months = sorted(trends["period"].unique())
    named = trends["agency_id"].nunique() - 1 <= NAMED_AGENCIES
    for ax, metric in zip(axes, shown, strict=False):
        points = trends[trends["metric"] == metric]
        for agency, line in points.groupby("agency_id", sort=True):
            by_month = line.set_index("period")["value"].astype("float64").reindex(months) * 100
            city = agency == "all"
            ax.plot(
                [m[5:] for m in months],
                by_month,
                label=msg("city.rollup", lang) if city else (str(agency) if named else None),
                color="black" if city else (None if named else "#b0bec5"),
                lw=2.2 if city else 1,
                marker="o" if named and len(months) < 15 else None,
                markersize=3,
                zorder=3 if city else 2,
            )
        ax.set_ylim(-5, 110)
        ax.set_title(label(metric, lang), fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    if shown:
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 8), fontsize=7)
    return Chart("city-trends", title, _png(fig))
