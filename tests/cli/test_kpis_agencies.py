"""`rulewatch kpis --agency ID|all` from outside (issue 16 §6): the JSON contract with and
without agencies.yaml, the table view, and the usage errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from city_support import BASE, CityData, city_data, city_warehouse
from cli_support import clean_env, run_rulewatch

from rulewatch.common.metric_ids import METRICS
from rulewatch.common.periods import Period
from rulewatch.common.workdays import calendar_of
from rulewatch.demo.data import DEMO_TODAY
from rulewatch.metrics.compute import compute_metrics
from rulewatch.warehouse.db import open_warehouse

AS_OF = DEMO_TODAY.isoformat()
KPIS = ("kpis", "--period", "2023", "--as-of", AS_OF)


@dataclass(frozen=True)
class City:
    data: CityData
    env: dict[str, str]  # agencies.yaml in the config folder, the city warehouse


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Iterator[City]:  # noqa: ANN001
    folder = tmp_path_factory.mktemp("kpis-city")
    with city_data(folder) as data:
        url = f"sqlite:///{folder / 'city.db'}"
        city_warehouse(url, data.singles)
        env = clean_env(
            RULEWATCH_CONFIG_DIR=str(data.config_dir),
            RULEWATCH_WAREHOUSE_URL=url,
            RULEWATCH_DATA_DIR=str(folder / "data"),
        )
        yield City(data, env)


def single_env(city: City, agency_id: str) -> dict[str, str]:
    """One agency's own warehouse, no agencies.yaml: today's set-up."""
    return clean_env(
        RULEWATCH_WAREHOUSE_URL=city.data.singles[agency_id],
        RULEWATCH_DATA_DIR=city.env["RULEWATCH_DATA_DIR"],
    )


def kpis_json(env: dict[str, str], *args: str) -> list[dict]:
    shown = run_rulewatch(env, *KPIS, "--json", *args)
    assert shown.returncode == 0, shown.stderr[-2000:]
    return json.loads(shown.stdout)


def test_without_agencies_yaml_the_json_is_as_before(city: City) -> None:
    agency_id = city.data.agency_ids[1]
    env = single_env(city, agency_id)
    shown = run_rulewatch(env, *KPIS, "--json")
    assert shown.returncode == 0, shown.stderr[-2000:]
    engine = open_warehouse(city.data.singles[agency_id], calendar_of(BASE))
    with engine.connect() as conn:
        metrics = compute_metrics(conn, Period.parse("2023"), DEMO_TODAY, BASE.targets)
    engine.dispose()
    assert shown.stdout == json.dumps([m.to_json() for m in metrics], ensure_ascii=False) + "\n"
    assert all("agency" not in o for o in json.loads(shown.stdout))
    for chosen in ("default", "all"):  # the one agency, however it is named
        again = run_rulewatch(env, *KPIS, "--json", "--agency", chosen)
        assert (again.returncode, again.stdout) == (0, shown.stdout), again.stderr[-2000:]


def test_every_agency_and_the_rollup_each_naming_its_agency(city: City) -> None:
    ids = list(city.data.agency_ids)
    found = kpis_json(city.env, "--agency", "all")
    assert [o["agency"] for o in found] == [a for a in [*ids, "all"] for _ in METRICS]
    assert all(list(o)[0] == "agency" for o in found)
    by_agency: dict[str, dict[str, dict]] = {}
    for o in found:
        by_agency.setdefault(o["agency"], {})[o["metric"]] = o
    for agency_id in ids:
        own = kpis_json(single_env(city, agency_id))
        assert [{"agency": agency_id, **o} for o in own] == list(by_agency[agency_id].values())
    rollup = by_agency["all"]
    for metric, (kind, _, _) in METRICS.items():
        parts = [by_agency[a][metric] for a in ids]
        if kind == "count":
            assert rollup[metric]["value"] == sum(p["value"] for p in parts)
            continue
        n, d = sum(p["numerator"] for p in parts), sum(p["denominator"] for p in parts)
        assert (rollup[metric]["numerator"], rollup[metric]["denominator"]) == (n, d)
        assert rollup[metric]["value"] == (n / d if d else None)


def test_one_agency_of_the_file(city: City) -> None:
    agency_id = city.data.agency_ids[2]
    found = kpis_json(city.env, "--agency", agency_id)
    own = kpis_json(single_env(city, agency_id))
    assert found == [{"agency": agency_id, **o} for o in own]


def test_the_table_view_shows_each_agency_then_the_rollup(city: City) -> None:
    shown = run_rulewatch(city.env, *KPIS, "--agency", "all")
    assert shown.returncode == 0, shown.stderr[-2000:]
    titles = [line for line in shown.stdout.splitlines() if f"2023 as of {AS_OF}" in line]
    zh = BASE.alerts.language == "zh"  # alerts.yaml's language names them
    names = [f"{city.data.names[a][0 if zh else 1]} ({a})" for a in city.data.agency_ids]
    rollup = "全市汇总，3 个单位 (all)" if zh else "City rollup of 3 (all)"
    assert len(titles) == 4
    for title, name in zip(titles, [*names, rollup], strict=True):
        assert title.strip().startswith(name), (title, name)


def test_several_agencies_and_no_choice_is_a_usage_error(city: City) -> None:
    shown = run_rulewatch(city.env, *KPIS, "--json")
    assert shown.returncode == 2
    assert shown.stdout == ""
    ids = ", ".join(city.data.agency_ids)
    assert shown.stderr.strip().splitlines() == [
        f"rulewatch: error: --agency: 3 agencies are configured; choose one of {ids} or all"
    ]
    unknown = run_rulewatch(city.env, *KPIS, "--agency", "nobody")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        f"rulewatch: error: --agency 'nobody': no such agency; known: {ids}"
    ]
