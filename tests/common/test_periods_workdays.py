"""Periods, the as-of cut, and the working-day calendar."""

from datetime import date

import pytest

from rulewatch.common.periods import Period, PeriodError, year_earlier_as_of
from rulewatch.common.workdays import WorkingCalendar, calendar_of
from rulewatch.config.settings import load_settings


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return calendar_of(load_settings({}))


@pytest.mark.parametrize(
    ("text", "start", "end", "label"),
    [
        ("2023", date(2023, 1, 1), date(2023, 12, 31), "2023"),
        ("2023-Q4", date(2023, 10, 1), date(2023, 12, 31), "2023-Q4"),
        ("2023-q1", date(2023, 1, 1), date(2023, 3, 31), "2023-Q1"),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29), "2024-02"),
    ],
)
def test_parse(text, start, end, label):
    p = Period.parse(text)
    assert (p.start, p.end, p.label) == (start, end, label)


@pytest.mark.parametrize("text", ["23", "2023-Q5", "2023-13", "2023-1", "2023/10", ""])
def test_bad_periods(text):
    with pytest.raises(PeriodError, match="period"):
        Period.parse(text)


def test_cut_and_year_earlier():
    p = Period.parse("2024")
    assert p.cut(date(2024, 5, 20)) == (date(2024, 1, 1), date(2024, 5, 20))
    assert p.cut(date(2023, 12, 31)) is None
    assert Period.parse("2024-02").year_earlier().end == date(2023, 2, 28)
    assert year_earlier_as_of(date(2024, 2, 29)) == date(2023, 2, 28)


@pytest.mark.parametrize(
    ("text", "label", "start", "end"),
    [
        ("2025-02", "2024-02", date(2024, 2, 1), date(2024, 2, 29)),  # a leap February
        ("2024-Q1", "2023-Q1", date(2023, 1, 1), date(2023, 3, 31)),
        ("2025", "2024", date(2024, 1, 1), date(2024, 12, 31)),
        ("2024-12", "2023-12", date(2023, 12, 1), date(2023, 12, 31)),
    ],
)
def test_year_earlier_is_the_whole_same_period(text, label, start, end):
    p = Period.parse(text).year_earlier()
    assert (p.label, p.start, p.end) == (label, start, end)
    assert p.cut(year_earlier_as_of(date(2026, 1, 1))) == (start, end)


def test_holidays_and_makeup_days(cal):
    # National Day 2023: 29 Sep - 6 Oct off; Sat 7 and Sun 8 Oct are make-up working days.
    assert not cal.is_working(date(2023, 10, 2))
    assert cal.is_working(date(2023, 10, 7))
    assert cal.working_days(date(2023, 9, 28), date(2023, 10, 9)) == 3  # 7, 8, 9 Oct
    assert cal.working_days(date(2023, 10, 9), date(2023, 10, 9)) == 0
    assert cal.working_days(date(2023, 10, 10), date(2023, 10, 9)) == 0


def test_outside_listed_years_is_monday_to_friday(cal):
    assert cal.is_working(date(2030, 1, 1))  # a Tuesday; 2030 is not listed
    assert cal.working_days(date(2030, 1, 4), date(2030, 1, 7)) == 1  # Fri -> Mon
