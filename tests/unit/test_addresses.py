"""DESIGN section 4, the address rows (gateway.addresses): source and destination.

Expected values are written out here, never read from the module's own tables.
"""

from __future__ import annotations

import pytest

from gateway.addresses import AddressRefused, resolve_destination, resolve_source
from gateway.addresses import short_number_digits as country_short_number_digits
from gateway.records import Party, PartyKind
from gateway.smpp.pdu import CommandStatus

S = CommandStatus
ALPHA = PartyKind.ALPHANUMERIC
SHORT = PartyKind.SHORT_CODE
MSISDN = PartyKind.MSISDN


# --- section 4, row 1: source -----------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "ton", "expected"),
    [
        ("Shop", 5, Party(ALPHA, "Shop")),
        ("AB", 5, Party(ALPHA, "AB")),
        ("ABCDEFGHIJK", 5, Party(ALPHA, "ABCDEFGHIJK")),
        ("Shop 24", 5, Party(ALPHA, "Shop 24")),
        # All digits under ton 5: a number, read as ton 0 would (seed 001: an
        # alphanumeric source begins with a non-digit).
        ("12345", 5, Party(SHORT, "12345")),
        ("+4741560067", 5, Party(MSISDN, "+4741560067")),
        ("Shop1", 5, Party(ALPHA, "Shop1")),
        ("4799999999", 1, Party(MSISDN, "+4799999999")),
        ("+4799999999", 1, Party(MSISDN, "+4799999999")),
        ("004799999999", 1, Party(MSISDN, "+4799999999")),
        ("2333", 1, Party(SHORT, "2333")),
        ("2333", 3, Party(SHORT, "2333")),
        ("12345678901234", 3, Party(SHORT, "12345678901234")),
        ("1234", 6, Party(SHORT, "1234")),
        # ton 2 is national, whatever its length: an 8-digit Norwegian mobile.
        ("12345678", 2, Party(MSISDN, "+4712345678")),
        ("41560067", 2, Party(MSISDN, "+4741560067")),
        ("0712345678", 0, Party(MSISDN, "+47712345678")),  # a trunk 0, dropped
        ("099999999", 2, Party(MSISDN, "+4799999999")),
        ("Shop", 0, Party(ALPHA, "Shop")),
        ("+4799999999", 0, Party(MSISDN, "+4799999999")),
        ("004799999999", 0, Party(MSISDN, "+4799999999")),
        ("4799999999", 0, Party(MSISDN, "+4799999999")),
        ("123456789", 0, Party(MSISDN, "+123456789")),
        ("12345678", 0, Party(SHORT, "12345678")),
        ("1", 0, Party(SHORT, "1")),
    ],
)
def test_resolve_source(addr: str, ton: int, expected: Party) -> None:
    assert resolve_source(addr, ton, default_country_code="47") == expected


@pytest.mark.parametrize(
    ("addr", "ton", "expected"),
    [
        # Norway: 8-digit mobiles, short codes of at most 6 digits.
        ("41560067", 0, Party(MSISDN, "+4741560067")),
        ("41560067", 1, Party(MSISDN, "+41560067")),
        ("2233", 0, Party(SHORT, "2233")),
        ("223344", 1, Party(SHORT, "223344")),
        ("1234567", 0, Party(MSISDN, "+471234567")),
    ],
)
def test_resolve_source_with_the_countrys_short_number_length(
    addr: str, ton: int, expected: Party
) -> None:
    digits = country_short_number_digits("47")
    assert digits == 6
    got = resolve_source(addr, ton, default_country_code="47", short_number_digits=digits)
    assert got == expected


@pytest.mark.parametrize(
    ("country", "digits"), [("47", 6), ("45", 6), ("46", 6), ("358", 6), ("49", 8), ("", 8)]
)
def test_short_number_length_by_country(country: str, digits: int) -> None:
    assert country_short_number_digits(country) == digits


@pytest.mark.parametrize(
    ("addr", "ton", "status"),
    [
        ("A", 5, S.ESME_RINVSRCADR),
        ("ABCDEFGHIJKL", 5, S.ESME_RINVSRCADR),
        ("Shop™", 5, S.ESME_RINVSRCADR),
        ("  ", 5, S.ESME_RINVSRCADR),
        ("X", 0, S.ESME_RINVSRCADR),
        ("", 0, S.ESME_RINVSRCADR),
        ("47abc", 1, S.ESME_RINVSRCADR),
        ("+47abc", 0, S.ESME_RINVSRCADR),
        ("+1234567890123456", 1, S.ESME_RINVSRCADR),
        ("123456789012345", 3, S.ESME_RINVSRCADR),
        ("²³", 1, S.ESME_RINVSRCADR),
        ("1234", 7, S.ESME_RINVSRCTON),
        # An international number never starts with 0.
        ("0712345678", 1, S.ESME_RINVSRCADR),
        ("+0712345678", 0, S.ESME_RINVSRCADR),
        ("1Shop", 5, S.ESME_RINVSRCADR),  # alphanumeric must begin with a non-digit
        ("1Shop", 0, S.ESME_RINVSRCADR),
    ],
)
def test_resolve_source_refused(addr: str, ton: int, status: int) -> None:
    with pytest.raises(AddressRefused) as info:
        resolve_source(addr, ton, default_country_code="47")
    assert info.value.status == status
    assert info.value.reason


def test_national_source_needs_a_country_code() -> None:
    with pytest.raises(AddressRefused) as info:
        resolve_source("099999999", 2)
    assert info.value.status == S.ESME_RINVSRCADR


def test_address_refused_is_a_value_error() -> None:
    # Callers that only know ValueError (config checks) still catch it.
    with pytest.raises(ValueError):
        resolve_source("A", 5)


# --- section 4, row 2: destination ----------------------------------------------


@pytest.mark.parametrize(
    ("addr", "ton", "country_code", "expected"),
    [
        ("+4799999999", 1, "", "+4799999999"),
        ("4799999999", 1, "", "+4799999999"),
        ("004799999999", 1, "", "+4799999999"),
        ("+4799999999", 2, "49", "+4799999999"),
        ("0171234567", 2, "49", "+49171234567"),
        ("171234567", 2, "49", "+49171234567"),
        ("99999999", 4, "47", "+4799999999"),
        ("004799999999", 0, "", "+4799999999"),
        ("0171234567", 0, "49", "+49171234567"),
        ("99999999", 0, "47", "+4799999999"),
        ("4799999999", 0, "47", "+4799999999"),
        ("4799999999", 0, "", "+4799999999"),
        ("123456789012345", 1, "", "+123456789012345"),
    ],
)
def test_resolve_destination(addr: str, ton: int, country_code: str, expected: str) -> None:
    assert resolve_destination(addr, ton, country_code) == expected


@pytest.mark.parametrize(
    ("addr", "ton", "country_code", "status"),
    [
        ("0171234567", 2, "", S.ESME_RINVDSTADR),
        ("0171234567", 0, "", S.ESME_RINVDSTADR),
        ("+49 171", 1, "", S.ESME_RINVDSTADR),
        ("49-171", 1, "", S.ESME_RINVDSTADR),
        ("abc", 1, "", S.ESME_RINVDSTADR),
        ("", 1, "", S.ESME_RINVDSTADR),
        ("+", 1, "", S.ESME_RINVDSTADR),
        ("1234567890123456", 1, "", S.ESME_RINVDSTADR),
        ("\u0664\u066799999999", 1, "", S.ESME_RINVDSTADR),  # Arabic-Indic digits
        ("Shop", 5, "", S.ESME_RINVDSTTON),
        ("2333", 3, "", S.ESME_RINVDSTTON),
        ("4799999999", 7, "", S.ESME_RINVDSTTON),
        # An international number never starts with 0: +0712345678 is no number.
        ("0712345678", 1, "47", S.ESME_RINVDSTADR),
        ("+0712345678", 1, "47", S.ESME_RINVDSTADR),
        ("000712345678", 0, "47", S.ESME_RINVDSTADR),
    ],
)
def test_resolve_destination_refused(addr: str, ton: int, country_code: str, status: int) -> None:
    with pytest.raises(AddressRefused) as info:
        resolve_destination(addr, ton, country_code)
    assert info.value.status == status
