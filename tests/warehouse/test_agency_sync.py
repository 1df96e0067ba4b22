"""Two agencies in one warehouse, on SQLite and PostgreSQL (issue 16).

The agencies come from an ``agencies.yaml`` and ``settings_for``; their sources
are the real demo servers of ``rulewatch.demo.agencies`` (agency 0 the seed
bureau, agency 1 the same world with a few changes), so most of their natural
keys and payloads are byte-identical: each agency must still land every record,
hold its own current state and watermarks, and a refresh or soft delete of one
must never touch the other's rows.
"""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, Table, func, select

from rulewatch.common.workdays import calendar_of
from rulewatch.config.agencies import load_agencies, settings_for
from rulewatch.config.settings import PACKAGE_CONFIG_DIR, Settings, load_settings
from rulewatch.demo.agencies import AgencySources, demo_agencies, start_agency_sources
from rulewatch.demo.data import MISSED_FILING_DOC_ID
from rulewatch.flows.nightly import locked_warehouse
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.schema import (
    CORE_TABLES,
    document,
    inspection,
    landed_record,
    officer,
    permit_application,
    quarantined_record,
    sync_run,
    sync_state,
)
from rulewatch.warehouse.sync import SourceSyncResult, sync_source

SYSTEMS = ("permits", "enforcement", "docreview")
ROW_TABLES = (
    permit_application,
    inspection,
    officer,
    document,
    landed_record,
    quarantined_record,
    sync_state,
)


@pytest.fixture
def sources() -> Iterator[AgencySources]:
    with start_agency_sources(demo_agencies(2, failing=False)) as handle:
        yield handle


def city_settings(sources: AgencySources, url: str, folder: Path) -> dict[str, Settings]:
    """Each agency's settings, as a city deployment reads them (agencies.yaml, settings_for)."""
    config = folder / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, config)
    (config / "agencies.yaml").write_text(sources.agencies_yaml(), encoding="utf-8")
    env = {
        **sources.env(),
        "RULEWATCH_CONFIG_DIR": str(config),
        "RULEWATCH_WAREHOUSE_URL": url,
        "RULEWATCH_DATA_DIR": str(folder / "data"),
        "RULEWATCH_PII_KEY": "test-key",
    }
    settings = load_settings(env)
    agencies = load_agencies(settings)
    return {a.agency_id: settings_for(settings, agencies, a) for a in agencies}


def sync_agency(engine: Engine, settings: Settings, **kw) -> dict[str, SourceSyncResult]:  # noqa: ANN003
    return {s: sync_source(engine, settings, s, **kw) for s in SYSTEMS}


def rows_of(engine: Engine, agency_id: str) -> dict[str, list[tuple]]:
    """Every row an agency holds in the tables a sync writes, in a stable order."""
    with engine.connect() as conn:
        return {
            t.name: sorted(
                map(tuple, conn.execute(select(t).where(t.c.agency_id == agency_id)).all()),
                key=repr,
            )
            for t in ROW_TABLES
        }


def count(engine: Engine, table: Table, agency_id: str, *where) -> int:  # noqa: ANN002
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(table).where(table.c.agency_id == agency_id, *where)
        ).scalar_one()


def landed_hashes(engine: Engine, agency_id: str) -> Counter:
    with engine.connect() as conn:
        return Counter(
            conn.execute(
                select(landed_record.c.stream, landed_record.c.record_hash).where(
                    landed_record.c.agency_id == agency_id
                )
            ).all()
        )


def assert_loaded_whole(
    engine: Engine, sources: AgencySources, agency_id: str, results: dict[str, SourceSyncResult]
) -> None:
    """The agency's every record landed and its current state is its world's."""
    assert all(r.status == "succeeded" for r in results.values())
    assert count(engine, landed_record, agency_id) == sum(
        r.records_loaded for r in results.values()
    )
    world = sources.worlds[agency_id]
    served = {  # one current-state row per key served, a deleted one (tombstone) too
        permit_application: world.store("permits").live_count,
        inspection: world.store("enforcement").live_count,
        document: world.store("docreview").live_count,
    }
    for table, expected in served.items():
        assert count(engine, table, agency_id) == expected, table.name
    active = officer.c.is_active.is_(True)
    assert count(engine, officer, agency_id, active) == len(world.roster.officers())
    with engine.connect() as conn:
        runs = conn.execute(
            select(sync_run.c.sync_run_id).where(sync_run.c.agency_id == agency_id)
        ).scalars()
        assert {r.sync_run_id for r in results.values()} <= set(runs)


def test_two_agencies_load_side_by_side_and_never_touch_each_other(
    sources, warehouse_url, tmp_path
):
    city = city_settings(sources, warehouse_url, tmp_path)
    a, b = city  # the seed bureau, and a department with a few records changed
    engine = open_warehouse(warehouse_url, calendar_of(city[a]))
    try:
        first_a = sync_agency(engine, city[a])
        with engine.connect() as conn:
            keyed = conn.execute(select(sync_state.c.agency_id, sync_state.c.stream)).all()
        assert {agency for agency, _ in keyed} == {a}  # B has read nothing: no watermark
        assert count(engine, sync_run, a) == 3 and count(engine, sync_run, b) == 0

        first_b = sync_agency(engine, city[b])
        assert first_b["permits"].records_read > first_a["permits"].records_read  # extra permits
        assert first_b["permits"].requests == first_a["permits"].requests  # read from the start
        for agency, results in ((a, first_a), (b, first_b)):
            assert_loaded_whole(engine, sources, agency, results)
        # byte-identical payloads of the two agencies both landed, none taken for a duplicate
        shared = landed_hashes(engine, a) & landed_hashes(engine, b)
        assert sum(shared.values()) > 0.9 * count(engine, landed_record, a)
        for table in CORE_TABLES.values():  # same keys, one current-state row each
            assert count(engine, table, b) >= count(engine, table, a) > 0

        # A's second sync reads incrementally; B's watermarks and rows stay as they were
        b_rows, b_requests = rows_of(engine, b), dict(sources.request_counts[b])
        again = sync_agency(engine, city[a])
        assert again["permits"].requests == 1 and again["docreview"].requests == 1
        assert again["enforcement"].requests == 2  # boundary page + the roster
        assert sum(r.records_read for r in again.values()) < sum(
            r.records_read for r in first_a.values()
        )

        # A full refresh of A, an officer leaving A and a document deleted in A
        gone_officer = sources.worlds[a].roster.officers()[0]["officer_id"]
        sources.worlds[a].remove_officer(gone_officer)
        sources.worlds[a].delete_document(MISSED_FILING_DOC_ID)
        refreshed = sync_agency(engine, city[a], full_refresh=True)
        assert refreshed["permits"].records_read == first_a["permits"].records_read
        assert refreshed["enforcement"].departed == 1
        with engine.connect() as conn:
            left = conn.execute(
                select(officer.c.agency_id, officer.c.is_active).where(
                    officer.c.officer_id == gone_officer
                )
            ).all()
            deleted = conn.execute(
                select(document.c.agency_id, document.c.is_deleted).where(
                    document.c.doc_id == MISSED_FILING_DOC_ID
                )
            ).all()
        assert dict(left) == {a: False, b: True}
        assert dict(deleted) == {a: True, b: False}
        assert rows_of(engine, b) == b_rows
        assert sources.request_counts[b] == b_requests

        # and B's own next sync still reads from its own watermarks: incrementally
        b_again = sync_agency(engine, city[b])
        assert b_again["permits"].requests == 1 and b_again["enforcement"].departed == 0
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_two_agencies_load_at_once_on_postgresql(sources, pg_url, tmp_path):
    """Each agency's job holds its own lock; both are inside at once and load in parallel."""
    city = city_settings(sources, pg_url, tmp_path)
    # the schema made first: the first job would otherwise migrate it under the
    # warehouse-wide lock, which the other, not waiting (0 s), would find taken
    open_warehouse(pg_url, calendar_of(next(iter(city.values())))).dispose()
    both_inside = threading.Barrier(len(city), timeout=120)
    results: dict[str, dict[str, SourceSyncResult]] = {}
    errors: list[BaseException] = []

    def job(settings: Settings) -> None:
        try:
            with locked_warehouse(settings, "sync", 0) as engine:
                both_inside.wait()  # the other agency's job holds its lock right now
                results[settings.agency_id] = sync_agency(engine, settings)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
            both_inside.abort()

    threads = [threading.Thread(target=job, args=(s,)) for s in city.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    engine = open_warehouse(pg_url, calendar_of(next(iter(city.values()))))
    try:
        for agency, agency_results in results.items():
            assert_loaded_whole(engine, sources, agency, agency_results)
        assert set(results) == set(city)
    finally:
        engine.dispose()
