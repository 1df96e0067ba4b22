"""Target checks equal `rulewatch kpis` exactly and carry every offender, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from checks_support import (
    AS_OF,
    BACKENDS,
    EXPECTED_2024,
    config_copy,
    document,
    insert,
    make_settings,
    row,
    seed_targets,
    warehouse,
)
from sqlalchemy import Engine, select

from rulewatch.checks.results import TargetCheck, latest_target_statuses
from rulewatch.checks.targets import TargetRun, nightly_periods, run_target_checks
from rulewatch.common.metric_ids import RATE_METRICS
from rulewatch.common.periods import Period
from rulewatch.config.settings import ConfigError, Settings, TargetOptions
from rulewatch.metrics.compute import compute_metrics, rate_population

Seeded = tuple[Engine, Settings]


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(request, tmp_path_factory) -> Iterator[Seeded]:  # noqa: ANN001 - pytest
    """One warehouse per backend with the hand-built records of ``seed_targets``."""
    folder = tmp_path_factory.mktemp(f"targets-{request.param}")
    with warehouse(request.param, folder) as (engine, settings):
        seed_targets(engine)
        yield engine, settings


@pytest.fixture(scope="module")
def run_2024(seeded: Seeded) -> TargetRun:
    engine, settings = seeded
    return run_target_checks(engine, settings, [Period.parse("2024")], AS_OF)


def _kpis(engine: Engine, settings: Settings, period: str) -> dict:
    with engine.connect() as conn:
        metrics = compute_metrics(conn, Period.parse(period), AS_OF, settings.targets)
    return {m.metric: m for m in metrics}


def _figures(c: TargetCheck) -> tuple:
    return c.value, c.numerator, c.denominator, c.target, c.status


def test_every_target_is_checked_and_equals_kpis(seeded: Seeded, run_2024: TargetRun):
    engine, settings = seeded
    kpis = _kpis(engine, settings, "2024")
    assert sorted(c.metric for c in run_2024.checks) == sorted(RATE_METRICS)
    for c in run_2024.checks:
        m = kpis[c.metric]
        assert _figures(c) == (m.value, m.numerator, m.denominator, m.target, m.status), c.metric
        assert c.status == "slipped" and c.offender_count == m.denominator - m.numerator


@pytest.mark.parametrize("metric", sorted(EXPECTED_2024))
def test_offenders_are_exactly_the_known_records(run_2024: TargetRun, metric: str):
    check = {c.metric: c for c in run_2024.checks}[metric]
    assert {o.natural_key for o in check.offenders} == EXPECTED_2024[metric]
    assert all(o.reason for o in check.offenders)


def test_reasons_say_why(run_2024: TargetRun):
    checks = {c.metric: dict(c.offenders) for c in run_2024.checks}
    assert checks["docreview.filing_rate"]["D2"] == "not filed; deadline 2024-04-04 passed"
    assert checks["permits.on_time_rate"]["P3"] == "no promised days"
    assert "after issue" in checks["docreview.legality_review_rate"]["D6"]


def test_results_are_stored_and_read_back(seeded: Seeded, run_2024: TargetRun):
    engine, _ = seeded
    with engine.connect() as conn:
        stored = {c.metric: c for c in latest_target_statuses(conn, "2024")}
    for c in run_2024.checks:
        s = stored[c.metric]
        assert _figures(s) == _figures(c)
        assert s.offenders == c.offenders and s.check_run_id == run_2024.check_run_id
        assert s.slipped_since is not None


def test_other_periods_equal_kpis_and_their_populations(seeded: Seeded):
    engine, settings = seeded
    labels = ["2024-Q1", "2024-03", "2024-Q2", "2023"]
    run = run_target_checks(engine, settings, [Period.parse(p) for p in labels], AS_OF)
    assert len(run.checks) == len(labels) * len(RATE_METRICS)
    for label in labels:
        kpis = _kpis(engine, settings, label)
        for c in (c for c in run.checks if c.period == label):
            m = kpis[c.metric]
            assert _figures(c) == (m.value, m.numerator, m.denominator, m.target, m.status)
            population = rate_population(c.metric, Period.parse(label), AS_OF).subquery()
            with engine.connect() as conn:
                failing = conn.execute(
                    select(population.c.natural_key).where(population.c.passes.is_(False))
                ).scalars()
                assert {o.natural_key for o in c.offenders} == set(failing)
    statuses = {(c.metric, c.period): c.status for c in run.checks}
    assert statuses[("docreview.filing_rate", "2023")] == "no_data"
    assert statuses[("docreview.filing_rate", "2024-Q2")] == "no_data"  # D3 not due yet


def test_a_target_met_exactly_at_its_threshold(seeded: Seeded):
    engine, settings = seeded
    targets = {
        "enforcement.credit_rule_rate": TargetOptions(target=0.8),  # 4 / 5 = 0.8: met
        "docreview.filing_rate": TargetOptions(target=0.5, severity="warning"),  # 2 / 4: met
        "permits.on_time_rate": TargetOptions(target=0.34),  # 1 / 3 < 0.34: slipped
    }
    settings = dataclasses.replace(settings, targets=targets)
    run = run_target_checks(engine, settings, [Period.parse("2024")], AS_OF)
    checks = {c.metric: c for c in run.checks}
    assert set(checks) == set(targets)
    assert checks["enforcement.credit_rule_rate"].status == "met"
    assert checks["docreview.filing_rate"].status == "met"
    assert checks["docreview.filing_rate"].offender_count == 2  # met, offenders still listed
    assert checks["permits.on_time_rate"].status == "slipped"
    assert [c.metric for c in run.critical_slipped] == ["permits.on_time_rate"]
    kpis = _kpis(engine, settings, "2024")
    for metric, c in checks.items():
        assert c.status == kpis[metric].status


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_offender_beyond_the_gx_sample(backend: str, tmp_path):  # noqa: ANN001
    """GX returns at most 200 unexpected rows; the check still lists all of them."""
    with warehouse(backend, tmp_path) as (engine, settings):
        docs = [
            row(document, f"N{i:04d}", doc_type="normative_document", status="in_force",
                issued_on="2024-01-05", has_filing=True, is_filed=i < 10,
                filed_on="2024-01-20" if i < 10 else None, filing_deadline_on="2024-02-04")
            for i in range(260)
        ]  # fmt: skip
        insert(engine, document, docs)
        settings = dataclasses.replace(
            settings, targets={"docreview.filing_rate": TargetOptions(target=1.0)}
        )
        run = run_target_checks(engine, settings, [Period.parse("2024")], AS_OF)
        (check,) = run.checks
        assert (check.numerator, check.denominator, check.offender_count) == (10, 260, 250)
        assert [o.natural_key for o in check.offenders] == [f"N{i:04d}" for i in range(10, 260)]
        with engine.connect() as conn:
            (stored,) = latest_target_statuses(conn)
        assert len(stored.offenders) == 250


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_custom_rate_is_a_yaml_edit(backend: str, tmp_path):  # noqa: ANN001
    custom = (
        "custom_rates:\n"
        "  enforcement.joint_inspection_rate:\n"
        "    stream: enforcement.inspections\n"
        "    date_column: inspected_on\n"
        "    population: \"task_type = 'double_random'\"\n"
        "    passes: \"outcome = 'compliant'\"\n"
        "    reason: 'not compliant: see the file'\n"
        "    target: 0.5\n"
    )
    config = config_copy(tmp_path, **{"custom_rates: {}\n": custom})
    with warehouse(backend, tmp_path) as (engine, settings):
        seed_targets(engine)
        settings = make_settings(settings.warehouse_url, tmp_path, config)
        run = run_target_checks(engine, settings, [Period.parse("2024")], AS_OF)
        check = {c.metric: c for c in run.checks}["enforcement.joint_inspection_rate"]
        # double-random inspections in 2024: I1 I2 I3 I4 I6; compliant: I1 I4 I6
        assert (check.numerator, check.denominator, check.status) == (3, 5, "met")
        assert [tuple(o) for o in check.offenders] == [
            ("I2", "not compliant: see the file"),
            ("I3", "not compliant: see the file"),
        ]
        assert check.severity == "warning"


def test_a_custom_rate_with_bad_sql_names_the_key(tmp_path):  # noqa: ANN001
    custom = (
        "custom_rates:\n"
        "  docreview.odd_rate:\n"
        "    stream: docreview.documents\n"
        "    date_column: issued_on\n"
        "    population: 'no_such_column = 1'\n"
        "    passes: 'is_filed = true'\n"
        "    target: 1\n"
    )
    config = config_copy(tmp_path, **{"custom_rates: {}\n": custom})
    with warehouse("sqlite", tmp_path) as (engine, settings):
        settings = make_settings(settings.warehouse_url, tmp_path, config)
        with pytest.raises(ConfigError, match=r"checks.yaml: custom_rates.docreview.odd_rate: SQL"):
            run_target_checks(engine, settings, [Period.parse("2024")], AS_OF)


def test_nightly_periods_contain_the_as_of_date():
    labels = [p.label for p in nightly_periods(AS_OF, ["year", "quarter", "month"])]
    assert labels == ["2024", "2024-Q2", "2024-05"]


def test_a_job_that_changed_nothing_carries_the_last_figures_without_gx(tmp_path, monkeypatch):  # noqa: ANN001
    """Same as-of date, nothing written by the job, same figures: GX is not run again."""
    from datetime import datetime

    import rulewatch.checks.targets as targets
    from rulewatch.warehouse.schema import permit_application, sync_run

    with warehouse("sqlite", tmp_path) as (engine, settings):
        seed_targets(engine)
        periods = [Period.parse("2024")]
        first = run_target_checks(engine, settings, periods, AS_OF, job_id="job-1")
        validated: list[int] = []
        real = targets.run_validations

        def spy(url, validations, **kw):  # noqa: ANN001, ANN003, ANN202
            validated.append(len(validations))
            return real(url, validations, **kw)

        monkeypatch.setattr(targets, "run_validations", spy)
        idle = run_target_checks(engine, settings, periods, AS_OF, job_id="job-2")
        assert validated == [0]
        assert [(_figures(c), c.offenders) for c in idle.checks] == [
            (_figures(c), c.offenders) for c in first.checks
        ]
        # a job that wrote a row: GX checks everything again
        run = {"job_id": "job-3", "source": "permits", "is_full_refresh": False}
        insert(
            engine,
            sync_run,
            [{"sync_run_id": "run-3", **run, "started_at": datetime(2024, 5, 2), "status": "x"}],
        )
        insert(engine, permit_application, [row(permit_application, "P9", "run-3")])
        run_target_checks(engine, settings, periods, AS_OF, job_id="job-3")
        assert validated[-1] > 0
