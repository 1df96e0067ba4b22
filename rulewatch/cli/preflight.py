"""Checks before a sync starts its flow, so a broken set-up ends in one line, not a traceback.

Each check fails fast with the cause: alert channels that can never be
delivered (exit 2), a warehouse that cannot be reached, opened or written,
or whose schema is newer than this rulewatch, and a configured Prefect API
that does not answer (exit 1). Nothing is written here; the flow migrates
under the job lock.
"""

from __future__ import annotations

from rulewatch.config.settings import Settings, validate_alert_urls

PREFECT_HEALTH_TIMEOUT_SECONDS = 10


class PreflightFailed(Exception):
    """Something the sync needs is not there; the message names it."""


def check_warehouse(settings: Settings) -> None:
    """The warehouse answers, is not newer than this rulewatch, and (SQLite) can be written."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from rulewatch.warehouse.db import (
        make_engine,
        newer_schema_error,
        schema_state,
        warehouse_error,
    )

    engine = make_engine(settings.warehouse_url, settings.schedule.timeouts)
    try:
        with engine.connect() as conn:
            state, revision, head = schema_state(conn)
            if state == "newer":
                raise newer_schema_error(engine, revision, head)
            if conn.dialect.name == "sqlite":  # a read-only file fails here, not mid-sync
                conn.exec_driver_sql("PRAGMA busy_timeout = 0")  # a writer at work: no wait
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                conn.execute(text("ROLLBACK"))
    except DBAPIError as exc:
        if "database is locked" in str(exc.orig):
            return  # writable, and another job is writing: the job lock will say who
        raise warehouse_error(engine, exc, "connect or write") from None
    finally:
        engine.dispose()


def check_prefect_api() -> None:
    """A configured Prefect API (``PREFECT_API_URL`` or the profile's) must answer its health check."""
    import requests

    from rulewatch.flows.prefect_start import temporary_server_certain
    from rulewatch.flows.serve import configured_api_url

    if temporary_server_certain():  # nothing names an API: no need to import Prefect to know
        return
    url = configured_api_url()
    if url is None:  # an ephemeral server is started for this run
        return
    try:
        response = requests.get(f"{url.rstrip('/')}/health", timeout=PREFECT_HEALTH_TIMEOUT_SECONDS)
        response.raise_for_status()
    except requests.RequestException as exc:
        why = type(exc).__name__
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            why = f"HTTP {exc.response.status_code}"
        raise PreflightFailed(
            f"the Prefect API at {url} (PREFECT_API_URL or the Prefect profile) does not "
            f"answer ({why}); start it, or unset PREFECT_API_URL to run without a server"
        ) from None


def check_before_sync(settings: Settings) -> None:
    """Everything a sync needs, checked before the flow starts."""
    validate_alert_urls(settings)
    settings.pii_key()  # an empty key file is named now; a first sync makes it once, here
    check_warehouse(settings)
    check_prefect_api()
