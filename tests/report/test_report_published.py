"""published.yaml: validated up front; every figure reconciled with the arithmetic."""

from __future__ import annotations

import shutil
from datetime import date

import pytest

from rulewatch.config.settings import PACKAGE_CONFIG_DIR, ConfigError, load_settings
from rulewatch.metrics.compute import MetricValue
from rulewatch.report.published import (
    PublishedFigure,
    format_percent,
    load_published,
    reconcile_figure,
)

AS_OF = date(2024, 5, 20)


def _m(metric: str, value, numerator=None, denominator=None) -> MetricValue:
    return MetricValue(metric, "2023", AS_OF, value, numerator, denominator, None, "info")


def test_the_shipped_file_holds_the_seed_figures():
    published = load_published(load_settings({}))
    (report,) = published.reports
    figures = {f.metric: f.value for f in report.figures}
    assert report.period == "2023"
    assert figures["permits.received"] == 606
    assert figures["permits.received_yoy"] == "+10.88%"
    assert figures["permits.denied_yoy"] == "+160%"
    assert figures["docreview.contracts_reviewed"] == 40


def test_the_mis_published_growth_is_flagged_with_the_arithmetic():
    figure = PublishedFigure(metric="permits.received_yoy", value="+10.88%")
    r = reconcile_figure(figure, _m("permits.received_yoy", 59 / 547, 59, 547), "seed")
    assert r.status == "mismatch"
    assert (r.published, r.warehouse) == ("+10.88%", "+10.79%")
    assert "(606 − 547) / 547 = 59 / 547" in r.arithmetic
    assert "546 → +10.99%, 547 → +10.79%" in r.arithmetic  # no whole 2022 count gives +10.88%


@pytest.mark.parametrize(
    ("metric", "published", "value", "numerator", "denominator", "status"),
    [
        ("permits.approved_yoy", "+9.41%", 51 / 542, 51, 542, "match"),
        ("permits.denied_yoy", "+160%", 1.6, 8, 5, "match"),
        ("docreview.filing_rate", "100%", 1.0, 3, 3, "match"),
        ("docreview.filing_rate", "100%", 0.5, 1, 2, "mismatch"),
        ("permits.received", 606, 606, None, None, "match"),
        ("enforcement.double_random", 12, 11, None, None, "mismatch"),
        ("permits.denied_yoy", "+160%", None, 13, 0, "no_data"),
    ],
)
def test_reconcile_figure(metric, published, value, numerator, denominator, status):
    figure = PublishedFigure(metric=metric, value=published)
    r = reconcile_figure(figure, _m(metric, value, numerator, denominator), "t")
    assert r.status == status, r.arithmetic
    if metric == "enforcement.double_random":
        assert r.arithmetic == "warehouse 11 − published 12 = -1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "reports: [{period: '2023', title: t, figures: [{metric: permits.recieved, value: 1}]}]",
            "reports.0.figures.0.metric",
        ),
        (
            "reports: [{period: '2023', title: t, figures: [{metric: permits.received, value: '6%'}]}]",
            "reports.0.figures.0",
        ),
        (
            "reports: [{period: '2023', title: t, figures: [{metric: docreview.filing_rate, value: 1}]}]",
            "reports.0.figures.0",
        ),
        ("reports: [{period: '2023-13', title: t, figures: []}]", "reports.0.period"),
        ("reports: [{period: '2023', title: t, figures: [], colour: red}]", "reports.0.colour"),
    ],
)
def test_a_bad_key_names_the_file_and_path(tmp_path, text, message):
    config = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, config)
    (config / "published.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_published(load_settings({"RULEWATCH_CONFIG_DIR": str(config)}))
    assert "published.yaml: " + message in str(err.value)


def test_no_file_means_nothing_to_reconcile(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, config)
    (config / "published.yaml").unlink()
    assert load_published(load_settings({"RULEWATCH_CONFIG_DIR": str(config)})).reports == []


@pytest.mark.parametrize(
    ("fraction", "sign", "text"),
    [(59 / 547, True, "+10.79%"), (1.6, True, "+160%"), (1.0, False, "100%"), (-0.05, True, "-5%")],
)
def test_percentages_read_like_the_annual_report(fraction, sign, text):
    assert format_percent(fraction, 2, sign=sign) == text
