"""CSV and XLSX exports of a report: metrics, offenders, reconciliation, freshness.

Tables with one grain each, headers in English snake case (the metric ids and
columns of the warehouse), so a spreadsheet or BI tool reads them as they are.
Each is a pandas frame written by ``to_csv`` and ``to_excel``; CSV files are
UTF-8 with a byte-order mark, which Excel needs for Chinese text, and CRLF line
ends, as the csv module writes them.

Text from the sources (record keys, reasons, stored errors) is written as inert
text in every export (:func:`cell_text`): a value a spreadsheet would read as a
formula gets a leading apostrophe, as OWASP recommends against CSV injection,
and control characters that XLSX cannot hold are written as visible escapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from rulewatch.common.metric_ids import METRICS, label
from rulewatch.report.data import ReportData, SourceFreshness, metric_frame
from rulewatch.report.published import Reconciled

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


def inert(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell made inert by :func:`cell_text`; numbers, booleans and
    empty cells keep their values and types (a count stays ``230``, never ``230.0``)."""
    return frame.mask(frame.map(lambda value: isinstance(value, str)), frame.map(cell_text))


def metrics_frame(data: ReportData) -> pd.DataFrame:
    """One row per metric per period: the report's period, then each of its months."""
    frame = pd.concat([metric_frame(data.metrics), data.monthly], ignore_index=True)
    metric = frame["metric"]
    return frame.assign(
        metric_kind=metric.map(lambda m: METRICS[m][0]),
        label_en=metric.map(lambda m: label(m, "en")),
        label_zh=metric.map(lambda m: label(m, "zh")),
        as_of=frame["as_of"].map(date.isoformat),
    )[
        [
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
        ]
    ]


def offenders_frame(data: ReportData) -> pd.DataFrame:
    """One row per offending record of each target of the period (slipped ones first)."""
    ordered = sorted(data.targets, key=lambda t: (t.status != "slipped", t.metric))
    rows = [
        (t.metric, t.period, t.as_of.isoformat(), t.status, o.natural_key, o.reason)
        for t in ordered
        for o in t.offenders
    ]
    columns = ["metric", "period", "as_of", "target_status", "natural_key", "reason"]
    return pd.DataFrame(rows, columns=columns, dtype=object)


RECONCILIATION_COLUMNS = (
    "metric",
    "period",
    "as_of",
    "published",
    "warehouse",
    "status",
    "arithmetic",
    "published_in",
    "quote",
)


def reconciliation_row(r: Reconciled) -> tuple:
    """One published figure's cells, in :data:`RECONCILIATION_COLUMNS` order."""
    return (
        r.metric,
        r.period,
        r.as_of.isoformat(),
        r.published,
        r.warehouse,
        r.status,
        r.arithmetic,
        r.title,
        r.quote,
    )


def reconciliation_frame(data: ReportData) -> pd.DataFrame:
    """One row per published figure: published, warehouse, status, arithmetic."""
    rows = [reconciliation_row(r) for r in data.reconciliation]
    return pd.DataFrame(rows, columns=list(RECONCILIATION_COLUMNS), dtype=object)


def _utc(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(sep=" ", timespec="seconds")


#: The columns of a freshness export, one row per source.
FRESHNESS_EXPORT_COLUMNS = [
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
]


def freshness_rows(freshness: Sequence[SourceFreshness]) -> list[dict[str, Any]]:
    """One record per source: its newest sync and newest success, as the exports show it."""
    return [
        {
            "source": f.source,
            "last_status": f.last_status,
            "last_started_at_utc": _utc(f.last_started_at),
            "last_succeeded_at_utc": _utc(f.last_succeeded_at),
            "records_read": f.records_read,
            "records_loaded": f.records_loaded,
            "records_set_aside": f.records_set_aside,
            "syncs": f.syncs,
            "watermarks_utc": "; ".join(f"{s} {_utc(w)}" for s, w in f.watermarks),
            "error": f.error,
            "is_stale": f.stale_after_hours is not None,
        }
        for f in freshness
    ]


def freshness_frame(data: ReportData) -> pd.DataFrame:
    """One row per source: its newest sync and newest success."""
    return pd.DataFrame(freshness_rows(data.freshness), dtype=object)


def export_frames(data: ReportData) -> dict[str, pd.DataFrame]:
    """The exports of a report by name, every text cell made inert; with agencies.yaml
    each row names its agency first (``agency_id``), so a city's files concatenate."""
    frames = {
        "metrics": metrics_frame(data),
        "offenders": offenders_frame(data),
        "reconciliation": reconciliation_frame(data),
        "freshness": freshness_frame(data),
    }
    if data.agency_names is not None:
        for frame in frames.values():
            frame.insert(0, "agency_id", data.agency_id)
    return {name: inert(frame) for name, frame in frames.items()}


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """A frame as CSV: UTF-8 with a byte-order mark, CRLF line ends, no index."""
    frame.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\r\n")
    return path


def write_csvs(data: ReportData, folder: Path) -> list[Path]:
    """``metrics-P.csv``, ``offenders-P.csv``, ``reconciliation-P.csv``, ``freshness-P.csv``."""
    return [
        write_csv(frame, folder / f"{name}-{data.period.label}.csv")
        for name, frame in export_frames(data).items()
    ]


def _format_sheet(sheet: Worksheet, frame: pd.DataFrame) -> None:
    """Bold headers in a frozen first row; a missing value as an empty cell (``to_excel``
    writes empty text); each column as wide as its longest value, 10 to 60 characters."""
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"  # to_excel's freeze_panes adds an empty row to an empty sheet
    for row, column in zip(*frame.isna().to_numpy().nonzero(), strict=True):
        sheet.cell(int(row) + 2, int(column) + 1).value = None
    for cells in sheet.columns:
        width = max(len(str(c.value or "")) for c in cells)
        sheet.column_dimensions[cells[0].column_letter].width = min(max(width + 2, 10), 60)


def write_book(frames: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """One sheet per frame, named after it: bold headers, frozen header row."""
    with pd.ExcelWriter(path, engine="openpyxl") as book:
        for name, frame in frames.items():
            frame.to_excel(book, sheet_name=name, index=False)
            _format_sheet(book.sheets[name], frame)
    return path


def write_xlsx(data: ReportData, folder: Path) -> Path:
    """``report-P.xlsx``: one sheet per export, bold headers, frozen header row."""
    return write_book(export_frames(data), folder / f"report-{data.period.label}.xlsx")
