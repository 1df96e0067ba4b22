"""The working-day calendar: the State Council's arrangement, local overrides, and
Monday to Friday (provisional) for a year whose arrangement is not published yet.

The official arrangement (public holidays and make-up working days, 调休) comes
from the ``chinesecalendar`` package, which carries every published year and is
updated when a new year's arrangement is announced. ``calendar.yaml`` holds local
overrides only, applied on top: a bureau's own extra closure or working day, or a
year published before the package is updated. A year counts as *published* when
the package covers it or ``calendar.yaml`` lists at least one date in it; any
other year counts Monday to Friday, and every figure that counts a working day
in it is *provisional*.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rulewatch.config.settings import Settings

CALENDAR_PACKAGE = "chinesecalendar"


@dataclass(frozen=True)
class WorkingCalendar:
    """Working days: Monday to Friday, minus holidays, plus make-up days, per published year.

    ``published_years`` are the years whose arrangement is known; outside them the
    holiday lists are not consulted and Monday to Friday counts, provisionally.
    """

    holidays: frozenset[date]
    makeup_workdays: frozenset[date]
    published_years: frozenset[int]
    source: str = "calendar.yaml"  # where the arrangement came from, for people

    @classmethod
    def from_lists(
        cls,
        holidays: Iterable[date],
        makeup_workdays: Iterable[date],
        published_years: Iterable[int] | None = None,
        source: str = "calendar.yaml",
    ) -> WorkingCalendar:
        """A calendar from explicit lists; without ``published_years``, the listed years."""
        hol, makeup = frozenset(holidays), frozenset(makeup_workdays)
        years = (
            frozenset(d.year for d in hol | makeup)
            if published_years is None
            else frozenset(published_years)
        )
        return cls(hol, makeup, years, source)

    def is_published(self, year: int) -> bool:
        """Whether the year's official arrangement is known (package or override)."""
        return year in self.published_years

    def is_working(self, day: date) -> bool:
        if day.year in self.published_years:
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

    def is_provisional(self, a: date, b: date) -> bool:
        """Whether ``working_days(a, b)`` counts a day of an unpublished year."""
        if b <= a:
            return False
        return any(
            not self.is_published(y) for y in range((a + timedelta(days=1)).year, b.year + 1)
        )

    def unpublished_years(self, first_year: int, last_year: int) -> list[int]:
        """The years of ``first_year..last_year`` counted Monday to Friday (provisional)."""
        return [y for y in range(first_year, last_year + 1) if not self.is_published(y)]

    def day_rows(self, first: date, last: date) -> Iterator[tuple[date, bool, int, bool, int]]:
        """(day, is_working, workday_seq, is_provisional, provisional_seq) for every day.

        ``workday_seq`` counts working days up to the day, ``provisional_seq`` days of
        unpublished years: ``working_days(a, b) == seq(b) - seq(a)`` for b > a, and the
        count is provisional when ``provisional_seq`` differs too, which lets SQL join
        on this table instead of looping.
        """
        seq = provisional_seq = 0
        for d in _days(first, last):
            working = self.is_working(d)
            provisional = not self.is_published(d.year)
            seq += working
            provisional_seq += provisional
            yield d, working, seq, provisional, provisional_seq

    def fingerprint(self) -> str:
        """A hash of the arrangement (holidays, make-up days, published years): it changes
        when an override is edited or a package upgrade brings a new year or a correction."""
        parts = [f"h{d.isoformat()}" for d in sorted(self.holidays)]
        parts += [f"m{d.isoformat()}" for d in sorted(self.makeup_workdays)]
        parts += [f"y{y}" for y in sorted(self.published_years)]
        return hashlib.sha256(",".join(parts).encode()).hexdigest()


def _days(first: date, last: date) -> Iterator[date]:
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)


@dataclass(frozen=True)
class PackageCalendar:
    """What the installed ``chinesecalendar`` carries: its version and years."""

    version: str
    years: tuple[int, ...]
    holidays: frozenset[date]
    makeup_workdays: frozenset[date]

    @property
    def first_year(self) -> int:
        return self.years[0]

    @property
    def last_year(self) -> int:
        return self.years[-1]


def package_calendar() -> PackageCalendar:
    """The State Council arrangement as the installed ``chinesecalendar`` has it.

    The years covered are those the package answers for: it raises
    ``NotImplementedError`` for any other year, which is how it says a year's
    arrangement is not published (in the package) yet.
    """
    import chinese_calendar

    holidays = frozenset(chinese_calendar.holidays)
    makeup = frozenset(chinese_calendar.workdays)
    candidates = {d.year for d in holidays | makeup}
    years = []
    for year in range(min(candidates), max(candidates) + 1):
        try:
            chinese_calendar.is_workday(date(year, 7, 1))
        except NotImplementedError:
            continue
        years.append(year)
    version = getattr(chinese_calendar, "__version__", "unknown")
    return PackageCalendar(version, tuple(years), holidays, makeup)


def official_calendar(
    override_holidays: Iterable[date] = (), override_makeup_workdays: Iterable[date] = ()
) -> WorkingCalendar:
    """The package's arrangement with the local overrides applied on top.

    An override holiday is a closure even where the package says work, an override
    make-up day is a working day even where the package says rest; every year an
    override lists counts as published.
    """
    pkg = package_calendar()
    extra_off, extra_on = frozenset(override_holidays), frozenset(override_makeup_workdays)
    holidays = (pkg.holidays - extra_on) | extra_off
    makeup = (pkg.makeup_workdays - extra_off) | extra_on
    listed = {d.year for d in extra_off | extra_on}
    source = f"{CALENDAR_PACKAGE} {pkg.version} ({pkg.first_year}-{pkg.last_year})"
    if listed:
        source += f" + calendar.yaml ({', '.join(str(y) for y in sorted(listed))})"
    return WorkingCalendar(holidays, makeup, frozenset(pkg.years) | listed, source)


def calendar_of(settings: Settings) -> WorkingCalendar:
    """The working-day calendar: the package's arrangement plus ``calendar.yaml``'s overrides."""
    return official_calendar(settings.calendar.holidays, settings.calendar.makeup_workdays)


def unpublished_years_of(
    calendar: WorkingCalendar, period_start: date, period_end: date, as_of: date, flagged: bool
) -> list[int]:
    """The years without an arrangement that a period's figures (cut at ``as_of``) count
    in: the period's own years up to the as-of date, or, when a figure is flagged
    provisional although they are all published, the year before through the as-of year
    (a span that started earlier or a publication after the period)."""
    last = max(period_start.year, min(period_end, as_of).year)
    years = calendar.unpublished_years(period_start.year, last)
    if flagged and not years:
        years = calendar.unpublished_years(period_start.year - 1, max(last, as_of.year))
    return years


def missing_arrangement_hint(settings: Settings, years: Iterable[int]) -> str:
    """What to do about years counted Monday to Friday: one sentence naming them."""
    listed = ", ".join(str(y) for y in sorted(set(years)))
    pkg = package_calendar()
    return (
        f"the official working-day arrangement of {listed} is not published in "
        f"{CALENDAR_PACKAGE} {pkg.version} (it covers {pkg.first_year}-{pkg.last_year}): "
        f"figures that count working days there are provisional (Monday to Friday); "
        f"upgrade the package (pip install -U {CALENDAR_PACKAGE}) or list that year's "
        f"holidays and makeup_workdays in {settings.config_dir / 'calendar.yaml'}"
    )
