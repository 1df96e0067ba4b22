"""One truth for a target's status: the stored check, read by every consumer.

A custom rate of ``checks.yaml``, checked per quarter on hand-built records,
slips; `check`, ``report_target_status``, the HTML report, the Prefect table
artifact and the alert all show the same stored check result.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from checks_support import AS_OF, config_copy, insert, make_settings, row, warehouse
from receivers import Webhook
from sqlalchemy import select

from rulewatch.alerts.announce import run_alerting
from rulewatch.checks.config import load_checks_config
from rulewatch.checks.display import table_rows
from rulewatch.checks.targets import nightly_periods, run_target_checks
from rulewatch.common.periods import Period
from rulewatch.report.tables import refresh_report_tables
from rulewatch.report.write import write_report
from rulewatch.warehouse.schema import alert, check_result, inspection, report_target_status

RATE = "enforcement.compliant_share"
CUSTOM = (
    "custom_rates:\n"
    f"  {RATE}:\n"
    "    stream: enforcement.inspections\n"
    "    date_column: inspected_on\n"
    "    population: \"task_type = 'double_random'\"\n"
    "    passes: \"outcome = 'compliant'\"\n"
    "    reason: 'not compliant'\n"
    "    target: 0.9\n"
    "    severity: critical\n"
)


def _inspections() -> list[dict]:
    common = {"task_type": "double_random", "is_published": False}
    return [
        row(inspection, "Q1-A", inspected_on="2024-02-01", outcome="violation", **common),
        row(inspection, "Q2-A", inspected_on="2024-04-10", outcome="compliant", **common),
        row(inspection, "Q2-C", inspected_on="2024-05-10", outcome="violation", **common),
        row(inspection, "Q2-B", inspected_on="2024-05-02", outcome="compliant", **common),
    ]


def test_a_custom_rate_slipping_in_a_quarter_is_one_status_everywhere(tmp_path: Path) -> None:
    config = config_copy(
        tmp_path,
        **{"custom_rates: {}\n": CUSTOM, "target_periods: [year]": "target_periods: [quarter]"},
    )
    hook = Webhook()
    try:
        with warehouse("sqlite", tmp_path) as (engine, base):
            insert(engine, inspection, _inspections())
            settings = replace(
                make_settings(base.warehouse_url, tmp_path, config), alert_urls=(hook.url,)
            )
            checks = load_checks_config(settings)
            periods = nightly_periods(AS_OF, checks.target_periods)
            assert [p.label for p in periods] == ["2024-Q2"]
            run = run_target_checks(engine, settings, periods, AS_OF, checks=checks)
            (check,) = [c for c in run.checks if c.metric == RATE]
            assert (check.numerator, check.denominator, check.status) == (2, 3, "slipped")
            assert check.severity == "critical" and check.check_result_id is not None

            # the alert: once however many runs, with severity and the check it came from
            for _ in range(2):
                run_alerting(engine, settings, AS_OF, check_run_id=run.check_run_id)
            sent = [m for m in hook.received if RATE in m["title"]]
            assert [m["title"] for m in sent] == [f"[rulewatch] {RATE} 2024-Q2: 未达标"]
            assert "- Q2-C: not compliant" in sent[0]["message"]
            assert "严重 (critical)" in sent[0]["message"]
            with engine.connect() as conn:
                (raised,) = conn.execute(select(alert).where(alert.c.metric == RATE)).all()
                stored = conn.execute(
                    select(check_result).where(
                        check_result.c.check_result_id == raised.check_result_id
                    )
                ).one()
            assert (raised.kind, raised.period, raised.severity) == (
                "slipped",
                "2024-Q2",
                "critical",
            )
            assert raised.check_result_id == check.check_result_id
            facts = (check.value, check.numerator, check.denominator, check.status, "critical")
            assert (
                stored.value,
                stored.numerator,
                stored.denominator,
                stored.status,
                stored.severity,
            ) == facts

            # the report table
            refresh_report_tables(engine, settings, AS_OF, periods=[Period.parse("2024-Q2")])
            with engine.connect() as conn:
                (reported,) = conn.execute(
                    select(report_target_status).where(report_target_status.c.metric == RATE)
                ).all()
            assert (
                reported.value,
                reported.numerator,
                reported.denominator,
                reported.status,
                reported.severity,
            ) == facts
            assert reported.check_result_id == check.check_result_id
            assert reported.slipped_since == AS_OF

            # the Prefect table artifact's rows
            (artifact,) = [r for r in table_rows(run) if r["metric"] == RATE]
            assert (
                artifact["value"],
                artifact["numerator"],
                artifact["denominator"],
                artifact["status"],
                artifact["severity"],
            ) == facts

            # the HTML report
            files = write_report(engine, settings, Period.parse("2024-Q2"), AS_OF, tmp_path / "r")
            html = files.html.read_text(encoding="utf-8")
            assert f'data-metric="{RATE}" data-status="slipped"' in html

            # `rulewatch check`, from outside
            env = {k: v for k, v in os.environ.items() if not k.startswith("RULEWATCH_")}
            env.update(
                RULEWATCH_WAREHOUSE_URL=base.warehouse_url,
                RULEWATCH_DATA_DIR=str(tmp_path),
                RULEWATCH_CONFIG_DIR=str(config),
            )
            res = subprocess.run(
                [sys.executable, "-m", "rulewatch.cli.main", "check", "--period", "2024-Q2"]
                + ["--as-of", AS_OF.isoformat()],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert res.returncode == 0, res.stderr
            out = " ".join(res.stdout.split())
            assert f"slipped: {RATE} 2024-Q2" in out and "(2 / 3)" in out, out
            assert "(critical)" in out
            engine.dispose()
    finally:
        hook.close()
