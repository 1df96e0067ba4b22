"""The deployments: schedule from config, one run at a time, module entrypoints, secrets."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from flows_support import child_env, rulewatch_cmd

from rulewatch.config.settings import PACKAGE_CONFIG_DIR, load_settings
from rulewatch.flows.deploy import (
    SECRET_BLOCKS,
    backfill_deployment,
    nightly_deployment,
)


@pytest.fixture
def settings(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, config)
    (config / "schedule.yaml").write_text('cron: "30 1 * * 1-5"\ntimezone: Europe/Berlin\n')
    return load_settings({"RULEWATCH_CONFIG_DIR": str(config)})


def test_the_nightly_deployment_follows_the_configured_schedule(settings):
    deployment = nightly_deployment(settings, "workers")
    [schedule] = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("30 1 * * 1-5", "Europe/Berlin")
    assert deployment.entrypoint == "rulewatch.flows.nightly.nightly_sync"
    assert deployment.concurrency_limit == 1
    assert deployment.concurrency_options.collision_strategy.value == "ENQUEUE"
    editable = deployment._parameter_openapi_schema.properties
    assert {"sources", "full_refresh", "as_of", "lock_wait_seconds"} <= set(editable)


def test_the_backfill_deployment_runs_on_demand_with_a_date_range():
    deployment = backfill_deployment("workers")
    assert deployment.schedules == []
    assert deployment.entrypoint == "rulewatch.flows.backfill.backfill"
    schema = deployment._parameter_openapi_schema
    assert {"start", "end"} <= set(schema.properties) and schema.required == ["start"]


def test_every_secret_has_a_block_name_and_no_plain_setting_does():
    assert SECRET_BLOCKS["RULEWATCH_PERMITS_TOKEN"] == "rulewatch-permits-token"
    assert SECRET_BLOCKS["RULEWATCH_WAREHOUSE_URL"] == "rulewatch-warehouse-url"
    assert not any(var.endswith("_URL") and "SOURCE" in var for var in SECRET_BLOCKS)
    assert "RULEWATCH_DOCREVIEW_USER" not in SECRET_BLOCKS


def test_deploy_without_a_prefect_server_is_a_usage_error(tmp_path):
    res = subprocess.run(
        rulewatch_cmd("deploy"),
        env=child_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert "PREFECT_API_URL is not set" in res.stderr
    assert "Traceback" not in res.stderr


def test_deploy_to_an_unreachable_server_fails_naming_it(tmp_path):
    env = child_env(
        tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api", PREFECT_CLIENT_MAX_RETRIES="0"
    )
    res = subprocess.run(
        rulewatch_cmd("deploy"), env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 1, res.stderr
    assert "Prefect API at http://127.0.0.1:9/api" in res.stderr
    assert "Traceback" not in res.stderr
