"""What people see: scorecards, sync summaries and live progress (Rich)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rulewatch.common.metric_ids import label
from rulewatch.common.numbers import (
    PROVISIONAL_CAPTION,
    PROVISIONAL_MARK,
    format_figure,
    format_percent,
)
from rulewatch.metrics.compute import MetricValue
from rulewatch.warehouse.sync import Progress as PageProgress
from rulewatch.warehouse.sync import ProgressCallback, SourceSyncResult

if TYPE_CHECKING:
    from rulewatch.common.periods import Period
    from rulewatch.config.settings import Settings

out = Console(highlight=False, soft_wrap=False)
if not out.is_terminal:  # piped or scheduled: do not squeeze tables into 80 columns
    out = Console(highlight=False, soft_wrap=False, width=160)
err = Console(stderr=True, highlight=False)
log = logging.getLogger("rulewatch")

_STATUS_STYLE = {"met": "green", "slipped": "bold red", "no_data": "yellow", "info": "dim"}


def format_value(m: MetricValue) -> str:
    """The metric's value, by the one number formatter (:mod:`rulewatch.common.numbers`)."""
    return format_figure(m.metric, m.value)


def scorecard_table(metrics: Iterable[MetricValue], title: str, language: str = "en") -> Table:
    """A scorecard: one row per metric with value, n/d, target and status."""
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("metric", no_wrap=True)
    table.add_column("label", no_wrap=True)
    table.add_column("value", justify="right")
    table.add_column("n / d", justify="right")
    table.add_column("target", justify="right")
    table.add_column("status")
    provisional = False
    for m in metrics:
        nd = "" if m.denominator is None else f"{m.numerator} / {m.denominator}"
        target = "" if m.target is None else format_percent(m.target)
        style = _STATUS_STYLE.get(m.status, "")
        provisional |= m.provisional
        table.add_row(
            m.metric,
            label(m.metric, language),
            format_value(m) + (PROVISIONAL_MARK if m.provisional else ""),
            nd,
            target,
            f"[{style}]{m.status}[/]" if style else m.status,
        )
    if provisional:
        table.caption = PROVISIONAL_CAPTION
        table.caption_justify = "left"
    return table


def league_table(
    by_agency: dict[str, list[MetricValue]], title: str, language: str = "en"
) -> Table:
    """The targets across agencies: one row per target, one column per agency (value, status)."""
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("metric", no_wrap=True)
    table.add_column("target", justify="right")
    for agency_id in by_agency:
        table.add_column(agency_id, justify="right")
    first = next(iter(by_agency.values()), [])
    for metric in (m for m in first if m.target is not None):
        cells = []
        for metrics in by_agency.values():
            found = next((m for m in metrics if m.metric == metric.metric), None)
            if found is None:
                cells.append("")
                continue
            style = _STATUS_STYLE.get(found.status, "")
            status = f"[{style}]{found.status}[/]" if style else found.status
            cells.append(f"{format_value(found)} {status}")
        table.add_row(metric.metric, format_percent(metric.target), *cells)
    return table


def print_calendar_note(
    settings: Settings, period: Period, as_of: date, flagged: bool, console: Console = out
) -> None:
    """Say which year lacks its working-day arrangement and how to supply it, if any
    year the period's figures count in does (whether or not a figure was flagged)."""
    from rulewatch.common.workdays import (
        calendar_of,
        missing_arrangement_hint,
        unpublished_years_of,
    )

    years = unpublished_years_of(calendar_of(settings), period.start, period.end, as_of, flagged)
    if years:
        console.print(f"[yellow]calendar[/]: {escape(missing_arrangement_hint(settings, years))}")


def sync_table(results: dict[str, SourceSyncResult], failed: dict[str, str]) -> Table:
    """One row per source: pages, records read, loaded, set aside, time, outcome."""
    table = Table(title="sync", title_justify="left")
    for col in ("source", "pages", "read", "loaded", "set aside", "seconds", "outcome"):
        table.add_column(col, justify="left" if col in ("source", "outcome") else "right")
    for name, r in results.items():
        table.add_row(
            name,
            str(r.pages),
            str(r.records_read),
            str(r.records_loaded),
            str(r.records_set_aside),
            f"{r.duration_seconds:.1f}",
            "[green]ok[/]",
        )
    for name, why in failed.items():
        # `why` may quote a server: no Rich markup from it (a stray "[/]" would crash)
        table.add_row(name, "", "", "", "", "", f"[bold red]failed[/]: {escape(why)}")
    return table


@contextmanager
def live_progress(sources: Iterable[str]) -> Iterator[ProgressCallback]:
    """A progress callback: bars on a terminal, a plain log line now and then otherwise."""
    if err.is_terminal:
        bars = Progress(
            TextColumn("{task.fields[source]:<12}"),
            BarColumn(bar_width=None, pulse_style="cyan"),
            TextColumn("{task.fields[pages]:>5} pages"),
            TextColumn("{task.fields[read]:>9} read"),
            TextColumn("{task.fields[aside]:>5} set aside"),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        )
        ids = {s: bars.add_task(s, total=None, source=s, pages=0, read=0, aside=0) for s in sources}

        def on_page(p: PageProgress) -> None:
            bars.update(
                ids[p.source], pages=p.pages, read=p.records_read, aside=p.records_set_aside
            )

        with bars:
            yield on_page
        return
    last: dict[str, float] = {}

    def log_page(p: PageProgress) -> None:
        now = time.monotonic()
        if now - last.get(p.stream, 0.0) >= 5.0 or p.pages == 1:
            last[p.stream] = now
            log.info(  # a log line: it carries time and level off a terminal, or is JSON
                "%s: %d pages, %d read, %d set aside",
                p.stream,
                p.pages,
                p.records_read,
                p.records_set_aside,
            )

    yield log_page
