"""A warehouse loaded from real HTTP sources whose text fields are hostile.

Record keys and text a spreadsheet would run as formulas, HTML that would run as
script, and control characters, served by ``scripted_sources`` through the real
sync. Tests of every place that shows source text (HTML report, CSV and XLSX,
Data Docs, the checks page) build on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path

from scripted_sources import ScriptedSource
from sqlalchemy import Engine

from rulewatch.config.settings import Settings, load_settings
from rulewatch.flows.nightly import calendar_of
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.sync import sync_source

AS_OF = date(2023, 12, 29)
PERIOD = "2023"
MS = 1_690_000_000_000

#: Markup that sets ``window.__pwned`` (or adds an element) if it ever runs.
SCRIPT = "<script>window.__pwned='script'</script>"
IMG = "<img src=x onerror=\"window.__pwned='img'\">"
#: Formula starts (OWASP's list) and a control character (ANSI "clear screen").
FORMULAS = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(1)", "\tTAB", "\rCR"]
CONTROL = "ESC\x1b[2J\x07KEY"
NUL_KEY = "NUL\x00KEY"  # stored as it is on SQLite (PostgreSQL sets it aside)

HOSTILE_DOC_IDS = [SCRIPT, IMG, *FORMULAS, CONTROL, NUL_KEY]


def _document(doc_id: str, n: int, **fields: object) -> dict:
    """A normative document issued in March 2023 and never filed: a filing_rate offender."""
    return {
        "doc_id": doc_id,
        "title": SCRIPT + " 文件",
        "doc_type": "normative_document",
        "drafting_unit": IMG,
        "issued_on": "2023-03-01",
        "legality_reviewed": True,
        "legality_reviewed_on": "2023-02-20",
        "fair_competition_reviewed": None,
        "filing": {
            "filed": False,
            "filed_on": None,
            "deadline": "2023-03-31",
            "accepted": None,
            "issues": [],
        },
        "status": "in_force",
        "status_changed_on": None,
        "last_modified_ms": MS + n * 1000,
        **fields,
    }


def application(
    key: str, n: int, promised_days: int = 20, code: str = "91110000600037341L"
) -> dict:
    """A permit received in May 2023 (``n`` orders the change times)."""
    return {
        "application_id": key,
        "received_at": "2023-05-04T09:00:00+08:00",
        "decided_at": None,
        "status": "under_review",
        "permit_type": "new",
        "category": "A",
        "employer_credit_code": code,
        "employer_name": SCRIPT,
        "applicant": {"name": IMG, "passport_no": "E1234567", "nationality": "FRA"},
        "joint_residence_permit": False,
        "promised_days": promised_days,
        "updated_at": f"2023-05-04T09:00:{n:02d}+08:00",
    }


DOCUMENTS = [_document(k, n) for n, k in enumerate(HOSTILE_DOC_IDS)]
DOCUMENTS.append(_document("FILED-OK", 50, filing=None, doc_type="other"))
APPLICATIONS = [
    # employer credit codes that fail the warning-level 18-character check
    application("P-SCRIPT", 1, code=SCRIPT),
    application("P-IMG", 2, code=IMG),
    application("=1+1", 3, code="=cmd|' /C calc'!A0"),
]


@contextmanager
def hostile_warehouse(url: str, folder: Path) -> Iterator[tuple[Engine, Settings, list[str]]]:
    """``url`` loaded from hostile permits and docreview servers; yields the engine,
    the settings (data dir ``folder``) and the sync run ids."""
    with ExitStack() as stack:
        docs = stack.enter_context(ScriptedSource("docreview", DOCUMENTS))
        permits = stack.enter_context(ScriptedSource("permits", APPLICATIONS))
        env = {
            "RULEWATCH_DOCREVIEW_URL": docs.url,
            "RULEWATCH_DOCREVIEW_USER": "u",
            "RULEWATCH_DOCREVIEW_PASSWORD": "p",
            "RULEWATCH_PERMITS_URL": permits.url,
            "RULEWATCH_PERMITS_TOKEN": "t",
            "RULEWATCH_WAREHOUSE_URL": url,
            "RULEWATCH_DATA_DIR": str(folder),
            "RULEWATCH_PII_KEY": "k",
        }
        settings = load_settings(env)
        engine = open_warehouse(url, calendar_of(settings))
        stack.callback(engine.dispose)
        runs = [
            sync_source(engine, settings, s, job_id="hostile").sync_run_id
            for s in ("docreview", "permits")
        ]
        yield engine, settings, runs
