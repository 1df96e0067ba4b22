"""Metrics per agency and the city rollup, on SQLite and PostgreSQL (issue 16 §2).

Three demo agencies (``tests/city_support.py``) are each synced into a warehouse
of their own, the single-agency warehouse every figure must agree with; their
core rows are then written, agency by agency, into one city warehouse. Each agency's figures there equal its own
warehouse's; the rollup's numerators and denominators are the sums, its rates
their ratios (which the demo data makes differ from the mean of the rates).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta

import pytest
from city_support import BASE, CityData, city_data, city_warehouse
from pgschema import fresh_schema_url
from sqlalchemy import Engine, event, func, select

from rulewatch.common.metric_ids import METRICS, RATE_METRICS
from rulewatch.common.periods import Period
from rulewatch.common.workdays import calendar_of
from rulewatch.config.agencies import ALL_AGENCIES
from rulewatch.demo.data import DEMO_TODAY
from rulewatch.metrics.compute import (
    MetricValue,
    compute_city_history,
    compute_city_metrics,
    compute_metrics,
    compute_metrics_history,
    early_warnings,
    provisional_metrics,
    rate_population,
    target_status,
)
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.schema import CORE_TABLES

PERIODS = ("2023", "2024", "2023-Q4", "2024-03")
TARGETS = BASE.targets


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def city_sources(tmp_path_factory) -> Iterator[CityData]:  # noqa: ANN001
    with city_data(tmp_path_factory.mktemp("city")) as data:
        yield data


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def city_url(request, city_sources: CityData, tmp_path_factory) -> Iterator[str]:  # noqa: ANN001
    """One city warehouse per backend holding the three agencies' core rows."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('citywh') / 'city.db'}"
        city_warehouse(url, city_sources.singles)
        yield url
        return
    with fresh_schema_url() as url:
        city_warehouse(url, city_sources.singles)
        yield url


@pytest.fixture(scope="module")
def city(city_url: str) -> Iterator[Engine]:
    engine = open_warehouse(city_url, calendar_of(BASE))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def expected(city_sources) -> dict[str, dict[str, list[MetricValue]]]:  # noqa: ANN001
    """agency id -> period -> the metrics its own warehouse gives, named as its."""
    singles = city_sources.singles
    found: dict[str, dict[str, list[MetricValue]]] = {}
    for agency_id, url in singles.items():
        engine = open_warehouse(url, calendar_of(BASE))
        with engine.connect() as conn:
            found[agency_id] = {
                p: [
                    replace(m, agency_id=agency_id)
                    for m in compute_metrics(conn, Period.parse(p), DEMO_TODAY, TARGETS)
                ]
                for p in PERIODS
            }
        engine.dispose()
    return found


def ids(city_sources: CityData) -> list[str]:
    return list(city_sources.agency_ids)


# --- each agency as its own warehouse gives it ----------------------------------------------


@pytest.mark.parametrize("period", PERIODS)
def test_each_agency_equals_its_own_warehouse(city, city_sources, expected, period) -> None:  # noqa: ANN001
    agency_ids = ids(city_sources)
    every = dict.fromkeys(agency_ids, TARGETS)
    with city.connect() as conn:
        together = compute_city_metrics(conn, Period.parse(period), DEMO_TODAY, every, TARGETS)
        for agency_id in agency_ids:
            alone = compute_metrics(
                conn, Period.parse(period), DEMO_TODAY, TARGETS, agency_id=agency_id
            )
            assert alone == expected[agency_id][period], (agency_id, period)
            assert together[agency_id] == alone, (agency_id, period)
        # nothing is the default agency's in a city warehouse: all zeros, no data
        nobody = {
            m.metric: m for m in compute_metrics(conn, Period.parse(period), DEMO_TODAY, TARGETS)
        }
    assert nobody["permits.received"].value == 0
    assert nobody["permits.on_time_rate"].status == "no_data"


def test_record_level_queries_read_one_agency(city, city_sources) -> None:  # noqa: ANN001
    """The populations behind the rates, the provisional flags and the early warnings of
    each agency are its own warehouse's."""
    singles = city_sources.singles
    period = Period.parse("2024")
    for agency_id, url in singles.items():
        single = open_warehouse(url, calendar_of(BASE))
        with single.connect() as own, city.connect() as conn:
            for metric in RATE_METRICS:
                mine = own.execute(rate_population(metric, period, DEMO_TODAY)).all()
                theirs = conn.execute(
                    rate_population(metric, period, DEMO_TODAY, agency_id=agency_id)
                ).all()
                assert [tuple(r) for r in theirs] == [tuple(r) for r in mine], (agency_id, metric)
            assert provisional_metrics(
                conn, period, DEMO_TODAY, agency_id=agency_id
            ) == provisional_metrics(own, period, DEMO_TODAY)
            assert early_warnings(conn, DEMO_TODAY, 30, agency_id=agency_id) == early_warnings(
                own, DEMO_TODAY, 30
            )
        single.dispose()


# --- the rollup -----------------------------------------------------------------------------


@pytest.mark.parametrize("period", PERIODS)
def test_the_rollup_sums_numerators_and_denominators(city, city_sources, period) -> None:  # noqa: ANN001
    agency_ids = ids(city_sources)
    # The first agency's own threshold must not reach the rollup: targets.yaml's does.
    strict = {m: t.model_copy(update={"target": 1.0}) for m, t in TARGETS.items()}
    every = {agency_ids[0]: strict, **dict.fromkeys(agency_ids[1:], TARGETS)}
    with city.connect() as conn:
        found = compute_city_metrics(conn, Period.parse(period), DEMO_TODAY, every, TARGETS)
        alone = compute_metrics(
            conn, Period.parse(period), DEMO_TODAY, TARGETS, agency_id=ALL_AGENCIES,
            agencies=agency_ids,
        )  # fmt: skip
    rollup = {m.metric: m for m in found[ALL_AGENCIES]}
    assert alone == found[ALL_AGENCIES]
    assert list(rollup) == list(METRICS)
    parts = [{m.metric: m for m in found[a]} for a in agency_ids]
    for metric, (kind, _, _) in METRICS.items():
        r = rollup[metric]
        assert r.agency_id == ALL_AGENCIES and r.period == period and r.as_of == DEMO_TODAY
        if kind == "count":
            assert r.value == sum(p[metric].value for p in parts), metric
            assert r.status == "info"
            continue
        numerator = sum(p[metric].numerator for p in parts)
        denominator = sum(p[metric].denominator for p in parts)
        assert (r.numerator, r.denominator) == (numerator, denominator), metric
        assert r.value == (numerator / denominator if denominator else None), metric
        assert r.provisional == any(p[metric].provisional for p in parts)
        if kind == "rate":
            target = float(TARGETS[metric].target) if metric in TARGETS else None
            assert (r.target, r.status) == (target, target_status(r.value, target)), metric
        else:
            assert r.status == "info"


def test_the_rollup_is_no_mean_of_rates(city, city_sources) -> None:  # noqa: ANN001
    """The data are such that a mean of the agencies' rates would give other figures."""
    agency_ids = ids(city_sources)
    with city.connect() as conn:
        found = compute_city_metrics(
            conn, Period.parse("2023"), DEMO_TODAY, dict.fromkeys(agency_ids, TARGETS), TARGETS
        )
    rollup = {m.metric: m for m in found[ALL_AGENCIES]}
    on_time = [next(m for m in found[a] if m.metric == "permits.on_time_rate") for a in agency_ids]
    mean = sum(m.value for m in on_time) / len(on_time)
    assert len({m.denominator for m in on_time}) > 1
    assert abs(rollup["permits.on_time_rate"].value - mean) > 1e-9
    assert rollup["permits.on_time_rate"].value == sum(m.numerator for m in on_time) / sum(
        m.denominator for m in on_time
    )


def test_history_equals_each_day(city, city_sources) -> None:  # noqa: ANN001
    """Per agency and for the rollup, every as-of date of the history is what one day's
    computation gives, from one query per core table."""
    agency_ids = ids(city_sources)
    every = dict.fromkeys(agency_ids, TARGETS)
    period = Period.parse("2024")
    days = [date(2024, 1, 1), date(2024, 2, 29), date(2024, 3, 31), DEMO_TODAY]
    with city.connect() as conn:
        history = compute_city_history(conn, period, days, every, TARGETS)
        assert set(history) == {*agency_ids, ALL_AGENCIES}
        for day in days:
            city_day = compute_city_metrics(conn, period, day, every, TARGETS)
            for agency_id in [*agency_ids, ALL_AGENCIES]:
                assert history[agency_id][day] == city_day[agency_id], (agency_id, day)
        one = agency_ids[1]
        alone = compute_metrics_history(conn, period, days, TARGETS, agency_id=one)
        assert alone == history[one]
        rollup = compute_metrics_history(
            conn, period, days, TARGETS, agency_id=ALL_AGENCIES, agencies=agency_ids
        )
        assert rollup == history[ALL_AGENCIES]
        assert compute_city_history(conn, period, [], every, TARGETS)[ALL_AGENCIES] == {}


def test_every_agency_and_the_rollup_cost_one_query_per_core_table(city, city_sources) -> None:  # noqa: ANN001
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        statements.append(statement)

    agency_ids = ids(city_sources)
    event.listen(city, "before_cursor_execute", count)
    try:
        with city.connect() as conn:
            statements.clear()
            compute_city_metrics(
                conn, Period.parse("2023"), DEMO_TODAY, dict.fromkeys(agency_ids, TARGETS), TARGETS
            )
            assert len(statements) == len(CORE_TABLES)
            statements.clear()
            days = [DEMO_TODAY - timedelta(days=n) for n in range(30)]
            compute_city_history(
                conn, Period.parse("2024"), days, dict.fromkeys(agency_ids, TARGETS), TARGETS
            )
            assert len(statements) == len(CORE_TABLES)
    finally:
        event.remove(city, "before_cursor_execute", count)


def test_an_agency_without_rows_counts_zero(city) -> None:  # noqa: ANN001
    """An agency of the file with nothing loaded yet (its first night failed) adds zeros."""
    with city.connect() as conn:
        found = compute_city_metrics(
            conn,
            Period.parse("2023"),
            DEMO_TODAY,
            {"science-tech": TARGETS, "not-loaded": TARGETS},
            TARGETS,
        )
        only = compute_metrics(
            conn, Period.parse("2023"), DEMO_TODAY, TARGETS, agency_id="science-tech"
        )
    empty = {m.metric: m for m in found["not-loaded"]}
    assert empty["permits.received"].value == 0
    assert (empty["permits.on_time_rate"].numerator, empty["permits.on_time_rate"].denominator) == (
        0,
        0,
    )
    assert [replace(m, agency_id="x") for m in found[ALL_AGENCIES]] == [
        replace(m, agency_id="x") for m in only
    ]


def test_json_names_the_agency_only_when_asked() -> None:
    m = MetricValue("permits.received", "2023", DEMO_TODAY, 3, None, None, None, "info")
    assert "agency" not in m.to_json()
    assert m.to_json(with_agency=True) == {"agency": "default", **m.to_json()}
    assert list(replace(m, agency_id="all").to_json(with_agency=True))[0] == "agency"


def _core_count(engine: Engine, agency_id: str) -> int:
    table = CORE_TABLES["permits.applications"]
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(table).where(table.c.agency_id == agency_id)
        ).scalar_one()


def test_the_city_warehouse_holds_each_agency_apart(city, city_sources) -> None:  # noqa: ANN001
    for agency_id in ids(city_sources):
        assert _core_count(city, agency_id) > 0
    assert _core_count(city, "default") == 0
