"""A failed or stale night is announced, and its recovery, to a real webhook.

Syncs and checks run as real `rulewatch` processes against the demo sources;
the clock is advanced for reminders through ``health_pass(now=...)``, never by
sleeping.
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from types import SimpleNamespace

import pytest
from cli_support import clean_env, run_rulewatch
from prefect.states import Crashed, Failed
from receivers import Webhook
from sqlalchemy import insert

from rulewatch.alerts.health import announce_job_failure, health_pass, utc_now
from rulewatch.common.periods import Period
from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import PACKAGE_CONFIG_DIR, load_settings
from rulewatch.demo.servers import start_demo_sources
from rulewatch.report.write import write_report
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.schema import sync_run

AS_OF = "2024-05-20"
DEAD = "http://127.0.0.1:9"  # nothing listens: connection refused at once


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture(scope="module")
def demo():
    with start_demo_sources() as handle:
        yield handle


@pytest.fixture
def config(tmp_path):
    """The packaged config, in English, with a source failing at once (no retries)."""
    folder = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, folder)
    sources = (folder / "sources.yaml").read_text().replace("max_retries: 5", "max_retries: 0")
    (folder / "sources.yaml").write_text(sources)
    alerts = (folder / "alerts.yaml").read_text().replace("language: zh", "language: en")
    (folder / "alerts.yaml").write_text(alerts)
    return folder


def _env(tmp_path, **extra: str) -> dict[str, str]:
    return clean_env(
        RULEWATCH_DATA_DIR=str(tmp_path / "data"),
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        RULEWATCH_PII_KEY="health-test-key",
        **extra,
    )


def _body(hook: Webhook, title: str) -> str:
    return next(m["message"] for m in hook.received if m["title"] == title)


def test_a_source_outage_is_announced_once_reminded_and_recovered(
    tmp_path, warehouse_url, webhook, demo, config
):
    env = _env(
        tmp_path,
        **demo.env(),
        RULEWATCH_CONFIG_DIR=str(config),
        RULEWATCH_WAREHOUSE_URL=warehouse_url,
        RULEWATCH_ALERT_URLS=webhook.url,
    )
    sync = ("sync", "--source", "docreview", "--as-of", AS_OF)
    ok = run_rulewatch(env, *sync)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert webhook.titles("source docreview") == []

    down = run_rulewatch({**env, "RULEWATCH_DOCREVIEW_URL": DEAD}, *sync)
    assert down.returncode == 1, down.stderr[-3000:]
    failing = "[rulewatch] source docreview: sync failing"
    assert webhook.titles("source docreview") == [failing]
    body = _body(webhook, failing)
    assert body.startswith("docreview: the sync of ")
    assert "cannot reach" in body and "127.0.0.1:9" in body
    assert "last successful sync: 20" in body
    assert "\n" not in body.split("failed: ", 1)[1].split("\nfailing since")[0]  # one-line reason

    settings = load_settings(env)
    engine = open_warehouse(warehouse_url, calendar_of(settings))
    try:
        assert health_pass(engine, settings).planned == []  # once per change, however many runs
        later = health_pass(engine, settings, now=utc_now() + timedelta(days=8))
    finally:
        engine.dispose()
    assert sorted(a.title for a in later.planned) == [
        "[rulewatch] source docreview: data stale",
        "[rulewatch] source docreview: still failing",
    ]
    assert "192 h ago (allowed: 36 h)" in _body(webhook, "[rulewatch] source docreview: data stale")

    back = run_rulewatch(env, *sync)
    assert back.returncode == 0, back.stderr[-3000:]
    titles = webhook.titles("source docreview")  # alerts of one pass: in any order
    assert titles[0] == failing and len(titles) == 5
    assert sorted(titles[1:3]) == sorted(a.title for a in later.planned)
    assert sorted(titles[3:]) == [
        "[rulewatch] source docreview: data fresh again",
        "[rulewatch] source docreview: sync recovered",
    ]
    assert _body(webhook, "[rulewatch] source docreview: sync recovered").startswith(
        "docreview: synced successfully at "
    )
    assert webhook.titles("nightly job") == []  # failed sources are announced per source


def test_a_stale_source_is_announced_by_check_and_shown_in_the_report(
    tmp_path, sqlite_url, webhook, config
):
    env = _env(
        tmp_path,
        RULEWATCH_CONFIG_DIR=str(config),
        RULEWATCH_WAREHOUSE_URL=sqlite_url,
        RULEWATCH_ALERT_URLS=webhook.url,
    )
    settings = load_settings(env)
    engine = open_warehouse(sqlite_url, calendar_of(settings))
    synced = utc_now() - timedelta(hours=40)  # the scheduler stopped two nights ago
    with engine.begin() as conn:
        conn.execute(
            insert(sync_run).values(
                sync_run_id="last-good",
                job_id="last-good",
                source="permits",
                is_full_refresh=False,
                started_at=synced - timedelta(minutes=1),
                finished_at=synced,
                status="succeeded",
                holder="gone",
            )
        )
    check = ("check", "--period", "2024", "--as-of", AS_OF)
    first = run_rulewatch(env, *check)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "sources (stale after 36 h):" in first.stdout
    assert "permits      STALE    last success " in first.stdout
    assert webhook.titles() == ["[rulewatch] source permits: data stale"]
    assert "40 h ago (allowed: 36 h)" in webhook.received[0]["message"]
    again = run_rulewatch(env, *check)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "permits      STALE" in again.stdout
    assert len(webhook.received) == 1  # announced once

    files = write_report(engine, settings, Period.parse("2024"), utc_now().date(), tmp_path / "r")
    engine.dispose()
    html = files.html.read_text(encoding="utf-8")
    permits_row = html.split('<tr data-source="permits">', 1)[1].split("</tr>", 1)[0]
    assert "stale: no successful sync for over 36 h" in permits_row
    assert [f.source for f in files.data.freshness if f.stale_after_hours] == ["permits"]


def test_a_failed_or_crashed_nightly_run_is_announced_once_and_its_recovery(
    tmp_path, warehouse_url, webhook, config
):
    env = _env(tmp_path, RULEWATCH_CONFIG_DIR=str(config), RULEWATCH_ALERT_URLS=webhook.url)
    env["RULEWATCH_WAREHOUSE_URL"] = warehouse_url
    os_env = dict(os.environ)
    os.environ.update(env)  # the hook reads the configuration as a flow run would
    try:
        settings = load_settings(env)
        engine = open_warehouse(warehouse_url, calendar_of(settings))
        run = SimpleNamespace(name="brave-fox")
        announce_job_failure(None, run, Failed(message="report-tables: disk full"))
        announce_job_failure(None, run, Crashed(message="Execution was aborted by SIGTERM"))
        assert webhook.titles() == ["[rulewatch] nightly job rulewatch-nightly: failed"]
        assert webhook.received[0]["message"] == (
            "flow run brave-fox ended Failed: report-tables: disk full"
        )
        health_pass(engine, settings, job_got_through=True)
        engine.dispose()
    finally:
        os.environ.clear()
        os.environ.update(os_env)
    assert webhook.titles()[1:] == ["[rulewatch] nightly job rulewatch-nightly: recovered"]


def test_a_nightly_run_whose_warehouse_is_down_is_still_announced(tmp_path, webhook, demo, config):
    env = _env(
        tmp_path,
        **demo.env(),
        RULEWATCH_CONFIG_DIR=str(config),
        RULEWATCH_ALERT_URLS=webhook.url,
        RULEWATCH_WAREHOUSE_URL="postgresql+psycopg://root@127.0.0.1:9/rulewatch",
    )
    res = run_rulewatch(env, "sync", "--source", "docreview", "--as-of", AS_OF)
    assert res.returncode == 1, res.stderr[-3000:]
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]  # one line, and it is
    assert res.stderr.startswith("rulewatch: ")  # the command's own: the alert went quietly
    assert webhook.titles() == ["[rulewatch] nightly job rulewatch-nightly: failed"]
    body = webhook.received[0]["message"]
    assert "ended Failed: " in body and "cannot connect" in body
    assert "the warehouse could not record this alert" in body


def test_source_health_is_announced_per_agency_on_its_channel(tmp_path, warehouse_url):
    """B's enforcement source fails: B's channel hears it, named B, once; A's nothing."""
    from agencies_support import city_config, city_settings, scoped
    from sqlalchemy import select

    from rulewatch.warehouse.schema import alert

    hooks = {a: Webhook() for a in ("science-tech", "market-regulation")}
    try:
        config = city_config(
            tmp_path, {a: h.url for a, h in hooks.items()}, DEAD.replace("http", "json")
        )
        settings, agencies = city_settings(warehouse_url, tmp_path, config)
        engine = open_warehouse(warehouse_url, calendar_of(settings))
        started = utc_now() - timedelta(hours=1)
        with engine.begin() as conn:
            for number, (agency_id, status) in enumerate(
                (("science-tech", "succeeded"), ("market-regulation", "failed"))
            ):
                conn.execute(
                    insert(sync_run).values(
                        sync_run_id=f"run-{number}",
                        job_id=f"job-{number}",
                        agency_id=agency_id,
                        source="enforcement",
                        is_full_refresh=False,
                        started_at=started,
                        finished_at=started + timedelta(minutes=1),
                        status=status,
                        pages=0,
                        records_read=0,
                        records_loaded=0,
                        records_set_aside=0,
                        error="HTTP 503 Service Unavailable" if status == "failed" else None,
                    )
                )
        for _ in range(2):
            for agency_id in hooks:
                health_pass(engine, scoped(settings, agencies, agency_id))
        with engine.connect() as conn:
            keys = conn.execute(select(alert.c.agency_id, alert.c.dedupe_key)).all()
        engine.dispose()
        assert hooks["science-tech"].received == []
        (message,) = hooks["market-regulation"].received
        assert message["title"] == (
            "[rulewatch] [Taizhou Market Regulation Bureau] source enforcement: sync failing"
        )
        lines = message["message"].splitlines()
        assert lines[0] == "agency: Taizhou Market Regulation Bureau (market-regulation)"
        assert "HTTP 503 Service Unavailable" in lines[1]
        ((agency_id, key),) = keys
        assert agency_id == "market-regulation"
        assert key.startswith("market-regulation:sync_failed:source:enforcement:")
    finally:
        for hook in hooks.values():
            hook.close()
