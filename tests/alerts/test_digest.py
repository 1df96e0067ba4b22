"""The supervising office's nightly digest, as a real webhook receives it.

Three agencies in one warehouse: one slips a target (and has a filing due soon),
one meets everything but its enforcement source fails, one's run failed (the
caller names it). One message for the night, never a second; a quiet night is
one short "all met" message.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from agencies_support import city_config, city_settings, hand_to, scoped
from receivers import Webhook
from sqlalchemy import func, select, update

from rulewatch.alerts.announce import run_alerting
from rulewatch.alerts.digest import run_digest
from rulewatch.alerts.health import utc_now
from rulewatch.checks.targets import check_history
from rulewatch.common.periods import Period
from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import load_settings
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.schema import alert, alert_delivery, document, sync_run

A, B, C = "science-tech", "market-regulation", "ecology-environment"
AS_OF = date(2024, 5, 20)
FILING = "docreview.filing_rate"
TARGETS = f"targets:\n  {FILING}: {{target: 1.0, severity: critical}}\n"
FAILED = {C: "enforcement: HTTP 503 from http://127.0.0.1:9/ecology-environment (5 tries)"}


@pytest.fixture
def hooks():
    made = {a: Webhook() for a in (A, B, C, "city")}
    yield made
    for hook in made.values():
        hook.close()


@pytest.fixture
def engine(warehouse_url):
    eng = open_warehouse(warehouse_url, calendar_of(load_settings({})))
    yield eng
    eng.dispose()


def _document(key: str, **values: Any) -> dict[str, Any]:
    return {
        "doc_id": key,
        "doc_type": "normative_document",
        "status": "in_force",
        "has_filing": True,
        "is_deleted": False,
        "is_set_aside": False,
        "changed_at": datetime(2024, 5, 1),
        "record_hash": f"hash-{key}",
        "sync_run_id": "run-1",
        **values,
    }


def _seed(engine) -> None:  # noqa: ANN001
    """A: a filing missed (slips) and one due in 3 days; B: filed in time; C: nothing."""
    with engine.begin() as conn:
        conn.execute(
            document.insert(),
            [
                _document(
                    "DOC-A-LATE",
                    issued_on=date(2024, 3, 1),
                    is_filed=False,
                    filing_deadline_on=date(2024, 4, 1),
                ),
                _document(
                    "DOC-A-SOON",
                    issued_on=date(2024, 5, 1),
                    is_filed=False,
                    filing_deadline_on=date(2024, 5, 23),
                ),
            ],
        )
    hand_to(engine, A)
    with engine.begin() as conn:
        conn.execute(
            document.insert(),
            _document(
                "DOC-B-1",
                issued_on=date(2024, 2, 1),
                is_filed=True,
                filed_on=date(2024, 2, 10),
                filing_deadline_on=date(2024, 3, 1),
            ),
        )
        started = utc_now() - timedelta(hours=1)
        conn.execute(
            sync_run.insert(),
            {
                "sync_run_id": str(uuid.uuid4()),
                "job_id": "job-b",
                "agency_id": B,
                "source": "enforcement",
                "is_full_refresh": False,
                "started_at": started,
                "finished_at": started + timedelta(minutes=2),
                "status": "failed",
                "pages": 0,
                "records_read": 0,
                "records_loaded": 0,
                "records_set_aside": 0,
                "error": "HTTP 503 Service Unavailable after 5 retries",
            },
        )
    hand_to(engine, B)


def _night(engine, settings, agencies, day: date, ran: tuple[str, ...]) -> None:  # noqa: ANN001
    """Each agency that ran: its target checks stored, its alerts sent."""
    for agency_id in ran:
        own = scoped(settings, agencies, agency_id)
        check_history(engine, own, Period.parse(str(day.year)), [day])
        run_alerting(engine, own, day)


def test_one_digest_a_night_naming_slips_news_warnings_sources_and_failures(
    engine, warehouse_url: str, tmp_path: Path, hooks: dict[str, Webhook]
) -> None:
    config = city_config(
        tmp_path,
        {a: hooks[a].url for a in (A, B, C)},
        hooks["city"].url,
        targets=TARGETS,
    )
    settings, agencies = city_settings(warehouse_url, tmp_path, config)
    _seed(engine)
    _night(engine, settings, agencies, AS_OF, (A, B))
    for _ in range(2):  # a second run of the night sends no second digest
        digest = run_digest(engine, settings, agencies, AS_OF, FAILED)
    assert [d.status for d in digest.deliveries] == []  # sent by the first run
    (received,) = hooks["city"].received
    title, body = received["title"], received["message"]
    assert title == "[rulewatch] 每日汇总 2024-05-20：3 个单位中 1 个未达标，1 个运行失败或未运行"
    lines = body.splitlines()
    assert lines[0] == "台州市司法局：rulewatch 每日汇总，截至 2024-05-20（共 3 个单位）"
    assert f"- 台州市生态环境局 ({C}): 运行失败：{FAILED[C]}" in lines
    assert f"- 台州市科学技术局 ({A}):" in lines
    assert (
        f"  - {FILING} 2024: 0%（0 / 1），目标 100%，严重 (critical)，自 2024-05-20 起未达标"
    ) in lines
    assert f"- 台州市科学技术局 ({A}): {FILING} 2024 未达标" in lines  # new tonight
    assert f"- 台州市科学技术局 ({A}): 1 条: DOC-A-SOON ({FILING}, 期限 2024-05-23)" in lines
    (source,) = [line for line in lines if "enforcement" in line and B in line]
    assert "同步失败：HTTP 503 Service Unavailable after 5 retries" in source
    assert lines[-1] == "3 个单位中 1 个全部目标达标。"
    assert "台州市市场监督管理局" in body and "DOC-B-1" not in body
    with engine.connect() as conn:
        digests = conn.execute(
            select(alert.c.agency_id, alert.c.dedupe_key).where(alert.c.kind == "digest")
        ).all()
        sent = conn.execute(
            select(alert_delivery.c.agency_id, alert_delivery.c.status).where(
                alert_delivery.c.alert_id == digest.alert_id
            )
        ).all()
    assert digests == [("all", "digest:2024-05-20")]
    assert sent == [("all", "sent")]
    assert digest.recorded is False and digest.alert_id is not None
    # the agencies' own channels got their own alerts, never the digest
    assert all("每日汇总" not in m["title"] for a in (A, B, C) for m in hooks[a].received)
    assert hooks[C].received == []

    # the next night: A filed its document; the news is its recovery, C ran again
    with engine.begin() as conn:
        conn.execute(
            update(document)
            .where(document.c.agency_id == A, document.c.doc_id == "DOC-A-LATE")
            .values(is_filed=True, filed_on=date(2024, 5, 20))
        )
    night = AS_OF + timedelta(days=1)
    _night(engine, settings, agencies, night, (A, B, C))
    run_digest(engine, settings, agencies, night, {})
    assert len(hooks["city"].received) == 2
    second = hooks["city"].received[1]
    assert second["title"] == "[rulewatch] 每日汇总 2024-05-21：全部 3 个单位目标均达标"
    assert f"- 台州市科学技术局 ({A}): {FILING} 2024 已恢复达标" in second["message"]
    assert f"{FILING} 2024 未达标" not in second["message"]  # last night's news is old


def test_a_quiet_night_is_one_short_all_met_digest(
    engine, warehouse_url: str, tmp_path: Path, hooks: dict[str, Webhook]
) -> None:
    config = city_config(
        tmp_path,
        {A: hooks[A].url, B: hooks[B].url},
        hooks["city"].url,
        targets=TARGETS,
        supervisor_language="en",
    )
    settings, agencies = city_settings(warehouse_url, tmp_path, config)
    _night(engine, settings, agencies, AS_OF, (A, B))
    first = run_digest(engine, settings, agencies, AS_OF, {})
    again = run_digest(engine, settings, agencies, AS_OF, {})
    assert first.is_quiet and first.recorded and not again.recorded
    (received,) = hooks["city"].received
    assert (
        received["title"]
        == "[rulewatch] nightly digest 2024-05-20: all 2 agencies met every target"
    )
    assert received["message"].splitlines() == [
        "Taizhou Justice Bureau: rulewatch nightly digest as of 2024-05-20 (2 agencies)",
        "All met: every agency met every target; no source failing or stale; no early warning.",
    ]
    with engine.connect() as conn:
        count = conn.execute(
            select(func.count()).select_from(alert).where(alert.c.kind == "digest")
        ).scalar_one()
    assert count == 1


def test_no_digest_without_agencies_yaml(engine, warehouse_url: str) -> None:
    from rulewatch.config.agencies import load_agencies

    settings = load_settings({"RULEWATCH_WAREHOUSE_URL": warehouse_url})
    run = run_digest(engine, settings, load_agencies(settings), AS_OF, {})
    assert (run.recorded, run.alert_id, run.deliveries) == (False, None, [])
