"""`rulewatch serve`: run the nightly sync on its schedule with Prefect's own scheduler.

Prefect schedules only on a real server, not on the ephemeral one a plain
``rulewatch sync`` uses. So with no Prefect API configured (``PREFECT_API_URL``
or the active Prefect profile), ``serve`` starts ``prefect server start`` on a
free loopback port with its home in the data folder, waits until it is
healthy, says where its UI is, serves the deployments (the nightly sync on the
configured cron and timezone, the backfill on demand) and stops the server
when it stops itself: Ctrl-C or SIGTERM. With an API configured it serves
against that server and owns nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import requests

from rulewatch.config.settings import Settings

Say = Callable[[str], None]
HEALTH_TIMEOUT_SECONDS = 180  # a first start migrates Prefect's own database
STOP_TIMEOUT_SECONDS = 30
PORT_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1


class PrefectServerError(Exception):
    """The local Prefect server did not start; the message says why and where its log is."""


@dataclass
class LocalPrefectServer:
    """A ``prefect server start`` process this process started and must stop."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    home: Path
    log_path: Path

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    def is_healthy(self) -> bool:
        try:
            return requests.get(f"{self.api_url}/health", timeout=2).ok
        except requests.RequestException:
            return False

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM the server's process group, SIGKILL it if it lingers; its exit code."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        return self.process.returncode


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the server gets SIGTERM if this process dies without stopping it (kill -9)."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def server_env(home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: no rulewatch secrets, no API URL, its own home."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith("RULEWATCH_") and k not in ("PREFECT_API_URL", "PREFECT_API_KEY")
    }
    env["PREFECT_HOME"] = str(home)
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return env


def start_local_server(
    home: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout: float = HEALTH_TIMEOUT_SECONDS,
    env: dict[str, str] | None = None,
) -> LocalPrefectServer:
    """Start ``prefect server start`` on ``host`` (a free port unless given) and wait until healthy.

    The server runs in its own process group (Ctrl-C in the terminal reaches
    only this process, which stops the server after the runner has finished)
    and logs to ``<home>/server.log``. Raises :class:`PrefectServerError`.
    """
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    deadline = time.monotonic() + timeout
    attempts = 1 if port else PORT_ATTEMPTS  # a free port taken meanwhile is worth a retry
    for _ in range(attempts):
        server = _spawn(home, host, port or free_port(host), log_path, env)
        if _became_healthy(server, deadline, timeout):
            return server
    raise PrefectServerError(
        f"prefect server start exited with code {server.process.returncode} "
        f"(port {server.port}); see {log_path}"
    )


def _became_healthy(server: LocalPrefectServer, deadline: float, timeout: float) -> bool:
    """True once healthy, False if the process exited; stops it and raises after the deadline."""
    while not server.is_healthy():
        if server.process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            server.stop()
            raise PrefectServerError(
                f"prefect server on {server.ui_url} not healthy after {timeout:.0f}s; "
                f"see {server.log_path}"
            )
        time.sleep(0.2)
    return True


def _spawn(
    home: Path, host: str, port: int, log_path: Path, env: dict[str, str] | None
) -> LocalPrefectServer:
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", host],
            env={**server_env(home, env), "PREFECT_SERVER_API_PORT": str(port)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    return LocalPrefectServer(process, host, port, home, log_path)


def configured_api_url() -> str | None:
    """The Prefect API this process would use: ``PREFECT_API_URL`` or the active profile's."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C (so the server is stopped), until the runner takes over."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, interrupt)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
    else:
        yield


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def prefect_api(settings: Settings, say: Say = _stderr) -> Iterator[str]:
    """The Prefect API to use: the configured one, or a local server started and stopped here."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = configured_api_url()
    server = None
    if url is None:
        home = settings.data_dir / "prefect"
        say(f"starting a local Prefect server (home {home}) ...")
        server = start_local_server(home)
        url = server.api_url
        say(f"Prefect UI: {server.ui_url}  (server log: {server.log_path})")
        _announce(settings, url)
    else:
        say(f"using the Prefect server at {url}")
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url  # flow-run processes inherit it
    try:
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        if server is not None:
            _announce(settings, None)
            say("stopping the local Prefect server ...")
            server.stop()


def _announce(settings: Settings, url: str | None) -> None:
    """Tell a plain ``rulewatch sync`` of this data folder where this server's API is
    (so it records its run here instead of starting a temporary server), or that it is gone."""
    from rulewatch.flows.prefect_start import served_api_file

    path = served_api_file(settings)
    with contextlib.suppress(OSError):
        if url is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(url + "\n", encoding="utf-8")


def run_serve(settings: Settings, *, once_now: bool = False, say: Say = _stderr) -> None:
    """Serve the nightly and backfill deployments until Ctrl-C or SIGTERM."""
    from prefect import serve
    from prefect.deployments import run_deployment

    from rulewatch.flows.deploy import (
        SERVED_DEPLOYMENT,
        backfill_deployment,
        full_name,
        nightly_deployment,
    )

    with _sigterm_as_interrupt():
        try:
            with prefect_api(settings, say):
                nightly = nightly_deployment(settings, SERVED_DEPLOYMENT)
                backfill = backfill_deployment(SERVED_DEPLOYMENT)
                schedule = settings.schedule
                say(
                    f"serving {full_name(nightly)} (cron '{schedule.cron}', "
                    f"{schedule.timezone}) and {full_name(backfill)}; Ctrl-C to stop"
                )
                if once_now:
                    deployment_id = nightly.apply()
                    run = run_deployment(deployment_id, timeout=0)
                    say(f"nightly sync triggered now: flow run {run.name} ({run.id})")
                serve(nightly, backfill, print_starting_message=False)
        except KeyboardInterrupt:
            pass
    say("stopped")
