"""The supervising office's nightly digest: one message for the whole city (issue 16 §3).

After every agency's nightly run, the office that watches them (``agencies.yaml``:
``supervisor``) gets one message, never one per agency: which agencies have which
targets slipped (value, numerator / denominator, since when), what is new since the
last digest (slips and recoveries announced for the nights since), early warnings,
sources failing or stale, and the agencies whose run failed (the caller names them,
with the one-line reason) or did not run (no target check stored for the as-of date).

Everything is read from stored rows (the agencies' target checks, alerts and sync
runs); nothing is recomputed. The digest is one ``alert`` row of kind ``digest``,
agency ``all``, dedupe key ``digest:<as_of>``, delivered to the supervisor's channels
in the supervisor's language. A quiet night still sends one short "all met" digest;
a second run for the same night records and sends no second one (a delivery that
failed is retried, like any alert's). Without ``agencies.yaml`` nobody watches the
one agency from above: there is no digest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from rulewatch.alerts.announce import (
    MAX_LISTED,
    Channel,
    Delivery,
    EarlyWarning,
    _record,
    alert_title,
    deliver_pending,
    early_warning_list,
    stored_checks,
)
from rulewatch.alerts.health import SourceHealth, source_health, utc_now
from rulewatch.checks.results import TargetCheck
from rulewatch.common.messages import t
from rulewatch.common.templates import render
from rulewatch.config.agencies import ALL_AGENCIES, Agencies
from rulewatch.config.settings import Settings
from rulewatch.warehouse.schema import alert

log = logging.getLogger("rulewatch.alerts.digest")

DIGEST_KIND = "digest"
#: What an agency's alerts announce that the digest reports as new.
_NEWS = ("slipped", "recovered")


@dataclass(frozen=True)
class News:
    """A slip or recovery announced to an agency since the last digest."""

    kind: str  # slipped, recovered
    metric: str
    period: str
    created_at: datetime


@dataclass
class AgencyDigest:
    """One agency's part of the digest, read from its stored rows."""

    agency_id: str
    name: str
    checked: int = 0  # target checks stored for the as-of date
    slipped: list[TargetCheck] = field(default_factory=list)
    news: list[News] = field(default_factory=list)
    warnings: list[EarlyWarning] = field(default_factory=list)
    sources: list[SourceHealth] = field(default_factory=list)  # failing or stale
    failed: str | None = None  # the caller's one-line reason: its run failed

    @property
    def did_not_run(self) -> bool:
        """No target check stored for the as-of date, and no failure named for it."""
        return self.failed is None and self.checked == 0

    @property
    def all_met(self) -> bool:
        return not (self.slipped or self.failed or self.did_not_run)

    @property
    def is_quiet(self) -> bool:
        return self.all_met and not (self.news or self.warnings or self.sources)


@dataclass
class DigestRun:
    """What one digest pass did: the digest, whether it was recorded now, deliveries."""

    as_of: date
    agencies: list[AgencyDigest] = field(default_factory=list)
    title: str = ""
    body: str = ""
    alert_id: str | None = None  # the digest's alert row (recorded now or before)
    recorded: bool = False  # False: the night's digest existed already, or no supervisor
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def is_quiet(self) -> bool:
        return all(a.is_quiet for a in self.agencies)


def dedupe_of(as_of: date) -> str:
    """The one digest of a night: its alert's dedupe key."""
    return f"{DIGEST_KIND}:{as_of.isoformat()}"


def run_digest(
    engine: Engine,
    settings: Settings,
    agencies: Agencies,
    as_of: date,
    failed: dict[str, str],
    *,
    now: datetime | None = None,
) -> DigestRun:
    """Build the night's digest of every agency from stored rows, record it once and
    send it to the supervisor's channels (issue 16 §3).

    ``failed``: agency id -> the one-line reason its run failed (the flow knows; the
    warehouse may hold nothing of a run that never started). ``settings`` are the
    deployment's (not one agency's): the supervisor's channels are resolved from its
    environment. Without a supervisor (no ``agencies.yaml``) nothing is recorded or sent.
    """
    now = now or utc_now()
    run = DigestRun(as_of)
    supervisor = agencies.supervisor
    if supervisor is None:
        log.debug("no agencies.yaml: no supervising office, no digest")
        return run
    language = supervisor.alerts.language
    channels = [Channel(u) for u in supervisor.alerts.resolve(settings.env)]
    with engine.connect() as conn:
        since = _last_digest_on(conn, as_of)
        run.agencies = [
            _agency_digest(conn, settings, a.agency_id, a.name(language), as_of, since, now)
            for a in agencies
        ]
    for part in run.agencies:
        part.failed = failed.get(part.agency_id)
    office = supervisor.name_zh if language == "zh" else supervisor.name_en
    run.title, run.body = render_digest(run, office, language)
    dedupe = dedupe_of(as_of)
    try:
        with engine.begin() as conn:
            existing = conn.execute(
                select(alert.c.alert_id).where(alert.c.dedupe_key == dedupe)
            ).scalar()
            if existing is None:
                (planned,) = _record(
                    conn,
                    dedupe,
                    DIGEST_KIND,
                    DIGEST_KIND,
                    "",
                    as_of,
                    run.title,
                    run.body,
                    channels,
                    now,
                    agency_id=ALL_AGENCIES,
                )
                run.alert_id, run.recorded = planned.alert_id, True
            else:
                run.alert_id = existing
    except IntegrityError:  # another run recorded the night's digest at the same moment
        with engine.connect() as conn:
            run.alert_id = conn.execute(
                select(alert.c.alert_id).where(alert.c.dedupe_key == dedupe)
            ).scalar()
    run.deliveries = deliver_pending(engine, channels, now=now, agency_id=ALL_AGENCIES)
    return run


def _last_digest_on(conn: Connection, as_of: date) -> date | None:
    """The as-of date of the last digest before this night's; None before the first."""
    return conn.execute(
        select(func.max(alert.c.as_of)).where(
            alert.c.agency_id == ALL_AGENCIES,
            alert.c.kind == DIGEST_KIND,
            alert.c.as_of < as_of,
        )
    ).scalar()


def _agency_digest(
    conn: Connection,
    settings: Settings,
    agency_id: str,
    name: str,
    as_of: date,
    since: date | None,
    now: datetime,
) -> AgencyDigest:
    """One agency's stored checks at ``as_of``, its news (slips and recoveries announced
    for the as-of dates after ``since``, the last digest's, up to ``as_of``; before the
    first digest, for ``as_of``), early warnings and unhealthy sources."""
    part = AgencyDigest(agency_id, name)
    checks = stored_checks(conn, as_of, agency_id=agency_id)
    part.checked = len(checks)
    part.slipped = [c for c in checks if c.status == "slipped"]
    news = select(alert.c.kind, alert.c.metric, alert.c.period, alert.c.created_at).where(
        alert.c.agency_id == agency_id, alert.c.kind.in_(_NEWS)
    )
    after = alert.c.as_of > since if since else alert.c.as_of == as_of
    news = news.where(after, alert.c.as_of <= as_of)
    part.news = [
        News(*row)
        for row in conn.execute(news.order_by(alert.c.created_at, alert.c.metric, alert.c.period))
    ]
    days = settings.alerts.early_warning_days
    part.warnings = early_warning_list(conn, as_of, days, agency_id=agency_id)
    scoped = replace(settings, agency_id=agency_id)
    part.sources = [h for h in source_health(conn, scoped, now) if h.is_failing or h.is_stale]
    return part


def render_digest(run: DigestRun, office: str, language: str) -> tuple[str, str]:
    """The digest's title and plain-text body, in ``language`` (the supervisor's)."""
    total = len(run.agencies)
    slipped = sum(bool(a.slipped) for a in run.agencies)
    missing = sum(bool(a.failed or a.did_not_run) for a in run.agencies)
    if all(a.all_met for a in run.agencies):
        summary = t("digest.summary_met", language, n=total)
    else:
        summary = t("digest.summary", language, n=total, slipped=slipped, failed=missing)
    title = alert_title(
        t("digest.title", language, as_of=run.as_of.isoformat(), summary=summary), language
    )
    body = render(
        "digest.txt.j2",
        run=run,
        office=office,
        lang=language,
        listed=MAX_LISTED,
        warnings_listed=5,
        stale_hours=_hours,
    )
    return title, body.rstrip("\n")


def _hours(age: timedelta | None) -> str:
    return "?" if age is None else f"{age.total_seconds() / 3600:.0f}"
