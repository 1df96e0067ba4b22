"""docreview: legality review and filing (HTTP Basic, Link-header pages, epoch ms)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import requests

from rulewatch.config.source_systems import DOCREVIEW
from rulewatch.extract import fields as f
from rulewatch.extract.engine import ChangeTimePaginator, ParseContext, SourceSpec, Stream, utc_ms

DOC_TYPES = frozenset({"normative_document", "government_contract", "major_decision", "other"})
STATUSES = frozenset({"draft", "in_force", "revised", "repealed"})

#: json.dumps(value, ensure_ascii=False), without making an encoder per record
_JSON = json.JSONEncoder(ensure_ascii=False)


def _filing(record: dict) -> dict[str, Any]:
    filing = record.get("filing")
    if filing is None:
        return {
            "has_filing": False,
            "is_filed": None,
            "filed_on": None,
            "filing_deadline_on": None,
            "is_filing_accepted": None,
            "filing_issues": None,
        }
    if not isinstance(filing, dict):
        raise f.Malformed("filing: expected an object or null")
    try:
        issues = filing.get("issues") or []
        if not isinstance(issues, list) or not all(isinstance(i, str) for i in issues):
            raise f.Malformed("issues: expected a list of strings")
        return {
            "has_filing": True,
            "is_filed": f.boolean(filing, "filed"),
            "filed_on": f.local_date(filing, "filed_on", nullable=True),
            "filing_deadline_on": f.local_date(filing, "deadline"),
            "is_filing_accepted": f.boolean(filing, "accepted", nullable=True),
            "filing_issues": _JSON.encode(issues),
        }
    except f.Malformed as exc:
        raise f.Malformed(f"filing.{exc}") from None


def _parse(record: dict, _ctx: ParseContext) -> dict[str, Any]:
    return {
        "doc_id": f.key(record, "doc_id"),
        "title": f.text(record, "title"),
        "doc_type": f.code(record, "doc_type", DOC_TYPES),
        "drafting_unit": f.text(record, "drafting_unit"),
        "issued_on": f.local_date(record, "issued_on", nullable=True),
        "is_legality_reviewed": f.boolean(record, "legality_reviewed"),
        "legality_reviewed_on": f.local_date(record, "legality_reviewed_on", nullable=True),
        "is_fair_competition_reviewed": f.boolean(
            record, "fair_competition_reviewed", nullable=True
        ),
        **_filing(record),
        "status": f.code(record, "status", STATUSES),
        "status_changed_on": f.local_date(record, "status_changed_on", nullable=True),
    }


def _change_time(record: dict, _ctx: ParseContext) -> datetime:
    return f.epoch_ms(record, "last_modified_ms")


def _is_tombstone(record: dict) -> bool:
    return record.get("deleted") is True


def _format_since(moment: datetime, _ctx: ParseContext) -> str:
    return str(utc_ms(moment))


def _truncate(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _auth(session: requests.Session, creds: dict[str, str]) -> None:
    session.auth = (creds["user"], creds["password"])


SPEC = SourceSpec(
    system=DOCREVIEW,
    auth=_auth,
    streams=(
        Stream(
            name="docreview.documents",
            path="/v2/documents",
            natural_key="doc_id",
            paginator=ChangeTimePaginator(
                filter_param="since",
                format_since=_format_since,
                truncate=_truncate,
                page_param="page",
                size_param="per_page",
                records_key=None,
                follow_link=True,
            ),
            parse=_parse,
            change_time=_change_time,
            is_tombstone=_is_tombstone,
        ),
    ),
)
