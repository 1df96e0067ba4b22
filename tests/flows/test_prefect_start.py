"""Prefect's API for a command-line run: known without importing Prefect, started early, stopped."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import clean_env, run_rulewatch
from flows_support import child_env

from rulewatch.common.stopping import own_server, stop_prefect_servers
from rulewatch.demo.servers import start_demo_sources
from rulewatch.flows.prefect_start import temporary_server_certain

PROFILES = """
active = "{active}"

[profiles.ephemeral]
PREFECT_SERVER_ALLOW_EPHEMERAL_MODE = "true"

[profiles.remote]
PREFECT_API_URL = "http://127.0.0.1:9/api"

[profiles.bare]
PREFECT_LOGGING_LEVEL = "INFO"
"""


def _home(tmp_path: Path, profiles: str | None) -> dict[str, str]:
    home = tmp_path / "prefect-home"
    home.mkdir()
    if profiles is not None:
        (home / "profiles.toml").write_text(profiles, encoding="utf-8")
    return {"PREFECT_HOME": str(home)}


def _prefect_starts_a_server(env: dict[str, str], cwd: Path, tmp_path: Path) -> bool:
    """Prefect's own answer, in a fresh process with ``env`` in ``cwd``: no API URL and
    ephemeral mode on."""
    code = (
        "from prefect.settings import get_current_settings as s; c = s(); "
        "print(c.api.url is None and c.server.ephemeral.enabled)"
    )
    full = {**child_env(tmp_path), **env}
    done = subprocess.run(
        [sys.executable, "-c", code], env=full, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1] == "True"


CASES = {
    "no profiles file: Prefect's default profile": (None, {}, True),
    "the active profile allows the server": (PROFILES.format(active="ephemeral"), {}, True),
    "the active profile sets the API": (PROFILES.format(active="remote"), {}, False),
    "PREFECT_PROFILE picks the profile that does": (
        PROFILES.format(active="ephemeral"),
        {"PREFECT_PROFILE": "remote"},
        False,
    ),
    "a profile that does not allow the server": (PROFILES.format(active="bare"), {}, False),
    "an active profile the file lacks: the default": (PROFILES.format(active="gone"), {}, True),
    "the environment turns the server off": (
        None,
        {"PREFECT_SERVER_EPHEMERAL_ENABLED": "false"},
        False,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_cheap_answer_is_prefects_own(case, tmp_path):
    profiles, extra, expected = CASES[case]
    env = {**_home(tmp_path, profiles), **extra}
    work = tmp_path / "work"
    work.mkdir()
    assert temporary_server_certain(env, work) is expected
    assert _prefect_starts_a_server(env, work, tmp_path) is expected


def test_the_environment_and_the_working_folders_files_make_it_unsure(tmp_path):
    env = _home(tmp_path, None)
    work = tmp_path / "work"
    work.mkdir()
    assert temporary_server_certain(env, work)
    assert not temporary_server_certain({**env, "PREFECT_API_URL": "http://x/api"}, work)
    (work / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    assert temporary_server_certain(env, work)  # a project file without Prefect's table
    (work / "pyproject.toml").write_text('[tool.prefect.api]\nurl = "http://x/api"\n')
    assert not temporary_server_certain(env, work)
    (work / "pyproject.toml").unlink()
    (work / ".env").write_text("PREFECT_API_URL=http://x/api\n", encoding="utf-8")
    assert not temporary_server_certain(env, work)
    (work / ".env").unlink()
    (work / "prefect.toml").write_text('[api]\nurl = "http://x/api"\n', encoding="utf-8")
    assert not temporary_server_certain(env, work)


def test_an_unreadable_profiles_file_makes_it_unsure(tmp_path):
    env = _home(tmp_path, "this is [not toml")
    assert not temporary_server_certain(env, tmp_path)


def test_a_server_process_started_outside_prefect_is_stopped_with_prefects(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    own_server(process)
    try:
        assert stop_prefect_servers(drain_seconds=0) == 1
        assert process.poll() is not None
        assert stop_prefect_servers(drain_seconds=0) == 0  # forgotten once stopped
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_damaged_prefect_database_fails_the_run_at_once_naming_it(tmp_path):
    # Prefect's own server would fail alike, after its 120 s start-up timeout, with a
    # traceback of uvicorn's in the terminal
    home = tmp_path / "prefect"
    home.mkdir()
    (home / "prefect.db").write_bytes(b"not a database, " * 1000)
    warehouse = tmp_path / "wh.db"
    env = clean_env(
        RULEWATCH_DATA_DIR=str(tmp_path / "data"),
        RULEWATCH_WAREHOUSE_URL=f"sqlite:///{warehouse}",
        RULEWATCH_PII_KEY="k",
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    with start_demo_sources() as demo:
        res = run_rulewatch({**env, **demo.env()}, "sync", "--as-of", "2024-05-20", timeout=60)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        "rulewatch: failed: Prefect's temporary server could not start: (sqlite3.DatabaseError) "
        f"file is not a database (database sqlite+aiosqlite:///{home / 'prefect.db'}); nothing "
        "was synced (that database holds only Prefect's record of runs; if it is damaged, "
        "restore it from a backup or move it away: Prefect starts a new one)"
    )
    if warehouse.exists():
        with sqlite3.connect(warehouse) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
            assert "sync_run" not in tables or not db.execute("SELECT * FROM sync_run").fetchall()


@pytest.fixture
def health_server():
    """A real HTTP server answering ``/health``, as a Prefect server does."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    server.server_close()


def test_serves_server_is_not_asked_its_version_nor_verified_over_plain_http(
    health_server, tmp_path, monkeypatch
):
    """serve's server is this installation's own Prefect, on plain http: the client's
    version check and CA bundles were 0.26 s of a quiet night's process."""
    from prefect.settings import get_current_settings

    from rulewatch.config.settings import load_settings
    from rulewatch.flows.prefect_start import EarlyPrefect, _own_server_settings, served_api_file

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    settings = load_settings({"RULEWATCH_DATA_DIR": str(tmp_path)})
    served_api_file(settings).parent.mkdir(parents=True)
    served_api_file(settings).write_text(health_server + "\n", encoding="utf-8")
    early = EarlyPrefect(settings)
    assert early.shared_url == health_server
    with early.ready():
        inside = get_current_settings()
        assert str(inside.api.url) == health_server
        assert inside.client.server_version_check_enabled is False
        assert inside.api.tls_insecure_skip_verify is True
    after = get_current_settings()
    assert after.client.server_version_check_enabled is True
    assert after.api.tls_insecure_skip_verify is False
    # a server rulewatch reaches over TLS keeps its verification
    assert {k.name for k in _own_server_settings("https://prefect.example/api")} == {
        "PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED"
    }
