"""Alerts: a target slips, recovers or stays slipped, and early warnings before it does.

Two steps, each its own transaction:

1. :func:`plan_alerts` compares the checked statuses with ``alert_state`` and
   records each state change once as an ``alert`` (with a unique dedupe key)
   and one ``alert_delivery`` per channel, pending. A compare-and-set on the
   state row means two runs at once cannot both announce the same change.
2. :func:`deliver_pending` sends every pending delivery through Apprise. A
   delivery is claimed (``sending``) before it is sent, so two runs never send
   it twice; a channel that fails stays ``pending`` and is retried on the next
   run; one channel never blocks another. A claim is a lease: it names the
   claiming process and expires after :data:`DELIVERY_LEASE`, so a delivery cut
   off by a crash is retried by a later run (at once when the claimer's
   process is gone, see ``warehouse/runs.py``; a crash after the receiver took
   the message but before ``sent`` was recorded may repeat it once).

No secrets, pseudonyms or personal names go into an alert: it carries metric
ids, figures, natural keys and reasons.

Per agency (issue 16): ``alert_state``, ``alert`` and ``alert_delivery`` rows carry
the agency (``settings.agency_id``); a non-default agency's dedupe keys lead with
its id, so two agencies slipping the same target are two alerts, each to its own
channels. With ``agencies.yaml`` a title and body name the agency; without it
every text is as it always was.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine, and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from rulewatch.checks.results import TargetCheck, latest_target_statuses
from rulewatch.common.messages import t
from rulewatch.common.templates import render
from rulewatch.config.settings import Settings
from rulewatch.metrics.compute import (
    PROVISIONAL_NOTE,
    PUBLICATION_LIMIT_WORKING_DAYS,
    early_warnings,
)
from rulewatch.warehouse.runs import holder_gone, holder_token
from rulewatch.warehouse.schema import (
    DEFAULT_AGENCY_ID,
    alert,
    alert_delivery,
    alert_state,
    calendar_day,
    inspection,
)

log = logging.getLogger("rulewatch.alerts.announce")
#: How many offenders an alert lists: the first ones by natural key (the stored order).
MAX_LISTED = 20
#: How long a ``sending`` claim holds before another run may take the delivery over.
DELIVERY_LEASE = timedelta(minutes=10)


@dataclass(frozen=True)
class AgencyLabel:
    """How an alert names its agency: the id and its name in the alert's language."""

    agency_id: str
    name: str


def agency_label(settings: Settings) -> AgencyLabel | None:
    """The settings' agency as its alerts name it (``agencies.yaml``'s name in the alert
    language); None without the file, so the one agency's texts stay as they were."""
    from rulewatch.config.agencies import load_agencies

    agencies = load_agencies(settings)
    if agencies.path is None or settings.agency_id not in agencies.ids:
        return None
    agency = agencies.get(settings.agency_id)
    return AgencyLabel(agency.agency_id, agency.name(settings.alerts.language))


def dedupe_key(agency_id: str, key: str) -> str:
    """An alert's dedupe key for an agency: the key itself for the one (default) agency,
    ``<agency>:<key>`` for another, so each agency announces the same change once."""
    return key if agency_id == DEFAULT_AGENCY_ID else f"{agency_id}:{key}"


def alert_title(text: str, language: str, agency: AgencyLabel | None = None) -> str:
    """``[rulewatch] `` and the agency's tag (with ``agencies.yaml``) before ``text``."""
    tag = "" if agency is None else t("alert.agency_tag", language, name=agency.name)
    return f"[rulewatch] {tag}{text}"


def agency_line(language: str, agency: AgencyLabel | None) -> str | None:
    """The first line of an agency's alert body; None for the one agency."""
    if agency is None:
        return None
    return t("alert.agency_line", language, name=agency.name, id=agency.agency_id)


@dataclass(frozen=True)
class EarlyWarning:
    """A record that will make a target slip unless someone acts."""

    metric: str
    natural_key: str
    reason: str
    due_on: date


@dataclass(frozen=True)
class Channel:
    """A notification target; only ``display`` (no secrets) is stored."""

    url: str

    @property
    def channel_id(self) -> str:
        return hashlib.sha256(self.url.encode("utf-8")).hexdigest()[:16]

    @property
    def display(self) -> str:
        parts = urlsplit(self.url)
        host = parts.netloc.rsplit("@", 1)[-1]  # never the user or password
        return f"{parts.scheme}://{host}"


@dataclass
class PlannedAlert:
    alert_id: str
    kind: str
    metric: str
    period: str
    title: str
    body: str
    severity: str | None = None
    check_result_id: int | None = None


@dataclass
class Delivery:
    alert_id: str
    channel: str
    status: str
    error: str | None = None


@dataclass
class AlertRun:
    """What one alerting pass did."""

    planned: list[PlannedAlert] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)


def render_target(
    kind: str, s: TargetCheck, language: str, agency: AgencyLabel | None = None
) -> tuple[str, str]:
    """Title and body of a slip, recovery or reminder of a stored target check."""
    title = alert_title(f"{s.metric} {s.period}: {t('alert.' + kind, language)}", language, agency)
    if s.provisional:
        title += f" ({t('alert.provisional', language)})"
    body = render(
        "alert_target.txt.j2",
        kind=kind,
        s=s,
        lang=language,
        listed=MAX_LISTED,
        agency=agency_line(language, agency),
    )
    return title, body.rstrip("\n")


def render_warning(
    w: EarlyWarning, language: str, agency: AgencyLabel | None = None
) -> tuple[str, str]:
    """Title and body of an early warning."""
    due = t("alert.due", language, day=w.due_on.isoformat())
    text = f"{w.metric}: {t('alert.early_warning', language)} {w.natural_key} ({due})"
    body = render("alert_warning.txt.j2", w=w, lang=language, agency=agency_line(language, agency))
    return alert_title(text, language, agency), body.rstrip("\n")


def _now() -> datetime:
    return datetime.utcnow().replace(microsecond=0)  # noqa: DTZ003 - warehouse stores naive UTC


def plan_alerts(
    conn: Connection,
    statuses: Iterable[TargetCheck],
    warnings: Iterable[EarlyWarning],
    channels: Sequence[Channel],
    *,
    reminder_interval: timedelta,
    language: str = "zh",
    now: datetime | None = None,
    agency_id: str = DEFAULT_AGENCY_ID,
    agency: AgencyLabel | None = None,
) -> list[PlannedAlert]:
    """Record, once, every state change of one agency worth announcing (in the caller's
    transaction).

    ``statuses`` are the agency's stored target checks; each alert carries the check's
    severity and ``check_result_id``, so it joins to the result that justified it.
    ``agency`` names the agency in the texts (None: as without ``agencies.yaml``)."""
    now = now or _now()
    planned: list[PlannedAlert] = []
    for s in statuses:
        kind = _transition(conn, s, now, reminder_interval, agency_id)
        if kind is None:
            continue
        title, body = render_target(kind, s, language, agency)
        stamp = now.isoformat() if kind != "recovered" else s.as_of.isoformat()
        dedupe = dedupe_key(agency_id, f"{kind}:{s.metric}:{s.period}:{stamp}")
        planned += _record(
            conn,
            dedupe,
            kind,
            s.metric,
            s.period,
            s.as_of,
            title,
            body,
            channels,
            now,
            severity=s.severity,
            check_result_id=s.check_result_id,
            agency_id=agency_id,
        )
    for w in warnings:
        title, body = render_warning(w, language, agency)
        dedupe = dedupe_key(
            agency_id, f"early_warning:{w.metric}:{w.natural_key}:{w.due_on.isoformat()}"
        )
        exists = conn.execute(select(alert.c.alert_id).where(alert.c.dedupe_key == dedupe)).first()
        if exists is None:
            planned += _record(
                conn,
                dedupe,
                "early_warning",
                w.metric,
                "",
                None,
                title,
                body,
                channels,
                now,
                agency_id=agency_id,
            )
    return planned


def _transition(
    conn: Connection, s: TargetCheck, now: datetime, reminder_interval: timedelta, agency_id: str
) -> str | None:
    """Move the target's announced state; the kind of alert it calls for, if any."""
    kind = move_state(
        conn, s.metric, s.period, s.status, "slipped", now, reminder_interval, agency_id=agency_id
    )
    return "slipped" if kind == "bad" else kind


def move_state(
    conn: Connection,
    subject: str,
    aspect: str,
    status: str,
    bad: str,
    now: datetime,
    reminder_interval: timedelta,
    *,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> str | None:
    """Compare-and-set an agency's subject's announced state (one ``alert_state`` row):
    the alert the change calls for, "bad", "reminder", "recovered" or None.

    ``status`` is the state now, ``bad`` the one that is announced. A first sighting
    that is not bad, and a move between two states that are not, are recorded
    silently; two runs at once cannot both win the same change (the update names
    the state it saw).
    """
    key = and_(
        alert_state.c.agency_id == agency_id,
        alert_state.c.metric == subject,
        alert_state.c.period == aspect,
    )
    is_bad = status == bad
    row = conn.execute(select(alert_state).where(key)).first()
    if row is None:
        conn.execute(
            insert(alert_state).values(
                agency_id=agency_id,
                metric=subject,
                period=aspect,
                status=status,
                changed_at=now,
                last_announced_at=now if is_bad else None,
            )
        )
        return "bad" if is_bad else None
    if (row.status == bad) == is_bad:
        if not is_bad:
            if row.status != status:
                conn.execute(update(alert_state).where(key).values(status=status))
            return None
        due = row.last_announced_at is None or now - row.last_announced_at >= reminder_interval
        if not due:
            return None
        claimed = conn.execute(
            update(alert_state)
            .where(key, alert_state.c.last_announced_at == row.last_announced_at)
            .values(last_announced_at=now)
        ).rowcount
        return "reminder" if claimed else None
    claimed = conn.execute(
        update(alert_state)
        .where(key, alert_state.c.status == row.status)
        .values(
            status=status,
            changed_at=now,
            last_announced_at=now if is_bad else row.last_announced_at,
        )
    ).rowcount
    if not claimed:
        return None
    return "bad" if is_bad else "recovered"


def _record(
    conn: Connection,
    dedupe: str,
    kind: str,
    metric: str,
    period: str,
    as_of: date | None,
    title: str,
    body: str,
    channels: Sequence[Channel],
    now: datetime,
    *,
    severity: str | None = None,
    check_result_id: int | None = None,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> list[PlannedAlert]:
    alert_id = str(uuid.uuid4())
    conn.execute(
        insert(alert).values(
            alert_id=alert_id,
            agency_id=agency_id,
            dedupe_key=dedupe,
            kind=kind,
            metric=metric,
            period=period,
            as_of=as_of,
            title=title,
            body=body,
            created_at=now,
            severity=severity,
            check_result_id=check_result_id,
        )
    )
    for ch in channels:
        conn.execute(
            insert(alert_delivery).values(
                alert_id=alert_id,
                agency_id=agency_id,
                channel_id=ch.channel_id,
                channel=ch.display,
                status="pending",
                attempts=0,
                updated_at=now,
            )
        )
    return [PlannedAlert(alert_id, kind, metric, period, title, body, severity, check_result_id)]


Sender = Callable[[str, str, str], None]  # (url, title, body); raises on failure


def apprise_send(url: str, title: str, body: str) -> None:
    """Send one notification through Apprise; raise if it was not delivered."""
    import apprise

    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise ValueError(f"not a notification URL Apprise knows: {Channel(url).display}")
    # The body is plain text with line breaks: say so, or e-mail (HTML by default)
    # runs every line into one.
    if not notifier.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT):
        raise RuntimeError(f"{Channel(url).display} did not accept the notification")


def deliver_pending(
    engine: Engine,
    channels: Sequence[Channel],
    *,
    sender: Sender = apprise_send,
    max_attempts: int = 3,
    now: datetime | None = None,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> list[Delivery]:
    """Send every pending delivery of the agency (``all``: the supervisor's digest), and
    every claim whose lease ran out or whose claimer died; failures stay pending for
    the next run."""
    now = now or _now()
    by_id = {ch.channel_id: ch for ch in channels}
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                alert_delivery.c.alert_id,
                alert_delivery.c.channel_id,
                alert_delivery.c.channel,
                alert_delivery.c.attempts,
                alert_delivery.c.status,
                alert_delivery.c.claimed_by,
                alert_delivery.c.lease_expires_at,
                alert.c.title,
                alert.c.body,
            )
            .join(alert, alert.c.alert_id == alert_delivery.c.alert_id)
            .where(
                alert_delivery.c.agency_id == agency_id,
                alert_delivery.c.status.in_(("pending", "sending")),
            )
            .order_by(alert.c.created_at, alert.c.alert_id)
        ).all()
    results: list[Delivery] = []
    gone: dict[str | None, bool] = {}
    for row in rows:
        ch = by_id.get(row.channel_id)
        if ch is None:
            continue  # channel no longer configured: stays pending, shown by `check`
        if row.status == "sending":
            expired = row.lease_expires_at is None or row.lease_expires_at <= now
            if not expired:
                if row.claimed_by not in gone:
                    gone[row.claimed_by] = holder_gone(engine, row.claimed_by)
                if not gone[row.claimed_by]:
                    continue  # another run is sending it right now
            log.warning(
                "alert %s to %s: the run that was sending it ended or its claim expired; "
                "sending again",
                row.alert_id,
                ch.display,
            )
        if not _claim(engine, row, now):
            continue  # another run took it
        error = None
        for _attempt in range(max_attempts):
            try:
                sender(ch.url, row.title, row.body)
                error = None
                break
            except Exception as exc:  # noqa: BLE001 - any channel failure is retried later
                error = f"{type(exc).__name__}: {exc}"
        status = "sent" if error is None else "pending"
        with engine.begin() as conn:
            conn.execute(
                update(alert_delivery)
                .where(
                    alert_delivery.c.alert_id == row.alert_id,
                    alert_delivery.c.channel_id == row.channel_id,
                )
                .values(
                    status=status,
                    attempts=row.attempts + 1,
                    last_error=error,
                    updated_at=_now(),
                    sent_at=_now() if error is None else None,
                    claimed_by=None,
                    lease_expires_at=None,
                )
            )
        if error:
            log.warning("alert %s to %s not delivered: %s", row.alert_id, ch.display, error)
        results.append(Delivery(row.alert_id, ch.display, status, error))
    return results


def _claim(engine: Engine, row: Any, now: datetime) -> bool:
    """Compare-and-set the delivery to ``sending`` under this process's lease."""
    seen = (
        alert_delivery.c.claimed_by.is_(None)
        if row.claimed_by is None
        else alert_delivery.c.claimed_by == row.claimed_by
    )
    with engine.begin() as conn:
        return bool(
            conn.execute(
                update(alert_delivery)
                .where(
                    alert_delivery.c.alert_id == row.alert_id,
                    alert_delivery.c.channel_id == row.channel_id,
                    alert_delivery.c.status == row.status,
                    seen,
                )
                .values(
                    status="sending",
                    updated_at=_now(),
                    claimed_by=holder_token(engine),
                    lease_expires_at=now + DELIVERY_LEASE,
                )
            ).rowcount
        )


@dataclass(frozen=True)
class OpenDelivery:
    """A delivery not yet sent: pending (maybe failed before), or being sent."""

    alert_id: str
    title: str
    channel: str
    status: str
    attempts: int
    last_error: str | None
    updated_at: datetime


def open_deliveries(conn: Connection, *, agency_id: str = DEFAULT_AGENCY_ID) -> list[OpenDelivery]:
    """Every delivery of the agency not sent yet, oldest alert first (what `check` shows)."""
    rows = conn.execute(
        select(
            alert_delivery.c.alert_id,
            alert.c.title,
            alert_delivery.c.channel,
            alert_delivery.c.status,
            alert_delivery.c.attempts,
            alert_delivery.c.last_error,
            alert_delivery.c.updated_at,
        )
        .join(alert, alert.c.alert_id == alert_delivery.c.alert_id)
        .where(alert_delivery.c.agency_id == agency_id, alert_delivery.c.status != "sent")
        .order_by(alert.c.created_at, alert.c.alert_id, alert_delivery.c.channel)
    ).all()
    return [OpenDelivery(*r) for r in rows]


def early_warning_list(
    conn: Connection, as_of: date, days: int, *, agency_id: str = DEFAULT_AGENCY_ID
) -> list[EarlyWarning]:
    """The agency's filings due within ``days`` days, and double-random results close to
    20 working days."""
    found = [
        EarlyWarning(
            "docreview.filing_rate",
            w["doc_id"],
            f"not filed; deadline {w['deadline']} in {w['days_left']} day(s)",
            w["deadline"],
        )
        for w in early_warnings(conn, as_of, days, agency_id=agency_id)
    ]
    cal_inspected, cal_today = calendar_day.alias("ci"), calendar_day.alias("ct")
    elapsed = cal_today.c.workday_seq - cal_inspected.c.workday_seq
    provisional = cal_today.c.provisional_seq > cal_inspected.c.provisional_seq
    limit = PUBLICATION_LIMIT_WORKING_DAYS
    # workday_seq never falls as days go on, so "elapsed <= limit" is "inspected on or
    # after the first day within limit working days of as_of": the same rows, but a
    # range on the inspected_on index instead of every inspection (0.1 s at 1M rows)
    seq_today = select(calendar_day.c.workday_seq).where(calendar_day.c.day == as_of)
    first_day = select(func.min(calendar_day.c.day)).where(
        calendar_day.c.workday_seq >= seq_today.scalar_subquery() - limit
    )
    rows = conn.execute(
        select(
            inspection.c.inspection_no,
            inspection.c.inspected_on,
            elapsed.label("elapsed"),
            provisional.label("provisional"),
        )
        .select_from(
            inspection.join(cal_inspected, cal_inspected.c.day == inspection.c.inspected_on).join(
                cal_today, cal_today.c.day == as_of
            )
        )
        .where(
            inspection.c.agency_id == agency_id,
            inspection.c.is_set_aside.is_(False),
            inspection.c.task_type == "double_random",
            inspection.c.outcome != "pending",
            inspection.c.inspected_on <= as_of,
            inspection.c.inspected_on >= first_day.scalar_subquery(),
            or_(
                inspection.c.is_published.is_(False),
                and_(inspection.c.published_on.is_not(None), inspection.c.published_on > as_of),
            ),
            elapsed <= limit,
            elapsed >= limit - days,
        )
        .order_by(inspection.c.inspection_no)
    )
    for row in rows:
        found.append(
            EarlyWarning(
                "enforcement.publication_timely_rate",
                row.inspection_no,
                f"result not published; {row.elapsed} of {limit} working days used"
                + (PROVISIONAL_NOTE if row.provisional else ""),
                row.inspected_on,
            )
        )
    return found


def stored_checks(
    conn: Connection,
    as_of: date,
    check_run_id: str | None = None,
    *,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> list[TargetCheck]:
    """The stored target checks alerting follows: the agency's latest check of every
    target and period at ``as_of`` (only those of ``check_run_id`` when given), with
    offenders."""
    return latest_target_statuses(
        conn, agency_id=agency_id, latest_on=as_of, check_run_id=check_run_id
    )


def run_alerting(
    engine: Engine, settings: Settings, as_of: date, *, check_run_id: str | None = None
) -> AlertRun:
    """Announce the state changes of the settings' agency's stored target checks at
    ``as_of`` (every checked period and custom rate), record them once, send what is
    pending to the agency's channels.

    Statuses are read, never recomputed: run the target checks first.
    """
    channels = [Channel(u) for u in settings.alert_urls]
    agency_id = settings.agency_id
    run = AlertRun()
    with engine.begin() as conn:
        statuses = stored_checks(conn, as_of, check_run_id, agency_id=agency_id)
        warnings = early_warning_list(
            conn, as_of, settings.alerts.early_warning_days, agency_id=agency_id
        )
        run.planned = plan_alerts(
            conn,
            statuses,
            warnings,
            channels,
            reminder_interval=timedelta(days=settings.alerts.reminder_interval_days),
            language=settings.alerts.language,
            agency_id=agency_id,
            agency=agency_label(settings),
        )
    run.deliveries = deliver_pending(engine, channels, agency_id=agency_id)
    return run
