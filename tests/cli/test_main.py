"""The `rulewatch` command from outside: exit codes, one-line errors, JSON on stdout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from cli_support import clean_env, run_rulewatch
from receivers import Webhook

from rulewatch.config.settings import PACKAGE_CONFIG_DIR


def run(args, env_extra, tmp_path, timeout=240):
    env = clean_env(
        RULEWATCH_DATA_DIR=str(tmp_path / "data"),
        RULEWATCH_WAREHOUSE_URL=f"sqlite:///{tmp_path / 'wh.db'}",
        PREFECT_HOME=str(tmp_path / "prefect"),
        RULEWATCH_PII_KEY="cli-test-key",
    )
    env.update(env_extra)
    return run_rulewatch(env, *args, timeout=timeout)


def test_kpis_json_on_an_empty_warehouse(tmp_path):
    res = run(["kpis", "--period", "2023", "--as-of", "2024-01-10", "--json"], {}, tmp_path)
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert len(rows) == 22
    counts = {r["metric"]: r for r in rows}
    assert counts["permits.received"]["value"] == 0
    assert counts["docreview.filing_rate"] == {
        "metric": "docreview.filing_rate",
        "period": "2023",
        "as_of": "2024-01-10",
        "value": None,
        "numerator": 0,
        "denominator": 0,
        "target": 1.0,
        "status": "no_data",
    }


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Etc/GMT+12"])  # UTC+14, UTC-12
def test_as_of_defaults_to_today_in_the_configured_timezone(tmp_path, zone):
    config = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, config)
    text = (config / "calendar.yaml").read_text()
    (config / "calendar.yaml").write_text(
        text.replace("timezone: Asia/Shanghai", f"timezone: {zone}")
    )
    before = datetime.now(ZoneInfo(zone)).date()
    res = run(
        ["kpis", "--period", "2023", "--json"], {"RULEWATCH_CONFIG_DIR": str(config)}, tmp_path
    )
    after = datetime.now(ZoneInfo(zone)).date()
    assert res.returncode == 0, res.stderr
    as_of = {row["as_of"] for row in json.loads(res.stdout)}
    assert as_of <= {before.isoformat(), after.isoformat()} and len(as_of) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["kpis", "--period", "2023-13"], "--period '2023-13'"),
        (["kpis", "--period", "2023-Q5", "--json"], "--period '2023-Q5'"),
        (["check", "--period", "2023/10"], "--period '2023/10'"),
        (["report", "--period", "23", "--out", "x"], "--period '23'"),
        (["kpis", "--period", "2023", "--as-of", "2024-02-30"], "--as-of '2024-02-30'"),
        (["sync", "--source", "payroll"], "--source 'payroll'"),
        (["sync", "--source", "permits"], "RULEWATCH_PERMITS_URL, RULEWATCH_PERMITS_TOKEN"),
    ],
)
def test_bad_usage_exits_2_with_one_line(tmp_path, args, message):
    res = run(args, {}, tmp_path)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1


def test_bad_config_key_exits_2_naming_file_and_key(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, config)
    (config / "alerts.yaml").write_text("reminder_interval_days: often\n")
    res = run(["kpis", "--period", "2023"], {"RULEWATCH_CONFIG_DIR": str(config)}, tmp_path)
    assert res.returncode == 2
    assert "alerts.yaml: reminder_interval_days" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_unreachable_source_exits_1_naming_it(tmp_path):
    env = {
        "RULEWATCH_DOCREVIEW_URL": "http://127.0.0.1:9",
        "RULEWATCH_DOCREVIEW_USER": "u",
        "RULEWATCH_DOCREVIEW_PASSWORD": "p",
    }
    config = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, config)
    text = (config / "sources.yaml").read_text().replace("max_retries: 5", "max_retries: 1")
    (config / "sources.yaml").write_text(text.replace("backoff_factor: 0.5", "backoff_factor: 0"))
    schedule = (config / "schedule.yaml").read_text()  # no Prefect task retry: fail at once
    (config / "schedule.yaml").write_text(schedule.replace("source_task: 1", "source_task: 0"))
    env["RULEWATCH_CONFIG_DIR"] = str(config)
    res = run(["sync", "--source", "docreview"], env, tmp_path)
    assert res.returncode == 1, res.stderr
    assert "docreview" in res.stderr and "cannot reach" in res.stderr
    assert "Traceback" not in res.stderr


def test_demo_twice_alerts_once_per_change(tmp_path):
    hook = Webhook()
    try:
        env = {"RULEWATCH_ALERT_URLS": hook.url}
        first = run(["demo"], env, tmp_path)
        assert first.returncode == 0, first.stderr
        assert "606" in first.stdout and "+10.79%" in first.stdout
        titles = [m["title"] for m in hook.received]
        bodies = "\n".join(m["message"] for m in hook.received)
        assert any("docreview.filing_rate 2024" in t for t in titles), titles
        assert "DOC-2024-002" in bodies
        assert any("DOC-2024-003" in t for t in titles), titles
        count = len(hook.received)
        second = run(["demo"], env, tmp_path)
        assert second.returncode == 0, second.stderr
        assert len(hook.received) == count, json.dumps(hook.received[count:], ensure_ascii=False)
    finally:
        hook.close()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            PermissionError(13, "Permission denied", "/srv/rw/reports"),
            "cannot use /srv/rw/reports: Permission denied "
            "(the user rulewatch runs as needs write access there)",
        ),
        (
            OSError(28, "No space left on device", "/srv/rw/gx/x.json"),
            "cannot use /srv/rw/gx/x.json: No space left on device "
            "(free some space on that disk, then run again)",
        ),
        (
            IsADirectoryError(21, "Is a directory", b"/srv/rw/checks.html"),
            "cannot use /srv/rw/checks.html: Is a directory "
            "(a folder stands where rulewatch writes a file: move it away)",
        ),
        (
            OSError(5, "Input/output error", "/a", None, "/b"),
            "cannot use /a -> /b: Input/output error",
        ),
    ],
)
def test_a_file_error_names_the_path_and_the_fix(exc, expected):  # noqa: ANN001
    from rulewatch.common.files import file_error

    assert file_error(exc) == expected


def test_an_empty_key_file_stops_sync_before_it_starts(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "pii.key").write_text("")  # left by a full disk while an older version made it
    env = clean_env(
        RULEWATCH_DATA_DIR=str(data),
        RULEWATCH_WAREHOUSE_URL=f"sqlite:///{tmp_path / 'wh.db'}",
        RULEWATCH_PERMITS_URL="http://127.0.0.1:9",
        RULEWATCH_PERMITS_TOKEN="t",
        RULEWATCH_ENFORCEMENT_URL="http://127.0.0.1:9",
        RULEWATCH_ENFORCEMENT_API_KEY="k",
        RULEWATCH_DOCREVIEW_URL="http://127.0.0.1:9",
        RULEWATCH_DOCREVIEW_USER="u",
        RULEWATCH_DOCREVIEW_PASSWORD="p",
        PREFECT_HOME=str(tmp_path / "prefect"),
    )
    res = run_rulewatch(env, "sync")
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"rulewatch: error: {data / 'pii.key'}: the pseudonymisation key file is empty (a full "
        "disk or a crash while it was made?): restore it from a backup, or delete it to make "
        "a new key (pseudonyms of rows loaded with the old one will then differ), or set "
        "RULEWATCH_PII_KEY"
    ]


def test_ctrl_c_outside_a_flow_run_ends_in_one_line() -> None:
    """KeyboardInterrupt out of a command (Ctrl-C before its flow ran, or after): one
    ``rulewatch:`` line and exit 1, not a traceback; no Prefect server outlives it."""
    script = (
        "from rulewatch.cli.main import _errors\n"
        "def report():\n"
        "    raise KeyboardInterrupt\n"
        "_errors(report)()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "rulewatch: failed: interrupted (Ctrl-C); the report did not finish "
        "(run it again to complete it)"
    ]
