"""Bulk loading of parsed pages: landed, set aside, current state, watermark.

A batch of pages is loaded in the caller's transaction together with the
stream's new watermark, so a crash between batches never skips a record nor
counts one twice. Every statement is a set-based ``INSERT .. ON CONFLICT``;
nothing is written row by row. The statements are compiled once by SQLAlchemy
and run at the driver level, since per-row parameter handling was the loader's
main cost: on SQLite one ``executemany`` of plain tuples, on PostgreSQL a
``COPY`` into a temporary table followed by one ``INSERT .. SELECT .. ON CONFLICT``.

Every row belongs to one agency (``agency_id``, revision 0009): it is written
explicitly with each row, every conflict target leads with it, and every read
(watermark, roster) is filtered by it, so agencies sharing a warehouse, even
with byte-identical records, never meet. The functions here take no settings:
the agency is the ``agency_id`` keyword (``default``: the one agency without
``agencies.yaml``).
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    UniqueConstraint,
    and_,
    column,
    or_,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy import table as table_clause
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from rulewatch.extract.engine import ParsedRecord, Stream, storable_json
from rulewatch.extract.fields import naive_utc
from rulewatch.warehouse.schema import (
    CORE_TABLES,
    DEFAULT_AGENCY_ID,
    landed_record,
    natural_key_column,
    quarantined_record,
    sync_state,
)

CONTRACT_CHECK = "contract"
_LANDED_COLUMNS = (
    "agency_id",
    "sync_run_id",
    "stream",
    "natural_key",
    "changed_at",
    "record_hash",
    "payload",
    "landed_at",
)
_QUARANTINED_COLUMNS = (
    "agency_id",
    "sync_run_id",
    "stream",
    "natural_key",
    "check_name",
    "reason",
    "record_hash",
    "payload",
    "quarantined_at",
)


@dataclass
class PageCounts:
    """What one page did to the warehouse."""

    read: int = 0
    loaded: int = 0
    set_aside: int = 0
    deleted: int = 0
    #: records the warehouse refused, set aside: position in the batch -> new version
    replaced: dict[int, ParsedRecord] = field(default_factory=dict)


def _insert(conn: Connection, table: Table):  # noqa: ANN202 - dialect-specific Insert
    return _insert_for(conn.dialect.name, table)


def _insert_for(dialect_name: str, table: Table):  # noqa: ANN202 - dialect-specific Insert
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"warehouse dialect {dialect_name!r} is not supported")


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


@dataclass(frozen=True)
class _Write:
    """One set-based write: rows of ``columns`` into ``table``, and what a conflict does.

    ``upsert`` False appends versions not seen before (the table's unique columns,
    :func:`_unique_columns`); True merges into current state, the newest version
    winning per agency and natural key (:func:`_newer`), with the ``keep`` columns left
    as the existing row has them. The agency is a value in the rows, not in the
    statement, so one compiled statement serves every agency.
    """

    table: Table
    columns: tuple[str, ...]
    upsert: bool
    keep: tuple[str, ...] = ()
    snapshot: bool = False

    def statement(self, dialect_name: str, staged: str | None = None):  # noqa: ANN201 - dialect Insert
        """``INSERT .. ON CONFLICT`` of the columns: VALUES, or SELECT from the ``staged`` table."""
        stmt = _insert_for(dialect_name, self.table)
        if staged is not None:
            source = table_clause(staged, *[column(c) for c in self.columns])
            stmt = stmt.from_select(list(self.columns), select(*source.c))
        if not self.upsert:
            return stmt.on_conflict_do_nothing(index_elements=_unique_columns(self.table))
        pk = [c.name for c in self.table.primary_key.columns]
        set_ = {k: stmt.excluded[k] for k in self.columns if k not in self.keep}
        return stmt.on_conflict_do_update(
            index_elements=pk, set_=set_, where=_newer(stmt, self.table, self.snapshot)
        )


def _unique_columns(table: Table) -> list[str]:
    """The columns of the one unique constraint of a table of versions: ``agency_id``,
    ``stream``, ``natural_key``, ``record_hash`` for ``landed_record`` (revision 0011),
    ``agency_id``, ``stream``, ``record_hash`` for ``quarantined_record``."""
    (unique,) = [c for c in table.constraints if isinstance(c, UniqueConstraint)]
    return [c.name for c in unique.columns]


def _upsert(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    rows: list[tuple],
    insert_only: Iterable[str] = (),
    snapshot: bool = False,
) -> None:
    """Newest version wins per natural key (``_newer``); ``insert_only`` columns stay."""
    if rows:
        pk = {c.name for c in table.primary_key.columns}
        keep = tuple(sorted(pk | set(insert_only)))
        _write(conn, _Write(table, columns, upsert=True, keep=keep, snapshot=snapshot), rows)


def _append(conn: Connection, table: Table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert versions not seen before (by the table's :func:`_unique_columns`)."""
    if rows:
        _write(conn, _Write(table, columns, upsert=False), rows)


def _write(conn: Connection, write: _Write, rows: list[tuple]) -> None:
    """Run one set-based statement over ``rows`` (tuples in ``write.columns`` order)."""
    name = conn.dialect.name
    if name == "postgresql":
        _pg_write(conn, write, rows)
    elif name == "sqlite":
        sql, bind = _sqlite_statement(conn.dialect, write)
        conn.exec_driver_sql(sql, bind(rows))
    else:
        raise NotImplementedError(f"warehouse dialect {name!r} is not supported")


#: (dialect name, write) -> what running it needs; compiled once per process
_COMPILED: dict[tuple[str, _Write], Any] = {}


def _pg_statement(dialect: Any, write: _Write) -> tuple[str, str, tuple[str, ...]]:
    """The staging table's name, the ``INSERT .. SELECT`` from it, and the COPY types."""
    key = (dialect.name, write)
    if key not in _COMPILED:
        _COMPILED[key] = _compile_pg(dialect, write)
    return _COMPILED[key]


def _compile_pg(dialect: Any, write: _Write) -> tuple[str, str, tuple[str, ...]]:
    stage = f"_rw_stage_{write.table.name}"
    compiled = write.statement(dialect.name, stage).compile(dialect=dialect)
    if compiled.params:
        raise ValueError(f"{write.table.name}: a staged insert must not need parameters")
    types = tuple(_pg_copy_type(write.table.c[c]) for c in write.columns)
    return stage, compiled.string, types


def _pg_write(conn: Connection, write: _Write, rows: list[tuple]) -> None:
    """Binary COPY into a temporary table, then one ``INSERT .. SELECT .. ON CONFLICT``."""
    stage, sql, types = _pg_statement(conn.dialect, write)
    _check_integer_ranges(write.columns, types, rows)
    names = ", ".join(write.columns)
    with conn.connection.driver_connection.cursor() as cur:
        cur.execute(
            f"CREATE TEMPORARY TABLE {stage} ON COMMIT DROP AS "
            f"SELECT {names} FROM {write.table.name} WITH NO DATA"
        )
        with cur.copy(f"COPY {stage} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
        cur.execute(sql)
        cur.execute(f"DROP TABLE {stage}")


_PG_COPY_TYPES = (
    (DateTime, "timestamp"),
    (Date, "date"),
    (Boolean, "bool"),
    (BigInteger, "int8"),
    (Integer, "int4"),
    (Float, "float8"),
    (String, "text"),
)
_INT_RANGES = {"int4": (-(2**31), 2**31 - 1), "int8": (-(2**63), 2**63 - 1)}


def _check_integer_ranges(
    columns: tuple[str, ...], types: tuple[str, ...], rows: list[tuple]
) -> None:
    """Refuse an integer its column cannot hold: binary COPY would silently wrap it."""
    for i, kind in enumerate(types):
        bounds = _INT_RANGES.get(kind)
        if bounds is None:
            continue
        values = [v for v in map(itemgetter(i), rows) if v is not None]
        if not values:
            continue
        low, high = bounds
        for value in (min(values), max(values)):
            if not low <= value <= high:
                raise OverflowError(
                    f"{columns[i]}: {value} does not fit a {kind[3:]}-byte integer column"
                )


def _pg_copy_type(col: Column) -> str:
    """The binary COPY type of a column (the staging table has the target's types)."""
    for kind, name in _PG_COPY_TYPES:
        if isinstance(col.type, kind):
            return name
    return "text"


def _sqlite_statement(dialect: Any, write: _Write) -> tuple[str, _SqliteParameters]:
    """The ``INSERT .. VALUES`` and how rows become its parameters."""
    key = (dialect.name, write)
    if key not in _COMPILED:
        _COMPILED[key] = _compile_sqlite(dialect, write)
    return _COMPILED[key]


def _compile_sqlite(dialect: Any, write: _Write) -> tuple[str, _SqliteParameters]:
    compiled = write.statement(dialect.name).compile(
        dialect=dialect, column_keys=list(write.columns)
    )
    order = compiled.positiontup or []
    missing = [n for n in order if n not in write.columns]
    if missing:  # SQLAlchemy would fill in a column default the rows do not carry
        raise ValueError(f"{write.table.name}: rows lack {missing}")
    types = [write.table.c[n].type for n in write.columns]
    return compiled.string, _SqliteParameters(
        positions=tuple(write.columns.index(n) for n in order),
        datetimes=frozenset(i for i, t in enumerate(types) if isinstance(t, DateTime)),
        dates=frozenset(i for i, t in enumerate(types) if isinstance(t, Date)),
    )


@dataclass(frozen=True)
class _SqliteParameters:
    """Rows (tuples in the write's column order) -> the parameters of the SQLite
    statement: in its order, dates and times as the text SQLAlchemy stores there.

    Column by column rather than row by row (``zip`` turns rows into columns and
    back in C, and only the date and time columns are converted): on SQLite this
    runs for every row loaded.
    """

    positions: tuple[int, ...]  # for each parameter, its column in the rows
    datetimes: frozenset[int]  # columns (in the rows) of DateTime type
    dates: frozenset[int]  # columns (in the rows) of Date type

    def __call__(self, rows: list[tuple]) -> list[tuple]:
        if not rows:
            return []
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
        for i in self.datetimes:  # SQLAlchemy's SQLite text: always with microseconds
            columns[i] = [
                None if v is None else v.isoformat(" ", "microseconds") for v in columns[i]
            ]
        for i in self.dates:
            columns[i] = [None if v is None else v.isoformat() for v in columns[i]]
        return list(zip(*[columns[i] for i in self.positions], strict=True))


def load_page(
    conn: Connection,
    stream: Stream,
    records: Sequence[ParsedRecord],
    sync_run_id: str,
    now: datetime,
    *,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> PageCounts:
    """Land, set aside and merge a batch of parsed records (one page or several) of
    ``agency_id``'s source.

    A record the warehouse cannot hold (a NUL character on PostgreSQL, a lone
    surrogate, a key beyond :data:`MAX_NATURAL_KEY_CHARS`, any value the database
    rejects) never fails the batch: the batch is written inside a savepoint and,
    when the database refuses it because of its data, split in halves until the
    refused records are found; those are set aside with the reason and the rest
    loads. ``PageCounts.replaced`` gives the set-aside versions by position.
    """
    return load_columns(conn, stream, columns_of(records), sync_run_id, now, agency_id=agency_id)


#: ParsedRecord's fields, each a sequence over the records of a batch.
Columns = Sequence[Sequence[Any]]


def columns_of(records: Sequence[ParsedRecord]) -> Columns:
    """Records (ParsedRecord, or tuples of its fields) as :data:`Columns`."""
    if not records:
        return tuple(() for _ in ParsedRecord._fields)
    return tuple(zip(*records, strict=True))


def load_columns(
    conn: Connection,
    stream: Stream,
    columns: Columns,
    sync_run_id: str,
    now: datetime,
    *,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> PageCounts:
    """:func:`load_page` of records given column by column (:data:`Columns`).

    A batch keeps no object per record (a few hundred thousand of them would make
    each of the garbage collector's full passes long, and frequent); a record is
    made one by one only where one is refused.
    """
    loader = _Loader(conn, stream, sync_run_id, now, agency_id)
    batch = _Batch(columns)
    keys = columns[0]
    too_long = [
        i for i, key in enumerate(keys) if key is not None and len(key) > MAX_NATURAL_KEY_CHARS
    ]
    for i in too_long:
        rec = batch[i]
        reason = (
            f"unwritable: natural key is {len(rec.natural_key)} characters long; "
            f"rulewatch stores keys of up to {MAX_NATURAL_KEY_CHARS}"
        )
        batch[i] = loader.set_aside_unkeyed(rec, _also(rec, reason))
    todo = None if not too_long else [i for i in range(len(batch)) if i not in batch.replaced]
    loader.write_resilient(batch, todo)
    reasons, tombstones = list(columns[3]), list(columns[6])
    for i, rec in batch.replaced.items():
        reasons[i], tombstones[i] = rec.reason, rec.is_tombstone
    counts = PageCounts(read=len(batch), replaced=batch.replaced)
    counts.set_aside = len(reasons) - reasons.count(None)
    counts.loaded = counts.read - counts.set_aside
    counts.deleted = sum(t for t, r in zip(tombstones, reasons, strict=True) if r is None)
    return counts


class _Batch:
    """The records of a batch, column by column, and those replaced by set-aside versions."""

    def __init__(self, columns: Columns) -> None:
        self.columns = columns
        self.replaced: dict[int, ParsedRecord] = {}

    def __len__(self) -> int:
        return len(self.columns[0])

    def __getitem__(self, i: int) -> ParsedRecord:
        rec = self.replaced.get(i)
        return rec if rec is not None else ParsedRecord._make(c[i] for c in self.columns)

    def __setitem__(self, i: int, rec: ParsedRecord) -> None:
        self.replaced[i] = rec

    def select(self, todo: list[int] | None) -> Columns:
        """The columns of records ``todo`` (None: all), as they are now."""
        if todo is None and not self.replaced:
            return self.columns
        return columns_of([self[i] for i in (range(len(self)) if todo is None else todo)])


#: Natural keys longer than this are set aside: PostgreSQL's b-tree indexes hold at
#: most about 2,700 bytes per entry, and 512 characters of up to 4 UTF-8 bytes fit.
MAX_NATURAL_KEY_CHARS = 512


def _data_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the database refused this data", not "the database is down".

    psycopg's are among them once psycopg is loaded, which a PostgreSQL warehouse does
    when it connects, before any write; a SQLite warehouse never loads it (its import
    was 0.1 s of a quiet night's process). Called only while an exception is caught.
    """
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return _SQL_DATA_ERRORS
    from psycopg import errors as pg_errors

    return (
        *_SQL_DATA_ERRORS,
        psycopg.DataError,
        psycopg.IntegrityError,
        pg_errors.ProgramLimitExceeded,
    )


_SQL_DATA_ERRORS: tuple[type[BaseException], ...] = (
    UnicodeError,
    OverflowError,
    sa_exc.DataError,
    sa_exc.IntegrityError,
    sqlite3.DataError,
    sqlite3.IntegrityError,
)


class _Loader:
    """Writes records of one stream inside savepoints, finding the ones refused."""

    def __init__(
        self, conn: Connection, stream: Stream, sync_run_id: str, now: datetime, agency_id: str
    ) -> None:
        self.conn, self.stream, self.sync_run_id, self.now = conn, stream, sync_run_id, now
        self.agency_id = agency_id
        self.dialect = conn.dialect.name
        self.table = CORE_TABLES[stream.name]

    def _savepoint(self):  # noqa: ANN202 - SQLAlchemy NestedTransaction
        if self.dialect == "sqlite":
            # pysqlite starts its transaction lazily at the first INSERT; a SAVEPOINT
            # sent before it would open (and on release commit) a transaction of its
            # own, outside the caller's. Start the caller's transaction first.
            raw = self.conn.connection.driver_connection
            if not raw.in_transaction:
                raw.execute("BEGIN")
        return self.conn.begin_nested()

    def write_resilient(self, records: _Batch, todo: list[int] | None) -> None:
        """Write ``records[i]`` for ``i`` in ``todo`` (None: all); replace refused ones.

        After a refusal, the records with a known fault (:func:`_known_fault`) are
        set aside at once, in bulk; what is still refused after that is found by
        bisection.
        """
        if todo == [] or self._refusal(records, todo) is None:
            return
        if todo is None:
            todo = list(range(len(records)))
        known = {}
        for i in todo:
            reason = _known_fault(records[i], self.table, self.dialect)
            if reason is not None:
                known[i] = _also(records[i], reason)
        if not known:
            return self._bisect(records, todo)
        keyless = [i for i in known if _key_refused(records[i], self.dialect)]
        for i in keyless:
            records[i] = records[i]._replace(row=None, reason=known[i], is_tombstone=False)
        self._quarantine_only([records[i] for i in keyless])
        for i in set(known) - set(keyless):
            records[i] = records[i]._replace(row=None, reason=known[i], is_tombstone=False)
        self._bisect(records, [i for i in todo if i not in set(keyless)])

    def _bisect(self, records: _Batch, todo: list[int]) -> None:
        """Write ``todo`` in a savepoint; when refused, each half; one refused record
        is set aside with the database's reason."""
        if not todo or (exc := self._refusal(records, todo)) is None:
            return
        if len(todo) > 1:
            half = len(todo) // 2
            self._bisect(records, todo[:half])
            self._bisect(records, todo[half:])
            return
        i = todo[0]
        reason = _also(records[i], _fault_reason(records[i], self.table, exc, self.dialect))
        records[i] = self.set_aside(records[i], reason)

    def _refusal(self, records: _Batch, todo: list[int] | None) -> Exception | None:
        """Write ``records[i]`` for ``i`` in ``todo`` (None: all) in one savepoint; the
        database's refusal if it refused them (the savepoint then rolled back), else None."""
        try:
            with self._savepoint():
                self._write(records.select(todo))
        except _data_errors() as exc:
            return exc
        return None

    def _write(self, columns: Columns) -> None:
        _write_records(self.conn, self.stream, columns, self.sync_run_id, self.now, self.agency_id)

    def set_aside(self, rec: ParsedRecord, reason: str) -> ParsedRecord:
        """Set a refused record aside under its key; without it if the key is refused too."""
        aside = rec._replace(row=None, reason=reason, is_tombstone=False)
        try:
            with self._savepoint():
                self._write(columns_of([aside]))
        except _data_errors():
            self._quarantine_only([aside])
        return aside

    def set_aside_unkeyed(self, rec: ParsedRecord, reason: str) -> ParsedRecord:
        """Set a record aside in ``quarantined_record`` only (see :meth:`_quarantine_only`)."""
        aside = rec._replace(row=None, reason=reason, is_tombstone=False)
        self._quarantine_only([aside])
        return aside

    def _quarantine_only(self, asides: list[ParsedRecord]) -> None:
        """Rows in ``quarantined_record`` only, keys and payloads escaped.

        For keys the core table cannot hold: no current-state row is made for them,
        and each payload (ASCII JSON, every character escaped) keeps the record whole.
        """
        rows = []
        for rec in asides:
            payload = storable_json(rec.payload)
            key = None if rec.natural_key is None else storable_text(rec.natural_key)
            if key is not None and len(key) > MAX_NATURAL_KEY_CHARS:
                key = key[:MAX_NATURAL_KEY_CHARS] + "…"
            rows.append(
                (
                    self.agency_id,
                    self.sync_run_id,
                    self.stream.name,
                    key,
                    CONTRACT_CHECK,
                    rec.reason,
                    _hash(payload),
                    payload,
                    self.now,
                )
            )
        _append(self.conn, quarantined_record, _QUARANTINED_COLUMNS, rows)


def _also(rec: ParsedRecord, reason: str) -> str:
    """``reason``, after the parser's own when the record was malformed already."""
    return reason if rec.reason is None else f"{rec.reason}; {reason}"


def storable_text(text: str) -> str:
    """``text`` with what no warehouse stores escaped: NUL as ``\\u0000`` and lone
    surrogates as ``\\udXXX`` (the way JSON writes them)."""
    text = text.replace("\x00", "\\u0000")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _known_fault(rec: ParsedRecord, table: Table, dialect: str) -> str | None:
    """Why the warehouse cannot hold ``rec``, when it is a known cause; else None.

    Known causes: a lone surrogate (no database stores one), a NUL character on
    PostgreSQL, an integer beyond its column (PostgreSQL's ``integer`` is 32 bits,
    SQLite's 64). Found in Python, so a batch full of them costs one refusal.
    """
    fields: list[tuple[str, Any]] = [("natural key", rec.natural_key)]
    fields += list((rec.row or {}).items())
    for name, value in fields:
        kind = type(value)
        if kind is int:
            low, high = _INT_RANGES["int8"]
            if dialect == "postgresql" and name in table.c:
                low, high = _INT_RANGES.get(_pg_copy_type(table.c[name]), (low, high))
            if not low <= value <= high:
                bits = "32" if high < 2**32 else "64"
                return f"unwritable: {name} is an integer beyond {bits} bits"
        elif kind is str:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"unwritable: {name} holds a lone surrogate (not valid Unicode)"
            if dialect == "postgresql" and "\x00" in value:
                return f"unwritable: {name} holds a NUL character, which PostgreSQL cannot store"
    return None


def _fault_reason(rec: ParsedRecord, table: Table, exc: BaseException, dialect: str) -> str:
    """Why the database refused a record, in one line naming the field when it can."""
    known = _known_fault(rec, table, dialect)
    if known is not None:
        return known
    message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = message[0] if message else type(exc).__name__
    first = "".join(ch if ch.isprintable() else " " for ch in first)[:300]
    return f"unwritable: {type(exc).__name__}: {first}"


def _key_refused(rec: ParsedRecord, dialect: str) -> bool:
    """The natural key itself cannot be stored (a lone surrogate; NUL on PostgreSQL)."""
    key = rec.natural_key
    if key is None:
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return dialect == "postgresql" and "\x00" in key


def _write_records(
    conn: Connection,
    stream: Stream,
    columns: Columns,
    sync_run_id: str,
    now: datetime,
    agency_id: str,
) -> None:
    """The set-based writes of a batch: land, set aside, merge into current state."""
    table = CORE_TABLES[stream.name]
    key_col = natural_key_column(table).name
    keys, times, rows, reasons, payloads, digests, tombs = columns
    name = stream.name
    changed = [None if t is None else naive_utc(t) for t in times]
    landed = [
        (agency_id, sync_run_id, name, key, at, digest, payload, now)
        for key, at, digest, payload, reason in zip(
            keys, changed, digests, payloads, reasons, strict=True
        )
        if reason is None
    ]
    quarantined = [
        (agency_id, sync_run_id, name, key, CONTRACT_CHECK, reason, digest, payload, now)
        for key, digest, payload, reason in zip(keys, digests, payloads, reasons, strict=True)
        if reason is not None
    ]
    newest: dict[str, int] = {}  # natural key -> position of its newest version
    for i, (key, at) in enumerate(zip(keys, times, strict=True)):
        if key is None or at is None:
            continue
        seen = newest.get(key)
        if seen is None or at >= times[seen]:
            newest[key] = i
    _append(conn, landed_record, _LANDED_COLUMNS, landed)
    _append(conn, quarantined_record, _QUARANTINED_COLUMNS, quarantined)

    base_cols = ("agency_id", key_col, "changed_at", "record_hash", "sync_run_id")
    defaults = _insert_defaults(table, now)
    aside_cols = (*base_cols, *defaults, "is_set_aside", "set_aside_reason")
    aside_tail = (*defaults.values(), True)
    tomb_cols = (*base_cols, "is_deleted", "deleted_at", "is_set_aside", "set_aside_reason")
    live = _live_columns(table, now)
    live_values = tuple(live.values())
    good: dict[tuple[str, ...], list[tuple]] = {}  # rows grouped by the parsed columns
    aside: list[tuple] = []
    tombstones: list[tuple] = []
    for key, i in newest.items():
        changed_at, digest, reason = changed[i], digests[i], reasons[i]
        if reason is not None:
            aside.append((agency_id, key, changed_at, digest, sync_run_id, *aside_tail, reason))
        elif tombs[i]:
            tombstones.append(
                (agency_id, key, changed_at, digest, sync_run_id, True, changed_at, False, None)
            )
        else:
            row = rows[i]
            good.setdefault(tuple(row), []).append(
                (*row.values(), agency_id, key, changed_at, digest, sync_run_id, *live_values)
            )
    insert_only = ("first_seen_at",)
    snapshot = stream.is_snapshot
    for parsed_cols, rows in good.items():
        cols = (*parsed_cols, *base_cols, *live)
        if len(set(cols)) != len(cols):  # the parsed row names its key column too
            keep = [i for i, c in enumerate(cols) if c not in base_cols or i >= len(parsed_cols)]
            pick = itemgetter(*keep)
            cols, rows = pick(cols), [pick(r) for r in rows]
        _upsert(conn, table, cols, rows, insert_only, snapshot)
    _upsert(conn, table, aside_cols, aside, (*insert_only, *defaults), snapshot)
    _upsert(conn, table, tomb_cols, tombstones, (), snapshot)


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


def read_watermark(
    conn: Connection, stream_name: str, *, agency_id: str = DEFAULT_AGENCY_ID
) -> datetime | None:
    """The newest change time loaded for an agency's stream (naive UTC), or None."""
    return conn.execute(
        select(sync_state.c.watermark_at).where(
            sync_state.c.agency_id == agency_id, sync_state.c.stream == stream_name
        )
    ).scalar_one_or_none()


def advance_watermark(
    conn: Connection,
    stream_name: str,
    watermark_at: datetime,
    sync_run_id: str,
    now: datetime,
    *,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> None:
    """Move an agency's stream watermark forward (never back) in the caller's transaction."""
    stmt = _insert(conn, sync_state).values(
        agency_id=agency_id,
        stream=stream_name,
        watermark_at=watermark_at,
        sync_run_id=sync_run_id,
        updated_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["agency_id", "stream"],
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
    conn: Connection,
    stream: Stream,
    present_keys: Iterable[str],
    now: datetime,
    sync_run_id: str,
    *,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> int:
    """Soft-delete an agency's snapshot rows (roster members) missing from its latest full
    list; another agency's roster is never touched."""
    table = CORE_TABLES[stream.name]
    key_col = natural_key_column(table)
    present = set(present_keys)
    mine = table.c.agency_id == agency_id
    active = conn.execute(select(key_col).where(mine, table.c.is_active.is_(True))).scalars()
    gone = [k for k in active.all() if k not in present]
    if gone:
        conn.execute(
            update(table)
            .where(mine, key_col.in_(gone))
            .values(is_active=False, left_at=now, sync_run_id=sync_run_id)
        )
    return len(gone)
