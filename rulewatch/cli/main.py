"""The ``rulewatch`` command (interface.md).

Exit codes: 0 done; 1 the job failed (a source still failing after its
retries, an unreachable warehouse); 2 bad usage or configuration, with one
line naming the file, key, variable or flag at fault; 3 a target slipped and
``--fail-on-slip`` was given.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from rulewatch.common.periods import EXPECTED as PERIOD_EXPECTED
from rulewatch.common.periods import Period, PeriodError
from rulewatch.config.settings import (
    SOURCE_NAMES,
    ConfigError,
    Settings,
    load_settings,
    log_format,
    log_level,
    validate_alert_urls,
    validate_cron,
)

app = typer.Typer(
    name="rulewatch",
    help="Nightly ETL and compliance checks for a bureau's rule-of-law reporting.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_FAILED, EXIT_USAGE, EXIT_SLIPPED = 1, 2, 3


class JobFailed(Exception):
    """The job ran but failed; exit 1 with this message."""


#: [wanted, exit code]: a command whose process may end without the interpreter's
#: clean-up (:func:`end_without_cleanup`), and the code ``main`` exits with.
_QUICK_END: list[Any] = [False, None]


def end_without_cleanup() -> None:
    """Let this process end without the interpreter's clean-up once it is done.

    After a sync or the demo, tearing down the modules and objects Prefect,
    pydantic, SQLAlchemy (and the demo's pandas and matplotlib) made takes 0.5-1.3 s
    of CPU that nothing needs: the exit handlers
    still run (Prefect's queued logs and events are sent before them, the job
    lease is dropped, logging flushed), then the process ends at once. Only the
    console entry point (:func:`main`) acts on it.
    """
    _QUICK_END[0] = True


#: Set by :func:`main`: this process is the ``rulewatch`` command itself, not a caller
#: of ``app`` (a test's runner), so it may tune the process as a whole.
_CONSOLE = [False]


def collect_after_imports() -> None:
    """No garbage collection while the sync imports Prefect and the flow's modules.

    Python's collector runs on allocations, and a full pass over the objects these
    imports make (Prefect, pydantic, SQLAlchemy) takes 0.15-0.2 s each: three ran
    during the imports and one in the middle of the sources' load, on a night with
    nothing new. :func:`imports_done` freezes what the imports made (never garbage:
    modules, classes, their schemas) so later passes skip it. The console entry
    point only: a test process keeps its collector as it was.
    """
    if _CONSOLE[0]:
        gc.disable()


def imports_done() -> None:
    """The objects made so far are kept for good: later passes leave them out."""
    if _CONSOLE[0]:
        gc.freeze()
        gc.enable()


def _end_without_cleanup() -> None:
    """The last exit handler: flush what is written, then end with ``main``'s code."""
    wanted, code = _QUICK_END
    if not wanted or not isinstance(code, int):
        return  # an unknown exit (not through main's SystemExit): Python's own way
    logging.shutdown()  # registered before this handler, so it would run after it
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _quiet_prefect() -> None:
    """Prefect settings for a command-line run, unless the operator set them."""
    os.environ.setdefault("DO_NOT_TRACK", "1")  # no telemetry, no notice about it
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING" if sys.stderr.isatty() else "INFO")


def _errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn known errors into one clear line and the contract's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from rulewatch.checks.gx_runner import RecordError
        from rulewatch.cli.preflight import PreflightFailed
        from rulewatch.extract.engine import SourceError
        from rulewatch.flows.serve import PrefectServerError
        from rulewatch.warehouse.db import WarehouseError

        try:
            return fn(*args, **kwargs)
        except (ConfigError, PeriodError) as exc:
            print(f"rulewatch: error: {exc}", file=sys.stderr)
            raise typer.Exit(EXIT_USAGE) from None
        except (
            JobFailed,
            SourceError,
            WarehouseError,
            PreflightFailed,
            RecordError,
            PrefectServerError,
        ) as exc:
            _fail(str(exc))
        except OSError as exc:
            if exc.filename is None:  # a socket's or a library's: not a path to name
                raise
            from rulewatch.common.files import file_error

            _fail(file_error(exc))
        except KeyboardInterrupt:  # Ctrl-C before a flow ran, or once it had ended
            from rulewatch.common.stopping import stop_interrupted

            stop_interrupted(fn.__name__.replace("_", "-"))
        except Exception as exc:
            from rulewatch.warehouse.db import is_database_error, warehouse_error

            if not is_database_error(exc):  # a bug: main's last line of defence names it
                raise
            doing = f"finish rulewatch {fn.__name__.replace('_', '-')}"  # full, gone, locked
            _fail(str(warehouse_error(load_settings().warehouse_url, exc, doing)))

    return wrapper


def _fail(message: str) -> NoReturn:
    from rulewatch.common.stopping import stop_prefect_servers

    stop_prefect_servers()  # a server's goodbye must not follow our last line
    print(f"rulewatch: failed: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_FAILED) from None


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--as-of {value!r}: not a date (YYYY-MM-DD)") from None


def _parse_period(value: str) -> str:
    """The ``--period`` flag's period label; a bad one is a usage error naming the flag."""
    try:
        return Period.parse(value).label
    except PeriodError:
        raise ConfigError(f"--period {value!r}: {PERIOD_EXPECTED}") from None


AsOf = Annotated[
    str | None,
    typer.Option("--as-of", help="YYYY-MM-DD; default today in the configured timezone"),
]
PeriodOpt = Annotated[
    str, typer.Option("--period", help="a year 2023, a quarter 2023-Q4 or a month 2023-10")
]


AgencyOpt = Annotated[
    str | None,
    typer.Option(
        "--agency",
        help="an agency id of agencies.yaml, or 'all' (every agency and the city rollup)",
    ),
]


def _agencies(settings: Settings, value: str | None, *, all_by_default: bool) -> list[Settings]:
    """The settings of each agency ``--agency`` selects (issue 16): one, or every one.

    Without agencies.yaml there is one agency and the option may be left out. With
    several, commands that act on each (sync, check) default to all of them; commands
    that show one agency's figures exit 2 naming the ids unless one is chosen.
    """
    from rulewatch.config.agencies import ALL_AGENCIES, load_agencies, settings_for

    agencies = load_agencies(settings)
    if value is None and len(agencies) > 1 and not all_by_default:
        raise ConfigError(
            f"--agency: {len(agencies)} agencies are configured; choose one of "
            f"{', '.join(agencies.ids)} or {ALL_AGENCIES}"
        )
    return [settings_for(settings, agencies, a) for a in agencies.select(value)]


def _has_agencies_file(settings: Settings) -> bool:
    from rulewatch.config.agencies import AGENCIES_FILE

    return (settings.config_dir / AGENCIES_FILE).exists()


def _as_of(settings: Settings, value: str | None) -> date:
    from datetime import datetime

    return _parse_date(value) or datetime.now(settings.timezone).date()


def _warehouse(settings: Settings, *, upgrade: bool = False):  # noqa: ANN202 - sqlalchemy Engine
    """The warehouse engine; read-only commands (the default) never upgrade the schema."""
    from rulewatch.common.workdays import calendar_of
    from rulewatch.warehouse.db import open_warehouse

    return open_warehouse(
        settings.warehouse_url, calendar_of(settings), settings.schedule.timeouts, upgrade=upgrade
    )


@app.command()
@_errors
def kpis(
    period: PeriodOpt,
    as_of: AsOf = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="a JSON array on standard output")
    ] = False,
    agency: AgencyOpt = None,
) -> None:
    """The metrics of one period from the warehouse (of one agency, or every agency and
    the city rollup with --agency all)."""
    from rich.markup import escape

    from rulewatch.cli.console import out, print_calendar_note, scorecard_table
    from rulewatch.config.agencies import ALL_AGENCIES, load_agencies
    from rulewatch.metrics.compute import compute_city_metrics, compute_metrics

    settings = load_settings()
    label = _parse_period(period)
    day = _as_of(settings, as_of)
    selected = _agencies(settings, agency, all_by_default=False)
    agencies = load_agencies(settings)
    city = agencies.path is not None and agency == ALL_AGENCIES
    engine = _warehouse(settings)
    with engine.connect() as conn:
        if city:  # every agency and the rollup, from one query per core table
            targets = {s.agency_id: s.targets for s in selected}
            found = compute_city_metrics(conn, Period.parse(label), day, targets, settings.targets)
            shown = [(a, found[a]) for a in [*targets, ALL_AGENCIES]]
        else:
            one = selected[0]
            metrics = compute_metrics(
                conn, Period.parse(label), day, one.targets, agency_id=one.agency_id
            )
            shown = [(one.agency_id, metrics)]
    engine.dispose()
    with_agency = agencies.path is not None
    if as_json:
        objects = [m.to_json(with_agency=with_agency) for _, ms in shown for m in ms]
        sys.stdout.write(json.dumps(objects, ensure_ascii=False) + "\n")
        return
    language = settings.alerts.language
    for agency_id, metrics in shown:
        title = f"{label} as of {day}"
        if with_agency:
            if agency_id == ALL_AGENCIES:
                n = len(shown) - 1
                rollup = f"全市汇总，{n} 个单位" if language == "zh" else f"City rollup of {n}"
                name = f"{rollup} ({agency_id})"
            else:
                name = f"{agencies.get(agency_id).name(language)} ({agency_id})"
            title = f"{escape(name)}: {title}"
        out.print(scorecard_table(metrics, title, language))
    provisional = any(m.provisional for _, ms in shown for m in ms)
    print_calendar_note(settings, Period.parse(label), day, provisional)


def _print_alerts(run: Any) -> None:
    """What the alerting step announced and what it sent, per channel."""
    from rulewatch.cli.console import out

    if run is None:
        return
    for a in run.planned:
        out.print(f"alert raised: {a.title}")
    for d in run.deliveries:
        suffix = f" ({d.error})" if d.error else ""
        out.print(f"alert {d.alert_id[:8]} -> {d.channel}: {d.status}{suffix}")
    if not run.planned and not run.deliveries:
        out.print("alerts: nothing new to announce")
    elif run.planned and not run.deliveries:
        out.print(
            "alerts: no channel configured (RULEWATCH_ALERT_URLS or urls in alerts.yaml); "
            "these alerts are recorded in the warehouse only"
        )


def _print_checks(settings: Settings, result: Any) -> None:
    """A nightly run's data-quality findings and slipped targets with their records."""
    from rulewatch.checks.config import load_checks_config
    from rulewatch.checks.display import print_quality_run, print_target_run
    from rulewatch.cli.console import out

    listed = load_checks_config(settings).listed_offenders
    if result.quality is not None:
        print_quality_run(out, result.quality, listed)
    if result.targets is not None:
        print_target_run(out, result.targets, listed, table=False)
        if result.targets.checks_page is not None:
            out.print(f"checks page: {result.targets.checks_page}")


@app.command()
@_errors
def check(
    period: Annotated[
        str | None,
        typer.Option("--period", help="2023, 2023-Q4 or 2023-10; default the as-of date's year"),
    ] = None,
    as_of: AsOf = None,
    fail_on_slip: Annotated[
        bool, typer.Option("--fail-on-slip", help="exit 3 when a critical target slipped")
    ] = False,
    agency: AgencyOpt = None,
) -> None:
    """Check the targets on what the warehouse holds; list slipped ones and their records.

    With agencies.yaml each selected agency (default: all) is checked against its own
    thresholds and its scorecard printed under its name.
    """
    from rich.markup import escape

    from rulewatch.alerts.announce import open_deliveries
    from rulewatch.alerts.health import health_lines, health_pass, source_health
    from rulewatch.alerts.health import utc_now as health_now
    from rulewatch.checks.config import load_checks_config
    from rulewatch.checks.display import print_target_run
    from rulewatch.checks.targets import run_target_checks
    from rulewatch.cli.console import out, print_calendar_note
    from rulewatch.config.agencies import load_agencies
    from rulewatch.report.published import print_reconciliation, reconcile_period
    from rulewatch.warehouse.runs import snapshot

    settings = load_settings()
    load_checks_config(settings)
    validate_alert_urls(settings)
    day = _as_of(settings, as_of)
    checked = Period.parse(_parse_period(period) if period is not None else str(day.year))
    selected = _agencies(settings, agency, all_by_default=True)
    agencies = load_agencies(settings)
    named = agencies.path is not None
    engine = _warehouse(settings)
    done = []
    try:
        for scoped in selected:
            checks = load_checks_config(scoped)  # its Data Docs and checks page: its folder
            health = health_pass(engine, scoped)  # heal crashed runs; failing/stale sources
            run = run_target_checks(engine, scoped, [checked], day, checks=checks)
            reconciled = reconcile_period(engine, scoped, checked, day)
            with snapshot(engine) as conn:  # one consistent view, also while a sync writes
                sources = source_health(conn, scoped, health_now())
                waiting = open_deliveries(conn, agency_id=scoped.agency_id)
            done.append((scoped, checks, health, run, reconciled, sources, waiting))
    finally:
        engine.dispose()
    for scoped, checks, health, run, reconciled, sources, waiting in done:
        if named:
            name = agencies.get(scoped.agency_id).name(scoped.alerts.language)
            out.print(
                f"[bold]agency {escape(scoped.agency_id)}[/]: {escape(name)}", highlight=False
            )
        print_target_run(out, run, checks.listed_offenders)
        print_calendar_note(scoped, checked, day, any(c.provisional for c in run.checks))
        print_reconciliation(out, reconciled)
        for line in health_lines(sources, waiting, health.healed):
            out.print(line, markup=False, soft_wrap=True)  # one line per source, for grep
        _print_alerts(health)
        if run.checks_page is not None:
            out.print(f"checks page: {run.checks_page}")
    if fail_on_slip and any(run.critical_slipped for _, _, _, run, *_ in done):
        raise typer.Exit(EXIT_SLIPPED)


def _run_nightly(
    settings: Settings,
    sources: list[str],
    full_refresh: bool,
    as_of: date,
    agencies: list[Settings] | None = None,
    agency: str | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> Any:  # NightlyResult, or CityResult with ``agencies``
    """The nightly flow, on Prefect's API (configured, served, or temporary).

    With ``agencies`` (settings of the agencies chosen from agencies.yaml) the city's
    night runs them (``agency``: the ``--agency`` value); each agency's missing
    variable is a usage error before any work. Without, the one agency's night as always.
    ``meanwhile`` runs once Prefect's server is starting (the demo's work that needs
    no Prefect, while this process would only wait for it).
    """
    _quiet_prefect()
    from rulewatch.cli.preflight import PreflightFailed, check_before_sync
    from rulewatch.flows.prefect_start import EarlyPrefect
    from rulewatch.warehouse.db import WarehouseError

    if agencies is None:
        for name in sources:
            settings.source(name)  # exit 2 on a missing URL or credential, before any work
    else:
        _check_sources(settings, agencies, sources)
    try:  # alert URLs, warehouse, Prefect API: before any Prefect output
        check_before_sync(settings)
    except (WarehouseError, PreflightFailed) as exc:  # a night that cannot start has failed
        from rulewatch.alerts.health import announce_failed_start

        announce_failed_start(settings, str(exc))
        raise
    prefect_api = EarlyPrefect(settings)  # its server starts while the imports below run
    if meanwhile is not None:
        meanwhile()
    from rulewatch.cli.console import live_progress, out, sync_table
    from rulewatch.common.stopping import GRACE_SECONDS, stop_after
    from rulewatch.flows.nightly import SourcesFailed, nightly_sync, set_progress_sink

    imports_done()

    limit = settings.schedule.timeouts.flow_seconds
    flow = nightly_sync.with_options(timeout_seconds=limit)
    deadline = stop_after(  # Prefect's flow timeout cannot stop a task blocked in a thread
        limit + GRACE_SECONDS,
        f"the nightly run overstayed its {limit:.0f} s "
        "(schedule.yaml: timeouts.flow_seconds) and was stopped",
    )
    city = {} if agencies is None else {"agency": agency}
    # one bar per source reads well for one agency; agencies would share the bars
    with live_progress(sources if agencies is None else []) as on_page:
        set_progress_sink(on_page if agencies is None else None)
        try:
            with prefect_api.ready():
                state = flow(
                    sources=sources,
                    full_refresh=full_refresh,
                    as_of=as_of,
                    **city,
                    return_state=True,
                )
        finally:
            set_progress_sink(None)
            deadline.cancel()
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        raise outcome
    if agencies is not None:
        return outcome  # the caller prints each agency's, then fails naming the failed ones
    if outcome.failed:
        out.print(sync_table(outcome.sources, outcome.failed))
        raise JobFailed(str(SourcesFailed(outcome)))
    out.print(sync_table(outcome.sources, outcome.failed))
    return outcome


def _check_sources(settings: Settings, agencies: list[Settings], sources: list[str]) -> None:
    """Each agency's sources among ``sources`` resolve (URL, credentials), else exit 2."""
    from rulewatch.config.agencies import load_agencies

    every = load_agencies(settings)
    for scoped in agencies:
        has = every.get(scoped.agency_id).sources
        for name in (n for n in sources if n in has):
            scoped.source(name)


def _print_city(settings: Settings, agencies: list[Settings], result: Any, as_of: date) -> None:
    """Each agency's sync table, scorecard, checks and alerts, under its name."""
    from rulewatch.cli.console import out, print_calendar_note, scorecard_table, sync_table
    from rulewatch.config.agencies import load_agencies

    every = load_agencies(settings)
    for scoped in agencies:
        agency = every.get(scoped.agency_id)
        lang = scoped.alerts.language
        out.rule(f"{agency.agency_id}: {agency.name(lang)}")
        nightly = result.agencies.get(agency.agency_id)
        if nightly is None:
            out.print(f"run failed: {result.failed.get(agency.agency_id, 'did not run')}")
            continue
        out.print(sync_table(nightly.sources, nightly.failed))
        out.print(scorecard_table(nightly.metrics, f"{as_of.year} as of {as_of}", lang))
        print_calendar_note(
            scoped,
            Period.parse(str(as_of.year)),
            as_of,
            any(m.provisional for m in nightly.metrics),
        )
        _print_checks(scoped, nightly)
        _print_alerts(nightly.alerts)


def _describe(url: str) -> str:
    from rulewatch.warehouse.db import redact

    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    return redact(url)


@app.command()
@_errors
def sync(
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help=f"only this source (repeatable): {', '.join(SOURCE_NAMES)}"),
    ] = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="re-read everything, ignoring watermarks")
    ] = False,
    as_of: AsOf = None,
    agency: AgencyOpt = None,
) -> None:
    """The nightly job: extract each source, validate, load, compute the metrics."""
    from rulewatch.cli.console import out, print_calendar_note, scorecard_table
    from rulewatch.common.stopping import stop_on_sigterm

    stop_on_sigterm("sync")
    end_without_cleanup()
    collect_after_imports()
    settings = load_settings()
    names = list(dict.fromkeys(source or SOURCE_NAMES))
    for name in names:
        if name not in SOURCE_NAMES:
            raise ConfigError(f"--source {name!r}: unknown source; choose from {SOURCE_NAMES}")
    day = _as_of(settings, as_of)
    chosen = _agencies(settings, agency, all_by_default=True)
    if _has_agencies_file(settings):  # the city's night, one run per agency
        _sync_city(settings, chosen, names, full_refresh, day, agency)
        return
    result = _run_nightly(settings, names, full_refresh, day)
    out.print(scorecard_table(result.metrics, f"{day.year} as of {day}", settings.alerts.language))
    print_calendar_note(
        settings, Period.parse(str(day.year)), day, any(m.provisional for m in result.metrics)
    )
    _print_checks(settings, result)
    _print_alerts(getattr(result, "alerts", None))
    out.print(f"warehouse: {_describe(settings.warehouse_url)}")


def _sync_city(
    settings: Settings,
    chosen: list[Settings],
    names: list[str],
    full_refresh: bool,
    day: date,
    agency: str | None,
) -> Any:
    """The city's night for ``sync``: each agency's figures, then exit 1 naming failed ones."""
    from rulewatch.cli.console import out
    from rulewatch.flows.nightly import AgenciesFailed

    result = _run_nightly(settings, names, full_refresh, day, chosen, agency)
    _print_city(settings, chosen, result, day)
    out.print(f"warehouse: {_describe(settings.warehouse_url)}")
    if result.failed:
        raise JobFailed(str(AgenciesFailed(result)))
    return result


@app.command()
@_errors
def report(
    ctx: typer.Context,
    period: PeriodOpt,
    out_dir: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="the folder to write the files to; with --agency the default is the "
            "agency's folder (DATA_DIR/agencies/ID/reports) and, for all, DATA_DIR/city "
            "(with --out: DIR/agencies/ID and DIR/city)",
        ),
    ] = None,
    as_of: AsOf = None,
    agency: AgencyOpt = None,
) -> None:
    """Write the period's report: HTML, CSV and XLSX exports, annual-report drafts.

    ``--agency all`` writes every agency's report and the city report (a league
    table of the agencies per target, the city's rollup, trends, offending
    records, freshness and published figures per agency).
    """
    from rulewatch.config.agencies import ALL_AGENCIES
    from rulewatch.report.city import CITY_FOLDER, write_city_report
    from rulewatch.report.write import write_report
    from rulewatch.warehouse.runs import heal_runs

    settings = load_settings()
    chosen = _agencies(settings, agency, all_by_default=False)  # several: --agency needed
    if out_dir is None and agency is None:  # one agency, as before agencies: --out needed
        ctx.fail("Missing option '--out'.")
    label = _parse_period(period)
    day = _as_of(settings, as_of)
    city = agency == ALL_AGENCIES
    root = None if out_dir is None else Path(out_dir)

    def folder(scoped: Settings) -> Path:
        if root is None:
            return scoped.output_dir / "reports"
        return root / "agencies" / scoped.agency_id if city else root

    engine = _warehouse(settings)
    paths: list[Path] = []
    try:
        heal_runs(engine)  # a killed sync shows as abandoned in the freshness section
        for scoped in chosen:
            files = write_report(engine, scoped, Period.parse(label), day, folder(scoped))
            paths += files.paths
        if city:
            where = settings.data_dir / CITY_FOLDER if root is None else root / CITY_FOLDER
            paths += write_city_report(engine, settings, Period.parse(label), day, where).paths
    finally:
        engine.dispose()
    for path in paths:
        print(path)


@app.command()
@_errors
def demo(
    agencies: Annotated[
        int | None,
        typer.Option(
            "--agencies",
            min=1,
            max=500,
            help="a city of N agencies (one with a failing source): their night, the league table",
        ),
    ] = None,
) -> None:
    """Start the demo source systems, run the nightly pipeline on them, show the scorecards."""
    from rulewatch.cli.console import err, out, scorecard_table
    from rulewatch.common.stopping import stop_on_sigterm
    from rulewatch.demo.data import DEMO_TODAY
    from rulewatch.demo.servers import start_demo_sources
    from rulewatch.metrics.compute import compute_metrics, early_warnings

    stop_on_sigterm("demo")
    end_without_cleanup()
    if agencies is not None:
        _demo_city(agencies)
        return
    with start_demo_sources() as demo_sources, contextlib.ExitStack() as ahead:

        def meanwhile() -> None:
            """While Prefect's server starts (~7 s on a new home, a core to spare): GX
            imports in its own process, this one imports what the reports need."""
            from rulewatch.checks.gx_runner import recorder_ahead

            ahead.enter_context(recorder_ahead())
            import rulewatch.report.write  # noqa: F401 - matplotlib, openpyxl: after the flow

        os.environ.update(demo_sources.env())
        settings = load_settings()
        _, key_from = settings.pii_key()
        err.print(
            f"demo sources: permits {demo_sources.permits_url}, enforcement "
            f"{demo_sources.enforcement_url}, docreview {demo_sources.docreview_url}"
        )
        if key_from != "RULEWATCH_PII_KEY":
            err.print(
                f"passport pseudonym key: {key_from} (made for the demo and kept; "
                "set RULEWATCH_PII_KEY in production)"
            )
        result = _run_nightly(settings, list(SOURCE_NAMES), False, DEMO_TODAY, meanwhile=meanwhile)
    from rulewatch.report.drawing import ChartProcess

    # matplotlib imports in its own process while this one rebuilds the history
    with ChartProcess() as drawer:
        engine = _warehouse(settings)
        lang = settings.alerts.language
        with engine.connect() as conn:
            for period in (str(DEMO_TODAY.year - 1), str(DEMO_TODAY.year)):
                metrics = compute_metrics(conn, Period.parse(period), DEMO_TODAY, settings.targets)
                title = f"{period} as of {DEMO_TODAY}" + (
                    " (year to date)" if period == str(DEMO_TODAY.year) else ""
                )
                out.print(scorecard_table(metrics, title, lang))
            warnings = early_warnings(conn, DEMO_TODAY, settings.alerts.early_warning_days)
        from rulewatch.report.write import write_demo_reports

        reports = write_demo_reports(engine, settings, DEMO_TODAY, drawer)
        engine.dispose()
    _print_checks(settings, result)
    _print_alerts(getattr(result, "alerts", None))
    for w in warnings:
        out.print(
            f"[yellow]early warning[/]: docreview.filing_rate — {w['doc_id']} "
            f"not filed, deadline {w['deadline']} ({w['days_left']} days left)"
        )
    for path in reports:
        out.print(f"report: {path}")
    out.print(f"warehouse: {_describe(settings.warehouse_url)}")


CITY_DEMO_DIR = "city-demo"


def _demo_city(count: int) -> None:
    """``demo --agencies N``: demo systems for N agencies, their night, the league table
    (every agency and the city rollup) and the city report.

    The city gets its own folder (``<data dir>/city-demo``: a copy of the config
    folder with the ``agencies.yaml`` of the demo systems, and, unless
    ``RULEWATCH_WAREHOUSE_URL`` is set, its own SQLite warehouse), so the plain
    demo's warehouse stays the plain demo's. The copy retries a failing source
    task no more (``retries.source_task: 0``): the failing agency is named after
    its request retries, not a minute later.
    """
    import shutil

    import yaml

    from rulewatch.cli.console import err, league_table, out
    from rulewatch.demo.agencies import demo_agencies, start_agency_sources
    from rulewatch.demo.data import DEMO_TODAY
    from rulewatch.metrics.compute import compute_city_metrics
    from rulewatch.report.city import CITY_FOLDER, write_city_report

    base = load_settings()
    home = base.data_dir / CITY_DEMO_DIR
    config_dir = home / "config"
    shutil.rmtree(config_dir, ignore_errors=True)
    shutil.copytree(
        base.config_dir,
        config_dir,
        ignore=lambda _d, names: [n for n in names if not n.endswith(".yaml")],
    )
    schedule_path = config_dir / "schedule.yaml"
    schedule = yaml.safe_load(schedule_path.read_text(encoding="utf-8")) or {}
    schedule.setdefault("retries", {})["source_task"] = 0
    schedule_path.write_text(yaml.safe_dump(schedule, sort_keys=False), encoding="utf-8")
    demo_city = demo_agencies(count)
    # the seed bureau's published figures are agency 0's: it serves the seed's data
    published_path = config_dir / "published.yaml"
    published = yaml.safe_load(published_path.read_text(encoding="utf-8")) or {}
    for item in published.get("reports") or []:
        item.setdefault("agency", demo_city[0].agency_id)
    published_path.write_text(
        yaml.safe_dump(published, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    with start_agency_sources(demo_city) as sources:
        (config_dir / "agencies.yaml").write_text(sources.agencies_yaml(), encoding="utf-8")
        os.environ.update(sources.env())
        os.environ["RULEWATCH_CONFIG_DIR"] = str(config_dir)
        os.environ["RULEWATCH_DATA_DIR"] = str(home)
        settings = load_settings()
        settings.pii_key()  # made for the demo and kept, as the plain demo does
        err.print(
            f"demo sources for {count} agencies: permits {sources.ports['permits']}, "
            f"enforcement {sources.ports['enforcement']}, docreview "
            f"{sources.ports['docreview']} on {sources.host}, one path per agency"
        )
        chosen = _agencies(settings, None, all_by_default=True)
        result = _run_nightly(settings, list(SOURCE_NAMES), False, DEMO_TODAY, chosen)
    engine = _warehouse(settings)
    targets = {scoped.agency_id: scoped.targets for scoped in chosen}
    # last year's, where the agencies differ most, then this year's to date (as the plain
    # demo shows both years' scorecards)
    years = [Period.parse(str(DEMO_TODAY.year - 1)), Period.parse(str(DEMO_TODAY.year))]
    try:
        with engine.connect() as conn:  # every agency and the rollup (``all``), in SQL
            leagues = [
                (year, compute_city_metrics(conn, year, DEMO_TODAY, targets, settings.targets))
                for year in years
            ]
        city = write_city_report(engine, settings, years[-1], DEMO_TODAY, home / CITY_FOLDER)
    finally:
        engine.dispose()
    lang = settings.alerts.language
    for year, by_agency in leagues:
        title = f"{year.label} as of {DEMO_TODAY}: league table"
        out.print(league_table(by_agency, title, lang))
    for agency_id, why in result.failed.items():
        out.print(f"[red]agency {agency_id} failed[/]: {why}", soft_wrap=True)
    for path in city.paths:
        out.print(f"city report: {path}")
    out.print(f"config: {config_dir / 'agencies.yaml'}")
    out.print(f"warehouse: {_describe(settings.warehouse_url)}")


@app.command("demo-sources")
@_errors
def demo_sources(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="permits on N, enforcement N+1, docreview N+2")
    ] = 8701,
) -> None:
    """Run only the demo source systems, until Ctrl-C."""
    from rulewatch.demo.servers import serve_demo_sources

    serve_demo_sources(host, port)


@app.command()
@_errors
def serve(
    once_now: Annotated[
        bool, typer.Option("--once-now", help="also run the nightly sync right away")
    ] = False,
) -> None:
    """Stay up and run the nightly sync on its schedule (cron and timezone from config)."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")  # flow-run logs in this terminal
    _quiet_prefect()
    from rulewatch.alerts.health import health_pass
    from rulewatch.cli.preflight import check_prefect_api, check_warehouse
    from rulewatch.flows.serve import PrefectServerError, run_serve

    settings = load_settings()
    validate_cron(settings)
    validate_alert_urls(settings)
    if _has_agencies_file(settings):  # every agency's sources: exit 2 now, not every night
        _check_sources(settings, _agencies(settings, None, all_by_default=True), list(SOURCE_NAMES))
    else:
        for name in SOURCE_NAMES:
            settings.source(name)  # exit 2 now rather than fail every night
    check_warehouse(settings)  # exit 1 now if the warehouse cannot be reached
    check_prefect_api()  # and a configured Prefect API must answer
    engine = _warehouse(settings, upgrade=True)  # serve runs the nightly job: it may migrate
    try:  # heal crashed runs, announce failing or stale sources (a stopped scheduler)
        health = health_pass(engine, settings)
        if health.planned or health.deliveries:
            _print_alerts(health)
    finally:
        engine.dispose()
    try:
        run_serve(settings, once_now=once_now)
    except PrefectServerError as exc:
        raise JobFailed(str(exc)) from None


@app.command()
@_errors
def deploy(
    pool: Annotated[
        str, typer.Option("--pool", help="the work pool (made a process pool if missing)")
    ] = "rulewatch",
) -> None:
    """Register the nightly and backfill deployments on the work pool of PREFECT_API_URL."""
    _quiet_prefect()
    from rulewatch.flows.deploy import DeployError, deploy_to_pool

    settings = load_settings()
    validate_cron(settings)
    validate_alert_urls(settings)
    limits: dict[str, int] = {}
    try:
        registered = deploy_to_pool(settings, pool, limits)
    except DeployError as exc:
        raise JobFailed(str(exc)) from None
    for deployment in registered:
        print(f"deployment {deployment.name} on work pool {pool}")
    for name, size in limits.items():
        print(f"concurrency limit {name}: {size} at once")
    print(f"start workers with: prefect worker start --pool {pool}")


@app.command()
@_errors
def upgrade() -> None:
    """Upgrade the warehouse's schema to this rulewatch's version (sync does it too)."""
    from rulewatch.common.workdays import calendar_of
    from rulewatch.warehouse.db import upgrade_warehouse

    settings = load_settings()
    before, after = upgrade_warehouse(
        settings.warehouse_url, calendar_of(settings), settings.schedule.timeouts
    )
    where = _describe(settings.warehouse_url)
    if before == after:
        print(f"warehouse {where}: schema already at revision {after}")
    else:
        print(f"warehouse {where}: schema upgraded from revision {before or 'none'} to {after}")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        from rulewatch.warehouse.db import schema_head

        try:
            installed = version("rulewatch")
        except PackageNotFoundError:  # run from a source tree that was never installed
            installed = "(not installed)"
        print(f"rulewatch {installed} (warehouse schema {schema_head()})")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Nightly ETL and compliance checks for a bureau's rule-of-law reporting."""


def main() -> None:
    """Console-script entry point: logging set up, then the command; never a traceback."""
    from rulewatch.common.logs import configure_logging

    os.environ.setdefault("DO_NOT_TRACK", "1")  # Prefect's telemetry: off unless asked for
    try:
        configure_logging(log_format(), log_level())
    except ConfigError as exc:
        print(f"rulewatch: error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    _CONSOLE[0] = True
    atexit.register(_end_without_cleanup)  # first of ours, so the last to run
    try:
        app()
    except SystemExit as exc:
        _QUICK_END[1] = 0 if exc.code is None else exc.code
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 1
        logging.getLogger("rulewatch").debug("unexpected error", exc_info=True)
        detail = str(exc).strip().splitlines()
        print(
            f"rulewatch: failed: unexpected {type(exc).__name__}"
            + (f": {detail[0]}" if detail else "")
            + " (RULEWATCH_LOG_LEVEL=DEBUG shows the traceback)",
            file=sys.stderr,
        )
        _QUICK_END[1] = EXIT_FAILED
        raise SystemExit(EXIT_FAILED) from None


if __name__ == "__main__":
    main()
