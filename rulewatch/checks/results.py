"""Check results in the warehouse, and the small API alerting and reporting read.

Tables (revision 0002): ``check_run`` (one row per run), ``check_result`` (one
row per check evaluated in a run), ``check_offender`` (one row per offending
record of a result: all of them). Every run is kept, so a trend or "since when
has this target slipped" is a query. Each row carries its agency (revision 0009):
writers fill it, readers filter by it (``agency_id``, ``default`` without
``agencies.yaml``).

Public read API:

- :func:`latest_target_statuses` — the newest check of every target (per
  period), with all its offenders and since when it has been slipping;
- :func:`target_history` — every check of one target in one period, oldest first;
- :func:`offenders_of` — the offending records of one stored check result
  (:func:`offenders_of_many`: of many, in one statement).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, func, insert, not_, select, update
from sqlalchemy.engine import Connection

from rulewatch.metrics.compute import target_status
from rulewatch.warehouse.runs import holder_token
from rulewatch.warehouse.schema import (
    DEFAULT_AGENCY_ID,
    check_offender,
    check_result,
    check_run,
    now_utc,
)

TARGET_STATUSES = ("met", "slipped", "no_data")


class Offender(NamedTuple):
    """A record that fails a check: its natural key and why (a tuple ``(key, reason)``)."""

    natural_key: str
    reason: str | None


@dataclass(frozen=True)
class CheckResult:
    """One check evaluated in a run, as stored in ``check_result`` (plus its offenders)."""

    suite: str
    expectation: str
    expectation_type: str
    severity: str
    status: str
    metric: str | None = None
    stream: str | None = None
    period: str | None = None
    as_of: date | None = None
    value: float | None = None
    numerator: int | None = None
    denominator: int | None = None
    target: float | None = None
    is_success: bool | None = None
    offender_count: int = 0
    set_aside: int = 0
    is_provisional: bool = False
    offenders: Sequence[Offender] = field(default=(), repr=False)


@dataclass(frozen=True)
class TargetCheck:
    """A target checked for one period at one as-of date: the one record of a target's
    status, read by alerts, report tables, ``check``, the HTML report and the artifacts.

    ``value`` = ``numerator`` / ``denominator``, exactly as ``rulewatch kpis``
    shows it; ``status`` is met, slipped or no_data; ``offenders`` are all the
    records of the denominator that fail (natural key, reason), ordered by key.
    ``slipped_since`` (from :func:`latest_target_statuses`) is the as-of date
    from which the target has been slipped in every check; None unless slipped.
    """

    metric: str
    period: str
    as_of: date
    value: float | None
    numerator: int
    denominator: int
    target: float
    severity: str
    status: str
    offenders: tuple[Offender, ...] = ()
    offender_count: int = 0
    check_run_id: str | None = None
    checked_at: datetime | None = None
    slipped_since: date | None = None
    provisional: bool = False  # counts working days of a year not yet published
    check_result_id: int | None = None  # the stored ``check_result`` row

    @classmethod
    def of_counts(  # noqa: PLR0913 - the facts of one check
        cls,
        metric: str,
        period: str,
        as_of: date,
        *,
        numerator: int,
        denominator: int,
        target: float,
        severity: str,
        offenders: Sequence[Offender] = (),
        provisional: bool = False,
    ) -> TargetCheck:
        """A target checked from its counts: the value is numerator / denominator and
        the status follows the one rule (:func:`rulewatch.metrics.compute.target_status`)."""
        value = numerator / denominator if denominator else None
        return cls(
            metric=metric,
            period=period,
            as_of=as_of,
            value=value,
            numerator=numerator,
            denominator=denominator,
            target=target,
            severity=severity,
            status=target_status(value, target),
            offenders=tuple(offenders),
            offender_count=len(offenders),
            provisional=provisional,
        )

    def columns(self) -> dict[str, Any]:
        """The check's facts under the column names ``check_result`` and
        ``report_target_status`` share (:func:`_target` reads them back)."""
        return {name: getattr(self, name) for name in _SHARED_COLUMNS} | {
            "is_provisional": self.provisional
        }

    def as_result(self, *, suite: str, expectation_type: str, is_success: bool) -> CheckResult:
        """This check as ``check_result`` stores it (:func:`latest_target_statuses`
        reads it back)."""
        return CheckResult(
            suite=suite,
            expectation=self.metric,
            expectation_type=expectation_type,
            is_success=is_success,
            offenders=self.offenders,
            **self.columns(),
        )


_SHARED_COLUMNS = (
    "metric",
    "period",
    "as_of",
    "value",
    "numerator",
    "denominator",
    "target",
    "severity",
    "status",
    "offender_count",
)


def start_check_run(
    conn: Connection,
    kind: str,
    *,
    job_id: str | None = None,
    period: str | None = None,
    as_of: date | None = None,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> str:
    """Record the start of an agency's check run; its id."""
    check_run_id = str(uuid.uuid4())
    conn.execute(
        insert(check_run).values(
            check_run_id=check_run_id,
            job_id=job_id,
            agency_id=agency_id,
            kind=kind,
            period=period,
            as_of=as_of,
            started_at=now_utc(),
            status="running",
            holder=holder_token(conn.engine),
            checked=0,
            failed=0,
            rows_checked=0,
            set_aside=0,
            released=0,
        )
    )
    return check_run_id


def finish_check_run(conn: Connection, check_run_id: str, **counts: Any) -> None:
    """Record a run's end and counts (checked, failed, rows_checked, set_aside, ...)."""
    finished = now_utc()
    started = conn.execute(
        select(check_run.c.started_at).where(check_run.c.check_run_id == check_run_id)
    ).scalar_one()
    conn.execute(
        update(check_run)
        .where(check_run.c.check_run_id == check_run_id)
        .values(
            finished_at=finished,
            status="finished",
            duration_seconds=round((finished - started).total_seconds(), 3),
            **counts,
        )
    )


def store_results(
    conn: Connection,
    check_run_id: str,
    results: Iterable[CheckResult],
    *,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> list[int]:
    """Store the results of an agency's run with all their offenders; their ids, in order."""
    return _insert_results(conn, [(check_run_id, r) for r in results], agency_id)


def store_target_runs(
    conn: Connection,
    runs: Sequence[tuple[str, date, Sequence[CheckResult]]],
    *,
    job_id: str | None = None,
    seconds: float = 0.0,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> list[tuple[str, list[int]]]:
    """Store finished target-check runs, one per (period, as-of date, results), as
    :func:`start_check_run`, :func:`store_results` and :func:`finish_check_run` would,
    in three multi-row inserts: a backfill stores a run per day. Per run: its id and
    its results' ids, in order. ``seconds``: what all of them took together."""
    now = now_utc()
    holder = holder_token(conn.engine)
    run_ids = [str(uuid.uuid4()) for _ in runs]
    conn.execute(
        insert(check_run),
        [
            {
                "check_run_id": run_id,
                "job_id": job_id,
                "agency_id": agency_id,
                "kind": "targets",
                "period": period,
                "as_of": as_of,
                "started_at": now,
                "finished_at": now,
                "duration_seconds": round(seconds / len(runs), 3),
                "status": "finished",
                "holder": holder,
                "checked": len(results),
                "failed": sum(r.status == "slipped" for r in results),
                "rows_checked": sum(r.denominator or 0 for r in results),
                "set_aside": 0,
                "released": 0,
            }
            for run_id, (period, as_of, results) in zip(run_ids, runs, strict=True)
        ],
    )
    pairs = zip(run_ids, runs, strict=True)
    ids = iter(
        _insert_results(conn, [(i, r) for i, (_, _, results) in pairs for r in results], agency_id)
    )
    return [
        (run_id, [next(ids) for _ in results])
        for run_id, (_, _, results) in zip(run_ids, runs, strict=True)
    ]


def _insert_results(
    conn: Connection, results: Sequence[tuple[str, CheckResult]], agency_id: str
) -> list[int]:
    """One multi-row insert for the results (of their runs), one for their offenders."""
    if not results:
        return []
    checked_at = now_utc()
    rows = [
        {
            "check_run_id": check_run_id,
            "agency_id": agency_id,
            "checked_at": checked_at,
            **{k: v for k, v in r.__dict__.items() if k != "offenders"},
        }
        for check_run_id, r in results
    ]
    returning = insert(check_result).returning(
        check_result.c.check_result_id, sort_by_parameter_order=True
    )
    ids = [int(i) for i in conn.execute(returning, rows).scalars()]
    offenders = [
        {"check_result_id": result_id, "natural_key": k, "reason": reason, "agency_id": agency_id}
        for result_id, (_, r) in zip(ids, results, strict=True)
        for k, reason in {o.natural_key: o.reason for o in r.offenders}.items()
    ]
    if offenders:
        conn.execute(insert(check_offender), offenders)
    return ids


def offender_query(population: Select) -> Select:
    """The one offender query: the failing records of a rate's population (one row per
    record: ``natural_key, passes, reason``) as ``(natural_key, reason)``, by natural key.
    A population of many as-of dates (``as_of, natural_key, passes, reason``) gives
    ``(as_of, natural_key, reason)``, by date, then key.

    Every consumer lists offenders in this order, so "the first 20" are defined."""
    batch = population.order_by(None).subquery("batch")
    days = [batch.c.as_of] if "as_of" in batch.c else []
    return (
        select(*days, batch.c.natural_key, batch.c.reason)
        .where(not_(batch.c.passes))
        .order_by(*days, batch.c.natural_key)
    )


def offenders_of(conn: Connection, check_result_id: int) -> list[Offender]:
    """Every offending record of one stored check result, ordered by natural key."""
    return offenders_of_many(conn, [check_result_id]).get(check_result_id, [])


#: Check results whose offenders one statement reads at most (bound parameters stay
#: well below SQLite's and PostgreSQL's limits).
RESULTS_PER_STATEMENT = 500


def offenders_of_many(
    conn: Connection, check_result_ids: Sequence[int]
) -> dict[int, list[Offender]]:
    """Every offending record of each stored check result, ordered by natural key; a
    result without offenders is absent. One statement per
    :data:`RESULTS_PER_STATEMENT` results, not one per result: alerting reads the
    latest check of every target and period ever checked, nine targets times every
    period of the years kept."""
    found: dict[int, list[Offender]] = {}
    ids = list(dict.fromkeys(check_result_ids))
    for i in range(0, len(ids), RESULTS_PER_STATEMENT):
        rows = conn.execute(
            select(
                check_offender.c.check_result_id,
                check_offender.c.natural_key,
                check_offender.c.reason,
            )
            .where(check_offender.c.check_result_id.in_(ids[i : i + RESULTS_PER_STATEMENT]))
            .order_by(check_offender.c.check_result_id, check_offender.c.natural_key)
        )
        for result_id, key, reason in rows:
            found.setdefault(result_id, []).append(Offender(key, reason))
    return found


def _target(row: Any, offenders: tuple[Offender, ...] = ()) -> TargetCheck:
    """A stored ``check_result`` row of a target as its TargetCheck."""
    return TargetCheck(
        **{name: getattr(row, name) for name in _SHARED_COLUMNS},
        offenders=offenders,
        check_run_id=row.check_run_id,
        checked_at=row.checked_at,
        provisional=bool(row.is_provisional),
        check_result_id=row.check_result_id,
    )


def latest_target_statuses(
    conn: Connection,
    period: str | None = None,
    *,
    as_of: date | None = None,
    with_offenders: bool = True,
    agency_id: str = DEFAULT_AGENCY_ID,
    latest_on: date | None = None,
    check_run_id: str | None = None,
) -> list[TargetCheck]:
    """The latest stored check of every target of one agency, per period (or of one period).

    One entry per (metric, period) ever checked, ordered by metric and period.
    "Latest" is the check with the latest as-of date, and of those the last one
    run, so re-checking an old date (``rulewatch check --as-of``) never hides
    the nightly state; with ``as_of``, the last one run of that date. Each
    carries its value, numerator, denominator, target, status, all its
    offending records (unless ``with_offenders=False``) and, when slipped,
    ``slipped_since``: the as-of date of the first check of the current
    unbroken run of slipped checks up to its date.

    ``latest_on`` keeps only the entries whose latest check is of that as-of date,
    ``check_run_id`` only those checked by that run; both filter the latest checks (a
    target whose latest check is of another date or run is left out, not replaced by an
    older one), before offenders are read.
    """
    rank = (
        func.row_number()
        .over(
            partition_by=(check_result.c.metric, check_result.c.period),
            order_by=(check_result.c.as_of.desc(), check_result.c.check_result_id.desc()),
        )
        .label("rank")
    )
    ranked = select(check_result.c.check_result_id, rank).where(
        check_result.c.agency_id == agency_id,
        check_result.c.metric.is_not(None),
        check_result.c.status.in_(TARGET_STATUSES),
    )
    if period is not None:
        ranked = ranked.where(check_result.c.period == period)
    if as_of is not None:
        ranked = ranked.where(check_result.c.as_of == as_of)
    ranked = ranked.subquery()
    latest = (
        select(check_result)
        .join(ranked, ranked.c.check_result_id == check_result.c.check_result_id)
        .where(ranked.c.rank == 1)
        .order_by(check_result.c.metric, check_result.c.period)
    )
    if latest_on is not None:
        latest = latest.where(check_result.c.as_of == latest_on)
    if check_run_id is not None:
        latest = latest.where(check_result.c.check_run_id == check_run_id)
    rows = conn.execute(latest).all()
    offenders = (
        offenders_of_many(conn, [row.check_result_id for row in rows]) if with_offenders else {}
    )
    statuses = []
    for row in rows:
        check = _target(row, tuple(offenders.get(row.check_result_id, ())))
        if row.status == "slipped":
            since = _slipped_since(conn, check, agency_id)
            check = dataclasses.replace(check, slipped_since=since)
        statuses.append(check)
    return statuses


def checked_days(
    conn: Connection,
    period: str,
    days: Sequence[date],
    *,
    job_id: str | None = None,
    by_a_job: bool = False,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> set[date]:
    """Which of ``days`` have a stored target check of ``period``: one run by the job
    ``job_id``, when given; with ``by_a_job``, one run by any nightly job (not by a
    backfill or ``rulewatch check``)."""
    query = (
        select(check_result.c.as_of)
        .where(
            check_result.c.agency_id == agency_id,
            check_result.c.period == period,
            check_result.c.as_of.in_(list(days)),
            check_result.c.metric.is_not(None),
            check_result.c.status.in_(TARGET_STATUSES),
        )
        .distinct()
    )
    if job_id is not None or by_a_job:
        by = check_run.c.job_id.is_not(None) if job_id is None else check_run.c.job_id == job_id
        query = query.join(
            check_run, check_run.c.check_run_id == check_result.c.check_run_id
        ).where(by)
    return set(conn.execute(query).scalars())


def slipped_run_start(history: Iterable[tuple[date, str]]) -> date:
    """The one "slipped since" rule: the first as-of date of the unbroken run of
    ``slipped`` statuses that ends the history (as-of order; of one date, the last
    entry counts). ``history`` must end slipped."""
    by_day: dict[date, str] = {}
    for day, status in sorted(history, key=lambda h: h[0]):  # stable: run order kept
        by_day[day] = status
    days = sorted(by_day)
    since = days[-1]
    for day in reversed(days):
        if by_day[day] != "slipped":
            break
        since = day
    return since


def _slipped_since(conn: Connection, latest: TargetCheck, agency_id: str) -> date:
    history = target_history(conn, latest.metric, latest.period, agency_id=agency_id)
    return slipped_run_start(
        [(c.as_of, c.status) for c in history if c.as_of < latest.as_of]
        + [(latest.as_of, latest.status)]
    )


def target_history(
    conn: Connection, metric: str, period: str, *, agency_id: str = DEFAULT_AGENCY_ID
) -> list[TargetCheck]:
    """Every stored check of one agency's target in one period, oldest first (no offenders)."""
    rows = conn.execute(
        select(check_result)
        .where(
            check_result.c.agency_id == agency_id,
            check_result.c.metric == metric,
            check_result.c.period == period,
        )
        .order_by(check_result.c.check_result_id)
    ).all()
    return [_target(row) for row in rows]
