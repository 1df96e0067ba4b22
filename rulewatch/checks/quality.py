"""Data-quality suites: one per stream, run once per sync over the rows it wrote.

The batch of a stream is, in SQL, its core rows written by the job's sync runs
(``sync_run_id``) that count (not set aside, not deleted, on the roster), plus
the rows an earlier data-quality run set aside (so that a row is released once
its expectation is no longer critical). Every rule of a suite is decided in the
warehouse in one aggregate pass over the batch (the failing and ignored rows
per rule, counted with the conditions the offenders are read with); no row is
pulled into Python unless it fails. Great Expectations records the outcome:
the suite of GX expectations, its validation result and Data Docs.

For each failed expectation the offending records are read in full with the
same condition in SQL. Rows failing a ``critical`` expectation are set aside: a
``quarantined_record`` row naming the expectation, and the core row's
``is_set_aside`` / ``set_aside_reason``, so they count nowhere. ``warning``
expectations are reported and stored only.

A stream whose sync wrote no row is not checked (GX's record costs seconds
even for an empty batch) unless its suite changed since it last ran: the rows
it holds were checked by that same suite and only a fresh version can change
them.

A run is one agency's (``settings.agency_id``): its batch, the rows it sets aside
or releases, the payloads it quarantines and the suite versions it remembers are
that agency's alone."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Engine,
    Select,
    String,
    Subquery,
    Table,
    and_,
    bindparam,
    case,
    cast,
    distinct,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from rulewatch.checks.config import (
    Between,
    ChecksConfig,
    InSet,
    Length,
    NotNull,
    Ordered,
    Rule,
    Sql,
    Unique,
    check_name,
    load_checks_config,
)
from rulewatch.checks.gx_runner import (
    PARTIAL_LIMIT,
    Expect,
    Outcome,
    Recorder,
    Validation,
    map_outcome,
    record_checkpoint,
    rows_outcome,
)
from rulewatch.checks.results import (
    CheckResult,
    Offender,
    finish_check_run,
    start_check_run,
    store_results,
)
from rulewatch.config.settings import ConfigError, Settings
from rulewatch.warehouse.loader import CONTRACT_CHECK
from rulewatch.warehouse.runs import rows_carry_runs
from rulewatch.warehouse.schema import (
    CORE_TABLES,
    DEFAULT_AGENCY_ID,
    landed_record,
    natural_key_column,
    now_utc,
    quarantined_record,
    sync_run,
    warehouse_meta,
)

log = logging.getLogger("rulewatch.checks")

Batch = Select | CompoundSelect  # a stream's batch query
_CHUNK = 500


@dataclass
class StreamQuality:
    """One stream's data-quality suite in one run."""

    stream: str
    rows_checked: int = 0
    results: list[CheckResult] = field(default_factory=list)
    set_aside: int = 0  # rows newly set aside by critical expectations
    released: int = 0  # rows set aside earlier that now pass every critical expectation

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status != "passed"]


@dataclass
class QualityRun:
    """What a data-quality run checked, found and set aside."""

    check_run_id: str
    streams: dict[str, StreamQuality] = field(default_factory=dict)
    data_docs: Path | None = None
    seconds: float = 0.0
    sql_seconds: float = 0.0  # deciding every rule in the warehouse
    gx_seconds: float = 0.0  # recording the results with Great Expectations, Data Docs

    @property
    def results(self) -> list[CheckResult]:
        return [r for s in self.streams.values() for r in s.results]

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status != "passed"]

    @property
    def set_aside(self) -> int:
        return sum(s.set_aside for s in self.streams.values())

    @property
    def released(self) -> int:
        return sum(s.released for s in self.streams.values())

    @property
    def rows_checked(self) -> int:
        return sum(s.rows_checked for s in self.streams.values())


# --- the batch ------------------------------------------------------------------------------


def counting_rows(table: Table) -> list[ColumnElement]:
    """Rows that count at all, whatever the set-aside flag."""
    conditions: list[ColumnElement] = []
    if "is_deleted" in table.c:
        conditions.append(table.c.is_deleted.is_(False))
    if "is_active" in table.c:
        conditions.append(table.c.is_active.is_(True))
    return conditions


def held_rows(stream: str, *, agency_id: str = DEFAULT_AGENCY_ID) -> Select:
    """An agency's core rows an earlier data-quality run set aside (the quarantine names
    an expectation)."""
    t = CORE_TABLES[stream]
    q = quarantined_record
    joined = q.join(
        t,
        and_(
            t.c.agency_id == q.c.agency_id,
            natural_key_column(t) == q.c.natural_key,
            t.c.record_hash == q.c.record_hash,
        ),
    )
    return (
        select(*t.c)
        .select_from(joined)
        .where(
            q.c.agency_id == agency_id,
            q.c.stream == stream,
            q.c.check_name != CONTRACT_CHECK,
            t.c.is_set_aside.is_(True),
            *counting_rows(t),
        )
    )


def fresh_rows(
    stream: str, sync_run_ids: Sequence[str], *, agency_id: str = DEFAULT_AGENCY_ID
) -> Select:
    """An agency's rows the sync runs wrote that count."""
    t = CORE_TABLES[stream]
    return select(*t.c).where(
        t.c.agency_id == agency_id,
        t.c.sync_run_id.in_(list(sync_run_ids)),
        t.c.is_set_aside.is_(False),
        *counting_rows(t),
    )


def batch_rows(
    stream: str, sync_run_ids: Sequence[str], *, agency_id: str = DEFAULT_AGENCY_ID
) -> Batch:
    """An agency's batch of the stream: rows the sync runs wrote that count, and rows held
    by a check."""
    return union_all(
        fresh_rows(stream, sync_run_ids, agency_id=agency_id),
        held_rows(stream, agency_id=agency_id),
    )


def suite_fingerprint(rules: Sequence[Rule]) -> str:
    """What a suite checks, as a digest: held rows need checking again only when it changes."""
    text_ = json.dumps([r.model_dump(mode="json") for r in rules], sort_keys=True)
    return hashlib.sha256(text_.encode()).hexdigest()


def _fingerprint_key(stream: str, agency_id: str) -> str:
    """The ``warehouse_meta`` key of the suite version that last checked an agency's held
    rows (the one agency's key is the one used before agencies)."""
    if agency_id == DEFAULT_AGENCY_ID:
        return f"quality_suite:{stream}"
    return f"quality_suite:{agency_id}:{stream}"


def _any(conn: Connection, query: Batch) -> bool:
    return (
        conn.execute(select(literal(1)).select_from(query.limit(1).subquery())).first() is not None
    )


def compile_sql(conn_or_engine: Connection | Engine, statement: Any) -> str:
    """SQL text of a statement with its values inlined (for GX query assets)."""
    return str(
        statement.compile(dialect=conn_or_engine.dialect, compile_kwargs={"literal_binds": True})
    )


# --- rules: a GX expectation and the same condition in SQL ----------------------------------


def _txt(*parts: str | ColumnElement) -> ColumnElement:
    out: ColumnElement | None = None
    for part in parts:
        piece = literal(part, String) if isinstance(part, str) else cast(part, String)
        out = piece if out is None else out + piece
    assert out is not None
    return out


def _description(rule: Rule) -> str:
    if rule.description:
        return rule.description
    if isinstance(rule, NotNull):
        return f"{rule.column} is present"
    if isinstance(rule, Unique):
        return f"{rule.column} is unique in the batch"
    if isinstance(rule, InSet):
        return f"{rule.column} is one of {', '.join(rule.values)}"
    if isinstance(rule, Length):
        return f"{rule.column} has {rule.value} characters"
    if isinstance(rule, Between):
        return f"{rule.column} is between {rule.min} and {rule.max}"
    if isinstance(rule, Ordered):
        return f"{rule.later} is not before {rule.earlier}"
    return rule.reason


def expectation_for(stream: str, rule: Rule) -> Expect:
    """The GX expectation that checks a rule (pushed down to SQL by GX)."""
    name = check_name(stream, rule.name)
    common = {"description": _description(rule)}
    if isinstance(rule, NotNull):
        return Expect(name, "ExpectColumnValuesToNotBeNull", {"column": rule.column, **common})
    if isinstance(rule, Unique):
        return Expect(name, "ExpectColumnValuesToBeUnique", {"column": rule.column, **common})
    if isinstance(rule, InSet):
        kwargs = {"column": rule.column, "value_set": list(rule.values), **common}
        return Expect(name, "ExpectColumnValuesToBeInSet", kwargs)
    if isinstance(rule, Length):
        kwargs = {"column": rule.column, "value": rule.value, **common}
        return Expect(name, "ExpectColumnValueLengthsToEqual", kwargs)
    if isinstance(rule, Between):
        kwargs = {"column": rule.column, "min_value": rule.min, "max_value": rule.max, **common}
        return Expect(name, "ExpectColumnValuesToBeBetween", kwargs)
    if isinstance(rule, Ordered):
        kwargs = {
            "column_A": rule.later,
            "column_B": rule.earlier,
            "or_equal": True,
            "ignore_row_if": "either_value_is_missing",
            **common,
        }
        return Expect(name, "ExpectColumnPairValuesAToBeGreaterThanB", kwargs)
    key = natural_key_column(CORE_TABLES[stream]).name
    condition = rule.unexpected.replace("{", "{{").replace("}", "}}")  # GX formats the query
    query = f"SELECT {key} FROM {{batch}} WHERE {condition}"
    return Expect(name, "UnexpectedRowsExpectation", {"unexpected_rows_query": query, **common})


def offending(
    rule: Rule, batch: Subquery, duplicates: Subquery | None
) -> tuple[ColumnElement, Any]:
    """(condition, reason) in SQL for the rows of ``batch`` that fail ``rule``; a ``unique``
    rule looks for repeats in ``duplicates`` (the batch again)."""
    if isinstance(rule, Sql):
        return text(f"({rule.unexpected})"), literal(rule.reason, String)
    if isinstance(rule, Ordered):
        a, b = batch.c[rule.earlier], batch.c[rule.later]
        reason = _txt(f"{rule.later} ", b, f" before {rule.earlier} ", a)
        return and_(a.is_not(None), b.is_not(None), b < a), reason
    col = batch.c[rule.column]
    if isinstance(rule, NotNull):
        return col.is_(None), literal(f"{rule.column} missing", String)
    if isinstance(rule, Unique):
        assert duplicates is not None
        dup = duplicates.c[rule.column]
        doubled = select(dup).where(dup.is_not(None)).group_by(dup).having(func.count() > 1)
        return col.in_(doubled), literal(f"{rule.column} not unique in the batch", String)
    if isinstance(rule, InSet):
        return (
            and_(col.is_not(None), col.not_in(list(rule.values))),
            _txt(f"{rule.column} ", col, " not in the allowed set"),
        )
    if isinstance(rule, Length):
        return (
            and_(col.is_not(None), func.length(col) != rule.value),
            _txt(f"{rule.column} has ", func.length(col), f" characters, not {rule.value}"),
        )
    assert isinstance(rule, Between)
    outside = []
    if rule.min is not None:
        outside.append(col < rule.min)
    if rule.max is not None:
        outside.append(col > rule.max)
    lo = "" if rule.min is None else f"{rule.min:g}"
    hi = "" if rule.max is None else f"{rule.max:g}"
    reason = _txt(f"{rule.column} ", col, f" not in {lo}..{hi}")
    return and_(col.is_not(None), or_(*outside)), reason


def unexpected_values(rule: Rule, batch: Subquery) -> list[ColumnElement]:
    """The values GX lists for a row failing the rule (a pair for ``ordered``; none for SQL)."""
    if isinstance(rule, Sql):
        return []
    if isinstance(rule, Ordered):
        return [batch.c[rule.later], batch.c[rule.earlier]]  # column_A, column_B
    return [batch.c[rule.column]]


def ignored_rows(rule: Rule, batch: Subquery) -> ColumnElement | None:
    """The rows a rule does not check (a null value), as GX counts them missing; None when
    it checks every row (``not_null`` and ``sql``)."""
    if isinstance(rule, NotNull | Sql):
        return None
    if isinstance(rule, Ordered):
        return or_(batch.c[rule.earlier].is_(None), batch.c[rule.later].is_(None))
    return batch.c[rule.column].is_(None)


def read_offenders(
    conn: Connection, stream: str, rule: Rule, batch_query: Batch
) -> tuple[list[Offender], list[Any]]:
    """Every row of the batch that fails the rule, ordered by natural key, and the first
    unexpected values (what GX lists in a result)."""
    batch = batch_query.subquery("batch")
    condition, reason = offending(rule, batch, batch_query.subquery("dup"))
    key = batch.c[natural_key_column(CORE_TABLES[stream]).name]
    values = unexpected_values(rule, batch)
    rows = conn.execute(
        select(key, reason, *values).select_from(batch).where(condition).order_by(key)
    ).all()
    offenders = [Offender(str(r[0]), r[1]) for r in rows]
    shown = rows[:PARTIAL_LIMIT]
    partial = [list(r[2:]) if len(values) > 1 else r[2] for r in shown] if values else []
    return offenders, partial


@dataclass(frozen=True)
class Finding:
    """One rule's verdict on a batch: GX's outcome and every offending row."""

    rule: Rule
    outcome: Outcome
    offenders: list[Offender]


def _key_is_unique(stream: str, rule: Rule) -> bool:
    """A ``unique`` rule on the table's own key: the batch holds each core row at most once
    (fresh rows are not set aside, held rows are), so the key cannot repeat in it."""
    return isinstance(rule, Unique) and rule.column == natural_key_column(CORE_TABLES[stream]).name


def evaluate_suite(
    conn: Connection, checks: ChecksConfig, stream: str, batch_query: Batch, validation: str
) -> tuple[int, list[Finding]]:
    """Every rule of the stream's suite over its batch in one aggregate pass, then the
    offending rows of the rules that fail (one query each). Returns (rows, findings).

    The pass counts, per rule, the rows that fail it and the rows it ignores, with the
    same SQL conditions the offenders are read with; a ``unique`` rule counts repeated
    values (``count - count distinct``) and its offenders give the exact number. An
    ``sql`` condition the warehouse cannot run is a config error naming the rule.
    """
    rules = checks.suites[stream]
    batch = batch_query.subquery("batch")
    columns: list[ColumnElement] = [func.count().label("rows")]
    for i, rule in enumerate(rules):
        if isinstance(rule, Unique):
            col = batch.c[rule.column]
            repeats = (
                literal(0)
                if _key_is_unique(stream, rule)
                else func.count(col) - func.count(distinct(col))
            )
            columns.append(repeats.label(f"u{i}"))
        else:
            condition, _ = offending(rule, batch, None)
            columns.append(func.sum(case((condition, 1), else_=0)).label(f"u{i}"))
        missing = ignored_rows(rule, batch)
        if missing is not None:
            columns.append(func.sum(case((missing, 1), else_=0)).label(f"m{i}"))
    try:
        counts = conn.execute(select(*columns).select_from(batch)).one()._mapping
    except DBAPIError:
        conn.rollback()
        _raise_for_sql(conn, checks, stream, batch)
        raise
    rows = int(counts["rows"])
    key = natural_key_column(CORE_TABLES[stream]).name
    findings = []
    for i, rule in enumerate(rules):
        expect = expectation_for(stream, rule)
        offenders: list[Offender] = []
        partial: list[Any] = []
        if counts[f"u{i}"]:
            offenders, partial = read_offenders(conn, stream, rule, batch_query)
        if isinstance(rule, Sql):
            keys = [{key: o.natural_key} for o in offenders]
            outcome = rows_outcome(expect, validation, count=len(offenders), rows=keys)
        else:
            missing = counts.get(f"m{i}")
            outcome = map_outcome(
                expect,
                validation,
                element_count=rows,
                unexpected_count=len(offenders),
                missing_count=None if missing is None else int(missing or 0),
                partial_unexpected=tuple(partial),
            )
        findings.append(Finding(rule, outcome, offenders))
    return rows, findings


def _raise_for_sql(conn: Connection, checks: ChecksConfig, stream: str, batch: Subquery) -> None:
    """Raise a ConfigError naming the first ``sql`` rule whose condition the warehouse
    cannot run (each tried alone); return if they all run."""
    for i, rule in enumerate(checks.suites[stream]):
        if not isinstance(rule, Sql):
            continue
        condition, _ = offending(rule, batch, None)
        try:
            conn.execute(select(literal(1)).select_from(batch).where(condition).limit(1)).all()
        except DBAPIError as exc:
            conn.rollback()
            first = str(exc.orig).strip().splitlines()[0]
            raise ConfigError(
                f"{checks.path}: suites.{stream}.{i}: {rule.name} cannot run: {first}"
            ) from None


# --- the run --------------------------------------------------------------------------------


def job_sync_runs(
    conn: Connection, job_id: str, *, agency_id: str = DEFAULT_AGENCY_ID
) -> list[str]:
    """An agency's sync runs of one nightly job (failed ones too: their loaded pages stay)."""
    return list(
        conn.execute(
            select(sync_run.c.sync_run_id).where(
                sync_run.c.agency_id == agency_id, sync_run.c.job_id == job_id
            )
        ).scalars()
    )


def run_quality_checks(
    engine: Engine,
    settings: Settings,
    *,
    job_id: str | None = None,
    sync_run_ids: Sequence[str] | None = None,
    as_of: date | None = None,
    checks: ChecksConfig | None = None,
    recorder: Recorder | None = None,
) -> QualityRun:
    """Run each stream's suite once over the rows of the given sync runs (or job).

    Stores every result with all offenders, sets aside the rows that fail a
    critical expectation, releases rows no longer failing one, and records the
    run with GX (Data Docs), here or, given a ``recorder``, in its process (its
    ``finish`` waits for it). Returns what it did.
    """
    started = time.perf_counter()
    checks = checks or load_checks_config(settings)
    agency_id = settings.agency_id
    with engine.begin() as conn:
        if sync_run_ids is None:
            if job_id is None:
                raise ValueError("give the job_id or the sync_run_ids to check")
            sync_run_ids = job_sync_runs(conn, job_id, agency_id=agency_id)
        run = QualityRun(
            start_check_run(conn, "data_quality", job_id=job_id, as_of=as_of, agency_id=agency_id)
        )
    found: dict[str, list[Finding]] = {}
    validations: list[Validation] = []
    fingerprints: dict[str, str] = {}
    with engine.connect() as conn:
        checked = dict(
            conn.execute(
                select(warehouse_meta.c.key, warehouse_meta.c.value).where(
                    warehouse_meta.c.key.in_(
                        [_fingerprint_key(s, agency_id) for s in checks.suites]
                    )
                )
            ).all()
        )
        for stream, rules in checks.suites.items():
            if not rules:
                continue
            fingerprints[stream] = suite_fingerprint(rules)
            run.streams[stream] = StreamQuality(stream)
            # Nothing new: rows held by a check were checked by this very suite and
            # cannot have changed (a change arrives as a fresh row), so nothing is run.
            # When the suite changed, they are checked again and released if they pass.
            # (No row of the stream carries the runs, by index: the usual quiet night,
            # where asking for fresh rows that count read the agency's key at 1M on SQLite.)
            if checked.get(_fingerprint_key(stream, agency_id)) == fingerprints[stream] and (
                not rows_carry_runs(conn, list(sync_run_ids), [CORE_TABLES[stream]])
                or not _any(conn, fresh_rows(stream, sync_run_ids, agency_id=agency_id))
            ):
                continue
            name = f"quality.{stream}"
            query = batch_rows(stream, sync_run_ids, agency_id=agency_id)
            rows, findings = evaluate_suite(conn, checks, stream, query, name)
            run.streams[stream].rows_checked = rows
            if rows:
                found[stream] = findings
                validations.append(
                    Validation(
                        name,
                        compile_sql(conn, query),
                        tuple(expectation_for(stream, r) for r in rules),
                        tuple(f.outcome for f in findings),
                    )
                )
    run.sql_seconds = time.perf_counter() - started
    began = time.perf_counter()
    run.data_docs = record_checkpoint(validations, checks, "quality", run.check_run_id, recorder)
    run.gx_seconds = time.perf_counter() - began
    with engine.begin() as conn:
        for stream, findings in found.items():
            _apply(conn, run.streams[stream], findings, as_of, agency_id)
            store_results(conn, run.check_run_id, run.streams[stream].results, agency_id=agency_id)
        _remember_suites(conn, {s: fingerprints[s] for s in found}, agency_id)
        run.seconds = time.perf_counter() - started
        finish_check_run(
            conn,
            run.check_run_id,
            checked=len(run.results),
            failed=len(run.failed),
            rows_checked=run.rows_checked,
            set_aside=run.set_aside,
            released=run.released,
            data_docs=None if run.data_docs is None else str(run.data_docs),
        )
    for r in run.failed:
        log.warning(
            "%s: %d of %d rows fail (%s)%s",
            r.expectation,
            r.offender_count,
            r.denominator,
            r.severity,
            f", {r.set_aside} set aside" if r.set_aside else "",
        )
    return run


def _remember_suites(conn: Connection, fingerprints: dict[str, str], agency_id: str) -> None:
    """Note which version of each suite last checked the agency's held rows of its stream."""
    if not fingerprints:
        return
    keys = [_fingerprint_key(s, agency_id) for s in fingerprints]
    conn.execute(warehouse_meta.delete().where(warehouse_meta.c.key.in_(keys)))
    conn.execute(
        warehouse_meta.insert(),
        [{"key": _fingerprint_key(s, agency_id), "value": fp} for s, fp in fingerprints.items()],
    )


def _apply(
    conn: Connection,
    sq: StreamQuality,
    findings: list[Finding],
    as_of: date | None,
    agency_id: str,
) -> None:
    """Turn findings into results with all offenders; set aside what fails a critical rule."""
    stream = sq.stream
    failing: dict[str, list[tuple[str, str | None]]] = {}
    for f in findings:
        name = check_name(stream, f.rule.name)
        total = sq.rows_checked
        passing = total - len(f.offenders)
        critical = f.rule.severity == "critical"
        if critical:
            for o in f.offenders:
                failing.setdefault(o.natural_key, []).append((name, o.reason))
        sq.results.append(
            CheckResult(
                suite=f"quality.{stream}",
                expectation=name,
                expectation_type=f.outcome.expectation_type,
                severity=f.rule.severity,
                status="passed" if not f.offenders else "failed",
                stream=stream,
                as_of=as_of,
                value=passing / total if total else None,
                numerator=passing,
                denominator=total,
                target=1.0,
                is_success=f.outcome.success,
                offender_count=len(f.offenders),
                set_aside=len(f.offenders) if critical else 0,
                offenders=f.offenders,
            )
        )
    sq.set_aside, sq.released = _set_aside(conn, stream, failing, agency_id)


def _insert(conn: Connection, table: Table) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _set_aside(
    conn: Connection,
    stream: str,
    failing: dict[str, list[tuple[str, str | None]]],
    agency_id: str,
) -> tuple[int, int]:
    """Set aside an agency's rows failing critical expectations; release its held rows
    that pass now. Returns (newly set aside, released).
    """
    t = CORE_TABLES[stream]
    key = natural_key_column(t)
    mine = t.c.agency_id == agency_id
    held_query = held_rows(stream, agency_id=agency_id).subquery()
    held = set(conn.execute(select(held_query.c[key.name])).scalars())
    state: dict[str, Any] = {}
    for part in _chunks(sorted(failing)):
        for row in conn.execute(
            select(key, t.c.record_hash, t.c.sync_run_id, t.c.is_set_aside).where(
                mine, key.in_(part)
            )
        ):
            state[row[0]] = row
    new = [k for k in sorted(failing) if k in state and not state[k].is_set_aside]
    if new:
        now = now_utc()
        reasons = {k: "; ".join(f"{c}: {r}" for c, r in failing[k]) for k in new}
        conn.execute(
            update(t)
            .where(mine, key == bindparam("k"), t.c.record_hash == bindparam("h"))
            .values(is_set_aside=True, set_aside_reason=bindparam("why")),
            [{"k": k, "h": state[k].record_hash, "why": reasons[k]} for k in new],
        )
        payloads: dict[str, str] = {}
        for part in _chunks(new):
            # key and hash: the landed versions' unique index (revision 0011); a hash
            # is of a payload holding its key, so these are exactly the hashes' rows
            payloads.update(
                conn.execute(
                    select(landed_record.c.record_hash, landed_record.c.payload).where(
                        landed_record.c.agency_id == agency_id,
                        landed_record.c.stream == stream,
                        landed_record.c.natural_key.in_(part),
                        landed_record.c.record_hash.in_([state[k].record_hash for k in part]),
                    )
                ).all()
            )
        stmt = _insert(conn, quarantined_record).on_conflict_do_nothing(
            index_elements=["agency_id", "stream", "record_hash"]
        )
        conn.execute(
            stmt,
            [
                {
                    "agency_id": agency_id,
                    "sync_run_id": state[k].sync_run_id,
                    "stream": stream,
                    "natural_key": k,
                    "check_name": failing[k][0][0],
                    "reason": reasons[k],
                    "record_hash": state[k].record_hash,
                    "payload": payloads.get(state[k].record_hash, "{}"),
                    "quarantined_at": now,
                }
                for k in new
            ],
        )
    release = sorted(held - set(failing))
    for part in _chunks(release):
        conn.execute(
            update(t).where(mine, key.in_(part)).values(is_set_aside=False, set_aside_reason=None)
        )
    return len(new), len(release)
