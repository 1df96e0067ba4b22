"""`rulewatch sync` with agencies.yaml: one run per agency, the failed one named (issue 16)."""

from __future__ import annotations

import shutil

import yaml
from cli_support import clean_env, run_rulewatch

from rulewatch.config.settings import PACKAGE_CONFIG_DIR
from rulewatch.demo.agencies import demo_agencies, start_agency_sources
from rulewatch.demo.data import DEMO_TODAY


def _city_env(tmp_path, sources) -> dict[str, str]:  # noqa: ANN001 - AgencySources
    config = tmp_path / "config"
    shutil.copytree(
        PACKAGE_CONFIG_DIR, config, ignore=lambda _d, n: [x for x in n if not x.endswith(".yaml")]
    )
    schedule = yaml.safe_load((config / "schedule.yaml").read_text(encoding="utf-8"))
    schedule["retries"]["source_task"] = 0  # the failing source is given up on at once
    (config / "schedule.yaml").write_text(yaml.safe_dump(schedule), encoding="utf-8")
    text = (config / "sources.yaml").read_text(encoding="utf-8")
    sources_yaml = yaml.safe_load(text)
    sources_yaml["enforcement"].update(max_retries=0)
    (config / "sources.yaml").write_text(yaml.safe_dump(sources_yaml), encoding="utf-8")
    (config / "agencies.yaml").write_text(sources.agencies_yaml(), encoding="utf-8")
    return clean_env(
        **sources.env(),
        RULEWATCH_CONFIG_DIR=str(config),
        RULEWATCH_DATA_DIR=str(tmp_path / "data"),
        RULEWATCH_WAREHOUSE_URL=f"sqlite:///{tmp_path / 'wh.db'}",
        PREFECT_HOME=str(tmp_path / "prefect"),
        RULEWATCH_PII_KEY="cli-test-key",
    )


def test_sync_runs_every_agency_and_names_the_one_that_failed(tmp_path):
    agencies = demo_agencies(2)
    ok, failing = (a.agency_id for a in agencies)
    with start_agency_sources(agencies) as sources:
        env = _city_env(tmp_path, sources)
        unknown = run_rulewatch(env, "sync", "--agency", "nope")
        done = run_rulewatch(env, "sync", "--as-of", DEMO_TODAY.isoformat())
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        f"rulewatch: error: --agency 'nope': no such agency; known: {ok}, {failing}"
    ]
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"rulewatch: failed: nightly run failed for agencies: {failing} (")
    assert "enforcement" in last and ok not in last
    for agency in agencies:  # each agency's figures under its name, the failed one's too
        assert f"{agency.agency_id}: {agency.name_zh}" in done.stdout
    assert done.stdout.count(f"{DEMO_TODAY.year} as of {DEMO_TODAY}") == 2  # two scorecards
    assert "Traceback" not in done.stderr


def test_demo_of_a_city_shows_the_league_table_and_names_the_failing_agency(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(
        PACKAGE_CONFIG_DIR, config, ignore=lambda _d, n: [x for x in n if not x.endswith(".yaml")]
    )
    sources_yaml = yaml.safe_load((config / "sources.yaml").read_text(encoding="utf-8"))
    sources_yaml["enforcement"].update(max_retries=0)  # the demo copies this config
    (config / "sources.yaml").write_text(yaml.safe_dump(sources_yaml), encoding="utf-8")
    env = clean_env(
        RULEWATCH_CONFIG_DIR=str(config),
        RULEWATCH_DATA_DIR=str(tmp_path / "data"),
        PREFECT_HOME=str(tmp_path / "prefect"),
    )
    done = run_rulewatch(env, "demo", "--agencies", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    ok, failing = (a.agency_id for a in demo_agencies(2))
    table = done.stdout[done.stdout.index("league table") :]
    header = next(line for line in table.splitlines() if "metric" in line)
    assert [ok, failing, "all"] == [w for w in header.split() if w in (ok, failing, "all")]
    # last year's table, where the demo agencies differ, then this year's to date
    last, this = DEMO_TODAY.year - 1, DEMO_TODAY.year
    assert f"{last} as of {DEMO_TODAY}: league table" in done.stdout
    assert f"{this} as of {DEMO_TODAY}: league table" in done.stdout
    assert f"agency {failing} failed: sync failed for: enforcement" in done.stdout
    city = tmp_path / "data" / "city-demo"
    assert (city / "config" / "agencies.yaml").exists()
    assert f"city report: {city / 'city'}" in done.stdout
    assert (city / "warehouse.db").exists()
    assert not (tmp_path / "data" / "warehouse.db").exists()  # the plain demo's is untouched
