"""Sync end to end against the real demo servers, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from rulewatch.common.periods import Period
from rulewatch.config.settings import load_settings
from rulewatch.demo.data import DEMO_TODAY
from rulewatch.demo.servers import Faults, start_demo_sources
from rulewatch.extract.engine import SourceAuthError, SourceError
from rulewatch.flows.nightly import calendar_of
from rulewatch.metrics.compute import compute_metrics
from rulewatch.warehouse import sync
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.schema import (
    document,
    inspection,
    landed_record,
    officer,
    permit_application,
    quarantined_record,
    sync_run,
    sync_state,
)
from rulewatch.warehouse.sync import sync_source

SOURCES = ("permits", "enforcement", "docreview")
FAST_RETRIES = {"max_retries": 4, "backoff_factor": 0.0}


def _settings(demo, url, tmp_path, **overrides):
    env = {**demo.env(), "RULEWATCH_WAREHOUSE_URL": url, "RULEWATCH_DATA_DIR": str(tmp_path)}
    env["RULEWATCH_PII_KEY"] = "test-key"
    settings = load_settings(env)
    for name in SOURCES:
        opts = getattr(settings.sources, name)
        for k, v in {**FAST_RETRIES, **overrides}.items():
            object.__setattr__(opts, k, v)
    return settings


def _sync_all(engine, settings, **kw):
    return {s: sync_source(engine, settings, s, **kw) for s in SOURCES}


def _snapshot(engine):
    """Everything a re-run must leave unchanged."""
    with engine.connect() as conn:
        return {
            t.name: sorted(map(tuple, conn.execute(select(t)).all()), key=repr)
            for t in (
                permit_application,
                inspection,
                officer,
                document,
                landed_record,
                quarantined_record,
            )
        }


def _scorecard(engine, settings, period="2023", as_of=DEMO_TODAY):
    with engine.connect() as conn:
        return {
            m.metric: m
            for m in compute_metrics(conn, Period.parse(period), as_of, settings.targets)
        }


@pytest.fixture
def demo():
    with start_demo_sources() as handle:
        yield handle


def test_demo_sync_reproduces_the_seed(demo, warehouse_url, tmp_path):
    settings = _settings(demo, warehouse_url, tmp_path)
    engine = open_warehouse(warehouse_url, calendar_of(settings))
    results = _sync_all(engine, settings)
    assert all(r.status == "succeeded" for r in results.values())
    m = _scorecard(engine, settings)
    assert (m["permits.received"].value, m["permits.approved"].value) == (606, 593)
    assert m["permits.denied"].value == 13
    assert m["permits.received_yoy"].value == pytest.approx(59 / 547)
    assert m["permits.received_yoy"].denominator == 547
    assert m["enforcement.certified_officers"].value == 13
    assert m["enforcement.auxiliary_staff"].value == 6
    assert m["docreview.normative_issued"].value == 3
    assert m["docreview.contracts_reviewed"].value == 40
    assert m["docreview.repealed"].value == 1
    assert [k for k, v in m.items() if v.status == "slipped"] == []
    m24 = _scorecard(engine, settings, "2024")
    assert m24["docreview.filing_rate"].status == "slipped"
    engine.dispose()


def test_second_sync_changes_nothing_and_reads_only_the_boundary(demo, warehouse_url, tmp_path):
    settings = _settings(demo, warehouse_url, tmp_path)
    engine = open_warehouse(warehouse_url, calendar_of(settings))
    first = _sync_all(engine, settings)
    before = _snapshot(engine)
    second = _sync_all(engine, settings)
    assert _snapshot(engine) == before
    for name in SOURCES:
        assert second[name].records_read < first[name].records_read
    assert second["permits"].requests == 1
    assert second["docreview"].requests == 1
    assert second["enforcement"].requests == 2  # boundary page + the roster
    engine.dispose()


def test_a_change_between_syncs_arrives_and_only_it_is_reread(demo, sqlite_url, tmp_path):
    settings = _settings(demo, sqlite_url, tmp_path)
    engine = open_warehouse(sqlite_url, calendar_of(settings))
    _sync_all(engine, settings)
    doc_id = demo.due_soon_doc_id if hasattr(demo, "due_soon_doc_id") else None
    with engine.connect() as conn:
        doc_id = (
            doc_id
            or conn.execute(
                select(document.c.doc_id).where(
                    document.c.doc_type == "normative_document",
                    document.c.is_filed.is_(False),
                    document.c.filing_deadline_on >= DEMO_TODAY,
                )
            ).scalar_one()
        )
    demo.mutate(
        "docreview",
        doc_id,
        filing={
            "filed": True,
            "filed_on": "2024-05-19",
            "deadline": "2024-05-23",
            "accepted": None,
            "issues": [],
        },
    )
    result = sync_source(engine, settings, "docreview")
    assert result.records_read <= 3  # the boundary record(s) and the change
    with engine.connect() as conn:
        row = conn.execute(select(document).where(document.c.doc_id == doc_id)).one()
    assert row.is_filed is True and row.filed_on == date(2024, 5, 19)
    engine.dispose()


def test_faults_are_retried(warehouse_url, tmp_path):
    faults = Faults(script=["429", "503", "drop", "502"], retry_after=0)
    with start_demo_sources(faults={s: faults for s in SOURCES}) as demo:
        settings = _settings(demo, warehouse_url, tmp_path)
        engine = open_warehouse(warehouse_url, calendar_of(settings))
        results = _sync_all(engine, settings)
        assert all(r.status == "succeeded" for r in results.values())
        assert _scorecard(engine, settings)["permits.received"].value == 606
        engine.dispose()


def test_a_source_that_keeps_failing_fails_its_sync_only(sqlite_url, tmp_path):
    faults = Faults(script=["503"] * 50, retry_after=0)
    with start_demo_sources(faults={"enforcement": faults}) as demo:
        settings = _settings(demo, sqlite_url, tmp_path, max_retries=2)
        engine = open_warehouse(sqlite_url, calendar_of(settings))
        with pytest.raises(SourceError, match="enforcement"):
            sync_source(engine, settings, "enforcement")
        assert sync_source(engine, settings, "permits").status == "succeeded"
        with engine.connect() as conn:
            statuses = dict(conn.execute(select(sync_run.c.source, sync_run.c.status)).all())
        assert statuses == {"enforcement": "failed", "permits": "succeeded"}
        engine.dispose()


def test_wrong_credentials_fail_fast_naming_the_source(demo, sqlite_url, tmp_path):
    settings = _settings(demo, sqlite_url, tmp_path)
    settings.env["RULEWATCH_PERMITS_TOKEN"] = "wrong"
    engine = open_warehouse(sqlite_url, calendar_of(settings))
    with pytest.raises(SourceAuthError, match="permits: 401.*RULEWATCH_PERMITS_TOKEN"):
        sync_source(engine, settings, "permits")
    engine.dispose()


def test_malformed_records_are_set_aside_and_count_nowhere(warehouse_url, tmp_path):
    with start_demo_sources(malformed=3) as demo:
        settings = _settings(demo, warehouse_url, tmp_path)
        engine = open_warehouse(warehouse_url, calendar_of(settings))
        results = _sync_all(engine, settings)
        assert sum(r.records_set_aside for r in results.values()) >= 9
        m = _scorecard(engine, settings)
        assert m["permits.received"].value == 606
        assert m["enforcement.certified_officers"].value == 13
        with engine.connect() as conn:
            reasons = conn.execute(select(quarantined_record.c.reason)).scalars().all()
        assert reasons and all(reasons)
        engine.dispose()


def test_kill_midway_then_rerun_loses_and_duplicates_nothing(demo, sqlite_url, tmp_path):
    settings = _settings(demo, sqlite_url, tmp_path, page_size=50)
    engine = open_warehouse(sqlite_url, calendar_of(settings))

    class Killed(Exception):
        pass

    def kill_after_three_pages(p):
        if p.pages == 3:
            raise Killed

    with pytest.raises(Killed):
        sync_source(engine, settings, "permits", progress=kill_after_three_pages)
    with engine.connect() as conn:
        partial = conn.execute(select(func.count()).select_from(permit_application)).scalar()
        assert conn.execute(select(sync_state.c.watermark_at)).scalar() is not None
    assert 0 < partial < 606 + 547
    sync_source(engine, settings, "permits")
    reference = open_warehouse(f"sqlite:///{tmp_path / 'ref.db'}", calendar_of(settings))
    sync_source(reference, settings, "permits")

    def rows(eng):  # every column but the run that wrote the row
        cols = [c for c in permit_application.c if c.name != "sync_run_id"]
        with eng.connect() as conn:
            return sorted(map(tuple, conn.execute(select(*cols)).all()))

    assert rows(engine) == rows(reference)
    engine.dispose()
    reference.dispose()


def test_records_changing_mid_sync_are_not_lost(demo, sqlite_url, tmp_path, monkeypatch):
    """Page numbers: a record that changes moves to the end and the next slides back.

    The change comes while pages are still to be read: with batches of one page of
    5 records, the reader runs at most two pages ahead of the page loaded (one
    waiting, one being read), so when page 2 is committed it has read at most
    page 4 of the 8 that 38 inspections make.
    """
    monkeypatch.setattr(sync, "MAX_ROWS_PER_TRANSACTION", 5)
    settings = _settings(demo, sqlite_url, tmp_path, page_size=5)
    engine = open_warehouse(sqlite_url, calendar_of(settings))
    moved = []

    def change_a_record_already_read(p):
        if p.stream == "enforcement.inspections" and p.pages == 2 and not moved:
            with engine.connect() as conn:
                key = conn.execute(select(inspection.c.inspection_no).limit(1)).scalar_one()
            demo.mutate("enforcement", key, outcome="penalized")
            moved.append(key)

    sync_source(engine, settings, "enforcement", progress=change_a_record_already_read)
    reference = open_warehouse(f"sqlite:///{tmp_path / 'ref.db'}", calendar_of(settings))
    sync_source(reference, settings, "enforcement")
    with engine.connect() as a, reference.connect() as b:
        keys_a = set(a.execute(select(inspection.c.inspection_no)).scalars())
        keys_b = set(b.execute(select(inspection.c.inspection_no)).scalars())
        assert keys_a == keys_b
        outcome = a.execute(
            select(inspection.c.outcome).where(inspection.c.inspection_no == moved[0])
        ).scalar_one()
    assert outcome == "penalized"
    engine.dispose()
    reference.dispose()
