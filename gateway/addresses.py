"""Addresses: every rule about type of number and numbering plan, both ways.

Responsible for reading what an ESME puts in source_addr and destination_addr
(with its ton) as the account's rules say (`resolve_source`,
`resolve_destination`, DESIGN section 4), for writing a sender or a number as
an SMPP address (`smpp_address`: LINK's SMPP route, receipts, the `send`
command), and for reading the numbers LINK gives for incoming messages
(`normalise_number`, `mo_address`). Nothing else in the gateway decides what a
ton means.

What always holds:

* MSISDNs leave `resolve_*` as `+<digits>` (E.164, at most 15 digits, never a
  leading 0: that is a national trunk prefix), short codes as at most 14 digits,
  alphanumeric senders as 2-11 GSM characters beginning with a non-digit.
* A refusal is `AddressRefused` with the SMPP status that says why
  (ESME_RINVSRCADR / ESME_RINVDSTADR, or the TON statuses).
* Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from gateway.records import Address, Party, PartyKind
from gateway.smpp.pdu import CommandStatus
from gateway.smpp.text import is_gsm

_S = CommandStatus


class AddressRefused(ValueError):
    """An address the account's rules cannot read; answer with `status`."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# SMPP 3.4 section 5.2.5 type_of_number values.
TON_UNKNOWN: Final = 0
TON_INTERNATIONAL: Final = 1
TON_NATIONAL: Final = 2
TON_NETWORK: Final = 3
TON_SUBSCRIBER: Final = 4
TON_ALPHANUMERIC: Final = 5
TON_ABBREVIATED: Final = 6

# Up to this many digits a source sent with ton 0 or 1 is a short code, not an
# MSISDN, by the account's country code (DESIGN 4): where mobile numbers have 8
# digits (Norway, Denmark) an 8-digit number is a mobile, and short codes have
# at most 5 or 6. Elsewhere 8, the guess from before there was a table.
SHORT_NUMBER_DIGITS: Final[Mapping[str, int]] = MappingProxyType(
    {"45": 6, "46": 6, "47": 6, "358": 6}
)
DEFAULT_SHORT_NUMBER_DIGITS: Final = 8
# A number sent with ton 0 and this many digits or fewer is national (completed
# with the account's country code); longer ones already carry their country code.
_NATIONAL_MAX: Final = 8
SHORT_NUMBER_MAX: Final = 14  # Common: "1-14 digits"
_E164_MAX: Final = 15


def _digits(value: str) -> bool:
    # isdigit alone accepts superscripts and other scripts' digits.
    return value.isascii() and value.isdigit()


def _international(addr: str) -> str | None:
    """The digits after `+` or `00`, or None if `addr` has neither prefix."""
    if addr.startswith("+"):
        return addr[1:]
    if addr.startswith("00"):
        return addr[2:]
    return None


def _msisdn(digits: str, status: int, what: str) -> str:
    if not _digits(digits) or not 0 < len(digits) <= _E164_MAX:
        raise AddressRefused(status, f"{what} is not a number of at most 15 digits")
    if digits.startswith("0"):
        # A country code never starts with 0: this is a national number.
        raise AddressRefused(status, f"international {what} starting with 0 (a trunk prefix)")
    return "+" + digits


def _national(digits: str, country_code: str, status: int, what: str) -> str:
    if not country_code:
        raise AddressRefused(status, f"national {what} but the account has no country code")
    # One leading 0 is the trunk prefix; it is not dialled from abroad.
    return _msisdn(country_code + (digits[1:] if digits.startswith("0") else digits), status, what)


def _alphanumeric(addr: str) -> bool:
    """Seed 001: an alphanumeric source is 2-11 characters beginning with a non-digit."""
    return 2 <= len(addr) <= 11 and not addr[0].isdigit() and is_gsm(addr) and not addr.isspace()


def resolve_source(
    addr: str, ton: int, *, default_country_code: str = "", short_number_digits: int = 8
) -> Party:
    """The sender a submit_sm's source address names (DESIGN 4, first row).

    - ton 5, or ton 0 with letters: ALPHANUMERIC, 2-11 GSM characters beginning
      with a non-digit. An all-digit (or `+digits`) address under ton 5 is read
      by the number rules of ton 0, as the ESME most likely meant a number.
    - `+`/`00`: MSISDN.
    - ton 3 and 6: SHORTNUMBER.
    - ton 1: MSISDN `+digits`; at most `short_number_digits` digits is a
      SHORTNUMBER (ESMEs commonly send short codes as ton 1); a leading 0 is
      refused (an international number never starts with 0).
    - ton 2 and 4: national, always an MSISDN: a trunk 0 dropped, the
      account's country code added.
    - ton 0: at most `short_number_digits` digits a SHORTNUMBER; a leading 0,
      or at most 8 digits with a country code, national; else an international
      MSISDN.

    Bad address: ESME_RINVSRCADR; a ton above 6: ESME_RINVSRCTON.
    """
    bad = _S.ESME_RINVSRCADR
    if not addr:
        raise AddressRefused(bad, "empty source address")
    if ton > TON_ABBREVIATED:
        raise AddressRefused(_S.ESME_RINVSRCTON, f"source TON {ton} not supported")
    intl = _international(addr)
    number = intl is not None or _digits(addr)
    if ton == TON_ALPHANUMERIC and number:
        ton = TON_UNKNOWN
    if ton == TON_ALPHANUMERIC or (ton == TON_UNKNOWN and not number):
        if not _alphanumeric(addr):
            raise AddressRefused(
                bad, "alphanumeric source must be 2-11 GSM characters beginning with a non-digit"
            )
        return Party(PartyKind.ALPHANUMERIC, addr)
    if intl is not None:
        return Party(PartyKind.MSISDN, _msisdn(intl, bad, "source"))
    if not number:
        raise AddressRefused(bad, "source address is not a number")
    if ton in (TON_NETWORK, TON_ABBREVIATED):
        return Party(PartyKind.SHORT_CODE, _short_number(addr, bad))
    if ton in (TON_NATIONAL, TON_SUBSCRIBER):
        return Party(PartyKind.MSISDN, _national(addr, default_country_code, bad, "source"))
    if len(addr) <= short_number_digits:
        return Party(PartyKind.SHORT_CODE, _short_number(addr, bad))
    if ton == TON_UNKNOWN and (
        addr.startswith("0") or (default_country_code and len(addr) <= _NATIONAL_MAX)
    ):
        return Party(PartyKind.MSISDN, _national(addr, default_country_code, bad, "source"))
    return Party(PartyKind.MSISDN, _msisdn(addr, bad, "source"))


def _short_number(addr: str, status: int) -> str:
    if len(addr) > SHORT_NUMBER_MAX:
        raise AddressRefused(status, "short number longer than 14 digits")
    return addr


def resolve_destination(addr: str, ton: int, default_country_code: str) -> str:
    """`+<digits>` for Common's destination (destinationTON is always MSISDN).

    `+`/`00` prefix: international whatever the ton. ton 1: international; a
    leading 0 is refused (an international number never starts with 0). ton 2,
    4 and 6: national, completed with the country code after dropping one trunk
    `0`. ton 0: a leading `0`, or at most 8 digits with a country code
    configured, is national; anything else international. Bad address:
    ESME_RINVDSTADR; ton 3, 5 or above 6: ESME_RINVDSTTON (Common delivers to
    MSISDNs only).
    """
    bad = _S.ESME_RINVDSTADR
    if ton in (TON_NETWORK, TON_ALPHANUMERIC) or ton > TON_ABBREVIATED:
        raise AddressRefused(_S.ESME_RINVDSTTON, f"destination TON {ton} not supported")
    intl = _international(addr)
    if intl is not None:
        return _msisdn(intl, bad, "destination")
    if not _digits(addr):
        raise AddressRefused(bad, "destination address is not a number")
    if ton == TON_INTERNATIONAL:
        return _msisdn(addr, bad, "destination")
    if ton in (TON_NATIONAL, TON_SUBSCRIBER, TON_ABBREVIATED):
        return _national(addr, default_country_code, bad, "destination")
    if addr.startswith("0") or (default_country_code and len(addr) <= _NATIONAL_MAX):
        return _national(addr, default_country_code, bad, "destination")
    return _msisdn(addr, bad, "destination")


def short_number_digits(country_code: str) -> int:
    """How many digits a short code may have, by the account's country code."""
    return SHORT_NUMBER_DIGITS.get(country_code, DEFAULT_SHORT_NUMBER_DIGITS)


# --- towards SMPP -------------------------------------------------------------------

# SMPP 3.4 section 5.2.6 numbering plans.
NPI_UNKNOWN: Final = 0
NPI_ISDN: Final = 1

# How each kind of party is written in an SMPP address (seed 004's TON list;
# the convention SMSCs use for short codes).
_SMPP_TON_NPI: Final[Mapping[PartyKind, tuple[int, int]]] = MappingProxyType(
    {
        PartyKind.MSISDN: (TON_INTERNATIONAL, NPI_ISDN),
        PartyKind.SHORT_CODE: (TON_NETWORK, NPI_UNKNOWN),
        PartyKind.ALPHANUMERIC: (TON_ALPHANUMERIC, NPI_UNKNOWN),
    }
)


def smpp_address(party: Party) -> Address:
    """`party` as an SMPP address: an MSISDN without its '+', ton 1 npi 1; a short
    code ton 3 npi 0; a sender name ton 5 npi 0."""
    ton, npi = _SMPP_TON_NPI[party.kind]
    return Address(
        party.value.removeprefix("+") if party.kind is PartyKind.MSISDN else party.value, ton, npi
    )


def read_party(text: str, *, short_number_digits: int = DEFAULT_SHORT_NUMBER_DIGITS) -> Party:
    """A sender or number as an operator types it: `+digits` (or more digits than
    a short code has) an MSISDN, fewer digits a short code, anything else a name."""
    digits = text[1:] if text.startswith("+") else text
    if _digits(digits) and digits:
        if text.startswith("+") or len(digits) > short_number_digits:
            return Party(PartyKind.MSISDN, "+" + digits)
        return Party(PartyKind.SHORT_CODE, digits)
    return Party(PartyKind.ALPHANUMERIC, text)


# --- from LINK (MO) -----------------------------------------------------------------

# Up to this many digits, a number LINK gives without '+' is a short code (DESIGN 4).
_SHORT_MAX: Final = 8
_ALPHA_MAX: Final = 11  # GSM 03.40 9.1.2.5
_ADDR_MAX: Final = 20  # source_addr / destination_addr are C21 (SMPP 3.4 5.2.8, 5.2.10)
# The numbering plan that goes with each type of number a plain number may be given.
_NPI_FOR_TON: Final[Mapping[int, int]] = MappingProxyType(
    {
        TON_INTERNATIONAL: NPI_ISDN,
        TON_NATIONAL: NPI_ISDN,
        TON_NETWORK: NPI_UNKNOWN,
        TON_SUBSCRIBER: NPI_ISDN,
        TON_ALPHANUMERIC: NPI_UNKNOWN,
        TON_ABBREVIATED: NPI_UNKNOWN,
    }
)
# Common writes a short number with its country when a template does not ask for
# "nocountry" (seed 000, "Template with numbers"): SE-1234. Only digits that
# alone still read as a short code (up to 8, no 00 prefix), so that
# normalise_number is idempotent.
_COUNTRY_SHORT: Final = re.compile(r"[A-Za-z]{2}-((?!00)[0-9]{1,8})")

_INTERNATIONAL: Final = "international"
_DIGITS: Final = "digits"
_SHORT: Final = "short"
_NAME: Final = "name"


def _number_form(value: str) -> tuple[str, str]:
    """(form, body): the digits of an international number, a plain number, a
    country-qualified short number, or anything else, stripped."""
    text = value.strip()
    if text[:1] == "+" and _digits(text[1:]):
        return _INTERNATIONAL, text[1:]
    if _digits(text):
        if text.startswith("00") and len(text) > 2:
            return _INTERNATIONAL, text[2:]
        return _DIGITS, text
    short = _COUNTRY_SHORT.fullmatch(text)
    if short is not None:
        return _SHORT, short.group(1)
    return _NAME, text


def claimed_number(number: str) -> str:
    """A number an account claims for MO (config), strictly: digits, or '+' and digits.

    Normalised as `normalise_number` does, so that config and routing agree.
    """
    plus = number.startswith("+")
    digits = number[1:] if plus else number
    if not _digits(digits):
        raise ValueError(f"a number is digits, or '+' and digits, not {number!r}")
    if not plus and len(digits) > _SHORT_MAX and digits.startswith("00"):
        digits = digits[2:]
    if not 1 <= len(digits) <= _E164_MAX:
        raise ValueError(f"a number has 1-{_E164_MAX} digits, not {number!r}")
    return "+" + digits if plus or len(digits) > _SHORT_MAX else digits


def normalise_number(value: str) -> str:
    """One spelling per number, for routing and configuration.

    ``+digits`` and ``00digits`` -> ``+digits``; plain digits stay a short code up
    to 8 digits and become ``+digits`` beyond; ``SE-1234`` -> ``1234``; anything
    else (an alphanumeric sender) is returned stripped. Idempotent.
    """
    form, body = _number_form(value)
    if form == _INTERNATIONAL or (form == _DIGITS and len(body) > _SHORT_MAX):
        return "+" + body
    return body


def mo_address(value: str, ton_hint: int | None, what: str) -> Address:
    """An address LINK gave for an incoming message, as a deliver_sm carries it.

    An MSISDN (`+`/`00` prefix, or more than 8 digits) is its digits without
    `+`, ton 1 npi 1; a short code (up to 8 digits, bare or in Common's `SE-1234`
    form) ton 3 npi 0, which MT reads back as a short code when an ESME replies
    from it; a sender name ton 5 npi 0, or ton 0 npi 0 beyond 11 characters
    (Kannel refuses longer ton 5 addresses). A TON hint from LINK wins for a
    number without prefix (a national number is not an 8-digit short code).
    AddressRefused when it fits no SMPP address field.
    """
    form, body = _number_form(value)
    if form == _INTERNATIONAL:
        address = (body, TON_INTERNATIONAL, NPI_ISDN)
    elif form == _SHORT:
        address = (body, TON_NETWORK, NPI_UNKNOWN)
    elif form == _DIGITS:
        hint = ton_hint or TON_UNKNOWN
        npi = _NPI_FOR_TON.get(hint)
        # ALPHANUMERIC digits only as long as ton 5 addresses may be.
        if npi is not None and (hint != TON_ALPHANUMERIC or len(body) <= _ALPHA_MAX):
            address = (body, hint, npi)
        elif len(body) <= _SHORT_MAX:
            address = (body, TON_NETWORK, NPI_UNKNOWN)
        else:
            address = (body, TON_INTERNATIONAL, NPI_ISDN)
    elif len(body) <= _ALPHA_MAX:
        address = (body, TON_ALPHANUMERIC, NPI_UNKNOWN)
    else:
        address = (body, TON_UNKNOWN, NPI_UNKNOWN)
    addr = address[0]
    # The codec writes addresses as Latin-1 C-strings.
    if not addr or len(addr) > _ADDR_MAX or "\0" in addr or not latin1(addr):
        raise AddressRefused(
            _S.ESME_RINVSRCADR, f"{what} {value[:40]!r} does not fit an SMPP address"
        )
    return Address(*address)


def latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
