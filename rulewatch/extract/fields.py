"""Strict field readers for source records.

Each reader returns the typed value or raises :class:`Malformed` with a reason
that names the field. What counts as malformed follows ``source-apis.md``: a
missing or empty natural key, a code outside its listed set (case-sensitive),
a date or time that does not parse in its stated format, and a value of the
wrong JSON type.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LOCAL_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
# Any number of fraction digits (beyond microseconds they are dropped) and any offset
# ISO-8601 allows: Z, +08:00, +0800, +08.
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$"
)
_MISSING = object()
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)


class Malformed(ValueError):
    """A record that breaks its source's contract; the message is the reason."""


def _get(record: Mapping[str, Any], field: str) -> Any:
    if type(record) is dict:  # what a JSON parser makes: skips the ABC check per field
        return record.get(field, _MISSING)
    return record.get(field, _MISSING) if isinstance(record, Mapping) else _MISSING


def key(record: Mapping[str, Any], field: str) -> str:
    """The natural key: a non-empty string."""
    value = _get(record, field)
    if value is _MISSING or value is None:
        raise Malformed(f"{field}: missing natural key")
    if not isinstance(value, str):
        raise Malformed(f"{field}: natural key must be a string, got {type(value).__name__}")
    if not value.strip():
        raise Malformed(f"{field}: empty natural key")
    return value


def text(record: Mapping[str, Any], field: str) -> str | None:
    """Free text: a string or null; anything else is malformed."""
    value = _get(record, field)
    if value is _MISSING or value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{field}: expected a string, got {type(value).__name__}")
    return value


def code(
    record: Mapping[str, Any], field: str, allowed: Collection[str], *, nullable: bool = False
) -> str | None:
    """A code from a listed set (case-sensitive)."""
    value = _get(record, field)
    if value is _MISSING or value is None:
        if nullable:
            return None
        raise Malformed(f"{field}: missing")
    if not isinstance(value, str) or value not in allowed:  # a list or object is no code
        raise Malformed(f"{field}: {value!r} is not one of {sorted(allowed)}")
    return value


def boolean(record: Mapping[str, Any], field: str, *, nullable: bool = False) -> bool | None:
    value = _get(record, field)
    if value is _MISSING or value is None:
        if nullable:
            return None
        raise Malformed(f"{field}: missing")
    if not isinstance(value, bool):
        raise Malformed(f"{field}: expected true or false, got {value!r}")
    return value


def integer(record: Mapping[str, Any], field: str, *, nullable: bool = False) -> int | None:
    value = _get(record, field)
    if value is _MISSING or value is None:
        if nullable:
            return None
        raise Malformed(f"{field}: missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(f"{field}: expected an integer, got {value!r}")
    return value


def local_date(record: Mapping[str, Any], field: str, *, nullable: bool = False) -> date | None:
    """A ``YYYY-MM-DD`` date (``2023-02-30`` is malformed)."""
    value = _get(record, field)
    if value is _MISSING or value is None:
        if nullable:
            return None
        raise Malformed(f"{field}: missing")
    if not isinstance(value, str) or not _DATE.match(value):
        raise Malformed(f"{field}: {value!r} is not a YYYY-MM-DD date")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Malformed(f"{field}: {value!r} is not a valid date") from None


def iso_datetime(
    record: Mapping[str, Any], field: str, *, nullable: bool = False
) -> datetime | None:
    """An ISO-8601 date-time with an offset (``Z`` included), as aware UTC."""
    value = _get(record, field)
    if value is _MISSING or value is None:
        if nullable:
            return None
        raise Malformed(f"{field}: missing")
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        raise Malformed(f"{field}: {value!r} is not an ISO-8601 date-time with offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Malformed(f"{field}: {value!r} is not a valid date-time") from None
    if parsed.tzinfo is UTC:
        return parsed
    try:  # = parsed.astimezone(UTC), exact, without astimezone's cost
        return _EPOCH_UTC + (parsed - _EPOCH_UTC)
    except OverflowError:  # 0001-01-01T00:00+08:00 is before the first representable UTC
        raise Malformed(f"{field}: {value!r} is out of range") from None


def local_datetime(record: Mapping[str, Any], field: str, zone: ZoneInfo) -> datetime:
    """A ``YYYY-MM-DD HH:MM:SS`` local time in ``zone``, as aware UTC."""
    value = _get(record, field)
    if value is _MISSING or value is None:
        raise Malformed(f"{field}: missing")
    if not isinstance(value, str) or not _LOCAL_DATETIME.match(value):
        raise Malformed(f"{field}: {value!r} is not YYYY-MM-DD HH:MM:SS")
    try:
        naive = datetime.fromisoformat(value)  # the regex left only this format
    except ValueError:
        naive = _strptime(field, value)  # digits other than ASCII's, which it refuses
    try:  # = naive.replace(tzinfo=zone): combine takes no keywords to parse, and is faster
        return datetime.combine(naive, naive.time(), zone).astimezone(UTC)
    except OverflowError:  # 0001-01-01 00:00:00 east of UTC is before the first UTC instant
        raise Malformed(f"{field}: {value!r} is out of range") from None


def _strptime(field: str, value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise Malformed(f"{field}: {value!r} is not a valid date-time") from None


def epoch_ms(record: Mapping[str, Any], field: str) -> datetime:
    """Epoch milliseconds, as aware UTC."""
    value = integer(record, field)
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise Malformed(f"{field}: {value!r} is out of range") from None


def naive_utc(moment: datetime | None) -> datetime | None:
    """Aware datetime -> naive UTC, the warehouse's storage form."""
    if moment is None:
        return None
    if moment.tzinfo is None:  # naive: astimezone takes it as the machine's local time
        return moment.astimezone(UTC).replace(tzinfo=None)
    # = moment.astimezone(UTC).replace(tzinfo=None), exact: two arithmetic operations
    # cost a tenth of replace's keyword parsing, and this runs for every record
    return _EPOCH_NAIVE + (moment - _EPOCH_UTC)


def local_day(moment: datetime | None, zone: ZoneInfo) -> date | None:
    """The local date of an instant in ``zone``."""
    return None if moment is None else moment.astimezone(zone).date()
