"""The one engine that talks to every source: HTTP, retries, paging, parsing.

A source is declared as data (:class:`SourceSpec` with its :class:`Stream` s);
this module does the requests, honours ``Retry-After``, retries transient
failures with bounded backoff, pages with the stream's paginator and turns each
record into a :class:`ParsedRecord`. A paginator holds two pages at most (the
one read, and the one before it to tell a server that repeats itself).
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import itertools
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple, NoReturn, Protocol
from urllib.parse import parse_qsl, urljoin, urlsplit
from zoneinfo import ZoneInfo

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util import parse_url

try:  # prefect depends on orjson; several times faster than json for the same text
    import orjson
except ImportError:  # pragma: no cover - the stdlib does the same, slower
    orjson = None
from urllib3.util.retry import Retry

from rulewatch.common.logs import log_retry
from rulewatch.common.text import server_text
from rulewatch.config.settings import SourceEndpoint
from rulewatch.config.source_systems import SourceSystem
from rulewatch.extract.fields import Malformed

USER_AGENT = "rulewatch/0.1"


class _ServerTextFilter(logging.Filter):
    """urllib3 logs each retry with the error, which may quote the server's bytes
    (``BadStatusLine('...')``): cleaned and capped like any server text."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = server_text(record.getMessage(), 500), None
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_ServerTextFilter())


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
    inner, outer = _hmac_sha256_states(key)
    # HMAC-SHA256 (RFC 2104) from the key's padded states, copied: half the cost of
    # hmac.digest, which pads and hashes the key again for every value
    digest = inner.copy()
    digest.update(normalised)
    result = outer.copy()
    result.update(digest.digest())
    return result.hexdigest()


@lru_cache(maxsize=8)
def _hmac_sha256_states(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states after the key XOR ipad and the key XOR opad blocks (RFC 2104)."""
    block = hashlib.sha256().block_size
    padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
    return inner, outer


class ParsedRecord(NamedTuple):
    """One received record: a typed row, a tombstone, or set aside with a reason.

    The payload is kept as the text the warehouse stores and its hash, made when
    the record is parsed: a batch of records waiting for its transaction then holds
    strings, not the nested dicts and lists of the JSON (which the garbage collector
    would otherwise walk again and again while a batch fills).
    """

    natural_key: str | None
    changed_at: datetime | None  # aware UTC
    row: dict[str, Any] | None  # typed core row (None when set aside)
    reason: str | None  # why it was set aside
    payload_text: str  # as received, personal data scrubbed: see stored_payload
    record_hash: str  # SHA-256 (hex) of payload_text's UTF-8
    is_tombstone: bool = False

    @property
    def is_set_aside(self) -> bool:
        return self.reason is not None

    @property
    def payload(self) -> Any:
        """The payload as received, personal data scrubbed (read back from its text)."""
        return json.loads(self.payload_text)

    def payload_json(self) -> str:
        """Canonical JSON of the payload (sorted keys, compact, UTF-8): what is hashed."""
        return canonical_json(self.payload)


def stored_payload(payload: Any) -> tuple[str, str]:
    """The payload as the warehouse stores it, and its hash (SHA-256, hex).

    Canonical JSON (:func:`canonical_json`), or, when that is not valid UTF-8 (a lone
    surrogate), :func:`storable_json`'s ASCII form, hashed as ASCII.
    """
    try:
        data = canonical_json_bytes(payload)
    except UnicodeEncodeError:
        text = storable_json(payload)
        return text, hashlib.sha256(text.encode("ascii")).hexdigest()
    return data.decode("utf-8"), hashlib.sha256(data).hexdigest()


def storable_json(value: Any) -> str:
    """Canonical JSON with every non-ASCII character escaped: any database stores it,
    and it reads back to exactly ``value`` (NUL and lone surrogates included)."""
    return json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"))


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, non-ASCII kept; orjson writes the same text as json for
    the JSON a source sends (strings, integers, booleans, null, lists, objects)."""
    if orjson is not None and not _has_float(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except (TypeError, orjson.JSONEncodeError):
            pass  # e.g. an integer beyond 64 bits: json writes it
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def canonical_json_bytes(value: Any) -> bytes:
    """:func:`canonical_json` as UTF-8, without a round trip through ``str`` on the
    fast path; UnicodeEncodeError when the text holds a lone surrogate."""
    if orjson is not None and not _has_float(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except (TypeError, orjson.JSONEncodeError):
            pass  # an integer beyond 64 bits, a lone surrogate: json writes it
    return canonical_json(value).encode("utf-8")


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
        return ParsedRecord._make(self.parse_fields(raw, ctx))

    def parse_fields(self, raw: Any, ctx: ParseContext) -> tuple:
        """:meth:`parse_record`'s fields, as a plain tuple: what a page is parsed into
        (pages are kept column by column, so a record object would only be thrown away)."""
        text, digest = stored_payload(self.scrub(raw, ctx))
        natural_key: str | None = None
        changed_at: datetime | None = None
        if not isinstance(raw, dict):
            return (None, None, None, "record is not a JSON object", text, digest, False)
        value = raw.get(self.natural_key)
        if isinstance(value, str) and value.strip():
            natural_key = value
        try:
            changed_at = self.change_time(raw, ctx)
            if self.is_tombstone(raw):
                if natural_key is None:
                    raise Malformed(f"{self.natural_key}: missing natural key")
                return (natural_key, changed_at, None, None, text, digest, True)
            row = self.parse(raw, ctx)
        except Malformed as exc:  # the reason quotes the server's value: cleaned, capped
            return (natural_key, changed_at, None, server_text(exc), text, digest, False)
        return (natural_key, changed_at, row, None, text, digest, False)


@dataclass(frozen=True)
class SourceSpec:
    """A source system: its configuration facts, how to authenticate, which streams it has."""

    system: SourceSystem  # name, environment variables, page-size limit
    # sets the session's auth from the credentials, by the keys of system.credential_envs
    auth: Callable[[requests.Session, Mapping[str, str]], None]
    streams: tuple[Stream, ...]

    @property
    def name(self) -> str:
        return self.system.name

    @property
    def credential_hint(self) -> str:
        """Which variables to check on a 401."""
        return self.system.credential_hint


class _Tries:
    """The wall-clock bounds of one request: each try, and all its tries with their waits.

    urllib3 bounds the connect and each read, not a whole answer: a server that
    trickles a byte every few seconds never times out. As urllib3 advises, a
    watcher thread cuts a try off at its deadline (it shuts the try's socket, so
    the blocked read returns at once): one thread for every client of the process
    (:class:`_Watchdog`), not one per try, since starting a thread waits for the
    interpreter lock and a sync makes thousands of tries. :class:`_BoundedRetry`
    starts no retry whose wait would pass the request's deadline.
    """

    def __init__(self, try_seconds: float, total_seconds: float) -> None:
        self.try_seconds = try_seconds
        self.total_seconds = total_seconds
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._serial = 0  # every try of this client, never reset: names the one armed
        self.cancelled = False  # no further try: the client's reader was stopped
        self.begin()

    def begin(self) -> None:
        """A new request starts: reset the count and the clock."""
        self.started = time.monotonic()
        self.count = 0
        self.expired = False  # a try was cut off by the watcher
        self.cut_by_try = False  # ... at request_deadline_seconds (not the retry deadline)
        self.refused_wait: float | None = None  # a wait that did not fit in the deadline
        self._active = False
        self._cut = 0  # the try the watcher cut off last

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def time_left(self) -> float:
        return self.started + self.total_seconds - time.monotonic()

    def start_try(self) -> float:
        """Arm the watcher for a new try; the seconds it may take."""
        with self._lock:
            self.count += 1
            self._active = True
            self._sock = None
            budget = max(min(self.try_seconds, self.time_left()), 0.001)
            by_try = budget >= self.try_seconds
            self._serial += 1
            armed = (self._serial, self.count, by_try)
        _WATCHDOG.watch(time.monotonic() + budget, self, armed)
        return budget

    def attach(self, sock: socket.socket | None) -> None:
        """The try's socket, once there is one (it outlives the connection object when
        the server closes after the answer: the body is still read from it)."""
        with self._lock:
            self._sock = sock
            if self.cancelled or (self._cut == self.count and self._active):
                _shut(sock)  # cancelled, or its deadline passed while connecting

    def finish(self) -> None:
        with self._lock:
            self._active = False

    def cancel(self) -> None:
        """End the try in flight now and make no further one."""
        with self._lock:
            self.cancelled = True
            if self._active:
                _shut(self._sock)

    def _expire(self, armed: tuple[int, int, bool]) -> None:
        serial, number, by_try = armed
        with self._lock:
            if serial != self._serial or not self._active:
                return  # that try is over
            self.expired, self._cut = True, number
            self.cut_by_try |= by_try
            _shut(self._sock)

    @property
    def last_cut(self) -> bool:
        """Whether the watcher cut off the last try."""
        return self._cut == self.count

    def describe(self) -> str:
        """``after N tries over S s``, and why no further try was made when time ran out."""
        tries = "1 try" if self.count == 1 else f"{self.count} tries"
        text = f"after {tries} over {self.elapsed:.1f} s"
        if self.refused_wait is not None:
            text += (
                f"; a further wait of {self.refused_wait:g} s would pass the "
                f"{self.total_seconds:g} s retry deadline"
            )
        elif self.time_left() < _SLACK:
            text += f"; retry_deadline_seconds {self.total_seconds:g} reached"
        return text


class _Watchdog:
    """One daemon thread that cuts off every try of the process at its deadline.

    :meth:`watch` files a deadline; at that time the thread calls the try's
    :meth:`_Tries._expire`, which does nothing when that try is over (its serial
    number is no longer the armed one, or no try is active; deadlines are
    never withdrawn: a finished try's entry just falls due harmlessly, so the heap
    holds at most the tries of the last ``request_deadline_seconds``).
    """

    def __init__(self) -> None:
        self._due: list[tuple[float, int, _Tries, tuple[int, int, bool]]] = []
        self._order = itertools.count()  # ties never compare _Tries
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, when: float, tries: _Tries, armed: tuple[int, int, bool]) -> None:
        """Call ``tries._expire(armed)`` at ``when`` (``time.monotonic``)."""
        with self._wake:
            heapq.heappush(self._due, (when, next(self._order), tries, armed))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="rulewatch-deadlines", daemon=True
                )
                self._thread.start()
            elif self._due[0][0] == when:  # sooner than what the thread waits for
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._wake.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, tries, armed = heapq.heappop(self._due)
            tries._expire(armed)  # noqa: SLF001 - the watchdog is the Tries' own


_WATCHDOG = _Watchdog()


#: Seconds too few to start another try in.
_SLACK = 0.05


def _shut(sock: socket.socket | None) -> None:
    """End every read on ``sock`` at once (another thread's too)."""
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            # socket's own shutdown, also for TLS: SSLSocket's would drop its TLS state
            # under the reading thread's feet
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _TimedConnection:
    """Mixin for urllib3 connections: each try runs under :class:`_Tries`."""

    tries: _Tries
    _armed = False

    def connect(self) -> None:
        if not self._armed:  # HTTPS connects before the request
            self._arm()
        super().connect()  # type: ignore[misc]
        self.tries.attach(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        if not self._armed:
            self._arm()
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._armed = False  # the next request on this connection is a new try
        self.tries.attach(self.sock)  # a kept-alive connection did not connect

    def _arm(self) -> None:
        budget = self.tries.start_try()
        self._armed = True
        timeout = getattr(self, "timeout", None)
        if isinstance(timeout, (int, float)):  # the connect timeout, within the deadline
            self.timeout = min(timeout, budget)


class _GuardedAdapter(HTTPAdapter):
    """requests' adapter whose connections run under the request's deadlines."""

    def __init__(self, tries: _Tries, **kwargs: Any) -> None:
        http = type("TimedHTTPConnection", (_TimedConnection, HTTPConnection), {"tries": tries})
        https = type("TimedHTTPSConnection", (_TimedConnection, HTTPSConnection), {"tries": tries})
        self._pool_classes = {
            "http": type("TimedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("TimedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = self._pool_classes
        return manager


class _BoundedRetry(Retry):
    """urllib3's Retry, bounded in time as well as count, and logging each retry.

    urllib3 caps ``Retry-After`` itself (``retry_after_max``), so a source cannot
    stall a night; it has no notion of a deadline across tries nor a log line
    naming the source. This subclass adds only those two: a retry whose wait
    (``Retry-After`` or backoff) would pass the request's deadline is not made
    (the request fails now, saying so), and each retry is logged before its pause.
    """

    def __init__(self, *, tries: _Tries | None = None, source: str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self.tries = tries
        self.source = source  # named in the retry log line

    def new(self, **kw: Any) -> _BoundedRetry:
        return super().new(tries=self.tries, source=self.source, **kw)

    def increment(  # noqa: PLR0913 - urllib3's signature
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> _BoundedRetry:
        if self.tries is not None and self.tries.cancelled:
            raise MaxRetryError(_pool, url, error or ResponseError("the reader was stopped"))
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        if self.tries is not None:
            wait = None
            if response is not None and retry.respect_retry_after_header:
                wait = retry.get_retry_after(response)
            wait = wait or retry.get_backoff_time()
            if wait + _SLACK >= self.tries.time_left():
                left = self.tries.time_left()
                self.tries.refused_wait = wait if wait and left > _SLACK else None  # else: reached
                reason = error or ResponseError(f"no time left for a retry in {wait:g} s")
                raise MaxRetryError(_pool, url, reason)
        return retry

    def sleep(self, response=None) -> None:  # noqa: ANN001 - urllib3 type
        log_retry(self.source, self, response)  # "docreview: HTTP 503, retry 2/5 in 4 s"
        super().sleep(response)


@dataclass
class SourceClient:
    """A requests session for one source: auth, bounded retries and deadlines, and
    credentials sent only to the configured base URL's origin."""

    spec: SourceSpec
    endpoint: SourceEndpoint
    parse_context: ParseContext
    session: requests.Session = field(init=False)
    requests_made: int = 0

    def __post_init__(self) -> None:
        opts = self.endpoint.options
        self.tries = _Tries(opts.request_deadline_seconds, opts.retry_deadline_seconds)
        retry = _BoundedRetry(
            total=opts.max_retries,
            connect=opts.max_retries,
            read=opts.max_retries,
            status=opts.max_retries,
            other=opts.max_retries,
            redirect=0,
            backoff_factor=opts.backoff_factor,
            backoff_max=30,
            status_forcelist=RETRIED_STATUSES,
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            retry_after_max=opts.max_retry_after_seconds,
            raise_on_status=False,
            tries=self.tries,
            source=self.spec.name,
        )
        self.origin = _origin(self.endpoint.base_url)
        self.session = requests.Session()
        adapter = _GuardedAdapter(self.tries, max_retries=retry, pool_connections=2, pool_maxsize=2)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        self.spec.auth(self.session, self.endpoint.credentials)
        # What requests would look up in the environment on every request, once: every
        # request goes to the base URL's origin. And no ~/.netrc: credentials come from
        # our configuration only (a netrc entry would replace a Bearer or API key header
        # with its own Basic credentials).
        base_url = self.endpoint.base_url
        proxies = requests.utils.get_environ_proxies(base_url)
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self.session.trust_env = False
        self.session.proxies.update(proxies)
        if verify and self.session.verify is True:
            self.session.verify = verify

    @property
    def page_size(self) -> int:
        return self.endpoint.options.page_size

    def url(self, path: str) -> str:
        return self.endpoint.base_url + path

    def get(
        self, url: str, params: Mapping[str, Any] | None = None, *, via: str | None = None
    ) -> tuple[requests.Response, bytes]:
        """GET with retries and deadlines: the response and its whole body.

        ``via`` says where a URL the server gave came from (its ``Link`` header):
        such a URL, like a redirect, is followed only on the base URL's origin,
        since the session carries the source's credentials. Any final failure
        raises SourceError naming the source.
        """
        for _ in range(MAX_REDIRECTS + 1):
            self._check_origin(url, via)
            response, content = self._fetch(url, params)
            if not response.is_redirect:
                break
            location = response.headers.get("Location", "")
            url, params, via = (
                urljoin(response.url, location),
                None,
                f"{server_text(response.url)} redirected to",
            )
        else:
            raise SourceError(
                f"{self.spec.name}: more than {MAX_REDIRECTS} redirects, the last to "
                f"{server_text(url)}"
            )
        name = self.spec.name
        where = server_text(response.url)
        if response.status_code == 401:
            raise SourceAuthError(
                f"{name}: 401 Unauthorized from {where}; check {self.spec.credential_hint}"
            )
        if response.status_code != 200:
            detail = _error_text(content)
            tried = (
                f" ({self.tries.describe()})" if response.status_code in RETRIED_STATUSES else ""
            )
            raise SourceError(f"{name}: HTTP {response.status_code} from {where}{detail}{tried}")
        return response, content

    def get_json(
        self, url: str, params: Mapping[str, Any] | None = None, *, via: str | None = None
    ) -> tuple[Any, requests.Response]:
        """GET a JSON body, bounded in depth (``max_json_depth``)."""
        response, content = self.get(url, params, via=via)
        name, where = self.spec.name, server_text(response.url)
        depth = self.endpoint.options.max_json_depth
        try:
            body = _loads(content)
        except RecursionError:
            body = _TOO_DEEP
        except ValueError as exc:
            if "recursion" not in str(exc).lower():
                raise SourceError(f"{name}: {where} did not return JSON") from None
            body = _TOO_DEEP
        if body is _TOO_DEEP or _deeper_than(body, depth):
            raise SourceError(
                f"{name}: {where} sent JSON nested deeper than {depth} levels "
                "(max_json_depth in sources.yaml)"
            )
        return body, response

    def close(self) -> None:
        self.session.close()
        self.tries.finish()

    def cancel(self) -> None:
        """Stop another thread's use of this client: the request in flight fails at once
        (its socket is shut, no retry follows) and so does any later one."""
        self.tries.cancel()

    def _check_origin(self, url: str, via: str | None) -> None:
        if _origin(url) == self.origin:
            return
        what = f"{via} {server_text(url)}" if via else f"the URL {server_text(url)}"
        raise SourceError(
            f"{self.spec.name}: {what} is on another origin than {_show_origin(self.origin)}; "
            "not followed: the credentials go only to the configured base URL"
        )

    def _fetch(self, url: str, params: Mapping[str, Any] | None) -> tuple[requests.Response, bytes]:
        """One request (with its retries) and its body, within the deadlines."""
        opts = self.endpoint.options
        name = self.spec.name
        if self.tries.cancelled:
            raise SourceError(f"{name}: stopped reading")
        self.requests_made += 1
        self.tries.begin()
        error: Exception | None = None
        try:
            response = self.session.get(
                url,
                params=params,
                timeout=opts.timeout_seconds,
                stream=True,
                allow_redirects=False,
            )
            with response:
                content = self._read_body(response)
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            error = exc
        finally:
            self.tries.finish()
        if error is None and not self.tries.last_cut:
            return response, content
        # (an answer cut off at its deadline may still parse, e.g. as an empty 200: never used)
        where, why = server_text(url), _why(error) if error is not None else ""
        if self.tries.cut_by_try:
            what, why = (
                f"{where} did not answer in full within {opts.request_deadline_seconds:g} s",
                "",
            )
        elif self.tries.expired or isinstance(error, requests.exceptions.Timeout):
            what, why = f"{where} timed out", ""
        elif isinstance(error, requests.exceptions.RetryError):
            what = f"{where} kept failing"
        elif isinstance(error, requests.exceptions.ConnectionError):
            what = f"cannot reach {where}"
        else:
            what = f"request to {where} failed"
        detail = f"{why}; " if why else ""
        raise SourceError(f"{name}: {what} ({detail}{self.tries.describe()})")

    def _read_body(self, response: requests.Response) -> bytes:
        """The whole body, at most ``max_page_bytes`` (decompressed), or SourceError."""
        limit = self.endpoint.options.max_page_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise SourceError(self._too_big(response, limit))
        chunks, size = [], 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise SourceError(self._too_big(response, limit))
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_big(self, response: requests.Response, limit: int) -> str:
        return (
            f"{self.spec.name}: {server_text(response.url)} sent a page larger than "
            f"{limit} bytes (max_page_bytes in sources.yaml)"
        )


#: Statuses retried with backoff (and ``Retry-After``) until the count or time runs out.
RETRIED_STATUSES = (429, 500, 502, 503, 504)
#: Same-origin redirects followed at most (another origin is never followed).
MAX_REDIRECTS = 5
_TOO_DEEP = object()


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    try:
        parts = parse_url(url)
    except ValueError:
        return ("", url, None)
    scheme = (parts.scheme or "").lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return (scheme, (parts.host or "").lower(), port)


def _show_origin(origin: tuple[str, str, int | None]) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}:{port}"


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether JSON ``value`` nests more than ``limit`` lists and objects deep.

    Iterative, exact-type checks first: it runs over every page.
    """
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        kind = type(node)
        if kind is dict:
            children = node.values()
        elif kind is list:
            children = node
        else:
            continue
        if depth > limit:
            return True
        for child in children:
            if type(child) in _CONTAINERS:
                stack.append((child, depth + 1))
    return False


_CONTAINERS = frozenset({dict, list})


def _loads(content: bytes) -> Any:
    if orjson is not None:
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            if "recursion" in str(exc).lower():
                raise  # deeper than orjson's 1024 levels: json's recursion would fail too
            # else what orjson refuses and json reads (NaN, huge integers, lone surrogates)
    return json.loads(content)


def _why(exc: Exception) -> str:
    text = str(exc)
    match = re.search(r"Caused by (\w+)\(", text)
    reason = re.search(r"too many (\d\d\d) error responses", text)
    if reason:
        return f"too many {reason.group(1)} responses"
    return match.group(1) if match else server_text(text.splitlines()[0] if text else "", 200)


def _error_text(content: bytes) -> str:
    """The server's ``error`` text, cleaned and capped, as ``": <text>"``."""
    try:
        body = _loads(content)
    except (ValueError, RecursionError):
        return ""
    if isinstance(body, dict) and "error" in body:
        return f": {server_text(body['error'])}"
    return ""


# --- paginators ---------------------------------------------------------------------------


class _PageGuard:
    """What ends a pass over a stream whatever the server does.

    A cursor or next URL seen before, an empty page that claims more, a page that
    repeats the one before when only the page number moved, and a ceiling on pages
    (``max_pages``) and, where the server announces a ``total``, on records: each
    ends the source with one line naming the stream and what the server did.
    """

    def __init__(self, client: SourceClient, stream: Stream, rereads: int = 0) -> None:
        self.stream = stream.name
        self.max_pages = client.endpoint.options.max_pages
        self.slack = (rereads + 2, 10 * client.page_size)  # re-read blocks, overlaps
        self.pages = 0
        self.records = 0
        self.max_total = 0
        self._seen: set[bytes] = set()

    def fail(self, what: str) -> NoReturn:
        raise SourceError(f"{self.stream}: {what}; stopped reading")

    def count(self, records: list, total: int | None = None) -> None:
        self.pages += 1
        self.records += len(records)
        if self.pages > self.max_pages:
            self.fail(f"more than {self.max_pages} pages (max_pages in sources.yaml)")
        if total is not None:
            self.max_total = max(self.max_total, total)
        factor, extra = self.slack
        if self.max_total and self.records > factor * self.max_total + extra:
            self.fail(
                f"{self.records} records read although the server's total said at most "
                f"{self.max_total}"
            )

    @staticmethod
    def _digest(key: Any) -> bytes:
        # 16 bytes per page however long the cursor or URL: a pass over a million
        # records keeps thousands of them, and the memory should not grow with them
        return hashlib.blake2b(repr(key).encode(), digest_size=16).digest()

    def first_time(self, key: Any, what: str) -> None:
        """``key`` (a cursor, a URL) must not come twice in one pass."""
        digest = self._digest(key)
        if digest in self._seen:
            self.fail(f"{what} came a second time (page {self.pages})")
        self._seen.add(digest)

    def remember(self, key: Any) -> None:
        """``key`` was read in this pass."""
        self._seen.add(self._digest(key))

    def was_read(self, key: Any) -> bool:
        """Whether ``key`` was read in this pass."""
        return self._digest(key) in self._seen

    def new_pass(self) -> None:
        """A re-read starts over: what was read before may be read again."""
        self._seen.clear()


def _url_key(url: str) -> tuple:
    """A URL as a server may spell it again: parameters in any order."""
    parts = urlsplit(url)
    query = tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return (parts.scheme.lower(), parts.netloc.lower(), parts.path, query)


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
        guard = _PageGuard(client, stream)
        url = client.url(stream.path)
        params: dict[str, Any] = {self.size_param: client.page_size}
        if since is not None:
            params[self.filter_param] = self.format_since(since, client.parse_context)
        previous: list | None = None
        while True:
            body, _ = client.get_json(url, params)
            if not isinstance(body, dict) or not isinstance(body.get(self.data_key), list):
                raise SourceError(f"{stream.name}: page has no {self.data_key!r} list")
            records = body[self.data_key]
            guard.count(records)
            if records and records == previous:
                guard.fail(f"page {guard.pages} repeats the records of the page before")
            yield records
            cursor = body.get(self.next_key)
            if cursor is None:
                return
            shown = f"{self.next_key} {server_text(repr(cursor), 80)}"
            if not isinstance(cursor, str) or not cursor:
                guard.fail(f"{shown} is not a cursor")
            if not records:
                guard.fail(f"an empty page (page {guard.pages}) still gives {shown}")
            guard.first_time(cursor, shown)
            previous = records
            params = {self.size_param: client.page_size, self.cursor_param: cursor}


@dataclass(frozen=True)
class ChangeTimePaginator:
    """Page numbers made safe by paging on the change-time filter itself.

    Each request asks for page 1 from the newest change time seen so far (the
    filter is inclusive, so nothing between pages is lost when records move
    while we read). Only when a whole page shares one change time does it step
    to the next page number; if a key from such a block later shows up changed,
    the block is re-read from its start, since a record behind it may have slid
    onto a page already read. Where the body announces a ``total`` (records
    matching the filter), a short page ends the pass only when the total agrees.
    """

    filter_param: str
    format_since: Callable[[datetime, ParseContext], str]
    truncate: Callable[[datetime], datetime]  # to the filter's precision
    page_param: str
    size_param: str
    records_key: str | None  # None: the body is the list itself
    follow_link: bool = False  # step pages through the Link rel="next" header
    total_key: str | None = None  # the body's count of records matching the filter
    max_rereads: int = 10

    def pages(self, client: SourceClient, stream: Stream, since: datetime | None) -> Iterator[list]:  # noqa: C901, PLR0912 - one loop, its guards spelled out
        guard = _PageGuard(client, stream, self.max_rereads)
        base_url = client.url(stream.path)
        since = None if since is None else self.truncate(since)
        page = 1
        next_url: str | None = None
        blocks: dict[str, tuple[datetime | None, datetime]] = {}  # key -> (block since, time)
        reread_for: set[tuple[str, datetime]] = set()  # versions that already caused a re-read
        rereads = 0
        in_query = 0  # records read since the filter last moved: what `total` counts
        previous: list | None = None  # the page before, when only the page number moved
        while True:
            if next_url is not None:
                body, response = client.get_json(next_url, via='the Link rel="next"')
            else:
                params: dict[str, Any] = {self.page_param: page, self.size_param: client.page_size}
                if since is not None:
                    params[self.filter_param] = self.format_since(since, client.parse_context)
                body, response = client.get_json(base_url, params)
            guard.remember(_url_key(response.url))
            records = body if self.records_key is None else _records(body, self.records_key, stream)
            if not isinstance(records, list):
                raise SourceError(f"{stream.name}: page is not a JSON list")
            total = self._total(body, stream)
            guard.count(records, total)
            if records and records == previous:
                moved = 'the Link rel="next"' if self.follow_link else f"{self.page_param!r}"
                guard.fail(
                    f"page {page} repeats the records of page {page - 1}: the server ignores {moved}"
                )
            in_query += len(records)
            yield records
            # Before the last-page checks: a moved record shows up at the end, often on
            # the last page, and the record that slid back is lost unless re-read now.
            moved_from = _moved_block(stream, records, blocks, reread_for, client)
            if moved_from is not None and rereads < self.max_rereads:
                rereads += 1
                since, page, next_url = moved_from[0], 1, None
                blocks.clear()
                guard.new_pass()
                in_query, previous = 0, None
                continue
            link = response.links.get("next", {}).get("url") if self.follow_link else None
            link = None if link is None else urljoin(response.url, link)  # relative to this page
            claims_more = total is not None and in_query < total
            if not records:
                if link is not None:
                    guard.fail(f"page {page} is empty but links to a next page")
                if claims_more:
                    guard.fail(
                        f"page {page} is empty but {self.total_key} says {total} records "
                        f"and {in_query} came"
                    )
                return
            if self.follow_link and link is None:
                return
            if not self.follow_link and len(records) < client.page_size and not claims_more:
                return
            newest = _last_time(stream, records, client)
            newest = None if newest is None else self.truncate(newest)
            if newest is not None and (since is None or newest > since):
                since, page, next_url = newest, 1, None
                in_query, previous = 0, None
            else:  # a whole page at one change time: step the page number
                for r in records:
                    k, t = _key_time(stream, r, client)
                    if k is not None and t is not None:
                        blocks[k] = (since, t)
                page += 1
                next_url, previous = link, records
                if link is not None and guard.was_read(_url_key(link)):
                    guard.fail(
                        f'the Link rel="next" points to a page already read: {server_text(link)}'
                    )

    def _total(self, body: Any, stream: Stream) -> int | None:
        if self.total_key is None or not isinstance(body, dict):
            return None
        total = body.get(self.total_key)
        if total is None:  # not announced: short pages end the pass, as without a total
            return None
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise SourceError(
                f"{stream.name}: {self.total_key} {server_text(repr(total), 60)} is not a count"
            )
        return total


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
