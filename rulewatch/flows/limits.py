"""The time bounds, retries and concurrency limits of the nightly flows, from ``schedule.yaml``.

Prefect sets a task's ``timeout_seconds`` and ``retries`` where the task is
declared; these copies carry the configured values instead, so an operator
tunes them without touching code (README, "Operations").

With several agencies, Prefect global concurrency limits bound how many agencies'
runs read one source host and write the warehouse at once (``concurrency`` in
``schedule.yaml``); ``rulewatch deploy`` creates them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from prefect import Task

from rulewatch.config.agencies import Agencies
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


# --- Prefect global concurrency limits (issue 16) ------------------------------------------

#: The limit every agency's nightly run takes a slot of while it works on the warehouse.
WAREHOUSE_LIMIT = "rulewatch-warehouse"


def source_limit(base_url: str) -> str:
    """The limit of the source host behind ``base_url``: ``rulewatch-source-<host>-<port>``.

    One per host and port, not per agency: a provincial system serving many
    agencies is one host, and its limit counts every agency reading it.
    """
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = (parts.hostname or "unknown").replace(":", "-")  # an IPv6 address
    return f"rulewatch-source-{host}-{port}"


def warehouse_slots(settings: Settings) -> int:
    """Agencies writing the warehouse at once: SQLite has one writer, else the configured number."""
    if settings.warehouse_url.startswith("sqlite"):
        return 1
    return settings.schedule.concurrency.agencies_per_warehouse


def wanted_limits(settings: Settings, agencies: Agencies) -> dict[str, int]:
    """Every limit the nightly runs take, with its configured size: the warehouse's and
    each source host's whose URL is known here (a URL held in a variable that is not
    set on this machine is left to the run, which creates its host's limit if missing)."""
    per_host = settings.schedule.concurrency.agencies_per_source_host
    limits = {WAREHOUSE_LIMIT: warehouse_slots(settings)}
    for agency in agencies:
        for source in agency.sources.values():
            url = source.base_url or settings.env.get(source.base_url_env or "")
            if url:
                limits[source_limit(url)] = per_host
    return limits


def upsert_limits(limits: dict[str, int], *, update: bool = True) -> list[str]:
    """Create the limits on the Prefect API in use (``update``: also set existing ones to
    the given size; else an operator's change in the UI is kept); the names created or changed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    changed = []
    with get_client(sync_client=True) as client:
        for name, size in limits.items():
            try:
                existing = client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                try:
                    client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=size)
                    )
                    changed.append(name)
                except ObjectAlreadyExists:  # another run created it meanwhile
                    pass
                continue
            if update and (existing.limit != size or not existing.active):
                client.update_global_concurrency_limit(
                    name, GlobalConcurrencyLimitUpdate(limit=size, active=True)
                )
                changed.append(name)
    return changed


@contextmanager
def slots(names: list[str], enabled: bool) -> Iterator[None]:
    """Hold a slot of each limit for the block when the run takes limits, else nothing.

    Taken strictly: a run told to take limits fails naming a limit that is missing,
    rather than hammer a source no limit protects. Runs without limits (``rulewatch
    sync`` on its temporary Prefect server, where nobody created any) take none, so
    they never wait on a limit and never log Prefect's "does not exist" warning.
    """
    if not enabled or not names:
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(names, strict=True):
        yield
