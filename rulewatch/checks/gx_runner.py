"""Great Expectations 1.x on the warehouse: the record of every check run.

The checks decide in SQL, in as few passes as the suites allow (one aggregate
scan per data-quality batch, one per target population): GX's own validation
runs one or more queries per expectation over the whole batch, which took most
of the job at a million rows. This module turns what they found into GX's
record: the same expectation classes and suites, one
``ExpectationSuiteValidationResult`` per batch in GX's shape (element, missing
and unexpected counts, a partial list of unexpected values, the unexpected
rows of an ``UnexpectedRowsExpectation``, capped at 200 as GX caps them), kept
as JSON under the configured folder, then one Data Docs build. Per run it makes
an ephemeral context (nothing global, no ``gx/`` project folder, no connection
string written anywhere). Validation results are pruned after
``data_docs_keep_days`` so Data Docs keep a bounded history.

GX is imported here, lazily: importing it takes seconds, and ``kpis`` never
needs it.
"""

from __future__ import annotations

import contextlib
import gc
import html
import io
import logging
import os
import pickle
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rulewatch.checks.deferred_imports import defer
from rulewatch.common.children import start_module

if TYPE_CHECKING:
    from rulewatch.checks.config import ChecksConfig

log = logging.getLogger("rulewatch.checks")

#: Keys an expectation's ``meta`` carries so each result finds its check again.
META_KEY = "rulewatch_check"
#: Validation results the Data Docs index lists (newest first); it reads each one.
INDEX_LIMIT = 300
#: Unexpected values a result lists, as GX's SUMMARY result format lists them.
PARTIAL_LIMIT = 20
#: How long a job that failed after its checks waits for GX to record them (seconds).
SETTLE_SECONDS = 60.0
#: Unexpected rows an ``UnexpectedRowsExpectation`` result lists (GX's MAX_RESULT_RECORDS).
ROWS_LIMIT = 200
#: The data source and connector names GX gives a fluent SQL batch (shown in Data Docs).
DATASOURCE = "warehouse"
#: Packages GX imports but recording a run never uses (some expectations compute or draw
#: with them): in the recorder process their modules run only if used (SciPy and Altair
#: were 1.0-1.2 s of the import's 2.9-3.0 s CPU).
UNUSED_BY_RECORDING = ("scipy", "altair", "boto3")


@dataclass(frozen=True)
class Expect:
    """One GX expectation: its class in ``great_expectations.expectations`` and arguments."""

    check: str  # the stored check name (metric id or data-quality expectation name)
    gx_class: str  # e.g. "ExpectColumnValuesToBeInSet"
    kwargs: dict[str, Any]

    @property
    def expectation_type(self) -> str:
        """GX's name for the expectation type, e.g. ``expect_column_values_to_be_in_set``."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.gx_class).lower()


@dataclass(frozen=True)
class Outcome:
    """What the checks found for one expectation, as GX records it."""

    check: str
    validation: str
    expectation_type: str
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_rows: list[dict[str, Any]] | None = None  # UnexpectedRowsExpectation (capped)
    missing_count: int | None = None  # rows the expectation ignores (a null value)
    partial_unexpected: tuple[Any, ...] = ()  # the first unexpected values, in key order


@dataclass(frozen=True)
class Validation:
    """A batch (one SQL query on the warehouse), the suite checked on it and what was found."""

    name: str  # the suite and data asset name
    query: str  # SELECT ...; compiled with literal values (the batch, as Data Docs show it)
    expectations: tuple[Expect, ...]
    outcomes: tuple[Outcome, ...]  # one per expectation, in the same order


@dataclass
class RunOutcome:
    """What recording one checkpoint run cost."""

    setup_seconds: float = 0.0  # importing GX and making the context
    store_seconds: float = 0.0  # building and storing the validation results
    docs_seconds: float = 0.0  # a build shared by runs recorded together: on the last one
    data_docs: Path | None = None

    @property
    def seconds(self) -> float:
        return self.setup_seconds + self.store_seconds + self.docs_seconds


def map_outcome(
    expect: Expect,
    validation: str,
    *,
    element_count: int,
    unexpected_count: int,
    missing_count: int | None = None,
    partial_unexpected: tuple[Any, ...] = (),
) -> Outcome:
    """A column-map expectation's outcome, decided as GX decides it.

    Null values are not checked (``missing_count``); the expectation passes when
    the share of checked values that are expected reaches ``mostly`` (1 unless
    given); a batch with no checked value passes.
    """
    checked = element_count - (missing_count or 0)
    mostly = float(expect.kwargs.get("mostly", 1.0))
    success = checked == 0 or (checked - unexpected_count) / checked >= mostly
    return Outcome(
        expect.check,
        validation,
        expect.expectation_type,
        success,
        element_count=element_count,
        unexpected_count=unexpected_count,
        missing_count=missing_count,
        partial_unexpected=tuple(partial_unexpected[:PARTIAL_LIMIT]),
    )


def rows_outcome(
    expect: Expect, validation: str, *, count: int, rows: list[dict[str, Any]]
) -> Outcome:
    """An ``UnexpectedRowsExpectation``'s outcome: passes when no row is unexpected."""
    return Outcome(
        expect.check,
        validation,
        expect.expectation_type,
        count == 0,
        unexpected_count=count,
        unexpected_rows=rows[:ROWS_LIMIT],
    )


def result_of(outcome: Outcome) -> dict[str, Any]:
    """The ``result`` GX stores for an outcome (the SUMMARY format of its expectation type)."""
    if outcome.expectation_type == "unexpected_rows_expectation":
        return {
            "observed_value": outcome.unexpected_count,
            "details": {"unexpected_rows": list(outcome.unexpected_rows or [])},
        }
    element = outcome.element_count or 0
    unexpected = outcome.unexpected_count or 0
    partial = list(outcome.partial_unexpected)
    counts = Counter(repr(v) for v in partial)
    firsts = {repr(v): v for v in reversed(partial)}
    result: dict[str, Any] = {
        "element_count": element,
        "unexpected_count": unexpected,
        "partial_unexpected_list": partial,
        "partial_unexpected_counts": [
            {"value": firsts[k], "count": n} for k, n in counts.most_common()
        ],
    }
    if outcome.missing_count is None:  # not_null: every row is checked
        result["unexpected_percent"] = _percent(unexpected, element)
        return result
    checked = element - outcome.missing_count
    result.update(
        missing_count=outcome.missing_count,
        missing_percent=_percent(outcome.missing_count, element),
        unexpected_percent=_percent(unexpected, checked),
        unexpected_percent_nonmissing=_percent(unexpected, checked),
        unexpected_percent_total=_percent(unexpected, element),
    )
    return result


def _percent(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def escape_values(value: Any) -> Any:
    """Every string in ``value`` (a result's values, from the sources) HTML-escaped.

    GX's Data Docs templates write unexpected values into the page as they are, so
    a source value like ``<script>`` would run in whoever opens the page. Escaped
    in the stored result, it shows as the text it is. Keys and non-text pass as
    they are.
    """
    if isinstance(value, str):
        return html.escape(value, quote=True)
    if isinstance(value, dict):
        return {k: escape_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escape_values(v) for v in value]
    return value


def prune(folder: Path, cutoff: float) -> int:
    """Remove files last written before ``cutoff`` (epoch seconds), then empty folders.

    One pass over the tree, bottom-up (each folder's entries read once, one ``stat``
    per file): every result has folders of its own, and walking them twice with
    ``rglob`` took 0.25 s CPU per run with two months of history.
    """
    return _prune(folder, cutoff)[0] if folder.is_dir() else 0


def _prune(folder: Path | str, cutoff: float) -> tuple[int, bool]:
    """Files removed under ``folder``, and whether it is empty now."""
    removed = kept = 0
    for entry in list(os.scandir(folder)):
        if entry.is_dir(follow_symlinks=False):
            below, empty = _prune(entry.path, cutoff)
            removed += below
            if empty:
                os.rmdir(entry.path)
            else:
                kept += 1
        elif entry.is_file() and not entry.name.startswith(".") and entry.stat().st_mtime < cutoff:
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
        else:
            kept += 1
    return removed, kept == 0


def _context(data_docs_dir: Path, validations_dir: Path) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    in_memory = {"class_name": "InMemoryStoreBackend"}
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        stores={
            "expectations_store": {"class_name": "ExpectationsStore", "store_backend": in_memory},
            "validation_results_store": {
                "class_name": "ValidationResultsStore",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(validations_dir),
                },
            },
            "checkpoint_store": {"class_name": "CheckpointStore", "store_backend": in_memory},
            "validation_definition_store": {
                "class_name": "ValidationDefinitionStore",
                "store_backend": in_memory,
            },
        },
        expectations_store_name="expectations_store",
        validation_results_store_name="validation_results_store",
        checkpoint_store_name="checkpoint_store",
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            "rulewatch": {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(data_docs_dir),
                },
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "validation_results_limit": INDEX_LIMIT,
                },
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def record_validations(
    validations: list[Validation],
    *,
    checkpoint: str,
    run_name: str,
    data_docs_dir: Path,
    validations_dir: Path,
    keep_days: int = 0,
) -> RunOutcome:
    """Store each validation as a GX suite validation result and update Data Docs once.

    Validation results (and their pages) older than ``keep_days`` are removed
    first, so the nightly run does not slow down as history grows; 0 keeps all.
    """
    stored = _store(
        validations,
        checkpoint=checkpoint,
        run_name=run_name,
        data_docs_dir=data_docs_dir,
        validations_dir=validations_dir,
        keep_days=keep_days,
    )
    _build_docs([stored])
    return stored.outcome


@dataclass
class _Stored:
    """A run's validation results, stored; its Data Docs pages not built yet."""

    outcome: RunOutcome
    data_docs_dir: Path
    validations_dir: Path
    context: Any = None  # the GX context that stored them (its last run's builds the docs)
    identifiers: list[Any] = field(default_factory=list)


def _store(
    validations: list[Validation],
    *,
    checkpoint: str,
    run_name: str,
    data_docs_dir: Path,
    validations_dir: Path,
    keep_days: int = 0,
) -> _Stored:
    """:func:`record_validations` up to the Data Docs: prune, then store the results."""
    started = time.perf_counter()
    run = RunOutcome()
    stored = _Stored(run, data_docs_dir, validations_dir)
    if not validations:  # before the import: GX alone takes seconds to import
        return stored
    import great_expectations as gx
    from great_expectations.core import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    data_docs_dir.mkdir(parents=True, exist_ok=True)
    validations_dir.mkdir(parents=True, exist_ok=True)
    if keep_days:
        cutoff = time.time() - keep_days * 86400
        prune(validations_dir, cutoff)
        prune(data_docs_dir / "validations", cutoff)
    context = _context(data_docs_dir, validations_dir)
    run.setup_seconds = time.perf_counter() - started
    began = time.perf_counter()
    run_id = RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
    checkpoint_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"rulewatch:checkpoint:{checkpoint}"))
    store = context.validation_results_store
    identifiers = []
    for v in validations:
        batch_id = f"{DATASOURCE}-{v.name}"
        suite = context.suites.add(gx.ExpectationSuite(name=v.name))
        results = []
        for e, o in zip(v.expectations, v.outcomes, strict=True):
            cls = getattr(gx.expectations, e.gx_class)
            config = suite.add_expectation(cls(**e.kwargs, meta={META_KEY: e.check})).configuration
            config.kwargs["batch_id"] = batch_id
            # Data Docs render result values into HTML unescaped: store them escaped.
            results.append(
                ExpectationValidationResult(
                    success=o.success,
                    expectation_config=config,
                    result=escape_values(result_of(o)),
                    exception_info={
                        "raised_exception": False,
                        "exception_message": None,
                        "exception_traceback": None,
                    },
                )
            )
        passed = sum(r.success for r in results)
        identifier = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=v.name),
            run_id=run_id,
            batch_identifier=batch_id,
        )
        store.set(
            identifier,
            ExpectationSuiteValidationResult(
                success=passed == len(results),
                results=results,
                suite_name=v.name,
                statistics={
                    "evaluated_expectations": len(results),
                    "successful_expectations": passed,
                    "unsuccessful_expectations": len(results) - passed,
                    "success_percent": _percent(passed, len(results)),
                },
                meta={
                    "active_batch_definition": {
                        "datasource_name": DATASOURCE,
                        "data_connector_name": "fluent",
                        "data_asset_name": v.name,
                        "batch_identifiers": {},
                    },
                    "batch_spec": {"data_asset_name": v.name, "query": escape_values(v.query)},
                    "batch_parameters": None,
                    "checkpoint_id": checkpoint_id,
                    "great_expectations_version": gx.__version__,
                    "run_id": run_id.to_json_dict(),
                    "validation_time": run_id.run_time.isoformat(),
                },
                batch_id=batch_id,
            ),
        )
        identifiers.append(identifier)
    run.store_seconds = time.perf_counter() - began
    stored.context = context
    stored.identifiers = identifiers
    return stored


def _build_docs(runs: list[_Stored]) -> None:
    """Build the Data Docs pages of stored runs, and each site's index, once per site.

    Each build rereads the newest ``INDEX_LIMIT`` results for the index and every
    result's key, so runs recorded together share one: the same pages and, by the
    last run's context, the same index as one build after each run.
    """
    sites: dict[tuple[Path, Path], list[_Stored]] = {}
    for run in runs:
        if run.identifiers:
            sites.setdefault((run.data_docs_dir, run.validations_dir), []).append(run)
    for site in sites.values():
        began = time.perf_counter()
        site[-1].context.build_data_docs(
            site_names=["rulewatch"],
            resource_identifiers=[i for run in site for i in run.identifiers],
        )
        site[-1].outcome.docs_seconds = time.perf_counter() - began
        for run in site:
            run.outcome.data_docs = run.data_docs_dir / "index.html"


# --- GX in a process of its own --------------------------------------------------------------


class RecordError(RuntimeError):
    """Great Expectations could not record a check run (its process says why)."""


def record_checkpoint(
    validations: list[Validation],
    checks: ChecksConfig,
    checkpoint: str,
    run_name: str,
    recorder: Recorder | None = None,
) -> Path | None:
    """Record one checkpoint run's validations and Data Docs here, or hand them to
    ``recorder`` (GX in its own process) and go on; the Data Docs index."""
    options = {
        "checkpoint": checkpoint,
        "run_name": run_name,
        "data_docs_dir": checks.data_docs_dir,
        "validations_dir": checks.validations_dir,
        "keep_days": checks.data_docs_keep_days,
    }
    if recorder is None:
        return record_validations(validations, **options).data_docs
    recorder.record(validations, **options)
    return checks.data_docs_index if validations else None


class Recorder:
    """Great Expectations in a process of its own, imported while the job does other work.

    Importing GX costs seconds of CPU, more than deciding every check of a
    million rows in SQL. Started when the sync is done, the import runs on
    another core while the checks decide in the warehouse (started before the
    sync, it slowed the sync, on two cores, by more than it saved); :meth:`record`
    hands the process a checkpoint run (plain data: the expectations and what the
    checks found) and returns at once, so metrics and reports go on while GX
    writes its results and Data Docs; :meth:`finish` waits for every record and
    raises :class:`RecordError` if one failed. The process writes nothing to the
    terminal.

    With ``start=False`` the process starts only with the first :meth:`record`: a
    night that wrote nothing seldom has a run to record, and a process started for
    nothing would import GX (seconds of CPU) to be stopped unused.
    """

    def __init__(self, *, start: bool = True) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._sent = 0
        self._outcomes: list[RunOutcome] | None = None
        self._failed = False  # finish() raised: the process said why and ended
        if start:
            self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        self._process = start_module("rulewatch.checks.gx_runner")
        return self._process

    @property
    def started(self) -> bool:
        """Whether the GX process was started (it may have ended since)."""
        return self._process is not None

    def record(self, validations: list[Validation], **options: Any) -> None:
        """Queue one checkpoint run's record (``record_validations``' keyword options)."""
        if not validations:
            return
        assert self._outcomes is None
        process = self._process or self._start()
        assert process.stdin is not None
        try:
            pickle.dump((validations, options), process.stdin)
            process.stdin.flush()
        except BrokenPipeError:
            self.finish()  # raises with the process' own reason
            raise RecordError("the Great Expectations process stopped") from None
        self._sent += 1

    def finish(self) -> list[RunOutcome]:
        """Wait for every queued record (and Data Docs); what each cost, in order."""
        if self._outcomes is not None:
            return self._outcomes
        process = self._process
        if not self._sent or process is None:  # nothing to record: no wait for the import
            self.close()
            self._outcomes = []
            return self._outcomes
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        replies: list[Any] = []
        with contextlib.suppress(EOFError):
            while True:
                replies.append(pickle.load(process.stdout))
        code = process.wait()
        errors = [r for r in replies if isinstance(r, str)]
        if errors or code != 0 or len(replies) != self._sent:
            self._failed = True
            reason = errors[0] if errors else f"its process ended with code {code}"
            raise RecordError(f"Great Expectations could not record the checks: {reason}")
        self._outcomes = replies
        return replies

    def settle(self, timeout: float = SETTLE_SECONDS) -> bool:
        """For a job that failed after handing runs over: let GX record them (their check
        runs are stored in the warehouse, and a re-run that finds nothing new records
        nothing), waiting at most ``timeout`` seconds, then stop the process. Whether
        every run handed over was recorded; a failure is logged, not raised (the job's
        own error is the one to report)."""
        if self._outcomes is not None or self._failed or not self._sent:
            self.close()
            return self._outcomes is not None or not self._sent
        done: list[bool] = []

        def wait() -> None:
            try:
                self.finish()
            except Exception as exc:  # noqa: BLE001 - logged: the job's error is the one raised
                log.warning("%s", exc)
            else:
                done.append(True)

        waiter = threading.Thread(target=wait, name="gx-settle", daemon=True)
        waiter.start()
        waiter.join(timeout)
        if waiter.is_alive():  # past the deadline: stopped, its pipe ends, the waiter with it
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            waiter.join()
        self.close()
        if not done:
            log.warning(
                "Great Expectations did not record the failed job's checks in %.0f s", timeout
            )
        return bool(done)

    def close(self) -> None:
        """Stop the process if it still runs (a job that ends early records nothing more)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()

    @classmethod
    def for_job(cls, *, start: bool = True) -> Recorder:
        """The recorder started ahead for this process' next job (:func:`recorder_ahead`),
        handed over once; else a new one (its process started now, or with its first
        record when ``start`` is false)."""
        with _ahead_lock:
            ahead = _ahead.pop() if _ahead else None
        return cls(start=start) if ahead is None else ahead


_ahead: list[Recorder] = []  # at most one: the recorder started for the next job
_ahead_lock = threading.Lock()


@contextlib.contextmanager
def recorder_ahead() -> Iterator[None]:
    """Start the next job's recorder now, for a caller about to wait on something else.

    GX's import takes seconds of CPU, which a job otherwise waits for at its end
    (at the demo's scale nearly all of its GX wait). ``rulewatch demo`` starts it
    as Prefect's first start on a new home begins, seconds in which this process
    only waits and a core is to spare; the job inside takes it
    (:meth:`Recorder.for_job`) and closes it as always. One no job took is stopped
    on the way out.
    """
    with _ahead_lock:
        if _ahead:  # one is waiting already: its job has not started yet
            started = None
        else:
            started = Recorder()
            _ahead.append(started)
    try:
        yield
    finally:
        with _ahead_lock:
            left = started is not None and started in _ahead
            if left:
                _ahead.remove(started)
        if left:
            started.close()


def _serve() -> None:
    """The recorder process: import GX, then record each run read from standard input.

    The packages GX imports but recording never uses (:data:`UNUSED_BY_RECORDING`)
    are deferred first: their modules run only if GX uses them after all. The
    import runs without the cyclic garbage collector (its collections, 0.25 s of
    the 1.9 s, found under 1% of its 330,000 objects garbage), then its objects
    are frozen out of later collections.

    Replies on standard output, one pickle per run: its :class:`RunOutcome`, or
    the error's one line (and then it stops). A run that finds the next one
    already sent (the import outlasted the checks) leaves its Data Docs to that
    one's build: one index rebuild for both (:func:`_build_docs`). It leaves
    without tearing down the interpreter (``os._exit``): what it wrote is closed
    and its replies flushed, and unwinding GX's modules took longer (1.1-1.6 s)
    than recording the demo's runs, while the job waited for the exit.
    """
    replies = sys.stdout.buffer
    sys.stdout = sys.stderr  # whatever GX prints must not corrupt the replies
    defer(UNUSED_BY_RECORDING)
    gc.disable()  # the import's objects live as long as the process: collecting them is waste
    import great_expectations  # noqa: F401 - the import is the point: it runs while the job works

    gc.freeze()  # and later collections leave them out
    gc.enable()
    runs = sys.stdin.buffer
    stored: list[_Stored] = []  # runs whose Data Docs wait for the next run's build
    while True:
        try:
            validations, options = pickle.load(runs)
        except EOFError:
            _leave(0)
        error = None
        try:
            stored.append(_store(validations, **options))
        except Exception as exc:  # noqa: BLE001 - the parent turns it into one line
            error = _one_line(exc)
        if error is None and _waiting(runs):
            continue
        try:
            _build_docs(stored)
        except Exception as exc:  # noqa: BLE001 - the parent turns it into one line
            error = error or _one_line(exc)
        else:
            for run in stored:
                pickle.dump(run.outcome, replies)
        stored.clear()
        if error is not None:
            pickle.dump(error, replies)
        replies.flush()
        if error is not None:
            _leave(1)


def _one_line(exc: Exception) -> str:
    """An error as the recorder replies it: its type and its message's first line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _waiting(stream: io.BufferedReader) -> bool:
    """Whether the next run has been sent already (is in the buffer or the pipe); no wait."""
    fd = stream.fileno()
    os.set_blocking(fd, False)
    try:
        return bool(stream.peek(1))  # b"" at the end, and when nothing is there yet
    except BlockingIOError:
        return False
    finally:
        os.set_blocking(fd, True)


def _leave(code: int) -> NoReturn:
    """End the recorder process now: logging's handlers flushed, nothing else unwound."""
    logging.shutdown()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    # this file runs as __main__: serve from the module itself, so that what is
    # pickled back names rulewatch.checks.gx_runner's classes
    from rulewatch.checks.gx_runner import _serve as serve

    serve()
