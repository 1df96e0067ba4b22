"""Shared fixtures: a fresh warehouse per test, on SQLite and on PostgreSQL.

PostgreSQL tests use their own schema in the ``test`` database of the server at
``RULEWATCH_TEST_PG_URL`` (default 127.0.0.1:5432, user postgres). In CI
(``CI=true``) a missing server fails the run; elsewhere those tests skip with
the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pgschema import fresh_schema_url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped afterwards."""
    with fresh_schema_url() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # noqa: ANN001 - pytest fixture
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def warehouse_url(request, tmp_path) -> str:  # noqa: ANN001 - pytest fixture
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    return request.getfixturevalue("pg_url")
