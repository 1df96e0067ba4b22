"""The one engine that talks to every source: HTTP, retries, paging, parsing.

A source is declared as data (:class:`SourceSpec` with its :class:`Stream` s);
this module does the requests, honours ``Retry-After``, retries transient
failures with bounded backoff, pages with the stream's paginator and turns each
record into a :class:`ParsedRecord`. Memory is bounded by one page.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import requests
from requests.adapters import HTTPAdapter

try:  # prefect depends on orjson; several times faster than json for the same text
    import orjson
except ImportError:  # pragma: no cover - the stdlib does the same, slower
    orjson = None
from urllib3.util.retry import Retry

from rulewatch.logs import log_retry
from rulewatch.settings import SourceEndpoint
from rulewatch.sources.fields import Malformed

USER_AGENT = "rulewatch/0.1"


class SourceError(Exception):
    """A source could not be read (after its retries); the message names it."""


class SourceAuthError(SourceError):
    """401: missing or wrong credentials. Never retried."""


@dataclass(frozen=True)
class ParseContext:
    """What parsing needs besides the record: the timezone and the PII key."""

    timezone: ZoneInfo
    pii_key: bytes
    fetched_at: datetime  # aware UTC; the change time of records that carry none

    def pseudonym(self, value: str) -> str:
        """HMAC-SHA256 of the value, spaces stripped and upper-cased, lower-case hex."""
        return _pseudonym(self.pii_key, value)


@lru_cache(maxsize=4096)  # scrubbing and parsing a record ask for the same one
def _pseudonym(key: bytes, value: str) -> str:
    normalised = value.strip().upper().encode("utf-8")
    return hmac.new(key, normalised, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ParsedRecord:
    """One received record: a typed row, a tombstone, or set aside with a reason."""

    natural_key: str | None
    changed_at: datetime | None  # aware UTC
    row: dict[str, Any] | None  # typed core row (None when set aside)
    reason: str | None  # why it was set aside
    payload: dict[str, Any]  # as received, personal data scrubbed
    is_tombstone: bool = False

    @property
    def is_set_aside(self) -> bool:
        return self.reason is not None

    def payload_json(self) -> str:
        """Canonical JSON of the payload (sorted keys, compact, UTF-8): what is hashed."""
        return canonical_json(self.payload)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, non-ASCII kept; orjson writes the same text as json for
    the JSON a source sends (strings, integers, booleans, null, lists, objects)."""
    if orjson is not None and not _has_float(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except (TypeError, orjson.JSONEncodeError):
            pass  # e.g. an integer beyond 64 bits: json writes it
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _has_float(value: Any) -> bool:
    """Floats are the one JSON type the two libraries may write differently (1e+16).

    Runs for every record: exact-type checks first (what a JSON parser makes),
    ``isinstance`` only for anything else.
    """
    kind = type(value)
    if kind is dict:
        items = value.values()
    elif kind is list:
        items = value
    elif kind in _NOT_FLOAT:
        return False
    elif isinstance(value, float):
        return True
    elif isinstance(value, dict):
        items = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return False
    for item in items:  # noqa: SIM110 - a loop: no generator per record
        if type(item) not in _NOT_FLOAT and _has_float(item):
            return True
    return False


_NOT_FLOAT = frozenset({str, int, bool, type(None)})


class Paginator(Protocol):
    """Yields the raw records of a stream, page by page."""

    def pages(
        self, client: SourceClient, stream: Stream, since: datetime | None
    ) -> Iterator[list]: ...


@dataclass(frozen=True)
class Stream:
    """One endpoint of a source, declared as data."""

    name: str  # e.g. "permits.applications"; also the warehouse's stream id
    path: str
    natural_key: str
    paginator: Paginator
    parse: Callable[[dict, ParseContext], dict[str, Any]]  # -> typed row, or raises Malformed
    change_time: Callable[[dict, ParseContext], datetime]  # -> aware UTC, or raises Malformed
    scrub: Callable[[Any, ParseContext], Any] = lambda record, _ctx: record
    is_tombstone: Callable[[dict], bool] = lambda _record: False
    is_snapshot: bool = False  # the whole list every time (a roster): no watermark

    def parse_record(self, raw: Any, ctx: ParseContext) -> ParsedRecord:
        """Type one record; a contract breach sets it aside instead of raising."""
        payload = self.scrub(raw, ctx)
        natural_key: str | None = None
        changed_at: datetime | None = None
        if not isinstance(raw, dict):
            return ParsedRecord(None, None, None, "record is not a JSON object", payload)
        value = raw.get(self.natural_key)
        if isinstance(value, str) and value.strip():
            natural_key = value
        try:
            changed_at = self.change_time(raw, ctx)
            if self.is_tombstone(raw):
                if natural_key is None:
                    raise Malformed(f"{self.natural_key}: missing natural key")
                return ParsedRecord(natural_key, changed_at, None, None, payload, True)
            row = self.parse(raw, ctx)
        except Malformed as exc:
            return ParsedRecord(natural_key, changed_at, None, str(exc), payload)
        return ParsedRecord(natural_key, changed_at, row, None, payload)


@dataclass(frozen=True)
class SourceSpec:
    """A source system: how to authenticate and which streams it has."""

    name: str
    auth: Callable[[requests.Session, Mapping[str, str]], None]
    streams: tuple[Stream, ...]
    credential_hint: str  # which variables to check on a 401


class _CappedRetry(Retry):
    """urllib3's Retry, with Retry-After capped so a source cannot stall a night."""

    max_retry_after: float = 120.0
    source: str = ""  # named in the retry log line

    def get_retry_after(self, response) -> float | None:  # noqa: ANN001 - urllib3 type
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.max_retry_after)

    def new(self, **kw: Any) -> _CappedRetry:
        retry = super().new(**kw)
        retry.max_retry_after = self.max_retry_after
        retry.source = self.source
        return retry

    def sleep(self, response=None) -> None:  # noqa: ANN001 - urllib3 type
        log_retry(self.source, self, response)  # "docreview: HTTP 503, retry 2/5 in 4 s"
        super().sleep(response)


@dataclass
class SourceClient:
    """A requests session for one source with auth and bounded retries."""

    spec: SourceSpec
    endpoint: SourceEndpoint
    parse_context: ParseContext
    session: requests.Session = field(init=False)
    requests_made: int = 0

    def __post_init__(self) -> None:
        opts = self.endpoint.options
        retry = _CappedRetry(
            total=opts.max_retries,
            connect=opts.max_retries,
            read=opts.max_retries,
            status=opts.max_retries,
            other=opts.max_retries,
            backoff_factor=opts.backoff_factor,
            backoff_max=30,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        retry.max_retry_after = opts.max_retry_after_seconds
        retry.source = self.spec.name
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=2, pool_maxsize=2)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        self.spec.auth(self.session, self.endpoint.credentials)

    @property
    def page_size(self) -> int:
        return self.endpoint.options.page_size

    def url(self, path: str) -> str:
        return self.endpoint.base_url + path

    def get(self, url: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        """GET with retries; a final failure raises SourceError naming the source."""
        name = self.spec.name
        self.requests_made += 1
        try:
            response = self.session.get(
                url, params=params, timeout=self.endpoint.options.timeout_seconds
            )
        except requests.exceptions.RetryError as exc:
            raise SourceError(f"{name}: {url} kept failing after retries ({_why(exc)})") from None
        except requests.exceptions.ConnectionError as exc:
            raise SourceError(f"{name}: cannot reach {url} ({_why(exc)})") from None
        except requests.exceptions.Timeout:
            raise SourceError(f"{name}: {url} timed out after retries") from None
        except requests.exceptions.RequestException as exc:
            raise SourceError(f"{name}: request to {url} failed: {_why(exc)}") from None
        if response.status_code == 401:
            raise SourceAuthError(
                f"{name}: 401 Unauthorized from {response.url}; check {self.spec.credential_hint}"
            )
        if response.status_code != 200:
            detail = _error_text(response)
            raise SourceError(f"{name}: HTTP {response.status_code} from {response.url}{detail}")
        return response

    def get_json(
        self, url: str, params: Mapping[str, Any] | None = None
    ) -> tuple[Any, requests.Response]:
        response = self.get(url, params)
        try:
            return _loads(response.content), response
        except ValueError:
            raise SourceError(f"{self.spec.name}: {response.url} did not return JSON") from None

    def close(self) -> None:
        self.session.close()


def _loads(content: bytes) -> Any:
    if orjson is not None:
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass  # what orjson refuses and json reads (NaN, huge integers, lone surrogates)
    return json.loads(content)


def _why(exc: Exception) -> str:
    text = str(exc)
    match = re.search(r"Caused by (\w+)\(", text)
    reason = re.search(r"too many (\d\d\d) error responses", text)
    if reason:
        return f"too many {reason.group(1)} responses"
    return match.group(1) if match else text.splitlines()[0][:200]


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and "error" in body:
        return f": {body['error']}"
    return ""


# --- paginators ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CursorPaginator:
    """An opaque cursor from the previous page positions the next one."""

    filter_param: str
    format_since: Callable[[datetime, ParseContext], str]
    size_param: str
    cursor_param: str
    data_key: str
    next_key: str

    def pages(self, client: SourceClient, stream: Stream, since: datetime | None) -> Iterator[list]:
        url = client.url(stream.path)
        params: dict[str, Any] = {self.size_param: client.page_size}
        if since is not None:
            params[self.filter_param] = self.format_since(since, client.parse_context)
        while True:
            body, _ = client.get_json(url, params)
            if not isinstance(body, dict) or not isinstance(body.get(self.data_key), list):
                raise SourceError(f"{stream.name}: page has no {self.data_key!r} list")
            yield body[self.data_key]
            cursor = body.get(self.next_key)
            if cursor is None:
                return
            params = {self.size_param: client.page_size, self.cursor_param: cursor}


@dataclass(frozen=True)
class ChangeTimePaginator:
    """Page numbers made safe by paging on the change-time filter itself.

    Each request asks for page 1 from the newest change time seen so far (the
    filter is inclusive, so nothing between pages is lost when records move
    while we read). Only when a whole page shares one change time does it step
    to the next page number; if a key from such a block later shows up changed,
    the block is re-read from its start, since a record behind it may have slid
    onto a page already read.
    """

    filter_param: str
    format_since: Callable[[datetime, ParseContext], str]
    truncate: Callable[[datetime], datetime]  # to the filter's precision
    page_param: str
    size_param: str
    records_key: str | None  # None: the body is the list itself
    follow_link: bool = False  # step pages through the Link rel="next" header
    max_rereads: int = 10

    def pages(self, client: SourceClient, stream: Stream, since: datetime | None) -> Iterator[list]:
        base_url = client.url(stream.path)
        since = None if since is None else self.truncate(since)
        page = 1
        next_url: str | None = None
        blocks: dict[str, tuple[datetime | None, datetime]] = {}  # key -> (block since, time)
        reread_for: set[tuple[str, datetime]] = set()  # versions that already caused a re-read
        rereads = 0
        while True:
            if next_url is not None:
                body, response = client.get_json(next_url)
            else:
                params: dict[str, Any] = {self.page_param: page, self.size_param: client.page_size}
                if since is not None:
                    params[self.filter_param] = self.format_since(since, client.parse_context)
                body, response = client.get_json(base_url, params)
            records = body if self.records_key is None else _records(body, self.records_key, stream)
            if not isinstance(records, list):
                raise SourceError(f"{stream.name}: page is not a JSON list")
            yield records
            # Before the last-page checks: a moved record shows up at the end, often on
            # the last page, and the record that slid back is lost unless re-read now.
            moved_from = _moved_block(stream, records, blocks, reread_for, client)
            if moved_from is not None and rereads < self.max_rereads:
                rereads += 1
                since, page, next_url = moved_from[0], 1, None
                blocks.clear()
                continue
            link = response.links.get("next", {}).get("url") if self.follow_link else None
            link = None if link is None else urljoin(response.url, link)  # relative to this page
            if not records or (self.follow_link and link is None):
                return
            if not self.follow_link and len(records) < client.page_size:
                return
            newest = _last_time(stream, records, client)
            newest = None if newest is None else self.truncate(newest)
            if newest is not None and (since is None or newest > since):
                since, page, next_url = newest, 1, None
            else:  # a whole page at one change time: step the page number
                for r in records:
                    k, t = _key_time(stream, r, client)
                    if k is not None and t is not None:
                        blocks[k] = (since, t)
                page += 1
                next_url = link


@dataclass(frozen=True)
class WholeListPaginator:
    """The whole list in one response under ``list_key``: no paging, no filter."""

    list_key: str

    def pages(self, client: SourceClient, stream: Stream, since: datetime | None) -> Iterator[list]:
        body, _ = client.get_json(client.url(stream.path))
        records = _records(body, self.list_key, stream)
        if not isinstance(records, list):
            raise SourceError(f"{stream.name}: body has no {self.list_key!r} list")
        yield records


def _records(body: Any, key: str, stream: Stream) -> Any:
    if not isinstance(body, dict):
        raise SourceError(f"{stream.name}: page is not a JSON object")
    return body.get(key)


def _last_time(stream: Stream, records: list, client: SourceClient) -> datetime | None:
    """The change time of the page's last record that has one.

    Pages are ordered by change time, so this is the page's newest; were a source
    to break the order it is older than the newest, so the next request re-reads
    rather than skips. (Parsing every record's time here cost as much as parsing
    the records.)
    """
    for record in reversed(records):
        moment = _safe_time(stream, record, client)
        if moment is not None:
            return moment
    return None


def _safe_time(stream: Stream, record: Any, client: SourceClient) -> datetime | None:
    try:
        return stream.change_time(record, client.parse_context)
    except (Malformed, AttributeError, TypeError):
        return None


def _key_time(
    stream: Stream, record: Any, client: SourceClient
) -> tuple[str | None, datetime | None]:
    if not isinstance(record, dict):
        return None, None
    value = record.get(stream.natural_key)
    return (value if isinstance(value, str) else None), _safe_time(stream, record, client)


def _moved_block(
    stream: Stream,
    records: list,
    blocks: dict[str, tuple[datetime | None, datetime]],
    reread_for: set[tuple[str, datetime]],
    client: SourceClient,
) -> tuple[datetime | None, datetime] | None:
    """The block a record moved out of while we paged through it, if any.

    A version re-reads its block once: in a change log the old version stays in
    the block, so seeing the new one again after the re-read is no move.
    """
    if not blocks:
        return None
    for record in records:
        k, t = _key_time(stream, record, client)
        if k is None or t is None or k not in blocks or t == blocks[k][1]:
            continue
        if (k, t) not in reread_for:
            reread_for.add((k, t))
            return blocks[k]
    return None


def utc_ms(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))
