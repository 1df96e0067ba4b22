"""Helpers of the flow tests: a clean environment for child processes, bounded polls."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a child process: no inherited RULEWATCH_/PREFECT_ settings,
    rulewatch importable from the checkout, Prefect's home in ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RULEWATCH_", "PREFECT_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    home = tmp_path / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)  # Prefect makes only the last level
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        RULEWATCH_DATA_DIR=str(tmp_path / "data"),
        RULEWATCH_PII_KEY="flow-test-key",
    )
    env.update(extra)
    return env


def rulewatch_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rulewatch.cli.main", *args]


def poll(check: Callable[[], T], timeout: float, what: str, interval: float = 0.25) -> T:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def stop_process(process: subprocess.Popen, timeout: float = 30) -> None:
    """Terminate a child we started (and reap it); kill it if it does not stop."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def processes_with_env(name: str, value: str) -> list[int]:
    """Pids of this user's processes whose environment has ``name=value`` (Linux /proc)."""
    needle = f"{name}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids
