"""CSV and XLSX exports of a report: metrics, offenders, reconciliation, freshness.

Tables with one grain each, headers in English snake case (the metric ids and
columns of the warehouse), so a spreadsheet or BI tool reads them as they are.
CSV files are UTF-8 with a byte-order mark, which Excel needs for Chinese text.

Text from the sources (record keys, reasons, stored errors) is written as inert
text in every export (:func:`cell_text`): a value a spreadsheet would read as a
formula gets a leading apostrophe, as OWASP recommends against CSV injection,
and control characters that XLSX cannot hold are written as visible escapes.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from rulewatch.common.metric_ids import METRICS, label
from rulewatch.report.data import ReportData

#: What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: Control characters XML 1.0 (and so XLSX) cannot hold; tab, LF and CR it can.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


#: A signed figure such as ``+10.79%`` or ``-3``: a number to a spreadsheet, never a formula.
_SIGNED_NUMBER = re.compile(r"[+-]\d[\d,]*(\.\d+)?%?")


def cell_text(value: Any) -> Any:
    """A cell value made inert: a formula start (a signed figure aside) prefixed with
    ``'``; control characters and lone surrogates escaped (``\\x1b``, ``\\ud800``).
    Non-text values pass as they are."""
    if not isinstance(value, str):
        return value
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if text.startswith(FORMULA_STARTS) and not _SIGNED_NUMBER.fullmatch(text):
        text = "'" + text
    return text


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
                    "provisional": m.provisional,
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
        "provisional",
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
            writer.writerows({k: cell_text(v) for k, v in row.items()} for row in rows)
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
            sheet.append([cell_text(row[c]) for c in _COLUMNS[name]])
        sheet.freeze_panes = "A2"
        for column in sheet.columns:
            width = max(len(str(c.value or "")) for c in column)
            sheet.column_dimensions[column[0].column_letter].width = min(max(width + 2, 10), 60)
    path = folder / f"report-{data.period.label}.xlsx"
    book.save(path)
    return path
