"""``rulewatch report``: one period's report files, written from the warehouse."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from sqlalchemy import Engine

from rulewatch.checks.targets import ensure_target_checks
from rulewatch.common.periods import Period
from rulewatch.common.staging import moved, written_together
from rulewatch.config.settings import Settings
from rulewatch.report.charts import Chart
from rulewatch.report.data import ReportData, gather_report
from rulewatch.report.draft import draft_en, draft_markdown, draft_zh
from rulewatch.report.drawing import ChartCall, ChartProcess, draw_here
from rulewatch.report.exports import write_csvs, write_xlsx
from rulewatch.report.html import render_html
from rulewatch.warehouse.db import redact
from rulewatch.warehouse.runs import snapshot


@dataclass
class ReportFiles:
    """The files one report wrote, and the data they show."""

    data: ReportData
    html: Path
    xlsx: Path
    csvs: list[Path] = field(default_factory=list)
    drafts: list[Path] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [self.html, self.xlsx, *self.csvs, *self.drafts]

    def moved_to(self, out_dir: Path) -> ReportFiles:
        """The same files, once moved from their staging folder into ``out_dir``."""
        return replace(
            self,
            html=moved(self.html, out_dir),
            xlsx=moved(self.xlsx, out_dir),
            csvs=[moved(p, out_dir) for p in self.csvs],
            drafts=[moved(p, out_dir) for p in self.drafts],
        )


def write_report(
    engine: Engine,
    settings: Settings,
    period: Period,
    as_of: date,
    out_dir: Path,
    language: str | None = None,
) -> ReportFiles:
    """Write the HTML report, the CSV and XLSX exports and the drafts of ``period``.

    Files are named after the period (``report-2023.html``, ``metrics-2023.csv``,
    ``annual-report-2023.zh.md``, ...) and replaced together when written again
    (:func:`written_together`: on an error the folder keeps the earlier set). The targets
    shown are the stored checks of ``as_of``: a date never checked is checked first.
    """
    data = _gather(engine, settings, period, as_of, out_dir, language)
    return _write(engine, data, draw_here(chart_calls(data)), out_dir)


def _gather(
    engine: Engine,
    settings: Settings,
    period: Period,
    as_of: date,
    out_dir: Path,
    language: str | None = None,
) -> ReportData:
    out_dir.mkdir(parents=True, exist_ok=True)
    ensure_target_checks(engine, settings, [period], as_of)
    with snapshot(engine) as conn:  # one consistent state, also while a sync writes
        return gather_report(conn, settings, period, as_of, language)


def chart_calls(data: ReportData) -> list[ChartCall]:
    """The charts a report shows, in order, as calls of :mod:`rulewatch.report.charts`."""
    lang = data.language
    calls: list[ChartCall] = []
    if data.targets:
        calls.append(("scorecard_chart", (data.targets, lang)))
        calls.append(("history_chart", (data.history, data.targets, data.period.label, lang)))
    if not data.monthly.empty:
        if data.targets:
            calls.append(("monthly_targets_chart", (data.monthly, data.targets, lang)))
        calls.append(("monthly_counts_chart", (data.monthly, lang)))
    return calls


def _write(engine: Engine, data: ReportData, charts: list[Chart], out_dir: Path) -> ReportFiles:
    """The report's files, from its data and its charts, replaced together in ``out_dir``."""
    with written_together(out_dir) as stage:
        files = _write_files(engine, data, charts, stage)
    return files.moved_to(out_dir)


def _write_files(
    engine: Engine, data: ReportData, charts: list[Chart], out_dir: Path
) -> ReportFiles:
    period = data.period
    drafts = {"zh": draft_zh(data), "en": draft_en(data)}
    if data.language == "en":
        drafts = {"en": drafts["en"], "zh": drafts["zh"]}
    warehouse = redact(str(engine.url))
    html = out_dir / f"report-{period.label}.html"
    html.write_text(render_html(data, charts, drafts, warehouse), encoding="utf-8")
    draft_paths = []
    for code in drafts:
        path = out_dir / f"annual-report-{period.label}.{code}.md"
        path.write_text(draft_markdown(data, code), encoding="utf-8")
        draft_paths.append(path)
    return ReportFiles(
        data=data,
        html=html,
        xlsx=write_xlsx(data, out_dir),
        csvs=write_csvs(data, out_dir),
        drafts=draft_paths,
    )


def write_demo_reports(
    engine: Engine, settings: Settings, as_of: date, drawer: ChartProcess | None = None
) -> list[Path]:
    """The demo's reports: last year's and this year's, with their history rebuilt.

    A fresh demo warehouse has one nightly run; the history charts need the
    figures and checks of every earlier day, which :func:`backfill_history`
    rebuilds from the current state (days that have them already are kept).
    With ``drawer`` (a :class:`ChartProcess` started before, which imports
    matplotlib meanwhile) last year's charts are drawn there while this process
    draws and writes this year's: the same files, on two cores.
    """
    from rulewatch.report.tables import backfill_history, refresh_report_tables

    backfill_history(engine, settings, date(as_of.year - 1, 1, 1), as_of)
    refresh_report_tables(engine, settings, as_of, computed_by="demo")  # slipped since, from it
    folder = settings.output_dir / "reports"
    last_year, this_year = (Period.parse(str(year)) for year in (as_of.year - 1, as_of.year))
    if drawer is None:
        return [
            write_report(engine, settings, p, as_of, folder).html for p in (last_year, this_year)
        ]
    earlier = _gather(engine, settings, last_year, as_of, folder)
    drawer.submit(chart_calls(earlier))
    later = _gather(engine, settings, this_year, as_of, folder)
    html = _write(engine, later, draw_here(chart_calls(later)), folder).html
    return [_write(engine, earlier, drawer.collect(), folder).html, html]
