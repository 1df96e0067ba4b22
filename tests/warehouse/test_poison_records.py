"""Records the warehouse cannot hold as they are never stop a source (issue 12 §1).

A real HTTP source (``scripted_sources``) serves valid-but-unusual records through
the real sync, on SQLite and PostgreSQL: a NUL character (PostgreSQL cannot store
it; SQLite can), a natural key beyond 128 characters (stored as it is), one beyond
the 512 rulewatch stores, and lone surrogates (no database stores them). What can
be stored is stored faithfully; the rest is set aside with its reason and its
payload as ASCII JSON that reads back to the record as sent; everything else
loads, the watermark covers the batch, and a second sync succeeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from hostile_sources import application as _application
from scripted_sources import ScriptedSource, document_record
from sqlalchemy import Connection, Engine, select

from rulewatch.config.settings import Settings, load_settings
from rulewatch.flows.nightly import calendar_of
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.loader import MAX_NATURAL_KEY_CHARS
from rulewatch.warehouse.schema import (
    document,
    permit_application,
    quarantined_record,
    sync_state,
)
from rulewatch.warehouse.sync import sync_source

MS = 1_700_000_000_000
LONG_KEY = "L" * 200  # beyond the old varchar(128): stored as it is
HUGE_KEY = "H" * (MAX_NATURAL_KEY_CHARS + 88)  # set aside on every warehouse


def doc(doc_id: str, n: int, **fields: object) -> dict:
    return document_record(doc_id, MS + n * 1000, **fields)


POISON = [
    doc("NUL-TITLE", 3, title="a\x00b"),
    doc("NUL\x00KEY", 5),
    doc(LONG_KEY, 7),
    doc(HUGE_KEY, 9),
    doc("SURROGATE-TITLE", 11, drafting_unit="x\ud800y"),
    doc("SURROGATE\udc00KEY", 13),
    doc("MALFORMED\udc01KEY", 1, status="bogus"),  # malformed and unwritable both
]
GOOD = [doc(f"D{n:02d}", n) for n in range(0, 16, 2)]  # the newest (D14) is last

#: The credentials each scripted source's connector sends.
CREDENTIALS = {
    "docreview": {"RULEWATCH_DOCREVIEW_USER": "u", "RULEWATCH_DOCREVIEW_PASSWORD": "p"},
    "permits": {"RULEWATCH_PERMITS_TOKEN": "t"},
}


@contextmanager
def warehouse_for(
    source: ScriptedSource, warehouse_url: str, tmp_path: Path
) -> Iterator[tuple[Engine, Settings]]:
    """The warehouse at ``warehouse_url`` and settings that sync it from ``source``."""
    settings = load_settings(
        {
            f"RULEWATCH_{source.kind.upper()}_URL": source.url,
            **CREDENTIALS[source.kind],
            "RULEWATCH_WAREHOUSE_URL": warehouse_url,
            "RULEWATCH_DATA_DIR": str(tmp_path),
            "RULEWATCH_PII_KEY": "k",
        }
    )
    engine = open_warehouse(warehouse_url, calendar_of(settings))
    try:
        yield engine, settings
    finally:
        engine.dispose()


def test_poison_records_are_set_aside_and_the_rest_loads(warehouse_url, tmp_path) -> None:
    postgres = warehouse_url.startswith("postgresql")
    with ScriptedSource("docreview", GOOD + POISON) as source:
        source.ascii_json = True
        with warehouse_for(source, warehouse_url, tmp_path) as (engine, settings):
            object.__setattr__(settings.sources.docreview, "page_size", 3)
            first = sync_source(engine, settings, "docreview")
            with engine.connect() as conn:
                core = {r.doc_id: r for r in conn.execute(select(document))}
                aside = {r.natural_key: r for r in conn.execute(select(quarantined_record))}
                watermark = conn.execute(select(sync_state.c.watermark_at)).scalar_one()
            second = sync_source(engine, settings, "docreview")
            with engine.connect() as conn:
                again = {r.doc_id: r for r in conn.execute(select(document))}

    stored = ["NUL-TITLE", "NUL\x00KEY"] if not postgres else []
    refused = {
        "SURROGATE-TITLE",
        "SURROGATE\\udc00KEY",
        "MALFORMED\\udc01KEY",
        HUGE_KEY[:MAX_NATURAL_KEY_CHARS] + "…",
    }
    if postgres:
        refused |= {"NUL-TITLE", "NUL\\u0000KEY"}
    assert first.status == "succeeded" and first.error is None
    # (the docreview connector re-reads from the last change time: some come twice)
    assert first.records_read >= len(GOOD) + len(POISON)
    assert first.records_set_aside >= len(refused)
    assert set(first.set_aside_reasons) == {"unwritable", "status"}

    # what the database can hold is stored faithfully
    live = {k for k, r in core.items() if not r.is_set_aside}
    assert live == {d["doc_id"] for d in GOOD} | {LONG_KEY, *stored}
    if not postgres:
        assert core["NUL-TITLE"].title == "a\x00b"
    # the rest is set aside with a reason naming the field, its payload as sent
    assert set(aside) == refused
    assert "drafting_unit holds a lone surrogate" in aside["SURROGATE-TITLE"].reason
    assert "natural key holds a lone surrogate" in aside["SURROGATE\\udc00KEY"].reason
    malformed = aside["MALFORMED\\udc01KEY"].reason
    assert malformed.startswith("status:") and "natural key holds a lone surrogate" in malformed
    assert "characters long" in aside[HUGE_KEY[:MAX_NATURAL_KEY_CHARS] + "…"].reason
    assert json.loads(aside["SURROGATE-TITLE"].payload)["drafting_unit"] == "x\ud800y"
    if postgres:
        assert "title holds a NUL character" in aside["NUL-TITLE"].reason
        assert json.loads(aside["NUL\\u0000KEY"].payload)["doc_id"] == "NUL\x00KEY"
        assert core["NUL-TITLE"].is_set_aside  # its key is writable: it counts nowhere
        assert "NUL\x00KEY" not in core
    assert "SURROGATE-TITLE" in core and core["SURROGATE-TITLE"].is_set_aside
    # the watermark covers the whole batch, set-aside records included
    newest = max(d["last_modified_ms"] for d in GOOD + POISON)
    assert watermark == datetime.fromtimestamp(newest / 1000, UTC).replace(tzinfo=None)
    # a second sync succeeds, reads from the watermark and changes nothing
    assert second.status == "succeeded"
    assert second.records_read <= 3 and second.records_set_aside == 0
    assert {k: r.record_hash for k, r in again.items()} == {
        k: r.record_hash for k, r in core.items()
    }


def _reasons(conn: Connection) -> dict[str, str]:
    """Each set-aside natural key with its reason."""
    return dict(
        conn.execute(select(quarantined_record.c.natural_key, quarantined_record.c.reason)).all()
    )


def test_integers_a_column_cannot_hold_are_set_aside_never_wrapped(warehouse_url, tmp_path) -> None:
    """PostgreSQL's binary COPY wraps 10**12 into an int4 column (-727379968) without a
    word: such a record is set aside there; SQLite holds 64 bits and stores it."""
    postgres = warehouse_url.startswith("postgresql")
    records = [
        _application("P-OK", 1, 20),
        _application("P-BIG", 2, 10**12),
        _application("P-HUGE", 3, 2**63),
        _application("P-LAST", 4, 30),
        _application("P-LONGCODE", 5, code="X" * 40),  # a warning, never refused
    ]
    with (
        ScriptedSource("permits", records) as source,
        warehouse_for(source, warehouse_url, tmp_path) as (engine, settings),
    ):
        result = sync_source(engine, settings, "permits")
        with engine.connect() as conn:
            core = {r.application_id: r for r in conn.execute(select(permit_application))}
            aside = _reasons(conn)
    assert result.status == "succeeded"
    assert core["P-OK"].promised_days == 20 and core["P-LAST"].promised_days == 30
    assert core["P-LONGCODE"].employer_credit_code == "X" * 40
    bits = "32" if postgres else "64"  # PostgreSQL's integer column; SQLite's 64 bits
    assert f"promised_days is an integer beyond {bits} bits" in aside["P-HUGE"]
    if postgres:
        assert "promised_days is an integer beyond 32 bits" in aside["P-BIG"]
        assert core["P-BIG"].is_set_aside
    else:
        assert core["P-BIG"].promised_days == 10**12 and "P-BIG" not in aside


_REFUSE_SQLITE = """
CREATE TRIGGER refuse_me BEFORE INSERT ON document WHEN NEW.title = 'REFUSE-ME'
BEGIN SELECT RAISE(ABORT, 'refused by a local rule'); END
"""
_REFUSE_PG = (
    """CREATE FUNCTION refuse_me() RETURNS trigger AS $$ BEGIN
    IF NEW.title = 'REFUSE-ME' THEN
        RAISE EXCEPTION 'refused by a local rule' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW; END $$ LANGUAGE plpgsql""",
    "CREATE TRIGGER refuse_me BEFORE INSERT ON document FOR EACH ROW EXECUTE FUNCTION refuse_me()",
)


def test_a_record_refused_for_a_reason_rulewatch_does_not_know_is_found(
    warehouse_url, tmp_path
) -> None:
    """A rule a DBA added (a trigger) refuses two records of a 24-record batch: the
    loader bisects to them, sets them aside with the database's message, loads
    the other 22 in the same transaction, and the watermark covers all 24."""
    records = [doc(f"D{n:02d}", n) for n in range(24)]
    for n in (5, 17):
        records[n]["title"] = "REFUSE-ME"
    with (
        ScriptedSource("docreview", records) as source,
        warehouse_for(source, warehouse_url, tmp_path) as (engine, settings),
    ):
        with engine.begin() as conn:
            for sql in _REFUSE_PG if warehouse_url.startswith("postgresql") else [_REFUSE_SQLITE]:
                conn.exec_driver_sql(sql)
        result = sync_source(engine, settings, "docreview")
        with engine.connect() as conn:
            core = {r.doc_id: r for r in conn.execute(select(document))}
            aside = _reasons(conn)
            watermark = conn.execute(select(sync_state.c.watermark_at)).scalar_one()
    assert result.status == "succeeded" and result.pages == 1
    assert set(aside) == {"D05", "D17"}
    assert all("refused by a local rule" in r for r in aside.values()), aside
    assert {k for k, r in core.items() if not r.is_set_aside} == {d["doc_id"] for d in records} - {
        "D05",
        "D17",
    }
    newest = max(d["last_modified_ms"] for d in records)
    assert watermark == datetime.fromtimestamp(newest / 1000, UTC).replace(tzinfo=None)
