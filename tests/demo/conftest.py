"""Shared by the demo-source tests: a checker of the wire contract in ``source-apis.md``."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest

from rulewatch.demo.data import is_valid_uscc

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

CODES = {
    "status": {"received", "under_review", "approved", "denied", "withdrawn"},
    "permit_type": {"new", "extension", "change", "cancellation"},
    "category": {"A", "B", "C"},
    "task_type": {"double_random", "special", "complaint", "routine"},
    "credit_risk_level": {"A", "B", "C", "D", None},
    "outcome": {"pending", "compliant", "rectification_ordered", "penalized", "referred"},
    "doc_type": {"normative_document", "government_contract", "major_decision", "other"},
    "doc_status": {"draft", "in_force", "revised", "repealed"},
    "role": {"officer", "auxiliary"},
}


def _is_iso(value: Any) -> bool:
    if not isinstance(value, str) or not _ISO.match(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_date(value: Any, nullable: bool = False) -> bool:
    if value is None:
        return nullable
    if not isinstance(value, str) or not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_local(value: Any) -> bool:
    if not isinstance(value, str) or not _LOCAL.match(value):
        return False
    try:
        datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return False
    return True


def _key(record: dict, field: str) -> bool:
    return isinstance(record.get(field), str) and bool(record[field].strip())


def contract_problems(stream: str, r: dict[str, Any]) -> list[str]:
    """The fields of a record that break its stream's contract (empty: well-formed)."""
    checks: dict[str, bool]
    if stream == "permits.applications":
        applicant = r.get("applicant") if isinstance(r.get("applicant"), dict) else {}
        checks = {
            "application_id": _key(r, "application_id"),
            "received_at": _is_iso(r.get("received_at")),
            "decided_at": r.get("decided_at") is None or _is_iso(r.get("decided_at")),
            "status": r.get("status") in CODES["status"],
            "permit_type": r.get("permit_type") in CODES["permit_type"],
            "category": r.get("category") in CODES["category"],
            "employer_credit_code": is_valid_uscc(str(r.get("employer_credit_code"))),
            "employer_name": isinstance(r.get("employer_name"), str),
            "applicant": all(isinstance(applicant.get(f), str) for f in ("name", "passport_no"))
            and bool(re.fullmatch(r"[A-Z]{3}", str(applicant.get("nationality")))),
            "joint_residence_permit": isinstance(r.get("joint_residence_permit"), bool),
            "promised_days": type(r.get("promised_days")) is int,
            "updated_at": _is_iso(r.get("updated_at")),
        }
    elif stream == "enforcement.inspections":
        officers = r.get("officers")
        checks = {
            "inspection_no": _key(r, "inspection_no"),
            "task_type": r.get("task_type") in CODES["task_type"],
            "joint": isinstance(r.get("joint"), bool),
            "target_credit_code": is_valid_uscc(str(r.get("target_credit_code"))),
            "target_name": isinstance(r.get("target_name"), str),
            "credit_risk_level": r.get("credit_risk_level") in CODES["credit_risk_level"],
            "credit_rule_applied": isinstance(r.get("credit_rule_applied"), bool),
            "inspected_on": _is_date(r.get("inspected_on")),
            "officers": isinstance(officers, list)
            and all(
                isinstance(o, dict)
                and _key(o, "officer_id")
                and isinstance(o.get("certified"), bool)
                for o in officers
            ),
            "outcome": r.get("outcome") in CODES["outcome"],
            "published": isinstance(r.get("published"), bool),
            "published_on": _is_date(r.get("published_on"), nullable=True),
            "modified": _is_local(r.get("modified")),
        }
    elif stream == "docreview.documents":
        if r.get("deleted") is True:
            checks = {
                "doc_id": _key(r, "doc_id"),
                "last_modified_ms": type(r.get("last_modified_ms")) is int,
                "tombstone": set(r) == {"doc_id", "deleted", "last_modified_ms"},
            }
        else:
            filing = r.get("filing")
            checks = {
                "doc_id": _key(r, "doc_id"),
                "title": isinstance(r.get("title"), str),
                "doc_type": r.get("doc_type") in CODES["doc_type"],
                "drafting_unit": isinstance(r.get("drafting_unit"), str),
                "issued_on": _is_date(r.get("issued_on"), nullable=True),
                "legality_reviewed": isinstance(r.get("legality_reviewed"), bool),
                "legality_reviewed_on": _is_date(r.get("legality_reviewed_on"), nullable=True),
                "fair_competition_reviewed": r.get("fair_competition_reviewed")
                in (True, False, None),
                "filing": filing is None
                or (
                    isinstance(filing, dict)
                    and isinstance(filing.get("filed"), bool)
                    and _is_date(filing.get("filed_on"), nullable=True)
                    and _is_date(filing.get("deadline"))
                    and filing.get("accepted") in (True, False, None)
                    and isinstance(filing.get("issues"), list)
                ),
                "status": r.get("status") in CODES["doc_status"],
                "status_changed_on": _is_date(r.get("status_changed_on"), nullable=True),
                "last_modified_ms": type(r.get("last_modified_ms")) is int,
            }
    elif stream == "enforcement.officers":
        checks = {
            "officer_id": _key(r, "officer_id"),
            "name": isinstance(r.get("name"), str),
            "role": r.get("role") in CODES["role"],
            "certified": isinstance(r.get("certified"), bool),
            "certificate_expires": _is_date(r.get("certificate_expires"), nullable=True),
        }
    else:
        raise ValueError(stream)
    return [name for name, ok in checks.items() if not ok]


@pytest.fixture
def contract() -> Callable[[str, dict[str, Any]], list[str]]:
    """``contract(stream, record)`` -> the names of the fields that break the contract."""
    return contract_problems
