"""Unattended operation from outside: time bounds, one-line errors, logs, SIGTERM.

Every case runs the real ``rulewatch`` command in a subprocess against real
servers (a silent TCP host, a flaky HTTP source, PostgreSQL, SQLite files).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_support import clean_env, rulewatch_cmd, run_rulewatch
from ops_servers import SilentServer, flaky_permits
from scripted_sources import ScriptedSource

from rulewatch.config.settings import PACKAGE_CONFIG_DIR
from rulewatch.warehouse.db import schema_head

ONE_LINE = re.compile(r"^rulewatch: (error|failed): ")


def _env(tmp_path: Path, extra: dict[str, str]) -> dict[str, str]:
    env = clean_env(
        RULEWATCH_DATA_DIR=str(tmp_path / "data"),
        RULEWATCH_WAREHOUSE_URL=f"sqlite:///{tmp_path / 'wh.db'}",
        PREFECT_HOME=str(tmp_path / "prefect"),
        RULEWATCH_PII_KEY="ops-test-key",
        RULEWATCH_PERMITS_URL="http://127.0.0.1:9",
        RULEWATCH_PERMITS_TOKEN="t",
    )
    env.pop("DO_NOT_TRACK", None)
    env.update(extra)
    return env


def run(tmp_path: Path, args: list[str], extra: dict[str, str] | None = None, timeout=300):
    return run_rulewatch(_env(tmp_path, extra or {}), *args, timeout=timeout)


def config(tmp_path: Path, **files: str) -> str:
    """A copy of the packaged config with some files replaced; its folder."""
    folder = tmp_path / "config"
    if not folder.exists():
        shutil.copytree(PACKAGE_CONFIG_DIR, folder)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return str(folder)


def quick_source_config(tmp_path: Path, timeout: float = 30) -> str:
    """Sources that give up fast, no task retry: a failing source ends the sync quickly."""
    text = (PACKAGE_CONFIG_DIR / "sources.yaml").read_text(encoding="utf-8")
    text = re.sub(r"max_retries: \d+", "max_retries: 2", text)
    text = re.sub(r"backoff_factor: [\d.]+", "backoff_factor: 0", text)
    text = re.sub(r"timeout_seconds: [\d.]+", f"timeout_seconds: {timeout}", text)
    schedule = (PACKAGE_CONFIG_DIR / "schedule.yaml").read_text(encoding="utf-8")
    schedule = schedule.replace("source_task: 1", "source_task: 0")
    return config(tmp_path, sources=text, schedule=schedule)


def sync_permits(
    tmp_path: Path, permits: ScriptedSource, **extra: str
) -> subprocess.CompletedProcess:
    """`rulewatch sync --source permits` against ``permits``, with sources that give up fast."""
    env = {
        "RULEWATCH_PERMITS_URL": permits.url,
        "RULEWATCH_CONFIG_DIR": quick_source_config(tmp_path),
    }
    return run(tmp_path, ["sync", "--source", "permits"], {**env, **extra})


def assert_one_line(res: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == code, res.stderr
    assert len(lines) == 1, res.stderr
    assert ONE_LINE.match(lines[0]), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def make_sqlite(path: Path, revision: str | None = None) -> None:
    """A warehouse file at this rulewatch's schema, or at ``revision``'s."""
    from alembic import command

    from rulewatch.warehouse.db import _alembic_config, make_engine

    engine = make_engine(f"sqlite:///{path}")
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision or "head")
    engine.dispose()


# --- exit 2: configuration --------------------------------------------------------------


def test_an_invalid_cron_is_one_line_naming_the_key(tmp_path):
    folder = config(tmp_path, schedule='cron: "61 2 * * *"\ntimezone: Asia/Shanghai\n')
    res = run(tmp_path, ["serve"], {"RULEWATCH_CONFIG_DIR": folder})
    assert_one_line(res, 2, "schedule.yaml: cron:", "61 2 * * *")


@pytest.mark.parametrize(
    ("file", "text", "key"),
    [
        (
            "calendar",
            "timezone: Asia/Shanghai\nholidays:\n  - 2023-01-02\n  - 2023-02-30\n",
            "holidays.1",
        ),
        ("alerts", "urls: []\nlanguage: en\nquiet_since: 2023-02-29\n", "quiet_since"),
    ],
)
def test_an_invalid_date_in_yaml_names_file_and_key(tmp_path, file, text, key):
    res = run(
        tmp_path,
        ["kpis", "--period", "2023"],
        {"RULEWATCH_CONFIG_DIR": config(tmp_path, **{file: text})},
    )
    assert_one_line(res, 2, f"{file}.yaml: {key}:", "is not valid")


@pytest.mark.parametrize(
    "command", [["check", "--period", "2023"], ["sync", "--source", "permits"]]
)
def test_an_invalid_alert_url_is_refused_at_start_naming_the_variable(tmp_path, command):
    secret = "nope://user:s3cret@example.org"
    res = run(tmp_path, command, {"RULEWATCH_ALERT_URLS": f"json://127.0.0.1:9/ok {secret}"})
    assert_one_line(res, 2, "RULEWATCH_ALERT_URLS: entry 2", "not a valid Apprise URL")
    assert "s3cret" not in res.stderr


@pytest.mark.parametrize("variable", ["RULEWATCH_LOG_FORMAT", "RULEWATCH_LOG_LEVEL"])
def test_a_bad_logging_variable_is_one_line(tmp_path, variable):
    res = run(tmp_path, ["kpis", "--period", "2023"], {variable: "loud"})
    assert_one_line(res, 2, variable)


# --- exit 1: the warehouse ----------------------------------------------------------------


@pytest.fixture
def read_only_warehouse(tmp_path):
    """A warehouse file and folder this process cannot write, even as root (chattr +i)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    make_sqlite(folder / "wh.db")
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder / "wh.db"), str(folder)]).returncode:
            pytest.skip("root without chattr: cannot make a read-only file")
        yield folder / "wh.db"
        subprocess.run(["chattr", "-i", str(folder / "wh.db"), str(folder)], check=True)
    else:
        (folder / "wh.db").chmod(0o444)
        folder.chmod(0o555)
        yield folder / "wh.db"
        folder.chmod(0o755)


def test_a_read_only_sqlite_warehouse_on_sync(tmp_path, read_only_warehouse):
    url = f"sqlite:///{read_only_warehouse}"
    res = run(tmp_path, ["sync", "--source", "permits"], {"RULEWATCH_WAREHOUSE_URL": url})
    assert_one_line(res, 1, str(read_only_warehouse), "writable")


@pytest.mark.parametrize("command", [["kpis", "--period", "2023"], ["sync", "--source", "permits"]])
def test_a_corrupt_sqlite_file(tmp_path, command):
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not SQLite\n" * 400)
    res = run(tmp_path, command, {"RULEWATCH_WAREHOUSE_URL": f"sqlite:///{path}"})
    assert_one_line(res, 1, str(path), "not a database")


def test_a_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    url = f"sqlite:///{blocker / 'sub' / 'wh.db'}"
    res = run(tmp_path, ["kpis", "--period", "2023"], {"RULEWATCH_WAREHOUSE_URL": url})
    assert_one_line(res, 1, "cannot create the folder", str(blocker / "sub"))


def test_an_unreachable_warehouse_on_sync_is_one_line_before_any_prefect_output(tmp_path):
    url = "postgresql+psycopg://root@127.0.0.1:1/test"
    res = run(tmp_path, ["sync", "--source", "permits"], {"RULEWATCH_WAREHOUSE_URL": url})
    assert_one_line(res, 1, "127.0.0.1:1", "cannot connect")


def test_a_prefect_api_that_is_down(tmp_path):
    res = run(
        tmp_path, ["sync", "--source", "permits"], {"PREFECT_API_URL": "http://127.0.0.1:9/api"}
    )
    assert_one_line(res, 1, "Prefect API at http://127.0.0.1:9/api", "PREFECT_API_URL")


@pytest.mark.parametrize(
    "command",
    [
        ["kpis", "--period", "2023"],
        ["check", "--period", "2023"],
        ["report", "--period", "2023", "--out", "r"],
        ["sync", "--source", "permits"],
        ["upgrade"],
    ],
)
def test_a_warehouse_migrated_by_a_newer_rulewatch(tmp_path, command):
    make_sqlite(tmp_path / "wh.db")
    with sqlite3.connect(tmp_path / "wh.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    res = run(tmp_path, command)
    assert_one_line(res, 1, "schema revision 9999 is newer", f"newest is {schema_head()}")


@pytest.mark.parametrize(
    "command",
    [
        ["kpis", "--period", "2023"],
        ["check", "--period", "2023"],
        ["report", "--period", "2023", "--out", "r"],
    ],
)
def test_read_only_commands_do_not_upgrade_an_older_schema(tmp_path, command):
    make_sqlite(tmp_path / "wh.db", "0003")
    res = run(tmp_path, command)
    assert_one_line(res, 1, "behind this rulewatch", "rulewatch upgrade")
    with sqlite3.connect(tmp_path / "wh.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0003",)]


def test_upgrade_brings_an_older_schema_to_this_rulewatch(tmp_path):
    make_sqlite(tmp_path / "wh.db", "0003")
    res = run(tmp_path, ["upgrade"])
    assert res.returncode == 0, res.stderr
    assert f"upgraded from revision 0003 to {schema_head()}" in res.stdout
    again = run(tmp_path, ["upgrade"])
    assert f"already at revision {schema_head()}" in again.stdout
    res = run(tmp_path, ["kpis", "--period", "2023", "--json"])
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)) > 0


def test_version(tmp_path):
    res = run(tmp_path, ["--version"])
    assert res.returncode == 0, res.stderr
    assert re.fullmatch(r"rulewatch \d+\.\d+\.\d+\S* \(warehouse schema \w+\)\n", res.stdout)


# --- time bounds ------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_warehouse_host_that_never_answers_ends_at_the_connect_timeout(tmp_path):
    """Without the connect timeout the command would wait for the host forever: it must
    end by itself (120 s only keeps a broken guard from hanging the suite; the time
    it takes is in ``bench/bounds.py``)."""
    schedule = (PACKAGE_CONFIG_DIR / "schedule.yaml").read_text(encoding="utf-8")
    schedule = schedule.replace("warehouse_connect_seconds: 15", "warehouse_connect_seconds: 2")
    folder = config(tmp_path, schedule=schedule)
    with SilentServer() as silent:
        url = f"postgresql+psycopg://root@127.0.0.1:{silent.port}/test"
        res = run(
            tmp_path,
            ["kpis", "--period", "2023"],
            {"RULEWATCH_WAREHOUSE_URL": url, "RULEWATCH_CONFIG_DIR": folder},
            timeout=120,
        )
        assert silent.accepted.is_set()
    assert_one_line(res, 1, f"127.0.0.1:{silent.port}", "timeout")


def _children(pid: int) -> set[int]:
    """Every descendant process of ``pid`` (Linux /proc)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for kid in map(int, kids):
                if kid not in found:
                    found.add(kid)
                    todo.append(kid)
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _as_in_a_terminal() -> None:
    """Ctrl-C at its default, as a terminal's shell starts a command. A suite started in
    the background of a non-interactive shell (``cmd &``) inherits SIGINT ignored, and
    the sync then rightly ignores Ctrl-C, as ``nohup`` would have it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_sync(tmp_path: Path, extra: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    err = tmp_path / "stderr.log"
    proc = subprocess.Popen(
        rulewatch_cmd("sync", "--source", "permits"),
        env=_env(tmp_path, extra),
        stdout=subprocess.DEVNULL,
        stderr=err.open("w"),
        start_new_session=True,
        preexec_fn=_as_in_a_terminal,  # noqa: PLW1509 - one signal disposition, no threads' state
    )
    return proc, err


def _stop_a_blocked_sync(tmp_path: Path, stop: Callable[[int], None]) -> tuple[int, str]:
    """A sync blocked on a silent source (600 s timeout), then ``stop(pid)``: its exit
    code and standard error, once no child process (the Prefect server) outlived it.
    The 60 s wait only keeps a broken handler from hanging the suite; the time from the
    signal to the exit is in ``bench/bounds.py``."""
    with SilentServer() as silent:
        proc, err = _start_sync(
            tmp_path,
            {
                "RULEWATCH_PERMITS_URL": f"http://127.0.0.1:{silent.port}",
                "RULEWATCH_CONFIG_DIR": quick_source_config(tmp_path, timeout=600),
            },
        )
        try:
            assert silent.accepted.wait(240), err.read_text()  # the source task is now blocked
            children = _children(proc.pid)
            assert children, "the ephemeral Prefect server should be a child process"
            stop(proc.pid)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = err.read_text()
    deadline = time.monotonic() + 10  # children are reaped after the parent: a moment
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [c for c in children if _alive(c)], "a child process outlived the sync"
    return code, text


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_sigterm_stops_a_blocked_sync_and_its_prefect_server(tmp_path):
    code, text = _stop_a_blocked_sync(tmp_path, lambda pid: os.kill(pid, signal.SIGTERM))
    assert code == 1, text
    assert text.strip().splitlines()[-1].startswith("rulewatch: failed: stopped by SIGTERM")
    assert text.count("rulewatch:") == 1, text
    assert "Traceback" not in text


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_ctrl_c_stops_a_blocked_sync_and_its_prefect_server(tmp_path):
    """Ctrl-C reaches the whole process group, the Prefect server included; the sync
    used to wait for ever at exit for Prefect to send its logs to that gone server."""
    code, text = _stop_a_blocked_sync(  # as a terminal sends it
        tmp_path, lambda pid: os.killpg(pid, signal.SIGINT)
    )
    assert code == 1, text
    last = text.strip().splitlines()[-1]
    assert last.startswith("rulewatch: failed: interrupted (Ctrl-C)"), text
    assert "Traceback" not in text


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_run_past_the_flow_timeout_is_stopped(tmp_path):
    """The source would block for its 600 s timeout: the 20 s flow timeout must end the
    run by itself (120 s only keeps a broken timeout from hanging the suite; when it
    stops is in ``bench/bounds.py``)."""
    folder = quick_source_config(tmp_path, timeout=600)
    schedule = (Path(folder) / "schedule.yaml").read_text(encoding="utf-8")
    (Path(folder) / "schedule.yaml").write_text(
        schedule.replace("flow_seconds: 14400", "flow_seconds: 20"), encoding="utf-8"
    )
    with SilentServer() as silent:
        started = time.monotonic()
        proc, err = _start_sync(
            tmp_path,
            {
                "RULEWATCH_PERMITS_URL": f"http://127.0.0.1:{silent.port}",
                "RULEWATCH_CONFIG_DIR": folder,
            },
        )
        children: set[int] = set()
        try:
            while proc.poll() is None and time.monotonic() - started < 120:
                children |= _children(proc.pid)
                time.sleep(0.2)
            assert proc.poll() is not None, "the run outlived its flow timeout"
            code = proc.wait()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = err.read_text()
    assert code == 1, text
    last = text.strip().splitlines()[-1]
    assert last.startswith("rulewatch: failed: the nightly run overstayed its 20 s"), text
    assert "timeouts.flow_seconds" in last
    time.sleep(0.5)
    assert not [c for c in children if _alive(c)], "a child process outlived the sync"


# --- logs -------------------------------------------------------------------------------


def test_logs_off_a_terminal_carry_time_level_and_where_and_retries_read_well(tmp_path):
    with flaky_permits(failures=2) as permits:
        res = sync_permits(tmp_path, permits)
    assert res.returncode == 0, res.stderr
    lines = res.stderr.strip().splitlines()
    stamped = re.compile(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (INFO|WARNING|ERROR) +\S"
    )
    assert "permits: HTTP 503, retry 1/2 in 0 s" in res.stderr
    assert "permits: HTTP 503, retry 2/2 in 0 s" in res.stderr
    assert "Retrying (" not in res.stderr and "NoneType: None" not in res.stderr
    assert "task sync-permits:" in res.stderr  # where: the Prefect task run
    starts = [line for line in lines if not line.startswith("See https://")]
    assert all(stamped.match(line) for line in starts), "\n".join(starts)


def test_json_logs_are_one_object_per_line(tmp_path):
    with flaky_permits(failures=1) as permits:
        res = sync_permits(tmp_path, permits, RULEWATCH_LOG_FORMAT="json")
    assert res.returncode == 0, res.stderr
    records = [json.loads(line) for line in res.stderr.strip().splitlines()]
    assert {"time", "level", "logger", "where", "message"} <= set(records[0])
    retry = [r for r in records if r["logger"] == "rulewatch.retry"]
    assert [r["message"] for r in retry] == ["permits: HTTP 503, retry 1/2 in 0 s"]
    assert retry[0]["task_run_name"] == "sync-permits"
    assert any(r.get("flow_run_name") for r in records)


def test_a_source_failing_once_is_retried_by_its_task(tmp_path):
    folder = quick_source_config(tmp_path)
    schedule = (Path(folder) / "schedule.yaml").read_text(encoding="utf-8")
    schedule = schedule.replace("source_task: 0", "source_task: 1")
    (Path(folder) / "schedule.yaml").write_text(
        schedule.replace("source_task_delay_seconds: 30", "source_task_delay_seconds: 0"),
        encoding="utf-8",
    )
    with flaky_permits(failures=3) as permits:  # the first attempt's 3 requests all fail
        res = run(
            tmp_path,
            ["sync", "--source", "permits"],
            {"RULEWATCH_PERMITS_URL": permits.url, "RULEWATCH_CONFIG_DIR": folder},
        )
        assert len(permits.queries) == 4
    assert res.returncode == 0, res.stderr
    assert "Retry 1/1 will start immediately" in res.stderr  # Prefect retried the task
    assert "NoneType: None" not in res.stderr  # the failed attempt's line has no empty traceback
    with sqlite3.connect(tmp_path / "wh.db") as conn:
        runs = conn.execute("SELECT status FROM sync_run ORDER BY started_at").fetchall()
    assert runs == [("failed",), ("succeeded",)]


def test_prefect_telemetry_is_off_unless_the_user_chose(tmp_path):
    probe = (
        "import os, sys\n"
        "sys.argv = ['rulewatch', '--version']\n"
        "import rulewatch.cli.main\n"
        "try:\n    rulewatch.cli.main.main()\nexcept SystemExit:\n    pass\n"
        "print(os.environ.get('DO_NOT_TRACK'))\n"
    )
    for given, expected in ((None, "1"), ("0", "0")):
        env = _env(tmp_path, {} if given is None else {"DO_NOT_TRACK": given})
        res = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
        )
        assert res.stdout.strip().splitlines()[-1] == expected, res.stderr


@pytest.mark.postgres
def test_a_postgresql_statement_is_cut_at_the_statement_timeout(pg_url):
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from rulewatch.config.settings import TimeoutsSection
    from rulewatch.warehouse.db import make_engine

    engine = make_engine(pg_url, TimeoutsSection(warehouse_statement_seconds=1))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "1s"
            assert (
                conn.execute(text("SELECT current_schema()")).scalar().startswith("t_")
            )  # URL kept
            # PostgreSQL itself cancels the 30 s sleep at the 1 s timeout it was given
            with pytest.raises(
                OperationalError, match="canceling statement due to statement timeout"
            ):
                conn.execute(text("SELECT pg_sleep(30)"))
    finally:
        engine.dispose()


def test_a_source_that_keeps_failing_ends_in_one_line_without_log_noise(tmp_path):
    with flaky_permits(failures=1000) as permits:
        res = sync_permits(tmp_path, permits)
    assert res.returncode == 1, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("rulewatch: failed: sync failed for: permits (permits: HTTP 503"), last
    assert res.stderr.count("rulewatch:") == 1
    assert "NoneType: None" not in res.stderr and "Traceback" not in res.stderr
    assert "Retrying (" not in res.stderr
