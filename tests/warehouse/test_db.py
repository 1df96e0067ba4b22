"""The SQLite warehouse's memory stays bounded whatever the data's size.

Every connection of a SQLite engine gets its page cache and the process-wide
soft heap limit, so a second connection (a reader beside the writer) recycles
cache pages rather than filling a cache of its own; its temporary files (a
savepoint's journal) are files, not heap; and the heap memory the process freed
goes back to the system now and then, when a connection returns to its pool.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rulewatch.warehouse import db
from rulewatch.warehouse.db import SQLITE_CACHE_KIB, SQLITE_HEAP_LIMIT_BYTES, make_engine


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
