"""The time bounds and retries of the nightly flow's tasks, from ``schedule.yaml``.

Prefect sets a task's ``timeout_seconds`` and ``retries`` where the task is
declared; these copies carry the configured values instead, so an operator
tunes them without touching code (README, "Operations").
"""

from __future__ import annotations

from typing import Any

from prefect import Task

from rulewatch.config.settings import Settings


def _worth_retrying(_task: Any, _task_run: Any, state: Any) -> bool:
    """A failed source is retried unless its credentials were refused (a retry cannot help)."""
    from rulewatch.extract.engine import SourceAuthError

    try:
        outcome = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - no stored result: judge by the message
        outcome = None
    if isinstance(outcome, SourceAuthError):
        return False
    return "401 Unauthorized" not in (state.message or "")


def source_task(task: Task, settings: Settings) -> Task:
    """The per-source task with its configured timeout and retries."""
    limits, retries = settings.schedule.timeouts, settings.schedule.retries
    return task.with_options(
        timeout_seconds=limits.source_task_seconds,
        retries=retries.source_task,
        retry_delay_seconds=retries.source_task_delay_seconds,
        retry_condition_fn=_worth_retrying,
    )


def step_task(task: Task, settings: Settings) -> Task:
    """A later step (quality, metrics, checks, report tables, alerts) with its configured timeout."""
    return task.with_options(timeout_seconds=settings.schedule.timeouts.step_task_seconds)
