"""The paginators against real HTTP servers that follow the contract (source-apis.md).

Each test serves hand-built records from :mod:`scripted_sources` and checks that
a pass over the stream reads every record: page boundaries inside a run of
equal change times, a last page that is exactly full, records that change
(and move to the end) while the pass pages through them, change logs.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from scripted_sources import ScriptedSource

from rulewatch.config.settings import SourceEndpoint, SourceOptions
from rulewatch.extract import docreview, enforcement, permits
from rulewatch.extract.engine import ParseContext, SourceClient, SourceSpec

SHANGHAI = ZoneInfo("Asia/Shanghai")
CREDENTIALS = {"token": "t", "api_key": "k", "user": "u", "password": "p"}


def client(spec: SourceSpec, url: str, page_size: int) -> SourceClient:
    options = SourceOptions(page_size=page_size, max_retries=0, backoff_factor=0)
    ctx = ParseContext(SHANGHAI, b"key", datetime(2024, 5, 1, tzinfo=UTC))
    return SourceClient(spec, SourceEndpoint(spec.name, url, CREDENTIALS, options), ctx)


def read_keys(spec: SourceSpec, source: ScriptedSource, page_size: int, since=None) -> list:  # noqa: ANN001
    """Every natural key one pass over the first stream yields, in order."""
    c = client(spec, source.url, page_size)
    stream = spec.streams[0]
    try:
        pages = list(stream.paginator.pages(c, stream, since))
    finally:
        c.close()
    return [r[stream.natural_key] for page in pages for r in page]


def inspection(key: str, modified: str) -> dict:
    return {"inspection_no": key, "modified": modified}


def document(key: str, ms: int) -> dict:
    return {"doc_id": key, "last_modified_ms": ms}


T0 = "2024-01-02 10:00:00"
T0_MS = 1_704_160_800_000  # 2024-01-02 02:00:00 UTC = 10:00 in Shanghai


# --- enforcement: page numbers, local times -------------------------------------------------


def test_equal_change_times_across_page_boundaries_from_a_watermark() -> None:
    records = [inspection("A", "2024-01-02 09:59:59")]
    records += [inspection(k, T0) for k in "BCDEFG"]
    records += [inspection("H", "2024-01-02 10:00:01")]
    with ScriptedSource("enforcement", records) as source:
        since = datetime(2024, 1, 2, 2, 0, tzinfo=UTC)  # T0 in UTC
        keys = read_keys(enforcement.SPEC, source, 2, since)
        assert set(keys) == set("BCDEFGH")  # inclusive: the watermark's own records again
        # the filter goes out as local Shanghai time, percent-encoded
        assert source.queries[0]["modified_after"] == T0
        assert "modified_after=2024-01-02+10%3A00%3A00" in source.raw_queries[0]


@pytest.mark.parametrize("count", [6, 7])  # the last page exactly full, or short
def test_last_page_detection(count: int) -> None:
    records = [inspection(f"K{i}", f"2024-01-02 10:00:{i:02d}") for i in range(count)]
    with ScriptedSource("enforcement", records) as source:
        keys = read_keys(enforcement.SPEC, source, 3)
        assert set(keys) == {f"K{i}" for i in range(count)}
        assert len(source.queries) < 10


def test_empty_source() -> None:
    with ScriptedSource("enforcement", []) as source:
        assert read_keys(enforcement.SPEC, source, 3) == []
        assert len(source.queries) == 1


def test_a_record_moving_to_the_last_page_while_paging_a_block_loses_nothing() -> None:
    """K1 changes after page 1 of a block was read: K4 slides back onto that page.

    The moved K1 shows up only on the last (short) page; the pass must still
    re-read the block, or K4 is lost for good (the watermark passes it).
    """
    records = [inspection(f"K{i}", T0) for i in range(1, 8)]
    with ScriptedSource("enforcement", records) as source:
        source.hooks[3] = lambda: source.change("K1", modified="2024-01-02 11:00:00")
        keys = read_keys(enforcement.SPEC, source, 3)
        assert set(keys) == {f"K{i}" for i in range(1, 8)}


def test_a_record_moving_while_paging_a_block_mid_stream_loses_nothing() -> None:
    records = [inspection(f"K{i:02d}", T0) for i in range(1, 11)]
    records += [inspection(f"L{i}", f"2024-01-02 10:00:{i:02d}") for i in range(1, 6)]
    with ScriptedSource("enforcement", records) as source:
        source.hooks[4] = lambda: source.change("K02", modified="2024-01-02 11:00:00")
        keys = read_keys(enforcement.SPEC, source, 3)
        assert set(keys) == {r["inspection_no"] for r in records}


def test_change_log_with_several_versions_of_a_key() -> None:
    records = [inspection(f"K{i}", T0) for i in range(1, 7)]
    with ScriptedSource("enforcement", records, change_log=True) as source:
        source.hooks[3] = lambda: source.change("K1", modified="2024-01-02 11:00:00")
        keys = read_keys(enforcement.SPEC, source, 2)
        assert set(keys) == {f"K{i}" for i in range(1, 7)}
        assert len(source.queries) <= 10  # one re-read for the new version, not one per page


# --- docreview: Link header, epoch ms -------------------------------------------------------


def test_link_header_pages_with_equal_change_times() -> None:
    records = [document(f"D{i}", T0_MS) for i in range(1, 6)]
    records += [
        document("E1", T0_MS + 1),
        {"doc_id": "X", "deleted": True, "last_modified_ms": T0_MS + 2},
    ]
    with ScriptedSource("docreview", records) as source:
        keys = read_keys(docreview.SPEC, source, 2, datetime(2024, 1, 2, 2, tzinfo=UTC))
        assert set(keys) == {"D1", "D2", "D3", "D4", "D5", "E1", "X"}
        assert source.queries[0]["since"] == str(T0_MS)


def test_docreview_record_moving_to_the_last_page_loses_nothing() -> None:
    records = [document(f"D{i}", T0_MS) for i in range(1, 8)]
    with ScriptedSource("docreview", records) as source:
        source.hooks[3] = lambda: source.change("D1", last_modified_ms=T0_MS + 5000)
        keys = read_keys(docreview.SPEC, source, 3)
        assert set(keys) == {f"D{i}" for i in range(1, 8)}


def test_a_relative_link_is_followed_from_the_page_it_came_with() -> None:
    records = [document(f"D{i}", T0_MS) for i in range(5)]
    with ScriptedSource("docreview", records) as source:
        source.relative_links = True
        assert set(read_keys(docreview.SPEC, source, 2)) == {f"D{i}" for i in range(5)}
        assert [q["page"] for q in source.queries] == ["1", "1", "2", "3"]


def test_docreview_last_page_exactly_full_has_no_link() -> None:
    records = [document(f"D{i}", T0_MS + i) for i in range(4)]
    with ScriptedSource("docreview", records) as source:
        assert set(read_keys(docreview.SPEC, source, 2)) == {"D0", "D1", "D2", "D3"}


# --- permits: opaque cursor -----------------------------------------------------------------


def application(key: str, updated_at: str) -> dict:
    return {"application_id": key, "updated_at": updated_at}


def test_cursor_alone_positions_the_next_page_and_the_filter_is_encoded() -> None:
    records = [application(f"P{i}", "2024-01-02T10:00:00+08:00") for i in range(5)]
    records.append(application("Q", "2024-01-02T02:00:01Z"))
    with ScriptedSource("permits", records) as source:
        since = datetime(2024, 1, 2, 2, 0, tzinfo=UTC)
        assert set(read_keys(permits.SPEC, source, 2, since)) == {"P0", "P1", "P2", "P3", "P4", "Q"}
        assert "updated_since=2024-01-02T02%3A00%3A00%2B00%3A00" in source.raw_queries[0]
        assert datetime.fromisoformat(source.queries[0]["updated_since"]) == since
        assert all("updated_since" not in q and "cursor" in q for q in source.queries[1:])
        assert len(source.queries) == 3


def test_a_netrc_entry_never_replaces_the_configured_credentials(tmp_path, monkeypatch) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password elsewhere\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with ScriptedSource("permits", []) as source:
        read_keys(permits.SPEC, source, 2)
        assert source.received_headers[0]["Authorization"] == "Bearer t"


def test_a_client_makes_no_thread_per_try(monkeypatch) -> None:
    records = [inspection(f"K{i}", f"2024-01-02 10:00:{i:02d}") for i in range(9)]
    with ScriptedSource("enforcement", records) as source:
        read_keys(enforcement.SPEC, source, 1)  # the deadline watcher exists from here on
        started = []
        start = threading.Thread.start

        def counted(thread: threading.Thread) -> None:
            if threading.current_thread() is threading.main_thread():  # not the server's
                started.append(thread)
            start(thread)

        monkeypatch.setattr(threading.Thread, "start", counted)
        read_keys(enforcement.SPEC, source, 1)
        assert len(source.queries) >= 20
        assert started == []
