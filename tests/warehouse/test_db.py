"""The SQLite warehouse's memory stays bounded whatever the data's size, what it
reads every night does not grow with the data, and the planner has statistics once a
night changed much (PostgreSQL).

Every connection of a SQLite engine gets its page cache and the process-wide
soft heap limit, so a second connection (a reader beside the writer) recycles
cache pages rather than filling a cache of its own; its temporary files (a
savepoint's journal) are files, not heap; and the heap memory the process freed
goes back to the system now and then, when a connection returns to its pool.
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, insert, text

from rulewatch.common.workdays import WorkingCalendar
from rulewatch.config.settings import TimeoutsSection
from rulewatch.warehouse import db
from rulewatch.warehouse.db import (
    SQLITE_CACHE_KIB,
    SQLITE_HEAP_LIMIT_BYTES,
    calendar_years,
    make_engine,
    open_warehouse,
)
from rulewatch.warehouse.schema import DEFAULT_AGENCY_ID, landed_record, permit_application


def test_sqlite_connections_share_one_heap_limit(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    try:
        with engine.connect() as writer, engine.connect() as reader:
            for conn in (writer, reader):
                assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -SQLITE_CACHE_KIB
                limit = conn.exec_driver_sql("PRAGMA soft_heap_limit").scalar()
                assert limit == SQLITE_HEAP_LIMIT_BYTES
    finally:
        engine.dispose()
    # one connection's cache fits under the limit, with room for statements and schemas
    assert SQLITE_CACHE_KIB * 1024 < SQLITE_HEAP_LIMIT_BYTES < 2 * SQLITE_CACHE_KIB * 1024


def test_sqlite_temporary_files_are_not_kept_in_memory(tmp_path: Path) -> None:
    # a loaded batch's savepoint journals every index page it changes: in memory
    # (temp_store=2) that grew with the index, beyond cache_size and the heap limit
    engine = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA temp_store").scalar() != 2
    finally:
        engine.dispose()


def test_freed_memory_returns_to_the_system_at_most_once_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trims: list[int] = []
    monkeypatch.setattr(db, "_MALLOC_TRIM", lambda pad: trims.append(pad) or 1)
    monkeypatch.setitem(db._TRIM, "last", 0.0)
    engine = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    try:
        for _ in range(3):  # three check-ins within the second: one trim
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        assert trims == [0]
        monkeypatch.setitem(db._TRIM, "last", db._TRIM["last"] - db.MALLOC_TRIM_EVERY_SECONDS)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        assert trims == [0, 0]
    finally:
        engine.dispose()


def _permit(key: str, received: date | None, decided: date | None) -> dict:
    return {
        "agency_id": DEFAULT_AGENCY_ID,
        "application_id": key,
        "received_on": received,
        "decided_on": decided,
        "changed_at": datetime(2024, 5, 20, 12, 0),
        "record_hash": key.rjust(64, "0"),
        "is_set_aside": False,
        "sync_run_id": "run",
    }


def test_the_calendar_spans_the_years_of_the_data(warehouse_url: str) -> None:
    """Each date column's first and last day (NULLs aside) widen the calendar's years,
    read from the columns' indexes: on SQLite, never a pass over the whole table."""
    calendar = WorkingCalendar.from_lists([], [])
    engine = open_warehouse(warehouse_url, calendar)
    asked: list[tuple[str, object]] = []

    def note(_conn, _cursor, statement, parameters, _context, _many) -> None:  # noqa: ANN001
        asked.append((statement, parameters))

    try:
        with engine.begin() as conn:
            conn.execute(
                insert(permit_application),
                [
                    _permit("A", date(2019, 3, 1), None),
                    _permit("B", date(1998, 7, 1), date(2031, 1, 2)),
                    _permit("C", None, date(2020, 1, 1)),
                ],
            )
            event.listen(engine, "before_cursor_execute", note)
            first, last = calendar_years(conn, calendar, date(2024, 5, 20))
            event.remove(engine, "before_cursor_execute", note)
            plans = (
                [
                    detail
                    for statement, parameters in asked
                    for *_, detail in conn.exec_driver_sql(
                        f"EXPLAIN QUERY PLAN {statement}", parameters
                    )
                ]
                if conn.dialect.name == "sqlite"
                else []
            )
    finally:
        engine.dispose()
    assert (first, last) == (1998, 2031)
    assert len(asked) == 2  # one statement per table
    assert not [p for p in plans if p.startswith("SCAN") and "CONSTANT ROW" not in p], plans


def _add_permits(engine: Engine, first: int, count: int) -> None:
    """``count`` permits numbered from ``first``, then waits (30 s at most) until
    PostgreSQL's statistics system counts them, as autovacuum would see them."""
    start = date(2024, 1, 1)
    rows = [
        _permit(f"P{i:06d}", start + timedelta(i % 300), None) for i in range(first, first + count)
    ]
    with engine.begin() as conn:
        conn.execute(insert(permit_application), rows)
    deadline = time.monotonic() + 30
    while True:
        with engine.connect() as conn:
            live = conn.execute(
                text(
                    "SELECT n_live_tup FROM pg_stat_user_tables"
                    " WHERE schemaname = current_schema() AND relname = 'permit_application'"
                )
            ).scalar_one()
        if live >= first + count:
            return
        assert time.monotonic() < deadline, f"PostgreSQL counts {live} permits"
        time.sleep(0.05)  # a backend reports its counts within a second of going idle


def _planned_rows(engine: Engine, table: str = "permit_application") -> float:
    """The rows PostgreSQL's planner believes ``table`` holds (its last ANALYZE; -1: none yet)."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"), {"t": table}
        ).scalar_one()


@pytest.mark.postgres
def test_postgresql_analyzes_what_a_night_changed_past_autovacuums_threshold(
    pg_url: str,
) -> None:
    """After a large load the planner gets the table's statistics at once, not when
    autovacuum comes by (or never, where it is off); a night that changed fewer rows
    than autovacuum's threshold (50 + 10% of the table) analyzes nothing."""
    engine = open_warehouse(pg_url, WorkingCalendar.from_lists([], []))
    try:
        landed = {
            "sync_run_id": "run",
            "agency_id": DEFAULT_AGENCY_ID,
            "stream": "permits.applications",
            "payload": "{}",
            "landed_at": datetime(2024, 5, 20, 12, 0),
        }
        with engine.begin() as conn:  # the archive of versions: read by its keys only
            conn.execute(
                insert(landed_record), [{**landed, "record_hash": f"{i:064d}"} for i in range(2000)]
            )
        _add_permits(engine, 0, 2000)
        assert db.refresh_statistics(engine) is True
        assert _planned_rows(engine) == 2000
        assert _planned_rows(engine, "landed_record") == -1  # left to autovacuum
        _add_permits(engine, 2000, 20)  # 20 < 50 + 200
        db.refresh_statistics(engine)
        assert _planned_rows(engine) == 2000
        _add_permits(engine, 2020, 300)  # 320 changed since the last ANALYZE > 50 + 202
        assert db.refresh_statistics(engine) is True
        assert _planned_rows(engine) == 2320
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_statistics_that_cannot_be_refreshed_cost_a_warning_not_the_night(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A lock held elsewhere past the statement timeout: the ANALYZE gives up with a
    warning naming why, and the night goes on; the next night analyzes."""
    timeouts = TimeoutsSection(warehouse_statement_seconds=1)
    engine = open_warehouse(pg_url, WorkingCalendar.from_lists([], []), timeouts)
    try:
        _add_permits(engine, 0, 200)
        with engine.connect() as holder:
            holder.exec_driver_sql("LOCK TABLE permit_application IN SHARE UPDATE EXCLUSIVE MODE")
            with caplog.at_level(logging.WARNING, logger="rulewatch.warehouse"):
                assert db.refresh_statistics(engine) is False
            holder.rollback()
        assert "planner statistics not refreshed (" in caplog.text
        assert "statement timeout" in caplog.text
        assert _planned_rows(engine) == -1
        assert db.refresh_statistics(engine, wrote=False) is True  # a quiet night heals it
        assert _planned_rows(engine) == 200
    finally:
        engine.dispose()
