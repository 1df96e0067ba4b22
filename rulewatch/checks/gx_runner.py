"""Great Expectations 1.x on the warehouse: one ephemeral context per check run.

The checks describe what to validate as plain data (:class:`Validation`: a SQL
batch query and the expectations to run on it); this module is the only one
that talks to GX. Per run it makes an ephemeral context (nothing global, no
``gx/`` project folder, no connection string written anywhere), one SQL data
source on the warehouse URL, one query asset, batch definition, suite and
validation definition per :class:`Validation`, one checkpoint that runs them
all, pushed down to SQL, then one Data Docs build. Validation results are kept
as JSON under the configured folder so Data Docs keep their history (pruned
after ``data_docs_keep_days``).

What this version of GX does and does not give (1.24, checked on SQLite and
PostgreSQL): ``UnexpectedRowsExpectation`` returns at most 200 rows
(``MAX_RESULT_RECORDS``) though it counts them all; a column-map expectation's
``unexpected_index_list`` stops at ``partial_unexpected_count`` and its
``unexpected_index_query`` on a query asset is not valid SQL. So GX decides and
counts, and the checks read every offender themselves with the same condition.
``row_condition`` is not used.

GX is imported here, lazily: importing it takes seconds, and ``kpis`` never
needs it.
"""

from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("rulewatch.checks")

#: Keys an expectation's ``meta`` carries so each result finds its check again.
META_KEY = "rulewatch_check"
#: Validation results the Data Docs index lists (newest first); it reads each one.
INDEX_LIMIT = 300


@dataclass(frozen=True)
class Expect:
    """One GX expectation: its class in ``great_expectations.expectations`` and arguments."""

    check: str  # the stored check name (metric id or data-quality expectation name)
    gx_class: str  # e.g. "ExpectColumnValuesToBeInSet"
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Validation:
    """A batch (one SQL query on the warehouse) and the suite run on it."""

    name: str  # the suite, asset and validation definition name
    query: str  # SELECT ...; compiled with literal values
    expectations: tuple[Expect, ...]


@dataclass(frozen=True)
class Outcome:
    """What Great Expectations said about one expectation."""

    check: str
    validation: str
    expectation_type: str
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_rows: list[dict[str, Any]] | None = None  # UnexpectedRowsExpectation (capped)
    error: str | None = None  # the expectation could not be evaluated


@dataclass
class RunOutcome:
    """All outcomes of one checkpoint run, and what it cost."""

    outcomes: list[Outcome] = field(default_factory=list)
    setup_seconds: float = 0.0
    validate_seconds: float = 0.0
    docs_seconds: float = 0.0
    data_docs: Path | None = None

    def by_validation(self) -> dict[str, list[Outcome]]:
        grouped: dict[str, list[Outcome]] = {}
        for o in self.outcomes:
            grouped.setdefault(o.validation, []).append(o)
        return grouped


def sql_for_gx(sql: str) -> str:
    """SQL made safe for GX, which wraps query assets in ``sqlalchemy.text``.

    ``text`` reads ``:word`` as a bind parameter even inside a string literal;
    a backslash keeps the colon literal.
    """
    return sql.replace(":", r"\:")


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
    """Remove files last written before ``cutoff`` (epoch seconds), then empty folders."""
    removed = 0
    if not folder.is_dir():
        return removed
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.startswith(".") and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return removed


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


def _datasource(context: Any, warehouse_url: str) -> Any:
    if warehouse_url.startswith("sqlite"):
        return context.data_sources.add_sqlite(
            "warehouse", connection_string=warehouse_url, kwargs={"connect_args": {"timeout": 60}}
        )
    if warehouse_url.startswith("postgresql"):
        return context.data_sources.add_postgres("warehouse", connection_string=warehouse_url)
    return context.data_sources.add_sql("warehouse", connection_string=warehouse_url)


def run_validations(
    warehouse_url: str,
    validations: list[Validation],
    *,
    checkpoint: str,
    run_name: str,
    data_docs_dir: Path,
    validations_dir: Path,
    result_format: str = "SUMMARY",
    keep_days: int = 0,
) -> RunOutcome:
    """Run every validation in one GX checkpoint and update Data Docs.

    Validation results (and their pages) older than ``keep_days`` are removed
    first, so the nightly run does not slow down as history grows; 0 keeps all.
    """
    started = time.perf_counter()
    run = RunOutcome()
    if not validations:  # before the import: GX alone takes seconds to import
        return run
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    data_docs_dir.mkdir(parents=True, exist_ok=True)
    validations_dir.mkdir(parents=True, exist_ok=True)
    if keep_days:
        cutoff = time.time() - keep_days * 86400
        prune(validations_dir, cutoff)
        prune(data_docs_dir / "validations", cutoff)
    context = _context(data_docs_dir, validations_dir)
    source = _datasource(context, warehouse_url)
    try:
        definitions = []
        for v in validations:
            asset = source.add_query_asset(v.name, query=sql_for_gx(v.query))
            batch = asset.add_batch_definition_whole_table("batch")
            suite = context.suites.add(gx.ExpectationSuite(name=v.name))
            for e in v.expectations:
                cls = getattr(gx.expectations, e.gx_class)
                suite.add_expectation(cls(**e.kwargs, meta={META_KEY: e.check}))
            definitions.append(
                context.validation_definitions.add(
                    gx.ValidationDefinition(name=v.name, data=batch, suite=suite)
                )
            )
        point = context.checkpoints.add(
            gx.Checkpoint(
                name=checkpoint,
                validation_definitions=definitions,
                actions=[],
                result_format={"result_format": result_format},
            )
        )
        run.setup_seconds = time.perf_counter() - started
        began = time.perf_counter()
        result = point.run(run_id=RunIdentifier(run_name=run_name))
        run.validate_seconds = time.perf_counter() - began
        for suite_result in result.run_results.values():
            for r in suite_result.results:
                run.outcomes.append(_outcome(suite_result.suite_name, r))
        # Data Docs render result values into HTML unescaped: store them escaped first.
        store = context.validation_results_store
        for identifier, suite_result in result.run_results.items():
            for r in suite_result.results:
                r.result = escape_values(r.result)
                r.exception_info = escape_values(r.exception_info)
            store.set(identifier, suite_result)
        # One Data Docs build for the whole run (the checkpoint action builds once per
        # validation definition, and the site index each time).
        began = time.perf_counter()
        context.build_data_docs(
            site_names=["rulewatch"], resource_identifiers=list(result.run_results)
        )
        run.docs_seconds = time.perf_counter() - began
    finally:
        source.get_engine().dispose()
    run.data_docs = data_docs_dir / "index.html"
    return run


def _outcome(validation: str, r: Any) -> Outcome:
    config = r.expectation_config
    check = (config.meta or {}).get(META_KEY, config.type)
    info = r.exception_info or {}
    raised = info.get("raised_exception") or any(
        isinstance(v, dict) and v.get("raised_exception") for v in info.values()
    )
    if raised:
        message = info.get("exception_message") or next(
            (v.get("exception_message") for v in info.values() if isinstance(v, dict)), "error"
        )
        return Outcome(check, validation, config.type, False, error=str(message).strip())
    result = dict(r.result or {})
    if config.type == "unexpected_rows_expectation":
        rows = result.get("details", {}).get("unexpected_rows")
        count = result.get("observed_value")
        return Outcome(
            check,
            validation,
            config.type,
            bool(r.success),
            unexpected_count=None if count is None else int(count),
            unexpected_rows=None if rows is None else list(rows),
        )
    element = result.get("element_count")
    unexpected = result.get("unexpected_count")
    return Outcome(
        check,
        validation,
        config.type,
        bool(r.success),
        element_count=None if element is None else int(element),
        unexpected_count=None if unexpected is None else int(unexpected),
    )
