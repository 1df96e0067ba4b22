"""The HTML report in a real headless Chromium: what a reader sees, and a screenshot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from report_browser import require_chromium, visit
from report_support import demo_warehouse

from rulewatch.common.periods import Period
from rulewatch.demo.data import DEMO_TODAY, MISSED_FILING_DOC_ID
from rulewatch.report.write import write_report

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

SEEN = {
    "title": "document.title",
    "scorecard": """Array.from(document.querySelectorAll('#scorecard tr[data-metric]')).map(
        r => [r.dataset.metric, r.querySelector('.status').innerText.trim(), r.dataset.status])""",
    "reconciliation": """Array.from(document.querySelectorAll('#reconciliation tr[data-metric]'))
        .filter(r => r.dataset.status !== 'match').map(r => r.innerText)""",
    "offenders": """Array.from(document.querySelectorAll('#offenders tr[data-key]')).map(
        r => [r.dataset.metric, r.dataset.key, r.innerText])""",
    "images": """Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight,
        i.getBoundingClientRect().width])""",
    "text": "document.body.innerText",
}


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Iterator[dict[str, Path]]:  # noqa: ANN001
    require_chromium()
    folder = tmp_path_factory.mktemp("report-html")
    with demo_warehouse(f"sqlite:///{folder / 'warehouse.db'}", folder) as (engine, settings):
        yield {
            year: write_report(
                engine, settings, Period.parse(year), DEMO_TODAY, folder / "out"
            ).html
            for year in ("2023", "2024")
        }


def _images_loaded(images: list) -> None:
    assert len(images) == 4
    for complete, width, height, shown in images:
        assert complete and width > 300 and height > 100 and shown > 300


def test_2023_report_in_chromium(pages, tmp_path):
    seen = visit(pages["2023"], tmp_path / "profile", SEEN, ARTIFACTS / "report-2023.png")
    assert seen.errors == []
    assert seen.values["title"].startswith("法治政府建设合规报告 2023")
    scorecard = seen.values["scorecard"]
    assert len(scorecard) == 9
    assert all(status == "met" and shown == "达标" for _, shown, status in scorecard)
    (mismatch,) = seen.values["reconciliation"]
    assert "permits.received_yoy" in mismatch and "+10.88%" in mismatch and "+10.79%" in mismatch
    assert "不一致" in mismatch
    _images_loaded(seen.values["images"])
    assert "全年共受理外国人来华工作许可申请606件" in seen.values["text"]
    assert seen.screenshot is not None and seen.screenshot.stat().st_size > 50_000


def test_2024_report_in_chromium_names_the_missed_filing(pages, tmp_path):
    seen = visit(pages["2024"], tmp_path / "profile", SEEN, ARTIFACTS / "report-2024.png")
    assert seen.errors == []
    statuses = {metric: status for metric, _, status in seen.values["scorecard"]}
    assert statuses["docreview.filing_rate"] == "slipped"
    filing = [o for o in seen.values["offenders"] if o[0] == "docreview.filing_rate"]
    assert [o[1] for o in filing] == [MISSED_FILING_DOC_ID]
    assert "未报备;报备期限2024-04-04已过" in filing[0][2]  # a zh page: the reason in zh too
    _images_loaded(seen.values["images"])
    assert seen.values["reconciliation"] == []


def test_a_broken_image_is_seen(tmp_path):
    """The browser check itself: a page whose image cannot load is caught."""
    page = tmp_path / "broken.html"
    page.write_text('<html><body><img src="missing.png"></body></html>', encoding="utf-8")
    seen = visit(page, tmp_path / "profile", {"images": SEEN["images"]})
    assert seen.values["images"][0][1] == 0  # not loaded
    assert any("missing.png" in e for e in seen.errors)
