"""The one number formatter: how every figure is shown, and compared.

A percent is rounded half up to the shown decimals (``0.107849 -> 10.78%``,
``0.10785 -> 10.79%``), the way the annual report rounds; trailing zeros are
dropped (``0.5 -> 50%``, ``1.6 -> 160%``). :func:`round_percent` is that rounding,
so a figure is judged against a published one exactly as it is displayed.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from rulewatch.common.metric_ids import METRICS

NO_VALUE = "—"


def round_percent(fraction: float | Decimal, decimals: int = 2) -> Decimal:
    """``fraction`` as a percent rounded half up to ``decimals`` places."""
    quantum = Decimal(1).scaleb(-decimals)
    return (Decimal(str(fraction)) * 100).quantize(quantum, rounding=ROUND_HALF_UP)


def format_percent(fraction: float | Decimal | None, decimals: int = 2, sign: bool = False) -> str:
    """A fraction as the annual report writes it: ``0.1079 -> 10.79%``, ``1.6 -> 160%``."""
    if fraction is None:
        return NO_VALUE
    text = f"{round_percent(fraction, decimals):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return f"{'+' if sign and not text.startswith('-') else ''}{text}%"


def format_figure(metric: str, value: float | int | None) -> str:
    """A metric's value as shown everywhere: a count as is, a rate or growth as a percent
    (growth signed); a custom rate of ``checks.yaml`` is a rate."""
    if value is None:
        return NO_VALUE
    kind = METRICS[metric][0] if metric in METRICS else "rate"
    if kind == "count":
        return str(value)
    return format_percent(value, 2, sign=kind == "yoy")


#: Beside a figure that counts working days of a year whose arrangement is not published.
PROVISIONAL_MARK = " *"
PROVISIONAL_CAPTION = (
    "* provisional: counts working days of a year whose official holiday arrangement is "
    "not published yet (Monday to Friday stands in); see `rulewatch check`"
)
