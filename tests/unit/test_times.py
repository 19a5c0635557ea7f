"""SMPP time fields (SMPP 3.4 section 7.1.1), receipt dates and RFC 3339."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.smpp.times import (
    add_months,
    format_absolute,
    format_receipt_date,
    parse_rfc3339,
    parse_smpp_time,
    rfc3339,
)

NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def test_empty_is_none() -> None:
    assert parse_smpp_time("", NOW) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("240102030405000+", utc(2024, 1, 2, 3, 4, 5)),
        ("240102030405600+", utc(2024, 1, 2, 3, 4, 5) + 0.6),
        # local time at UTC+2h (8 quarters) and UTC-1h45
        ("240102030405008+", utc(2024, 1, 2, 1, 4, 5)),
        ("240102030405007-", utc(2024, 1, 2, 4, 49, 5)),
        ("240229235959000+", utc(2024, 2, 29, 23, 59, 59)),
        ("991231235959000+", utc(2099, 12, 31, 23, 59, 59)),
        ("000101000000056+", utc(1999, 12, 31, 10, 0, 0)),
    ],
)
def test_absolute(value: str, expected: float) -> None:
    assert parse_smpp_time(value, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("000000000000000R", 0),
        ("000001020304000R", 86400 + 2 * 3600 + 3 * 60 + 4),
        ("000000480000000R", 48 * 3600),
        ("000100000000000R", 30 * 86400),
        ("010000000000000R", 365 * 86400),
        ("000000001500000R", 900),
    ],
)
def test_relative(value: str, seconds: int) -> None:
    assert parse_smpp_time(value, NOW) == NOW + seconds


@pytest.mark.parametrize(
    "value",
    [
        "2401020304050",
        "24010203040500+",
        "2401020304050000+",
        "240132030405000+",
        "230229030405000+",
        "241302030405000+",
        "240002030405000+",
        "240100030405000+",
        "240102240405000+",
        "240102036005000+",
        "240102030460000+",
        "240102030405057+",
        "240102030405000X",
        "240102030405000r",
        "٢٤0102030405000+",
        "240102030405000+ ",
        " 240102030405000+",
        "24010203040500A+",
        "R",
    ],
)
def test_malformed(value: str) -> None:
    with pytest.raises(ValueError):
        parse_smpp_time(value, NOW)


def test_format_absolute() -> None:
    assert format_absolute(utc(2024, 1, 2, 3, 4, 5) + 0.65) == "240102030405600+"
    assert format_absolute(utc(2031, 12, 31, 23, 59, 59)) == "311231235959000+"


def test_format_absolute_round_trips() -> None:
    epoch = utc(2030, 6, 7, 8, 9, 10) + 0.3
    assert parse_smpp_time(format_absolute(epoch), NOW) == pytest.approx(epoch)


def test_receipt_date_and_rfc3339() -> None:
    epoch = utc(2024, 1, 2, 3, 4, 59) + 0.9
    assert format_receipt_date(epoch) == "2401020304"
    assert rfc3339(epoch) == "2024-01-02T03:04:59Z"


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (utc(2024, 1, 2, 3, 4, 5), 3, utc(2024, 4, 2, 3, 4, 5)),
        (utc(2023, 11, 30, 12, 0, 0), 3, utc(2024, 2, 29, 12, 0, 0)),
        (utc(2024, 10, 15), 3, utc(2025, 1, 15)),
        (utc(2024, 1, 31), 1, utc(2024, 2, 29)),
    ],
)
def test_add_months(start: float, months: int, expected: float) -> None:
    assert add_months(start, months) == expected


@given(st.text(max_size=20))
def test_parse_raises_only_value_error(value: str) -> None:
    with contextlib.suppress(ValueError):
        parse_smpp_time(value, NOW)


@given(st.text(alphabet="0123456789+-R", min_size=16, max_size=16))
def test_parse_near_misses_raise_only_value_error(value: str) -> None:
    try:
        result = parse_smpp_time(value, NOW)
    except ValueError:
        return
    assert isinstance(result, float | int)


# --- RFC 3339 (Common's report timestamps) ------------------------------------


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2015-11-19T09:37:00Z", 1447925820.0),
        ("2015-11-19T10:37:00+01:00", 1447925820.0),
        ("2015-11-19T08:07:00-01:30", 1447925820.0),
        ("2015-11-19 09:37:00.25z", 1447925820.25),
        ("2016-12-31T23:59:60Z", 1483228799.0),  # a leap second, read as :59
    ],
)
def test_rfc3339(text: str, epoch: float) -> None:
    assert parse_rfc3339(text) == epoch


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2015-11-19",
        "2015-02-30T00:00:00Z",
        "2015-11-19T24:00:00Z",
        "2015-11-19T09:37:00+25:00",
        "2015-11-19T09:37:00",
        "yesterday",
        "2015-11-19T09:37:00Z trailing",
    ],
)
def test_rfc3339_refused_as_none(text: str) -> None:
    assert parse_rfc3339(text) is None


@given(st.text(max_size=40))
def test_rfc3339_never_raises(text: str) -> None:
    assert parse_rfc3339(text) is None or isinstance(parse_rfc3339(text), float)


@given(st.floats(min_value=0, max_value=4102444799, allow_nan=False))
def test_rfc3339_reads_back_what_rfc3339_writes(epoch: float) -> None:
    assert parse_rfc3339(rfc3339(epoch)) == float(int(epoch))
