"""Charts drawn in a process of their own are the charts drawn here, byte for byte."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from report_support import demo_warehouse

from rulewatch.common.periods import Period
from rulewatch.demo.data import DEMO_TODAY
from rulewatch.report.drawing import ChartCall, ChartProcess, draw_here
from rulewatch.report.write import chart_calls, write_report


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> Iterator[list[ChartCall]]:  # noqa: ANN001
    folder = tmp_path_factory.mktemp("drawing")
    with demo_warehouse(f"sqlite:///{folder / 'warehouse.db'}", folder) as (engine, settings):
        files = write_report(engine, settings, Period.parse("2024"), DEMO_TODAY, folder / "out")
    yield chart_calls(files.data)


def test_the_chart_process_draws_what_this_process_draws(calls):
    here = draw_here(calls)
    with ChartProcess() as drawer:
        drawer.submit(calls[:2])
        drawer.submit(calls[2:])
        there = drawer.collect() + drawer.collect()
    assert [c.key for c in here] == ["scorecard", "history", "monthly-targets", "monthly-counts"]
    assert there == here


def test_charts_a_stopped_process_did_not_draw_are_drawn_here(calls):
    with ChartProcess() as drawer:
        drawer._process.kill()
        drawer.submit(calls[:1])
        assert drawer.collect() == draw_here(calls[:1])


def test_a_chart_the_process_cannot_draw_fails_here_as_it_would_have():
    with ChartProcess() as drawer:
        drawer.submit([("savefig", ())])
        with pytest.raises(ValueError, match="not a chart: savefig"):
            drawer.collect()
        assert drawer._process is None  # stopped: what follows is drawn here
