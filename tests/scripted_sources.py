"""Tiny real HTTP servers that follow ``source-apis.md`` over hand-built records.

Unlike the demo systems they serve exactly the records a test gives them, in the
contract's order (change instant, then natural key), and run a test's hook
before answering a given request, so a test can change a record between two
pages. Every request's query is kept for assertions.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
Response = tuple[int, Any, dict[str, str]]


def _iso_instant(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _local_instant(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)


def _ms_instant(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def inspection_record(i: int) -> dict:
    """A valid enforcement inspection ``K{i}``, changed ``i`` seconds after the first (i < 10)."""
    return {
        "inspection_no": f"K{i}",
        "task_type": "routine",
        "joint": False,
        "target_credit_code": "9" * 18,
        "target_name": "某公司",
        "credit_risk_level": "A",
        "credit_rule_applied": True,
        "inspected_on": "2024-01-02",
        "officers": [],
        "outcome": "compliant",
        "published": False,
        "published_on": None,
        "modified": f"2024-01-02 10:00:0{i}",
    }


def document_record(doc_id: str, ms: int, **fields: object) -> dict:
    """A valid docreview document ``doc_id`` last changed at ``ms`` (epoch milliseconds)."""
    return {
        "doc_id": doc_id,
        "title": "文件",
        "doc_type": "normative_document",
        "drafting_unit": "科技局",
        "issued_on": "2023-03-01",
        "legality_reviewed": True,
        "legality_reviewed_on": "2023-02-20",
        "fair_competition_reviewed": None,
        "filing": None,
        "status": "in_force",
        "status_changed_on": None,
        "last_modified_ms": ms,
        **fields,
    }


class ScriptedSource:
    """One source system over a list of records (a current state, or a change log)."""

    kinds = {
        # kind: (natural key, change field, change field -> instant)
        "permits": ("application_id", "updated_at", _iso_instant),
        "enforcement": ("inspection_no", "modified", _local_instant),
        "docreview": ("doc_id", "last_modified_ms", _ms_instant),
    }

    def __init__(self, kind: str, records: list[dict], *, change_log: bool = False) -> None:
        self.kind = kind
        self.key, self.change_field, self.instant = self.kinds[kind]
        self.records = [dict(r) for r in records]
        self.change_log = change_log
        self.roster: list[dict] = []
        self.queries: list[dict[str, str]] = []
        self.raw_queries: list[str] = []
        self.hooks: dict[int, Callable[[], None]] = {}  # request number (1-based) -> hook
        self.relative_links = False  # docreview: Link without scheme and host
        # Misbehaviour, for the guards' tests: ``misbehave(n, path, query)`` may return an
        # answer (status, body as JSON or bytes, headers) in place of the contract's for
        # request n; ``raw(handler)`` writes every answer itself, byte by byte if it likes
        # (see :func:`trickle`); ``stop`` is set on close so such answers end.
        self.misbehave: Callable[[int, str, dict[str, str]], Response | None] | None = None
        self.raw: Callable[[BaseHTTPRequestHandler], None] | None = None
        self.stop = threading.Event()
        self.received_headers: list[dict[str, str]] = []  # what each request carried
        self.ascii_json = False  # \uXXXX escapes: the one way to send a lone surrogate
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                with outer._lock:
                    outer.received_headers.append(dict(self.headers))
                if outer.raw is not None:  # the test writes the whole answer itself
                    outer._note(self.path)
                    outer.raw(self)
                    return
                status, body, headers = outer._answer(self.path, self.headers)
                data = (
                    body
                    if isinstance(body, bytes)
                    else json.dumps(body, ensure_ascii=outer.ascii_json)
                )
                data = data if isinstance(data, bytes) else data.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> ScriptedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- changes ----------------------------------------------------------------------

    def change(self, key: str, **fields: Any) -> None:
        """A new version of ``key`` (give it a newer change time): replaces it, or is
        appended in change-log mode."""
        with self._lock:
            current = [r for r in self.records if r.get(self.key) == key][-1]
            version = {**current, **fields}
            if not self.change_log:
                self.records = [r for r in self.records if r.get(self.key) != key]
            self.records.append(version)

    # --- serving ----------------------------------------------------------------------

    def _ordered(self, since: datetime | None) -> list[dict]:
        rows = [
            r for r in self.records if since is None or self.instant(r[self.change_field]) >= since
        ]
        return sorted(rows, key=lambda r: (self.instant(r[self.change_field]), r[self.key]))

    def _note(self, path: str) -> tuple[int, dict[str, str]]:
        split = urlsplit(path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        with self._lock:
            self.queries.append(query)
            self.raw_queries.append(split.query)
            return len(self.queries), query

    def _answer(self, path: str, _headers: Any) -> Response:
        number, query = self._note(path)
        hook = self.hooks.get(number)
        if hook is not None:
            hook()
        if self.misbehave is not None:
            answer = self.misbehave(number, urlsplit(path).path, query)
            if answer is not None:
                return answer
        split = urlsplit(path)
        with self._lock:
            if split.path == "/api/officers":
                return 200, {"officers": self.roster}, {}
            if self.kind == "permits":
                return self._permits(query)
            if self.kind == "enforcement":
                return self._enforcement(query)
            return self._docreview(query)

    def _permits(self, query: dict[str, str]) -> Response:
        limit = int(query.get("limit", 100))
        if "cursor" in query:
            instant, key = json.loads(base64.urlsafe_b64decode(query["cursor"]))
            after = (datetime.fromisoformat(instant), key)
            rows = [
                r
                for r in self._ordered(None)
                if (self.instant(r[self.change_field]), r[self.key]) > after
            ]
        else:
            since = query.get("updated_since")
            rows = self._ordered(None if since is None else _iso_instant(since))
        page, rest = rows[:limit], rows[limit:]
        cursor = None
        if rest:
            last = page[-1]
            raw = json.dumps([self.instant(last[self.change_field]).isoformat(), last[self.key]])
            cursor = base64.urlsafe_b64encode(raw.encode()).decode()
        return 200, {"data": page, "next_cursor": cursor}, {}

    def _enforcement(self, query: dict[str, str]) -> Response:
        page, size = int(query.get("page", 1)), int(query.get("page_size", 50))
        since = query.get("modified_after")
        rows = self._ordered(None if since is None else _local_instant(since))
        chunk = rows[(page - 1) * size : page * size]
        return 200, {"total": len(rows), "page": page, "page_size": size, "records": chunk}, {}

    def _docreview(self, query: dict[str, str]) -> Response:
        page, size = int(query.get("page", 1)), int(query.get("per_page", 30))
        since = query.get("since")
        rows = self._ordered(None if since is None else _ms_instant(int(since)))
        chunk = rows[(page - 1) * size : page * size]
        headers = {}
        if page * size < len(rows):
            params = {**query, "page": str(page + 1)}
            origin = "" if self.relative_links else self.url
            headers["Link"] = f'<{origin}/v2/documents?{urlencode(params)}>; rel="next"'
        return 200, chunk, headers


def trickle(
    source: ScriptedSource, body: bytes, every: float, *, headers_too: bool = False
) -> Callable[[BaseHTTPRequestHandler], None]:
    """A ``raw`` answer sent one byte per ``every`` seconds (the head too, if asked),
    until it is all sent, the client hangs up, or the source closes."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        slow = head + body if headers_too else body
        try:
            if not headers_too:
                handler.wfile.write(head)
            for i in range(len(slow)):
                handler.wfile.write(slow[i : i + 1])
                if source.stop.wait(every):
                    return
        except OSError:
            return  # the client gave up: what the test wants

    return answer


def silent(source: ScriptedSource) -> Callable[[BaseHTTPRequestHandler], None]:
    """A ``raw`` answer that never comes: the connection stays open until the source closes."""

    def answer(_handler: BaseHTTPRequestHandler) -> None:
        source.stop.wait(60)

    return answer
