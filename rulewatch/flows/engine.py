"""Two waits Prefect 3's flow engine adds to every run, taken out (same record of the run).

Measured on a night with nothing new (``bench/run.py``): the nightly flow's own
work was about 1.6 s, of which about 1.1 s was Prefect's between the tasks. Two
parts of it are waits, not work:

- **The heartbeat thread's join.** A synchronous flow run sends heartbeats from a
  thread that sleeps in one-second steps; when the run ends, the engine sets the
  thread's stop event and joins it, which waits up to a second for the sleep in
  progress (0.5 s on average, per run). The thread sends nothing once the event
  is set, and is a daemon: Prefect's asynchronous engine does not join it
  (``join_on_exit=False``), and neither do we.
- **FastAPI, imported to store the parameters.** ``Flow.serialize_parameters``
  imports FastAPI's ``jsonable_encoder`` (0.13 s of imports, per process) to turn
  each parameter into JSON. The nightly flows' parameters are plain values
  (None, booleans, numbers, text, dates, lists of text), which it turns into
  themselves and dates into ISO text; those are encoded here the same way, and
  anything else still goes to FastAPI.

:func:`quicken_prefect` applies both, once per process; it leaves Prefect as it
is if a future release changed what it replaces.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date
from functools import wraps
from typing import Any

_APPLIED: list[bool] = []


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def plain_json(value: Any) -> tuple[bool, Any]:
    """``(True, JSON value)`` for a plain parameter value, encoded as FastAPI's
    ``jsonable_encoder`` encodes it; ``(False, None)`` for anything else."""
    if _scalar(value):
        return True, value
    if isinstance(value, date):  # a datetime too: ISO text, as jsonable_encoder writes it
        return True, value.isoformat()
    if isinstance(value, list | tuple) and all(_scalar(v) for v in value):
        return True, list(value)
    return False, None


def quicken_prefect() -> bool:
    """Take the two waits out of Prefect's flow engine (see the module); True if both
    were applied now or before, False if this Prefect's engine differs (left as is)."""
    if _APPLIED:
        return _APPLIED[0]
    import prefect.flow_engine as flow_engine
    from prefect.flows import Flow

    heartbeats = getattr(flow_engine, "_send_heartbeats", None)
    serialize = getattr(Flow, "serialize_parameters", None)
    known = (
        heartbeats is not None
        and "join_on_exit" in inspect.signature(heartbeats).parameters
        and serialize is not None
    )
    if known:
        flow_engine._send_heartbeats = _unjoined(heartbeats)
        Flow.serialize_parameters = _plain_first(serialize)
    _APPLIED.append(known)
    return known


def _unjoined(
    heartbeats: Callable[..., AbstractContextManager[None]],
) -> Callable[..., AbstractContextManager[None]]:
    @wraps(heartbeats)
    def send_heartbeats(engine: Any, join_on_exit: bool = True) -> AbstractContextManager[None]:
        return heartbeats(engine, join_on_exit=False)

    return send_heartbeats


def _plain_first(serialize: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    @wraps(serialize)
    def serialize_parameters(self: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        encoded = {key: plain_json(value) for key, value in parameters.items()}
        if self.ismethod or self.isclassmethod or not all(p for p, _ in encoded.values()):
            return serialize(self, parameters)  # the whole set as Prefect does it
        return {key: as_json for key, (_, as_json) in encoded.items()}

    return serialize_parameters
