"""Alerts delivered to real receivers: an HTTP webhook and an SMTP server on loopback."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from receivers import Webhook
from sqlalchemy import select, update

from rulewatch.alerts.announce import (
    DELIVERY_LEASE,
    Channel,
    EarlyWarning,
    deliver_pending,
    plan_alerts,
)
from rulewatch.checks.results import Offender, TargetCheck
from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import load_settings
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.runs import holder_token
from rulewatch.warehouse.schema import alert_delivery

WEEK = timedelta(days=7)
T0 = datetime(2024, 5, 20, 2, 0)


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def smtp():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def engine(warehouse_url):
    eng = open_warehouse(warehouse_url, calendar_of(load_settings({})))
    yield eng
    eng.dispose()


def _slip(status="slipped", n=1, offenders=None, severity="critical"):
    offenders = (
        offenders
        if offenders is not None
        else [("DOC-2024-002", "not filed; deadline 2024-04-04 passed")]
    )
    return TargetCheck(
        metric="docreview.filing_rate",
        period="2024",
        as_of=date(2024, 5, 20),
        status=status,
        value=n / 2 if status != "no_data" else None,
        target=1.0,
        numerator=n,
        denominator=2,
        severity=severity,
        offenders=tuple(Offender(k, r) for k, r in offenders),
        offender_count=len(offenders),
    )


def _run(engine, statuses, warnings=(), channels=(), now=T0, language="en"):
    with engine.begin() as conn:
        planned = plan_alerts(
            conn, statuses, warnings, channels, reminder_interval=WEEK, language=language, now=now
        )
    return planned, deliver_pending(engine, channels, max_attempts=1)


def test_one_alert_per_change_however_many_runs(engine, webhook):
    ch = [Channel(webhook.url)]
    for _ in range(3):
        _run(engine, [_slip()], channels=ch)
    assert len(webhook.received) == 1
    msg = webhook.received[0]
    assert "docreview.filing_rate" in msg["title"] and "2024" in msg["title"]
    assert "DOC-2024-002" in msg["message"] and "50% (1 / 2)" in msg["message"]
    _run(engine, [_slip("met", 2, [])], channels=ch, now=T0 + timedelta(days=1))
    _run(engine, [_slip("met", 2, [])], channels=ch, now=T0 + timedelta(days=2))
    assert [m["title"].rsplit(": ", 1)[1] for m in webhook.received] == ["SLIPPED", "recovered"]


def test_reminders_at_the_configured_interval(engine, webhook):
    ch = [Channel(webhook.url)]
    _run(engine, [_slip()], channels=ch)
    _run(engine, [_slip()], channels=ch, now=T0 + timedelta(days=6))
    _run(engine, [_slip()], channels=ch, now=T0 + timedelta(days=7))
    _run(engine, [_slip()], channels=ch, now=T0 + timedelta(days=8))
    assert [m["title"].rsplit(": ", 1)[1] for m in webhook.received] == ["SLIPPED", "still slipped"]


def test_a_channel_that_is_down_gets_it_on_the_next_run(engine, webhook):
    ch = [Channel(webhook.url)]
    webhook.up = False
    _, deliveries = _run(engine, [_slip()], channels=ch)
    assert [d.status for d in deliveries] == ["pending"]
    assert webhook.received == []
    webhook.up = True
    _, deliveries = _run(engine, [_slip()], channels=ch)
    assert [d.status for d in deliveries] == ["sent"]
    assert len(webhook.received) == 1


def test_one_dead_channel_does_not_block_another(engine, webhook):
    dead = Channel("json://127.0.0.1:9/nothing-listens-here")
    _, deliveries = _run(engine, [_slip()], channels=[dead, Channel(webhook.url)])
    assert sorted(d.status for d in deliveries) == ["pending", "sent"]
    assert len(webhook.received) == 1
    with engine.connect() as conn:
        channels = conn.execute(select(alert_delivery.c.channel)).scalars().all()
    assert all("?" not in c for c in channels)


def test_early_warning_once_per_document_and_deadline(engine, webhook):
    ch = [Channel(webhook.url)]
    w = EarlyWarning("docreview.filing_rate", "DOC-2024-003", "not filed", date(2024, 5, 23))
    _run(engine, [], [w], ch)
    _run(engine, [], [w], ch, now=T0 + timedelta(days=1))
    assert len(webhook.received) == 1
    assert "DOC-2024-003" in webhook.received[0]["message"]


def test_first_twenty_offenders_and_how_many_more(engine, webhook):
    offenders = [(f"JC-{i:04d}", "credit rule not applied") for i in range(25)]
    _run(engine, [_slip(offenders=offenders)], channels=[Channel(webhook.url)])
    body = webhook.received[0]["message"]
    assert "JC-0019" in body and "JC-0020" not in body and "and 5 more" in body


def test_email_in_chinese(engine, smtp):
    box, port = smtp
    url = f"mailto://127.0.0.1:{port}?from=rulewatch@example.org&to=legal@example.org&mode=insecure"
    _, deliveries = _run(engine, [_slip()], channels=[Channel(url)], language="zh")
    assert [d.status for d in deliveries] == ["sent"], deliveries
    assert len(box.messages) == 1
    import email
    import email.header

    msg = email.message_from_bytes(box.messages[0])
    text = "".join(
        part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
        for part in msg.walk()
        if not part.is_multipart()
    )
    subject = str(email.header.make_header(email.header.decode_header(msg["Subject"])))
    assert subject == "[rulewatch] docreview.filing_rate 2024: 未达标"
    assert "规范性文件报备率" in text and "DOC-2024-002" in text
    # Plain text, one line per fact (sent as HTML, every line ran into one).
    assert msg.get_content_type() == "text/plain"
    lines = text.splitlines()
    assert "- DOC-2024-002: 未报备;报备期限2024-04-04已过" in lines, lines  # reason in zh


def test_a_sending_claim_is_a_lease_that_a_later_run_takes_over(engine, webhook):
    """A live claimer keeps its delivery until the lease ends; then another run sends it."""
    ch = [Channel(webhook.url)]
    with engine.begin() as conn:
        plan_alerts(conn, [_slip()], [], ch, reminder_interval=WEEK, language="en", now=T0)
        conn.execute(  # claimed by a live process (this one), which then hangs
            update(alert_delivery).values(
                status="sending",
                claimed_by=holder_token(engine),
                lease_expires_at=T0 + DELIVERY_LEASE,
            )
        )
    assert deliver_pending(engine, ch, now=T0 + DELIVERY_LEASE / 2) == []
    assert webhook.received == []
    (delivery,) = deliver_pending(engine, ch, now=T0 + DELIVERY_LEASE + timedelta(seconds=1))
    assert delivery.status == "sent" and len(webhook.received) == 1
    with engine.connect() as conn:
        row = conn.execute(select(alert_delivery)).one()
    assert (row.status, row.claimed_by, row.lease_expires_at) == ("sent", None, None)


def test_an_agency_is_named_only_with_agencies_yaml():
    """Without agencies.yaml (no label) every text is as it always was; an agency's
    alert has its name in the title and one line more, first, in its body."""
    from rulewatch.alerts.announce import AgencyLabel, render_target, render_warning

    label = AgencyLabel("science-tech", "台州市科学技术局")
    title, body = render_target("slipped", _slip(), "zh")
    assert title == "[rulewatch] docreview.filing_rate 2024: 未达标"
    named_title, named_body = render_target("slipped", _slip(), "zh", label)
    assert named_title == "[rulewatch] 【台州市科学技术局】docreview.filing_rate 2024: 未达标"
    assert named_body == "单位：台州市科学技术局（science-tech）\n" + body
    w = EarlyWarning("docreview.filing_rate", "DOC-3", "not filed", date(2024, 5, 23))
    title, body = render_warning(w, "en")
    assert title == "[rulewatch] docreview.filing_rate: early warning DOC-3 (due 2024-05-23)"
    assert render_warning(w, "en", label)[1] == ("agency: 台州市科学技术局 (science-tech)\n" + body)
