"""The markdown summary published as a Prefect artifact shows source text as text."""

from __future__ import annotations

from datetime import date

from markdown_it import MarkdownIt

from rulewatch.checks.display import markdown_summary
from rulewatch.checks.results import Offender, TargetCheck
from rulewatch.checks.targets import TargetRun

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    "[click](javascript:alert(3))",
    "**bold** `code` _x_",
]


def test_offender_keys_render_as_text_in_the_summary() -> None:
    offenders = tuple(Offender(k, "not filed; deadline 2023-03-31") for k in HOSTILE)
    check = TargetCheck(
        metric="docreview.filing_rate",
        period="2023",
        as_of=date(2023, 12, 29),
        value=0.0,
        numerator=0,
        denominator=len(offenders),
        target=1.0,
        severity="critical",
        status="slipped",
        offenders=offenders,
        offender_count=len(offenders),
    )
    run = TargetRun("run", date(2023, 12, 29), ("2023",), checks=[check])
    rendered = MarkdownIt("commonmark").render(markdown_summary(run, None, 20))
    assert "<script" not in rendered and "<img" not in rendered
    assert "href=" not in rendered and "<strong>" not in rendered and "<code>" not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered  # shown as written
    assert "[click](javascript:alert(3))" in rendered
    assert "**bold** `code` _x_" in rendered


def test_each_agency_has_its_own_artifact_keys() -> None:
    from rulewatch.checks.display import SUMMARY_ARTIFACT_KEY, TABLE_ARTIFACT_KEY, artifact_key

    assert artifact_key(TABLE_ARTIFACT_KEY) == "rulewatch-targets"  # as without agencies.yaml
    assert artifact_key(SUMMARY_ARTIFACT_KEY, "science-tech") == "rulewatch-checks-science-tech"
