"""Demo sources for N agencies, over real HTTP: varied data, own credentials, one failing source."""

from __future__ import annotations

import json
import shutil
from datetime import datetime

import pytest
import requests
from cli_support import clean_env, run_rulewatch

from rulewatch.config.agencies import load_agencies, source_endpoint
from rulewatch.config.settings import PACKAGE_CONFIG_DIR, load_settings
from rulewatch.demo import data
from rulewatch.demo.agencies import DemoAgency, build_world, demo_agencies, start_agency_sources
from rulewatch.demo.servers import admin_headers
from rulewatch.demo.store import DemoWorld
from rulewatch.extract import SOURCES
from rulewatch.extract.engine import ParseContext, SourceClient, SourceError


@pytest.fixture(scope="module")
def city():
    """Four agencies: the seed bureau, late decisions, an unfiled document, a late filing
    (and the last one's enforcement system failing)."""
    with start_agency_sources(demo_agencies(4)) as handle:
        yield handle


def _headers(agency: DemoAgency, system: str) -> dict[str, str]:
    creds = agency.credentials[system]
    if system == "permits":
        return {"Authorization": f"Bearer {creds['token']}"}
    if system == "enforcement":
        return {"X-Api-Key": creds["api_key"]}
    return {}


def _auth(agency: DemoAgency, system: str) -> tuple[str, str] | None:
    creds = agency.credentials[system]
    return (creds["user"], creds["password"]) if system == "docreview" else None


def _get(city, agency_id: str, system: str, path: str, **params):  # noqa: ANN001, ANN202
    agency = city.agency(agency_id)
    return requests.get(
        city.base_url(agency_id, system) + path,
        params=params,
        headers=_headers(agency, system),
        auth=_auth(agency, system),
        timeout=10,
    )


def _all_permits(city, agency_id: str) -> list[dict]:  # noqa: ANN001
    found, cursor = [], None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        body = _get(city, agency_id, "permits", "/api/v1/applications", **params).json()
        found += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def _all_documents(city, agency_id: str, per_page: int = 100) -> tuple[list[dict], list[str]]:  # noqa: ANN001
    """Every document, following the Link headers as given; and the links followed."""
    agency = city.agency(agency_id)
    url = city.base_url(agency_id, "docreview") + f"/v2/documents?per_page={per_page}"
    found, links = [], []
    while url:
        response = requests.get(url, auth=_auth(agency, "docreview"), timeout=10)
        assert response.status_code == 200, response.text
        found += response.json()
        url = response.links.get("next", {}).get("url")
        if url:
            links.append(url)
    return found, links


def _local_day(moment: str):  # noqa: ANN202
    return datetime.fromisoformat(moment).astimezone(data.SHANGHAI).date()


def _on_time_2023(permits: list[dict]) -> tuple[int, int]:
    """permits.on_time_rate of 2023 as interface.md defines it: (on time, decided)."""
    decided = [
        p
        for p in permits
        if p["status"] in ("approved", "denied")
        and p["decided_at"]
        and _local_day(p["decided_at"]).year == 2023
    ]
    on_time = [
        p
        for p in decided
        if data.working_days(_local_day(p["received_at"]), _local_day(p["decided_at"]))
        <= p["promised_days"]
    ]
    return len(on_time), len(decided)


def _filed_2023(documents: list[dict]) -> tuple[int, int]:
    normative = [
        d
        for d in documents
        if d.get("doc_type") == "normative_document"
        and (d.get("issued_on") or "").startswith("2023")
    ]
    return sum(1 for d in normative if d["filing"]["filed"]), len(normative)


def test_agencies_are_varied_and_the_first_is_the_seed_bureau():
    agencies = demo_agencies(6, scale=1200)
    assert agencies[0].agency_id == "science-tech" and agencies[0].name_zh == "台州市科学技术局"
    assert (agencies[0].late_permits, agencies[0].unfiled_documents, agencies[0].extra_permits) == (
        0,
        0,
        0,
    )
    assert sum(a.scale for a in agencies) == 1200 and len({a.scale for a in agencies}) > 3
    assert any(a.late_permits for a in agencies) and any(a.unfiled_documents for a in agencies)
    assert any(a.files_missed_late for a in agencies)
    assert [a.failing_system for a in agencies] == [None] * 5 + ["enforcement"]
    assert demo_agencies(1)[0].failing_system is None  # one agency: nothing fails
    assert len({a.agency_id for a in demo_agencies(50)}) == 50


def test_a_world_is_a_pure_function_of_its_agency():
    agency = demo_agencies(3)[1]
    first, again = build_world(agency), build_world(agency)
    for system in data.SYSTEMS:
        assert first.store(system).all_current() == again.store(system).all_current()
    other = build_world(demo_agencies(3)[2])
    assert first.store("permits").all_current() != other.store("permits").all_current()


def test_the_seed_bureau_serves_the_plain_demo(city):
    plain = DemoWorld()
    assert _all_permits(city, "science-tech") == plain.store("permits").all_current()
    documents, _ = _all_documents(city, "science-tech")
    assert documents == plain.store("docreview").all_current()


def test_figures_differ_by_agency_as_their_profiles_say(city):
    permits = {a.agency_id: _all_permits(city, a.agency_id) for a in city.agencies}
    received_2023 = {
        agency_id: sum(1 for p in rows if _local_day(p["received_at"]).year == 2023)
        for agency_id, rows in permits.items()
    }
    assert received_2023 == {
        "science-tech": 606,
        "market-regulation": 626,
        "ecology-environment": 646,
        "human-resources": 666,
    }
    on_time = {agency_id: _on_time_2023(rows) for agency_id, rows in permits.items()}
    assert on_time["science-tech"] == (606, 606)  # every decision in time
    assert on_time["market-regulation"] == (623, 626)  # three late: the rate slips
    filed = {a.agency_id: _filed_2023(_all_documents(city, a.agency_id)[0]) for a in city.agencies}
    assert filed == {
        "science-tech": (3, 3),
        "market-regulation": (3, 3),
        "ecology-environment": (2, 3),  # one never filed: the filing rate slips
        "human-resources": (3, 3),
    }
    late_filing = {d["doc_id"]: d for d in _all_documents(city, "human-resources")[0]}[
        data.MISSED_FILING_DOC_ID
    ]
    assert (
        late_filing["filing"]["filed"]
        and late_filing["filing"]["filed_on"] > late_filing["filing"]["deadline"]
    )


def test_each_agency_has_its_own_credentials(city):
    seed, other = city.agency("science-tech"), city.agency("market-regulation")
    url = city.base_url("science-tech", "permits") + "/api/v1/applications"
    assert requests.get(url, headers=_headers(seed, "permits"), timeout=10).status_code == 200
    refused = requests.get(url, headers=_headers(other, "permits"), timeout=10)
    assert refused.status_code == 401 and refused.json() == {
        "error": "missing or wrong credentials"
    }
    # the plain demo's credentials open no agency's door either
    assert requests.get(url, headers=admin_headers("permits"), timeout=10).status_code == 401


def test_docreview_links_keep_the_agency_prefix(city):
    documents, links = _all_documents(city, "ecology-environment", per_page=7)
    assert len(documents) == city.worlds["ecology-environment"].store("docreview").live_count
    prefix = city.base_url("ecology-environment", "docreview") + "/v2/documents?"
    assert links and all(link.startswith(prefix) for link in links)


def test_one_server_per_kind_and_unknown_agencies_are_404(city):
    assert len(set(city.ports.values())) == 3
    response = requests.get(
        f"http://127.0.0.1:{city.ports['permits']}/agencies/nobody/api/v1/applications", timeout=10
    )
    assert response.status_code == 404 and "no agency" in response.json()["error"]
    assert (
        requests.get(
            f"http://127.0.0.1:{city.ports['permits']}/api/v1/applications", timeout=10
        ).status_code
        == 404
    )


def test_the_failing_agency_fails_one_system_only(city):
    failing = city.agencies[-1]
    assert failing.failing_system == "enforcement"
    for _ in range(3):
        assert _get(city, failing.agency_id, "enforcement", "/api/inspections").status_code >= 500
    assert _get(city, failing.agency_id, "enforcement", "/api/officers").status_code >= 500
    assert (
        _get(city, failing.agency_id, "permits", "/api/v1/applications", limit=1).status_code == 200
    )
    assert _get(city, "science-tech", "enforcement", "/api/inspections").status_code == 200
    assert city.request_counts["science-tech"]["enforcement"] >= 1


def test_the_written_config_points_the_connectors_at_each_agency(city, tmp_path):
    """agencies.yaml and its variables, as written, read every agency's streams through the
    real connectors; the failing agency's enforcement fails, the rest of it reads."""
    config_dir = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, config_dir)
    (config_dir / "agencies.yaml").write_text(city.agencies_yaml(), encoding="utf-8")
    sources = "".join(
        f"{name}: {{page_size: {size}, max_retries: 0, backoff_factor: 0}}\n"
        for name, size in (("permits", 500), ("enforcement", 200), ("docreview", 100))
    )
    (config_dir / "sources.yaml").write_text(sources, encoding="utf-8")
    settings = load_settings({"RULEWATCH_CONFIG_DIR": str(config_dir), **city.env()})
    agencies = load_agencies(settings)
    assert agencies.ids == tuple(a.agency_id for a in city.agencies)
    assert agencies.supervisor is not None and agencies.supervisor.name_zh == "台州市司法局"
    ctx = ParseContext(settings.timezone, b"key", datetime(2024, 5, 20, tzinfo=data.SHANGHAI))
    for agency in agencies:
        world = city.worlds[agency.agency_id]
        for system in data.SYSTEMS:
            spec = SOURCES[system]
            client = SourceClient(spec, source_endpoint(settings, agency, system), ctx)
            try:
                stream = spec.streams[0]
                if system == city.agency(agency.agency_id).failing_system:
                    with pytest.raises(SourceError, match=r"HTTP 5\d\d .*agencies/human-resources"):
                        list(stream.paginator.pages(client, stream, None))
                    continue
                records = [r for page in stream.paginator.pages(client, stream, None) for r in page]
            finally:
                client.close()
            assert len(records) == world.store(system).live_count, (agency.agency_id, system)


def test_a_one_agency_run_sees_that_agencys_slip(tmp_path):
    """The whole pipeline against one agency's systems (as the city set-up will be checked
    against): the agency with late decisions has permits.on_time_rate slipped for 2023."""
    with start_agency_sources(demo_agencies(2, failing=False)) as city:
        env = clean_env(
            **city.single_env("market-regulation"),
            RULEWATCH_DATA_DIR=str(tmp_path / "data"),
            RULEWATCH_PII_KEY="agency-test-key",
        )
        synced = run_rulewatch(env, "sync", "--as-of", "2024-05-20")
        assert synced.returncode == 0, synced.stderr[-2000:]
    shown = run_rulewatch(env, "kpis", "--period", "2023", "--as-of", "2024-05-20", "--json")
    assert shown.returncode == 0, shown.stderr[-2000:]
    metrics = {m["metric"]: m for m in json.loads(shown.stdout)}
    assert metrics["permits.received"]["value"] == 626
    on_time = metrics["permits.on_time_rate"]
    assert (on_time["numerator"], on_time["denominator"]) == (623, 626)
    assert on_time["status"] == "slipped"
    assert metrics["docreview.filing_rate"]["status"] == "met"
