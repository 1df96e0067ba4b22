"""The demo source systems over real HTTP, as a connector sees them."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests

import rulewatch
from rulewatch.demo import data
from rulewatch.demo.servers import (
    DemoSources,
    FaultInjector,
    Faults,
    admin_headers,
    start_demo_sources,
    touch_remote,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
PATHS = {
    "permits": "/api/v1/applications",
    "enforcement": "/api/inspections",
    "docreview": "/v2/documents",
}
AUTH = {s: admin_headers(s) for s in PATHS}


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoSources]:
    """One read-only set of servers for the module (tests that change data start their own)."""
    with start_demo_sources() as handle:
        yield handle


def _local(value: str) -> date:
    return datetime.fromisoformat(value).astimezone(SHANGHAI).date()


def get(handle: DemoSources, system: str, path: str | None = None, **params) -> requests.Response:
    url = handle.urls[system] + (path or PATHS[system])
    return requests.get(url, params=params, headers=AUTH[system], timeout=10)


def all_permits(handle: DemoSources, session: requests.Session | None = None, **params):
    """Every application through the cursor chain; also the number of requests."""
    session = session or requests.Session()
    url = handle.permits_url + PATHS["permits"]
    records, requests_made = [], 0
    while True:
        body = session.get(url, params=params, headers=AUTH["permits"], timeout=10).json()
        requests_made += 1
        records += body["data"]
        if body["next_cursor"] is None:
            return records, requests_made
        params = {"limit": params.get("limit", 100), "cursor": body["next_cursor"]}


def all_inspections(handle: DemoSources, size: int = 200, **params) -> list[dict]:
    session, page, records = requests.Session(), 1, []
    url = handle.enforcement_url + PATHS["enforcement"]
    while True:
        query = {**params, "page": page, "page_size": size}
        body = session.get(url, params=query, headers=AUTH["enforcement"], timeout=10).json()
        if not body["records"]:
            assert len(records) == body["total"]
            return records
        records += body["records"]
        page += 1


def all_documents(handle: DemoSources, **params) -> tuple[list[dict], list[str]]:
    """Every document following the Link headers; also the links followed."""
    session = requests.Session()
    response = session.get(
        handle.docreview_url + PATHS["docreview"], params=params, headers=AUTH["docreview"]
    )
    records, links = list(response.json()), []
    while "next" in response.links:
        links.append(response.links["next"]["url"])
        response = session.get(links[-1], headers=AUTH["docreview"], timeout=10)
        records += response.json()
    return records, links


def roster(handle: DemoSources) -> list[dict]:
    return get(handle, "enforcement", "/api/officers").json()["officers"]


# --- start, stop, environment ------------------------------------------------------------


def test_start_answers_and_stop_frees_ports_and_threads():
    handle = start_demo_sources()  # how long it takes is in bench/bounds.py
    ports = list(handle.ports.values())
    assert len(set(ports)) == 3 and all(p > 0 for p in ports)
    assert get(handle, "permits", limit=1).status_code == 200
    handle.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("demo-")]
    for port in ports:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
        with socket.create_server(("127.0.0.1", port)):  # the port is free again
            pass
    handle.stop()  # idempotent


def test_fixed_ports_and_the_environment_for_rulewatch():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    try:
        handle = start_demo_sources(ports=(base, base + 1, base + 2))
    except OSError:
        pytest.skip("neighbouring ports taken")
    with handle:
        env = handle.env()
        assert env == {
            "RULEWATCH_PERMITS_URL": f"http://127.0.0.1:{base}",
            "RULEWATCH_PERMITS_TOKEN": data.DEMO_PERMITS_TOKEN,
            "RULEWATCH_ENFORCEMENT_URL": f"http://127.0.0.1:{base + 1}",
            "RULEWATCH_ENFORCEMENT_API_KEY": data.DEMO_ENFORCEMENT_API_KEY,
            "RULEWATCH_DOCREVIEW_URL": f"http://127.0.0.1:{base + 2}",
            "RULEWATCH_DOCREVIEW_USER": data.DEMO_DOCREVIEW_USER,
            "RULEWATCH_DOCREVIEW_PASSWORD": data.DEMO_DOCREVIEW_PASSWORD,
        }
        assert handle.due_soon_doc_id == data.DUE_SOON_DOC_ID
        with pytest.raises(OSError):
            start_demo_sources(ports=(base, 0, 0))


# --- auth and parameters ------------------------------------------------------------------

WRONG = {
    "permits": [{}, {"Authorization": "Bearer nope"}, {"Authorization": "demo-permits-token"}],
    "enforcement": [{}, {"X-Api-Key": "nope"}, {"Authorization": "Bearer demo-enforcement-key"}],
    "docreview": [{}, {"Authorization": "Basic ZGVtbzpub3Bl"}, {"Authorization": "Bearer x"}],
}


@pytest.mark.parametrize(("system", "headers"), [(s, h) for s, hs in WRONG.items() for h in hs])
def test_missing_or_wrong_credentials_get_401_json(demo, system, headers):
    for path in (PATHS[system], "/_demo/stats"):
        response = requests.get(demo.urls[system] + path, headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"]
    if system == "enforcement":
        response = requests.get(demo.enforcement_url + "/api/officers", headers=headers)
        assert response.status_code == 401


BAD = [
    ("permits", {"limit": "0"}),
    ("permits", {"limit": "501"}),
    ("permits", {"limit": "ten"}),
    ("permits", {"limit": ""}),
    ("permits", {"updated_since": "2023-06-01T00:00:00"}),  # no offset
    ("permits", {"updated_since": "2023-02-30T00:00:00+08:00"}),
    ("permits", {"updated_since": "yesterday"}),
    ("permits", {"cursor": "not-a-cursor"}),
    ("permits", {"cursor": "eyJhIjogMX0"}),  # base64 JSON, but not ours
    ("enforcement", {"page": "0"}),
    ("enforcement", {"page": "-1"}),
    ("enforcement", {"page_size": "0"}),
    ("enforcement", {"page_size": "201"}),
    ("enforcement", {"modified_after": "2023-06-01T00:00:00"}),
    ("enforcement", {"modified_after": "2023-02-30 00:00:00"}),
    ("enforcement", {"modified_after": "2023-06-01"}),
    ("docreview", {"per_page": "0"}),
    ("docreview", {"per_page": "101"}),
    ("docreview", {"page": "0"}),
    ("docreview", {"since": "2023-06-01"}),
    ("docreview", {"since": "-5"}),
]


@pytest.mark.parametrize(("system", "params"), BAD)
def test_a_bad_parameter_gets_400_with_an_error(demo, system, params):
    response = get(demo, system, **params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert next(iter(params)) in response.json()["error"]


def test_offsets_arrive_percent_encoded(demo):
    url = demo.permits_url + PATHS["permits"]
    encoded = requests.get(
        url + "?updated_since=2024-05-01T00:00:00%2B08:00", headers=AUTH["permits"]
    )
    assert encoded.status_code == 200 and encoded.json()["data"]
    raw_plus = requests.get(
        url + "?updated_since=2024-05-01T00:00:00+08:00", headers=AUTH["permits"]
    )
    assert raw_plus.status_code == 400 and "%2B" in raw_plus.json()["error"]
    utc = get(demo, "permits", updated_since="2024-04-30T16:00:00Z").json()
    assert utc["data"] == encoded.json()["data"]  # the same instant, whatever the offset


def test_unknown_paths_and_methods(demo):
    assert get(demo, "permits", "/api/v2/nothing").status_code == 404
    response = requests.post(demo.permits_url + PATHS["permits"], headers=AUTH["permits"])
    assert response.status_code == 405


# --- paging -------------------------------------------------------------------------------


def test_permits_cursor_pages_end_to_end(demo):
    records, requests_made = all_permits(demo, limit=500)
    assert requests_made == 3  # 1,383 applications
    keys = [r["application_id"] for r in records]
    assert len(keys) == len(set(keys)) == demo.stores["permits"].live_count
    order = [(datetime.fromisoformat(r["updated_at"]), r["application_id"]) for r in records]
    assert order == sorted(order)  # by instant, whatever the offset, then key
    small, requests_made = all_permits(demo, limit=7)
    assert small == records and requests_made == -(-len(records) // 7)


def test_enforcement_page_numbers_end_to_end(demo):
    records = all_inspections(demo, size=7)
    assert records == all_inspections(demo, size=200)
    keys = [r["inspection_no"] for r in records]
    assert len(keys) == len(set(keys))
    assert [r["modified"] for r in records] == sorted(r["modified"] for r in records)
    past = get(demo, "enforcement", page=99, page_size=50).json()
    assert past == {"total": len(records), "page": 99, "page_size": 50, "records": []}
    default = get(demo, "enforcement").json()
    assert (default["page"], default["page_size"], default["total"]) == (1, 50, len(records))
    assert len(default["records"]) == min(50, len(records))


def test_docreview_link_pages_end_to_end(demo):
    records, links = all_documents(demo, per_page=10)
    assert len(records) == demo.stores["docreview"].live_count
    assert len(links) == -(-len(records) // 10) - 1
    assert all(link.startswith(demo.docreview_url + "/v2/documents?") for link in links)
    times = [r["last_modified_ms"] for r in records]
    assert times == sorted(times)
    whole = get(demo, "docreview", per_page=100)
    assert "link" not in {k.lower() for k in whole.headers}  # one page: no next link
    assert len(whole.json()) == len(records)
    since = records[50]["last_modified_ms"]
    filtered, links = all_documents(demo, since=since, per_page=20)
    assert filtered == records[50:] and "since=" in links[0]


def test_filters_are_inclusive(demo):
    permits, _ = all_permits(demo, limit=500)
    boundary = permits[700]
    again, _ = all_permits(demo, updated_since=boundary["updated_at"], limit=500)
    assert again[0] == boundary and again == permits[700:]

    inspections = all_inspections(demo)
    boundary = inspections[30]
    again = all_inspections(demo, modified_after=boundary["modified"])
    assert again[0] == boundary

    documents, _ = all_documents(demo, per_page=100)
    boundary = documents[80]
    again, _ = all_documents(demo, since=boundary["last_modified_ms"], per_page=100)
    assert again[0] == boundary and again == documents[80:]


def test_keep_alive_and_tcp_nodelay(demo):
    parts = urlsplit(demo.docreview_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    for _ in range(3):  # three requests, one connection
        connection.request("GET", "/v2/documents?per_page=5", headers=AUTH["docreview"])
        response = connection.getresponse()
        assert response.status == 200 and len(response.read()) > 100
        assert response.getheader("connection", "keep-alive").lower() != "close"
    connection.request("GET", "/_demo/stats", headers=AUTH["docreview"])
    stats = connection.getresponse()
    assert stats.status == 200
    assert json.loads(stats.read())["tcp_nodelay"] is True
    connection.close()


# --- the seed's figures from the raw JSON -------------------------------------------------


def test_permit_figures_by_local_date(demo):
    records, _ = all_permits(demo, limit=500)
    received = Counter(_local(r["received_at"]).year for r in records)
    decided = Counter(
        (_local(r["decided_at"]).year, r["status"]) for r in records if r["decided_at"]
    )
    assert (received[2022], received[2023]) == (547, 606)
    assert (decided[2022, "approved"], decided[2022, "denied"]) == (542, 5)
    assert (decided[2023, "approved"], decided[2023, "denied"]) == (593, 13)
    assert not [r for r in records if _local(r["received_at"]).year < 2022]
    assert any(r["received_at"].endswith("Z") for r in records)
    assert any(r["received_at"].endswith("+08:00") for r in records)


def test_enforcement_figures_and_roster(demo):
    inspections = [r for r in all_inspections(demo) if r["inspected_on"].startswith("2023")]
    double_random = [r for r in inspections if r["task_type"] == "double_random"]
    assert len(double_random) == 12
    assert all(r["credit_rule_applied"] and r["published"] for r in double_random)
    assert all(len(r["officers"]) >= 2 for r in inspections)
    officers = roster(demo)
    roles = Counter((o["role"], o["certified"]) for o in officers)
    assert roles == {("officer", True): 13, ("auxiliary", False): 6}


def test_docreview_figures_tombstone_and_2024_filings(demo):
    documents, _ = all_documents(demo, per_page=100)
    by_id = {d["doc_id"]: d for d in documents}
    live = [d for d in documents if not d.get("deleted")]
    normative = [d for d in live if d["doc_type"] == "normative_document" and d["issued_on"]]
    assert len([d for d in normative if d["issued_on"].startswith("2023")]) == 3
    contracts = [
        d
        for d in live
        if d["doc_type"] == "government_contract"
        and (d["legality_reviewed_on"] or "").startswith("2023")
    ]
    assert len(contracts) == 40
    assert [d["doc_id"] for d in live if d["status"] == "repealed"] == [data.REPEALED_DOC_ID]
    assert by_id[data.DELETED_DOC_ID]["deleted"] is True
    assert set(by_id[data.DELETED_DOC_ID]) == {"doc_id", "deleted", "last_modified_ms"}
    unfiled = {
        d["doc_id"]: d["filing"]["deadline"]
        for d in normative
        if d["issued_on"] >= "2024" and not d["filing"]["filed"]
    }
    assert unfiled == {data.MISSED_FILING_DOC_ID: "2024-04-04", data.DUE_SOON_DOC_ID: "2024-05-23"}


def test_every_served_record_is_well_formed(demo, contract):
    permits, _ = all_permits(demo, limit=500)
    documents, _ = all_documents(demo, per_page=100)
    served = (
        [("permits.applications", r) for r in permits]
        + [("enforcement.inspections", r) for r in all_inspections(demo)]
        + [("docreview.documents", r) for r in documents]
        + [("enforcement.officers", r) for r in roster(demo)]
    )
    assert [(s, r) for s, r in served if contract(s, r)] == []


# --- malformed records --------------------------------------------------------------------


def test_malformed_records_are_served_beside_the_good_ones(contract):
    with start_demo_sources(malformed=6) as handle:
        assert len(handle.malformed) == 24
        permits, _ = all_permits(handle, limit=500)
        streams = {
            "permits.applications": permits,
            "enforcement.inspections": all_inspections(handle),
            "docreview.documents": all_documents(handle, per_page=100)[0],
            "enforcement.officers": roster(handle),
        }
        for stream, records in streams.items():
            bad = [r for r in records if contract(stream, r)]
            assert len(bad) == 6, stream
            expected = [m.record for m in handle.malformed if m.stream == stream]
            assert sorted(map(repr, bad)) == sorted(map(repr, expected))
        good = [r for r in permits if not contract("permits.applications", r)]
        assert Counter(_local(r["received_at"]).year for r in good)[2023] == 606
        assert any(r.get("status") == "Approved" for r in permits)
        assert any("application_id" not in r for r in permits)
        assert any(r.get("application_id") == "" for r in permits)
        assert any(o.get("role") == "Officer" for o in streams["enforcement.officers"])
        assert {m.kind for m in handle.malformed} >= {"missing_key", "bad_code", "bad_date"}


# --- faults -------------------------------------------------------------------------------


def test_scripted_faults_then_normal_answers():
    faults = Faults(script=["429", "503", "drop", "502", "ok", "500"], retry_after=0)
    with start_demo_sources(faults={"permits": faults}) as handle:
        session = requests.Session()
        url = handle.permits_url + PATHS["permits"]

        def call() -> requests.Response:
            return session.get(url, headers=AUTH["permits"], timeout=10)

        first = call()
        assert first.status_code == 429 and first.headers["Retry-After"] == "0"
        assert first.json()["error"]
        assert call().status_code == 503
        with pytest.raises(requests.ConnectionError):
            call()  # dropped without a response
        assert call().status_code == 502
        assert call().status_code == 200
        assert call().status_code == 500
        assert all(call().status_code == 200 for _ in range(3))
        assert handle.request_counts == {"permits": 9, "enforcement": 0, "docreview": 0}
        assert handle.faults_injected("permits") == {
            "429": 1,
            "503": 1,
            "drop": 1,
            "502": 1,
            "500": 1,
        }
        assert get(handle, "enforcement").status_code == 200  # other systems unaffected


def test_retry_after_defaults_to_a_second_and_faults_precede_auth():
    with start_demo_sources(faults=Faults(script=["429"])) as handle:
        for system in PATHS:
            response = requests.get(handle.urls[system] + PATHS[system], timeout=10)
            assert response.status_code == 429 and response.headers["Retry-After"] == "1"
            assert requests.get(handle.urls[system] + PATHS[system]).status_code == 401


def test_random_faults_are_deterministic_per_seed():
    faults = Faults(rate_429=0.2, rate_5xx=0.2, rate_drop=0.1, seed=42)
    a, b = FaultInjector(faults), FaultInjector(faults)
    draws = [a.next() for _ in range(400)]
    assert draws == [b.next() for _ in range(400)]
    counts = Counter(draws)
    assert 50 < counts["429"] < 110 and 15 < counts["drop"] < 65
    assert counts[None] > 150
    assert FaultInjector(Faults(rate_429=0.5, seed=1)).next() != "drop"
    with pytest.raises(ValueError):
        Faults(script=["418"])


def test_a_dropping_server_counts_and_recovers():
    with start_demo_sources(faults={"docreview": Faults(script=["drop"] * 3)}) as handle:
        session = requests.Session()
        for _ in range(3):
            with pytest.raises(requests.ConnectionError):
                session.get(handle.docreview_url + PATHS["docreview"], headers=AUTH["docreview"])
        assert get(handle, "docreview").status_code == 200
        assert handle.request_counts["docreview"] == 4


# --- changes while syncing ----------------------------------------------------------------


def test_a_change_moves_the_record_to_the_end_with_page_numbers():
    with start_demo_sources() as handle:
        page1 = get(handle, "enforcement", page=1, page_size=5).json()["records"]
        page2 = get(handle, "enforcement", page=2, page_size=5).json()["records"]
        moved = page1[0]["inspection_no"]
        new = handle.mutate("enforcement", moved, outcome="penalized")
        assert new["modified"] > "2024-05-20 18:00:00"
        page1_again = get(handle, "enforcement", page=1, page_size=5).json()["records"]
        assert page1_again[:4] == page1[1:] and page1_again[4] == page2[0]  # slid back
        tail = get(handle, "enforcement", modified_after=new["modified"]).json()
        assert tail["total"] == 1 and tail["records"][0]["outcome"] == "penalized"
        last = all_inspections(handle)[-1]
        assert last["inspection_no"] == moved


def test_cursor_paging_loses_nothing_while_records_change():
    with start_demo_sources() as handle:
        session = requests.Session()
        url = handle.permits_url + PATHS["permits"]
        body = session.get(url, params={"limit": 100}, headers=AUTH["permits"]).json()
        seen = [r["application_id"] for r in body["data"]]
        handle.mutate("permits", seen[0], status="denied")  # already read: comes again
        handle.mutate("permits", "WP2023-000300", joint_residence_permit=False)
        while body["next_cursor"]:
            params = {"limit": 100, "cursor": body["next_cursor"]}
            body = session.get(url, params=params, headers=AUTH["permits"]).json()
            seen += [r["application_id"] for r in body["data"]]
        assert set(seen) == {
            k.get("application_id") for k in handle.stores["permits"].all_current()
        }
        assert seen[-2:] == [seen[0], "WP2023-000300"]
        assert seen.count(seen[0]) == 2 and seen.count("WP2023-000300") == 1


def test_documents_officers_and_new_records_change():
    with start_demo_sources() as handle:
        before = get(handle, "docreview", per_page=100).json()
        horizon = max(d["last_modified_ms"] for d in before)
        handle.mutate(
            "docreview",
            data.DUE_SOON_DOC_ID,
            filing={
                "filed": True,
                "filed_on": "2024-05-19",
                "deadline": "2024-05-23",
                "accepted": None,
                "issues": [],
            },
        )
        handle.delete_document(data.FILED_2024_DOC_ID)
        changed = get(handle, "docreview", since=horizon + 1).json()
        assert [d["doc_id"] for d in changed] == [data.DUE_SOON_DOC_ID, data.FILED_2024_DOC_ID]
        assert changed[0]["filing"]["filed_on"] == "2024-05-19"
        assert changed[1] == {
            "doc_id": data.FILED_2024_DOC_ID,
            "deleted": True,
            "last_modified_ms": changed[1]["last_modified_ms"],
        }
        handle.remove_officer("ZF-007")
        handle.add_officer("ZF-014", "孙海峰", certificate_expires="2029-06-30")
        ids = [o["officer_id"] for o in roster(handle)]
        assert "ZF-007" not in ids and "ZF-014" in ids
        new = handle.add_record(
            "permits",
            {**handle.current("permits", "WP2024-000001"), "application_id": "WP2024-000999"},
        )
        tail, _ = all_permits(handle, updated_since=new["updated_at"])
        assert [r["application_id"] for r in tail] == ["WP2024-000999"]


def test_change_log_mode_serves_every_version():
    with start_demo_sources(change_log=True) as handle:
        permits, _ = all_permits(handle, limit=500)
        keys = Counter(r["application_id"] for r in permits)
        assert len(permits) > len(keys) and keys["WP2023-000001"] == 2
        versions = [r for r in permits if r["application_id"] == "WP2023-000001"]
        assert [v["status"] for v in versions] == ["received", "approved"]
        handle.mutate("permits", "WP2023-000001", status="denied")
        again, _ = all_permits(handle, limit=500)
        assert len(again) == len(permits) + 1 and again[-1]["status"] == "denied"
        documents, _ = all_documents(handle, per_page=100)
        deleted = [d for d in documents if d["doc_id"] == data.DELETED_DOC_ID]
        assert len(deleted) == 2 and deleted[-1]["deleted"] is True


def test_touch_over_http_for_a_benchmark_in_another_process():
    with start_demo_sources(scale=2_000) as handle:
        horizon = handle.stores["docreview"].last_instant_ms
        touched = touch_remote(handle.docreview_url, "docreview", 0.01)
        live = handle.stores["docreview"].live_count
        assert touched == round(live * 0.01)
        delta, _ = all_documents(handle, since=horizon + 1, per_page=100)
        assert len(delta) == touched
        bad = requests.post(
            handle.docreview_url + "/_demo/touch",
            params={"fraction": "2"},
            headers=AUTH["docreview"],
        )
        assert bad.status_code == 400
        denied = requests.post(handle.docreview_url + "/_demo/touch", params={"fraction": "0.1"})
        assert denied.status_code == 401
        assert handle.request_counts["docreview"] == -(-touched // 100)  # admin not counted


# --- scale --------------------------------------------------------------------------------


def test_scale_adds_well_formed_records_outside_the_seed_years(contract):
    with start_demo_sources(scale=20_000) as handle:
        permits, requests_made = all_permits(handle, limit=500)
        assert len(permits) == 10_000 + 1_383 and requests_made == 23
        synthetic = permits[:10_000]
        assert all(2015 <= _local(r["received_at"]).year <= 2021 for r in synthetic)
        assert Counter(_local(r["received_at"]).year for r in permits)[2023] == 606
        assert [r for r in synthetic[::50] if contract("permits.applications", r)] == []
        inspections = all_inspections(handle)
        assert len(inspections) == 6_000 + len(data.current_records("enforcement.inspections"))
        documents, _ = all_documents(handle, per_page=100)
        assert len(documents) == 4_000 + len(data.current_records("docreview.documents"))
        assert all(d["issued_on"] < "2022" for d in documents[:4_000])


def test_serve_demo_sources_runs_until_sigterm(tmp_path):
    """What ``rulewatch demo-sources`` runs: three fixed ports, stopped by a signal."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = str(Path(rulewatch.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    code = f"from rulewatch.demo.servers import serve_demo_sources; serve_demo_sources('127.0.0.1', {port})"
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                response = requests.get(
                    f"http://127.0.0.1:{port + 2}/v2/documents",
                    headers=AUTH["docreview"],
                    timeout=1,
                )
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"could not start on {port}..{port + 2}: {process.stderr.read()}")
                time.sleep(0.05)
        assert response.status_code == 200
        assert get_url(f"http://127.0.0.1:{port}/api/v1/applications", "permits") == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert f"RULEWATCH_PERMITS_URL=http://127.0.0.1:{port}" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def get_url(url: str, system: str) -> int:
    return requests.get(url, headers=AUTH[system], timeout=5).status_code
