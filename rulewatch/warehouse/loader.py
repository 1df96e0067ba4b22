"""Bulk loading of parsed pages: landed, set aside, current state, watermark.

A page is loaded in the caller's transaction together with the stream's new
watermark, so a crash between pages never skips a record nor counts one twice.
Every statement is a set-based ``INSERT .. ON CONFLICT`` run with executemany;
nothing is written row by row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from rulewatch.sources.engine import ParsedRecord, Stream
from rulewatch.sources.fields import naive_utc
from rulewatch.warehouse.schema import CORE_TABLES, landed_record, quarantined_record, sync_state

CONTRACT_CHECK = "contract"


@dataclass
class PageCounts:
    """What one page did to the warehouse."""

    read: int = 0
    loaded: int = 0
    set_aside: int = 0
    deleted: int = 0


def _insert(conn: Connection, table: Table):  # noqa: ANN202 - dialect-specific Insert
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"warehouse dialect {conn.dialect.name!r} is not supported")


def _hash(payload_json: str) -> str:
    return hashlib.sha256(payload_json.encode("utf-8")).hexdigest()


def _newer(stmt, table: Table, snapshot: bool):  # noqa: ANN001, ANN202 - SQLAlchemy types
    """Newest change wins; an equal change time only replaces a different version.

    Snapshot rows (a roster) carry no change time of their own: they are
    replaced only when their content changed or they had left and came back.
    """
    ex = stmt.excluded
    if snapshot:
        return or_(ex.record_hash != table.c.record_hash, table.c.is_active.is_(False))
    return or_(
        ex.changed_at > table.c.changed_at,
        and_(ex.changed_at == table.c.changed_at, ex.record_hash != table.c.record_hash),
    )


def _upsert(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    insert_only: Iterable[str] = (),
    snapshot: bool = False,
) -> None:
    if not rows:
        return
    pk = [c.name for c in table.primary_key.columns]
    skip = set(pk) | set(insert_only)
    stmt = _insert(conn, table)
    set_ = {k: stmt.excluded[k] for k in rows[0] if k not in skip}
    where = _newer(stmt, table, snapshot)
    stmt = stmt.on_conflict_do_update(index_elements=pk, set_=set_, where=where)
    conn.execute(stmt, rows)


def _append(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        stmt = _insert(conn, table).on_conflict_do_nothing(index_elements=["stream", "record_hash"])
        conn.execute(stmt, rows)


def load_page(
    conn: Connection,
    stream: Stream,
    records: Sequence[ParsedRecord],
    sync_run_id: str,
    now: datetime,
) -> PageCounts:
    """Land, set aside and merge one page of parsed records."""
    table = CORE_TABLES[stream.name]
    key_col = table.primary_key.columns.keys()[0]
    counts = PageCounts(read=len(records))
    landed: list[dict[str, Any]] = []
    quarantined: list[dict[str, Any]] = []
    newest: dict[str, tuple[ParsedRecord, str]] = {}
    for rec in records:
        payload = rec.payload_json()
        digest = _hash(payload)
        changed_at = naive_utc(rec.changed_at)
        if rec.is_set_aside:
            counts.set_aside += 1
            quarantined.append(
                {
                    "sync_run_id": sync_run_id,
                    "stream": stream.name,
                    "natural_key": rec.natural_key,
                    "check_name": CONTRACT_CHECK,
                    "reason": rec.reason,
                    "record_hash": digest,
                    "payload": payload,
                    "quarantined_at": now,
                }
            )
        else:
            counts.loaded += 1
            counts.deleted += rec.is_tombstone
            landed.append(
                {
                    "sync_run_id": sync_run_id,
                    "stream": stream.name,
                    "natural_key": rec.natural_key,
                    "changed_at": changed_at,
                    "record_hash": digest,
                    "payload": payload,
                    "landed_at": now,
                }
            )
        if rec.natural_key is None or rec.changed_at is None:
            continue
        seen = newest.get(rec.natural_key)
        if seen is None or rec.changed_at >= seen[0].changed_at:
            newest[rec.natural_key] = (rec, digest)
    _append(conn, landed_record, landed)
    _append(conn, quarantined_record, quarantined)

    good, aside, tombstones = [], [], []
    extra_insert = _insert_defaults(table, now)
    for key, (rec, digest) in newest.items():
        base = {
            key_col: key,
            "changed_at": naive_utc(rec.changed_at),
            "record_hash": digest,
            "sync_run_id": sync_run_id,
        }
        if rec.is_set_aside:
            aside.append(
                {**base, **extra_insert, "is_set_aside": True, "set_aside_reason": rec.reason}
            )
        elif rec.is_tombstone:
            tombstones.append(
                {
                    **base,
                    "is_deleted": True,
                    "deleted_at": naive_utc(rec.changed_at),
                    "is_set_aside": False,
                    "set_aside_reason": None,
                }
            )
        else:
            good.append({**rec.row, **base, **_live_columns(table, now)})
    insert_only = ("first_seen_at",)
    snapshot = stream.is_snapshot
    _upsert(conn, table, good, insert_only, snapshot)
    _upsert(conn, table, aside, (*insert_only, *extra_insert), snapshot)
    _upsert(conn, table, tombstones, (), snapshot)
    return counts


def _insert_defaults(table: Table, now: datetime) -> dict[str, Any]:
    """NOT NULL columns a set-aside marker needs when it is the first version of a key."""
    defaults: dict[str, Any] = {}
    if "is_deleted" in table.c:
        defaults["is_deleted"] = False
    if "is_active" in table.c:
        defaults["is_active"] = True
        defaults["first_seen_at"] = now
    return defaults


def _live_columns(table: Table, now: datetime) -> dict[str, Any]:
    live: dict[str, Any] = {"is_set_aside": False, "set_aside_reason": None}
    if "is_deleted" in table.c:
        live.update(is_deleted=False, deleted_at=None)
    if "is_active" in table.c:
        live.update(is_active=True, left_at=None, first_seen_at=now)
    return live


def read_watermark(conn: Connection, stream_name: str) -> datetime | None:
    """The newest change time loaded for a stream (naive UTC), or None."""
    return conn.execute(
        select(sync_state.c.watermark_at).where(sync_state.c.stream == stream_name)
    ).scalar_one_or_none()


def advance_watermark(
    conn: Connection, stream_name: str, watermark_at: datetime, sync_run_id: str, now: datetime
) -> None:
    """Move the stream's watermark forward (never back) in the caller's transaction."""
    stmt = _insert(conn, sync_state).values(
        stream=stream_name, watermark_at=watermark_at, sync_run_id=sync_run_id, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["stream"],
        set_={
            "watermark_at": stmt.excluded.watermark_at,
            "sync_run_id": stmt.excluded.sync_run_id,
            "updated_at": stmt.excluded.updated_at,
        },
        where=or_(
            sync_state.c.watermark_at.is_(None),
            sync_state.c.watermark_at < stmt.excluded.watermark_at,
        ),
    )
    conn.execute(stmt)


def mark_departed(
    conn: Connection, stream: Stream, present_keys: Iterable[str], now: datetime, sync_run_id: str
) -> int:
    """Soft-delete snapshot rows (roster members) missing from the latest full list."""
    table = CORE_TABLES[stream.name]
    key_col = table.primary_key.columns.values()[0]
    present = set(present_keys)
    active = conn.execute(select(key_col).where(table.c.is_active.is_(True))).scalars().all()
    gone = [k for k in active if k not in present]
    if gone:
        conn.execute(
            update(table)
            .where(key_col.in_(gone))
            .values(is_active=False, left_at=now, sync_run_id=sync_run_id)
        )
    return len(gone)
