"""Delivery receipts: the Appendix B text, its TLVs, and parsing SMSCs' receipts.

Responsible for the receipts the gateway sends to ESMEs (`build_receipt`) and
for reading the ones LINK's SMPP endpoint sends us (`parse_receipt_text`).

What always holds:
- A receipt we write is exactly `id:<id> sub:SSS dlvrd:DDD submit date:YYMMDDhhmm
  done date:YYMMDDhhmm stat:STAT err:EEE text:<20 chars>`: lower-case labels,
  single spaces, every field, 10-digit dates, 3-digit numbers, ASCII only. Kannel's
  sscanf, jsmpp and cloudhopper all parse that form and some parse nothing else
  (SMPP-NOTES sections 5 and 9). An err outside 0-999 is refused (ValueError),
  never clamped: 999 is a real LINK code.
- The text is the message's first 20 characters in ASCII: a letter with an
  ASCII form gets it (`ü` -> `u`, `ß` -> `ss`, `Æ` -> `AE`), anything else is `?`.
- The receipt deliver_sm has esm_class exactly 0x04 and data_coding 0; TLVs go
  only to ESMEs bound above 3.3 and are only receipted_message_id, message_state
  and network_error_code (smpplib raises on any other).
- Parsing is tolerant (case, 10 or 12 digit dates, missing sub/dlvrd/err/text)
  and raises `ReceiptError`, a ValueError, on anything without an id and a stat.
  LINK's SMPP endpoint writes its dates either way (seed 004: `YYMMDDhhmmss`
  by default, `YYMMDDhhmm` as an account option); `parse_receipt_date` reads
  both as UTC and gives None, never an exception, for a date that cannot be.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from gateway.smpp.pdu import ESM_CLASS_RECEIPT, SMPP_33, DeliverSm, MessageState, Tag
from gateway.smpp.times import format_receipt_date

__all__ = [
    "ERR_MAX",
    "ERR_OUT_OF_RANGE",
    "STAT_STATE",
    "ParsedReceipt",
    "ReceiptError",
    "ascii_text",
    "build_receipt",
    "format_receipt_text",
    "parse_receipt_date",
    "parse_receipt_text",
    "receipt_err",
]

STAT_STATE: Final[dict[str, MessageState]] = {
    "ENROUTE": MessageState.ENROUTE,
    "DELIVRD": MessageState.DELIVERED,
    "EXPIRED": MessageState.EXPIRED,
    "DELETED": MessageState.DELETED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "ACCEPTD": MessageState.ACCEPTED,
    "UNKNOWN": MessageState.UNKNOWN,
    "REJECTD": MessageState.REJECTED,
}

# network_error_code type octet: 1 ANSI-136, 2 IS-95, 3 GSM (SMPP 3.4 5.3.2.31).
_NETWORK_TYPE_GSM: Final = 3
_TEXT_CHARS: Final = 20

# Printable ASCII stays, control characters become '?' (a newline would end the
# receipt for line-oriented parsers); non-ASCII without an ASCII form becomes '?'
# in the encode step.
_SANITIZE: Final = {c: "?" for c in (*range(0x20), 0x7F)}
# Letters NFKD does not take apart, and typographic marks, with their usual
# ASCII spelling; accented letters lose their accent by decomposition.
_ASCII_FORMS: Final = str.maketrans(
    {
        "ß": "ss",
        "Æ": "AE",
        "æ": "ae",
        "Ø": "O",
        "ø": "o",
        "Œ": "OE",
        "œ": "oe",
        "Ð": "D",
        "ð": "d",
        "Þ": "Th",
        "þ": "th",
        "Ł": "L",
        "ł": "l",
        "Đ": "D",
        "đ": "d",
        "\u0131": "i",  # dotless i
        "\u2018": "'",  # quotation marks
        "\u2019": "'",
        "\u201a": "'",
        "“": '"',
        "”": '"',
        "„": '"',
        "\u2013": "-",  # en and em dash
        "\u2014": "-",
        "…": "...",
        "€": "EUR",
        "\u00a0": " ",
    }
)


def ascii_text(text: str) -> str:
    """`text` spelled in ASCII where it can be (see the module docstring); the
    rest is left for the encoder's '?'."""
    if text.isascii():
        return text
    spelled = unicodedata.normalize("NFKD", text.translate(_ASCII_FORMS))
    return "".join(c for c in spelled if not unicodedata.combining(c))


# The receipt's err has three digits (Appendix B), and 999 is a real LINK code
# ("internal billing not successful"): an err from LINK that does not fit
# (network_error_code carries 16 bits) becomes 099, which LINK's table (seed 004)
# does not use, instead of being clamped into 999.
ERR_MAX: Final = 999
ERR_OUT_OF_RANGE: Final = 99


def receipt_err(err: int) -> int:
    """`err` as a receipt can carry it: as it is when 0-999, else ERR_OUT_OF_RANGE."""
    return err if 0 <= err <= ERR_MAX else ERR_OUT_OF_RANGE


class ReceiptError(ValueError):
    """Not a delivery receipt this parser can read."""


_THREE_DIGITS: Final = tuple(f"{n:03d}" for n in range(1000))


def _three_digits(value: int) -> str:
    return _THREE_DIGITS[min(max(value, 0), 999)]


def format_receipt_text(
    *,
    message_id: str,
    sub: int,
    dlvrd: int,
    submit_date: float,
    done_date: float,
    stat: str,
    err: int | str,
    text: str,
) -> bytes:
    """The Appendix B receipt text (see the module docstring for its exact form).

    `err` as an int is written with three digits; as a str it is written as
    given, zero-padded to three when it is all digits.
    """
    if isinstance(err, int):
        if not 0 <= err <= ERR_MAX:
            raise ValueError(f"err {err} does not fit a receipt's three digits")
        err_text = _THREE_DIGITS[err]
    else:
        err_text = err.zfill(3) if err.isascii() and err.isdigit() else err
    head = ascii_text(text[:_TEXT_CHARS])[:_TEXT_CHARS].translate(_SANITIZE)
    return (
        f"id:{message_id} sub:{_three_digits(sub)} dlvrd:{_three_digits(dlvrd)}"
        f" submit date:{format_receipt_date(submit_date)}"
        f" done date:{format_receipt_date(done_date)}"
        f" stat:{stat} err:{err_text} text:{head}"
    ).encode("ascii", "replace")


@dataclass(frozen=True, slots=True)
class ParsedReceipt:
    """A receipt as an SMSC wrote it; dates stay strings (10 or 12 digits, or "")."""

    message_id: str
    sub: int | None
    dlvrd: int | None
    submit_date: str
    done_date: str
    stat: str
    err: str
    text: str


# Fields in Appendix B order; all but id and stat optional. Labels are matched
# case-insensitively, separators are any run of whitespace, `text:` takes the
# rest (it may hold anything, including what looks like labels).
_RECEIPT: Final = re.compile(
    r"\s*id:(?P<id>\S+)"
    r"(?:\s+sub:(?P<sub>\d{1,3}))?"
    r"(?:\s+dlvrd:(?P<dlvrd>\d{1,3}))?"
    r"(?:\s+submit[ _]date:(?P<submit>\d{12}|\d{10}))?"
    r"(?:\s+done[ _]date:(?P<done>\d{12}|\d{10}))?"
    r"\s+stat:(?P<stat>[A-Za-z_]+)"
    r"(?:\s+err:(?P<err>[0-9A-Za-z]+))?"
    r"(?:\s+text:(?P<text>.*))?",
    re.IGNORECASE | re.DOTALL | re.ASCII,
)


def parse_receipt_text(data: bytes) -> ParsedReceipt:
    """Read a receipt's short_message; ReceiptError if it is not one."""
    match = _RECEIPT.match(data.decode("latin-1"))
    if match is None:
        raise ReceiptError("not a delivery receipt")
    sub, dlvrd, text = match["sub"], match["dlvrd"], match["text"]
    return ParsedReceipt(
        message_id=match["id"],
        sub=None if sub is None else int(sub),
        dlvrd=None if dlvrd is None else int(dlvrd),
        submit_date=match["submit"] or "",
        done_date=match["done"] or "",
        stat=match["stat"].upper(),
        err=match["err"] or "",
        # Some SMSCs send the text as a C-string, NUL included.
        text="" if text is None else text.rstrip("\x00"),
    )


# YYMMDDhhmm[ss]; re.ASCII so that only ASCII digits count.
_RECEIPT_DATE: Final = re.compile(r"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?", re.ASCII)


def parse_receipt_date(value: str) -> float | None:
    """Epoch seconds for a receipt date (`YYMMDDhhmm` or `YYMMDDhhmmss`, UTC, 20YY).

    None for an empty value or one that is not a real date and time: a
    receipt with a bad date is still a receipt, only its date is unknown.
    """
    match = _RECEIPT_DATE.fullmatch(value)
    if match is None:
        return None
    yy, mo, dd, hh, mi, ss = match.groups()
    year, month, day = 2000 + int(yy), int(mo), int(dd)
    hour, minute, second = int(hh), int(mi), int(ss or 0)
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def build_receipt(
    *,
    message_id: str,
    source_addr: str,
    source_addr_ton: int,
    source_addr_npi: int,
    destination_addr: str,
    dest_addr_ton: int,
    dest_addr_npi: int,
    stat: str,
    err: int,
    sub: int,
    dlvrd: int,
    submit_date: float,
    done_date: float,
    text: str,
    interface_version: int,
) -> DeliverSm:
    """The receipt deliver_sm; addresses are the receipt's own (already swapped).

    KeyError if `stat` is not one of the eight stat words.
    """
    state = STAT_STATE[stat]
    pdu = DeliverSm(
        source_addr_ton=source_addr_ton,
        source_addr_npi=source_addr_npi,
        source_addr=source_addr,
        dest_addr_ton=dest_addr_ton,
        dest_addr_npi=dest_addr_npi,
        destination_addr=destination_addr,
        esm_class=ESM_CLASS_RECEIPT,
        data_coding=0,
        short_message=format_receipt_text(
            message_id=message_id,
            sub=sub,
            dlvrd=dlvrd,
            submit_date=submit_date,
            done_date=done_date,
            stat=stat,
            err=err,
            text=text,
        ),
    )
    if interface_version > SMPP_33:
        pdu.tlvs = [
            (Tag.RECEIPTED_MESSAGE_ID, message_id.encode("ascii", "replace") + b"\x00"),
            (Tag.MESSAGE_STATE, bytes((state,))),
            (
                Tag.NETWORK_ERROR_CODE,
                bytes((_NETWORK_TYPE_GSM,)) + err.to_bytes(2, "big"),
            ),
        ]
    return pdu
