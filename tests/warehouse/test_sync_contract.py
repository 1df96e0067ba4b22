"""Sync against servers that follow source-apis.md: change logs, deletions, departures.

The demo systems serve either a current state or a change log (every version);
both are valid feeds and must give the same figures. A deleted document and an
officer who left the roster leave every figure, and their history stays.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from scripted_sources import ScriptedSource
from sqlalchemy import Engine, func, select

from rulewatch.common.periods import Period
from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import Settings, load_settings
from rulewatch.demo import data
from rulewatch.demo.servers import DemoSources, start_demo_sources
from rulewatch.metrics.compute import MetricValue, compute_metrics
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.schema import document, inspection, landed_record, officer
from rulewatch.warehouse.sync import sync_source

SOURCES = ("permits", "enforcement", "docreview")


def settings_for(env: dict[str, str], url: str, tmp_path, page_size: int | None = None) -> Settings:  # noqa: ANN001
    env = {**env, "RULEWATCH_WAREHOUSE_URL": url, "RULEWATCH_DATA_DIR": str(tmp_path)}
    settings = load_settings({**env, "RULEWATCH_PII_KEY": "test-key"})
    for name in SOURCES:
        opts = getattr(settings.sources, name)
        object.__setattr__(opts, "max_retries", 1)
        object.__setattr__(opts, "backoff_factor", 0.0)
        if page_size is not None:
            object.__setattr__(opts, "page_size", page_size)
    return settings


def warehouse(settings: Settings) -> Engine:
    return open_warehouse(settings.warehouse_url, calendar_of(settings))


def scorecard(engine: Engine, settings: Settings, period: str = "2023") -> dict[str, MetricValue]:
    with engine.connect() as conn:
        values = compute_metrics(conn, Period.parse(period), data.DEMO_TODAY, settings.targets)
    return {m.metric: m for m in values}


def figures(card: dict[str, MetricValue]) -> dict[str, tuple]:
    return {k: (m.value, m.numerator, m.denominator, m.status) for k, m in card.items()}


@pytest.fixture
def demo() -> Iterator[DemoSources]:
    with start_demo_sources() as handle:
        yield handle


def test_a_change_log_feed_gives_the_same_figures(warehouse_url, tmp_path) -> None:  # noqa: ANN001
    results = {}
    for mode in (False, True):
        with start_demo_sources(change_log=mode) as handle:
            url = warehouse_url if mode else f"sqlite:///{tmp_path / 'current.db'}"
            settings = settings_for(handle.env(), url, tmp_path)
            engine = warehouse(settings)
            for name in SOURCES:
                sync_source(engine, settings, name)
            results[mode] = {p: figures(scorecard(engine, settings, p)) for p in ("2023", "2024")}
            engine.dispose()
    assert results[True] == results[False]
    assert results[True]["2023"]["permits.received"][0] == 606


def test_deleted_documents_and_departed_officers_leave_every_figure(
    demo: DemoSources, sqlite_url: str, tmp_path
) -> None:  # noqa: ANN001
    settings = settings_for(demo.env(), sqlite_url, tmp_path)
    engine = warehouse(settings)
    for name in SOURCES:
        sync_source(engine, settings, name)
    before = scorecard(engine, settings)
    assert before["docreview.repealed"].value == 1
    certified = data.OFFICER_WITHOUT_EXPIRY  # certified, never expires
    demo.delete_document(data.REPEALED_DOC_ID)
    demo.remove_officer(certified)
    sync_source(engine, settings, "docreview")
    sync_source(engine, settings, "enforcement")
    after = scorecard(engine, settings)
    assert after["docreview.repealed"].value == 0
    assert after["enforcement.certified_officers"].value == (
        before["enforcement.certified_officers"].value - 1
    )
    with engine.connect() as conn:
        gone = conn.execute(select(document).where(document.c.doc_id == data.REPEALED_DOC_ID)).one()
        left = conn.execute(select(officer).where(officer.c.officer_id == certified)).one()
        versions = conn.execute(
            select(func.count()).where(landed_record.c.natural_key == data.REPEALED_DOC_ID)
        ).scalar()
    assert gone.is_deleted is True and gone.status == "repealed"  # the history stays
    assert left.is_active is False and left.left_at is not None
    assert versions == 2
    engine.dispose()


def inspection_record(key: str, modified: str) -> dict:
    return {
        "inspection_no": key,
        "task_type": "double_random",
        "joint": False,
        "target_credit_code": "91331000MA2XXXXXXX",
        "target_name": "某公司",
        "credit_risk_level": "A",
        "credit_rule_applied": True,
        "inspected_on": "2023-05-05",
        "officers": [{"officer_id": "ZF-1", "certified": True}] * 2,
        "outcome": "compliant",
        "published": False,
        "published_on": None,
        "modified": modified,
    }


def test_a_record_moving_mid_sync_is_not_lost_for_the_next_sync(sqlite_url: str, tmp_path) -> None:  # noqa: ANN001
    """Seven inspections share one change time; one changes while the block is paged."""
    records = [inspection_record(f"K{i}", "2024-01-02 10:00:00") for i in range(1, 8)]
    with ScriptedSource("enforcement", records) as source:
        source.roster = [{"officer_id": "ZF-1", "name": "王", "role": "officer", "certified": True}]
        env = {"RULEWATCH_ENFORCEMENT_URL": source.url, "RULEWATCH_ENFORCEMENT_API_KEY": "k"}
        settings = settings_for(env, sqlite_url, tmp_path, page_size=3)
        engine = warehouse(settings)
        source.hooks[3] = lambda: source.change(
            "K1", modified="2024-01-02 11:00:00", outcome="penalized"
        )
        sync_source(engine, settings, "enforcement")
        sync_source(engine, settings, "enforcement")
        with engine.connect() as conn:
            rows = dict(
                conn.execute(select(inspection.c.inspection_no, inspection.c.outcome)).all()
            )
        assert set(rows) == {f"K{i}" for i in range(1, 8)}
        assert rows["K1"] == "penalized"
        card = scorecard(engine, settings)
        assert card["enforcement.inspections"].value == 7
        assert card["enforcement.certified_officer_rate"].denominator == 7
        engine.dispose()
