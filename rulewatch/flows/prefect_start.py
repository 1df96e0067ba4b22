"""Prefect's API for one command-line run, found or started as early as possible.

A run records itself in Prefect. In order of preference it uses the API that
is configured (``PREFECT_API_URL`` or the Prefect profile: nothing to start),
the server that ``rulewatch serve`` runs for the same data folder (its URL is in
``<data dir>/prefect/api-url`` while it is up and healthy: nothing to start, and
the run shows in that server's UI), or else Prefect's temporary server. That
one takes seconds to come up (a uvicorn process importing Prefect's whole API),
so it is started in a background thread as soon as the preflight checks pass,
while this process goes on importing the flow and its libraries on the other
core; the flow waits for it only when it starts. It is Prefect's own server
object, so Prefect, SIGTERM and the error paths stop it as before.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import requests

from rulewatch.config.settings import Settings

API_URL_FILE = "api-url"
HEALTH_TIMEOUT_SECONDS = 2.0


def served_api_file(settings: Settings) -> Path:
    """Where ``rulewatch serve`` writes the API URL of the server it runs."""
    return settings.data_dir / "prefect" / API_URL_FILE


def served_api_url(settings: Settings) -> str | None:
    """The API of the server ``rulewatch serve`` runs for this data folder, if it answers."""
    try:
        url = served_api_file(settings).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not url:
        return None
    try:
        healthy = requests.get(f"{url}/health", timeout=HEALTH_TIMEOUT_SECONDS).ok
    except requests.RequestException:
        return None
    return url if healthy else None


def _configured_api_url() -> str | None:
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


class EarlyPrefect:
    """The Prefect API of this run: configured, shared with ``serve``, or starting now."""

    def __init__(self, settings: Settings) -> None:
        self.shared_url: str | None = None
        self._thread: threading.Thread | None = None
        if _configured_api_url() is not None:
            return
        self.shared_url = served_api_url(settings)
        if self.shared_url is None:
            self._thread = threading.Thread(
                target=self._start_temporary, name="prefect-server-start", daemon=True
            )
            self._thread.start()

    @staticmethod
    def _start_temporary() -> None:
        """Prefect's own temporary server (the instance its client uses), started now.

        A failure is left to Prefect, which tries again when the flow starts and
        reports it there.
        """
        from prefect.server.api.server import SubprocessASGIServer

        with contextlib.suppress(Exception):
            SubprocessASGIServer().start()

    @contextlib.contextmanager
    def ready(self) -> Iterator[None]:
        """Run the flow inside: the temporary server is up, or serve's API is the one used."""
        if self._thread is not None:
            self._thread.join()
        if self.shared_url is None:
            yield
            return
        from prefect.settings import PREFECT_API_URL, temporary_settings

        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = self.shared_url
        try:
            with temporary_settings({PREFECT_API_URL: self.shared_url}):
                yield
        finally:
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous
