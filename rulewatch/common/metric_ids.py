"""The 22 metric ids of ``interface.md``, their kind and their labels.

This is the one spelling of every metric id in the project.
"""

from __future__ import annotations

from typing import Literal

MetricKind = Literal["count", "rate", "yoy"]

#: metric id -> (kind, English label, Chinese label)
METRICS: dict[str, tuple[MetricKind, str, str]] = {
    "permits.received": ("count", "Work-permit applications received", "受理工作许可申请"),
    "permits.approved": ("count", "Applications approved", "准予许可"),
    "permits.denied": ("count", "Applications denied", "不予许可"),
    "permits.received_yoy": ("yoy", "Received, year on year", "受理量同比"),
    "permits.approved_yoy": ("yoy", "Approved, year on year", "准予许可同比"),
    "permits.denied_yoy": ("yoy", "Denied, year on year", "不予许可同比"),
    "permits.on_time_rate": ("rate", "Decided within promised days", "按承诺时限办结率"),
    "enforcement.inspections": ("count", "Inspections", "行政检查"),
    "enforcement.double_random": ("count", "Double-random inspections", "双随机抽查"),
    "enforcement.credit_rule_rate": ("rate", "Credit-rule application rate", "信用规则应用率"),
    "enforcement.publication_rate": ("rate", "Results published", "检查结果公开率"),
    "enforcement.publication_timely_rate": (
        "rate",
        "Results published within 20 working days",
        "结果20个工作日内公开率",
    ),
    "enforcement.certified_officer_rate": (
        "rate",
        "Inspections by two or more certified officers",
        "持证执法率",
    ),
    "enforcement.certified_officers": ("count", "Certified enforcement officers", "行政执法人员"),
    "enforcement.auxiliary_staff": ("count", "Auxiliary enforcement staff", "辅助执法人员"),
    "docreview.normative_issued": ("count", "Normative documents issued", "制发行政规范性文件"),
    "docreview.filing_rate": ("rate", "Normative documents filed", "规范性文件报备率"),
    "docreview.filing_timely_rate": ("rate", "Filed on time", "报备及时率"),
    "docreview.filing_compliance_rate": ("rate", "Filings accepted", "报备合规率"),
    "docreview.legality_review_rate": ("rate", "Legality review before issue", "合法性审查率"),
    "docreview.contracts_reviewed": ("count", "Government contracts reviewed", "审查政府合同"),
    "docreview.repealed": ("count", "Normative documents repealed", "废止规范性文件"),
}

RATE_METRICS: tuple[str, ...] = tuple(m for m, (k, _, _) in METRICS.items() if k == "rate")


def label(metric: str, language: str = "en") -> str:
    """The metric's label in ``zh`` or ``en``; a custom rate of ``checks.yaml`` is
    labelled by its id."""
    if metric not in METRICS:
        return metric
    _, en, zh = METRICS[metric]
    return zh if language == "zh" else en
