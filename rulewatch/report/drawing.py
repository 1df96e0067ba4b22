"""The report's charts drawn in a process of their own, beside this one.

Drawing is most of a report's CPU (matplotlib lays out and renders each panel
in Python), and one process draws on one core. ``rulewatch demo`` writes two
reports on a machine with a core to spare: :class:`ChartProcess` imports
matplotlib while this process rebuilds the history, then draws one report's
charts while this process draws and writes the other's. The charts are those
:mod:`rulewatch.report.charts` draws here, from the same data (sent as a
pickle, as the PNG bytes come back); a process that fails or stops leaves them
to be drawn here, as ever.

This module imports neither matplotlib nor pandas: the caller starts the
process before it needs them itself.
"""

from __future__ import annotations

import contextlib
import pickle
import subprocess
import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rulewatch.common.children import start_module

if TYPE_CHECKING:
    from rulewatch.report.charts import Chart

#: One chart to draw: the name of a :mod:`rulewatch.report.charts` builder and its arguments.
ChartCall = tuple[str, tuple[Any, ...]]
#: The builders a request may name (nothing else of the module is called).
BUILDERS = frozenset(
    {"scorecard_chart", "history_chart", "monthly_targets_chart", "monthly_counts_chart"}
)


def draw_here(calls: list[ChartCall]) -> list[Chart]:
    """Draw ``calls`` in this process."""
    from rulewatch.report import charts

    unknown = [name for name, _ in calls if name not in BUILDERS]
    if unknown:
        raise ValueError(f"not a chart: {unknown[0]}")
    return [getattr(charts, name)(*args) for name, args in calls]


class ChartProcess:
    """matplotlib in a process of its own; :meth:`submit` hands it one report's charts and
    returns at once, :meth:`collect` waits for them (drawn here if the process failed).

    Requests are answered in order. Use as a context manager: the process is stopped
    on the way out, whatever it was doing.
    """

    def __init__(self) -> None:
        # a failure there is redrawn here, and shown from here
        self._process: subprocess.Popen[bytes] | None = start_module("rulewatch.report.drawing")
        self._pending: list[list[ChartCall]] = []

    def submit(self, calls: list[ChartCall]) -> None:
        """Queue one report's charts."""
        self._pending.append(calls)
        if self._process is None:
            return
        assert self._process.stdin is not None
        try:
            pickle.dump(calls, self._process.stdin)
            self._process.stdin.flush()
        except (OSError, pickle.PicklingError):
            self.close()  # its charts, and any queued after, are drawn here

    def collect(self) -> list[Chart]:
        """The charts of the oldest request not yet collected."""
        calls = self._pending.pop(0)
        if self._process is not None:
            assert self._process.stdout is not None
            try:
                reply = pickle.load(self._process.stdout)
            except Exception:  # noqa: BLE001 - stopped or garbled: draw here instead
                reply = None
            if isinstance(reply, list):
                return reply
            self.close()
        return draw_here(calls)

    def close(self) -> None:
        """Stop the process (a request still queued is drawn here when collected)."""
        process, self._process = self._process, None
        if process is None:
            return
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if process.poll() is None:
            process.kill()
        process.wait()

    def __enter__(self) -> ChartProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _serve() -> None:
    """The chart process: import matplotlib and read the fonts, then draw each request
    read from standard input; one pickle per request on standard output, the charts or
    the error's name (this process then stops, and the caller draws them itself).
    Nothing it prints reaches the terminal (standard error is discarded)."""
    replies = sys.stdout.buffer
    sys.stdout = sys.stderr  # whatever matplotlib prints must not corrupt the replies
    from rulewatch.report.charts import cjk_font

    cjk_font()  # the font list, read before the first request rather than during it
    while True:
        try:
            calls = pickle.load(sys.stdin.buffer)
        except EOFError:
            return
        try:
            reply: list[Chart] | str = draw_here(calls)
        except Exception as exc:  # noqa: BLE001 - the parent draws them itself, and raises
            reply = type(exc).__name__
        pickle.dump(reply, replies)
        replies.flush()
        if isinstance(reply, str):
            sys.exit(1)


if __name__ == "__main__":
    # this file runs as __main__: serve from the module itself, so that what is
    # pickled back names rulewatch.report.charts' classes
    from rulewatch.report.drawing import _serve as serve

    serve()
