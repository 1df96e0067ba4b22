"""Whole records through the three source declarations: malformed vs legitimately null.

source-apis.md: a record is malformed for a missing or empty natural key, a code
outside its listed set (case-sensitive), or a date or time that does not parse
in its stated format; it is set aside with the reason, never raised. The fields
the contract marks "or null" are legitimately null and the record loads.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from rulewatch.extract import docreview, enforcement, permits
from rulewatch.extract.engine import ParseContext, Stream

CTX = ParseContext(ZoneInfo("Asia/Shanghai"), b"key", datetime(2024, 5, 1, tzinfo=UTC))
APPLICATIONS = permits.SPEC.streams[0]
INSPECTIONS, OFFICERS = enforcement.SPEC.streams
DOCUMENTS = docreview.SPEC.streams[0]

APPLICATION = {
    "application_id": "WP2023-000123",
    "received_at": "2023-03-01T09:12:00+08:00",
    "decided_at": None,
    "status": "under_review",
    "permit_type": "new",
    "category": "A",
    "employer_credit_code": "91331000MA2XXXXXXX",
    "employer_name": "台州某科技有限公司",
    "applicant": {"name": "John Smith", "passport_no": " e1234567 ", "nationality": "GBR"},
    "joint_residence_permit": True,
    "promised_days": 10,
    "updated_at": "2023-03-01T09:12:00+08:00",
}
INSPECTION = {
    "inspection_no": "JC2023-001",
    "task_type": "double_random",
    "joint": True,
    "target_credit_code": "91331000MA2XXXXXXX",
    "target_name": "某培训机构",
    "credit_risk_level": None,
    "credit_rule_applied": True,
    "inspected_on": "2023-05-05",
    "officers": [{"officer_id": "ZF-001", "certified": True}],
    "outcome": "pending",
    "published": False,
    "published_on": None,
    "modified": "2023-05-05 17:00:00",
}
OFFICER = {
    "officer_id": "ZF-001",
    "name": "王明",
    "role": "officer",
    "certified": True,
    "certificate_expires": None,
}
DOCUMENT = {
    "doc_id": "DOC-2023-001",
    "title": "关于印发某办法的通知",
    "doc_type": "normative_document",
    "drafting_unit": "科技局",
    "issued_on": None,
    "legality_reviewed": False,
    "legality_reviewed_on": None,
    "fair_competition_reviewed": None,
    "filing": {
        "filed": False,
        "filed_on": None,
        "deadline": "2023-04-01",
        "accepted": None,
        "issues": [],
    },
    "status": "draft",
    "status_changed_on": None,
    "last_modified_ms": 1_700_000_000_000,
}


def parse(stream: Stream, record: dict, **changes: object) -> tuple:
    raw = copy.deepcopy(record)
    for name, value in changes.items():
        if value is _DROP:
            raw.pop(name)
        else:
            raw[name] = value
    rec = stream.parse_record(raw, CTX)
    return rec.reason, rec.row


_DROP = object()


@pytest.mark.parametrize(
    ("stream", "record", "changes"),
    [
        (APPLICATIONS, APPLICATION, {}),
        (APPLICATIONS, APPLICATION, {"decided_at": "2023-03-10T10:00:00Z", "status": "approved"}),
        (INSPECTIONS, INSPECTION, {}),
        (INSPECTIONS, INSPECTION, {"credit_risk_level": "D", "published_on": "2023-05-06"}),
        (INSPECTIONS, INSPECTION, {"officers": []}),
        (OFFICERS, OFFICER, {}),
        (OFFICERS, OFFICER, {"certificate_expires": "2026-12-31", "role": "auxiliary"}),
        (DOCUMENTS, DOCUMENT, {}),
        (DOCUMENTS, DOCUMENT, {"filing": None, "doc_type": "government_contract"}),
        (DOCUMENTS, DOCUMENT, {"fair_competition_reviewed": True, "status": "repealed"}),
    ],
)
def test_legitimately_null_fields_load(stream: Stream, record: dict, changes: dict) -> None:
    reason, row = parse(stream, record, **changes)
    assert reason is None and row is not None


@pytest.mark.parametrize(
    ("stream", "record", "changes", "field"),
    [
        (APPLICATIONS, APPLICATION, {"application_id": ""}, "application_id"),
        (APPLICATIONS, APPLICATION, {"application_id": _DROP}, "application_id"),
        (APPLICATIONS, APPLICATION, {"status": "Approved"}, "status"),
        (APPLICATIONS, APPLICATION, {"status": ["approved"]}, "status"),
        (APPLICATIONS, APPLICATION, {"category": {"class": "A"}}, "category"),
        (APPLICATIONS, APPLICATION, {"received_at": "2023-02-30T09:00:00+08:00"}, "received_at"),
        (APPLICATIONS, APPLICATION, {"decided_at": "2023-03-10 10:00"}, "decided_at"),
        (APPLICATIONS, APPLICATION, {"updated_at": "2023-03-01T09:12:00"}, "updated_at"),
        (INSPECTIONS, INSPECTION, {"inspection_no": "  "}, "inspection_no"),
        (INSPECTIONS, INSPECTION, {"task_type": "DOUBLE_RANDOM"}, "task_type"),
        (INSPECTIONS, INSPECTION, {"credit_risk_level": "E"}, "credit_risk_level"),
        (INSPECTIONS, INSPECTION, {"outcome": ["pending"]}, "outcome"),
        (INSPECTIONS, INSPECTION, {"inspected_on": "2023-02-29"}, "inspected_on"),
        (INSPECTIONS, INSPECTION, {"published_on": "2023/05/06"}, "published_on"),
        (INSPECTIONS, INSPECTION, {"modified": "2023-05-05T17:00:00+08:00"}, "modified"),
        (OFFICERS, OFFICER, {"officer_id": None}, "officer_id"),
        (OFFICERS, OFFICER, {"role": "Officer"}, "role"),
        (OFFICERS, OFFICER, {"certificate_expires": "2025-13-01"}, "certificate_expires"),
        (DOCUMENTS, DOCUMENT, {"doc_type": "normative"}, "doc_type"),
        (DOCUMENTS, DOCUMENT, {"status": {"s": 1}}, "status"),
        (DOCUMENTS, DOCUMENT, {"issued_on": "2023-04-31"}, "issued_on"),
        (DOCUMENTS, DOCUMENT, {"status_changed_on": "2023-4-1"}, "status_changed_on"),
        (DOCUMENTS, DOCUMENT, {"last_modified_ms": "1700000000000"}, "last_modified_ms"),
    ],
)
def test_malformed_records_are_set_aside_naming_the_field(
    stream: Stream, record: dict, changes: dict, field: str
) -> None:
    reason, row = parse(stream, record, **changes)
    assert row is None and reason is not None and field in reason


def test_malformed_filing_fields() -> None:
    filing = {**DOCUMENT["filing"], "deadline": "2023-02-30"}
    reason, _ = parse(DOCUMENTS, DOCUMENT, filing=filing)
    assert reason is not None and "filing.deadline" in reason


def test_tombstone() -> None:
    rec = DOCUMENTS.parse_record(
        {"doc_id": "DOC-1", "deleted": True, "last_modified_ms": 1_700_000_000_000}, CTX
    )
    assert rec.is_tombstone and rec.reason is None and rec.natural_key == "DOC-1"


@pytest.mark.parametrize(
    ("received_at", "local_day"),
    [
        ("2023-12-31T16:00:00Z", date(2024, 1, 1)),  # midnight in Shanghai
        ("2023-12-31T15:59:59Z", date(2023, 12, 31)),
        ("2023-12-31T23:30:00-05:00", date(2024, 1, 1)),
        ("2024-01-01T00:30:00+08:00", date(2024, 1, 1)),
        ("2023-12-31T16:30:00.1234567+00:00", date(2024, 1, 1)),  # 7 fraction digits (.NET)
        ("2024-01-01T00:30:00+08", date(2024, 1, 1)),
    ],
)
def test_local_dates_from_aware_times_in_the_configured_zone(
    received_at: str, local_day: date
) -> None:
    reason, row = parse(APPLICATIONS, APPLICATION, received_at=received_at, decided_at=received_at)
    assert reason is None
    assert row["received_on"] == local_day and row["decided_on"] == local_day


def test_passport_pseudonym_is_keyed_hmac_of_the_normalised_number() -> None:
    _, row = parse(APPLICATIONS, APPLICATION)
    expected = hmac.new(b"key", b"E1234567", hashlib.sha256).hexdigest()
    assert row["applicant_pseudonym"] == expected
    assert "John" not in str(APPLICATIONS.parse_record(APPLICATION, CTX).payload)


def test_enforcement_change_times_are_shanghai_wall_time_whatever_the_configured_zone() -> None:
    utc = ParseContext(ZoneInfo("UTC"), b"key", datetime(2024, 5, 1, tzinfo=UTC))
    moment = INSPECTIONS.change_time({"modified": "2024-01-02 10:00:00"}, utc)
    assert moment == datetime(2024, 1, 2, 2, 0, tzinfo=UTC)
    assert INSPECTIONS.paginator.format_since(moment, utc) == "2024-01-02 10:00:00"


@pytest.mark.parametrize(
    ("officers", "count", "all_certified"),
    [
        ([{"officer_id": "ZF-1", "certified": True}] * 2, 2, True),  # list entries count
        (
            [{"officer_id": "ZF-1", "certified": True}, {"officer_id": "ZF-2", "certified": False}],
            2,
            False,
        ),
        ([], 0, True),
    ],
)
def test_the_inspections_own_officers_list(officers: list, count: int, all_certified: bool) -> None:
    reason, row = parse(INSPECTIONS, INSPECTION, officers=officers)
    assert reason is None
    assert (row["officer_count"], row["is_all_officers_certified"]) == (count, all_certified)


@pytest.mark.parametrize(
    "officers",
    [None, [{"officer_id": "", "certified": True}], [{"officer_id": "ZF-1"}], ["ZF-1"]],
)
def test_a_broken_officers_list_is_malformed(officers: object) -> None:
    reason, _ = parse(INSPECTIONS, INSPECTION, officers=officers)
    assert reason is not None and "officers" in reason


def test_officers_are_stored_as_json_dumps_writes_them() -> None:
    from rulewatch.extract.enforcement import _officers_json

    tricky = ["ZF-011", 'q"uo\\te', "tab\tnl\n\x00", "中文é", "\u2028", "\ud800", "😀"]
    for size in range(4):
        officers = [
            {"officer_id": tricky[(size + i) % len(tricky)], "certified": i % 2 == 0}
            for i in range(size)
        ]
        assert _officers_json(officers) == json.dumps(officers, ensure_ascii=False)
