"""A step's expected failures (its database, its files) end as one failed line, no traceback."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from rulewatch.flows.nightly import expected_failures, step_value
from rulewatch.warehouse.db import WarehouseError


@pytest.fixture(autouse=True)
def _warehouse(monkeypatch, tmp_path):  # noqa: ANN001
    monkeypatch.setenv("RULEWATCH_WAREHOUSE_URL", "postgresql+psycopg://rw:s3cret@db.example/wh")
    monkeypatch.setenv("RULEWATCH_DATA_DIR", str(tmp_path))


def _failing(exc: BaseException):  # noqa: ANN202
    @expected_failures("refresh the report tables")
    def step() -> int:
        raise exc

    return step


@pytest.mark.parametrize(
    "exc",
    [
        # PostgreSQL's COPY talks to psycopg itself: its error is not SQLAlchemy's
        psycopg.OperationalError("terminating connection due to administrator command"),
        OperationalError("COMMIT", {}, psycopg.OperationalError("terminating connection")),
    ],
)
def test_a_database_error_is_a_failed_state_naming_the_warehouse(exc):  # noqa: ANN001
    state = _failing(exc)()
    assert state.is_failed()
    assert state.message.startswith(
        "warehouse postgresql+psycopg://rw:***@db.example/wh: cannot refresh the report tables: "
        "terminating connection"
    )
    assert "s3cret" not in state.message
    with pytest.raises(WarehouseError, match="cannot refresh the report tables"):
        step_value(state)


def test_a_full_sqlite_disk_says_what_to_do():
    state = _failing(sqlite3.OperationalError("database or disk is full"))()
    assert state.message.endswith(
        "database or disk is full (free space on the warehouse's disk, then run again: "
        "what was committed stays)"
    )


def test_a_file_error_is_a_failed_state_naming_the_path():
    state = _failing(IsADirectoryError(21, "Is a directory", "/srv/rw/data_docs/checks.html"))()
    assert state.message == (
        "cannot use /srv/rw/data_docs/checks.html: Is a directory "
        "(a folder stands where rulewatch writes a file: move it away)"
    )
    with pytest.raises(IsADirectoryError):
        step_value(state)


@pytest.mark.parametrize("exc", [ValueError("a bug"), ConnectionResetError(104, "reset")])
def test_anything_else_is_raised_as_it_is(exc):  # noqa: ANN001
    with pytest.raises(type(exc)):
        _failing(exc)()


def test_a_steps_value_passes_through():
    @expected_failures("compute the metrics")
    def step(x: int) -> int:
        return x + 1

    assert step_value(step(1)) == 2
