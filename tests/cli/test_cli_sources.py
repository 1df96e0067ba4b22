"""`rulewatch sync` as an operator runs it, against source servers that misbehave.

Each run must end by itself within its bound, exit 1, and say what happened in
one ``rulewatch:`` line on stderr naming every failed source; nothing a server
said reaches the terminal raw, and the sources that behave still load.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import yaml
from cli_support import clean_env, run_rulewatch
from scripted_sources import ScriptedSource, inspection_record, trickle

from rulewatch.config.settings import PACKAGE_CONFIG_DIR

#: Tight bounds for the run (the defaults are minutes); Prefect's start-up comes on top.
LIMITS = {
    "timeout_seconds": 2,
    "request_deadline_seconds": 2,
    "retry_deadline_seconds": 4,
    "max_retries": 2,
    "backoff_factor": 0,
}
HOSTILE = "\x1b[2J\x1b[H\x1b]0;pwned\x07[/bold]gone\x00" + "\x00" * 5000


def sync(
    tmp_path: Path, sources: dict[str, ScriptedSource]
) -> tuple[subprocess.CompletedProcess, float]:
    config = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, config)
    options = yaml.safe_load((config / "sources.yaml").read_text())
    for name in options:
        options[name].update(LIMITS)
    (config / "sources.yaml").write_text(yaml.safe_dump(options))
    env = clean_env(
        RULEWATCH_CONFIG_DIR=str(config),
        RULEWATCH_DATA_DIR=str(tmp_path / "data"),
        RULEWATCH_WAREHOUSE_URL=f"sqlite:///{tmp_path / 'wh.db'}",
        PREFECT_HOME=str(tmp_path / "prefect"),
        RULEWATCH_PII_KEY="cli-test-key",
        RULEWATCH_PERMITS_URL=sources["permits"].url,
        RULEWATCH_PERMITS_TOKEN="t0ken",
        RULEWATCH_ENFORCEMENT_URL=sources["enforcement"].url,
        RULEWATCH_ENFORCEMENT_API_KEY="k3y",
        RULEWATCH_DOCREVIEW_URL=sources["docreview"].url,
        RULEWATCH_DOCREVIEW_USER="u",
        RULEWATCH_DOCREVIEW_PASSWORD="s3cret",
    )
    started = time.monotonic()
    res = run_rulewatch(env, "sync", "--as-of", "2024-05-01")
    return res, time.monotonic() - started


def one_rulewatch_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("rulewatch:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_looping_trickling_and_foreign_sources_each_end_with_one_line(tmp_path):
    apps = [
        {"application_id": f"P{i}", "updated_at": "2024-01-02T10:00:00+08:00"} for i in range(4)
    ]
    with (
        ScriptedSource("permits", apps) as permits,
        ScriptedSource("enforcement", []) as enforcement,
        ScriptedSource("docreview", []) as docreview,
        ScriptedSource("docreview", []) as elsewhere,
    ):
        # permits sends the same next_cursor forever
        permits.misbehave = lambda _n, _p, q: (
            200,
            {"data": apps[2:] if "cursor" in q else apps[:2], "next_cursor": "again"},
            {},
        )
        # enforcement answers one byte every half second
        enforcement.raw = trickle(enforcement, b'{"total": 0, "records": []}' + b" " * 100, 0.5)
        # docreview's next page is on another origin
        foreign = f'<{elsewhere.url}/v2/documents?page=2>; rel="next"'
        docreview.misbehave = lambda _n, _p, _q: (
            200,
            [{"doc_id": "D1", "last_modified_ms": 1}],
            {"Link": foreign},
        )
        res, seconds = sync(
            tmp_path, {"permits": permits, "enforcement": enforcement, "docreview": docreview}
        )
        assert elsewhere.queries == []  # the credentials never left the base URL's origin
    assert res.returncode == 1, res.stderr
    line = one_rulewatch_line(res.stderr)
    assert line.startswith("rulewatch: failed: sync failed for: ")
    assert "permits (permits.applications: next_cursor 'again' came a second time" in line
    assert "enforcement (enforcement: " in line and "did not answer in full within 2 s" in line
    assert 'docreview (docreview: the Link rel="next" ' in line and "another origin" in line
    assert seconds < 180  # Prefect's start-up, then each guard within its bound
    print(f"looping/trickling/foreign sync ended in {seconds:.1f} s")


def test_server_text_never_reaches_the_terminal_raw_and_the_others_load(tmp_path):
    with (
        ScriptedSource("permits", []) as permits,
        ScriptedSource("enforcement", [inspection_record(i) for i in range(5)]) as enforcement,
        ScriptedSource("docreview", []) as docreview,
    ):
        docreview.misbehave = lambda _n, _p, _q: (500, {"error": HOSTILE}, {})
        # enforcement serves 2 a page whatever page_size asks, and its total says 5
        contract = enforcement._enforcement
        enforcement.misbehave = lambda _n, path, q: (
            None if path == "/api/officers" else contract({**q, "page_size": "2"})
        )
        res, seconds = sync(
            tmp_path, {"permits": permits, "enforcement": enforcement, "docreview": docreview}
        )
    assert res.returncode == 1, res.stderr
    line = one_rulewatch_line(res.stderr)
    assert "sync failed for: docreview (docreview: HTTP 500 from" in line
    assert ": [/bold]gone (after 3 tries over" in line
    for stream in (res.stdout, res.stderr):
        assert "\x1b" not in stream and "\x00" not in stream and "pwned" not in stream
    with sqlite3.connect(tmp_path / "wh.db") as db:
        runs = dict(db.execute("select source, status from sync_run").fetchall())
        (error,) = db.execute("select error from sync_run where source = 'docreview'").fetchone()
        inspections = db.execute("select count(*) from inspection").fetchone()[0]
    assert runs == {"permits": "succeeded", "enforcement": "succeeded", "docreview": "failed"}
    assert inspections == 5  # short pages read on while the total said more: not 2 of 5
    assert "\x00" not in error and "\x1b" not in error and len(error) < 500
    print(f"hostile error text sync ended in {seconds:.1f} s")
