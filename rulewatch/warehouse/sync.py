"""Extract and load one source: the plain function behind each flow task.

Page by page: fetch, parse (malformed records set aside with their reason);
then pages are committed in batches: one transaction lands a batch, merges it
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

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

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
from rulewatch.warehouse.loader import (
    advance_watermark,
    load_page,
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
    batch: list[list[ParsedRecord]] = []
    batch_rows = 0
    batch_pages = 1  # pages per transaction: doubles up to MAX_ROWS_PER_TRANSACTION rows

    def load_batch() -> None:
        records = [p for page in batch for p in page]
        now = now_utc()
        with _one_writer(engine), engine.begin() as conn:
            loaded = load_page(conn, stream, records, result.sync_run_id, now, agency_id=agency_id)
            times = [p.changed_at for p in records if p.changed_at is not None]
            if times and not stream.is_snapshot:
                newest = naive_utc(max(times))
                advance_watermark(
                    conn, stream.name, newest, result.sync_run_id, now, agency_id=agency_id
                )
        _replace_refused(batch, loaded.replaced)
        committed = list(batch)
        batch.clear()
        for page in committed:  # counts and progress page by page, once committed
            _count_page(result, stream, page, present_keys)
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

    pages = _parsed_pages(client, stream, since)
    try:
        for page in pages:
            batch.append(page)
            batch_rows += len(page)
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


def _replace_refused(batch: list[list[ParsedRecord]], replaced: dict[int, ParsedRecord]) -> None:
    """Put the versions the loader set aside (refused by the warehouse) into their pages,
    so they are counted as set aside with their reason."""
    if not replaced:
        return
    position = 0
    for page in batch:
        for i in range(len(page)):
            if position + i in replaced:
                page[i] = replaced[position + i]
        position += len(page)


def _count_page(
    result: SourceSyncResult, stream: Stream, page: list[ParsedRecord], present_keys: set[str]
) -> None:
    result.pages += 1
    result.records_read += len(page)
    for p in page:
        if p.reason is not None:
            result.records_set_aside += 1
            kind = p.reason.split(":", 1)[0]
            result.set_aside_reasons[kind] = result.set_aside_reasons.get(kind, 0) + 1
        else:
            result.records_loaded += 1
            result.records_deleted += p.is_tombstone
        if stream.is_snapshot and p.natural_key is not None:
            present_keys.add(p.natural_key)


def _parsed_pages(
    client: SourceClient, stream: Stream, since: datetime | None
) -> Iterator[list[ParsedRecord]]:
    ctx = client.parse_context
    for raw_page in stream.paginator.pages(client, stream, since):
        yield [stream.parse_record(raw, ctx) for raw in raw_page]


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
    except Exception:  # noqa: BLE001 - the original error matters more
        log.exception("could not record the end of sync run %s", result.sync_run_id)
