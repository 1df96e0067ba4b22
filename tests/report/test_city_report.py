"""The city report (issue 16 §4): three agencies' report tables side by side.

The report only reads tables, so each test writes the rows the nightly job would
have written (``report_target_status``, ``report_metric`` with the rollup's agency
``all``, ``report_offender``, ``sync_run``, ``sync_state``) straight into a real
warehouse, SQLite and PostgreSQL, with an ``agencies.yaml`` whose agency names and
record keys are hostile: they must be escaped in HTML and inert in CSV and XLSX.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from city_report_support import (
    AS_OF,
    CREDIT,
    FAILED,
    FILING,
    HOSTILE_KEYS,
    HOSTILE_NAME,
    PERIOD,
    city_config,
    populate,
)
from openpyxl import load_workbook
from report_browser import visit

from rulewatch.common.periods import Period
from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import load_settings
from rulewatch.report.city import write_city_report
from rulewatch.report.exports import FORMULA_STARTS
from rulewatch.warehouse.db import open_warehouse


@pytest.fixture
def city(warehouse_url, tmp_path):  # noqa: ANN001, ANN201
    config = city_config(tmp_path)
    settings = load_settings(
        {
            "RULEWATCH_CONFIG_DIR": str(config),
            "RULEWATCH_WAREHOUSE_URL": warehouse_url,
            "RULEWATCH_DATA_DIR": str(tmp_path / "data"),
        }
    )
    engine = open_warehouse(warehouse_url, calendar_of(settings))
    try:
        populate(engine)
        yield write_city_report(
            engine, settings, Period.parse(PERIOD), AS_OF, tmp_path / "city", language="en"
        )
    finally:
        engine.dispose()


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_the_league_ranks_agencies_per_target_with_the_rollup_after_them(city) -> None:
    rows = _csv(city.html.parent / f"city-league-{PERIOD}.csv")
    filing = [
        (r["rank"], r["agency_id"], r["numerator"], r["denominator"], r["status"])
        for r in rows
        if r["metric"] == FILING
    ]
    assert filing == [
        ("1", "gamma", "1", "1", "met"),
        ("2", "beta", "9", "10", "slipped"),
        ("3", "alpha", "1", "4", "slipped"),
        ("", "all", "11", "15", "slipped"),  # summed, of the as-of date, not 05-19 or 05-21
    ]
    city_row = next(r for r in rows if r["metric"] == FILING and r["agency_id"] == "all")
    assert float(city_row["value"]) == pytest.approx(11 / 15)
    assert city_row["agency_name"] == "city (all agencies)"
    alpha = next(r for r in rows if r["metric"] == FILING and r["agency_id"] == "alpha")
    assert alpha["slipped_since"] == "2024-04-05" and alpha["as_of"] == "2024-05-20"
    credit = [(r["rank"], r["agency_id"], r["status"]) for r in rows if r["metric"] == CREDIT]
    assert credit == [  # equal values share a rank; no value, no rank, last
        ("1", "alpha", "met"),
        ("1", "beta", "met"),
        ("", "gamma", "no_data"),
        ("", "all", "met"),
    ]
    assert "default" not in {r["agency_id"] for r in rows}  # agencies.yaml's agencies only
    unchecked = [r for r in rows if r["metric"] == "permits.on_time_rate"]
    assert [r["agency_id"] for r in unchecked] == ["alpha", "beta", "gamma"]
    assert {r["status"] for r in unchecked} == {""}


def test_trends_offenders_freshness_and_reconciliation_per_agency(city) -> None:
    folder = city.html.parent
    trends = _csv(folder / f"city-trends-{PERIOD}.csv")
    may = {r["agency_id"]: r["numerator"] for r in trends if r["period"] == "2024-05"}
    assert may == {"alpha": "1", "beta": "7", "gamma": "1", "all": "9"}
    offenders = _csv(folder / f"city-offenders-{PERIOD}.csv")
    assert [(r["agency_id"], r["metric"]) for r in offenders].count(("alpha", FILING)) == 3
    assert ("beta", "DOC-B-1") in {(r["agency_id"], r["natural_key"]) for r in offenders}
    freshness = _csv(folder / f"city-freshness-{PERIOD}.csv")
    assert [(r["agency_id"], r["source"], r["last_status"]) for r in freshness] == [
        ("alpha", "permits", "succeeded"),
        ("alpha", "docreview", ""),  # never synced
        ("beta", "permits", "failed"),
        ("gamma", "docreview", "succeeded"),
    ]
    assert freshness[2]["error"] == "'" + FAILED  # neutralised: it starts like a formula
    assert freshness[3]["watermarks_utc"] == "docreview.documents 2024-05-19 02:00:00"
    recon = _csv(folder / f"city-reconciliation-{PERIOD}.csv")
    assert [(r["agency_id"], r["metric"], r["warehouse"], r["status"]) for r in recon] == [
        ("beta", CREDIT, "100%", "match"),
        ("beta", "enforcement.inspections", "5", "mismatch"),
        ("all", FILING, "73%", "mismatch"),
    ]
    assert recon[2]["arithmetic"].startswith("11 / 15 = 73.3333%")  # summed, not averaged


def test_hostile_names_and_keys_are_inert_in_csv_and_xlsx(city) -> None:
    folder = city.html.parent
    for path in sorted(folder.glob("city-*.csv")):
        for row in _csv(path):
            for value in row.values():
                if value and not re.fullmatch(r"[+-]?\d[\d.,]*(e[+-]?\d+)?%?", value):
                    assert not value.startswith(FORMULA_STARTS), (path.name, value)
    names = {r["agency_name"] for r in _csv(folder / f"city-league-{PERIOD}.csv")}
    assert "'" + HOSTILE_NAME in names
    keys = {r["natural_key"] for r in _csv(folder / f"city-offenders-{PERIOD}.csv")}
    assert {"'=1+1", "'@SUM(1)", HOSTILE_KEYS[2]} <= keys
    book = load_workbook(city.xlsx)
    assert book.sheetnames == ["league", "trends", "offenders", "freshness", "reconciliation"]
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
    assert "'" + HOSTILE_NAME in {c.value for c in book["league"]["D"]}


def test_the_page_shows_hostile_names_and_keys_as_text(city, tmp_path) -> None:
    html = city.html.read_text(encoding="utf-8")
    for markup in ("<script>", "<img src=x", "<b onmouseover"):  # escaped, every one
        assert markup not in html
    assert ">nan<" not in html  # a figure or date missing shows empty, never as NaN
    seen = visit(
        city.html,
        tmp_path / "profile",
        {
            "pwned": "window.__pwned === undefined ? null : String(window.__pwned)",
            "handlers": "[...document.querySelectorAll('*')].filter(e => [...e.attributes]"
            ".some(a => a.name.startsWith('on'))).length",
            "text": "document.body.textContent",
            "ranks": "[...document.querySelectorAll("
            f"'#league tr[data-metric=\"{FILING}\"]')].map(e => e.dataset.agency + e.dataset.rank)",
            "keys": "[...document.querySelectorAll('#offenders tr[data-key]')]"
            ".map(e => e.dataset.key)",
        },
        offline=True,
    )
    assert seen.values["pwned"] is None and seen.values["handlers"] == 0
    assert HOSTILE_NAME in seen.values["text"]  # shown, as text
    assert seen.values["ranks"] == ["gamma1", "beta2", "alpha3", "all"]
    assert set(HOSTILE_KEYS) <= set(seen.values["keys"])
    assert seen.errors == []
