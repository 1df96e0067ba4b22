"""Log lines an operator can use: when, how bad, where from; text or JSON.

The CLI sets up one handler on the root logger, which Prefect's loggers
propagate to (Prefect leaves the root alone once it has a handler of ours).
On a terminal a line is just the message, as before. Elsewhere (cron,
systemd, a Prefect worker) every line carries an ISO 8601 time, the level and
where it comes from (the Prefect task or flow run, else the logger), or, with
``RULEWATCH_LOG_FORMAT=json``, is one JSON object for a log collector.

Request retries are told in one readable line by :func:`log_retry`, called
from the source engine's Retry; urllib3's raw ``Retrying (...)`` lines are
dropped, since they say the same thing less clearly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from datetime import datetime
from typing import Any

retry_log = logging.getLogger("rulewatch.retry")

#: Prefect's warning on every task with a timeout that runs in a worker thread: the
#: source engine bounds each request itself (README, "Operations"), so it says nothing
#: an operator can act on.
_THREAD_TIMEOUT_WARNING = "configured for this task, but the task is running in a worker thread"


def _where(record: logging.LogRecord) -> str:
    task = getattr(record, "task_run_name", None)
    if task:
        return f"task {task}"
    flow_run = getattr(record, "flow_run_name", None)
    if flow_run:
        return f"flow {getattr(record, 'flow_name', None) or 'run'} {flow_run}"
    return record.name


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


def _drop_empty_exc_info(record: logging.LogRecord) -> None:
    """``exc_info=True`` outside an exception prints ``NoneType: None``: drop it."""
    if record.exc_info and record.exc_info[0] is None:
        record.exc_info = None


class TextFormatter(logging.Formatter):
    """``2026-11-30T02:00:01.123+08:00 INFO    task sync-permits: message``."""

    def format(self, record: logging.LogRecord) -> str:
        _drop_empty_exc_info(record)
        line = f"{_time(record)} {record.levelname:<7} {_where(record)}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class PlainFormatter(logging.Formatter):
    """The message alone (a terminal: the person reading it knows when and where)."""

    def format(self, record: logging.LogRecord) -> str:
        _drop_empty_exc_info(record)
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, where, message, run ids, exception."""

    _RUN_FIELDS = ("flow_name", "flow_run_name", "flow_run_id", "task_run_name", "task_run_id")

    def format(self, record: logging.LogRecord) -> str:
        _drop_empty_exc_info(record)
        doc: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "where": _where(record),
            "message": record.getMessage(),
        }
        for name in self._RUN_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = str(value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


class _DropNoise(logging.Filter):
    """Drop urllib3's raw retry lines (told by :func:`log_retry`) and Prefect's thread warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("urllib3") and str(record.msg).startswith("Retrying ("):
            return False
        return _THREAD_TIMEOUT_WARNING not in str(record.msg)


def _add_run_names(record: logging.LogRecord) -> None:
    """Lines logged inside a Prefect task or flow run (a retry, a lock) name that run too."""
    if getattr(record, "task_run_name", None) or "prefect.context" not in sys.modules:
        return
    from prefect.context import FlowRunContext, TaskRunContext

    task_run = getattr(TaskRunContext.get(), "task_run", None)
    if task_run is not None:
        record.task_run_name, record.task_run_id = task_run.name, str(task_run.id)
        return
    flow_context = FlowRunContext.get()
    flow_run = getattr(flow_context, "flow_run", None)
    if flow_run is not None and not getattr(record, "flow_run_name", None):
        record.flow_run_name, record.flow_run_id = flow_run.name, str(flow_run.id)
        record.flow_name = getattr(getattr(flow_context, "flow", None), "name", None)


class _RunNames(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        with contextlib.suppress(Exception):  # a log line never fails for its decoration
            _add_run_names(record)
        return True


_NOISE = _DropNoise()
for _name in ("urllib3.connectionpool", "prefect.task_runs"):  # also in worker-run flows
    logging.getLogger(_name).addFilter(_NOISE)


def configure_logging(
    log_format: str, level: str | None = None, is_terminal: bool | None = None
) -> logging.Handler:
    """Send every log line to standard error in ``log_format``, on one root handler.

    ``text`` on a terminal keeps lines to the bare message; off a terminal it
    carries time, level and where; ``json`` is one object per line; ``plain``
    is always the bare message.
    """
    if is_terminal is None:
        is_terminal = sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    elif log_format == "plain" or is_terminal:
        handler.setFormatter(PlainFormatter("%(message)s"))
    else:
        handler.setFormatter(TextFormatter())
    handler.addFilter(_NOISE)
    handler.addFilter(_RunNames())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    default = logging.WARNING if is_terminal else logging.INFO
    logging.getLogger("rulewatch").setLevel(level or default)
    return handler


def _reason(retry: Any) -> str:
    last = retry.history[-1] if retry.history else None
    if last is None:
        return "failed"
    if last.status:
        return f"HTTP {last.status}"
    error = type(last.error).__name__ if last.error is not None else "error"
    return {
        "ReadTimeoutError": "read timed out",
        "ConnectTimeoutError": "connect timed out",
        "NewConnectionError": "cannot connect",
        "ProtocolError": "connection broken",
    }.get(error, error)


def log_retry(source: str, retry: Any, response: Any = None) -> None:
    """One line per retry, before its pause: ``docreview: HTTP 503, retry 2/5 in 4 s``.

    ``retry`` is urllib3's Retry after the failed attempt (its history holds the
    attempts so far); the pause is the server's ``Retry-After`` when honoured,
    else the backoff.
    """
    attempt = len(retry.history)
    total = retry.total if isinstance(retry.total, int) else None
    of = f"/{attempt + total}" if total is not None else ""
    wait = None
    if response is not None and retry.respect_retry_after_header:
        wait = retry.get_retry_after(response)
    if wait is None:
        wait = retry.get_backoff_time()
    retry_log.warning("%s: %s, retry %d%s in %.0f s", source, _reason(retry), attempt, of, wait)
