"""Current state from parsed pages, on SQLite and PostgreSQL.

The newest change wins whatever the arrival order; a tombstone and a roster
departure are soft deletes that keep the history; a malformed newest version
sets the key aside until a good newer one arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from scripted_sources import document_record as doc
from sqlalchemy import Engine, func, select

from rulewatch.common.workdays import WorkingCalendar
from rulewatch.extract import docreview, enforcement
from rulewatch.extract.engine import ParseContext, Stream
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.loader import load_page, mark_departed
from rulewatch.warehouse.schema import document, landed_record, officer

CTX = ParseContext(ZoneInfo("Asia/Shanghai"), b"key", datetime(2024, 5, 1, tzinfo=UTC))
DOCUMENTS = docreview.SPEC.streams[0]
OFFICERS = enforcement.SPEC.streams[1]
NOW = datetime(2024, 5, 1)


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Engine]:
    eng = open_warehouse(warehouse_url, WorkingCalendar.from_lists([], []))
    yield eng
    eng.dispose()


def load(engine: Engine, stream: Stream, raws: list[dict], run: str = "run") -> None:
    with engine.begin() as conn:
        load_page(conn, stream, [stream.parse_record(r, CTX) for r in raws], run, NOW)


def state(engine: Engine, doc_id: str):  # noqa: ANN201 - a Row
    with engine.connect() as conn:
        return conn.execute(select(document).where(document.c.doc_id == doc_id)).one()


MS = 1_700_000_000_000


def test_newest_change_wins_whatever_the_arrival_order(engine: Engine) -> None:
    new, old = doc("D1", MS + 2000, status="repealed"), doc("D1", MS + 1000, status="in_force")
    load(engine, DOCUMENTS, [new])
    load(engine, DOCUMENTS, [old])  # an older version arriving later (a re-read, a change log)
    assert state(engine, "D1").status == "repealed"
    load(engine, DOCUMENTS, [doc("D2", MS + 2000, status="revised"), doc("D2", MS + 1000)])
    assert state(engine, "D2").status == "revised"  # the same in one batch


def test_a_tombstone_deletes_softly_and_an_older_version_does_not_revive(engine: Engine) -> None:
    load(engine, DOCUMENTS, [doc("D1", MS)])
    load(engine, DOCUMENTS, [{"doc_id": "D1", "deleted": True, "last_modified_ms": MS + 1}])
    load(engine, DOCUMENTS, [doc("D1", MS)])  # the inclusive filter sends the old one again
    row = state(engine, "D1")
    assert row.is_deleted is True and row.issued_on is not None  # history stays
    with engine.connect() as conn:
        versions = conn.execute(
            select(func.count()).where(landed_record.c.natural_key == "D1")
        ).scalar()
    assert versions == 2


def test_a_malformed_newest_version_is_set_aside_until_a_good_one(engine: Engine) -> None:
    load(engine, DOCUMENTS, [doc("D1", MS)])
    load(engine, DOCUMENTS, [doc("D1", MS + 1, issued_on="2023-02-30")])
    row = state(engine, "D1")
    assert row.is_set_aside is True and "issued_on" in row.set_aside_reason
    load(engine, DOCUMENTS, [doc("D1", MS + 2, status="revised")])
    row = state(engine, "D1")
    assert (row.is_set_aside, row.status) == (False, "revised")


def test_roster_departure_and_return(engine: Engine) -> None:
    roster = [
        {"officer_id": f"ZF-{i}", "name": "王", "role": "officer", "certified": True}
        for i in range(3)
    ]
    load(engine, OFFICERS, roster)
    with engine.begin() as conn:
        assert mark_departed(conn, OFFICERS, {"ZF-0", "ZF-2"}, NOW, "run2") == 1
    with engine.connect() as conn:
        active = dict(conn.execute(select(officer.c.officer_id, officer.c.is_active)).all())
    assert active == {"ZF-0": True, "ZF-1": False, "ZF-2": True}
    load(engine, OFFICERS, roster, "run3")  # back on the roster
    with engine.connect() as conn:
        back = conn.execute(select(officer).where(officer.c.officer_id == "ZF-1")).one()
    assert back.is_active is True and back.left_at is None
