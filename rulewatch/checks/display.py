"""How check results are shown: the terminal, and Prefect artifacts in the UI."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from rulewatch.checks.quality import QualityRun
from rulewatch.checks.results import TargetCheck
from rulewatch.checks.targets import TargetRun
from rulewatch.common.numbers import PROVISIONAL_CAPTION, PROVISIONAL_MARK, format_percent
from rulewatch.warehouse.schema import DEFAULT_AGENCY_ID

TABLE_ARTIFACT_KEY = "rulewatch-targets"
SUMMARY_ARTIFACT_KEY = "rulewatch-checks"
_STYLE = {"met": "green", "slipped": "bold red", "no_data": "yellow"}


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()#!|~])")


def markdown_text(text: str) -> str:
    """Source text as inert markdown: HTML escaped, markdown punctuation backslashed,
    so a key like ``<script>`` or ``[x](javascript:..)`` shows as written in the UI."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def offender_lines(check: TargetCheck, listed: int) -> list[str]:
    """The first ``listed`` offenders as ``key: reason``, then how many more."""
    lines = [f"{o.natural_key}: {o.reason}" for o in check.offenders[:listed]]
    more = check.offender_count - min(listed, len(check.offenders))
    if more > 0:
        lines.append(f"... and {more} more")
    return lines


def targets_table(run: TargetRun) -> Table:
    """One row per checked target: value, n / d, target, severity, status, offenders."""
    table = Table(title=f"target checks as of {run.as_of}", title_justify="left")
    for col in ("metric", "period", "value", "n / d", "target", "severity", "status", "offenders"):
        table.add_column(col, justify="right" if col in ("value", "n / d", "target") else "left")
    for c in run.checks:
        style = _STYLE.get(c.status, "")
        table.add_row(
            c.metric,
            c.period,
            format_percent(c.value) + (PROVISIONAL_MARK if c.provisional else ""),
            f"{c.numerator} / {c.denominator}",
            f"{format_percent(c.target)}",
            c.severity,
            f"[{style}]{c.status}[/]" if style else c.status,
            str(c.offender_count) if c.offender_count else "",
        )
    if any(c.provisional for c in run.checks):
        table.caption = PROVISIONAL_CAPTION
        table.caption_justify = "left"
    return table


def print_target_run(console: Console, run: TargetRun, listed: int, table: bool = True) -> None:
    """The checked targets (unless ``table=False``), then each slipped one with its records."""
    if table:
        console.print(targets_table(run))
    for c in run.slipped:
        console.print(
            f"[bold red]slipped[/]: {c.metric} {c.period} — {format_percent(c.value)} "
            f"({c.numerator} / {c.denominator}), target {format_percent(c.target)} ({c.severity}); "
            + ("[yellow]provisional[/]; " if c.provisional else "")
            + f"{c.offender_count} record(s):"
        )
        for line in offender_lines(c, listed):
            console.print(f"  {line}", markup=False)
    if not run.slipped:
        console.print("no target slipped")


def print_quality_run(console: Console, run: QualityRun, listed: int) -> None:
    """One line per failed data-quality expectation, and what was set aside."""
    if not run.failed:
        console.print(f"data quality: {run.rows_checked} rows checked, every expectation met")
        return
    console.print(
        f"data quality: {run.rows_checked} rows checked, {len(run.failed)} expectation(s) "
        f"failed, {run.set_aside} row(s) set aside"
        + (f", {run.released} released" if run.released else "")
    )
    for r in run.failed:
        keys = ", ".join(o.natural_key for o in r.offenders[:listed])
        more = r.offender_count - min(listed, len(r.offenders))
        tail = f" and {more} more" if more > 0 else ""
        action = "set aside" if r.severity == "critical" else "still counted"
        console.print(
            f"  {r.expectation} ({r.severity}): {r.offender_count} of {r.denominator} rows, "
            f"{action}: {keys}{tail}",
            markup=False,
        )


def table_rows(run: TargetRun, listed: int = 5) -> list[dict[str, Any]]:
    """The scorecard as rows for a Prefect table artifact."""
    return [
        {
            "metric": c.metric,
            "period": c.period,
            "as_of": c.as_of.isoformat(),
            "value": c.value,
            "numerator": c.numerator,
            "denominator": c.denominator,
            "target": c.target,
            "severity": c.severity,
            "status": c.status,
            "provisional": c.provisional,
            "offenders": c.offender_count,
            "first_offenders": ", ".join(o.natural_key for o in c.offenders[:listed]),
        }
        for c in run.checks
    ]


def markdown_summary(targets: TargetRun, quality: QualityRun | None, listed: int) -> str:
    """A markdown summary: slipped targets with their records, data quality, checks page."""
    lines = [f"# rulewatch checks as of {targets.as_of}", ""]
    slipped: Sequence[TargetCheck] = targets.slipped
    met = sum(c.status == "met" for c in targets.checks)
    lines.append(
        f"{len(targets.checks)} target(s) checked for {', '.join(targets.periods)}: "
        f"{met} met, {len(slipped)} slipped."
    )
    for c in slipped:
        lines += [
            "",
            f"## {c.metric} {c.period}: slipped ({c.severity})"
            + (" (provisional working days)" if c.provisional else ""),
            "",
            f"{format_percent(c.value)} ({c.numerator} / {c.denominator}), target {format_percent(c.target)}",
            "",
        ]
        lines += [f"- {markdown_text(line)}" for line in offender_lines(c, listed)]
    if quality is not None:
        lines += ["", "## Data quality", ""]
        lines.append(
            f"{quality.rows_checked} rows checked, {len(quality.failed)} expectation(s) failed, "
            f"{quality.set_aside} row(s) set aside."
        )
        for r in quality.failed:
            lines.append(f"- {r.expectation} ({r.severity}): {r.offender_count} row(s)")
    if targets.checks_page is not None:
        lines += ["", f"Checks page: `{targets.checks_page}`"]
    return "\n".join(lines) + "\n"


def artifact_key(key: str, agency_id: str = DEFAULT_AGENCY_ID) -> str:
    """A Prefect artifact key of one agency: the key itself for the one (default) agency,
    ``<key>-<agency>`` for another, so each agency's scorecard has its own history."""
    return key if agency_id == DEFAULT_AGENCY_ID else f"{key}-{agency_id}"


def publish_artifacts(
    targets: TargetRun,
    quality: QualityRun | None,
    listed: int,
    *,
    agency_id: str = DEFAULT_AGENCY_ID,
) -> None:
    """The agency's scorecard as a Prefect table artifact and a markdown summary (in a
    flow run)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    of = "" if agency_id == DEFAULT_AGENCY_ID else f" of {agency_id}"
    create_table_artifact(
        table_rows(targets),
        key=artifact_key(TABLE_ARTIFACT_KEY, agency_id),
        description=f"rulewatch target checks{of} as of {targets.as_of}",
    )
    create_markdown_artifact(
        markdown_summary(targets, quality, listed),
        key=artifact_key(SUMMARY_ARTIFACT_KEY, agency_id),
        description=f"slipped targets, their records, data quality{of}",
    )
