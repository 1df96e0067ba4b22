"""Stop a command promptly and cleanly: on SIGTERM, or when the whole run overstays.

systemd, ``timeout`` and schedulers send SIGTERM. While a flow runs, Prefect
turns it into a crash of the flow run (its state is recorded as Crashed) and
then waits for the task threads, which may be blocked in a request or looping.
So the signal is also watched through :func:`signal.set_wakeup_fd`: if the
process is still there :data:`GRACE_SECONDS` later, it stops hard. Either way
the end is the same: the ephemeral Prefect server this process started (a
uvicorn process holding a port) is stopped, one ``rulewatch:`` line says what
happened, and the exit code is 1. The job lock goes with the process (the
kernel drops the SQLite ``flock``; PostgreSQL ends the session's advisory
lock), and rows a source had committed stay: the next sync carries on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from types import FrameType

#: How long Prefect gets to record the flow run as crashed before the process stops hard.
GRACE_SECONDS = 5.0
#: How long the ephemeral Prefect server gets to stop before it is killed.
SERVER_STOP_SECONDS = 3.0
EXIT_STOPPED = 1

_stopping = threading.Lock()
_job = ["command"]


def _drain_prefect_workers(timeout: float) -> None:
    """Send the logs and events Prefect still queues for its API, while the server is up."""
    with contextlib.suppress(Exception):
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        for worker in (APILogWorker, EventsWorker):
            worker.drain_all(timeout=timeout)


def stop_prefect_servers(drain_seconds: float = 5.0) -> int:
    """Stop every ephemeral Prefect server this process started; how many there were.

    Prefect's queued logs and events are sent first (up to ``drain_seconds``),
    so no "Error logging to API" follows once the server is gone.
    """
    try:
        from prefect.server.api.server import SubprocessASGIServer
    except Exception:  # noqa: BLE001 - Prefect not importable: nothing was started
        return 0
    servers = list(getattr(SubprocessASGIServer, "_instances", {}).values())
    if any(getattr(s, "server_process", None) is not None for s in servers) and drain_seconds > 0:
        _drain_prefect_workers(drain_seconds)
    stopped = 0
    for server in servers:
        process: subprocess.Popen | None = getattr(server, "server_process", None)
        if process is None or process.poll() is not None:
            continue
        stopped += 1
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
            try:
                process.wait(SERVER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(SERVER_STOP_SECONDS)
        server.server_process, server.running = None, False  # Prefect's atexit: nothing left
    return stopped


def hard_stop(reason: str) -> None:
    """Say why in one line, stop the Prefect server, and leave now, whatever threads are doing."""
    if not _stopping.acquire(blocking=False):
        return  # another thread is stopping the process already
    try:
        stop_prefect_servers(drain_seconds=1.0)
    finally:
        line = f"rulewatch: failed: {reason}\n"
        with contextlib.suppress(OSError):
            os.write(2, line.encode("utf-8", "replace"))
        os._exit(EXIT_STOPPED)


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    hard_stop(f"stopped by SIGTERM; the {_job[0]} did not finish (run it again to complete it)")


def _watch(read_fd: int) -> None:
    """The signal numbers Python's C handler writes to the wakeup fd, whoever handles them."""
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:
            return
        if signal.SIGTERM in data:
            timer = threading.Timer(GRACE_SECONDS, _on_sigterm, args=(signal.SIGTERM, None))
            timer.daemon = True
            timer.start()


def stop_on_sigterm(job: str) -> None:
    """From now on, SIGTERM ends this process within :data:`GRACE_SECONDS` plus the server's stop.

    Call from the main thread before any flow runs; ``job`` names what was
    interrupted in the message ("sync", "demo").
    """
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach only the main thread: an embedding caller handles them
    _job[0] = job
    signal.signal(signal.SIGTERM, _on_sigterm)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(read_fd,), name="sigterm-watch", daemon=True).start()


def stop_after(seconds: float, reason: str) -> threading.Timer:
    """A deadline for the whole command: past it, stop hard with ``reason`` (cancel it when done)."""
    timer = threading.Timer(seconds, hard_stop, args=(reason,))
    timer.daemon = True
    timer.start()
    return timer
