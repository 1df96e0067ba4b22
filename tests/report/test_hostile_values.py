"""Nothing from a source executes anywhere (issue 12 §5) and what `check` points to
reads offline (issue 13 §6).

Hostile record keys and text (script and event-handler markup, formula starts,
control characters, a NUL) come from real HTTP sources through the real sync
into SQLite; then the real `rulewatch check` and `rulewatch report` commands run.
Headless Chromium, cut off the network, opens the HTML report, the checks page
and the Data Docs pages and finds no injected element; openpyxl finds no
formula cell; every CSV cell that starts like a formula is neutralised.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import clean_env, run_rulewatch
from hostile_sources import (
    AS_OF,
    CONTROL,
    FORMULAS,
    IMG,
    NUL_KEY,
    PERIOD,
    SCRIPT,
    hostile_warehouse,
)
from openpyxl import load_workbook
from report_browser import visit
from sqlalchemy import update

from rulewatch.checks.quality import run_quality_checks
from rulewatch.report.exports import FORMULA_STARTS
from rulewatch.report.tables import refresh_report_tables
from rulewatch.warehouse.schema import sync_run

#: What an older rulewatch stored from a server's error text (terminal escapes, a bell).
STORED_ERROR = "=1+1 docreview: HTTP 500: \x1b[2J\x07<script>window.__pwned='error'</script>"

#: Found in a page only if hostile markup became elements or ran.
INJECTED = {
    "pwned": "window.__pwned === undefined ? null : String(window.__pwned)",
    "handlers": "[...document.querySelectorAll('*')].filter(e => [...e.attributes]"
    ".some(a => a.name.startsWith('on') && a.value.includes('__pwned'))).length",
    "images": "document.querySelectorAll('img[src=\"x\"]').length",
    "source_scripts": "[...document.scripts].filter(s => s.text.includes('__pwned')).length",
    "text": "document.body.textContent",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Iterator[dict]:  # noqa: ANN001 - pytest fixture
    """The hostile warehouse, its data-quality run, `rulewatch check` and `rulewatch report`."""
    folder = tmp_path_factory.mktemp("hostile")
    url = f"sqlite:///{folder / 'warehouse.db'}"
    with hostile_warehouse(url, folder / "data") as (engine, settings, _runs):
        quality = run_quality_checks(engine, settings, job_id="hostile", as_of=AS_OF)
        refresh_report_tables(engine, settings, AS_OF, job_id="hostile")
        with engine.begin() as conn:
            conn.execute(
                update(sync_run)
                .where(sync_run.c.source == "docreview")
                .values(status="failed", error=STORED_ERROR)
            )
    env = clean_env(
        RULEWATCH_WAREHOUSE_URL=url,
        RULEWATCH_DATA_DIR=str(folder / "data"),
        RULEWATCH_PII_KEY="k",
        PREFECT_HOME=str(folder / "prefect"),
    )
    check = run_rulewatch(env, "check", "--period", PERIOD, "--as-of", AS_OF.isoformat())
    out = folder / "report"
    report = run_rulewatch(
        env, "report", "--period", PERIOD, "--as-of", AS_OF.isoformat(), "--out", str(out)
    )
    yield {
        "folder": folder,
        "check": check,
        "report": report,
        "out": out,
        "docs": folder / "data" / "data_docs",
        "quality": quality,
    }


def _inert(seen) -> None:  # noqa: ANN001 - a PageVisit
    assert seen.values["pwned"] is None
    assert seen.values["handlers"] == 0 and seen.values["images"] == 0
    assert seen.values["source_scripts"] == 0
    assert "<script>window.__pwned" in seen.values["text"]  # shown, as text


def _local_only(seen) -> None:  # noqa: ANN001 - a PageVisit
    outside = [u for u in seen.requests if not u.startswith(("file:", "data:"))]
    assert outside == []


def test_report_writes_every_file_whatever_the_characters(built) -> None:
    res = built["report"]
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    written = {Path(line).name for line in res.stdout.split() if line.strip()}
    assert {f"report-{PERIOD}.html", f"report-{PERIOD}.xlsx", f"offenders-{PERIOD}.csv"} <= written
    assert f"freshness-{PERIOD}.csv" in written


def test_no_formula_cell_from_source_data_in_xlsx(built) -> None:
    book = load_workbook(built["out"] / f"report-{PERIOD}.xlsx")
    texts = []
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and not _numeric(cell.value):
                    assert not cell.value.startswith(FORMULA_STARTS), cell.value
                    texts.append(cell.value)
    keys = {c.value for c in book["offenders"]["E"][1:]}
    # neutralised the OWASP way and still readable (XML reads a lone CR back as LF)
    assert {"'" + f.replace("\r", "\n") for f in FORMULAS} <= keys
    assert "ESC\\x1b[2J\\x07KEY" in keys and "NUL\\x00KEY" in keys  # control characters escaped
    assert any(t.startswith("'=1+1 docreview") for t in texts)  # the stored error too


def _numeric(value: str) -> bool:
    """A figure (``0.5``, ``-3``, ``+10.79%``): a number to a spreadsheet, not a formula."""
    return re.fullmatch(r"[+-]?\d[\d,]*(\.\d+)?(e[+-]?\d+)?%?", value) is not None


def test_no_cell_starts_a_formula_in_any_csv(built) -> None:
    paths = sorted(built["out"].glob("*.csv"))
    assert len(paths) == 4
    for path in paths:
        with path.open(encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f):
                for value in row.values():
                    if value and not _numeric(value):
                        assert not value.startswith(FORMULA_STARTS), (path.name, value)
    with (built["out"] / f"offenders-{PERIOD}.csv").open(encoding="utf-8-sig", newline="") as f:
        keys = {r["natural_key"] for r in csv.DictReader(f)}
    assert {"'" + f for f in FORMULAS} <= keys
    assert {SCRIPT, IMG} <= keys and CONTROL not in keys and NUL_KEY not in keys


def test_html_report_shows_hostile_values_as_text_offline(built, tmp_path) -> None:
    seen = visit(
        built["out"] / f"report-{PERIOD}.html", tmp_path / "profile", INJECTED, offline=True
    )
    _inert(seen)
    _local_only(seen)
    assert "=HYPERLINK" in seen.values["text"]


def test_check_points_to_an_offline_page_that_runs_nothing(built, tmp_path) -> None:
    res = built["check"]
    assert res.returncode == 0, res.stderr
    page = Path(res.stdout.rsplit("checks page: ", 1)[1].strip())
    assert page == built["docs"] / "checks.html"
    expressions = {
        **INJECTED,
        "slipped": "document.querySelector('tr[data-metric=\"docreview.filing_rate\"]').className",
        "keys": "[...document.querySelectorAll('tr[data-key]')].map(e => e.dataset.key)",
        "styled": "getComputedStyle(document.querySelector('th')).backgroundColor",
    }
    seen = visit(page, tmp_path / "profile", expressions, offline=True)
    _inert(seen)
    _local_only(seen)
    assert seen.requests == [page.resolve().as_uri()]  # the page alone: nothing else to load
    assert seen.errors == []
    assert seen.values["slipped"] == "slipped"
    shown = {SCRIPT, IMG, *(f.replace("\r", "\n") for f in FORMULAS)}  # HTML reads CR as LF
    assert shown <= set(seen.values["keys"])  # the offenders, as text
    assert "P-SCRIPT" in seen.values["keys"]  # the failed warning-level expectation's rows
    assert seen.values["styled"] == "rgb(244, 244, 244)"  # inline styles apply offline


def test_data_docs_keep_source_markup_inert(built, tmp_path) -> None:
    docs = built["docs"]
    pages = [p for p in docs.rglob("*.html") if p.name != "checks.html"]
    quality = [p for p in pages if "quality.permits.applications" in p.name]
    assert quality, "the permits data-quality page lists the failing credit codes"
    for path in pages:
        text = path.read_text(encoding="utf-8")
        assert "<script>window.__pwned" not in text and 'onerror="window' not in text, path
    seen = visit(quality[0], tmp_path / "profile", INJECTED, offline=True)
    _inert(seen)
