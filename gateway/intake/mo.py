"""MO (mobile-originated) messages: LINK's SmsMessage -> IncomingMo -> account -> deliver_sm items.

Responsible for the three sans-IO steps between a Gate callback and the deliverer:
:func:`incoming_mo_from_object` checks one ``SmsMessage`` object (seed 000,
"Incoming objects": messageId, destination, source, userData) that
:func:`~gateway.connectors.common.callbacks.parse_callback_objects` produced from any Gate
body format; :class:`MoRouter` picks the ESME account that owns it;
:func:`mo_segments` turns it into the ``deliver_sm`` items (kind MO
:class:`~gateway.store.base.Receipt`) that account's binds receive.

What always holds:

* :func:`incoming_mo_from_object` raises nothing but :class:`BadCallback`, whatever
  the object holds. Besides seed 000's four fields it reads the optional fields a
  Common SmsMessage shares with the send request (seed 001): ``dcs`` (TEXT, GSM,
  UCS2: userData is text; BINARY: userData is hex octets), ``userDataHeader``
  (hex, one segment of a long MO), ``sourceTON`` / ``destinationTON`` (MSISDN,
  SHORTNUMBER, ALPHANUMERIC; a hint, unknown names ignored). Every other field
  (keyword, operator, timestamps, customParameters, ...) is ignored.
* What it returns can always be delivered: :func:`mo_segments` raises
  :class:`BadCallback` only for an :class:`IncomingMo` built elsewhere that it
  would have refused (an address that fits no SMPP address field, a segment that
  does not fit one SMS with its UDH, text needing more than 255 parts).
* Text holds no unpaired surrogate (it becomes U+FFFD): the ESME gets UTF-16
  that decodes. A character outside the BMP cannot be said in UCS-2; it goes as a
  UTF-16 surrogate pair (what handsets send and ESMEs decoding UTF-16BE show
  correctly) and the pair is never split across parts.
* Every item fits one SMS: text through :func:`gateway.smpp.text.segment` (GSM 160
  or 153 septets per part, never splitting an escape pair; UCS-2 70 or 67 units,
  never splitting a surrogate pair), binary 140 or 134 octets, all parts with the
  8-bit concatenation UDH ``05 00 03 ref total seq`` and esm_class 0x40.
* Addresses (SMPP 3.4 sections 5.2.5, 5.2.6), one rule for sender and recipient:
  an MSISDN (``+``/``00`` prefix, or more than 8 digits) is its digits without
  ``+``, ton 1 npi 1; a short code (up to 8 digits, bare or in Common's
  ``SE-1234`` form) ton 3 npi 0, the convention SMSCs use for short codes, which
  our MT mapping reads back as SHORTNUMBER when an ESME replies from it; an
  alphanumeric sender ton 5 npi 0, or ton 0 npi 0 beyond 11 characters (Kannel
  refuses longer ton 5 addresses). A TON hint from LINK wins for a number without
  prefix (a national number is not an 8-digit short code).
* Nothing here does I/O or reads a clock: the caller passes ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from gateway.connectors.common.callbacks import BadCallback
from gateway.inbound import IncomingMo
from gateway.mapping import (
    TON_ABBREVIATED,
    TON_ALPHANUMERIC,
    TON_INTERNATIONAL,
    TON_NATIONAL,
    TON_NETWORK,
    TON_SUBSCRIBER,
    TON_UNKNOWN,
)
from gateway.smpp.text import TextError, encode_for_esme, parse_udh, segment
from gateway.store.base import MO, Receipt

if TYPE_CHECKING:
    from gateway.config import Config

__all__ = ["MoRouter", "incoming_mo_from_object", "mo_segments", "normalise_number"]

# SMPP 3.4 section 5.2.6.
_NPI_UNKNOWN: Final = 0
_NPI_ISDN: Final = 1

# The numbering plan that goes with each type of number a plain number may be given.
_NPI_FOR_TON: Final[Mapping[int, int]] = {
    TON_INTERNATIONAL: _NPI_ISDN,
    TON_NATIONAL: _NPI_ISDN,
    TON_NETWORK: _NPI_UNKNOWN,
    TON_SUBSCRIBER: _NPI_ISDN,
    TON_ALPHANUMERIC: _NPI_UNKNOWN,
    TON_ABBREVIATED: _NPI_UNKNOWN,
}
# Common's TON names (seed 001, "TON") as SMPP type_of_number.
_COMMON_TON: Final[Mapping[str, int]] = {
    "MSISDN": TON_INTERNATIONAL,
    "SHORTNUMBER": TON_NETWORK,
    "ALPHANUMERIC": TON_ALPHANUMERIC,
}
_TEXT_DCS: Final = frozenset({"TEXT", "GSM", "UCS2"})
_BINARY_DCS: Final = "BINARY"

_SHORT_MAX: Final = 8  # digits; longer is an MSISDN (DESIGN 4, as for MT)
_ALPHA_MAX: Final = 11  # GSM 03.40 9.1.2.5
_E164_MAX: Final = 15
_ADDR_MAX: Final = 20  # source_addr / destination_addr are C21 (SMPP 3.4 5.2.8, 5.2.10)
_ID_MAX: Final = 64  # a message_id is C65 wherever SMPP carries one
_HEAD: Final = 20  # characters kept for logs, as in a receipt's text:

_SMS_OCTETS: Final = 140  # GSM 03.40 TP-User-Data
_SMS_SEPTETS: Final = 160
_BINARY_PART: Final = _SMS_OCTETS - 6  # less the 8-bit concatenation UDH
_MAX_PARTS: Final = 255
_DC_GSM: Final = 0
_DC_BINARY: Final = 4
_UDHI: Final = 0x40

# Common writes a short number with its country when a template does not ask for
# "nocountry" (seed 000, "Template with numbers"): SE-1234. Only digits that
# alone still read as a short code (up to 8, no 00 prefix), so that
# normalise_number is idempotent.
_COUNTRY_SHORT: Final = re.compile(r"[A-Za-z]{2}-((?!00)[0-9]{1,8})")
# A keyword is a run of letters and digits; anything else separates words.
_WORD: Final = re.compile(r"[^\W_]+")


# -- numbers ------------------------------------------------------------------------

_INTERNATIONAL: Final = "international"
_DIGITS: Final = "digits"
_SHORT: Final = "short"
_NAME: Final = "name"


def _digits(value: str) -> bool:
    # isdigit alone accepts superscripts and other scripts' digits.
    return value.isascii() and value.isdigit()


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


def claimed_keyword(word: str) -> str:
    """A keyword an account claims (config): one word of letters and digits, upper case."""
    if _WORD.fullmatch(word) is None:
        raise ValueError(
            f"a keyword is one word of letters and digits (the first word of the text"
            f" is compared with it), not {word!r}"
        )
    return word.upper()


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


def _smpp_address(value: str, ton_hint: int | None, what: str) -> tuple[str, int, int]:
    """(addr, ton, npi) for a deliver_sm address; see the module docstring."""
    form, body = _number_form(value)
    if form == _INTERNATIONAL:
        address = (body, TON_INTERNATIONAL, _NPI_ISDN)
    elif form == _SHORT:
        address = (body, TON_NETWORK, _NPI_UNKNOWN)
    elif form == _DIGITS:
        hint = ton_hint or TON_UNKNOWN
        npi = _NPI_FOR_TON.get(hint)
        # ALPHANUMERIC digits only as long as ton 5 addresses may be.
        if npi is not None and (hint != TON_ALPHANUMERIC or len(body) <= _ALPHA_MAX):
            address = (body, hint, npi)
        elif len(body) <= _SHORT_MAX:
            address = (body, TON_NETWORK, _NPI_UNKNOWN)
        else:
            address = (body, TON_INTERNATIONAL, _NPI_ISDN)
    elif len(body) <= _ALPHA_MAX:
        address = (body, TON_ALPHANUMERIC, _NPI_UNKNOWN)
    else:
        address = (body, TON_UNKNOWN, _NPI_UNKNOWN)
    addr = address[0]
    # The codec writes addresses as Latin-1 C-strings.
    if not addr or len(addr) > _ADDR_MAX or "\0" in addr or not _latin1(addr):
        raise BadCallback(f"{what} {_clip(value)!r} does not fit an SMPP address")
    return address


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


# -- SmsMessage -> IncomingMo ------------------------------------------------------


def incoming_mo_from_object(obj: Mapping[str, object], *, connector: str, now: float) -> IncomingMo:
    """Check and convert one SmsMessage object; BadCallback says what is wrong."""
    if not isinstance(obj, Mapping):
        raise BadCallback("an SmsMessage must be an object")
    upstream_id = _required_text(obj, "messageId")
    if len(upstream_id) > _ID_MAX:
        raise BadCallback(f"'messageId' longer than {_ID_MAX} characters")
    source = _required_text(obj, "source")
    destination = _required_text(obj, "destination")
    if "userData" not in obj:
        raise BadCallback("missing 'userData'")
    user_data = obj["userData"]
    # An empty XML element and a JSON null both say "no text".
    if user_data is None:
        user_data = ""
    elif not isinstance(user_data, str):
        raise BadCallback("'userData' must be a string")
    text: str | None = None
    binary: bytes | None = None
    if _dcs(obj.get("dcs")) == _BINARY_DCS:
        binary = _hex(user_data, "userData")
    else:
        text = _without_lone_surrogates(user_data)
    udh = _udh(obj.get("userDataHeader"))
    mo = IncomingMo(
        upstream_id=upstream_id,
        source=source,
        destination=destination,
        text=text,
        binary=binary,
        udh=udh,
        source_ton=_ton_hint(obj.get("sourceTON")),
        dest_ton=_ton_hint(obj.get("destinationTON")),
        connector=connector,
        received_at=now,
    )
    # Refuse now, while LINK can still be told, what could not be delivered later.
    _plan(mo, ref=0)
    return mo


def _required_text(obj: Mapping[str, object], name: str) -> str:
    value = obj.get(name)
    # A number as a JSON number (seed 000 types source and destination as Number).
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadCallback(f"missing or empty '{name}'")
    if not isinstance(value, str):
        raise BadCallback(f"'{name}' must be a string")
    return value.strip()


def _dcs(value: object) -> str:
    if value is None or value == "":
        return "TEXT"
    if isinstance(value, str):
        name = value.strip().upper()
        if name in _TEXT_DCS or name == _BINARY_DCS:
            return name
    raise BadCallback(f"'dcs' {_clip(value)!r} is not TEXT, GSM, UCS2 or BINARY")


def _hex(value: str, name: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise BadCallback(f"'{name}' is not hex-encoded octets") from None


def _udh(value: object) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadCallback("'userDataHeader' must be a hex string")
    octets = _hex(value, "userDataHeader")
    return octets or None


def _ton_hint(value: object) -> int | None:
    if isinstance(value, str):
        return _COMMON_TON.get(value.strip().upper())
    return None


def _without_lone_surrogates(text: str) -> str:
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16 so that two halves of one pair become the character.
        return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")
    return text


def _clip(value: object) -> str:
    return str(value)[:40]


# -- routing -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _NumberRoutes:
    keywords: Mapping[str, str]  # casefolded keyword -> account
    catch_all: str | None


def _first_word(text: str) -> str | None:
    word = _WORD.search(text)
    return word.group().casefold() if word is not None else None


class MoRouter:
    """Which account an MO belongs to, from its destination number and first word.

    ``accounts`` maps an account to (numbers, keywords). On a number, an account
    with keywords gets the MO whose first word (letters and digits, any case, with
    whatever whitespace or punctuation around it) is one of them; an account with
    the number and no keywords gets the rest. Whatever no number claims goes to
    ``default_account`` (None: nobody). Two accounts claiming the same number
    without keywords, or the same keyword on one number, are a ValueError here.

    Keywords are matched on the text of the item routed: a later part of a long
    MO that LINK passes on segment by segment (``udh`` set) does not start with
    the keyword and goes to the number's catch-all.
    """

    def __init__(
        self,
        accounts: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]],
        default_account: str | None,
    ) -> None:
        keywords: dict[str, dict[str, str]] = {}
        catch_all: dict[str, str] = {}
        for account, (numbers, words) in accounts.items():
            if words and not numbers:
                raise ValueError(f"account {account!r} has MO keywords but no MO numbers")
            keys = [_keyword_key(account, word) for word in words]
            for number in map(normalise_number, numbers):
                if not keys:
                    owner = catch_all.setdefault(number, account)
                    if owner != account:
                        raise ValueError(
                            f"MO number {number} is the catch-all of both "
                            f"{owner!r} and {account!r}; give one of them keywords"
                        )
                on_number = keywords.setdefault(number, {}) if keys else {}
                for key in keys:
                    owner = on_number.setdefault(key, account)
                    if owner != account:
                        raise ValueError(
                            f"MO keyword {key!r} on {number} belongs to both "
                            f"{owner!r} and {account!r}"
                        )
        self._routes: dict[str, _NumberRoutes] = {
            number: _NumberRoutes(keywords.get(number, {}), catch_all.get(number))
            for number in keywords.keys() | catch_all.keys()
        }
        self._default = default_account

    @classmethod
    def from_config(cls, config: Config) -> MoRouter:
        return cls(
            {a.system_id: (a.mo_numbers, a.mo_keywords) for a in config.accounts.values()},
            config.mo.default_account,
        )

    def route(self, mo: IncomingMo) -> str | None:
        routes = self._routes.get(normalise_number(mo.destination))
        if routes is None:
            return self._default
        if routes.keywords and mo.text:
            word = _first_word(mo.text)
            if word is not None:
                account = routes.keywords.get(word)
                if account is not None:
                    return account
        return routes.catch_all if routes.catch_all is not None else self._default


def _keyword_key(account: str, keyword: str) -> str:
    key = keyword.strip()
    if _WORD.fullmatch(key) is None:
        raise ValueError(
            f"MO keyword {keyword!r} of account {account!r} must be one word of letters "
            "and digits (the first word of the text is compared with it)"
        )
    return key.casefold()


# -- IncomingMo -> deliver_sm items --------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    source: tuple[str, int, int]
    destination: tuple[str, int, int]
    parts: list[tuple[int, bytes, bytes]]  # (data_coding, udh, body)


def mo_segments(
    mo: IncomingMo, account: str, *, ttl: float, ref: int, latin1: bool = False
) -> list[Receipt]:
    """The deliver_sm items for ``account``, in order: one per SMS-sized part.

    ``ref`` is the concatenation reference (its low 8 bits) when the text must be
    split; the items expire ``ttl`` seconds after LINK handed the MO over. The
    receipt-only fields are neutral (stat "", err/sub/dlvrd 0, both dates the
    receiving time); ``text`` is the first 20 characters, for logs.

    ``latin1``: the account reads data_coding 0 as Latin-1 (its
    `default_alphabet`), so text that Latin-1 can hold goes to it as Latin-1
    octets under 0, split at 134 octets a part; other text as UCS-2.
    """
    plan = _plan(mo, ref, latin1)
    source_addr, source_ton, source_npi = plan.source
    dest_addr, dest_ton, dest_npi = plan.destination
    head = mo.text[:_HEAD] if mo.binary is None and mo.text else ""
    received = mo.received_at
    return [
        Receipt(
            account=account,
            message_id=mo.upstream_id,
            source_addr=source_addr,
            source_ton=source_ton,
            source_npi=source_npi,
            destination_addr=dest_addr,
            dest_ton=dest_ton,
            dest_npi=dest_npi,
            stat="",
            err=0,
            sub=0,
            dlvrd=0,
            submit_date=received,
            done_date=received,
            text=head,
            kind=MO,
            data_coding=data_coding,
            esm_class=_UDHI if udh else 0,
            payload=udh + body,
            expires_at=received + ttl,
        )
        for data_coding, udh, body in plan.parts
    ]


def _plan(mo: IncomingMo, ref: int, latin1: bool = False) -> _Plan:
    source = _smpp_address(mo.source, mo.source_ton, "source")
    destination = _smpp_address(mo.destination, mo.dest_ton, "destination")
    if mo.udh:
        parts = [_passthrough(mo, mo.udh)]
    elif mo.binary is not None:
        parts = _octet_parts(mo.binary, ref, _DC_BINARY)
    elif latin1 and _latin1(mo.text or ""):
        parts = _octet_parts((mo.text or "").encode("latin-1"), ref, _DC_GSM)
    else:
        try:
            parts = segment(mo.text or "", ref)
        except TextError as e:
            raise BadCallback(f"userData too long: {e}") from None
    return _Plan(source, destination, parts)


def _passthrough(mo: IncomingMo, udh: bytes) -> tuple[int, bytes, bytes]:
    """One segment LINK passed on with its own UDH: it must stay one SMS."""
    try:
        parse_udh(udh)
    except TextError as e:
        raise BadCallback(f"bad 'userDataHeader': {e}") from None
    if mo.binary is not None:
        data_coding, body = _DC_BINARY, mo.binary
    else:
        data_coding, body = encode_for_esme(mo.text or "")
    if data_coding == _DC_GSM:
        # Unpacked GSM is one octet per septet; the UDH is padded to a septet
        # boundary (GSM 03.40 9.2.3.24).
        fits = (len(udh) * 8 + 6) // 7 + len(body) <= _SMS_SEPTETS
    else:
        fits = len(udh) + len(body) <= _SMS_OCTETS
    if not fits:
        raise BadCallback("segment with its 'userDataHeader' does not fit one SMS")
    return data_coding, udh, body


def _octet_parts(data: bytes, ref: int, data_coding: int) -> list[tuple[int, bytes, bytes]]:
    """One octet per character or byte (binary, Latin-1): 140 alone, 134 a part."""
    if len(data) <= _SMS_OCTETS:
        return [(data_coding, b"", data)]
    chunks = [data[pos : pos + _BINARY_PART] for pos in range(0, len(data), _BINARY_PART)]
    total = len(chunks)
    if total > _MAX_PARTS:
        raise BadCallback("userData needs more than 255 parts")
    return [
        (data_coding, bytes((0x05, 0x00, 0x03, ref & 0xFF, total, seq)), chunk)
        for seq, chunk in enumerate(chunks, start=1)
    ]
