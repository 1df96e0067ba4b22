"""A failed or stale night is announced, and its recovery: source and job health alerts.

The same channels and the same once-per-state-change discipline as the target
alerts (``alerts.py``): each subject has a row in ``alert_state`` that a
compare-and-set moves, so a change is recorded as one ``alert`` whatever the
number of runs, with a reminder every ``reminder_interval_days`` while it lasts.

Subjects (``alert_state.metric``, ``alert_state.period``):

- ``source:<name>``, ``sync``: the source's newest finished sync failed
  (``failing``, with the one-line reason) or succeeded (``ok``). Read from
  ``sync_run``, so any run (``sync``, ``check``, ``serve``) sees it the same.
- ``source:<name>``, ``stale``: its last successful sync is older than
  ``stale_after_hours`` (alerts.yaml): this also catches a scheduler that stopped.
- ``job:rulewatch-nightly``, ``run``: the nightly flow run ended Failed or Crashed
  for a reason other than its sources (announced from Prefect's ``on_failure`` /
  ``on_crashed`` hooks), and recovers when a run gets to its alerts step.

:func:`health_pass` heals crashed runs first (``warehouse/runs.py``), so a
killed sync is seen as abandoned, never as running.

Everything is per agency (``settings.agency_id``): its sources' runs, its state
rows, its alerts to its channels, named as :mod:`rulewatch.alerts.announce` names them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, select
from sqlalchemy.engine import Connection

from rulewatch.alerts.announce import (
    AgencyLabel,
    Channel,
    Delivery,
    PlannedAlert,
    _record,
    agency_label,
    agency_line,
    alert_title,
    apprise_send,
    dedupe_key,
    deliver_pending,
    move_state,
)
from rulewatch.common.messages import t
from rulewatch.config.settings import SOURCE_NAMES, Settings
from rulewatch.warehouse.runs import Healed, heal_runs
from rulewatch.warehouse.schema import sync_run

log = logging.getLogger("rulewatch.alerts.health")

JOB_SUBJECT = "job:rulewatch-nightly"
MAX_REASON = 300


def _h(key: str, language: str, /, **values: object) -> str:
    """A health-alert message from the one catalog (:mod:`rulewatch.common.messages`)."""
    return t(f"health.{key}", language, **values)


def utc_now() -> datetime:
    """Now, naive UTC to the second, as the warehouse stores times."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def _stamp(at: datetime | None, language: str) -> str:
    """A warehouse time (naive UTC) as people read it, "UTC" included."""
    if at is None:
        return _h("never", language)
    return at.replace(microsecond=0).isoformat(sep=" ") + " UTC"


def one_line(text: str | None) -> str:
    """The first line of an error, capped: what an alert and a status line show."""
    lines = (text or "").strip().splitlines()
    first = lines[0].strip() if lines else "unknown error"
    return first if len(first) <= MAX_REASON else first[: MAX_REASON - 1] + "…"


@dataclass(frozen=True)
class SourceHealth:
    """One source's state for an operator: failing, stale, or fine."""

    source: str
    last_status: str | None  # newest sync_run: running, succeeded, failed, abandoned; None never
    last_started_at: datetime | None
    last_succeeded_at: datetime | None
    last_failed_at: datetime | None  # started_at of the newest finished sync, when it failed
    failing_since: datetime | None  # the first failure since the last success
    reason: str | None  # one line, when failing
    age: timedelta | None  # since the last successful sync
    stale_after: timedelta

    @property
    def is_failing(self) -> bool:
        return self.failing_since is not None

    @property
    def is_stale(self) -> bool:
        return self.age is not None and self.age > self.stale_after


def source_health(conn: Connection, settings: Settings, now: datetime) -> list[SourceHealth]:
    """Every source of the settings' agency that has ever been synced, read from
    ``sync_run``."""
    stale_after = timedelta(hours=settings.alerts.stale_after_hours)
    found = []
    for source in SOURCE_NAMES:
        of_source = and_(sync_run.c.agency_id == settings.agency_id, sync_run.c.source == source)
        newest = conn.execute(
            select(sync_run.c.status, sync_run.c.started_at)
            .where(of_source)
            .order_by(sync_run.c.started_at.desc())
            .limit(1)
        ).first()
        if newest is None:
            continue
        succeeded = conn.execute(
            select(func.max(sync_run.c.finished_at)).where(
                of_source, sync_run.c.status == "succeeded"
            )
        ).scalar()
        last_finished = conn.execute(
            select(sync_run.c.status, sync_run.c.started_at, sync_run.c.error)
            .where(of_source, sync_run.c.status.in_(("succeeded", "failed")))
            .order_by(sync_run.c.started_at.desc())
            .limit(1)
        ).first()
        failing_since = reason = last_failed_at = None
        if last_finished is not None and last_finished.status == "failed":
            last_ok_started = conn.execute(
                select(func.max(sync_run.c.started_at)).where(
                    of_source, sync_run.c.status == "succeeded"
                )
            ).scalar()
            since = [of_source, sync_run.c.status == "failed"]
            if last_ok_started is not None:
                since.append(sync_run.c.started_at > last_ok_started)
            failing_since = conn.execute(select(func.min(sync_run.c.started_at)).where(*since))
            failing_since = failing_since.scalar()
            reason, last_failed_at = one_line(last_finished.error), last_finished.started_at
        found.append(
            SourceHealth(
                source=source,
                last_status=newest.status,
                last_started_at=newest.started_at,
                last_succeeded_at=succeeded,
                last_failed_at=last_failed_at,
                failing_since=failing_since,
                reason=reason,
                age=None if succeeded is None else max(now - succeeded, timedelta(0)),
                stale_after=stale_after,
            )
        )
    return found


def render_source(
    kind: str,
    h: SourceHealth,
    language: str,
    settings: Settings,
    agency: AgencyLabel | None = None,
) -> tuple[str, str]:
    """Title and body of a source alert (sync_failed, sync_failing, sync_recovered,
    stale, still_stale, fresh_again)."""
    title = alert_title(
        f"{_h('source', language, name=h.source)}: {_h(kind, language)}", language, agency
    )
    last_ok = _h("last_ok", language, at=_stamp(h.last_succeeded_at, language))
    if kind in ("sync_failed", "sync_failing"):
        lines = [
            _h(
                "failed_at",
                language,
                name=h.source,
                at=_stamp(h.last_failed_at, language),
                reason=h.reason,
            ),
            _h("failing_since", language, since=_stamp(h.failing_since, language)),
            last_ok,
        ]
    elif kind in ("sync_recovered", "fresh_again"):
        lines = [
            _h("recovered_at", language, name=h.source, at=_stamp(h.last_succeeded_at, language))
        ]
    else:
        hours = 0.0 if h.age is None else h.age.total_seconds() / 3600
        lines = [
            _h(
                "stale_line",
                language,
                name=h.source,
                at=_stamp(h.last_succeeded_at, language),
                hours=hours,
                limit=settings.alerts.stale_after_hours,
            )
        ]
    return title, _with_agency(lines, language, agency)


def _with_agency(lines: list[str], language: str, agency: AgencyLabel | None) -> str:
    first = agency_line(language, agency)
    return "\n".join(lines if first is None else [first, *lines])


def render_job(
    kind: str, language: str, line: str, agency: AgencyLabel | None = None
) -> tuple[str, str]:
    """Title and body of a job alert (job_failed, job_failing, job_recovered)."""
    text = f"{_h('job', language)} rulewatch-nightly: {_h(kind, language)}"
    return alert_title(text, language, agency), _with_agency([line], language, agency)


_SOURCE_KINDS = {
    "sync": {"bad": "sync_failed", "reminder": "sync_failing", "recovered": "sync_recovered"},
    "stale": {"bad": "stale", "reminder": "still_stale", "recovered": "fresh_again"},
}
_JOB_KINDS = {"bad": "job_failed", "reminder": "job_failing", "recovered": "job_recovered"}


def plan_health_alerts(
    conn: Connection,
    settings: Settings,
    health: Sequence[SourceHealth],
    channels: Sequence[Channel],
    now: datetime,
) -> list[PlannedAlert]:
    """Record, once, every change of a source's sync and freshness state."""
    reminder = timedelta(days=settings.alerts.reminder_interval_days)
    language = settings.alerts.language
    agency_id, agency = settings.agency_id, agency_label(settings)
    planned: list[PlannedAlert] = []
    for h in health:
        subject = f"source:{h.source}"
        for aspect, is_bad, bad in (
            ("sync", h.is_failing, "failing"),
            ("stale", h.is_stale, "stale"),
        ):
            status = bad if is_bad else "ok"
            move = move_state(
                conn, subject, aspect, status, bad, now, reminder, agency_id=agency_id
            )
            if move is None:
                continue
            kind = _SOURCE_KINDS[aspect][move]
            title, body = render_source(kind, h, language, settings, agency)
            dedupe = dedupe_key(agency_id, f"{kind}:{subject}:{now.isoformat()}")
            planned += _record(
                conn,
                dedupe,
                kind,
                subject,
                aspect,
                None,
                title,
                body,
                channels,
                now,
                agency_id=agency_id,
            )
    return planned


def plan_job_alert(
    conn: Connection,
    settings: Settings,
    channels: Sequence[Channel],
    *,
    is_failed: bool,
    line: str,
    now: datetime,
) -> list[PlannedAlert]:
    """Move the agency's nightly job state: failed (from a hook) or got through (alerts step)."""
    reminder = timedelta(days=settings.alerts.reminder_interval_days)
    agency_id = settings.agency_id
    status = "failed" if is_failed else "ok"
    move = move_state(
        conn, JOB_SUBJECT, "run", status, "failed", now, reminder, agency_id=agency_id
    )
    if move is None:
        return []
    kind = _JOB_KINDS[move]
    title, body = render_job(kind, settings.alerts.language, line, agency_label(settings))
    dedupe = dedupe_key(agency_id, f"{kind}:{JOB_SUBJECT}:{now.isoformat()}")
    return _record(
        conn,
        dedupe,
        kind,
        JOB_SUBJECT,
        "run",
        None,
        title,
        body,
        channels,
        now,
        agency_id=agency_id,
    )


@dataclass
class HealthRun:
    """What one health pass did: runs healed, sources seen, alerts raised and sent."""

    healed: Healed = field(default_factory=Healed)
    sources: list[SourceHealth] = field(default_factory=list)
    planned: list[PlannedAlert] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)


def health_pass(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime | None = None,
    job_got_through: bool = False,
    deliver: bool = True,
) -> HealthRun:
    """Heal crashed runs, announce the settings' agency's source failures, recoveries and
    stale data, send to its channels.

    ``job_got_through`` (the nightly flow's alerts step) also ends a failed job state.
    ``deliver=False`` leaves the sending to the caller's own delivery step.
    """
    now = now or utc_now()
    channels = [Channel(u) for u in settings.alert_urls]
    run = HealthRun(healed=heal_runs(engine))
    with engine.begin() as conn:
        run.sources = source_health(conn, settings, now)
        run.planned = plan_health_alerts(conn, settings, run.sources, channels, now)
        if job_got_through:
            line = _h("job_ok_line", settings.alerts.language, at=_stamp(now, "en"))
            run.planned += plan_job_alert(
                conn, settings, channels, is_failed=False, line=line, now=now
            )
    if deliver:
        run.deliveries = deliver_pending(engine, channels, now=now, agency_id=settings.agency_id)
    return run


# --- Prefect hooks ---------------------------------------------------------------------------


def _failure_is_announced_elsewhere(state: Any) -> bool:
    """Sources that failed are announced per source; a busy warehouse is not a failure."""
    from rulewatch.warehouse.lock import WarehouseBusy

    try:
        data = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - a result that cannot be read: announce the failure
        return False
    if isinstance(data, WarehouseBusy):
        return True
    # SourcesFailed: the flow got through; AgenciesFailed: the digest named the agencies
    return type(data).__name__ in ("NightlyResult", "CityResult")


def announce_job_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_failure`` / ``on_crashed`` hook of the nightly flow: announce the failure.

    Records the change in the warehouse and sends it like any alert; when the
    warehouse cannot be reached, says so in the log and sends the alert directly.
    Never raises: a hook that fails would hide the run's own error.
    """
    try:
        if state.is_failed() and _failure_is_announced_elsewhere(state):
            return
        from rulewatch.config.settings import load_settings

        settings = load_settings()
    except Exception:  # noqa: BLE001 - the hook must not fail the run's end
        log.exception("rulewatch-nightly failure hook: cannot read the configuration")
        return
    language = settings.alerts.language
    message = one_line(getattr(state, "message", None) or state.name)
    run_name = getattr(flow_run, "name", None) or "?"
    line = _h("job_line", language, run=run_name, state=state.name, message=message)
    channels = [Channel(u) for u in settings.alert_urls]
    try:
        from rulewatch.warehouse.db import make_engine

        engine = make_engine(settings.warehouse_url)
        try:
            now = utc_now()
            with engine.begin() as conn:
                planned = plan_job_alert(
                    conn, settings, channels, is_failed=True, line=line, now=now
                )
            # the sources too: a run that failed before its alerts step has not announced them
            planned += health_pass(engine, settings, now=now).planned
            for a in planned:
                log.warning("alert raised: %s", a.title)
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - the warehouse itself may be what failed
        announce_unrecorded_failure(settings, line, str(exc))


def announce_unrecorded_failure(
    settings: Settings, line: str, error: str, *, quiet: bool = False
) -> None:
    """Send a failed night's alert straight to every channel: the warehouse, which would
    record it and keep it to one per state change, cannot be used. Never raises.

    ``quiet`` keeps the note out of the log (a command whose last word is its own line).
    """
    error = one_line(error)
    language = settings.alerts.language
    log.log(
        logging.DEBUG if quiet else logging.ERROR,
        "rulewatch-nightly: the warehouse cannot record the failure alert (%s); "
        "sending it directly",
        error,
    )
    title, body = render_job("job_failed", language, line)
    body += "\n" + _h("not_recorded", language, error=error)
    for ch in (Channel(u) for u in settings.alert_urls):
        try:
            apprise_send(ch.url, title, body)
        except Exception as send_exc:  # noqa: BLE001 - one channel never blocks another
            log.error("alert to %s not delivered: %s", ch.display, one_line(str(send_exc)))


def announce_failed_start(settings: Settings, error: str) -> None:
    """A sync that could not start its flow (warehouse or Prefect API down) is a failed
    night too: announce it directly, as the failure hook does for a run that started."""
    language = settings.alerts.language
    line = _h("job_line", language, run="rulewatch sync", state="Failed", message=one_line(error))
    announce_unrecorded_failure(settings, line, error, quiet=True)  # the CLI says why


# --- what `check` shows ----------------------------------------------------------------------


def _ago(age: timedelta | None) -> str:
    if age is None:
        return ""
    hours = age.total_seconds() / 3600
    return f" ({hours:.0f} h ago)" if hours >= 1 else f" ({age.total_seconds() / 60:.0f} min ago)"


def health_lines(
    sources: Sequence[SourceHealth], deliveries: Sequence[Any], healed: Healed
) -> list[str]:
    """Plain lines for ``rulewatch check``: each source's state, deliveries not sent, healed runs."""
    lines = []
    for run_id in healed.sync_runs:
        lines.append(f"sync run {run_id}: marked abandoned (its process ended without finishing)")
    for run_id in healed.check_runs:
        lines.append(f"check run {run_id}: marked abandoned (its process ended without finishing)")
    if sources:
        limit = sources[0].stale_after.total_seconds() / 3600
        lines.append(f"sources (stale after {limit:g} h):")
    for h in sources:
        last_ok = _stamp(h.last_succeeded_at, "en")
        state = "ok"
        detail = f"last success {last_ok}{_ago(h.age)}"
        if h.is_failing:
            state = "FAILING"
            detail = f"since {_stamp(h.failing_since, 'en')}: {h.reason}; " + detail
        if h.is_stale:
            state = "STALE" if state == "ok" else state + ", STALE"
        if h.last_status in ("running", "abandoned"):
            detail += f"; newest sync {h.last_status} (started {_stamp(h.last_started_at, 'en')})"
        lines.append(f"  {h.source:<12} {state:<8} {detail}")
    if deliveries:
        lines.append(f"alert deliveries not sent: {len(deliveries)}")
        for d in deliveries:
            failed = "failed, will retry" if d.status == "pending" and d.attempts else d.status
            error = f"; last error: {one_line(d.last_error)}" if d.last_error else ""
            lines.append(
                f"  {failed} -> {d.channel}: {d.title} ({d.attempts} attempt(s), "
                f"since {_stamp(d.updated_at, 'en')}{error})"
            )
    else:
        lines.append("alert deliveries: none waiting")
    return lines
