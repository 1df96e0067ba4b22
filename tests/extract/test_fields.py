"""Field readers: what the contract calls malformed, and what it does not."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from rulewatch.extract import fields as f

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("value", [None, "", "   ", 12])
def test_key_rejects_missing_empty_and_non_strings(value):
    with pytest.raises(f.Malformed, match="application_id"):
        f.key({"application_id": value}, "application_id")


def test_key_missing_field():
    with pytest.raises(f.Malformed, match="missing natural key"):
        f.key({}, "doc_id")


@pytest.mark.parametrize("value", ["Approved", "APPROVED", "approved ", "", 1])
def test_codes_are_case_sensitive_and_listed(value):
    with pytest.raises(f.Malformed, match="status"):
        f.code({"status": value}, "status", {"approved", "denied"})


def test_nullable_code():
    assert f.code({"level": None}, "level", {"A"}, nullable=True) is None
    with pytest.raises(f.Malformed):
        f.code({"level": None}, "level", {"A"})


@pytest.mark.parametrize(
    "value", ["2023-02-30", "2023-2-3", "20230203", "2023-02-03T00:00", 20230203]
)
def test_dates_must_parse_in_their_stated_format(value):
    with pytest.raises(f.Malformed, match="issued_on"):
        f.local_date({"issued_on": value}, "issued_on")


def test_date_ok_and_nullable():
    assert f.local_date({"d": "2024-02-29"}, "d") == date(2024, 2, 29)
    assert f.local_date({"d": None}, "d", nullable=True) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-03-01T09:12:00+08:00", datetime(2023, 3, 1, 1, 12, tzinfo=UTC)),
        ("2023-03-01T01:12:00Z", datetime(2023, 3, 1, 1, 12, tzinfo=UTC)),
        ("2023-02-28T20:00:00.250-05:00", datetime(2023, 3, 1, 1, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_iso_datetimes_with_any_offset(value, expected):
    assert f.iso_datetime({"t": value}, "t") == expected


@pytest.mark.parametrize("value", ["2023-03-01T09:12:00", "2023-02-30T09:12:00Z", "yesterday", 5])
def test_iso_datetime_needs_offset_and_a_real_date(value):
    with pytest.raises(f.Malformed):
        f.iso_datetime({"t": value}, "t")


def test_local_datetime_is_shanghai_wall_time():
    got = f.local_datetime({"modified": "2024-01-01 07:59:59"}, "modified", SHANGHAI)
    assert got == datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert f.local_day(got, SHANGHAI) == date(2024, 1, 1)
    with pytest.raises(f.Malformed):
        f.local_datetime({"modified": "2024-01-01T07:59:59"}, "modified", SHANGHAI)


def test_booleans_and_integers_are_typed():
    with pytest.raises(f.Malformed):
        f.boolean({"b": "true"}, "b")
    with pytest.raises(f.Malformed):
        f.integer({"n": True}, "n")
    assert f.integer({"n": 10}, "n") == 10
    assert f.epoch_ms({"ms": 0}, "ms") == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("reader", "value"),
    [
        (lambda r: f.iso_datetime(r, "t"), "0001-01-01T00:00:00+08:00"),
        (lambda r: f.iso_datetime(r, "t"), "9999-12-31T23:59:59-08:00"),
        (lambda r: f.local_datetime(r, "t", ZoneInfo("Asia/Shanghai")), "0001-01-01 00:00:00"),
    ],
)
def test_times_beyond_the_utc_range_are_malformed_not_a_crash(reader, value):
    with pytest.raises(f.Malformed, match="out of range"):
        reader({"t": value})


def test_naive_utc_and_the_readers_convert_exactly_as_astimezone():
    ny = ZoneInfo("America/New_York")
    for text in (
        "2014-11-02T01:30:00.000123-04:00",
        "2015-03-08T02:30:00+05:45",
        "2015-01-11T16:00:00Z",
    ):
        moment = f.iso_datetime({"t": text}, "t")
        expected = datetime.fromisoformat(text).astimezone(UTC)
        assert repr(moment) == repr(expected)
        assert repr(f.naive_utc(moment)) == repr(expected.replace(tzinfo=None))
    for text in ("2014-11-02 01:30:00", "2015-03-08 02:30:00", "2015-07-01 12:00:00"):
        expected = datetime.fromisoformat(text).replace(tzinfo=ny).astimezone(UTC)
        assert repr(f.local_datetime({"t": text}, "t", ny)) == repr(expected)
