"""The demo data itself: the seed's figures, well-formed records, deterministic synthetics."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from rulewatch.demo import data

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _local(value: str) -> date:
    return datetime.fromisoformat(value).astimezone(SHANGHAI).date()


def test_permit_counts_reproduce_the_seed_by_local_date():
    permits = data.current_records("permits.applications")
    received = Counter(_local(r["received_at"]).year for r in permits)
    decided = Counter(
        (_local(r["decided_at"]).year, r["status"]) for r in permits if r["decided_at"]
    )
    assert received[2023] == 606 and received[2022] == 547
    assert decided[2023, "approved"] == 593 and decided[2023, "denied"] == 13
    assert decided[2022, "approved"] == 542 and decided[2022, "denied"] == 5
    for r in permits:  # every 2022/2023 application was decided in its own year, none withdrawn
        if _local(r["received_at"]).year in (2022, 2023):
            assert r["status"] in ("approved", "denied")
            assert _local(r["decided_at"]).year == _local(r["received_at"]).year


def test_utc_forms_make_the_local_date_matter():
    permits = {r["application_id"]: r for r in data.current_records("permits.applications")}
    first = permits[data.FIRST_2023_PERMIT_ID]
    assert first["received_at"].startswith("2022-12-31") and first["received_at"].endswith("Z")
    assert _local(first["received_at"]) == date(2023, 1, 1)
    assert _local(permits[data.FIRST_2022_PERMIT_ID]["received_at"]) == date(2022, 1, 1)
    early = [
        r
        for r in permits.values()
        if r["received_at"].endswith("Z")
        and _local(r["received_at"]) != datetime.fromisoformat(r["received_at"]).date()
    ]
    assert len(early) > 20  # received 00:00-08:00 local: the UTC form shows the day before
    assert any(r["updated_at"].endswith("+08:00") for r in permits.values())


def test_decisions_are_on_time_except_two_in_2024():
    late = []
    for r in data.current_records("permits.applications"):
        if r["decided_at"]:
            days = data.working_days(_local(r["received_at"]), _local(r["decided_at"]))
            if days > r["promised_days"]:
                late.append(r["application_id"])
            assert _local(r["decided_at"]) <= data.DEMO_TODAY
    assert len(late) == 2 and all(k.startswith("WP2024-") for k in late)


def test_2024_permits_are_a_mix_up_to_demo_today():
    permits = [
        r
        for r in data.current_records("permits.applications")
        if r["application_id"].startswith("WP2024-")
    ]
    statuses = Counter(r["status"] for r in permits)
    assert 200 <= len(permits) <= 260
    assert statuses["withdrawn"] == 2 and statuses["under_review"] and statuses["received"]
    assert all(_local(r["received_at"]) <= data.DEMO_TODAY for r in permits)


def test_inspections_reproduce_the_seed():
    inspections = data.current_records("enforcement.inspections")
    of_2023 = [r for r in inspections if r["inspected_on"].startswith("2023")]
    kinds = Counter(r["task_type"] for r in of_2023)
    assert kinds["double_random"] == 12 and len(of_2023) == 19
    double_random = [r for r in of_2023 if r["task_type"] == "double_random"]
    assert all(r["joint"] and r["credit_rule_applied"] for r in double_random)
    assert len({r["target_credit_code"] for r in double_random}) == 12
    assert "浙江莫里尼机车有限公司" in {r["target_name"] for r in double_random}
    national_day = [
        r for r in of_2023 if r["task_type"] == "special" and "培训" in r["target_name"]
    ]
    assert len(national_day) == 5
    roster = {o["officer_id"] for o in data.officers_roster() if o["role"] == "officer"}
    for r in inspections:
        assert 2 <= len(r["officers"]) <= 3
        assert all(o["certified"] and o["officer_id"] in roster for o in r["officers"])
        if r["outcome"] != "pending":
            assert r["published"]
            gap = date.fromisoformat(r["published_on"]) - date.fromisoformat(r["inspected_on"])
            assert timedelta(0) < gap <= timedelta(days=7)


def test_roster_has_13_certified_officers_and_6_auxiliaries():
    roster = data.officers_roster()
    officers = [o for o in roster if o["role"] == "officer"]
    auxiliaries = [o for o in roster if o["role"] == "auxiliary"]
    assert len(officers) == 13 and len(auxiliaries) == 6
    assert all(o["certified"] for o in officers)
    assert [o["officer_id"] for o in officers if o["certificate_expires"] is None] == ["ZF-013"]
    assert all(not o["certified"] and o["certificate_expires"] is None for o in auxiliaries)


def test_documents_reproduce_the_seed_and_the_2024_filings():
    docs = {d["doc_id"]: d for d in data.current_records("docreview.documents")}
    live = [d for d in docs.values() if not d.get("deleted")]
    normative_2023 = [
        d
        for d in live
        if d["doc_type"] == "normative_document" and (d["issued_on"] or "").startswith("2023")
    ]
    assert len(normative_2023) == 3
    for d in normative_2023:
        assert d["legality_reviewed_on"] <= d["issued_on"]
        assert d["filing"]["filed"] and d["filing"]["accepted"]
        assert d["filing"]["filed_on"] <= d["filing"]["deadline"]
    contracts = [
        d
        for d in live
        if d["doc_type"] == "government_contract"
        and d["legality_reviewed"]
        and d["legality_reviewed_on"].startswith("2023")
    ]
    assert len(contracts) == 40
    assert all(
        c["issued_on"] >= c["legality_reviewed_on"] and c["filing"] is None for c in contracts
    )
    repealed = [d for d in live if d["status"] == "repealed"]
    assert [d["doc_id"] for d in repealed] == [data.REPEALED_DOC_ID]
    assert repealed[0]["status_changed_on"].startswith("2023")
    missed = docs[data.MISSED_FILING_DOC_ID]
    assert (missed["issued_on"], missed["filing"]["deadline"]) == ("2024-03-05", "2024-04-04")
    assert missed["filing"]["filed"] is False and missed["filing"]["filed_on"] is None
    assert missed["filing"]["accepted"] is None
    due = docs[data.DUE_SOON_DOC_ID]
    assert (due["issued_on"], due["filing"]["deadline"], due["filing"]["filed"]) == (
        "2024-04-23",
        "2024-05-23",
        False,
    )
    assert docs[data.DELETED_DOC_ID] == {
        "doc_id": data.DELETED_DOC_ID,
        "deleted": True,
        "last_modified_ms": docs[data.DELETED_DOC_ID]["last_modified_ms"],
    }


@pytest.mark.parametrize(
    "stream", ["permits.applications", "enforcement.inspections", "docreview.documents"]
)
def test_every_seed_version_is_well_formed_and_changed_after_its_events(stream, contract):
    horizon = data.to_ms(data.DATA_HORIZON)
    for version in data.base_versions()[stream]:
        assert contract(stream, version.record) == [], version.record
        assert version.instant_ms <= horizon
        changed = datetime.fromtimestamp(version.instant_ms / 1000, SHANGHAI)
        for name in ("received_at", "decided_at"):
            if version.record.get(name):
                assert datetime.fromisoformat(version.record[name]) <= changed
        for name in ("inspected_on", "published_on", "issued_on", "legality_reviewed_on"):
            if version.record.get(name):
                assert version.record[name] <= changed.date().isoformat()


def test_roster_is_well_formed(contract):
    assert all(contract("enforcement.officers", o) == [] for o in data.officers_roster())


def test_credit_codes_are_valid():
    assert all(data.is_valid_uscc(code) for _, code in data.EMPLOYERS)
    assert not data.is_valid_uscc("91331002MA2AXXXXX0")
    rng = random.Random(1)
    assert all(data.is_valid_uscc(data.make_uscc(rng)) for _ in range(200))


def test_working_days_follow_the_calendar():
    assert data.working_days(date(2023, 9, 28), date(2023, 10, 9)) == 3  # 10/7, 10/8, 10/9
    assert data.add_workdays(date(2023, 9, 30), 1) == date(2023, 10, 7)
    assert data.working_days(date(2023, 5, 5), date(2023, 5, 5)) == 0


def test_malformed_records_break_exactly_one_rule_each(contract):
    bad = data.malformed_records(6)
    assert len(bad) == 6 * 4
    assert Counter(m.stream for m in bad) == {
        "permits.applications": 6,
        "enforcement.inspections": 6,
        "docreview.documents": 6,
        "enforcement.officers": 6,
    }
    kinds = {m.kind for m in bad}
    assert {"missing_key", "empty_key", "bad_code", "bad_date", "bad_time", "bad_role"} <= kinds
    for m in bad:
        assert len(contract(m.stream, m.record)) == 1, m
        assert m.reason
    by_kind = {}
    for m in bad:
        by_kind.setdefault((m.stream, m.kind), m)
    assert by_kind["permits.applications", "bad_code"].record["status"] == "Approved"
    assert (
        by_kind["permits.applications", "bad_date"].record["received_at"].startswith("2023-02-30")
    )
    assert "application_id" not in by_kind["permits.applications", "missing_key"].record
    assert data.malformed_records(3) == bad[: 3 * 4]  # deterministic and a prefix


def test_split_scale_is_half_three_tenths_a_fifth():
    assert data.split_scale(1_000_000) == {
        "permits.applications": 500_000,
        "enforcement.inspections": 300_000,
        "docreview.documents": 200_000,
    }
    assert sum(data.split_scale(7).values()) == 7


@pytest.mark.parametrize("stream", list(data.SYNTHETIC))
def test_synthetic_records_are_pure_well_formed_and_before_2022(stream, contract):
    synthetic = data.SYNTHETIC[stream](10_000)
    again = data.SYNTHETIC[stream](10_000)
    previous = -1
    for i in [*range(0, 10_000, 97), 9_999]:
        record = json.loads(synthetic.payload(i))
        assert synthetic.payload(i) == again.payload(i)
        assert contract(stream, record) == [], record
        assert record[synthetic.key_field] == synthetic.key(i)
        assert synthetic.index_of(synthetic.key(i)) == i
        assert synthetic.instant_ms(i) > previous
        previous = synthetic.instant_ms(i)
        dates = [v for k, v in record.items() if k.endswith(("_at", "_on")) and v]
        for value in dates:
            year = int(value[:4]) if "T" not in value else _local(value).year
            assert 2015 <= year <= 2021, (value, record)
    assert synthetic.index_of("WP2023-000001") is None
    assert synthetic.index_of("nonsense") is None


def test_synthetic_change_times_match_the_wire():
    permits = data.SyntheticPermits(1000)
    record = json.loads(permits.payload(500))
    assert data.to_ms(datetime.fromisoformat(record["updated_at"])) == permits.instant_ms(500)
    docs = data.SyntheticDocuments(1000)
    assert json.loads(docs.payload(7))["last_modified_ms"] == docs.instant_ms(7)
    inspections = data.SyntheticInspections(1000)
    modified = json.loads(inspections.payload(3))["modified"]
    moment = datetime.strptime(modified, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
    assert data.to_ms(moment) == inspections.instant_ms(3)
