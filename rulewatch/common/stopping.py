"""Stop a command promptly and cleanly: on SIGTERM or Ctrl-C, or when the whole run overstays.

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

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from types import FrameType

#: How long Prefect gets to record the flow run as crashed before the process stops hard.
GRACE_SECONDS = 5.0
#: How long the ephemeral Prefect server gets to stop before it is killed.
SERVER_STOP_SECONDS = 3.0
#: How long a hard stop may spend on the way out (Prefect's queues, its server: about
#: 1 + 2 x SERVER_STOP_SECONDS when all goes to plan) before the process leaves anyway.
LEAVE_SECONDS = 10.0
EXIT_STOPPED = 1

_stopping = threading.Lock()
_leaving = threading.Lock()
_owned: list[subprocess.Popen] = []  # Prefect servers started outside Prefect
_owned_lock = threading.Lock()
_owned_at_exit: list[bool] = []
_job = ["command"]


def _drain_prefect_workers(timeout: float) -> None:
    """Send the logs and events Prefect still queues for its API, while the server is up."""
    with contextlib.suppress(Exception):
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        for worker in (APILogWorker, EventsWorker):
            worker.drain_all(timeout=timeout)


def own_server(process: subprocess.Popen) -> None:
    """A Prefect server process this process started itself: stopped with Prefect's own."""
    with _owned_lock:
        if not _owned_at_exit:  # a path that never reached its stop: nothing outlives us
            atexit.register(stop_prefect_servers, drain_seconds=0)
            _owned_at_exit.append(True)
        _owned.append(process)


def forget_server(process: subprocess.Popen) -> None:
    """A server process that is gone (or stopped): nothing left to stop."""
    with _owned_lock, contextlib.suppress(ValueError):
        _owned.remove(process)


def _terminate(process: subprocess.Popen) -> bool:
    """SIGTERM, then SIGKILL if it lingers; True if it was still running."""
    if process.poll() is not None:
        return False
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
        try:
            process.wait(SERVER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(SERVER_STOP_SECONDS)
    return True


def stop_server(process: subprocess.Popen, drain_seconds: float = 5.0) -> None:
    """Stop one server this process owns, after Prefect's queued logs and events are sent."""
    if process.poll() is None and drain_seconds > 0 and "prefect" in sys.modules:
        _drain_prefect_workers(drain_seconds)
    _terminate(process)
    forget_server(process)


def stop_prefect_servers(drain_seconds: float = 5.0) -> int:
    """Stop every Prefect server this process started (its own or Prefect's); how many.

    Prefect's queued logs and events are sent first (up to ``drain_seconds``),
    so no "Error logging to API" follows once the server is gone. Prefect's
    server module is looked at only if it was imported: importing it here
    would cost seconds on the way out.
    """
    module = sys.modules.get("prefect.server.api.server")
    servers = list(
        getattr(getattr(module, "SubprocessASGIServer", None), "_instances", {}).values()
    )
    with _owned_lock:
        owned = list(_owned)
    processes = [p for p in owned if p.poll() is None]
    for server in servers:
        process: subprocess.Popen | None = getattr(server, "server_process", None)
        if process is not None and process.poll() is None:
            processes.append(process)
    if processes and drain_seconds > 0 and "prefect" in sys.modules:
        _drain_prefect_workers(drain_seconds)
    stopped = sum(_terminate(process) for process in processes)
    for server in servers:
        server.server_process, server.running = None, False  # Prefect's atexit: nothing left
    for process in owned:
        forget_server(process)
    return stopped


def hard_stop(reason: str, *, own_line: bool = False) -> None:
    """Say why in one line, stop the Prefect server, and leave now, whatever threads are doing.

    ``own_line``: begin with a line break, for what may have been cut mid-line (the
    terminal's ``^C``, Prefect's "Error logging to API" once its server is gone)."""
    if not _stopping.acquire(blocking=False):
        return  # another thread is stopping the process already
    line = ("\n" if own_line else "") + f"rulewatch: failed: {reason}\n"
    # The way out waits on Prefect (its queues' locks, its server): should any of it
    # hang, the process leaves anyway (its server dies with it: PR_SET_PDEATHSIG)
    backstop = threading.Timer(LEAVE_SECONDS, _leave, args=(line,))
    backstop.daemon = True
    backstop.start()
    try:
        stop_prefect_servers(drain_seconds=1.0)
    finally:
        _leave(line)


def _leave(line: str) -> None:
    """Write the one line and end the process, once, whichever thread comes first (the
    other waits here until the process ends)."""
    _leaving.acquire()  # never released: os._exit does not return
    with contextlib.suppress(OSError):
        os.write(2, line.encode("utf-8", "replace"))
    os._exit(EXIT_STOPPED)


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    hard_stop(f"stopped by SIGTERM; the {_job[0]} did not finish (run it again to complete it)")


def stop_interrupted(job: str | None = None) -> None:
    """Ctrl-C: the one line, and leave now (``job``: what was interrupted, by default
    the command :func:`stop_on_sigterm` named)."""
    hard_stop(
        f"interrupted (Ctrl-C); the {job or _job[0]} did not finish (run it again to complete it)",
        own_line=True,
    )


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
            _after_grace(_on_sigterm, signal.SIGTERM, None)
        if signal.SIGINT in data:
            # Ctrl-C raises KeyboardInterrupt in the main thread, and Prefect records the
            # flow run's end; but the terminal sent it to the Prefect server too, and at
            # exit Prefect waited for ever to send its queued logs to that gone server
            _after_grace(stop_interrupted)


def _after_grace(stop: Callable[..., None], *args: object) -> None:
    """``stop(*args)`` in :data:`GRACE_SECONDS`, unless the process has ended by then."""
    timer = threading.Timer(GRACE_SECONDS, stop, args=args)
    timer.daemon = True
    timer.start()


def stop_on_sigterm(job: str) -> None:
    """From now on, SIGTERM (and Ctrl-C, SIGINT, once Prefect had its chance to record
    the run) ends this process within :data:`GRACE_SECONDS` plus the server's stop.

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
