"""Data-quality suites on the rows of a sync: warnings report, critical failures set rows aside."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from checks_support import (
    AS_OF,
    BACKENDS,
    config_copy,
    insert,
    make_settings,
    row,
    warehouse,
)
from sqlalchemy import Engine, func, select

from rulewatch.checks.quality import QualityRun, run_quality_checks
from rulewatch.common.periods import Period
from rulewatch.config.settings import Settings
from rulewatch.metrics.compute import compute_metrics
from rulewatch.warehouse.schema import (
    check_offender,
    check_result,
    check_run,
    inspection,
    landed_record,
    permit_application,
    quarantined_record,
)

DECIDED_RULE = "permits.applications.decided_not_before_received"
CREDIT_RULE = "permits.applications.employer_credit_code_18_chars"
CRITICAL_DECIDED = {
    "    - name: decided_not_before_received\n      expect: ordered\n      earlier: received_on\n"
    "      later: decided_on\n      severity: warning\n": (
        "    - name: decided_not_before_received\n      expect: ordered\n      earlier: received_on\n"
        "      later: decided_on\n      severity: critical\n"
    )
}
GOOD_CODE = "91331000MA2AXXXX0X"


def _permit(key: str, run: str = "run-1", **values) -> dict:  # noqa: ANN003
    base = {
        "status": "approved",
        "permit_type": "new",
        "category": "A",
        "received_on": "2024-03-01",
        "decided_on": "2024-03-05",
        "promised_days": 10,
        "employer_credit_code": GOOD_CODE,
    }
    return row(permit_application, key, run, **{**base, **values})


def _seed(engine: Engine, agency_id: str = "default") -> None:
    """A1 fine; A2 decided before received; A3 a 17-character credit code; A0 from an older
    run. Another agency's rows have the same keys, hashes and runs; their payloads name it."""
    rows = [
        _permit("A1"),
        _permit("A2", received_on="2024-03-10", decided_on="2024-03-04"),
        _permit("A3", employer_credit_code=GOOD_CODE[:17]),
        _permit("A0", run="run-0", received_on="2024-03-10", decided_on="2024-03-04"),
    ]
    named = {} if agency_id == "default" else {"agency": agency_id}
    insert(engine, permit_application, [{**r, "agency_id": agency_id} for r in rows])
    insert(
        engine,
        landed_record,
        [
            {
                "agency_id": agency_id,
                "sync_run_id": r["sync_run_id"],
                "stream": "permits.applications",
                "natural_key": r["application_id"],
                "changed_at": r["changed_at"],
                "record_hash": r["record_hash"],
                "payload": json.dumps({"application_id": r["application_id"], **named}),
                "landed_at": datetime(2024, 5, 1),
            }
            for r in rows
        ],
    )


def _received(engine: Engine, settings: Settings) -> int:
    with engine.connect() as conn:
        metrics = compute_metrics(conn, Period.parse("2024"), AS_OF, settings.targets)
    return {m.metric: m for m in metrics}["permits.received"].value


def _decided_rule_warns(config: Path) -> None:
    """The operator makes the decided-after-received expectation a warning again."""
    path = config / "checks.yaml"
    path.write_text(
        path.read_text().replace(
            "later: decided_on\n      severity: critical",
            "later: decided_on\n      severity: warning",
        )
    )


def _failed(run: QualityRun) -> dict[str, tuple[str, list[str]]]:
    return {r.expectation: (r.severity, [o.natural_key for o in r.offenders]) for r in run.failed}


@pytest.mark.parametrize("backend", BACKENDS)
def test_beyond_contract_expectations_warn_and_rows_still_count(backend: str, tmp_path):  # noqa: ANN001
    with warehouse(backend, tmp_path) as (engine, settings):
        _seed(engine)
        run = run_quality_checks(engine, settings, sync_run_ids=["run-1"], as_of=AS_OF)
        assert run.streams["permits.applications"].rows_checked == 3  # A0 is another run's
        assert _failed(run) == {
            DECIDED_RULE: ("warning", ["A2"]),
            CREDIT_RULE: ("warning", ["A3"]),
        }
        assert run.set_aside == 0
        assert _received(engine, settings) == 4  # every row still counts
        with engine.connect() as conn:
            stored = conn.execute(
                select(check_result.c.expectation, check_result.c.status, check_offender.c.reason)
                .join(
                    check_offender,
                    check_offender.c.check_result_id == check_result.c.check_result_id,
                )
                .where(check_result.c.check_run_id == run.check_run_id)
                .order_by(check_result.c.expectation)
            ).all()
            results = conn.execute(
                select(func.count()).where(check_result.c.check_run_id == run.check_run_id)
            ).scalar_one()
            quarantined = conn.execute(select(func.count()).select_from(quarantined_record))
            assert quarantined.scalar_one() == 0
        assert stored == [
            (DECIDED_RULE, "failed", "decided_on 2024-03-04 before received_on 2024-03-10"),
            (CREDIT_RULE, "failed", "employer_credit_code has 17 characters, not 18"),
        ]
        assert results == 10  # every expectation of the suite is stored, passed or not
        assert run.data_docs is not None and run.data_docs.exists()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_critical_expectation_sets_failing_rows_aside(backend: str, tmp_path):  # noqa: ANN001
    config = config_copy(tmp_path, **CRITICAL_DECIDED)
    with warehouse(backend, tmp_path) as (engine, base):
        settings = make_settings(base.warehouse_url, tmp_path, config)
        _seed(engine)
        run = run_quality_checks(engine, settings, sync_run_ids=["run-1"], as_of=AS_OF)
        assert _failed(run)[DECIDED_RULE] == ("critical", ["A2"])
        assert run.set_aside == 1
        with engine.connect() as conn:
            q = conn.execute(select(quarantined_record)).one()
            core = conn.execute(
                select(
                    permit_application.c.application_id, permit_application.c.set_aside_reason
                ).where(permit_application.c.is_set_aside.is_(True))
            ).all()
            counts = conn.execute(
                select(check_run.c.set_aside, check_run.c.failed).where(
                    check_run.c.check_run_id == run.check_run_id
                )
            ).one()
        assert (q.natural_key, q.check_name, q.stream) == (
            "A2",
            DECIDED_RULE,
            "permits.applications",
        )
        assert q.reason == f"{DECIDED_RULE}: decided_on 2024-03-04 before received_on 2024-03-10"
        assert json.loads(q.payload) == {"application_id": "A2"} and q.sync_run_id == "run-1"
        assert core == [("A2", q.reason)]
        assert tuple(counts) == (1, 2)
        assert _received(engine, base) == 3  # A2 counts nowhere now; A0 was not checked

        # the operator makes it a warning again: the next sync releases A2
        _decided_rule_warns(config)
        settings = make_settings(base.warehouse_url, tmp_path, config)
        again = run_quality_checks(engine, settings, sync_run_ids=["run-2"], as_of=AS_OF)
        assert (again.released, again.set_aside) == (1, 0)
        assert _failed(again) == {DECIDED_RULE: ("warning", ["A2"])}  # still reported
        assert _received(engine, base) == 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_agency_sets_aside_and_releases_its_own_rows(backend: str, tmp_path):  # noqa: ANN001
    """Two agencies with identical keys, hashes and sync run ids (issue 16)."""
    config = config_copy(tmp_path, **CRITICAL_DECIDED)
    with warehouse(backend, tmp_path) as (engine, base):
        settings = make_settings(base.warehouse_url, tmp_path, config)
        other = replace(settings, agency_id="other")
        _seed(engine)
        _seed(engine, "other")

        def held() -> list[tuple]:
            with engine.connect() as conn:
                return sorted(
                    conn.execute(
                        select(
                            permit_application.c.agency_id, permit_application.c.application_id
                        ).where(permit_application.c.is_set_aside.is_(True))
                    ).all()
                )

        def quarantined() -> dict[str, dict]:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(quarantined_record.c.agency_id, quarantined_record.c.payload)
                ).all()
            return {agency: json.loads(payload) for agency, payload in rows}

        run = run_quality_checks(engine, other, sync_run_ids=["run-1"], as_of=AS_OF)
        assert run.streams["permits.applications"].rows_checked == 3  # its own three
        assert run.set_aside == 1
        assert held() == [("other", "A2")]
        assert quarantined() == {"other": {"application_id": "A2", "agency": "other"}}

        run = run_quality_checks(engine, settings, sync_run_ids=["run-1"], as_of=AS_OF)
        assert (run.rows_checked, run.set_aside) == (3, 1)
        assert held() == [("default", "A2"), ("other", "A2")]
        assert quarantined()["default"] == {"application_id": "A2"}  # its own payload

        # the rule becomes a warning: each agency's next run releases its own row only
        _decided_rule_warns(config)
        settings = make_settings(base.warehouse_url, tmp_path, config)
        other = replace(settings, agency_id="other")
        assert run_quality_checks(engine, other, sync_run_ids=["run-2"]).released == 1
        assert held() == [("default", "A2")]
        assert run_quality_checks(engine, settings, sync_run_ids=["run-2"]).released == 1
        assert held() == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_source_batch_loads_valid_rows_and_quarantines_the_rest(backend: str, tmp_path):  # noqa: ANN001
    """End to end: the demo's enforcement system, two bad inspections, one critical rule."""
    from rulewatch.demo.servers import start_demo_sources
    from rulewatch.warehouse.sync import sync_source

    published_rule = (
        "    - name: published_not_before_inspected\n      expect: ordered\n"
        "      earlier: inspected_on\n      later: published_on\n      severity: "
    )
    config = config_copy(tmp_path, **{published_rule + "warning": published_rule + "critical"})
    with start_demo_sources() as demo, warehouse(backend, tmp_path) as (engine, base):
        env = {**demo.env(), "RULEWATCH_WAREHOUSE_URL": base.warehouse_url}
        env.update(RULEWATCH_DATA_DIR=str(tmp_path), RULEWATCH_CONFIG_DIR=str(config))
        from rulewatch.config.settings import load_settings

        settings = load_settings({**env, "RULEWATCH_PII_KEY": "k"})
        first = sync_source(engine, settings, "enforcement")
        initial = run_quality_checks(engine, settings, sync_run_ids=[first.sync_run_id])
        assert initial.failed == [] and initial.rows_checked == first.records_loaded
        with engine.connect() as conn:
            published = conn.execute(
                select(inspection.c.inspection_no, inspection.c.inspected_on)
                .where(inspection.c.published_on.is_not(None))
                .order_by(inspection.c.inspection_no)
                .limit(2)
            ).all()
            total = conn.execute(select(func.count()).select_from(inspection)).scalar_one()
        (bad_date, day), (bad_code, _) = published
        demo.mutate("enforcement", bad_date, published_on=f"{day.year - 1}-01-04")
        demo.mutate("enforcement", bad_code, target_credit_code="123")
        second = sync_source(engine, settings, "enforcement")
        run = run_quality_checks(engine, settings, sync_run_ids=[second.sync_run_id], as_of=AS_OF)
        failed = _failed(run)
        assert failed["enforcement.inspections.published_not_before_inspected"] == (
            "critical",
            [bad_date],
        )
        assert failed["enforcement.inspections.target_credit_code_18_chars"] == (
            "warning",
            [bad_code],
        )
        assert run.set_aside == 1
        with engine.connect() as conn:
            aside = conn.execute(
                select(quarantined_record.c.natural_key, quarantined_record.c.check_name)
            ).all()
            counting = conn.execute(
                select(func.count()).where(inspection.c.is_set_aside.is_(False))
            ).scalar_one()
        assert aside == [(bad_date, "enforcement.inspections.published_not_before_inspected")]
        assert counting == total - 1  # the valid rows loaded, the bad one set aside


def test_nothing_to_check_is_quick_and_stored(tmp_path):  # noqa: ANN001
    with warehouse("sqlite", tmp_path) as (engine, settings):
        run = run_quality_checks(engine, settings, sync_run_ids=["nothing"], as_of=AS_OF)
        assert run.rows_checked == 0 and run.results == []
        with engine.connect() as conn:
            assert conn.execute(select(check_run.c.kind)).scalar_one() == "data_quality"


def test_an_sql_condition_the_warehouse_cannot_run_names_the_key(tmp_path):  # noqa: ANN001
    from rulewatch.config.settings import ConfigError
    from rulewatch.warehouse.schema import document

    config = config_copy(
        tmp_path,
        **{
            'unexpected: "is_filed = true AND filed_on IS NULL"': 'unexpected: "no_such_column = 1"'
        },
    )
    with warehouse("sqlite", tmp_path) as (engine, base):
        settings = make_settings(base.warehouse_url, tmp_path, config)
        insert(engine, document, [row(document, "D1", doc_type="other", status="in_force")])
        with pytest.raises(
            ConfigError, match=r"checks.yaml: suites.docreview.documents.7: filing_has_date"
        ):
            run_quality_checks(engine, settings, sync_run_ids=["run-1"])


def test_a_sync_that_wrote_nothing_skips_gx_unless_the_suite_changed(tmp_path, monkeypatch):  # noqa: ANN001
    """Held rows were checked by this very suite: with nothing fresh, GX is not run."""
    import rulewatch.checks.gx_runner as gx_runner

    config = config_copy(tmp_path, **CRITICAL_DECIDED)
    with warehouse("sqlite", tmp_path) as (engine, base):
        settings = make_settings(base.warehouse_url, tmp_path, config)
        _seed(engine)
        first = run_quality_checks(engine, settings, sync_run_ids=["run-1"], as_of=AS_OF)
        assert first.set_aside == 1  # A2 is held
        validated: list[list[str]] = []
        real = gx_runner.record_validations

        def spy(validations, **kw):  # noqa: ANN001, ANN003, ANN202
            validated.append([v.name for v in validations])
            return real(validations, **kw)

        monkeypatch.setattr(gx_runner, "record_validations", spy)
        idle = run_quality_checks(engine, settings, sync_run_ids=["run-2"], as_of=AS_OF)
        assert validated == [[]] and idle.rows_checked == 0 and idle.released == 0
        # the suite changes: the held row is checked again (and released)
        _decided_rule_warns(config)
        settings = make_settings(base.warehouse_url, tmp_path, config)
        again = run_quality_checks(engine, settings, sync_run_ids=["run-2"], as_of=AS_OF)
        assert validated[-1] == ["quality.permits.applications"] and again.released == 1
