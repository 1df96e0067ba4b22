"""The Prefect deployments of rulewatch's flows, served or on a work pool.

Both ways register the same deployments, named by where they run:

- ``rulewatch-nightly/<name>``: the nightly sync, on the cron and timezone of
  ``schedule.yaml``; at most one run at a time (a second one waits for the
  slot), and the warehouse's job lock keeps any other path out;
- ``rulewatch-backfill/<name>``: no schedule, run on demand with ``start`` and ``end``;
- on a work pool with ``agencies.yaml``, ``rulewatch-agency-nightly/<name>``: one
  agency's night, which the nightly flow runs once per agency (``run_deployment``),
  so the pool's workers, on any machine, share the night; and the global
  concurrency limits those runs take (per source host, per warehouse).

Every parameter of both flows is editable in the Prefect UI. Entrypoints are
module paths (``rulewatch.flows.nightly.nightly_sync``), so a worker needs the
rulewatch package installed and nothing else: no code storage, no pull steps.

Secrets reach flow runs through the worker's environment, or through Prefect
Secret blocks: a block named as in :data:`SECRET_BLOCKS` that exists when
``rulewatch deploy`` runs is wired into the deployments' job variables, and
the worker resolves it when it starts a run (it wins over the worker's own
environment). The value never passes through this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from rulewatch.config.agencies import load_agencies
from rulewatch.config.settings import ConfigError, Settings
from rulewatch.config.source_systems import SOURCE_SYSTEMS
from rulewatch.flows.backfill import backfill
from rulewatch.flows.limits import upsert_limits, wanted_limits
from rulewatch.flows.nightly import agency_nightly, nightly_sync

DEFAULT_POOL = "rulewatch"
POOL_DEPLOYMENT = "workers"  # run by `prefect worker start --pool ...`
SERVED_DEPLOYMENT = "serve"  # run by `rulewatch serve`
TAGS = ["rulewatch"]

#: environment variable -> the Prefect Secret block that can supply it instead:
#: the warehouse URL, each source system's secret credentials, the PII key, alert URLs
SECRET_BLOCKS: dict[str, str] = {
    var: "rulewatch-" + var.removeprefix("RULEWATCH_").lower().replace("_", "-")
    for var in (
        "RULEWATCH_WAREHOUSE_URL",
        *(var for system in SOURCE_SYSTEMS.values() for var in system.secret_envs),
        "RULEWATCH_PII_KEY",
        "RULEWATCH_ALERT_URLS",
    )
}


class DeployError(Exception):
    """The Prefect server could not be reached or refused the deployments."""


@dataclass(frozen=True)
class Registered:
    """A deployment as registered: its full name and id."""

    name: str
    deployment_id: str


def one_at_a_time() -> ConcurrencyLimitConfig:
    """Deployment concurrency: one run at a time; another waits for the slot."""
    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def nightly_deployment(
    settings: Settings,
    name: str,
    job_variables: dict[str, Any] | None = None,
    agency_deployment: str | None = None,
) -> RunnerDeployment:
    """The nightly sync on the configured cron and timezone; with ``agency_deployment``
    (a city on a work pool) it runs each agency there and takes the concurrency limits."""
    city = {"agency_deployment": agency_deployment, "concurrency_limits": True}
    return nightly_sync.to_deployment(
        name,
        schedule=Cron(settings.schedule.cron, timezone=settings.schedule.timezone),
        concurrency_limit=one_at_a_time(),
        description="Nightly sync of every source, then the metrics (rulewatch sync).",
        tags=TAGS,
        job_variables=job_variables,
        entrypoint_type=EntrypointType.MODULE_PATH,
        parameters=city if agency_deployment else None,
    )


def agency_nightly_deployment(
    name: str, job_variables: dict[str, Any] | None = None
) -> RunnerDeployment:
    """One agency's night, run by the city's nightly flow (one run per agency, on any
    worker of the pool). No deployment concurrency limit: agencies run side by side,
    bounded by the global concurrency limits; the job lock keeps one agency single."""
    return agency_nightly.to_deployment(
        name,
        description="One agency's nightly sync, started by rulewatch-nightly for each agency.",
        tags=TAGS,
        job_variables=job_variables,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def backfill_deployment(name: str, job_variables: dict[str, Any] | None = None) -> RunnerDeployment:
    """The backfill flow, on demand only."""
    return backfill.to_deployment(
        name,
        concurrency_limit=one_at_a_time(),
        description="Recompute the figures of every as-of date from start to end.",
        tags=TAGS,
        job_variables=job_variables,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def full_name(deployment: RunnerDeployment) -> str:
    return f"{deployment.flow_name}/{deployment.name}"


def secret_block_env() -> dict[str, str]:
    """Job-variable env entries for the Secret blocks that exist (templates, not values)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = {
            block.name
            for block in client.read_block_documents_by_type("secret", include_secrets=False)
        }
    return {
        var: f"{{{{ prefect.blocks.secret.{block} }}}}"
        for var, block in SECRET_BLOCKS.items()
        if block in found
    }


def ensure_process_pool(pool: str) -> bool:
    """Create the work pool (type ``process``) unless it exists; True if it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
            return False
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=pool,
                    type=ProcessWorker.type,
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="rulewatch: start workers with `prefect worker start --pool`",
                )
            )
            return True


def require_api_url() -> str:
    """The configured Prefect API (``PREFECT_API_URL`` or the active profile), or ConfigError."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise ConfigError(
            "PREFECT_API_URL is not set: point it at the Prefect server to deploy to "
            "(on one machine, `rulewatch serve` needs no deployment)"
        )
    return url


def deploy_to_pool(
    settings: Settings, pool: str = DEFAULT_POOL, limits: dict[str, int] | None = None
) -> list[Registered]:
    """Register the nightly and backfill deployments on ``pool`` (created if missing).

    With ``agencies.yaml`` also one agency's night, which the nightly flow runs once
    per agency on the pool, and the global concurrency limits the runs take (set to
    the configured sizes; ``limits`` receives them)."""
    import httpx
    from prefect.deployments.runner import DeploymentApplyError

    url = require_api_url()
    agencies = load_agencies(settings)
    city = agencies.path is not None
    try:
        ensure_process_pool(pool)
        env = secret_block_env()
        job_variables = {"env": env} if env else None
        per_agency = agency_nightly_deployment(POOL_DEPLOYMENT, job_variables)
        deployments = [
            nightly_deployment(
                settings,
                POOL_DEPLOYMENT,
                job_variables,
                agency_deployment=full_name(per_agency) if city else None,
            ),
            backfill_deployment(POOL_DEPLOYMENT, job_variables),
        ]
        if city:
            deployments.append(per_agency)
            wanted = wanted_limits(settings, agencies)
            upsert_limits(wanted)
            if limits is not None:
                limits.update(wanted)
        registered = []
        for deployment in deployments:
            deployment_id = deployment.apply(work_pool_name=pool)
            registered.append(Registered(full_name(deployment), str(deployment_id)))
    except (httpx.HTTPError, DeploymentApplyError) as exc:
        raise DeployError(f"Prefect API at {url}: {exc}") from None
    return registered
