"""The bundled demo source systems: three HTTP servers that follow ``source-apis.md``.

Each system runs on its own port with its own auth, paging and time format, as the
real vendors' systems do, so the connectors are tested against the contract rather
than against a fake. The apps are bare ASGI callables (no framework): the contract is
small, errors must be ``{"error": ...}`` exactly, and pages are joined from
pre-serialised records, which keeps a million-record sync cheap on the server side.

:func:`start_demo_sources` runs them in background threads (uvicorn, free ports) and
returns a :class:`DemoSources` handle with the URLs, the ``RULEWATCH_*`` environment,
request counts and the mutations; :func:`serve_demo_sources` runs them until Ctrl-C.
:class:`Faults` scripts 429s, 5xx and dropped connections for retry tests.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import random
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode

import requests
import uvicorn

from rulewatch.demo import data
from rulewatch.demo.store import DemoWorld, StreamStore, dump

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SYSTEMS = data.SYSTEMS
CREDENTIALS: dict[str, dict[str, str]] = {
    "permits": {"token": data.DEMO_PERMITS_TOKEN},
    "enforcement": {"api_key": data.DEMO_ENFORCEMENT_API_KEY},
    "docreview": {"user": data.DEMO_DOCREVIEW_USER, "password": data.DEMO_DOCREVIEW_PASSWORD},
}
FAULT_KINDS = frozenset({"429", "500", "502", "503", "504", "drop", "ok"})


# --- faults --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Faults:
    """Faults one system injects before answering, deterministic for tests.

    ``script`` applies to the first API requests in order (``"429"``, ``"500"``,
    ``"502"``, ``"503"``, ``"504"``, ``"drop"`` to close the connection without a
    response, ``"ok"`` to answer normally); after it, each request draws from a
    ``seed``-ed generator: 429 at ``rate_429``, a 5xx at ``rate_5xx``, a drop at
    ``rate_drop``. A 429 carries ``Retry-After: retry_after`` (seconds; 0 for fast
    tests). Admin requests (``/_demo/...``) are never faulted.
    """

    script: Sequence[str] = ()
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_drop: float = 0.0
    retry_after: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "script", tuple(str(s) for s in self.script))
        unknown = [s for s in self.script if s not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}; choose from {sorted(FAULT_KINDS)}")
        if not 0 <= self.rate_429 + self.rate_5xx + self.rate_drop <= 1:
            raise ValueError("fault rates must add up to at most 1")
        if self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")


class FaultInjector:
    """The running state of one system's :class:`Faults`: script position and generator."""

    def __init__(self, faults: Faults | None) -> None:
        self.faults = faults or Faults()
        self._next = 0
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self.injected: dict[str, int] = {}

    def next(self) -> str | None:
        """The fault for the next request, or None to answer it."""
        f = self.faults
        with self._lock:
            if self._next < len(f.script):
                fault: str | None = f.script[self._next]
                self._next += 1
            elif f.rate_429 or f.rate_5xx or f.rate_drop:
                r = self._rng.random()
                if r < f.rate_429:
                    fault = "429"
                elif r < f.rate_429 + f.rate_5xx:
                    fault = self._rng.choice(("500", "502", "503", "504"))
                elif r < f.rate_429 + f.rate_5xx + f.rate_drop:
                    fault = "drop"
                else:
                    fault = None
            else:
                fault = None
            if fault == "ok":
                fault = None
            if fault is not None:
                self.injected[fault] = self.injected.get(fault, 0) + 1
            return fault


# --- parameters ----------------------------------------------------------------------------


class BadParameter(ValueError):
    """A query parameter out of range or unparseable: answered with 400."""


_INT = re.compile(r"^\d{1,18}$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$")
_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return None if values is None else values[-1]


def _int(query: Mapping[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    value = _one(query, name)
    if value is None:
        return default
    if not _INT.match(value) or not low <= int(value) <= high:
        bound = f"{low}..{high}" if high < 10**12 else f">= {low}"
        raise BadParameter(f"{name} must be an integer {bound}, got {value!r}")
    return int(value)


def _epoch_ms_ceil(moment: datetime) -> int:
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    return -(-micros // 1000)


def parse_iso_since(value: str) -> int:
    """An ISO-8601 date-time with offset -> the least epoch ms not before it."""
    if not _ISO.match(value):
        hint = " (a '+' must be sent as %2B)" if re.search(r"\d \d{2}:?\d{2}$", value) else ""
        raise BadParameter(f"updated_since: {value!r} is not ISO-8601 with an offset{hint}")
    try:
        return _epoch_ms_ceil(datetime.fromisoformat(value))
    except ValueError:
        raise BadParameter(f"updated_since: {value!r} is not a valid date-time") from None


def parse_local_since(value: str) -> int:
    """``YYYY-MM-DD HH:MM:SS`` in Asia/Shanghai -> epoch ms."""
    try:
        if not _LOCAL.match(value):
            raise ValueError
        moment = datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=data.SHANGHAI)
    except ValueError:
        raise BadParameter(
            f"modified_after: {value!r} is not YYYY-MM-DD HH:MM:SS (Asia/Shanghai)"
        ) from None
    return _epoch_ms_ceil(moment)


def encode_cursor(instant_ms: int, key: str) -> str:
    """An opaque cursor: the (change instant, key) of the last record served."""
    raw = json.dumps([1, instant_ms, key], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (instant, key) a cursor positions after; BadParameter when it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, instant_ms, key = json.loads(raw)
        if version != 1 or not isinstance(instant_ms, int) or not isinstance(key, str):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadParameter(f"cursor: {cursor[:60]!r} is not a cursor from this API") from None
    return instant_ms, key


# --- the ASGI apps -------------------------------------------------------------------------

Response = tuple[int, bytes, list[tuple[bytes, bytes]]]


def _error(status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> Response:
    return status, dump({"error": message}), list(headers)


class SourceApp:
    """One source system as an ASGI app: faults, auth, routes, admin endpoints."""

    def __init__(
        self,
        system: str,
        world: DemoWorld,
        faults: Faults | None,
        request_counts: dict[str, int],
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.system = system
        self.world = world
        self.injector = FaultInjector(faults)
        self.request_counts = request_counts
        self.store: StreamStore = world.store(system)
        creds = CREDENTIALS[system] if credentials is None else credentials
        if system == "permits":
            self._expected = f"Bearer {creds['token']}".encode()
            self._auth_header, self._challenge = b"authorization", b'Bearer realm="permits"'
        elif system == "enforcement":
            self._expected = creds["api_key"].encode()
            self._auth_header, self._challenge = b"x-api-key", b""
        else:
            basic = base64.b64encode(f"{creds['user']}:{creds['password']}".encode())
            self._expected = b"Basic " + basic
            self._auth_header, self._challenge = b"authorization", b'Basic realm="docreview"'
        self.routes: dict[str, Callable[[Mapping[str, list[str]], Scope], Response]] = {
            "permits": {"/api/v1/applications": self._applications},
            "enforcement": {"/api/inspections": self._inspections, "/api/officers": self._officers},
            "docreview": {"/v2/documents": self._documents},
        }[system]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        root = scope.get("root_path", "")
        if root and scope["path"].startswith(root):  # mounted under a prefix: route below it
            scope = {**scope, "path": scope["path"][len(root) :] or "/"}
        path: str = scope["path"]
        if path.startswith("/_demo/"):
            response = await self._admin(scope, receive, send)
            await _respond(send, response)
            return
        self.request_counts[self.system] += 1
        fault = self.injector.next()
        if fault == "drop":
            _drop(send)
            return
        if fault == "429":
            retry = [(b"retry-after", str(self.injector.faults.retry_after).encode())]
            await _respond(send, _error(429, "too many requests; retry later", retry))
            return
        if fault is not None:
            await _respond(send, _error(int(fault), f"injected {fault}: try again"))
            return
        await _respond(send, self._handle(scope))

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == self._auth_header:
                return hmac.compare_digest(value, self._expected)
        return False

    def _handle(self, scope: Scope) -> Response:
        if not self._authorized(scope):
            challenge = [(b"www-authenticate", self._challenge)] if self._challenge else []
            return _error(401, "missing or wrong credentials", challenge)
        route = self.routes.get(scope["path"].rstrip("/") or "/")
        if route is None:
            return _error(404, f"no such endpoint: {scope['path']}")
        if scope["method"] != "GET":
            return _error(405, f"{scope['method']} not allowed; use GET", [(b"allow", b"GET")])
        query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        try:
            return route(query, scope)
        except BadParameter as exc:
            return _error(400, str(exc))

    # permits: cursor pages -------------------------------------------------------------

    def _applications(self, query: Mapping[str, list[str]], _scope: Scope) -> Response:
        limit = _int(query, "limit", 100, 1, 500)
        cursor = _one(query, "cursor")
        since = _one(query, "updated_since")
        after = decode_cursor(cursor) if cursor is not None else None
        since_ms = parse_iso_since(since) if since is not None and after is None else None
        items, last = self.store.page_after(after, since_ms, limit)
        next_cursor = b"null" if last is None else b'"' + encode_cursor(*last).encode() + b'"'
        body = b'{"data":[' + b",".join(items) + b'],"next_cursor":' + next_cursor + b"}"
        return 200, body, []

    # enforcement: page numbers, local times, the roster --------------------------------

    def _inspections(self, query: Mapping[str, list[str]], _scope: Scope) -> Response:
        page = _int(query, "page", 1, 1, 10**12 - 1)
        size = _int(query, "page_size", 50, 1, 200)
        since = _one(query, "modified_after")
        since_ms = parse_local_since(since) if since is not None else None
        total, items, _ = self.store.page_number(since_ms, page, size)
        head = f'{{"total":{total},"page":{page},"page_size":{size},"records":['.encode()
        return 200, head + b",".join(items) + b"]}", []

    def _officers(self, _query: Mapping[str, list[str]], _scope: Scope) -> Response:
        return 200, self.world.roster.payload(), []

    # docreview: Link-header pages, epoch ms ---------------------------------------------

    def _documents(self, query: Mapping[str, list[str]], scope: Scope) -> Response:
        per_page = _int(query, "per_page", 30, 1, 100)
        page = _int(query, "page", 1, 1, 10**12 - 1)
        since = _one(query, "since")
        if since is not None and not _INT.match(since):
            raise BadParameter(f"since must be epoch milliseconds (an integer), got {since!r}")
        since_ms = int(since) if since is not None else None
        _, items, more = self.store.page_number(since_ms, page, per_page)
        headers: list[tuple[bytes, bytes]] = []
        if more:
            params = {"since": since} if since is not None else {}
            params |= {"per_page": str(per_page), "page": str(page + 1)}
            path = scope.get("root_path", "") + scope["path"]  # under a prefix: keep it
            url = f"{_origin(scope)}{path}?{urlencode(params)}"
            headers.append((b"link", f'<{url}>; rel="next"'.encode()))
        return 200, b"[" + b",".join(items) + b"]", headers

    # admin: mutations from another process (a benchmark), same auth ---------------------

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> Response:
        if not self._authorized(scope):
            return _error(401, "missing or wrong credentials")
        query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        action = scope["path"][len("/_demo/") :].rstrip("/")
        try:
            if action == "stats":
                return 200, dump(self._stats(send)), []
            if scope["method"] != "POST":
                return _error(405, "admin actions are POST", [(b"allow", b"POST")])
            body = await _read_body(receive)
            if action == "touch":
                fraction = float(_one(query, "fraction") or "nan")
                return 200, dump({"touched": self.store.touch(fraction)}), []
            if action == "mutate":
                changes = json.loads(body or b"{}")
                record = self.store.mutate(_one(query, "key") or "", **changes)
                return 200, dump({"record": record}), []
            if action == "delete" and self.system == "docreview":
                return 200, dump({"record": self.store.delete(_one(query, "key") or "")}), []
            if action == "officers/remove" and self.system == "enforcement":
                removed = self.world.remove_officer(_one(query, "officer_id") or "")
                return 200, dump({"removed": removed}), []
            if action == "officers/add" and self.system == "enforcement":
                return 200, dump({"added": self.world.roster.add(json.loads(body))}), []
            if action == "reset-counts":
                self.request_counts[self.system] = 0
                return 200, dump({"requests": 0}), []
        except KeyError as exc:
            return _error(404, str(exc.args[0]) if exc.args else "not found")
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))
        return _error(404, f"no admin action {action!r} on {self.system}")

    def _stats(self, send: Send) -> dict[str, Any]:
        return {
            "system": self.system,
            "requests": self.request_counts[self.system],
            "faults_injected": dict(self.injector.injected),
            "records": self.store.live_count,
            "versions": self.store.version_count,
            "change_log": self.store.change_log,
            "tcp_nodelay": _nodelay(send),
        }


def _origin(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            return f"http://{value.decode('latin-1')}"
    host, port = scope.get("server") or ("127.0.0.1", 80)
    return f"http://{host}:{port}"


async def _respond(send: Send, response: Response) -> None:
    status, body, headers = response
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _cycle(send: Send) -> Any:
    """uvicorn's request cycle behind ``send`` (it holds the transport), or None."""
    cycle = getattr(send, "__self__", None)
    return cycle if hasattr(cycle, "transport") else None


def _drop(send: Send) -> None:
    """Close the connection without a response, as a crashed proxy would."""
    cycle = _cycle(send)
    if cycle is None:
        raise ConnectionAbortedError("injected drop")  # other servers: let them close it
    cycle.transport.close()
    cycle.disconnected = True  # tells uvicorn not to answer (and not to log) either


def _nodelay(send: Send) -> bool | None:
    cycle = _cycle(send)
    sock = cycle.transport.get_extra_info("socket") if cycle else None
    if sock is None:
        return None
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


# --- running -------------------------------------------------------------------------------


class _ServerThread:
    """One uvicorn server on a socket we bound ourselves, in a daemon thread."""

    def __init__(self, name: str, app: SourceApp, sock: socket.socket) -> None:
        self.sock = sock
        config = uvicorn.Config(
            app,
            lifespan="off",
            access_log=False,
            log_config=None,
            log_level="warning",
            http="h11",
            loop="asyncio",
            proxy_headers=False,
            server_header=False,
            date_header=False,
            timeout_keep_alive=75,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name=f"demo-{name}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def wait_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.thread.name} did not start")
            time.sleep(0.002)

    def signal_stop(self) -> None:
        self.server.should_exit = True

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        if self.thread.is_alive():  # graceful shutdown stuck on a client: cut it short
            self.server.force_exit = True
            self.thread.join(timeout)
        self.sock.close()


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket; proto IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted ones."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass
class DemoSources:
    """A running set of demo source systems: URLs, credentials, counts and mutations.

    Use as a context manager, or call :meth:`stop`. Mutations go straight to the
    stores the servers read, so the next request sees them.
    """

    host: str
    ports: dict[str, int]
    world: DemoWorld
    request_counts: dict[str, int]
    apps: dict[str, SourceApp]
    _servers: list[_ServerThread] = field(repr=False)
    stopped: bool = False

    today = data.DEMO_TODAY
    missed_filing_doc_id = data.MISSED_FILING_DOC_ID
    due_soon_doc_id = data.DUE_SOON_DOC_ID
    deleted_doc_id = data.DELETED_DOC_ID
    filed_doc_id = data.FILED_2024_DOC_ID
    repealed_doc_id = data.REPEALED_DOC_ID
    credentials = CREDENTIALS

    @property
    def urls(self) -> dict[str, str]:
        """Base URL per system."""
        return {system: _url(self.host, port) for system, port in self.ports.items()}

    @property
    def permits_url(self) -> str:
        return self.urls["permits"]

    @property
    def enforcement_url(self) -> str:
        return self.urls["enforcement"]

    @property
    def docreview_url(self) -> str:
        return self.urls["docreview"]

    @property
    def stores(self) -> dict[str, StreamStore]:
        return self.world.stores

    @property
    def malformed(self) -> list[data.MalformedRecord]:
        """The malformed records served (with their reasons)."""
        return self.world.malformed

    def env(self) -> dict[str, str]:
        """The ``RULEWATCH_*`` variables that point a rulewatch run at these servers."""
        return {
            "RULEWATCH_PERMITS_URL": self.permits_url,
            "RULEWATCH_PERMITS_TOKEN": data.DEMO_PERMITS_TOKEN,
            "RULEWATCH_ENFORCEMENT_URL": self.enforcement_url,
            "RULEWATCH_ENFORCEMENT_API_KEY": data.DEMO_ENFORCEMENT_API_KEY,
            "RULEWATCH_DOCREVIEW_URL": self.docreview_url,
            "RULEWATCH_DOCREVIEW_USER": data.DEMO_DOCREVIEW_USER,
            "RULEWATCH_DOCREVIEW_PASSWORD": data.DEMO_DOCREVIEW_PASSWORD,
        }

    def faults_injected(self, system: str) -> dict[str, int]:
        """How many of each fault a system has injected so far."""
        return dict(self.apps[system].injector.injected)

    def reset_request_counts(self) -> None:
        for system in self.request_counts:
            self.request_counts[system] = 0

    # mutations (see DemoWorld) ----------------------------------------------------------

    def mutate(self, system: str, key: str, **changes: Any) -> dict[str, Any]:
        """Change a record; it gets a change time later than anything served."""
        return self.world.mutate(system, key, **changes)

    def add_record(self, system: str, record: dict[str, Any]) -> dict[str, Any]:
        return self.world.add_record(system, record)

    def current(self, system: str, key: str) -> dict[str, Any] | None:
        return self.world.current(system, key)

    def delete_document(self, doc_id: str) -> dict[str, Any]:
        return self.world.delete_document(doc_id)

    def remove_officer(self, officer_id: str) -> dict[str, Any]:
        return self.world.remove_officer(officer_id)

    def add_officer(self, officer_id: str, name: str, **fields: Any) -> dict[str, Any]:
        return self.world.add_officer(officer_id, name, **fields)

    def touch_fraction(self, system: str, fraction: float) -> int:
        return self.world.touch_fraction(system, fraction)

    # lifecycle --------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the servers, close their ports and join their threads."""
        if self.stopped:
            return
        self.stopped = True
        for server in self._servers:
            server.signal_stop()
        for server in self._servers:
            server.join(5.0)

    def __enter__(self) -> DemoSources:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_demo_sources(
    host: str = "127.0.0.1",
    ports: Sequence[int] = (0, 0, 0),
    scale: int = 0,
    malformed: int = 0,
    faults: Faults | Mapping[str, Faults] | None = None,
    change_log: bool = False,
) -> DemoSources:
    """Start permits, enforcement and docreview in background threads; port 0 = any free.

    ``scale`` adds that many synthetic records (2015-2021) across the systems,
    ``malformed`` that many contract-breaking records per stream, ``faults`` one
    :class:`Faults` for every system or one per system name, ``change_log`` serves
    every version instead of the current state.
    """
    if len(ports) != 3:
        raise ValueError("ports: one per system (permits, enforcement, docreview)")
    per_system = _faults_by_system(faults)
    world = DemoWorld(scale=scale, malformed=malformed, change_log=change_log)
    counts = dict.fromkeys(SYSTEMS, 0)
    sockets: list[socket.socket] = []
    try:
        for port in ports:
            sockets.append(_bind(host, port))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    apps = {s: SourceApp(s, world, per_system.get(s), counts) for s in SYSTEMS}
    servers = [_ServerThread(s, apps[s], sock) for s, sock in zip(SYSTEMS, sockets, strict=True)]
    handle = DemoSources(
        host=host,
        ports={s: sock.getsockname()[1] for s, sock in zip(SYSTEMS, sockets, strict=True)},
        world=world,
        request_counts=counts,
        apps=apps,
        _servers=servers,
    )
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_started(10.0)
    except BaseException:
        handle.stop()
        raise
    return handle


def _faults_by_system(faults: Faults | Mapping[str, Faults] | None) -> dict[str, Faults]:
    if faults is None:
        return {}
    if isinstance(faults, Faults):
        return dict.fromkeys(SYSTEMS, faults)
    unknown = set(faults) - set(SYSTEMS)
    if unknown:
        raise ValueError(f"faults for unknown systems {sorted(unknown)}")
    return dict(faults)


def serve_demo_sources(
    host: str = "127.0.0.1",
    port: int = 8701,
    *,
    scale: int = 0,
    malformed: int = 0,
    change_log: bool = False,
) -> None:
    """Run the demo systems on ``port``, ``port+1``, ``port+2`` until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())  # before the ports open
    with start_demo_sources(
        host, (port, port + 1, port + 2), scale=scale, malformed=malformed, change_log=change_log
    ) as sources:
        print("demo source systems running (Ctrl-C to stop):", file=sys.stderr)
        for name, value in sources.env().items():
            print(f"  export {name}={value}", file=sys.stderr)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass


# --- for benchmarks in another process -----------------------------------------------------


def admin_headers(system: str) -> dict[str, str]:
    """The demo credentials of a system as request headers (admin endpoints use them too)."""
    creds = CREDENTIALS[system]
    if system == "permits":
        return {"Authorization": f"Bearer {creds['token']}"}
    if system == "enforcement":
        return {"X-Api-Key": creds["api_key"]}
    basic = base64.b64encode(f"{creds['user']}:{creds['password']}".encode()).decode()
    return {"Authorization": f"Basic {basic}"}


def touch_remote(base_url: str, system: str, fraction: float) -> int:
    """Ask a running demo system (any process) to re-version ``fraction`` of its records."""
    response = requests.post(
        f"{base_url.rstrip('/')}/_demo/touch",
        params={"fraction": fraction},
        headers=admin_headers(system),
        timeout=60,
    )
    response.raise_for_status()
    return int(response.json()["touched"])
