"""One message catalog and Jinja2 templates: every key in both languages, HTML escaped."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from rulewatch.alerts.announce import render_target
from rulewatch.checks.results import Offender, TargetCheck
from rulewatch.common.messages import MESSAGES, PROVISIONAL_REASON, reason_text, t
from rulewatch.common.templates import environment
from rulewatch.metrics.compute import PROVISIONAL_NOTE

TEMPLATES = Path(environment().loader.searchpath[0])


def test_every_message_is_in_both_languages():
    for key, (en, zh) in MESSAGES.items():
        assert en.strip() and zh.strip(), key
        # the same values in both, in whatever order each language puts them
        assert sorted(re.findall(r"{\w+}", en)) == sorted(re.findall(r"{\w+}", zh)), key


def test_every_key_a_template_or_the_code_uses_is_in_the_catalog():
    used = set()
    for path in [*TEMPLATES.glob("*.j2"), *Path("rulewatch").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\b(?:t|msg)\(\s*["']([\w.]+)["']""", text))
    assert used, "no message key found"
    used = {k for k in used if not k.endswith(".")}  # "alert." + kind: the kinds below
    used |= {f"alert.{kind}" for kind in ("slipped", "recovered", "reminder", "early_warning")}
    assert sorted(used - set(MESSAGES)) == []


def test_html_is_escaped_and_text_is_not():
    env = environment()
    assert env.autoescape("report.html.j2") is True
    assert env.autoescape("alert_target.txt.j2") is False
    check = TargetCheck(
        "docreview.filing_rate", "2024", date(2024, 5, 20), 0.5, 1, 2, 1.0, "warning", "slipped",
        (Offender("D<1>", "a & b"),), 1,
    )  # fmt: skip
    _, body = render_target("slipped", check, "zh")
    assert "- D<1>: a & b" in body  # a plain-text e-mail, not entity soup
    assert "级别: 警告 (warning)" in body
    assert t("alert.more", "en", n=3) == "and 3 more"


def test_record_level_reasons_in_chinese():
    assert PROVISIONAL_REASON[0] == PROVISIONAL_NOTE  # the text the metrics append
    cases = {
        "not filed; deadline 2024-04-04 passed": "未报备;报备期限2024-04-04已过",
        "decided in 6 working days, promised 2" + PROVISIONAL_NOTE: (
            "6个工作日办结,承诺2个工作日(暂定:该年度放假安排尚未公布)"
        ),
        "3 officer(s), at least 2 required": "3名执法人员,至少需要2名",
        "result not published by 2024-05-20": "截至2024-05-20结果未公开",
        "result not published": "结果未公开",
    }
    for en, zh in cases.items():
        assert reason_text(en, "zh") == zh
        assert reason_text(en, "en") == en
    assert reason_text("not compliant: see the file", "zh") == "not compliant: see the file"


def test_every_reason_the_metrics_state_is_in_the_catalog():
    """Each literal reason text of the metric declarations has a Chinese entry."""
    source = Path("rulewatch/metrics/compute.py").read_text(encoding="utf-8")
    pattern = r'literal\("([^"]+)", String\)|\), f?"([^"]+)"\)|else_=f?"([^"]+)"'
    texts = {
        next(g for g in groups if g).replace("{as_of}", "2024-05-20")
        for groups in re.findall(pattern, source)
    }
    assert "credit rule not applied" in texts and "no promised days" in texts
    for text in texts:
        assert reason_text(text, "zh") != text, text
