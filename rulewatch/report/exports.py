"""CSV and XLSX exports of a report: metrics, offenders, reconciliation, freshness.

Tables with one grain each, headers in English snake case (the metric ids and
columns of the warehouse), so a spreadsheet or BI tool reads them as they are.
CSV files are UTF-8 with a byte-order mark, which Excel needs for Chinese text.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from rulewatch.metric_ids import METRICS, label
from rulewatch.report.data import ReportData


def metric_rows(data: ReportData) -> list[dict[str, Any]]:
    """One row per metric per period: the report's period, then each of its months."""
    rows = []
    for metrics in [data.metrics, *data.monthly]:
        for m in metrics:
            rows.append(
                {
                    "metric": m.metric,
                    "metric_kind": METRICS[m.metric][0],
                    "label_en": label(m.metric, "en"),
                    "label_zh": label(m.metric, "zh"),
                    "period": m.period,
                    "as_of": m.as_of.isoformat(),
                    "value": m.value,
                    "numerator": m.numerator,
                    "denominator": m.denominator,
                    "target": m.target,
                    "status": m.status,
                }
            )
    return rows


def offender_rows(data: ReportData) -> list[dict[str, Any]]:
    """One row per offending record of each target of the period (slipped ones first)."""
    ordered = sorted(data.targets, key=lambda t: (t.status != "slipped", t.metric))
    return [
        {
            "metric": t.metric,
            "period": t.period,
            "as_of": t.as_of.isoformat(),
            "target_status": t.status,
            "natural_key": o.natural_key,
            "reason": o.reason,
        }
        for t in ordered
        for o in t.offenders
    ]


def reconciliation_rows(data: ReportData) -> list[dict[str, Any]]:
    """One row per published figure: published, warehouse, status, arithmetic."""
    return [
        {
            "metric": r.metric,
            "period": r.period,
            "as_of": r.as_of.isoformat(),
            "published": r.published,
            "warehouse": r.warehouse,
            "status": r.status,
            "arithmetic": r.arithmetic,
            "published_in": r.title,
            "quote": r.quote,
        }
        for r in data.reconciliation
    ]


def freshness_rows(data: ReportData) -> list[dict[str, Any]]:
    """One row per source: its newest sync and newest success."""

    def iso(value: Any) -> str | None:
        return None if value is None else value.isoformat(sep=" ", timespec="seconds")

    return [
        {
            "source": f.source,
            "last_status": f.last_status,
            "last_started_at_utc": iso(f.last_started_at),
            "last_succeeded_at_utc": iso(f.last_succeeded_at),
            "records_read": f.records_read,
            "records_loaded": f.records_loaded,
            "records_set_aside": f.records_set_aside,
            "syncs": f.syncs,
            "watermarks_utc": "; ".join(f"{s} {iso(w)}" for s, w in f.watermarks),
            "error": f.error,
            "is_stale": f.stale_after_hours is not None,
        }
        for f in data.freshness
    ]


_COLUMNS = {
    "metrics": [
        "metric",
        "metric_kind",
        "label_en",
        "label_zh",
        "period",
        "as_of",
        "value",
        "numerator",
        "denominator",
        "target",
        "status",
    ],
    "offenders": ["metric", "period", "as_of", "target_status", "natural_key", "reason"],
    "reconciliation": [
        "metric",
        "period",
        "as_of",
        "published",
        "warehouse",
        "status",
        "arithmetic",
        "published_in",
        "quote",
    ],
    "freshness": [
        "source",
        "last_status",
        "last_started_at_utc",
        "last_succeeded_at_utc",
        "records_read",
        "records_loaded",
        "records_set_aside",
        "syncs",
        "watermarks_utc",
        "error",
        "is_stale",
    ],
}


def _sheets(data: ReportData) -> dict[str, list[dict[str, Any]]]:
    return {
        "metrics": metric_rows(data),
        "offenders": offender_rows(data),
        "reconciliation": reconciliation_rows(data),
        "freshness": freshness_rows(data),
    }


def write_csvs(data: ReportData, folder: Path) -> list[Path]:
    """``metrics-P.csv``, ``offenders-P.csv``, ``reconciliation-P.csv``, ``freshness-P.csv``."""
    paths = []
    for name, rows in _sheets(data).items():
        path = folder / f"{name}-{data.period.label}.csv"
        with path.open("w", encoding="utf-8-sig", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=_COLUMNS[name])
            writer.writeheader()
            writer.writerows(rows)
        paths.append(path)
    return paths


def write_xlsx(data: ReportData, folder: Path) -> Path:
    """``report-P.xlsx``: one sheet per export, bold headers, frozen header row."""
    book = Workbook()
    book.remove(book.active)
    for name, rows in _sheets(data).items():
        sheet = book.create_sheet(name)
        sheet.append(_COLUMNS[name])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append([row[c] for c in _COLUMNS[name]])
        sheet.freeze_panes = "A2"
        for column in sheet.columns:
            width = max(len(str(c.value or "")) for c in column)
            sheet.column_dimensions[column[0].column_letter].width = min(max(width + 2, 10), 60)
    path = folder / f"report-{data.period.label}.xlsx"
    book.save(path)
    return path
