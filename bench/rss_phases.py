"""Which phase of the nightly job holds the memory: RSS sampled per Prefect task.

``python bench/rss_phases.py --env SERVE_OUT --db URL`` runs the real nightly flow
in this process as ``bench/contenders.py rulewatch`` does (Prefect's temporary
server started first, ``nightly_sync`` from the warehouse as it is), while a
thread reads this process's resident set (``VmRSS``) and that of its children
(the Great Expectations recorder) every ``--every`` seconds. Each sample is given
to the task Prefect recorded as running at that moment (``between <task>`` for the
flow's own work after it: ANALYZE, the calendar, Prefect's bookkeeping); per task
it prints this process's CPU seconds and the largest RSS of this process and of
the children, then the peaks as ``ru_maxrss`` counts them. A diagnostic: it measures where, not how fast.

Run it with the environment ``bench/run.py`` gives a step (Prefect home, data
folder, PII key); SERVE_OUT is the JSON line ``bench/serve.py`` printed.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import resource
import threading
import time
from datetime import date
from pathlib import Path

AS_OF = date(2024, 5, 20)


def _rss_kib(pid: int | str) -> int:
    """Resident set of a process in KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
            "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _heap_probe() -> tuple[ctypes.CDLL | None, ctypes.CDLL | None]:
    """glibc (``mallinfo2``) and the SQLite library Python's ``sqlite3`` uses, if found."""
    import sqlite3  # noqa: F401 - loads the library whose counters are read

    libc = sqlite = None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
    except (OSError, AttributeError):
        libc = None
    name = ctypes.util.find_library("sqlite3")
    if name:
        sqlite = ctypes.CDLL(name)
        sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    return libc, sqlite


def _children(pid: int) -> list[str]:
    """Direct children of a process, from every thread's ``children`` list."""
    kids: list[str] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += (task / "children").read_text().split()
        except FileNotFoundError:
            continue
    return kids


def _name(pid: str) -> str:
    """A child's short name: Prefect's server, or GX's recorder, from its command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return "?"
    text = b" ".join(argv).decode(errors="replace")
    if "gx_runner" in text:
        return "gx"
    if "uvicorn" in text or "prefect" in text:
        return "prefect"
    return text[:30]


class Sampler(threading.Thread):
    """Samples (time, own RSS, {child name: RSS}) in KiB until stopped; with them the
    heap: glibc's bytes in use and free (in all arenas), SQLite's bytes in use."""

    def __init__(self, every: float) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.samples: list[tuple[float, int, dict[str, int]]] = []
        self._names: dict[str, str] = {}
        self.heap: list[tuple[int, int, int]] = []  # (malloc in use, malloc free, sqlite)
        self.cpu: list[float] = []  # this process's CPU seconds (all threads) so far
        self._libc, self._sqlite = _heap_probe()
        self._stop_event = threading.Event()

    def run(self) -> None:
        pid = os.getpid()
        while not self._stop_event.is_set():
            kids: dict[str, int] = {}
            for kid in _children(pid):
                name = self._names.setdefault(kid, _name(kid))
                kids[name] = max(kids.get(name, 0), _rss_kib(kid))
            self.samples.append((time.time(), _rss_kib(pid), kids))
            self.cpu.append(time.process_time())
            info = self._libc.mallinfo2() if self._libc else None
            self.heap.append(
                (
                    (info.uordblks + info.hblkhd) // 1024 if info else 0,
                    info.fordblks // 1024 if info else 0,
                    self._sqlite.sqlite3_memory_used() // 1024 if self._sqlite else 0,
                )
            )
            self._stop_event.wait(self.every)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _task_spans(flow_run_id: object) -> list[tuple[str, float, float]]:
    """(name, start, end) of every task run of the flow run, by start time."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    spans = [
        (r.name, r.start_time.timestamp(), r.end_time.timestamp())
        for r in runs
        if r.start_time is not None and r.end_time is not None
    ]
    return sorted(spans, key=lambda s: s[1])


def _label(at: float, spans: list[tuple[str, float, float]], flow_start: float) -> str:
    """The task running at ``at`` (the sources share ``sync-*``), else the flow's own
    work after the task that ended last before it."""
    running = [name for name, begin, end in spans if begin <= at <= end]
    if running:
        return "sync-*" if all(n.startswith("sync-") for n in running) else "+".join(running)
    before = [(end, name) for name, _, end in spans if end < at]
    if not before:
        return "before tasks" if at >= flow_start else "server start"
    name = max(before)[1]
    return f"between {'sync-*' if name.startswith('sync-') else name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", type=Path, required=True, help="bench/serve.py's output")
    parser.add_argument("--db", required=True, help="warehouse URL")
    parser.add_argument("--every", type=float, default=0.05, help="seconds between samples")
    parser.add_argument("--series", type=Path, help="also write every sample to this CSV")
    args = parser.parse_args()
    os.environ.update(json.loads(args.env.read_text().splitlines()[0])["env"])
    os.environ["RULEWATCH_WAREHOUSE_URL"] = args.db

    import gc

    from prefect.server.api.server import SubprocessASGIServer

    from rulewatch.flows.nightly import nightly_sync

    gc.freeze()
    sampler = Sampler(args.every)
    sampler.start()
    server = SubprocessASGIServer()
    server.start(timeout=300)
    try:
        flow_start = time.time()
        state = nightly_sync(as_of=AS_OF, return_state=True)
        wall = time.time() - flow_start
        sampler.stop()
        spans = _task_spans(state.state_details.flow_run_id)
    finally:
        server.stop()
    peaks: dict[str, list[float]] = {}
    cpu: dict[str, float] = {}
    last_cpu = sampler.cpu[0] if sampler.cpu else 0.0
    for (at, own, kids), heap, used in zip(sampler.samples, sampler.heap, sampler.cpu, strict=True):
        label = _label(at, spans, flow_start)
        top = peaks.get(label, [at, 0, 0, 0, 0, 0, 0])
        now = [own, kids.get("prefect", 0), kids.get("gx", 0), *heap]
        peaks[label] = [top[0], *(max(a, b) for a, b in zip(top[1:], now, strict=True))]
        cpu[label] = cpu.get(label, 0.0) + used - last_cpu
        last_cpu = used
    if args.series:
        with args.series.open("w") as out:
            out.write("s,phase,own_kib,gx_kib,malloc_kib,free_kib,sqlite_kib\n")
            for (at, own, kids), heap in zip(sampler.samples, sampler.heap, strict=True):
                label = _label(at, spans, flow_start)
                row = (f"{at - flow_start:.2f}", label, own, kids.get("gx", 0), *heap)
                out.write(",".join(map(str, row)) + "\n")
    print(f"flow {state.type.value} in {wall:.1f}s, {len(sampler.samples)} samples")
    print("largest per phase, MB (malloc: glibc's heap in use / free; sqlite: its own use)")
    heads = ("own", "prefect", "gx", "malloc", "free", "sqlite")
    print(f"{'phase':<28} {'from s':>7} {'cpu s':>6}" + "".join(f" {h:>8}" for h in heads))
    for label, (first, *values) in sorted(peaks.items(), key=lambda p: p[1][0]):
        cells = "".join(f" {v / 1024:>8.1f}" for v in values)
        print(f"{label:<28} {first - flow_start:>7.1f} {cpu[label]:>6.1f}{cells}")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"ru_maxrss: own {own / 1024:.1f} MB, children {kids / 1024:.1f} MB")


if __name__ == "__main__":
    main()
