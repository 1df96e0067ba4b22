"""Running `rulewatch` from outside, as a user would: a fresh Python process with a chosen env."""

from __future__ import annotations

import os
import subprocess
import sys


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any RULEWATCH_/PREFECT_ variable, plus ``values``.

    A test's run then sees only the settings the test names, not the developer's or CI's own.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RULEWATCH_", "PREFECT_"))}
    env.update(values)
    return env


def rulewatch_cmd(*args: str) -> list[str]:
    """The command line that runs the CLI of the rulewatch on this interpreter's path."""
    return [sys.executable, "-m", "rulewatch.cli.main", *args]


def run_rulewatch(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run `rulewatch ARGS` with exactly ``env``; its exit code and text output, within ``timeout``."""
    return subprocess.run(
        rulewatch_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout
    )
