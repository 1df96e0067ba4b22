"""Checks and alerts per agency: two agencies with the same data in one warehouse.

Each agency's targets are checked on its own rows against its own thresholds, and
its alerts go to its own channel (a real webhook each): an override that makes only
one agency slip alerts only that agency; a target slipping in both is two alerts,
one per channel, each naming its agency.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from agencies_support import city_config, city_settings, hand_to, scoped
from checks_support import AS_OF, BACKENDS, EXPECTED_2024, row, seed_targets, warehouse
from receivers import Webhook
from sqlalchemy import func, select

from rulewatch.alerts.announce import run_alerting
from rulewatch.checks.config import load_checks_config
from rulewatch.checks.quality import run_quality_checks
from rulewatch.checks.results import latest_target_statuses
from rulewatch.checks.targets import check_history, run_target_checks
from rulewatch.common.periods import Period
from rulewatch.warehouse.schema import alert, alert_delivery, check_result, document

A, B = "science-tech", "market-regulation"
CITY = "json://127.0.0.1:9/city"  # nothing listens: these tests send nothing
ON_TIME, FILING = "permits.on_time_rate", "docreview.filing_rate"
# permits.on_time_rate is 1 / 3 in the seed data: met at 0.3, B's 0.9 slips it
TARGETS = (
    "targets:\n"
    f"  {ON_TIME}: {{target: 0.3, severity: critical}}\n"
    f"  {FILING}: {{target: 1.0, severity: critical}}\n"
)


@pytest.fixture
def hooks():
    made = {A: Webhook(), B: Webhook(), "city": Webhook()}
    yield made
    for hook in made.values():
        hook.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_agency_is_checked_on_its_rows_and_alerted_on_its_channel(
    backend: str, tmp_path: Path, hooks: dict[str, Webhook]
) -> None:
    config = city_config(
        tmp_path,
        {A: hooks[A].url, B: hooks[B].url},
        hooks["city"].url,
        overrides={B: f"{{{ON_TIME}: {{target: 0.9}}}}"},
        targets=TARGETS,
    )
    with warehouse(backend, tmp_path) as (engine, base):
        for agency_id in (A, B):  # the same records for both
            seed_targets(engine)
            hand_to(engine, agency_id)
        settings, agencies = city_settings(base.warehouse_url, tmp_path, config)
        runs = {}
        for agency_id in (A, B):
            own = scoped(settings, agencies, agency_id)
            runs[agency_id] = run_target_checks(engine, own, [Period.parse("2024")], AS_OF)
            for _ in range(2):  # once per change, however many runs
                run_alerting(engine, own, AS_OF, check_run_id=runs[agency_id].check_run_id)

        # each agency counts its own rows (not both agencies' twice), with its threshold
        for agency_id in (A, B):
            checks = {c.metric: c for c in runs[agency_id].checks}
            assert {o.natural_key for o in checks[FILING].offenders} == EXPECTED_2024[FILING]
            assert (checks[ON_TIME].numerator, checks[ON_TIME].denominator) == (1, 3)
            assert checks[FILING].status == "slipped"
        assert {c.metric: c.status for c in runs[A].checks}[ON_TIME] == "met"
        assert {c.metric: c.target for c in runs[B].checks}[ON_TIME] == 0.9
        assert {c.metric: c.status for c in runs[B].checks}[ON_TIME] == "slipped"
        with engine.connect() as conn:
            stored = {
                a: {c.metric: c.status for c in latest_target_statuses(conn, agency_id=a)}
                for a in (A, B, "default")
            }
            by_agency = dict(
                conn.execute(
                    select(check_result.c.agency_id, func.count()).group_by(
                        check_result.c.agency_id
                    )
                ).all()
            )
            alerts = conn.execute(
                select(alert.c.agency_id, alert.c.dedupe_key).where(
                    alert.c.metric == FILING, alert.c.kind == "slipped"
                )
            ).all()
            deliveries = dict(
                conn.execute(
                    select(alert_delivery.c.agency_id, func.count()).group_by(
                        alert_delivery.c.agency_id
                    )
                ).all()
            )
        assert stored[A][ON_TIME] == "met" and stored[B][ON_TIME] == "slipped"
        assert stored["default"] == {}
        assert by_agency == {A: 2, B: 2}
        # the same target slipping in both: two alerts, each keyed by its agency
        assert sorted(a for a, _ in alerts) == [B, A]
        assert all(key.startswith(f"{a}:slipped:{FILING}:2024:") for a, key in alerts)
        assert set(deliveries) == {A, B}

    def titles(agency_id: str, metric: str) -> list[str]:
        return hooks[agency_id].titles(f"{metric} 2024")

    assert titles(A, FILING) == [
        f"[rulewatch] [Taizhou Science and Technology Bureau] {FILING} 2024: SLIPPED"
    ]
    assert titles(B, FILING) == [
        f"[rulewatch] [Taizhou Market Regulation Bureau] {FILING} 2024: SLIPPED"
    ]
    # only B overrode the threshold: only B's channel hears of the slip
    assert titles(A, ON_TIME) == []
    assert titles(B, ON_TIME) == [
        f"[rulewatch] [Taizhou Market Regulation Bureau] {ON_TIME} 2024: SLIPPED"
    ]
    (body,) = [m["message"] for m in hooks[B].received if ON_TIME in m["title"]]
    assert body.splitlines()[0] == "agency: Taizhou Market Regulation Bureau (market-regulation)"
    assert "33% (1 / 3)" in body and "target: 90%" in body
    assert hooks["city"].received == []  # the supervisor hears only the digest


@pytest.mark.parametrize("backend", BACKENDS)
def test_history_checks_and_files_are_the_agencys(backend: str, tmp_path: Path) -> None:
    config = city_config(tmp_path, {A: "json://127.0.0.1:9/a", B: "json://127.0.0.1:9/b"}, CITY)
    with warehouse(backend, tmp_path) as (engine, base):
        seed_targets(engine)
        hand_to(engine, A)  # B has no records at all
        settings, agencies = city_settings(base.warehouse_url, tmp_path, config)
        own_a, own_b = (scoped(settings, agencies, a) for a in (A, B))
        (bulk_a,) = check_history(engine, own_a, Period.parse("2024"), [AS_OF])
        (bulk_b,) = check_history(engine, own_b, Period.parse("2024"), [AS_OF])
        checked = run_target_checks(engine, own_b, [Period.parse("2024")], AS_OF)
    filing_a = {c.metric: c for c in bulk_a.checks}[FILING]
    assert {o.natural_key for o in filing_a.offenders} == EXPECTED_2024[FILING]
    assert {c.status for c in bulk_b.checks} == {"no_data"}
    assert {c.status for c in checked.checks} == {"no_data"}
    # Data Docs and the checks page in the agency's own folder
    folder = tmp_path / "agencies" / B / "data_docs"
    assert checked.checks_page == folder / "checks.html" and checked.checks_page.exists()
    assert checked.data_docs == folder / "index.html"
    assert load_checks_config(own_b).data_docs_dir == folder


def test_quality_sets_aside_and_releases_only_the_agencys_rows(tmp_path: Path) -> None:
    """The same document key in two agencies: a critical rule sets aside A's copy only,
    and B's run (its copy passes) releases nothing of A's."""
    config = city_config(tmp_path, {A: "json://127.0.0.1:9/a", B: "json://127.0.0.1:9/b"}, CITY)
    doc = {"status": "in_force", "issued_on": "2024-03-01"}
    with warehouse("sqlite", tmp_path) as (engine, base):
        settings, agencies = city_settings(base.warehouse_url, tmp_path, config)
        for agency_id, doc_type in ((A, "not-a-type"), (B, "normative_document")):
            with engine.begin() as conn:
                conn.execute(document.insert(), [row(document, "DOC-1", doc_type=doc_type, **doc)])
            hand_to(engine, agency_id)
        own_a, own_b = (scoped(settings, agencies, a) for a in (A, B))
        assert run_quality_checks(engine, own_a, sync_run_ids=["run-1"], as_of=AS_OF).set_aside
        assert run_quality_checks(engine, own_b, sync_run_ids=["run-1"], as_of=AS_OF).set_aside == 0
        with engine.connect() as conn:
            aside = dict(conn.execute(select(document.c.agency_id, document.c.is_set_aside)).all())
        assert aside == {A: True, B: False}


def test_check_command_prints_each_agencys_scorecard_under_its_name(tmp_path: Path) -> None:
    from cli_support import clean_env, run_rulewatch

    config = city_config(
        tmp_path,
        {A: "json://127.0.0.1:9/a", B: "json://127.0.0.1:9/b"},
        CITY,
        overrides={B: f"{{{ON_TIME}: {{target: 0.9}}}}"},
        targets=TARGETS.replace("target: 1.0", "target: 0.1"),  # filing met: only B slips
    )
    with warehouse("sqlite", tmp_path) as (engine, base):
        for agency_id in (A, B):
            seed_targets(engine)
            hand_to(engine, agency_id)
        url = base.warehouse_url
    env = clean_env(
        RULEWATCH_WAREHOUSE_URL=url,
        RULEWATCH_DATA_DIR=str(tmp_path),
        RULEWATCH_CONFIG_DIR=str(config),
    )
    when = ("--period", "2024", "--as-of", AS_OF.isoformat())
    res = run_rulewatch(env, "check", *when, "--fail-on-slip")
    assert res.returncode == 3, res.stderr
    out = res.stdout
    head_a = "agency science-tech: Taizhou Science and Technology Bureau"
    head_b = "agency market-regulation: Taizhou Market Regulation Bureau"
    assert out.index(head_a) < out.index(head_b)
    part_a, part_b = out[out.index(head_a) : out.index(head_b)], out[out.index(head_b) :]
    assert "no target slipped" in part_a and f"slipped: {ON_TIME} 2024" in part_b
    assert f"checks page: {tmp_path / 'agencies' / B / 'data_docs' / 'checks.html'}" in part_b

    one = run_rulewatch(env, "check", *when, "--agency", A, "--fail-on-slip")
    assert one.returncode == 0, one.stderr
    assert head_a in one.stdout and head_b not in one.stdout

    bad = run_rulewatch(env, "check", *when, "--agency", "nowhere")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "rulewatch: error: --agency 'nowhere': no such agency; known: science-tech, "
        "market-regulation"
    )
