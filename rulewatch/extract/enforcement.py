"""enforcement: inspections (page numbers, local times) and the officers roster."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import requests

from rulewatch.config.source_systems import ENFORCEMENT
from rulewatch.extract import fields as f
from rulewatch.extract.engine import (
    ChangeTimePaginator,
    ParseContext,
    SourceSpec,
    Stream,
    WholeListPaginator,
)

TASK_TYPES = frozenset({"double_random", "special", "complaint", "routine"})
RISK_LEVELS = frozenset({"A", "B", "C", "D"})
OUTCOMES = frozenset({"pending", "compliant", "rectification_ordered", "penalized", "referred"})
ROLES = frozenset({"officer", "auxiliary"})
#: ``modified`` and ``modified_after`` are Asia/Shanghai wall time by contract, whatever
#: timezone the warehouse buckets dates in.
WIRE_ZONE = ZoneInfo("Asia/Shanghai")

#: json's own string writer (the one json.dumps(..., ensure_ascii=False) uses)
_STRING = json.encoder.encode_basestring


def _officers_json(officers: list[dict[str, Any]]) -> str:
    """``json.dumps(officers, ensure_ascii=False)``, byte for byte, written directly for
    the one shape :func:`_officers` makes (json.dumps sets up an encoder per call, which
    cost more than the rest of an inspection's parsing)."""
    return (
        "["
        + ", ".join(
            f'{{"officer_id": {_STRING(o["officer_id"])}, '
            f'"certified": {"true" if o["certified"] else "false"}}}'
            for o in officers
        )
        + "]"
    )


def _officers(record: dict) -> list[dict[str, Any]]:
    value = record.get("officers")
    if not isinstance(value, list):
        raise f.Malformed("officers: expected a list")
    officers = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise f.Malformed(f"officers[{i}]: expected an object")
        try:
            officers.append(
                {
                    "officer_id": f.key(entry, "officer_id"),
                    "certified": f.boolean(entry, "certified"),
                }
            )
        except f.Malformed as exc:
            raise f.Malformed(f"officers[{i}].{exc}") from None
    return officers


def _parse_inspection(record: dict, _ctx: ParseContext) -> dict[str, Any]:
    officers = _officers(record)
    return {
        "inspection_no": f.key(record, "inspection_no"),
        "task_type": f.code(record, "task_type", TASK_TYPES),
        "is_joint": f.boolean(record, "joint", nullable=True),
        "target_credit_code": f.text(record, "target_credit_code"),
        "target_name": f.text(record, "target_name"),
        "credit_risk_level": f.code(record, "credit_risk_level", RISK_LEVELS, nullable=True),
        "is_credit_rule_applied": f.boolean(record, "credit_rule_applied"),
        "inspected_on": f.local_date(record, "inspected_on"),
        "officers": _officers_json(officers),
        "officer_count": len(officers),
        "is_all_officers_certified": all(o["certified"] for o in officers),
        "outcome": f.code(record, "outcome", OUTCOMES),
        "is_published": f.boolean(record, "published"),
        "published_on": f.local_date(record, "published_on", nullable=True),
    }


def _parse_officer(record: dict, _ctx: ParseContext) -> dict[str, Any]:
    return {
        "officer_id": f.key(record, "officer_id"),
        "name": f.text(record, "name"),
        "role": f.code(record, "role", ROLES),
        "is_certified": f.boolean(record, "certified"),
        "certificate_expires_on": f.local_date(record, "certificate_expires", nullable=True),
    }


def _modified(record: dict, _ctx: ParseContext) -> datetime:
    return f.local_datetime(record, "modified", WIRE_ZONE)


def _roster_time(_record: dict, ctx: ParseContext) -> datetime:
    """The roster has no change time: an entry is as new as the fetch that saw it."""
    return ctx.fetched_at


def _auth(session: requests.Session, creds: dict[str, str]) -> None:
    session.headers["X-Api-Key"] = creds["api_key"]


def _format_since(moment: datetime, _ctx: ParseContext) -> str:
    return moment.astimezone(WIRE_ZONE).strftime("%Y-%m-%d %H:%M:%S")


def _truncate(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


SPEC = SourceSpec(
    system=ENFORCEMENT,
    auth=_auth,
    streams=(
        Stream(
            name="enforcement.inspections",
            path="/api/inspections",
            natural_key="inspection_no",
            paginator=ChangeTimePaginator(
                filter_param="modified_after",
                format_since=_format_since,
                truncate=_truncate,
                page_param="page",
                size_param="page_size",
                records_key="records",
                total_key="total",
            ),
            parse=_parse_inspection,
            change_time=_modified,
        ),
        Stream(
            name="enforcement.officers",
            path="/api/officers",
            natural_key="officer_id",
            paginator=WholeListPaginator(list_key="officers"),
            parse=_parse_officer,
            change_time=_roster_time,
            is_snapshot=True,
        ),
    ),
)
