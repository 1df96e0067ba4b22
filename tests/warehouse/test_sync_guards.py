"""A misbehaving source fails its sync cleanly; what it said is stored cleaned and capped.

On SQLite and PostgreSQL: ``sync_run.error`` holds one plain line, never the
server's escapes, NUL or kilobytes; the pages read before the failure stay
loaded, and the other sources are untouched.
"""

from __future__ import annotations

import sys
import threading
import time

import pytest
from scripted_sources import ScriptedSource, inspection_record
from sqlalchemy import select

from rulewatch.common.workdays import WorkingCalendar
from rulewatch.config.settings import load_settings
from rulewatch.extract.engine import SourceError
from rulewatch.warehouse import sync
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


def _reader_waits_to_hand_over(deadline_s: float = 30.0) -> bool:
    """Whether a stream's reader thread is (or comes within the safety net to be)
    blocked handing over a page, i.e. waiting for the loader to take pages."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        frames = sys._current_frames()
        for thread in threading.enumerate():
            frame = frames.get(thread.ident) if thread.name.startswith("read-") else None
            names = []
            while frame is not None:
                names.append(frame.f_code.co_name)
                frame = frame.f_back
            if names[:2] == ["wait", "_put"]:
                return True
        time.sleep(0.01)
    return False


def test_the_reader_runs_a_batch_ahead_of_the_loading_and_no_further(
    sqlite_url, tmp_path, monkeypatch
):
    """While a batch is written the next one is read and parsed, but the pages waiting
    never hold more than a batch's records: memory stays bounded by the batch size."""
    monkeypatch.setattr(sync, "MAX_ROWS_PER_TRANSACTION", 4)  # 2 pages of 2 records
    seen: list[int] = []

    def hold_the_loader_at_the_first_page(progress):  # noqa: ANN001, ANN202
        if not seen:
            assert _reader_waits_to_hand_over()
            seen.append(len(source.queries))

    with ScriptedSource("enforcement", [inspection_record(i) for i in range(10)]) as source:
        settings = _settings(source, sqlite_url, tmp_path)
        engine = open_warehouse(sqlite_url, WorkingCalendar.from_lists([], []))
        try:
            result = sync_source(
                engine, settings, "enforcement", progress=hold_the_loader_at_the_first_page
            )
            with engine.connect() as conn:
                loaded = conn.execute(select(inspection.c.inspection_no)).scalars().all()
        finally:
            engine.dispose()
    # page 1 loaded; pages 2 and 3 waiting (4 records); page 4 read, waiting for room
    assert seen == [4]
    assert result.status == "succeeded" and len(set(loaded)) == len(loaded) == 10


def test_a_load_failure_is_raised_without_waiting_for_the_page_read_ahead(sqlite_url, tmp_path):
    """The next page is read while one loads; when loading fails, the request in flight
    is cut off (not waited for: this one would hang until the server's hold ends)."""
    held, ended_by_timeout = threading.Event(), []

    def hold_the_third(n, _path, _query):  # noqa: ANN001, ANN202
        if n == 3:
            ended_by_timeout.append(not held.wait(30))  # a safety net, not a timing
        return None

    class Killed(Exception):
        pass

    def kill_at_the_first_page(_progress):  # noqa: ANN001, ANN202
        raise Killed

    with ScriptedSource("enforcement", [inspection_record(i) for i in range(9)]) as source:
        source.misbehave = hold_the_third
        settings = _settings(source, sqlite_url, tmp_path)
        object.__setattr__(settings.sources.enforcement, "max_retries", 0)
        engine = open_warehouse(sqlite_url, WorkingCalendar.from_lists([], []))
        try:
            with pytest.raises(Killed):
                sync_source(engine, settings, "enforcement", progress=kill_at_the_first_page)
            held.set()
        finally:
            engine.dispose()
    assert not [t for t in threading.enumerate() if t.name.startswith("read-")]
    assert ended_by_timeout in ([], [False])
