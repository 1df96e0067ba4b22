"""One number formatter: what is shown is what is compared with published figures."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rulewatch.common.numbers import format_figure, format_percent, round_percent


@pytest.mark.parametrize(
    ("fraction", "decimals", "shown"),
    [
        (0.10785, 2, "10.79%"),  # half up, as the annual report rounds (not half even)
        (0.107849, 2, "10.78%"),
        (0.5, 2, "50%"),
        (1.6, 2, "160%"),
        (2 / 3, 2, "66.67%"),
        (0.0, 2, "0%"),
    ],
)
def test_the_display_is_the_rounding_used_to_compare(fraction, decimals, shown):  # noqa: ANN001
    assert format_percent(fraction, decimals) == shown
    assert f"{round_percent(fraction, decimals).normalize():f}%" == shown


def test_figures_by_kind():
    assert format_figure("permits.received", 606) == "606"
    assert format_figure("permits.received_yoy", Decimal("0.10785")) == "+10.79%"
    assert format_figure("docreview.filing_rate", None) == "—"
    assert format_figure("enforcement.custom_share", 0.25) == "25%"  # a custom rate
