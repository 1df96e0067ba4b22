"""The job lock per agency (issue 16): agencies side by side, one agency never twice at once.

On PostgreSQL each agency has its own lock and a warehouse-wide step (a
migration) excludes them all; on SQLite (one writer) there is one lock and the
refusal says why. The plain one-agency messages stay as they were.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import load_settings
from rulewatch.warehouse import lock
from rulewatch.warehouse.db import make_engine, schema_head, schema_state
from rulewatch.warehouse.lock import (
    WarehouseBusy,
    job_lock,
    migrate_if_behind,
    pg_lock_key,
)

BUSY = "another rulewatch job is running on this warehouse"


@pytest.fixture
def engines(warehouse_url):
    made = [make_engine(warehouse_url) for _ in range(3)]
    yield made
    for engine in made:
        engine.dispose()


@pytest.mark.postgres
def test_two_agencies_at_once_one_agency_never_twice(pg_url):
    first, second, third = (make_engine(pg_url) for _ in range(3))
    try:
        with job_lock(first, "sync", agency_id="science-tech"):
            with (
                job_lock(second, "sync", agency_id="market-regulation"),  # side by side
                pytest.raises(WarehouseBusy) as twice,
                job_lock(third, "backfill", agency_id="science-tech"),
            ):
                pass
            assert str(twice.value).startswith(f"{BUSY} (sync of science-tech since ")
            assert "this backfill of agency science-tech did not run." in str(twice.value)
            assert twice.value.agency_id == "science-tech"
            assert "SQLite" not in str(twice.value)
            with job_lock(second, "sync", agency_id="market-regulation"):  # released: free again
                pass
    finally:
        for engine in (first, second, third):
            engine.dispose()


@pytest.mark.postgres
def test_a_warehouse_wide_step_excludes_every_agency_and_waits_for_them(pg_url):
    first, second = make_engine(pg_url), make_engine(pg_url)
    try:
        with job_lock(first, "sync", agency_id="science-tech"):
            with pytest.raises(WarehouseBusy) as wide, job_lock(second, "upgrade"):
                pass
            assert "sync of science-tech since" in wide.value.holder
            assert "this upgrade did not run." in str(wide.value)
        with job_lock(first, "upgrade"):
            with (
                pytest.raises(WarehouseBusy) as agency,
                job_lock(second, "sync", agency_id="market-regulation"),
            ):
                pass
            assert wide.value.holder != agency.value.holder
            assert agency.value.holder.startswith("upgrade since")
            assert "this sync of agency market-regulation did not run." in str(agency.value)
    finally:
        first.dispose()
        second.dispose()


def test_sqlite_runs_one_job_at_a_time_whatever_the_agency(sqlite_url):
    first, second = make_engine(sqlite_url), make_engine(sqlite_url)
    try:
        with (
            job_lock(first, "sync", agency_id="science-tech"),
            pytest.raises(WarehouseBusy) as other,
            job_lock(second, "sync", agency_id="market-regulation"),
        ):
            pass
        message = str(other.value)
        assert message.startswith(f"{BUSY} (sync of science-tech since ")
        assert "this sync of agency market-regulation did not run." in message
        assert "A SQLite warehouse runs one job at a time, whatever the agency" in message
        assert "use PostgreSQL to load them in parallel" in message
    finally:
        first.dispose()
        second.dispose()


def test_the_one_agency_is_refused_in_the_words_of_before(engines):
    first, second, _ = engines
    with (
        job_lock(first, "sync", agency_id="default"),
        pytest.raises(WarehouseBusy) as refused,
        job_lock(second, "sync", agency_id="default"),
    ):
        pass
    message = str(refused.value)
    assert message.startswith(f"{BUSY} (sync since ")
    assert message.endswith("); this sync did not run. Run it again when that one has finished.")


def test_agency_keys_differ_from_each_other_and_from_the_warehouse():
    keys = {pg_lock_key("test", "t_a")} | {
        pg_lock_key("test", s, a) for s in ("t_a", "t_b") for a in ("default", "science-tech")
    }
    assert len(keys) == 5
    assert pg_lock_key("test", "t_a") == pg_lock_key("test", "t_a", None)


def test_a_current_schema_is_not_migrated_and_takes_no_lock(engines):
    first, second, third = engines
    calendar = calendar_of(load_settings({}))
    assert migrate_if_behind(first, "sync", calendar) is True  # empty: set up
    assert migrate_if_behind(first, "sync", calendar) is False
    with job_lock(second, "sync", agency_id="science-tech"):
        # another agency's job starting now needs no warehouse-wide lock
        assert migrate_if_behind(third, "sync", calendar) is False
    with first.connect() as conn:
        assert schema_state(conn)[:2] == ("current", schema_head())


@pytest.mark.postgres
def test_a_migration_is_refused_while_an_agency_job_runs(pg_url, monkeypatch):
    first, second = make_engine(pg_url), make_engine(pg_url)
    try:
        with first.connect() as conn:  # a schema at the first revision: behind
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
            conn.execute(text("INSERT INTO alembic_version VALUES ('0001')"))
            conn.commit()
        monkeypatch.setattr(lock, "MIGRATION_WAIT_SECONDS", 0)  # give up at once
        with (
            job_lock(first, "sync", agency_id="science-tech"),
            pytest.raises(WarehouseBusy) as refused,
        ):
            migrate_if_behind(second, "sync", wait_seconds=0)
        assert "sync of science-tech since" in refused.value.holder
        with second.connect() as conn:
            assert schema_state(conn)[1] == "0001"  # untouched
    finally:
        first.dispose()
        second.dispose()


def test_a_lock_file_on_a_full_disk_fails_naming_it_and_is_released(sqlite_url, monkeypatch):
    import errno
    import os

    from rulewatch.warehouse.db import WarehouseError

    def full(_fd: int, _data: bytes, _offset: int) -> int:  # a full disk cannot be made here
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    engine = make_engine(sqlite_url)
    try:
        with monkeypatch.context() as patched:
            patched.setattr(lock.os, "pwrite", full)
            with pytest.raises(WarehouseError) as err, job_lock(engine, "sync"):
                pass
        assert str(err.value) == (
            f"cannot use {engine.url.database}.lock: No space left on device "
            "(free some space on that disk, then run again)"
        )
        with job_lock(engine, "sync"):  # released: the next job takes it
            pass
    finally:
        engine.dispose()
