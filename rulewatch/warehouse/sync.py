"""Extract and load one source: the plain function behind each flow task.

Page by page: fetch, parse (malformed records set aside with their reason),
in a reader thread up to a batch ahead of the loading (:class:`_ReadAhead`); then
pages are committed in batches: one transaction lands a batch, merges it
into current state and moves the stream's watermark (on SQLite the sources take
turns, one writer at a time).
A batch starts at one page and doubles up to :data:`MAX_ROWS_PER_TRANSACTION`
rows, so the first pages show up at once and a long sync pays for few commits.
A sync can be killed at any point and re-run: the watermark only covers
committed rows, and re-read rows are idempotent.

A sync is one agency's (``settings.agency_id``): its run row, rows, watermarks
and roster carry that agency and no other's are read or touched, so agencies
load side by side into one warehouse.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, update

from rulewatch.common.text import server_text
from rulewatch.config.settings import Settings
from rulewatch.extract import SOURCES
from rulewatch.extract.engine import (
    ParseContext,
    ParsedRecord,
    SourceClient,
    SourceError,
    Stream,
)
from rulewatch.extract.fields import naive_utc
from rulewatch.warehouse.db import database_reason, is_database_error
from rulewatch.warehouse.loader import (
    advance_watermark,
    load_columns,
    mark_departed,
    read_watermark,
)
from rulewatch.warehouse.runs import holder_token
from rulewatch.warehouse.schema import now_utc, sync_run

log = logging.getLogger("rulewatch.warehouse.sync")

#: Longest ``sync_run.error`` kept (characters): it may quote what a server said.
MAX_ERROR_TEXT = 1000

#: Rows per load transaction at most (memory stays flat in the size of the source).
MAX_ROWS_PER_TRANSACTION = 10_000


@dataclass
class SourceSyncResult:
    """The counts of one source's sync, as stored in ``sync_run``."""

    source: str
    sync_run_id: str
    status: str = "running"
    pages: int = 0
    requests: int = 0
    records_read: int = 0
    records_loaded: int = 0
    records_set_aside: int = 0
    records_deleted: int = 0
    departed: int = 0
    duration_seconds: float = 0.0
    error: str | None = None
    set_aside_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Progress:
    """A page was loaded: what a progress bar or a log line shows."""

    source: str
    stream: str
    pages: int
    records_read: int
    records_set_aside: int


ProgressCallback = Callable[[Progress], None]


def sync_source(
    engine: Engine,
    settings: Settings,
    source: str,
    *,
    job_id: str | None = None,
    full_refresh: bool = False,
    progress: ProgressCallback | None = None,
) -> SourceSyncResult:
    """Incrementally extract one source of ``settings``' agency into the warehouse and
    return its counts.

    Raises :class:`SourceError` (after recording the failed run) when the source
    cannot be read; rows of pages loaded before the failure stay loaded.
    """
    endpoint = settings.source(source)
    spec = SOURCES[source]
    pii_key, _ = settings.pii_key()
    result = SourceSyncResult(source=source, sync_run_id=str(uuid.uuid4()))
    started = time.monotonic()
    holder = holder_token(engine)  # taken before the row exists: a dead run is seen as dead
    with engine.begin() as conn:
        conn.execute(
            insert(sync_run).values(
                sync_run_id=result.sync_run_id,
                job_id=job_id or result.sync_run_id,
                agency_id=settings.agency_id,
                source=source,
                is_full_refresh=full_refresh,
                started_at=now_utc(),
                status="running",
                holder=holder,
            )
        )
    fetched_at = datetime.now(UTC)
    ctx = ParseContext(timezone=settings.timezone, pii_key=pii_key, fetched_at=fetched_at)
    client = SourceClient(spec, endpoint, ctx)
    try:
        for stream in spec.streams:
            _sync_stream(engine, client, stream, result, full_refresh, progress, settings.agency_id)
        result.status = "succeeded"
    except SourceError as exc:
        result.status, result.error = "failed", server_text(exc, MAX_ERROR_TEXT)
        raise
    except Exception as exc:
        why = f"{source}: {type(exc).__name__}: {exc}"
        result.status, result.error = "failed", server_text(why, MAX_ERROR_TEXT)
        raise
    finally:
        client.close()
        result.requests = client.requests_made
        result.duration_seconds = round(time.monotonic() - started, 3)
        _finish_run(engine, result)
    return result


def _sync_stream(
    engine: Engine,
    client: SourceClient,
    stream: Stream,
    result: SourceSyncResult,
    full_refresh: bool,
    progress: ProgressCallback | None,
    agency_id: str,
) -> None:
    watermark = None
    if not (full_refresh or stream.is_snapshot):
        with engine.connect() as conn:
            watermark = read_watermark(conn, stream.name, agency_id=agency_id)
    since = None if watermark is None else watermark.replace(tzinfo=UTC)
    present_keys: set[str] = set()
    batch: list[_Page] = []
    batch_rows = 0
    batch_pages = 1  # pages per transaction: doubles up to MAX_ROWS_PER_TRANSACTION rows

    def load_batch() -> None:
        pages = [page for page in batch if page]  # an empty page has no columns
        columns = [list(itertools.chain.from_iterable(f)) for f in zip(*pages, strict=True)]
        if not columns:
            columns = [[] for _ in ParsedRecord._fields]
        sizes = [_size(page) for page in batch]
        batch.clear()
        now = now_utc()
        with _one_writer(engine), engine.begin() as conn:
            loaded = load_columns(
                conn, stream, columns, result.sync_run_id, now, agency_id=agency_id
            )
            times = [t for t in columns[1] if t is not None]
            if times and not stream.is_snapshot:
                newest = naive_utc(max(times))
                advance_watermark(
                    conn, stream.name, newest, result.sync_run_id, now, agency_id=agency_id
                )
        keys, reasons, tombstones = columns[0], columns[3], columns[6]
        for i, rec in loaded.replaced.items():  # refused by the warehouse: set aside
            reasons[i], tombstones[i] = rec.reason, rec.is_tombstone
        position = 0
        for size in sizes:  # counts and progress page by page, once committed
            end = position + size
            _count_page(
                result,
                stream,
                (keys[position:end], reasons[position:end], tombstones[position:end]),
                present_keys,
            )
            position = end
            if progress:
                progress(
                    Progress(
                        client.spec.name,
                        stream.name,
                        result.pages,
                        result.records_read,
                        result.records_set_aside,
                    )
                )

    pages = _ReadAhead(client, stream, since, MAX_ROWS_PER_TRANSACTION)
    try:
        for page in pages:
            batch.append(page)
            batch_rows += _size(page)
            if len(batch) >= batch_pages or batch_rows >= MAX_ROWS_PER_TRANSACTION:
                load_batch()
                batch_rows, batch_pages = 0, batch_pages * 2
        if batch:
            load_batch()
    except SourceError:
        if batch:  # what was read before the failure is loaded
            load_batch()
        raise
    finally:
        pages.close()
    if stream.is_snapshot:
        with engine.begin() as conn:
            result.departed += mark_departed(
                conn, stream, present_keys, now_utc(), result.sync_run_id, agency_id=agency_id
            )


_WRITERS: dict[str, threading.Lock] = {}
_WRITERS_LOCK = threading.Lock()


def _one_writer(engine: Engine) -> contextlib.AbstractContextManager:
    """SQLite lets one connection write at a time and makes the others poll for the
    lock, sleeping up to 100 ms between tries; the sources of one process queue on a
    lock instead and start the moment the writer before them commits."""
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(str(engine.url), threading.Lock())


def _count_page(
    result: SourceSyncResult,
    stream: Stream,
    page: tuple[list[str | None], list[str | None], list[bool]],
    present_keys: set[str],
) -> None:
    """Count one committed page: its natural keys, set-aside reasons and tombstone flags."""
    keys, reasons, tombstones = page
    result.pages += 1
    result.records_read += len(keys)
    for reason, tombstone in zip(reasons, tombstones, strict=True):
        if reason is not None:
            result.records_set_aside += 1
            kind = reason.split(":", 1)[0]
            result.set_aside_reasons[kind] = result.set_aside_reasons.get(kind, 0) + 1
        else:
            result.records_loaded += 1
            result.records_deleted += tombstone
    if stream.is_snapshot:
        present_keys.update(k for k in keys if k is not None)


#: A parsed page column by column: ParsedRecord's fields, each a tuple over the records.
#: A batch waiting for its transaction holds a few tuples per page rather than an object
#: per record, so the garbage collector's full passes (which walk every tracked object
#: each time the long-lived ones grow by a quarter) stay rare and short.
_Page = tuple[tuple, ...]


def _size(page: _Page) -> int:
    return len(page[0]) if page else 0


class _ReadAhead:
    """The pages of one stream, read and parsed ahead of the loading in a thread of its own.

    While a batch is loaded, the next one is requested, received and parsed: the
    source's time to build pages, their parsing and the warehouse's time to write
    the batch before overlap. The pages waiting hold at most ``max_rows`` records
    (and one page always fits), so memory stays bounded: a batch being written and
    at most a batch waiting. The reader runs in a copy of the caller's context (a
    Prefect task's log lines keep naming the task); its failure is raised where its
    next page would have been, after the pages read before it.
    """

    def __init__(
        self, client: SourceClient, stream: Stream, since: datetime | None, max_rows: int
    ) -> None:
        self._client, self._stream, self._since = client, stream, since
        self._max_rows = max_rows
        self._items: collections.deque[tuple[str, Any, int]] = collections.deque()
        self._waiting_rows = 0  # records in the pages waiting
        self._changed = threading.Condition()
        self._closed = False
        self._done = False  # the reader's last word (the end, or its error) was taken
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._read,), name=f"read-{stream.name}", daemon=True
        )
        self._thread.start()

    def _read(self) -> None:
        ctx = self._client.parse_context
        parse = self._stream.parse_fields
        raw_pages = self._stream.paginator.pages(self._client, self._stream, self._since)
        try:
            for raw_page in raw_pages:
                page = tuple(zip(*[parse(raw, ctx) for raw in raw_page], strict=True))
                if not self._put("page", page, _size(page)):
                    return
            self._put("end", None, 0)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._put("error", exc, 0)
        finally:
            raw_pages.close()

    def _put(self, kind: str, value: Any, rows: int) -> bool:
        with self._changed:
            while (
                not self._closed
                and self._waiting_rows
                and self._waiting_rows + rows > self._max_rows
            ):
                self._changed.wait()  # until the loader took enough
            if self._closed:
                return False
            self._items.append((kind, value, rows))
            self._waiting_rows += rows
            self._changed.notify()
        return True

    def __iter__(self) -> Iterator[_Page]:
        while True:
            with self._changed:
                while not self._items:
                    self._changed.wait()
                kind, value, rows = self._items.popleft()
                self._waiting_rows -= rows
                self._changed.notify()
            self._done = kind != "page"
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    def close(self) -> None:
        """Stop reading, and wait for the reader to end.

        When the loader stopped before the reader's last word (the warehouse failed),
        the request in flight is cut off and no other made, so the failure is told now;
        only a retry's pause already begun still runs out (within its deadline).
        """
        with self._changed:
            self._closed = True
            self._items.clear()  # what was read and not loaded is dropped at once
            self._changed.notify_all()  # a reader waiting to hand over a page sees closed
        if not self._done:
            self._client.cancel()
        self._thread.join()


def _finish_run(engine: Engine, result: SourceSyncResult) -> None:
    try:
        with engine.begin() as conn:
            conn.execute(
                update(sync_run)
                .where(sync_run.c.sync_run_id == result.sync_run_id)
                .values(
                    status=result.status,
                    finished_at=now_utc(),
                    pages=result.pages,
                    records_read=result.records_read,
                    records_loaded=result.records_loaded,
                    records_set_aside=result.records_set_aside,
                    duration_seconds=result.duration_seconds,
                    error=result.error,
                )
            )
    except Exception as exc:  # noqa: BLE001 - the original error matters more
        if not is_database_error(exc):
            log.exception("could not record the end of sync run %s", result.sync_run_id)
            return
        # the database is full or gone: the reason in one line (the next job marks the
        # run abandoned once its holder is gone)
        log.error(
            "could not record the end of sync run %s: %s",
            result.sync_run_id,
            database_reason(exc),
        )
