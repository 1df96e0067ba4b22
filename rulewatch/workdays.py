"""The working-day calendar: Monday to Friday, minus holidays, plus make-up days."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rulewatch.settings import Settings


@dataclass(frozen=True)
class WorkingCalendar:
    """Working days from a holiday list; outside the listed years, Monday to Friday."""

    holidays: frozenset[date]
    makeup_workdays: frozenset[date]
    listed_years: frozenset[int]

    @classmethod
    def from_lists(
        cls, holidays: Iterable[date], makeup_workdays: Iterable[date]
    ) -> WorkingCalendar:
        hol, makeup = frozenset(holidays), frozenset(makeup_workdays)
        return cls(hol, makeup, frozenset(d.year for d in hol | makeup))

    def is_working(self, day: date) -> bool:
        if day.year in self.listed_years:
            if day in self.holidays:
                return False
            if day in self.makeup_workdays:
                return True
        return day.weekday() < 5

    def working_days(self, a: date, b: date) -> int:
        """Working days d with a < d <= b; 0 when b <= a."""
        if b <= a:
            return 0
        return sum(1 for d in _days(a + timedelta(days=1), b) if self.is_working(d))

    def day_rows(self, first: date, last: date) -> Iterator[tuple[date, bool, int]]:
        """(day, is_working, workday_seq) for every day; seq counts working days up to day.

        ``working_days(a, b) == seq(b) - seq(a)`` for b > a, which lets SQL join
        on this table instead of looping.
        """
        seq = 0
        for d in _days(first, last):
            working = self.is_working(d)
            seq += working
            yield d, working, seq


def _days(first: date, last: date) -> Iterator[date]:
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)


def calendar_of(settings: Settings) -> WorkingCalendar:
    """The working-day calendar the settings' ``calendar.yaml`` describes."""
    return WorkingCalendar.from_lists(settings.calendar.holidays, settings.calendar.makeup_workdays)
