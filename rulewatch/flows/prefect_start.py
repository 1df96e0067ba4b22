"""Prefect's API for one command-line run, found or started as early as possible.

A run records itself in Prefect. In order of preference it uses the API that
is configured (``PREFECT_API_URL`` or the Prefect profile: nothing to start),
the server that ``rulewatch serve`` runs for the same data folder (its URL is in
``<data dir>/prefect/api-url`` while it is up and healthy: nothing to start, and
the run shows in that server's UI), or else a temporary server: the process
Prefect itself would start (uvicorn serving ``prefect.server.api.server:create_app``
in ephemeral mode, over Prefect's own database), launched by this module.

Why launch it here rather than let Prefect do it: the server takes seconds to
come up (it imports Prefect's whole API), and Prefect starts it only once it
has itself been imported, which costs seconds more; asking Prefect for its
server object even imports the whole server API into this process first. The
process is spawned as soon as the preflight checks pass, before anything heavy
is imported here, so its start-up overlaps this process's imports on the other
core. On Linux it also brings Prefect's database up to date (Prefect's own
``create_db``, which on a new Prefect home runs ~120 migrations: seconds) in a
forked child while it imports the server's API, instead of after it
(:data:`_LAUNCH`). Whether Prefect would start that server is decided without importing
Prefect from the environment and the active profile
(:func:`temporary_server_certain`); when a settings file leaves it unsure,
Prefect's settings are asked. The server is stopped when the flow ends, after
Prefect's queued logs and events are sent, and on every error path and SIGTERM
(:mod:`rulewatch.common.stopping` knows it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from rulewatch.common.stopping import forget_server, own_server, stop_server
from rulewatch.common.text import server_text
from rulewatch.config.settings import Settings
from rulewatch.flows.serve import PrefectServerError, _die_with_parent, free_port

API_URL_FILE = "api-url"
HEALTH_TIMEOUT_SECONDS = 2.0
#: How often the waiting flow polls the temporary server's health endpoint.
HEALTH_POLL_SECONDS = 0.05
#: A port taken between choosing it and binding it: worth a new port, this many times.
PORT_ATTEMPTS = 3
#: Prefect's own default for PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.
DEFAULT_STARTUP_SECONDS = 20.0
#: Prefect's logger for its temporary server's lines, so they read as before.
_log = logging.getLogger("prefect")


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


_TRUE = {"1", "true", "yes", "on", "t", "y"}
_EPHEMERAL_KEYS = ("PREFECT_SERVER_EPHEMERAL_ENABLED", "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE")


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return True


def _active_profile(env: dict[str, str]) -> dict[str, object] | None:
    """The settings of Prefect's active profile, chosen as Prefect chooses it; None if unsure."""
    home = Path(env.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(env.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        spec = importlib.util.find_spec("prefect")
        assert spec is not None and spec.origin is not None
        default = tomllib.loads(
            (Path(spec.origin).parent / "settings" / "profiles.toml").read_text(encoding="utf-8")
        )
        default_profile = default.get("profiles", {}).get(default.get("active", "ephemeral"), {})
        if not path.exists():
            return default_profile
        profiles = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, AssertionError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    active = env.get("PREFECT_PROFILE") or profiles.get("active")
    chosen = profiles.get("profiles", {}).get(active) if active else None
    profile = default_profile if chosen is None else chosen
    return profile if isinstance(profile, dict) else None


def temporary_server_certain(env: dict[str, str] | None = None, cwd: Path | None = None) -> bool:
    """Whether Prefect would certainly start its temporary server: no API URL anywhere,
    ephemeral mode on. Decided without importing Prefect (which takes seconds).

    Conservative: it reads the environment and the active profile (the user's
    ``profiles.toml`` or Prefect's default one, chosen as Prefect does), and any
    ``prefect.toml``, ``.env`` naming a ``PREFECT_`` variable or ``pyproject.toml``
    with a ``[tool.prefect]`` table in the working folder makes it unsure; then
    Prefect's own settings decide.
    """
    env = dict(os.environ if env is None else env)
    cwd = Path.cwd() if cwd is None else cwd
    if env.get("PREFECT_API_URL"):
        return False
    if _exists(cwd / "prefect.toml"):
        return False
    for name, needle in ((".env", "prefect_"), ("pyproject.toml", "tool.prefect")):
        try:
            if needle in (cwd / name).read_text(encoding="utf-8").lower():
                return False
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError):
            return False
    profile = _active_profile(env)
    if profile is None or any("API_URL" in str(key).upper() for key in profile):
        return False
    flags = [env[k] for k in _EPHEMERAL_KEYS if k in env] or [
        str(profile[k]) for k in _EPHEMERAL_KEYS if k in profile
    ]
    return bool(flags) and flags[0].strip().lower() in _TRUE


def _temporary_server_wanted() -> bool:
    """Prefect's own answer: no API URL configured, and ephemeral mode on."""
    from prefect.settings import get_current_settings

    current = get_current_settings()
    return current.api.url is None and current.server.ephemeral.enabled


def _prefect_app_dir() -> str:
    """The folder holding the ``prefect`` package (uvicorn's ``--app-dir``), without importing it."""
    spec = importlib.util.find_spec("prefect")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("prefect")
    return str(Path(spec.origin).parent.parent)


def _startup_seconds() -> float:
    try:
        return float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", ""))
    except ValueError:
        return DEFAULT_STARTUP_SECONDS


#: The server as ``uvicorn --factory prefect.server.api.server:create_app`` runs it,
#: except that Prefect's database is migrated as its start-up would (Prefect's own
#: ``create_db``, unless migrate-on-start is off) by a child forked once the part of
#: Prefect both need is imported, while the parent imports the API. The parent
#: serves once the child succeeded (migrate-on-start then off: done); else exit 1,
#: the child having written why (one line, no password) to the descriptor argv[4].
_LAUNCH = """
import asyncio, os, sys
sys.path.insert(0, sys.argv[3])  # as uvicorn's --app-dir: this Prefect, not a folder here
from prefect.server.database import provide_database_interface
from prefect.settings import PREFECT_API_DATABASE_MIGRATE_ON_START, temporary_settings
child = os.fork() if PREFECT_API_DATABASE_MIGRATE_ON_START.value() else None
if child == 0:
    code = 1
    try:
        asyncio.run(provide_database_interface().create_db())
        code = 0
    except BaseException as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        try:
            from prefect.settings import get_current_settings
            from sqlalchemy.engine import make_url
            url = get_current_settings().server.database.connection_url.get_secret_value()
            why += f" (database {make_url(url).render_as_string(hide_password=True)})"
        except Exception:
            pass
        try:
            os.write(int(sys.argv[4]), why.encode("utf-8", "backslashreplace")[:4000])
        except (IndexError, ValueError, OSError):
            print(f"Prefect's database could not be migrated: {why}", file=sys.stderr)
    finally:
        os._exit(code)
import uvicorn
import prefect.server.api.server
if child is not None:
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(1)
with temporary_settings({PREFECT_API_DATABASE_MIGRATE_ON_START: False}):
    uvicorn.run(
        "prefect.server.api.server:create_app", factory=True, host=sys.argv[1],
        port=int(sys.argv[2]), log_level="error", lifespan="on",
    )
"""


def _port_open(port: int) -> bool:
    """Whether something accepts connections on ``port`` (uvicorn binds once started)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=HEALTH_TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


class TemporaryServer:
    """Prefect's temporary API server, as Prefect would run it, owned by this process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.failure: str | None = None  # why Prefect's database could not be migrated
        self._why: int | None = None  # the read end of the pipe the migration writes that to
        self.process = self._spawn()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.address}/api"

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RULEWATCH_")}
        env.update(PREFECT_UI_ENABLED="0", PREFECT__SERVER_EPHEMERAL="1", PREFECT__SERVER_FINAL="1")
        if env.get("DO_NOT_TRACK", "").strip().lower() in _TRUE:
            # DO_NOT_TRACK stops only the client's telemetry; the server's own heartbeat
            # looks up Prefect's host and writes a session row at start (on a new home
            # beside the block registration: "database is locked" in the terminal)
            env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        write_end = None
        if sys.platform == "linux":  # fork: the migrations beside the API's imports
            self._close_why()
            self._why, write_end = os.pipe()
            command = [sys.executable, "-c", _LAUNCH, "127.0.0.1", str(self.port)]
            command += [_prefect_app_dir(), str(write_end)]
        else:
            command = [sys.executable, "-m", "uvicorn", "--app-dir", _prefect_app_dir()]
            command += ["--factory", "prefect.server.api.server:create_app"]
            command += ["--host", "127.0.0.1", "--port", str(self.port)]
            command += ["--log-level", "error", "--lifespan", "on"]
        try:
            process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                pass_fds=() if write_end is None else (write_end,),
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        finally:
            if write_end is not None:
                os.close(write_end)  # the server's copy is its own: EOF once it exits
        own_server(process)
        return process

    def _read_failure(self) -> str | None:
        """What the exited server's migration wrote, if anything (its pipe is at EOF)."""
        if self._why is None:
            return None
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := os.read(self._why, 4096):
                chunks.append(chunk)
        self._close_why()
        return b"".join(chunks).decode("utf-8", "replace").strip() or None

    def _close_why(self) -> None:
        if self._why is not None:
            with contextlib.suppress(OSError):
                os.close(self._why)
            self._why = None

    def wait_healthy(self, timeout: float) -> bool:
        """True once its health check answers; a process that exited (its port taken
        meanwhile) is started again on another port. False after ``timeout``, or at
        once when Prefect's database could not be migrated (:attr:`failure` says why)."""
        deadline = time.monotonic() + timeout
        attempts = 1
        with requests.Session() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    forget_server(self.process)
                    self.failure = self._read_failure()
                    if self.failure is not None or attempts >= PORT_ATTEMPTS:
                        return False
                    attempts += 1
                    self.port = free_port()
                    self.process = self._spawn()
                # a refused connection costs next to nothing; an HTTP request per poll
                # cost this process 0.5-0.7 s of CPU while the server started beside it
                if _port_open(self.port):
                    with contextlib.suppress(requests.RequestException):
                        url = f"{self.api_url}/health"
                        if session.get(url, timeout=HEALTH_TIMEOUT_SECONDS).ok:
                            return True
                time.sleep(HEALTH_POLL_SECONDS)
        return False

    def stop(self) -> None:
        """Prefect's queued logs and events sent, then the process stopped."""
        stop_server(self.process)
        self._close_why()


def _own_server_settings(url: str) -> dict[Any, Any]:
    """Prefect's client settings for a server this installation started (``serve``'s or
    a temporary one), whose address rulewatch knows: checking its version asks it
    again what this very Prefect is (an extra request and a CA bundle loaded), and on
    plain ``http://`` (the loopback address such a server listens on) there is no TLS
    to verify, yet each of Prefect's clients loaded the CA bundle for it (30-50 ms
    apiece, four of them a night). A URL that is not plain http keeps its verification.
    """
    from prefect.settings import (
        PREFECT_API_TLS_INSECURE_SKIP_VERIFY,
        PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED,
    )

    own: dict[Any, Any] = {PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED: False}
    if urlsplit(url).scheme == "http":
        own[PREFECT_API_TLS_INSECURE_SKIP_VERIFY] = True
    return own


class EarlyPrefect:
    """The Prefect API of this run: configured, shared with ``serve``, or starting now."""

    def __init__(self, settings: Settings) -> None:
        self.shared_url: str | None = None
        self.server: TemporaryServer | None = None
        if os.environ.get("PREFECT_API_URL"):
            return  # configured: check_prefect_api made sure it answers
        self.shared_url = served_api_url(settings)
        if self.shared_url is not None:
            return
        if not temporary_server_certain() and not _temporary_server_wanted():
            return  # the profile or a settings file names the API (or forbids the server)
        with contextlib.suppress(OSError, ModuleNotFoundError):  # else Prefect starts its own
            self.server = TemporaryServer()

    @contextlib.contextmanager
    def ready(self) -> Iterator[None]:
        """Run the flow inside: the API it records to is up; a temporary one stops after."""
        server, url = self.server, self.shared_url
        if server is not None:
            _log.info("Starting temporary server on %s", server.address)
            if server.wait_healthy(_startup_seconds()):
                url = server.api_url
            elif server.failure is not None:  # Prefect's own server would fail alike, later
                server.stop()
                raise PrefectServerError(
                    f"Prefect's temporary server could not start: {server_text(server.failure)}"
                    "; nothing was synced (that database holds only Prefect's record of runs; "
                    "if it is damaged, restore it from a backup or move it away: Prefect "
                    "starts a new one)"
                )
            else:  # left to Prefect, which starts its own server and reports a failure
                server.stop()
                server = None
        if url is None:
            yield
            return
        from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = url
        # a temporary server has no UI to link to, and is gone after the run
        ui = {PREFECT_UI_URL: ""} if server is not None else {}
        try:
            with temporary_settings({PREFECT_API_URL: url, **ui, **_own_server_settings(url)}):
                yield
        finally:
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous
            if server is not None:
                _log.info("Stopping temporary server on %s", server.address)
                server.stop()
