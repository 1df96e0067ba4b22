"""A misbehaving source fails its sync cleanly; what it said is stored cleaned and capped.

On SQLite and PostgreSQL: ``sync_run.error`` holds one plain line, never the
server's escapes, NUL or kilobytes; the pages read before the failure stay
loaded, and the other sources are untouched.
"""

from __future__ import annotations

import pytest
from scripted_sources import ScriptedSource, inspection_record
from sqlalchemy import select

from rulewatch.common.workdays import WorkingCalendar
from rulewatch.config.settings import load_settings
from rulewatch.extract.engine import SourceError
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.schema import inspection, sync_run
from rulewatch.warehouse.sync import MAX_ERROR_TEXT, sync_source

HOSTILE = "\x1b[2J\x1b[31mboom\x00" + "\x00x" * 2500 + "\u202e"


def _settings(source: ScriptedSource, url: str, tmp_path):  # noqa: ANN001
    env = {
        "RULEWATCH_ENFORCEMENT_URL": source.url,
        "RULEWATCH_ENFORCEMENT_API_KEY": "k",
        "RULEWATCH_WAREHOUSE_URL": url,
        "RULEWATCH_DATA_DIR": str(tmp_path),
        "RULEWATCH_PII_KEY": "test-key",
    }
    settings = load_settings(env)
    opts = settings.sources.enforcement
    for key, value in {"max_retries": 2, "backoff_factor": 0.0, "page_size": 2}.items():
        object.__setattr__(opts, key, value)
    return settings


def test_server_error_text_is_stored_clean_and_capped(warehouse_url, tmp_path):
    with ScriptedSource("enforcement", [inspection_record(i) for i in range(5)]) as source:
        # two pages load, then the server fails for good with a hostile error text
        source.misbehave = lambda n, _p, _q: (503, {"error": HOSTILE}, {}) if n > 2 else None
        settings = _settings(source, warehouse_url, tmp_path)
        engine = open_warehouse(warehouse_url, WorkingCalendar.from_lists([], []))
        try:
            with pytest.raises(SourceError) as caught:
                sync_source(engine, settings, "enforcement")
            with engine.connect() as conn:
                (run,) = conn.execute(select(sync_run)).all()
                loaded = conn.execute(select(inspection.c.inspection_no)).scalars().all()
        finally:
            engine.dispose()
    assert run.status == "failed" and run.error == str(caught.value)
    assert run.error.startswith("enforcement: HTTP 503 from http://127.0.0.1:")
    assert ": boom x x x" in run.error and "… (after 3 tries over" in run.error  # capped
    assert len(run.error) <= MAX_ERROR_TEXT
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c == "\u202e" for c in run.error)
    assert sorted(loaded) == ["K0", "K1", "K2"]  # what came before the failure stays
