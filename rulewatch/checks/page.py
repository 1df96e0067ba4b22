"""The checks page: one self-contained HTML file of the latest checks, readable offline.

``rulewatch check`` and the nightly job point operators here rather than at
Great Expectations' Data Docs, which load about fifteen scripts and style
sheets from CDNs and show a blank page on an intranet without internet. This
page has inline CSS, no scripts and no outside resources, and is rendered with
Jinja2 autoescape, so a record key or reason from a source shows as text and
never runs. It lists every target of the run with its first offenders and the
failed expectations of the latest data-quality run; Data Docs stay beside it
for GX's own detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from jinja2 import Environment
from sqlalchemy import Engine, select

from rulewatch.checks.results import TargetCheck
from rulewatch.common.numbers import format_percent
from rulewatch.common.staging import written_together
from rulewatch.warehouse.schema import (
    DEFAULT_AGENCY_ID,
    check_offender,
    check_result,
    check_run,
)

#: The page's name, beside Data Docs' ``index.html``.
PAGE_NAME = "checks.html"

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>rulewatch checks as of {{ as_of }}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:72em;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}.num{text-align:right}code{font-size:90%;word-break:break-all}
.slipped,.failed{color:#a40000;font-weight:600}.met,.passed{color:#1a7f37}.sub{color:#666}
</style></head><body>
<h1>rulewatch checks as of {{ as_of }}</h1>
<p class="sub">periods {{ periods }}; written {{ written }} UTC; check run <code>{{ check_run_id }}</code></p>
<h2>Targets</h2>
<table id="targets"><tr><th>metric</th><th>period</th><th class="num">value</th>
<th class="num">n / d</th><th class="num">target</th><th>severity</th><th>status</th>
<th class="num">offenders</th></tr>
{% for c in targets %}<tr data-metric="{{ c.metric }}" class="{{ c.status }}">
<td><code>{{ c.metric }}</code></td><td>{{ c.period }}</td><td class="num">{{ pct(c.value) }}</td>
<td class="num">{{ c.numerator }} / {{ c.denominator }}</td><td class="num">{{ pct(c.target) }}</td>
<td>{{ c.severity }}</td><td class="{{ c.status }}">{{ c.status }}</td>
<td class="num">{{ c.offender_count or "" }}</td></tr>
{% endfor %}</table>
{% for c in targets if c.offenders %}
<h3 data-metric="{{ c.metric }}"><code>{{ c.metric }}</code> {{ c.period }}: {{ c.offender_count }} offending record(s)</h3>
<table><tr><th>record</th><th>reason</th></tr>
{% for o in c.offenders[:listed] %}<tr data-key="{{ o.natural_key }}"><td><code>{{ o.natural_key }}</code></td><td>{{ o.reason or "" }}</td></tr>
{% endfor %}</table>
{% if c.offender_count > listed %}<p class="sub">… and {{ c.offender_count - listed }} more (all of them in the warehouse's <code>check_offender</code> and in <code>rulewatch report</code>)</p>{% endif %}
{% endfor %}
<h2>Data quality</h2>
{% if quality is none %}<p id="quality">No data-quality run yet.</p>
{% else %}<p id="quality" class="sub">latest run {{ quality.started_at }} UTC: {{ quality.checked }} expectation(s), {{ quality.failed_results|length }} failed, {{ quality.set_aside }} row(s) set aside</p>
{% for r in quality.failed_results %}
<h3 data-expectation="{{ r.expectation }}"><code>{{ r.expectation }}</code> ({{ r.severity }}): {{ r.offender_count }} row(s){% if r.set_aside %}, {{ r.set_aside }} set aside{% endif %}</h3>
<table><tr><th>record</th><th>reason</th></tr>
{% for key, reason in r.offenders %}<tr data-key="{{ key }}"><td><code>{{ key }}</code></td><td>{{ reason or "" }}</td></tr>
{% endfor %}</table>
{% endfor %}{% endif %}
<p class="sub">Great Expectations' own Data Docs (<a href="index.html">index.html</a>, beside this page)
have every validation in detail; they load their styles from the internet.</p>
</body></html>
"""

_ENV = Environment(autoescape=True, keep_trailing_newline=True)


@dataclass(frozen=True)
class QualityResult:
    """A failed data-quality expectation of the latest run, with its first offenders."""

    expectation: str
    severity: str
    offender_count: int
    set_aside: int
    offenders: list[tuple[str, str | None]]


@dataclass(frozen=True)
class QualitySummary:
    """The latest data-quality run: when, how much it checked, what failed."""

    started_at: datetime
    checked: int
    set_aside: int
    failed_results: list[QualityResult]


def latest_quality(
    engine: Engine, listed: int, *, agency_id: str = DEFAULT_AGENCY_ID
) -> QualitySummary | None:
    """The agency's newest finished data-quality run's failed expectations, ``listed``
    keys each."""
    with engine.connect() as conn:
        run = conn.execute(
            select(check_run)
            .where(
                check_run.c.agency_id == agency_id,
                check_run.c.kind == "data_quality",
                check_run.c.finished_at.is_not(None),
            )
            .order_by(check_run.c.started_at.desc())
            .limit(1)
        ).first()
        if run is None:
            return None
        failed = []
        for r in conn.execute(
            select(check_result)
            .where(
                check_result.c.check_run_id == run.check_run_id, check_result.c.status == "failed"
            )
            .order_by(check_result.c.expectation)
        ):
            keys = conn.execute(
                select(check_offender.c.natural_key, check_offender.c.reason)
                .where(check_offender.c.check_result_id == r.check_result_id)
                .order_by(check_offender.c.natural_key)
                .limit(listed)
            ).all()
            failed.append(
                QualityResult(
                    r.expectation,
                    r.severity,
                    r.offender_count,
                    r.set_aside,
                    [tuple(k) for k in keys],
                )
            )
    return QualitySummary(run.started_at, run.checked, run.set_aside, failed)


def write_checks_page(
    folder: Path,
    *,
    as_of: date,
    periods: tuple[str, ...],
    check_run_id: str,
    targets: list[TargetCheck],
    quality: QualitySummary | None,
    listed: int,
) -> Path:
    """Write ``folder/checks.html`` (replaced each run) and return its path."""
    page = _ENV.from_string(_TEMPLATE).render(
        as_of=as_of,
        periods=", ".join(periods),
        written=datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        check_run_id=check_run_id,
        targets=sorted(targets, key=lambda c: (c.status != "slipped", c.metric, c.period)),
        quality=quality,
        listed=listed,
        pct=format_percent,
    )
    # a file of its own, then one rename: a reader (or a second writer) never sees half,
    # and a failed write (a full disk, a folder in the way) leaves the earlier page
    with written_together(folder) as stage:
        (stage / PAGE_NAME).write_text(page, encoding="utf-8", errors="backslashreplace")
    return folder / PAGE_NAME
