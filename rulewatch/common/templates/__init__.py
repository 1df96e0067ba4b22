"""Jinja2 templates of what rulewatch renders for people: the HTML report and the
alert bodies. HTML templates (``*.html.j2``) are autoescaped; text ones are not.

Templates find words in :mod:`rulewatch.common.messages` (``t``) and numbers in
:mod:`rulewatch.common.numbers` (the ``pct`` and ``figure`` filters), so a page and an
e-mail say the same thing the same way.
"""

from __future__ import annotations

import base64
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from rulewatch.common.messages import reason_text, t, word_with_id
from rulewatch.common.metric_ids import label
from rulewatch.common.numbers import format_figure, format_percent


def _when(value: datetime | None) -> str:
    """A warehouse timestamp (naive UTC) to the second; a dash when there is none."""
    return "—" if value is None else value.isoformat(sep=" ", timespec="seconds")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@cache
def environment() -> Environment:
    """The shared environment: autoescape for HTML, strict about undefined names."""
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(t=t, word_with_id=word_with_id, label=label)
    env.filters.update(
        pct=format_percent, figure=format_figure, when=_when, b64=_b64, reason=reason_text
    )
    return env


def render(name: str, **context: Any) -> str:
    """Render the template ``name`` with ``context``."""
    return environment().get_template(name).render(**context)
