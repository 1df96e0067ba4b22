"""permits: work-permit applications (Bearer token, opaque cursor, ISO-8601 times)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import requests

from rulewatch.config.source_systems import PERMITS
from rulewatch.extract import fields as f
from rulewatch.extract.engine import CursorPaginator, ParseContext, SourceSpec, Stream

STATUSES = frozenset({"received", "under_review", "approved", "denied", "withdrawn"})
PERMIT_TYPES = frozenset({"new", "extension", "change", "cancellation"})
CATEGORIES = frozenset({"A", "B", "C"})


def _parse(record: dict, ctx: ParseContext) -> dict[str, Any]:
    received_at = f.iso_datetime(record, "received_at")
    decided_at = f.iso_datetime(record, "decided_at", nullable=True)
    applicant = record.get("applicant")
    if applicant is not None and not isinstance(applicant, dict):
        raise f.Malformed("applicant: expected an object")
    applicant = applicant or {}
    passport = f.text(applicant, "passport_no")
    return {
        "application_id": f.key(record, "application_id"),
        "received_at": f.naive_utc(received_at),
        "received_on": f.local_day(received_at, ctx.timezone),
        "decided_at": f.naive_utc(decided_at),
        "decided_on": f.local_day(decided_at, ctx.timezone),
        "status": f.code(record, "status", STATUSES),
        "permit_type": f.code(record, "permit_type", PERMIT_TYPES),
        "category": f.code(record, "category", CATEGORIES),
        "employer_credit_code": f.text(record, "employer_credit_code"),
        "employer_name": f.text(record, "employer_name"),
        "applicant_pseudonym": ctx.pseudonym(passport) if passport else None,
        "applicant_nationality": f.text(applicant, "nationality"),
        "is_joint_residence_permit": f.boolean(record, "joint_residence_permit", nullable=True),
        "promised_days": f.integer(record, "promised_days", nullable=True),
    }


def _scrub(record: Any, ctx: ParseContext) -> Any:
    """Drop the applicant's name; keep the passport number only as a pseudonym."""
    if not isinstance(record, dict) or "applicant" not in record:
        return record
    clean = dict(record)
    applicant = record["applicant"]
    if isinstance(applicant, dict):
        passport = applicant.get("passport_no")
        clean["applicant"] = {
            "nationality": applicant.get("nationality"),
            "passport_pseudonym": ctx.pseudonym(passport) if isinstance(passport, str) else None,
        }
    else:
        clean["applicant"] = None
    return clean


def _change_time(record: dict, _ctx: ParseContext) -> datetime:
    return f.iso_datetime(record, "updated_at")


def _format_since(moment: datetime, _ctx: ParseContext) -> str:
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")


def _auth(session: requests.Session, creds: dict[str, str]) -> None:
    session.headers["Authorization"] = f"Bearer {creds['token']}"


SPEC = SourceSpec(
    system=PERMITS,
    auth=_auth,
    streams=(
        Stream(
            name="permits.applications",
            path="/api/v1/applications",
            natural_key="application_id",
            paginator=CursorPaginator(
                filter_param="updated_since",
                format_since=_format_since,
                size_param="limit",
                cursor_param="cursor",
                data_key="data",
                next_key="next_cursor",
            ),
            parse=_parse,
            change_time=_change_time,
            scrub=_scrub,
        ),
    ),
)
