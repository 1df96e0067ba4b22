"""One message catalog and Jinja2 templates: every key in both languages, HTML escaped."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from rulewatch.alerts import render_target
from rulewatch.checks.results import Offender, TargetCheck
from rulewatch.messages import MESSAGES, t
from rulewatch.templates import environment

TEMPLATES = Path(environment().loader.searchpath[0])


def test_every_message_is_in_both_languages():
    for key, (en, zh) in MESSAGES.items():
        assert en.strip() and zh.strip(), key
        assert re.findall(r"{\w+}", en) == re.findall(r"{\w+}", zh), key


def test_every_key_a_template_or_the_code_uses_is_in_the_catalog():
    used = set()
    for path in [*TEMPLATES.glob("*.j2"), *Path("rulewatch").rglob("*.py")]:
        used |= set(re.findall(r"""\bt\(\s*["']([\w.]+)["']""", path.read_text(encoding="utf-8")))
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
