"""The nightly flow's task bounds and retries come from schedule.yaml."""

from __future__ import annotations

import shutil

from prefect.states import Failed

from rulewatch.config.settings import PACKAGE_CONFIG_DIR, load_settings
from rulewatch.extract.engine import SourceAuthError, SourceError
from rulewatch.flows.limits import _worth_retrying, source_task, step_task
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
