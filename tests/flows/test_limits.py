"""The nightly flow's task bounds, retries and concurrency limits come from schedule.yaml."""

from __future__ import annotations

import shutil

from prefect.states import Failed

from rulewatch.config.settings import PACKAGE_CONFIG_DIR, load_settings
from rulewatch.extract.engine import SourceAuthError, SourceError
from rulewatch.flows.limits import (
    WAREHOUSE_LIMIT,
    _worth_retrying,
    slots,
    source_limit,
    source_task,
    step_task,
    wanted_limits,
    warehouse_slots,
)
from rulewatch.flows.nightly import metrics_task, sync_source_task


def test_tasks_take_their_timeouts_and_retries_from_schedule_yaml(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, config)
    text = (config / "schedule.yaml").read_text(encoding="utf-8")
    text = text.replace("source_task_seconds: 7200", "source_task_seconds: 123")
    text = text.replace("step_task_seconds: 1800", "step_task_seconds: 45")
    text = text.replace("source_task: 1", "source_task: 3")
    (config / "schedule.yaml").write_text(text, encoding="utf-8")
    settings = load_settings({"RULEWATCH_CONFIG_DIR": str(config)})
    sync = source_task(sync_source_task, settings)
    assert (sync.timeout_seconds, sync.retries, sync.retry_delay_seconds) == (123, 3, 30)
    assert step_task(metrics_task, settings).timeout_seconds == 45


def test_a_refused_credential_is_not_retried():
    refused = Failed(message="x", data=SourceAuthError("permits: 401 Unauthorized from …"))
    unavailable = Failed(message="x", data=SourceError("permits: HTTP 503 from …"))
    assert not _worth_retrying(None, None, refused)
    assert _worth_retrying(None, None, unavailable)


def test_a_source_host_has_one_limit_whatever_the_agency():
    assert (
        source_limit("http://127.0.0.1:8701/agencies/transport")
        == source_limit("http://127.0.0.1:8701/agencies/health")
        == "rulewatch-source-127.0.0.1-8701"
    )
    assert (
        source_limit("https://permits.zj.example/amr") == "rulewatch-source-permits.zj.example-443"
    )
    assert source_limit("http://[::1]:9000/x") == "rulewatch-source---1-9000"


def test_the_limits_a_city_takes_come_from_schedule_yaml(tmp_path):
    from rulewatch.config.agencies import load_agencies
    from rulewatch.demo.agencies import demo_agencies, start_agency_sources

    config = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, config)
    text = (config / "schedule.yaml").read_text(encoding="utf-8")
    text = text.replace("agencies_per_source_host: 4", "agencies_per_source_host: 2")
    (config / "schedule.yaml").write_text(text, encoding="utf-8")
    with start_agency_sources(demo_agencies(3)) as sources:
        (config / "agencies.yaml").write_text(sources.agencies_yaml(), encoding="utf-8")
        env = {"RULEWATCH_CONFIG_DIR": str(config), **sources.env()}
        settings = load_settings(env)
        limits = wanted_limits(settings, load_agencies(settings))
        hosts = {source_limit(f"http://{sources.host}:{port}") for port in sources.ports.values()}
    assert limits == {WAREHOUSE_LIMIT: 1, **dict.fromkeys(hosts, 2)}  # SQLite: one writer
    on_postgres = load_settings({**env, "RULEWATCH_WAREHOUSE_URL": "postgresql+psycopg://x/y"})
    assert warehouse_slots(on_postgres) == 8


def test_runs_told_to_take_no_limits_never_ask_prefect():
    with slots(["rulewatch-no-such-limit"], enabled=False):
        pass  # no Prefect API is configured here: asking it would fail
