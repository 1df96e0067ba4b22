"""The HTML report: one self-contained file (inline CSS, charts as embedded PNG).

No scripts and no outside resources, so it opens the same from a mail
attachment, a file share or an intranet page. Text is in the bureau's language
(``alerts.language``); metric ids are shown everywhere, so every row cites the
target it is about. Elements carry ``data-*`` attributes for tests and scrapers.
The page is the Jinja2 template ``templates/report.html.j2`` (autoescaped).
"""

from __future__ import annotations

from collections.abc import Sequence

from rulewatch.common.messages import t
from rulewatch.common.metric_ids import METRICS
from rulewatch.common.templates import environment
from rulewatch.report.charts import Chart
from rulewatch.report.data import ReportData


def report_title(data: ReportData) -> str:
    """The report's title: what, which period, and whose when agencies.yaml names agencies."""
    title = f"{t('title', data.language)} {data.period.label}"
    return title if data.agency_name is None else f"{title} — {data.agency_name}"


def render_html(
    data: ReportData, charts: Sequence[Chart], drafts: dict[str, list[str]], warehouse: str
) -> str:
    """The whole report page."""
    lang = data.language
    offender_order = sorted(
        (c for c in data.targets if c.offenders), key=lambda c: (c.status != "slipped", c.metric)
    )
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            data=data,
            lang=lang,
            title=report_title(data),
            charts=charts,
            drafts=drafts,
            warehouse=warehouse,
            offender_order=offender_order,
            counts=[m for m in data.metrics if METRICS[m.metric][0] != "rate"],
        )
    )
