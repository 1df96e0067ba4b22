"""Reporting periods (a year, a quarter or a month) cut at an as-of date."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

_PATTERN = re.compile(r"^(?P<year>\d{4})(?:-(?:Q(?P<quarter>[1-4])|(?P<month>0[1-9]|1[0-2])))?$")


EXPECTED = "expected a year (2023), a quarter (2023-Q4) or a month (2023-10)"


class PeriodError(ValueError):
    """A period string that is not ``2023``, ``2023-Q4`` or ``2023-10``."""


@dataclass(frozen=True)
class Period:
    """A calendar period; ``label`` is how it was written (normalised)."""

    label: str
    start: date
    end: date

    @classmethod
    def parse(cls, text: str) -> Period:
        match = _PATTERN.match(text.strip().upper())
        if not match:
            raise PeriodError(f"period {text!r}: {EXPECTED}")
        year = int(match["year"])
        if match["quarter"]:
            q = int(match["quarter"])
            start = date(year, 3 * q - 2, 1)
            end = _month_end(year, 3 * q)
            return cls(f"{year}-Q{q}", start, end)
        if match["month"]:
            m = int(match["month"])
            return cls(f"{year}-{m:02d}", date(year, m, 1), _month_end(year, m))
        return cls(str(year), date(year, 1, 1), date(year, 12, 31))

    def cut(self, as_of: date) -> tuple[date, date] | None:
        """The dates of the period that are on or before ``as_of``; None if none are."""
        if as_of < self.start:
            return None
        return self.start, min(self.end, as_of)

    def year_earlier(self) -> Period:
        """The same period one year earlier (P' of year-on-year growth), whole: the
        February before a leap year's ends on the 29th."""
        return Period.parse(str(self.start.year - 1) + self.label[4:])


def _month_end(year: int, month: int) -> date:
    first_next = date(year + month // 12, month % 12 + 1, 1)
    return first_next - timedelta(days=1)


def _shift_year(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February -> 28 February
        return day.replace(year=day.year + years, day=28)


def year_earlier_as_of(as_of: date) -> date:
    """The as-of date minus one year; 29 February becomes 28 February."""
    return _shift_year(as_of, -1)
