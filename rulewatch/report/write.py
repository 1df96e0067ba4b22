"""``rulewatch report``: one period's report files, written from the warehouse."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import Engine

from rulewatch.checks.targets import ensure_target_checks
from rulewatch.common.periods import Period
from rulewatch.config.settings import Settings
from rulewatch.report.charts import (
    history_chart,
    monthly_counts_chart,
    monthly_targets_chart,
    scorecard_chart,
)
from rulewatch.report.data import ReportData, gather_report
from rulewatch.report.draft import draft_en, draft_markdown, draft_zh
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
    ``annual-report-2023.zh.md``, ...) and replaced when written again. The targets
    shown are the stored checks of ``as_of``: a date never checked is checked first.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    ensure_target_checks(engine, settings, [period], as_of)
    with snapshot(engine) as conn:  # one consistent state, also while a sync writes
        data = gather_report(conn, settings, period, as_of, language)
    lang = data.language
    charts = [scorecard_chart(data.targets, lang)] if data.targets else []
    if data.targets:
        charts.append(history_chart(data.history, data.targets, period.label, lang))
    if not data.monthly.empty:
        if data.targets:
            charts.append(monthly_targets_chart(data.monthly, data.targets, lang))
        charts.append(monthly_counts_chart(data.monthly, lang))
    drafts = {"zh": draft_zh(data), "en": draft_en(data)}
    if lang == "en":
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


def write_demo_reports(engine: Engine, settings: Settings, as_of: date) -> list[Path]:
    """The demo's reports: last year's and this year's, with their history rebuilt.

    A fresh demo warehouse has one nightly run; the history charts need the
    figures and checks of every earlier day, which :func:`backfill_history`
    rebuilds from the current state (days that have them already are kept).
    """
    from rulewatch.report.tables import backfill_history, refresh_report_tables

    backfill_history(engine, settings, date(as_of.year - 1, 1, 1), as_of)
    refresh_report_tables(engine, settings, as_of, computed_by="demo")  # slipped since, from it
    folder = settings.output_dir / "reports"
    return [
        write_report(engine, settings, Period.parse(str(year)), as_of, folder).html
        for year in (as_of.year - 1, as_of.year)
    ]
