"""`rulewatch report`'s files from the demo warehouse: HTML, CSV, XLSX and the drafts."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from report_support import demo_warehouse

from rulewatch.common.periods import Period
from rulewatch.demo.data import DEMO_TODAY, MISSED_FILING_DOC_ID
from rulewatch.report.write import ReportFiles, write_report


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Iterator[dict[str, ReportFiles]]:  # noqa: ANN001
    folder = tmp_path_factory.mktemp("report-files")
    with demo_warehouse(f"sqlite:///{folder / 'warehouse.db'}", folder) as (engine, settings):
        yield {
            year: write_report(engine, settings, Period.parse(year), DEMO_TODAY, folder / "out")
            for year in ("2023", "2024")
        }


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_every_file_is_written_and_named_after_the_period(reports):
    files = reports["2023"]
    names = sorted(p.name for p in files.paths)
    assert names == [
        "annual-report-2023.en.md",
        "annual-report-2023.zh.md",
        "freshness-2023.csv",
        "metrics-2023.csv",
        "offenders-2023.csv",
        "reconciliation-2023.csv",
        "report-2023.html",
        "report-2023.xlsx",
    ]
    assert all(p.stat().st_size > 0 for p in files.paths)


def test_2023_draft_reproduces_the_seed_and_states_the_growth_correctly(reports):
    zh = reports["2023"].drafts[0].read_text(encoding="utf-8")
    en = reports["2023"].drafts[1].read_text(encoding="utf-8")
    assert "全年共受理外国人来华工作许可申请606件,同比增加10.79%" in zh
    assert "准予许可593件,同比增加9.41%,不予许可13件,同比增加160%" in zh
    for phrase in (
        "行政执法人员13人",
        "辅助执法人员6人",
        "规范性文件3份",
        "清理1份",
        "40件政府合同",
    ):
        assert phrase in zh
    assert "跨部门执法检查12次" in zh and "信用规则率100%" in zh
    assert "received 606 applications" in en and "up 10.79% year on year" in en
    assert "10.88%" not in zh.split("【编辑注】")[0]  # only the editor's note names it
    assert "【编辑注】" in zh and "[Editor's note]" in en


def test_2023_reconciliation_flags_only_the_growth_rate(reports):
    rows = _csv(reports["2023"].csvs[2])
    assert len(rows) == 16
    flagged = [r for r in rows if r["status"] != "match"]
    assert [(r["metric"], r["published"], r["warehouse"]) for r in flagged] == [
        ("permits.received_yoy", "+10.88%", "+10.79%")
    ]
    assert "59 / 547" in flagged[0]["arithmetic"]


def test_2024_exports_name_the_missed_filing(reports):
    files = reports["2024"]
    offenders = _csv(files.csvs[1])
    filing = [r for r in offenders if r["metric"] == "docreview.filing_rate"]
    assert [(r["natural_key"], r["target_status"]) for r in filing] == [
        (MISSED_FILING_DOC_ID, "slipped")
    ]
    metrics = _csv(files.csvs[0])
    year = {r["metric"]: r for r in metrics if r["period"] == "2024"}
    assert year["docreview.filing_rate"]["status"] == "slipped"
    assert {r["period"] for r in metrics} == {
        "2024",
        "2024-01",
        "2024-02",
        "2024-03",
        "2024-04",
        "2024-05",
    }
    book = load_workbook(files.xlsx, read_only=True)
    assert book.sheetnames == ["metrics", "offenders", "reconciliation", "freshness"]
    sheet_rows = list(book["offenders"].iter_rows(values_only=True))
    assert sheet_rows[0][:5] == ("metric", "period", "as_of", "target_status", "natural_key")
    assert (
        "docreview.filing_rate",
        "2024",
        "2024-05-20",
        "slipped",
        MISSED_FILING_DOC_ID,
    ) in [r[:5] for r in sheet_rows]
    zh = files.drafts[0].read_text(encoding="utf-8")
    assert "规范性文件报备率(docreview.filing_rate)为50%(1/2)" in zh and MISSED_FILING_DOC_ID in zh


def test_freshness_and_quarantine_come_from_the_sync_tables(reports):
    data = reports["2024"].data
    assert [f.source for f in data.freshness] == ["permits", "enforcement", "docreview"]
    assert all(f.last_status == "succeeded" and f.syncs == 1 for f in data.freshness)
    assert dict(data.freshness[0].watermarks)["permits.applications"] is not None
    assert set(data.set_aside_now) == {
        "permits.applications",
        "enforcement.inspections",
        "enforcement.officers",
        "docreview.documents",
    }
    assert data.targets and all(t.check_result_id is None for t in data.targets)


def test_html_is_one_self_contained_file(reports):
    html = reports["2024"].html.read_text(encoding="utf-8")
    assert "<script" not in html
    assert 'src="http' not in html and "href=" not in html
    assert html.count('src="data:image/png;base64,') == 4
    assert 'data-metric="docreview.filing_rate" data-status="slipped"' in html
    assert f'data-key="{MISSED_FILING_DOC_ID}"' in html


def test_no_sentence_of_a_draft_is_repeated(reports):  # noqa: ANN001
    import re

    for files in reports.values():
        for path in files.drafts:
            text = path.read_text(encoding="utf-8")
            sentences = [s.strip() for s in re.split(r"(?<=[。.;；])\s*", text) if len(s) > 12]
            repeated = {s for s in sentences if sentences.count(s) > 1}
            assert not repeated, (path.name, repeated)
