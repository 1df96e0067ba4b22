"""Python child processes of rulewatch's own (GX's recorder, the charts): how they start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: The folder holding the ``rulewatch`` package: a child finds it even when rulewatch
#: runs from a source tree rather than an installed package.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def child_env() -> dict[str, str]:
    """This process's environment, with the package's folder on ``PYTHONPATH``."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_ROOT, path]))}


def start_module(module: str) -> subprocess.Popen[bytes]:
    """``python -m module`` of this interpreter, talking over its standard input and
    output (pickles); what it writes to standard error is discarded."""
    return subprocess.Popen(
        [sys.executable, "-m", module],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=child_env(),
    )
