"""The engine against real HTTP servers that break their contract (issue 12 §2-§4, §6).

Each case must end by itself with one SourceError naming the source and what the
server did, or read everything. Limits are small (config made small) so the
suite stays fast; how long each guard takes is measured in ``bench/bounds.py``,
not asserted here: a broken guard shows as a pass that never ends, which
``ends_by_itself`` turns into a failure instead of a hung suite.
"""

from __future__ import annotations

import gzip
import re
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from scripted_sources import ScriptedSource, silent, trickle

from rulewatch.config.settings import SourceEndpoint, SourceOptions
from rulewatch.extract import docreview, enforcement, permits
from rulewatch.extract.engine import ParseContext, SourceClient, SourceError, SourceSpec

SHANGHAI = ZoneInfo("Asia/Shanghai")
CREDENTIALS = {"token": "t0ken", "api_key": "k3y", "user": "u", "password": "s3cret"}
SPECS = {"permits": permits.SPEC, "enforcement": enforcement.SPEC, "docreview": docreview.SPEC}
T0 = "2024-01-02 10:00:00"
T0_MS = 1_704_160_800_000


def client(spec: SourceSpec, url: str, **options: float) -> SourceClient:
    opts = {"page_size": 2, "max_retries": 0, "backoff_factor": 0, **options}
    ctx = ParseContext(SHANGHAI, b"key", datetime(2024, 5, 1, tzinfo=UTC))
    return SourceClient(
        spec, SourceEndpoint(spec.name, url, CREDENTIALS, SourceOptions(**opts)), ctx
    )


def read_all(spec: SourceSpec, url: str, **options: float) -> list:
    """Every record one pass over the first stream yields."""
    c = client(spec, url, **options)
    stream = spec.streams[0]
    try:
        return [r for page in stream.paginator.pages(c, stream, None) for r in page]
    finally:
        c.close()


#: Only keeps a broken guard from hanging the suite: every case's limits are seconds.
NO_HANG_SECONDS = 120


def ends_by_itself(block: Callable[[], object]) -> BaseException | None:
    """Run ``block`` in a thread; it must end by itself. What it raised, if anything."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            block()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(NO_HANG_SECONDS)
    assert not thread.is_alive(), f"still reading after {NO_HANG_SECONDS} s: no guard ended it"
    return raised[0] if raised else None


def fails(spec: SourceSpec, url: str, **options: float) -> str:
    """The one-line error a pass ends with (by itself)."""
    raised = ends_by_itself(lambda: read_all(spec, url, **options))
    assert isinstance(raised, SourceError), f"expected a SourceError, got {raised!r}"
    message = str(raised)
    assert "\n" not in message and message.startswith(spec.name)
    return message


def apps(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "application_id": f"P{i:04d}",
            "updated_at": f"2024-01-02T10:{i // 60 % 60:02d}:{i % 60:02d}+08:00",
        }
        for i in range(start, start + n)
    ]


def docs(n: int, ms: int = T0_MS) -> list[dict]:
    return [{"doc_id": f"D{i}", "last_modified_ms": ms} for i in range(n)]


def inspections(n: int, modified: str = T0) -> list[dict]:
    return [{"inspection_no": f"K{i}", "modified": modified} for i in range(n)]


# --- §2 paging always ends ------------------------------------------------------------------


def test_a_repeated_next_cursor_ends_the_source():
    records = apps(4)
    with ScriptedSource("permits", []) as source:

        def answer(_n, _path, query):
            page = records[2:] if query.get("cursor") == "c1" else records[:2]
            return 200, {"data": page, "next_cursor": "c1"}, {}

        source.misbehave = answer
        message = fails(permits.SPEC, source.url)
        assert "next_cursor 'c1' came a second time" in message
        assert len(source.queries) == 2


def test_an_empty_page_with_a_next_cursor_ends_the_source():
    with ScriptedSource("permits", []) as source:
        source.misbehave = lambda n, _p, _q: (
            200,
            {"data": apps(2) if n == 1 else [], "next_cursor": f"c{n}"},
            {},
        )
        assert "an empty page (page 2) still gives next_cursor 'c2'" in fails(
            permits.SPEC, source.url
        )
        assert len(source.queries) == 2


def test_fresh_cursors_with_the_same_records_end_the_source():
    with ScriptedSource("permits", []) as source:
        source.misbehave = lambda n, _p, _q: (200, {"data": apps(2), "next_cursor": f"c{n}"}, {})
        assert "page 2 repeats the records of the page before" in fails(permits.SPEC, source.url)


def test_an_endless_cursor_feed_stops_at_max_pages():
    with ScriptedSource("permits", []) as source:
        source.misbehave = lambda n, _p, _q: (
            200,
            {"data": apps(2, 2 * n), "next_cursor": f"c{n}"},
            {},
        )
        message = fails(permits.SPEC, source.url, max_pages=30)
        assert "more than 30 pages (max_pages in sources.yaml)" in message
        assert len(source.queries) == 31


def test_a_link_to_the_page_just_read_ends_the_source():
    """A block of equal change times is stepped through the Link header; it points home."""
    with ScriptedSource("docreview", docs(5)) as source:
        inner = source._docreview  # the contract's pages, with a Link to themselves

        def answer(_n, _path, query):
            status, body, _ = inner(query)
            params = "&".join(f"{k}={v}" for k, v in query.items())
            return status, body, {"Link": f'<{source.url}/v2/documents?{params}>; rel="next"'}

        source.misbehave = answer
        message = fails(docreview.SPEC, source.url)
        assert 'the Link rel="next" points to a page already read' in message
        assert len(source.queries) == 2


@pytest.mark.parametrize("kind", ["enforcement", "docreview"])
def test_a_server_that_ignores_the_page_number_ends_the_source(kind):
    records = inspections(7) if kind == "enforcement" else docs(7)
    with ScriptedSource(kind, records) as source:
        contract = source._enforcement if kind == "enforcement" else source._docreview

        def answer(_n, _path, query):
            status, body, headers = contract({**query, "page": "1"})
            if kind == "docreview":  # the Link still names the next page
                nxt = {**query, "page": str(int(query.get("page", 1)) + 1)}
                params = "&".join(f"{k}={v}" for k, v in nxt.items())
                headers = {"Link": f'<{source.url}/v2/documents?{params}>; rel="next"'}
            return status, body, headers

        source.misbehave = answer
        message = fails(SPECS[kind], source.url)
        assert "page 2 repeats the records of page 1: the server ignores" in message
        assert len(source.queries) == 3  # page 1, page 1 from the block's time, page 2


def test_an_empty_docreview_page_with_a_next_link_ends_the_source():
    with ScriptedSource("docreview", []) as source:
        link = {"Link": f'<{source.url}/v2/documents?page=2>; rel="next"'}
        source.misbehave = lambda _n, _p, _q: (200, [], link)
        assert "page 1 is empty but links to a next page" in fails(docreview.SPEC, source.url)


def test_short_enforcement_pages_are_read_on_while_total_says_more():
    """The server serves 2 a page whatever page_size says: all 5 are read, not 2."""
    records = [{"inspection_no": f"K{i}", "modified": f"2024-01-02 10:00:0{i}"} for i in range(5)]
    with ScriptedSource("enforcement", records) as source:
        contract = source._enforcement
        source.misbehave = lambda _n, _p, q: contract({**q, "page_size": "2"})
        keys = {r["inspection_no"] for r in read_all(enforcement.SPEC, source.url, page_size=200)}
        assert keys == {f"K{i}" for i in range(5)}


def test_a_total_the_pages_never_deliver_ends_the_source():
    with ScriptedSource("enforcement", inspections(3)) as source:
        contract = source._enforcement

        def answer(_n, _path, query):
            status, body, headers = contract(query)
            return status, {**body, "total": 10}, headers

        source.misbehave = answer
        message = fails(enforcement.SPEC, source.url, page_size=5)
        assert "page 2 is empty but total says 10 records and 3 came" in message


def test_endless_records_past_the_announced_total_stop_at_a_ceiling_derived_from_it():
    with ScriptedSource("enforcement", []) as source:

        def answer(n, _path, _query):
            records = [
                {
                    "inspection_no": f"K{n}-{i}",
                    "modified": f"2024-01-{1 + n // 1440:02d} {n // 60 % 24:02d}:{n % 60:02d}:0{i}",
                }
                for i in range(2)
            ]
            return 200, {"total": 3, "page": 1, "page_size": 2, "records": records}, {}

        source.misbehave = answer
        message = fails(enforcement.SPEC, source.url)
        # (10 re-reads + 2) x 3 + 10 pages of 2
        assert "58 records read although the server's total said at most 3" in message


# --- §3 deadlines ---------------------------------------------------------------------------


def test_a_trickled_body_is_cut_off_at_the_request_deadline():
    """One byte every 0.2 s never trips the 1 s read timeout; the 1.5 s deadline does."""
    body = b'{"data": [], "next_cursor": null}' + b" " * 200
    with ScriptedSource("permits", []) as source:
        source.raw = trickle(source, body, 0.2)
        message = fails(permits.SPEC, source.url, timeout_seconds=1, request_deadline_seconds=1.5)
        assert re.search(
            r"did not answer in full within 1.5 s \(after 1 try over \d+\.\d s\)$", message
        )


def test_a_trickled_head_is_cut_off_and_retried_within_the_retry_deadline():
    with ScriptedSource("enforcement", []) as source:
        source.raw = trickle(source, b"{}", 0.2, headers_too=True)
        message = fails(
            enforcement.SPEC,
            source.url,
            timeout_seconds=1,
            request_deadline_seconds=1,
            retry_deadline_seconds=2.5,
            max_retries=10,
        )
        assert re.search(
            r"did not answer in full within 1 s \(after 3 tries over \d+\.\d s; ", message
        )
        assert len(source.queries) == 3


def test_a_head_cut_after_a_parsable_status_line_is_no_answer():
    """Cut at "HTTP/1.1 200 OK" the answer parses as an empty 200: it must not count."""
    with ScriptedSource("permits", []) as source:
        source.raw = trickle(source, b"{}", 0.1, headers_too=True)
        message = fails(permits.SPEC, source.url, timeout_seconds=1, request_deadline_seconds=1.55)
        assert re.search(
            r"did not answer in full within 1.55 s \(after 1 try over \d+\.\d s\)$", message
        )


def test_a_server_that_never_answers_is_given_up_at_the_retry_deadline():
    with ScriptedSource("docreview", []) as source:
        source.raw = silent(source)
        message = fails(
            docreview.SPEC,
            source.url,
            timeout_seconds=0.5,
            retry_deadline_seconds=1.8,
            max_retries=10,
        )
        # tries start every 0.5 s (the read timeout): 4, or 3 on a machine slow enough
        pattern = (
            r"timed out \(after [34] tries over \d+\.\d s; retry_deadline_seconds 1.8 reached\)$"
        )
        assert re.search(pattern, message)


def test_a_retry_after_that_would_pass_the_deadline_fails_at_once():
    with ScriptedSource("permits", []) as source:
        source.misbehave = lambda _n, _p, _q: (429, {"error": "slow down"}, {"Retry-After": "30"})
        message = fails(permits.SPEC, source.url, max_retries=5, retry_deadline_seconds=10)
        assert "HTTP 429" in message and re.search(
            r": slow down \(after 1 try over \d+\.\d s", message
        )
        assert "a further wait of 30 s would pass the 10 s retry deadline" in message


def test_a_long_retry_after_is_cut_to_max_retry_after_seconds():
    """Cut to 0.1 s, a ``Retry-After: 30`` fits the 10 s deadline: the retry is made."""
    with ScriptedSource("permits", apps(1)) as source:
        source.misbehave = lambda n, _p, _q: (
            (429, {"error": "slow down"}, {"Retry-After": "30"}) if n == 1 else None
        )
        records = read_all(
            permits.SPEC,
            source.url,
            max_retries=1,
            max_retry_after_seconds=0.1,
            retry_deadline_seconds=10,
        )
        assert [r["application_id"] for r in records] == ["P0000"]


# --- §4 credentials only to the base URL's origin -------------------------------------------


def test_a_link_to_another_origin_is_not_followed():
    with (
        ScriptedSource("docreview", docs(3)) as source,
        ScriptedSource("docreview", docs(3)) as elsewhere,
    ):
        contract = source._docreview
        foreign = {"Link": f'<{elsewhere.url}/v2/documents?page=2&per_page=2>; rel="next"'}

        def answer(_n, _path, query):
            status, body, _ = contract(query)
            return status, body, foreign

        source.misbehave = answer
        message = fails(docreview.SPEC, source.url)
        assert f'the Link rel="next" {elsewhere.url}/v2/documents' in message
        assert "is on another origin than http://127.0.0.1:" in message
        assert elsewhere.queries == []  # never asked, so never given the credentials


@pytest.mark.parametrize("kind", ["permits", "enforcement", "docreview"])
def test_a_redirect_to_another_origin_is_not_followed(kind):
    with ScriptedSource(kind, []) as source, ScriptedSource(kind, []) as elsewhere:
        source.misbehave = lambda _n, path, _q: (302, {}, {"Location": f"{elsewhere.url}{path}"})
        message = fails(SPECS[kind], source.url)
        assert "redirected to" in message and "on another origin" in message
        assert elsewhere.queries == []


@pytest.mark.parametrize("kind", ["permits", "enforcement", "docreview"])
def test_a_same_origin_redirect_is_followed_with_the_credentials(kind):
    records = {"permits": apps(3), "enforcement": inspections(3), "docreview": docs(3)}[kind]
    with ScriptedSource(kind, records) as source:

        def answer(n, path, query):
            if n == 1:
                return 307, {}, {"Location": f"/moved{path}"}
            return None

        source.misbehave = answer
        source.roster = []
        assert len(read_all(SPECS[kind], source.url, page_size=5)) == 3
        assert source.received_headers[1].get("Authorization") or source.received_headers[1].get(
            "X-Api-Key"
        )


# --- §6 nested and huge ---------------------------------------------------------------------


@pytest.mark.parametrize("depth", [200_000, 100])
def test_deeply_nested_json_is_one_line_not_a_recursion_error(depth):
    with ScriptedSource("docreview", []) as source:
        source.misbehave = lambda _n, _p, _q: (200, b"[" * depth + b"]" * depth, {})
        assert "sent JSON nested deeper than 64 levels" in fails(docreview.SPEC, source.url)


def test_a_one_megabyte_field_loads():
    record = {"doc_id": "BIG", "last_modified_ms": T0_MS, "title": "文" * 1_000_000}
    with ScriptedSource("docreview", [record]) as source:
        (read,) = read_all(docreview.SPEC, source.url)
        assert len(read["title"]) == 1_000_000


def test_a_page_larger_than_max_page_bytes_ends_the_source():
    with ScriptedSource("permits", apps(40)) as source:
        message = fails(permits.SPEC, source.url, page_size=40, max_page_bytes=1000)
        assert "sent a page larger than 1000 bytes (max_page_bytes in sources.yaml)" in message


def test_server_error_text_is_cleaned_and_capped():
    error = "\x1b[2J\x1b[31mboom\x00" + "x" * 5000 + "\u202e\n"
    with ScriptedSource("enforcement", []) as source:
        source.misbehave = lambda _n, _p, _q: (400, {"error": error}, {})
        message = fails(enforcement.SPEC, source.url)
        assert ": boom xxx" in message and message.endswith("…")
        assert len(message) < 500
        assert not any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or ch == "\u202e" for ch in message)


def test_a_compressed_page_is_bounded_by_its_decompressed_size():
    bomb = gzip.compress(b'{"data": [' + b" " * 10_000_000 + b'], "next_cursor": null}')
    with ScriptedSource("permits", []) as source:
        source.misbehave = lambda _n, _p, _q: (200, bomb, {"Content-Encoding": "gzip"})
        message = fails(permits.SPEC, source.url, max_page_bytes=1_000_000)
        assert "sent a page larger than 1000000 bytes" in message


def test_a_page_without_content_length_is_bounded_while_it_streams():
    def answer(handler) -> None:  # noqa: ANN001 - http.server handler
        handler.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[")
        for _ in range(100):
            handler.wfile.write(b'"x",' * 10_000)

    with ScriptedSource("docreview", []) as source:
        source.raw = answer
        assert "sent a page larger than 100000 bytes" in fails(
            docreview.SPEC, source.url, max_page_bytes=100_000
        )


def test_same_origin_redirects_end_after_five():
    with ScriptedSource("enforcement", []) as source:
        source.misbehave = lambda n, _p, _q: (302, {}, {"Location": f"/hop{n}"})
        assert "more than 5 redirects, the last to http://127.0.0.1:" in fails(
            enforcement.SPEC, source.url
        )
        assert len(source.queries) == 6


def _self_signed(tmp_path) -> tuple[str, str]:  # noqa: ANN001
    """A certificate and key for 127.0.0.1, made here (no network, no fixtures on disk)."""
    from datetime import timedelta
    from ipaddress import ip_address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_the_request_deadline_holds_over_tls(tmp_path, monkeypatch):
    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)  # requests prefers it to session.verify
    body = b'{"data": [], "next_cursor": null}' + b" " * 200
    with ScriptedSource("permits", []) as source:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        source.server.socket = context.wrap_socket(source.server.socket, server_side=True)
        source.raw = trickle(source, body, 0.2)
        url = source.url.replace("http://", "https://")
        c = client(permits.SPEC, url, timeout_seconds=1, request_deadline_seconds=1.5)
        stream = permits.SPEC.streams[0]
        raised = ends_by_itself(lambda: list(stream.paginator.pages(c, stream, None)))
        c.close()
        assert isinstance(raised, SourceError), f"expected a SourceError, got {raised!r}"
        message = str(raised)
        assert re.search(
            r"did not answer in full within 1.5 s \(after 1 try over \d+\.\d s\)$", message
        )
        assert len(source.queries) == 1  # TLS worked: the request arrived
