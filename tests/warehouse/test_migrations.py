"""Revisions 0009 and 0011 on a populated warehouse, on SQLite and PostgreSQL: an existing
warehouse becomes the one agency's in place, and goes back while it has one; its landed
versions change indexes in place and stay unique."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, event, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from rulewatch.checks.quality import run_quality_checks
from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import Settings, load_settings
from rulewatch.demo.data import DEMO_TODAY
from rulewatch.demo.servers import start_demo_sources
from rulewatch.report.tables import refresh_report_tables
from rulewatch.warehouse.db import (
    SCHEMA_HEAD,
    WarehouseError,
    _alembic_config,
    make_engine,
    migrate,
    open_warehouse,
    schema_state,
    stored_revision,
)
from rulewatch.warehouse.schema import DEFAULT_AGENCY_ID, landed_record, metadata, sync_state
from rulewatch.warehouse.sync import sync_source

JOB = "before-agencies"
NOW = datetime(2024, 5, 1)
#: every table revision 0009 gave an agency key
AGENCY_TABLES = tuple(t for t in metadata.sorted_tables if "agency_id" in t.c)


def _alembic(engine: Engine, action, revision: str) -> None:  # noqa: ANN001 - command function
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        action(cfg, revision)


def _rows(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of the agency tables, their agency column left out, as the database has it."""
    with engine.connect() as conn:
        found = {}
        for table in AGENCY_TABLES:
            names = ", ".join(c.name for c in table.c if c.name != "agency_id")
            rows = conn.execute(text(f"SELECT {names} FROM {table.name}")).all()  # noqa: S608
            found[table.name] = sorted(map(tuple, rows), key=repr)
        return found


def _agencies(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {
            agency
            for table in AGENCY_TABLES
            for agency in conn.execute(select(table.c.agency_id).distinct()).scalars()
        }


@contextmanager
def _synced(url: str, folder: Path, malformed: int = 0) -> Iterator[tuple[Engine, Settings]]:
    """A warehouse at this rulewatch's head with the demo's enforcement and docreview
    synced into it, and the settings that did it; the demo sources stay up meanwhile."""
    with start_demo_sources(malformed=malformed) as demo:
        env = {**demo.env(), "RULEWATCH_WAREHOUSE_URL": url}
        settings = load_settings({**env, "RULEWATCH_DATA_DIR": str(folder)})
        engine = open_warehouse(url, calendar_of(settings))
        try:
            for source in ("enforcement", "docreview"):
                sync_source(engine, settings, source, job_id=JOB)
            yield engine, settings
        finally:
            engine.dispose()


def test_a_populated_warehouse_becomes_the_one_agencys_and_goes_back(warehouse_url, tmp_path):
    with _synced(warehouse_url, tmp_path, malformed=2) as (engine, settings):
        run_quality_checks(engine, settings, job_id=JOB, as_of=DEMO_TODAY)
        refresh_report_tables(engine, settings, DEMO_TODAY, job_id=JOB)
        populated = _rows(engine)
        empty = {name for name, rows in populated.items() if not rows}
        assert empty <= {"alert", "alert_delivery", "alert_state", "permit_application"}

        _alembic(engine, command.downgrade, "0008")
        columns = inspect(engine)
        assert not [t.name for t in AGENCY_TABLES if "agency_id" in _names(columns, t.name)]
        assert _rows(engine) == populated

        migrate(engine)  # what the next sync does: 0008 -> 0009 in place
        with engine.connect() as conn:
            assert schema_state(conn)[0] == "current"
        assert _rows(engine) == populated
        assert _agencies(engine) == {DEFAULT_AGENCY_ID}

        again = sync_source(engine, settings, "docreview")  # its watermark was kept
        assert again.requests == 1


def _names(inspector, table: str) -> set[str]:  # noqa: ANN001 - SQLAlchemy Inspector
    return {c["name"] for c in inspector.get_columns(table)}


@pytest.mark.postgres
def test_a_downgrade_with_two_agencies_stops_and_changes_nothing(pg_url):
    engine = open_warehouse(pg_url, calendar_of(load_settings({})))
    try:
        with engine.begin() as conn:
            for agency in (DEFAULT_AGENCY_ID, "science-tech"):
                conn.execute(
                    insert(sync_state).values(
                        agency_id=agency, stream="permits.applications", updated_at=NOW
                    )
                )
        before = _rows(engine)
        with pytest.raises(IntegrityError):
            _alembic(engine, command.downgrade, "0008")
        with engine.connect() as conn:
            assert schema_state(conn)[0] == "current"
        assert _rows(engine) == before
        assert _agencies(engine) == {DEFAULT_AGENCY_ID, "science-tech"}
    finally:
        engine.dispose()


def test_the_known_head_is_alembics_newest_revision():
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(_alembic_config()).get_current_head() == SCHEMA_HEAD


def test_a_revision_this_rulewatch_does_not_know_is_newer(warehouse_url):
    engine = open_warehouse(warehouse_url, calendar_of(load_settings()))
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
        with engine.connect() as conn:
            assert schema_state(conn) == ("newer", "0999", SCHEMA_HEAD)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0008'"))
        with engine.connect() as conn:
            assert schema_state(conn) == ("behind", "0008", SCHEMA_HEAD)
    finally:
        engine.dispose()


def _landed(engine: Engine) -> tuple[list[tuple], list[list[str]], list[list[str]]]:
    """``landed_record``'s rows, its unique constraints' and its indexes' columns."""
    with engine.connect() as conn:
        rows = conn.execute(select(landed_record).order_by(landed_record.c.landed_id)).all()
        found = inspect(conn)
        unique = found.get_unique_constraints("landed_record")
        indexes = found.get_indexes("landed_record")
    return (
        [tuple(r) for r in rows],
        sorted(u["column_names"] for u in unique),
        sorted(i["column_names"] for i in indexes if not i.get("unique")),
    )


KEY_AND_HASH = ["agency_id", "stream", "natural_key", "record_hash"]


def test_landed_versions_are_unique_by_key_and_hash_with_0011_and_go_back(warehouse_url, tmp_path):
    """Revision 0011 puts one unique index (key, then hash) where a unique hash and a key
    index were, on a populated warehouse, rows unchanged both ways; a version received
    again is still not landed twice."""
    with _synced(warehouse_url, tmp_path) as (engine, settings):
        rows, unique, indexes = _landed(engine)
        assert rows and unique == [KEY_AND_HASH] and indexes == []

        _alembic(engine, command.downgrade, "0010")
        assert _landed(engine) == (
            rows,
            [["agency_id", "stream", "record_hash"]],
            [["agency_id", "stream", "natural_key"]],
        )

        migrate(engine)
        assert _landed(engine) == (rows, [KEY_AND_HASH], [])
        again = sync_source(engine, settings, "docreview", full_refresh=True)
        assert again.records_read > 0 and _landed(engine)[0] == rows  # every version known


def _tables(url: str) -> set[str]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}


def test_an_upgrade_that_fills_the_disk_leaves_the_warehouse_as_it_was(sqlite_url, tmp_path):
    """SQLite copies ``landed_record`` to change its constraint (revision 0011); when the
    disk fills meanwhile (here SQLite's ``max_page_count``), the half-made copy goes
    with the rest of the upgrade, and the next upgrade, with room again, succeeds."""
    with _synced(sqlite_url, tmp_path) as (engine, _settings):
        _alembic(engine, command.downgrade, "0010")
        rows, before = _landed(engine), _tables(sqlite_url)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        conn.execute("VACUUM")  # no free pages: the copy must grow the file
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    full = make_engine(sqlite_url)
    event.listen(
        full, "connect", lambda dbapi, _: dbapi.execute(f"PRAGMA max_page_count = {pages + 2}")
    )
    try:
        with pytest.raises(WarehouseError, match="database or disk is full"):
            migrate(full)
    finally:
        full.dispose()
    assert _tables(sqlite_url) == before and not any(t.startswith("_alembic_tmp") for t in before)
    roomy = make_engine(sqlite_url)
    try:
        assert _landed(roomy)[0] == rows[0]
        with roomy.connect() as conn:
            assert stored_revision(conn) == "0010"
        migrate(roomy)
        assert _landed(roomy) == (rows[0], [KEY_AND_HASH], [])
    finally:
        roomy.dispose()


def test_a_copy_left_by_an_earlier_failed_upgrade_is_dropped_when_its_table_is_intact(
    sqlite_url, tmp_path
):
    """Before this rulewatch, a failed SQLite upgrade kept Alembic's half-made copy
    (``_alembic_tmp_<table>``), and every later upgrade stopped on it. It is dropped when
    its table is there; a copy without its table stops the upgrade, naming both."""
    with _synced(sqlite_url, tmp_path) as (engine, _settings):
        _alembic(engine, command.downgrade, "0010")
        rows = _landed(engine)[0]
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE _alembic_tmp_landed_record AS SELECT * FROM landed_record LIMIT 3"
            )
            conn.exec_driver_sql("CREATE TABLE _alembic_tmp_gone (x INTEGER)")
        with pytest.raises(
            WarehouseError,
            match="_alembic_tmp_gone is left from a failed upgrade and gone is missing",
        ):
            migrate(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE _alembic_tmp_gone")
        migrate(engine)
        assert _landed(engine) == (rows, [KEY_AND_HASH], [])
        assert not [t for t in _tables(sqlite_url) if t.startswith("_alembic_tmp")]
