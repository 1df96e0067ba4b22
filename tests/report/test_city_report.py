"""The city report (issue 16 §4): three agencies' report tables side by side.

The report only reads tables, so each test writes the rows the nightly job would
have written (``report_target_status``, ``report_metric`` with the rollup's agency
``all``, ``report_offender``, ``sync_run``, ``sync_state``) straight into a real
warehouse, SQLite and PostgreSQL, with an ``agencies.yaml`` whose agency names and
record keys are hostile: they must be escaped in HTML and inert in CSV and XLSX.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from report_browser import visit
from sqlalchemy import insert

from rulewatch.common.periods import Period
from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import PACKAGE_CONFIG_DIR, load_settings
from rulewatch.report.city import write_city_report
from rulewatch.report.exports import FORMULA_STARTS
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.schema import (
    report_metric,
    report_offender,
    report_target_status,
    sync_run,
    sync_state,
)

AS_OF = date(2024, 5, 20)
PERIOD = "2024"
FILING = "docreview.filing_rate"
CREDIT = "enforcement.credit_rule_rate"
SCRIPT = "<script>window.__pwned='name'</script>"
HOSTILE_NAME = f'=HYPERLINK("http://x","y") {SCRIPT}'  # beta's English name
HOSTILE_KEYS = ["=1+1", "@SUM(1)", "<img src=x onerror=\"window.__pwned='key'\">"]
FAILED = "-1 permits: HTTP 500 <b onmouseover=\"window.__pwned='error'\">x</b>"

AGENCIES = f"""\
supervisor:
  name: {{zh: 台州市司法局, en: Taizhou Justice Bureau}}
agencies:
  - id: alpha
    name: {{zh: 甲局, en: Alpha Bureau}}
    sources:
      permits: {{base_url: "http://127.0.0.1:1/alpha", token_env: ALPHA_TOKEN}}
      docreview: {{base_url: "http://127.0.0.1:1/alpha", user_env: U, password_env: P}}
  - id: beta
    name: {{zh: {json.dumps("乙局" + SCRIPT)}, en: {json.dumps(HOSTILE_NAME)}}}
    sources:
      permits: {{base_url: "http://127.0.0.1:1/beta", token_env: BETA_TOKEN}}
  - id: gamma
    name: {{zh: 丙局, en: Gamma Bureau}}
    sources:
      docreview: {{base_url: "http://127.0.0.1:1/gamma", user_env: U, password_env: P}}
"""

PUBLISHED = """\
reports:
  - period: "2024"
    agency: beta
    title: 乙局2024年度报告
    figures:
      - {metric: enforcement.credit_rule_rate, value: "100%"}
      - {metric: enforcement.inspections, value: 7}
  - period: "2024"
    agency: all
    title: 全市2024年度报告
    figures:
      - {metric: docreview.filing_rate, value: "80%"}
"""

# (agency, metric): numerator, denominator, status, slipped since. The rollup of filing
# is 11 / 15 = 73.33%; the mean of the three rates would be 71.67%.
STATUSES = {
    ("alpha", FILING): (1, 4, "slipped", date(2024, 4, 5)),
    ("beta", FILING): (9, 10, "slipped", date(2024, 5, 2)),
    ("gamma", FILING): (1, 1, "met", None),
    ("alpha", CREDIT): (5, 5, "met", None),
    ("beta", CREDIT): (5, 5, "met", None),
    ("gamma", CREDIT): (0, 0, "no_data", None),
    ("default", FILING): (0, 3, "slipped", date(2024, 1, 1)),  # before agencies.yaml
}
ROLLUP = {FILING: (11, 15, "slipped"), CREDIT: (10, 10, "met")}


def _metric_row(agency, metric, period, as_of, num, den, status, kind="rate"):  # noqa: ANN001, ANN202
    p = Period.parse(period)
    value = None if den == 0 else num / den
    if kind == "count":
        value, num, den = float(num), None, None
    return {
        "agency_id": agency,
        "metric": metric,
        "period": period,
        "as_of": as_of,
        "period_kind": "year" if len(period) == 4 else "month",
        "period_start_on": p.start,
        "period_end_on": p.end,
        "metric_kind": kind,
        "value": value,
        "numerator": num,
        "denominator": den,
        "target": 1.0 if kind == "rate" else None,
        "status": status,
        "computed_by": "nightly",
        "computed_at": datetime(2024, 5, 20, 2, 0),
    }


def _populate(engine) -> None:  # noqa: ANN001
    now = datetime(2024, 5, 20, 2, 0)
    statuses = [
        {
            "agency_id": agency,
            "metric": metric,
            "period": PERIOD,
            "as_of": AS_OF,
            "value": None if den == 0 else num / den,
            "numerator": num,
            "denominator": den,
            "target": 1.0,
            "severity": "critical",
            "status": status,
            "offender_count": den - num,
            "slipped_since": since,
            "updated_at": now,
        }
        for (agency, metric), (num, den, status, since) in STATUSES.items()
    ]
    metrics = [
        _metric_row(a, m, PERIOD, AS_OF, n, d, s) for (a, m), (n, d, s, _) in STATUSES.items()
    ]
    metrics += [_metric_row("all", m, PERIOD, AS_OF, n, d, s) for m, (n, d, s) in ROLLUP.items()]
    # an older night and a later one: the report takes the newest up to its date
    metrics.append(_metric_row("all", FILING, PERIOD, date(2024, 5, 19), 1, 15, "slipped"))
    metrics.append(_metric_row("all", FILING, PERIOD, date(2024, 5, 21), 15, 15, "met"))
    metrics.append(
        _metric_row("beta", "enforcement.inspections", PERIOD, AS_OF, 5, 0, "info", "count")
    )
    for month, values in {"2024-04": (0, 2, 2), "2024-05": (1, 7, 1)}.items():
        for agency, num in zip(("alpha", "beta", "gamma"), values, strict=True):
            den = {"alpha": 2, "beta": 8, "gamma": 2}[agency]
            metrics.append(_metric_row(agency, FILING, month, AS_OF, num, den, "slipped"))
        metrics.append(_metric_row("all", FILING, month, AS_OF, sum(values), 12, "slipped"))
    offenders = [
        {
            "agency_id": "alpha",
            "metric": FILING,
            "period": PERIOD,
            "natural_key": k,
            "as_of": AS_OF,
            "reason": "not filed; deadline 2024-04-05 passed",
        }
        for k in HOSTILE_KEYS
    ]
    offenders.append({**offenders[0], "agency_id": "beta", "natural_key": "DOC-B-1"})
    runs = [
        ("alpha", "permits", "succeeded", None),
        ("beta", "permits", "failed", FAILED),
        ("gamma", "docreview", "succeeded", None),
    ]
    with engine.begin() as conn:
        conn.execute(insert(report_target_status), statuses)
        conn.execute(insert(report_metric), metrics)
        conn.execute(insert(report_offender), offenders)
        for n, (agency, source, status, error) in enumerate(runs):
            conn.execute(
                insert(sync_run).values(
                    sync_run_id=f"run-{n}",
                    job_id="job",
                    agency_id=agency,
                    source=source,
                    is_full_refresh=False,
                    started_at=datetime(2024, 5, 20, 1, n),
                    finished_at=datetime(2024, 5, 20, 1, n, 30),
                    status=status,
                    records_read=10 + n,
                    records_loaded=10 + n,
                    records_set_aside=0,
                    error=error,
                )
            )
        stream = {"permits": "permits.applications", "docreview": "docreview.documents"}
        conn.execute(
            insert(sync_state),
            [
                {
                    "agency_id": a,
                    "stream": stream[s],
                    "watermark_at": datetime(2024, 5, 19, n),
                    "updated_at": now,
                }
                for n, (a, s, _, _) in enumerate(runs)
            ],
        )


@pytest.fixture
def city(warehouse_url, tmp_path):  # noqa: ANN001, ANN201
    config = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, config)
    (config / "agencies.yaml").write_text(AGENCIES, encoding="utf-8")
    (config / "published.yaml").write_text(PUBLISHED, encoding="utf-8")
    settings = load_settings(
        {
            "RULEWATCH_CONFIG_DIR": str(config),
            "RULEWATCH_WAREHOUSE_URL": warehouse_url,
            "RULEWATCH_DATA_DIR": str(tmp_path / "data"),
        }
    )
    engine = open_warehouse(warehouse_url, calendar_of(settings))
    try:
        _populate(engine)
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
