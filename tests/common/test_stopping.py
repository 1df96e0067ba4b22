"""A hard stop ends the process with one line, even when the way out hangs."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: A child that stops hard while stopping Prefect's servers takes ``{wait}`` (a drain
#: waiting on a lock that is never released: an Event never set).
_CHILD = """
import sys, threading
from rulewatch.common import stopping
stopping.LEAVE_SECONDS = 0.5
never = threading.Event()
stopping.stop_prefect_servers = lambda drain_seconds: never.wait({wait})
stopping.hard_stop("stopped by the test")
print("hard_stop returned")
"""


@pytest.mark.parametrize("wait", ["None", "0"], ids=["the way out hangs", "the way out is quick"])
def test_a_hard_stop_leaves_with_one_line_whatever_the_way_out_does(wait: str) -> None:
    """Stopping waits on Prefect (its queues' locks, its server); should that hang, the
    process still ends, with its one ``rulewatch:`` line and exit code 1, and never twice.
    (The 60 s only keeps a broken stop from hanging the suite.)"""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(wait=wait)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr == "rulewatch: failed: stopped by the test\n"
    assert done.stdout == ""
