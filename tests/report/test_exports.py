"""The CSV and XLSX exports over hand-built report data: exact cells, whatever pandas infers.

The exports are pandas frames written by ``to_csv`` and ``to_excel``; these tests pin
what the files held when they were written by the csv module and openpyxl: a count
stays ``230`` (not ``230.0``), a missing value is an empty cell (not empty text), a
sheet without rows has its header only, text that starts a formula is inert.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from rulewatch.checks.results import Offender, TargetCheck
from rulewatch.common.periods import Period
from rulewatch.metrics.compute import MetricValue
from rulewatch.report.data import ReportData, SourceFreshness, metric_frame
from rulewatch.report.exports import write_csvs, write_xlsx

AS_OF = date(2024, 5, 20)
FILING = "docreview.filing_rate"


def _metric(
    metric: str, period: str, value: float | None, n: int | None, d: int | None
) -> MetricValue:
    target = None if n is None else 1.0
    status = "info" if n is None else ("no_data" if value is None else "slipped")
    return MetricValue(metric, period, AS_OF, value, n, d, target, status, provisional=n == 0)


@pytest.fixture
def data() -> ReportData:
    year = [
        _metric("permits.received", "2024", 230, None, None),
        _metric(FILING, "2024", 0.5, 1, 2),
    ]
    months = [
        _metric("permits.received", "2024-05", 41, None, None),
        _metric(FILING, "2024-05", None, 0, 0),
    ]
    slipped = TargetCheck(
        metric=FILING,
        period="2024",
        as_of=AS_OF,
        value=0.5,
        numerator=1,
        denominator=2,
        target=1.0,
        severity="critical",
        status="slipped",
        offenders=(Offender('=HYPERLINK("http://x")', "not filed"), Offender("+10.79%", None)),
        offender_count=2,
    )
    synced = datetime(2024, 5, 20, 1, 2, 3, 456, tzinfo=UTC)
    return ReportData(
        period=Period.parse("2024"),
        as_of=AS_OF,
        language="en",
        generated_at=synced,
        metrics=year,
        targets=[slipped],
        monthly=metric_frame(months),
        history=pd.DataFrame(columns=["metric", "as_of", "value", "status"]),
        reconciliation=[],
        freshness=[
            SourceFreshness("permits", "succeeded", synced, synced, 5, 4, 1, None, 1),
            SourceFreshness("docreview", None, None, None, 0, 0, 0, "-1\x1b[2J", 0),
        ],
        quarantine=[],
        set_aside_now={},
    )


def _lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a byte-order mark, for Excel
    return raw[3:].decode("utf-8").split("\r\n")  # CRLF, as the csv module writes


def test_csv_cells_are_written_as_computed(data: ReportData, tmp_path: Path) -> None:
    metrics, offenders, reconciliation, freshness = (_lines(p) for p in write_csvs(data, tmp_path))
    assert metrics == [
        "metric,metric_kind,label_en,label_zh,period,as_of,value,numerator,denominator,"
        "target,status,provisional",
        "permits.received,count,Work-permit applications received,受理工作许可申请,2024,"
        "2024-05-20,230,,,,info,False",
        "docreview.filing_rate,rate,Normative documents filed,规范性文件报备率,2024,2024-05-20,"
        "0.5,1,2,1.0,slipped,False",
        "permits.received,count,Work-permit applications received,受理工作许可申请,2024-05,"
        "2024-05-20,41,,,,info,False",
        "docreview.filing_rate,rate,Normative documents filed,规范性文件报备率,2024-05,"
        "2024-05-20,,0,0,1.0,no_data,True",
        "",
    ]
    assert offenders == [
        "metric,period,as_of,target_status,natural_key,reason",
        'docreview.filing_rate,2024,2024-05-20,slipped,"\'=HYPERLINK(""http://x"")",not filed',
        "docreview.filing_rate,2024,2024-05-20,slipped,+10.79%,",
        "",
    ]
    assert reconciliation == [
        "metric,period,as_of,published,warehouse,status,arithmetic,published_in,quote",
        "",
    ]
    assert freshness[1:] == [
        "permits,succeeded,2024-05-20 01:02:03+00:00,2024-05-20 01:02:03+00:00,5,4,1,1,,,False",
        "docreview,,,,0,0,0,0,,'-1\\x1b[2J,False",
        "",
    ]


def test_xlsx_cells_keep_their_types_and_blanks(data: ReportData, tmp_path: Path) -> None:
    path = write_xlsx(data, tmp_path)
    book = load_workbook(path)
    assert book.sheetnames == ["metrics", "offenders", "reconciliation", "freshness"]
    metrics = book["metrics"]
    assert [c.value for c in metrics[2]][4:] == [
        "2024",
        "2024-05-20",
        230,
        None,
        None,
        None,
        "info",
        False,
    ]
    assert [c.value for c in metrics[5]][6:] == [None, 0, 0, 1.0, "no_data", True]
    assert isinstance(metrics["G2"].value, int) and metrics["G3"].value == 0.5
    assert metrics["H2"].data_type == "n"  # a missing value is an empty cell, not empty text
    assert all(c.font.b for c in metrics[1]) and not metrics["A2"].font.b
    assert metrics.freeze_panes == "A2"
    assert metrics.column_dimensions["C"].width == len("Work-permit applications received") + 2
    offenders = book["offenders"]
    assert [c.value for c in offenders["E"]][1:] == ['\'=HYPERLINK("http://x")', "+10.79%"]
    assert all(c.data_type != "f" for row in offenders.iter_rows() for c in row)
    assert book["reconciliation"].freeze_panes == "A2"
    streamed = load_workbook(path, read_only=True)["reconciliation"]  # reads the sheet's extent
    assert list(streamed.iter_rows(values_only=True)) == [
        ("metric", "period", "as_of", "published", "warehouse", "status", "arithmetic")
        + ("published_in", "quote")
    ]
    assert [c.value for c in book["freshness"][3]][9:] == ["'-1\\x1b[2J", False]
