"""MO (mobile-originated) messages: IncomingMo -> account -> deliver_sm items.

Responsible for the two sans-IO steps between a connector and the deliverer:
:class:`MoRouter` picks the ESME account that owns an MO; :func:`mo_segments`
turns it into the ``deliver_sm`` items (kind MO :class:`~gateway.records.Receipt`)
that account's binds receive. Each connector reads LINK's own form of an MO
(Common's SmsMessage: gateway/connectors/common/mo.py; LINK SMPP's deliver_sm)
into an :class:`~gateway.records.IncomingMo` and may ask :func:`check_deliverable`
first, while LINK can still be told.

What always holds:

* :func:`mo_segments` raises nothing but :class:`Undeliverable`: for an MO that
  no SMPP deliver_sm can carry (an address that fits no SMPP address field, a
  segment that does not fit one SMS with its UDH, text needing more than 255
  parts). Such an MO is dropped and counted by the intake, never refused
  temporarily: LINK would only send it again and again.
* Text holds no unpaired surrogate (it becomes U+FFFD): the ESME gets UTF-16
  that decodes. A character outside the BMP cannot be said in UCS-2; it goes as a
  UTF-16 surrogate pair (what handsets send and ESMEs decoding UTF-16BE show
  correctly) and the pair is never split across parts.
* Every item fits one SMS: through :func:`gateway.smpp.text.split_octets`, the
  gateway's one segmenter (GSM 160 or 153 septets per part, never splitting an
  escape pair; UCS-2 70 or 67 units, never splitting a surrogate pair; binary
  140 or 134 octets), all parts with the 8-bit concatenation UDH
  ``05 00 03 ref total seq`` and esm_class 0x40.
* Addresses (SMPP 3.4 sections 5.2.5, 5.2.6), one rule for sender and recipient
  (gateway.addresses.mo_address): an MSISDN (``+``/``00`` prefix, or more than 8
  digits) is its digits without ``+``, ton 1 npi 1; a short code (up to 8
  digits, bare or in Common's ``SE-1234`` form) ton 3 npi 0, the convention
  SMSCs use for short codes, which our MT mapping reads back as a short code
  when an ESME replies from it; an alphanumeric sender ton 5 npi 0, or ton 0
  npi 0 beyond 11 characters (Kannel refuses longer ton 5 addresses). A TON
  hint from LINK wins for a number without prefix (a national number is not an
  8-digit short code).
* Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from gateway.addresses import AddressRefused, latin1, mo_address, normalise_number
from gateway.records import MO, Address, IncomingMo, Receipt
from gateway.smpp.text import TextError, encode_for_esme, parse_udh, segment, split_octets

if TYPE_CHECKING:
    from gateway.config import Config

__all__ = ["MoRouter", "Undeliverable", "check_deliverable", "claimed_keyword", "mo_segments"]


class Undeliverable(ValueError):
    """An MO no deliver_sm can carry; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_HEAD: Final = 20  # characters kept for logs, as in a receipt's text:

_SMS_OCTETS: Final = 140  # GSM 03.40 TP-User-Data
_SMS_SEPTETS: Final = 160
_DC_GSM: Final = 0
_DC_BINARY: Final = 4
_UDHI: Final = 0x40

# A keyword is a run of letters and digits; anything else separates words.
_WORD: Final = re.compile(r"[^\W_]+")


def claimed_keyword(word: str) -> str:
    """A keyword an account claims (config): one word of letters and digits, upper case."""
    if _WORD.fullmatch(word) is None:
        raise ValueError(
            f"a keyword is one word of letters and digits (the first word of the text"
            f" is compared with it), not {word!r}"
        )
    return word.upper()


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
    source: Address
    destination: Address
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
    source, destination = plan.source, plan.destination
    head = mo.text[:_HEAD] if mo.binary is None and mo.text else ""
    received = mo.received_at
    return [
        Receipt(
            account=account,
            message_id=mo.upstream_id,
            source_addr=source.addr,
            source_ton=source.ton,
            source_npi=source.npi,
            destination_addr=destination.addr,
            dest_ton=destination.ton,
            dest_npi=destination.npi,
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


def check_deliverable(mo: IncomingMo) -> None:
    """Undeliverable if `mo_segments` would refuse this MO."""
    _plan(mo, ref=0)


def _plan(mo: IncomingMo, ref: int, as_latin1: bool = False) -> _Plan:
    try:
        source = mo_address(mo.source, mo.source_ton, "source")
        destination = mo_address(mo.destination, mo.dest_ton, "destination")
    except AddressRefused as e:
        raise Undeliverable(e.reason) from None
    if mo.udh:
        parts = [_passthrough(mo, mo.udh)]
    elif mo.binary is not None:
        parts = _octet_parts(mo.binary, ref, _DC_BINARY)
    elif as_latin1 and latin1(mo.text or ""):
        parts = _octet_parts((mo.text or "").encode("latin-1"), ref, _DC_GSM)
    else:
        try:
            parts = segment(mo.text or "", ref)
        except TextError as e:
            raise Undeliverable(f"userData too long: {e}") from None
    return _Plan(source, destination, parts)


def _passthrough(mo: IncomingMo, udh: bytes) -> tuple[int, bytes, bytes]:
    """One segment LINK passed on with its own UDH: it must stay one SMS."""
    try:
        parse_udh(udh)
    except TextError as e:
        raise Undeliverable(f"bad 'userDataHeader': {e}") from None
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
        raise Undeliverable("segment with its 'userDataHeader' does not fit one SMS")
    return data_coding, udh, body


def _octet_parts(data: bytes, ref: int, data_coding: int) -> list[tuple[int, bytes, bytes]]:
    """One octet per character or byte (binary, Latin-1): 140 alone, 134 a part."""
    try:
        return [(data_coding, udh, body) for udh, body in split_octets(data, "binary", ref)]
    except TextError:
        raise Undeliverable("userData needs more than 255 parts") from None
