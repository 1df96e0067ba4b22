"""Prefect's flow engine without its two waits: the same parameters stored, no join."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.encoders import jsonable_encoder
from prefect import flow

from rulewatch.flows.engine import plain_json, quicken_prefect

PLAIN = [
    None,
    True,
    0,
    2.5,
    "招商",
    date(2024, 5, 20),
    datetime(2024, 5, 20, 3, 4, 5),
    datetime(2024, 5, 20, 3, 4, 5, tzinfo=UTC),
    ["permits", "docreview"],
    ("permits", None, 3),
    [],
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values_are_encoded_as_fastapi_encodes_them(value):
    assert plain_json(value) == (True, jsonable_encoder(value))


@dataclass
class Window:
    first: date
    last: date


@pytest.mark.parametrize("value", [{"a": 1}, Window(date(2024, 1, 1), date(2024, 2, 1)), [[1]]])
def test_anything_else_is_left_to_fastapi(value):
    assert plain_json(value) == (False, None)


def test_a_flows_parameters_are_stored_as_before():
    @flow
    def night(as_of: date, sources: list[str] | None = None, window: Any = None) -> None: ...

    params = {"as_of": date(2024, 5, 20), "sources": ["permits"], "window": None}
    before = night.serialize_parameters(params)
    odd = {**params, "window": Window(date(2024, 1, 1), date(2024, 2, 1))}
    before_odd = night.serialize_parameters(odd)
    assert quicken_prefect()
    assert (
        night.serialize_parameters(params)
        == before
        == {
            "as_of": "2024-05-20",
            "sources": ["permits"],
            "window": None,
        }
    )
    assert night.serialize_parameters(odd) == before_odd  # FastAPI's, unchanged
    assert before_odd["window"] == {"first": "2024-01-01", "last": "2024-02-01"}


class _Engine:
    """What ``_send_heartbeats`` reads of a flow run engine: its interval and emitter."""

    heartbeat_seconds = 30
    flow_run = None
    logger = logging.getLogger("test")

    def __init__(self) -> None:
        self.sent = threading.Semaphore(0)
        self.count = 0

    def _build_heartbeat_event_template(self) -> tuple[dict[str, str], list[Any]]:
        return {}, []

    def _emit_flow_run_heartbeat(self, resource: Any, related: Any) -> None:
        self.count += 1
        self.sent.release()


def test_the_heartbeat_thread_is_stopped_not_waited_for():
    import prefect.flow_engine as flow_engine

    assert quicken_prefect()
    engine = _Engine()
    before = set(threading.enumerate())
    with flow_engine._send_heartbeats(engine):  # the engine calls it with the default join
        assert engine.sent.acquire(timeout=10)  # the first heartbeat went out
        (beats,) = set(threading.enumerate()) - before
    # stopped, but not joined: the thread is still in its one-second sleep
    assert beats.is_alive()
    beats.join(timeout=10)
    assert not beats.is_alive()
    assert engine.count == 1  # nothing sent after the stop
