"""Target checks: every rate with a target, checked by Great Expectations in SQL.

A rate's batch is its record-level population from :func:`rulewatch.metrics.compute.rate_population`
(one row per record of the denominator: ``natural_key, passes, reason``), so the
checked value is, by construction, the figure ``rulewatch kpis`` shows. Two
expectations run on it:

- ``ExpectColumnValuesToBeInSet(passes, [True], mostly=target)``: the check
  itself ("filed is true, mostly = target"); its element and unexpected counts
  give the denominator and numerator;
- ``UnexpectedRowsExpectation``: the failing records with their reasons, shown
  in Data Docs. GX caps those rows at 200; when there are more, all of them
  are read with the same query, so a result always carries every offender.

Targets come from ``targets.yaml`` (threshold, severity) and the custom rates of
``checks.yaml``; which periods the nightly run checks is ``target_periods``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Engine,
    Select,
    String,
    case,
    false,
    func,
    literal,
    literal_column,
    null,
    select,
    true,
    type_coerce,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from rulewatch.checks.config import ChecksConfig, CustomRate, load_checks_config
from rulewatch.checks.gx_runner import Expect, Outcome, Validation, run_validations
from rulewatch.checks.page import latest_quality, write_checks_page
from rulewatch.checks.quality import compile_sql, counting_rows, natural_key_column
from rulewatch.checks.results import (
    TARGET_STATUSES,
    CheckResult,
    Offender,
    TargetCheck,
    finish_check_run,
    offender_query,
    offenders_of,
    start_check_run,
    store_results,
)
from rulewatch.common.metric_ids import METRICS, label
from rulewatch.common.periods import Period
from rulewatch.config.settings import ConfigError, Settings, TargetOptions
from rulewatch.metrics.compute import provisional_metrics, rate_population
from rulewatch.warehouse.schema import CORE_TABLES, check_result, check_run, sync_run

log = logging.getLogger("rulewatch.checks")

CHECK_TYPE = "expect_column_values_to_be_in_set"
_OFFENDERS_QUERY = "SELECT natural_key, reason FROM {batch} WHERE NOT passes"


@dataclass
class TargetRun:
    """The targets checked in one run, with every offender of each."""

    check_run_id: str
    as_of: date
    periods: tuple[str, ...]
    checks: list[TargetCheck] = field(default_factory=list)
    data_docs: Path | None = None
    checks_page: Path | None = None  # the offline page rulewatch points operators to
    seconds: float = 0.0
    gx_seconds: float = 0.0

    @property
    def slipped(self) -> list[TargetCheck]:
        return [c for c in self.checks if c.status == "slipped"]

    @property
    def critical_slipped(self) -> list[TargetCheck]:
        return [c for c in self.slipped if c.severity == "critical"]


def nightly_periods(as_of: date, kinds: Sequence[str]) -> list[Period]:
    """The periods containing ``as_of`` of each kind (year, quarter, month)."""
    labels = {
        "year": str(as_of.year),
        "quarter": f"{as_of.year}-Q{(as_of.month - 1) // 3 + 1}",
        "month": f"{as_of.year}-{as_of.month:02d}",
    }
    return [Period.parse(labels[k]) for k in kinds]


def custom_population(rate: CustomRate, period: Period, as_of: date) -> Select:
    """A custom rate's records, as :func:`rate_population` gives them for the 22 metrics."""
    t = CORE_TABLES[rate.stream]
    window = period.cut(as_of)
    day = t.c[rate.date_column]
    in_period = false() if window is None else day.between(window[0], window[1])
    passes = literal_column(f"({rate.passes})", Boolean)
    key = natural_key_column(t)
    return (
        select(
            key.label("natural_key"),
            type_coerce(case((passes, true()), else_=false()), Boolean).label("passes"),
            type_coerce(case((passes, null()), else_=literal(rate.reason, String)), String).label(
                "reason"
            ),
        )
        .where(
            t.c.is_set_aside.is_(False),
            *counting_rows(t),
            in_period,
            literal_column(f"({rate.population})", Boolean),
        )
        .order_by(key)
    )


def _description(metric: str, target: float) -> str:
    name = label(metric) if metric in METRICS else metric
    return f"{metric} ({name}): records pass, mostly = target {target:g}"


def run_target_checks(
    engine: Engine,
    settings: Settings,
    periods: Sequence[Period],
    as_of: date,
    *,
    job_id: str | None = None,
    checks: ChecksConfig | None = None,
) -> TargetRun:
    """Check every target for each period cut at ``as_of``; store and return the results."""
    started = time.perf_counter()
    checks = checks or load_checks_config(settings)
    targets: dict[str, TargetOptions] = {**settings.targets, **checks.custom_targets()}
    labels = tuple(p.label for p in periods)
    with engine.begin() as conn:
        check_run_id = start_check_run(
            conn,
            "targets",
            job_id=job_id,
            period=labels[0] if len(labels) == 1 else None,
            as_of=as_of,
        )
    run = TargetRun(check_run_id, as_of, labels)
    populations: dict[str, tuple[str, Period, Select]] = {}
    validations: list[Validation] = []
    provisional: dict[str, frozenset[str]] = {}
    with engine.connect() as conn:
        for period in periods:
            provisional[period.label] = provisional_metrics(conn, period, as_of)
            for metric, options in targets.items():
                if metric in checks.custom_rates:
                    population = custom_population(checks.custom_rates[metric], period, as_of)
                    _try_custom(conn, checks, metric, population)
                else:
                    population = rate_population(metric, period, as_of)
                name = f"targets.{metric}.{period.label}"
                populations[name] = (metric, period, population)
                expectations = (
                    Expect(
                        metric,
                        "ExpectColumnValuesToBeInSet",
                        {
                            "column": "passes",
                            "value_set": [True],
                            "mostly": float(options.target),
                            "description": _description(metric, options.target),
                        },
                    ),
                    Expect(
                        f"{metric}#offenders",
                        "UnexpectedRowsExpectation",
                        {
                            "unexpected_rows_query": _OFFENDERS_QUERY,
                            "description": f"{metric}: the records that fail, with the reason",
                        },
                    ),
                )
                validations.append(Validation(name, compile_sql(conn, population), expectations))
        carried = _unchanged_outcomes(conn, job_id, populations, targets, as_of)
    if carried is not None:  # the same figures GX validated before: no GX run
        validations = []
    gx = run_validations(
        settings.warehouse_url,
        validations,
        checkpoint="targets",
        run_name=check_run_id,
        data_docs_dir=checks.data_docs_dir,
        validations_dir=checks.validations_dir,
        keep_days=checks.data_docs_keep_days,
        result_format="COMPLETE",
    )
    run.gx_seconds = gx.setup_seconds + gx.validate_seconds + gx.docs_seconds
    run.data_docs = gx.data_docs
    outcomes = carried if carried is not None else gx.by_validation()
    results: list[CheckResult] = []
    with engine.begin() as conn:
        for name, (metric, period, population) in populations.items():
            check, result = _target_check(
                conn,
                metric,
                period,
                as_of,
                targets[metric],
                population,
                outcomes[name],
                provisional=metric in provisional[period.label],
            )
            run.checks.append(check)
            results.append(result)
        ids = store_results(conn, check_run_id, results)
        run.seconds = time.perf_counter() - started
        finish_check_run(
            conn,
            check_run_id,
            checked=len(run.checks),
            failed=len(run.slipped),
            rows_checked=sum(c.denominator for c in run.checks),
            data_docs=None if run.data_docs is None else str(run.data_docs),
        )
    run.checks = [
        replace(c, check_run_id=check_run_id, check_result_id=i)
        for c, i in zip(run.checks, ids, strict=True)
    ]
    run.checks_page = write_checks_page(
        checks.data_docs_dir,
        as_of=as_of,
        periods=labels,
        check_run_id=check_run_id,
        targets=run.checks,
        quality=latest_quality(engine, checks.listed_offenders),
        listed=checks.listed_offenders,
    )
    return run


def _job_changed_nothing(conn: Connection, job_id: str) -> bool:
    """No core row carries one of the job's sync runs, and its data quality moved no row."""
    runs = select(sync_run.c.sync_run_id).where(sync_run.c.job_id == job_id).scalar_subquery()
    for table in CORE_TABLES.values():
        hit = conn.execute(
            select(table.c.sync_run_id).where(table.c.sync_run_id.in_(runs)).limit(1)
        )
        if hit.first() is not None:
            return False
    moved = conn.execute(
        select(check_run.c.check_run_id)
        .where(
            check_run.c.job_id == job_id,
            check_run.c.kind == "data_quality",
            (check_run.c.set_aside > 0) | (check_run.c.released > 0),
        )
        .limit(1)
    ).first()
    return moved is None


def _unchanged_outcomes(
    conn: Connection,
    job_id: str | None,
    populations: dict[str, tuple[str, Period, Select]],
    targets: dict[str, TargetOptions],
    as_of: date,
) -> dict[str, list[Outcome]] | None:
    """For a nightly job that changed no row: the outcomes, if all are as last checked.

    Each population is counted in SQL, and its offenders read; when every figure
    and offender equals the latest stored check of the same target, period and
    as-of date (which Great Expectations validated), those are the outcomes and
    GX need not run again. None when anything differs: GX checks everything.
    """
    if job_id is None or not _job_changed_nothing(conn, job_id):
        return None
    outcomes: dict[str, list[Outcome]] = {}
    for name, (metric, period, population) in populations.items():
        batch = population.subquery("batch")
        denominator = conn.execute(select(func.count()).select_from(batch)).scalar_one()
        offenders = sorted(
            Offender(str(k), reason) for k, reason in conn.execute(offender_query(population))
        )
        last = conn.execute(
            select(check_result)
            .where(
                check_result.c.metric == metric,
                check_result.c.period == period.label,
                check_result.c.as_of == as_of,
                check_result.c.status.in_(TARGET_STATUSES),
            )
            .order_by(check_result.c.check_result_id.desc())
            .limit(1)
        ).first()
        target = float(targets[metric].target)
        if (
            last is None
            or last.target != target
            or last.denominator != denominator
            or last.numerator != denominator - len(offenders)
            or offenders_of(conn, last.check_result_id) != offenders
        ):
            return None
        rows = [{"natural_key": k, "reason": r} for k, r in offenders]
        outcomes[name] = [
            Outcome(
                metric,
                name,
                CHECK_TYPE,
                bool(last.is_success),
                element_count=denominator,
                unexpected_count=len(offenders),
            ),
            Outcome(
                f"{metric}#offenders",
                name,
                "unexpected_rows_expectation",
                not offenders,
                unexpected_count=len(offenders),
                unexpected_rows=rows,
            ),
        ]
    return outcomes


def _try_custom(conn: Connection, checks: ChecksConfig, metric: str, population: Select) -> None:
    """A custom rate's SQL must run; if it does not, that is a config error naming it."""
    try:
        conn.execute(select(literal(1)).select_from(population.limit(1).subquery())).all()
    except DBAPIError as exc:
        conn.rollback()
        first = str(exc.orig).strip().splitlines()[0]
        raise ConfigError(f"{checks.path}: custom_rates.{metric}: SQL fails: {first}") from None


def _target_check(
    conn: Connection,
    metric: str,
    period: Period,
    as_of: date,
    options: TargetOptions,
    population: Select,
    outcomes: list[Outcome],
    *,
    provisional: bool = False,
) -> tuple[TargetCheck, CheckResult]:
    by_check = {o.check: o for o in outcomes}
    rate, listed = by_check[metric], by_check[f"{metric}#offenders"]
    for o in (rate, listed):
        if o.error:
            raise RuntimeError(f"target check {metric} {period.label}: {o.error}")
    denominator = rate.element_count or 0
    numerator = denominator - (rate.unexpected_count or 0)
    rows = listed.unexpected_rows or []
    if listed.unexpected_count is not None and len(rows) >= listed.unexpected_count:
        offenders = [Offender(str(r["natural_key"]), r["reason"]) for r in rows]
    else:  # GX returned a capped sample: read every offender with the same query
        offenders = [
            Offender(str(k), reason) for k, reason in conn.execute(offender_query(population))
        ]
    offenders.sort(key=lambda o: o.natural_key)
    if len(offenders) != denominator - numerator:
        log.warning(
            "%s %s: %d offenders listed, %d unexpected counted",
            metric,
            period.label,
            len(offenders),
            denominator - numerator,
        )
    check = TargetCheck.of_counts(
        metric,
        period.label,
        as_of,
        numerator=numerator,
        denominator=denominator,
        target=float(options.target),
        severity=options.severity,
        offenders=offenders,
        provisional=provisional,
    )
    if check.value is not None and (check.status == "met") != rate.success:
        log.warning(
            "%s %s: GX says success=%s, value %s", metric, period.label, rate.success, check.value
        )
    result = check.as_result(
        suite=f"targets.{metric}.{period.label}",
        expectation_type=CHECK_TYPE,
        is_success=rate.success,
    )
    return check, result
