"""LINK's SMPP route as data: a stored message -> submit_sm, LINK's answers -> outcomes.

Responsible for everything the LINK SMPP connector decides without a socket
(seed 004, DESIGN 6): how a message in the Common shape (`Message.fields`)
becomes one or more submit_sm PDUs (`submit_pdus`), what a submit_sm_resp
status means for the message (`outcome_for_status`), and how a deliver_sm from
LINK becomes a receipt (`receipt_from_deliver_sm`) or an MO (`mo_from_deliver_sm`).
Nothing here reads a clock or touches the network; times are passed in.

What always holds:
- Addresses follow seed 004's TON list: ALPHANUMERIC -> ton 5 npi 0,
  SHORTNUMBER -> ton 3 npi 0, MSISDN -> ton 1 npi 1 without the `+`; a
  destination `+digits` -> ton 1 npi 1. A source of an unknown kind goes as
  ton 0 npi 0, which LINK auto-detects.
- TEXT goes as GSM 03.38 (data_coding 0) when every character allows it, else
  UCS-2 (8). Text longer than one SMS is split here into 8-bit-reference
  concatenation segments (esm_class 0x40); no segment ends inside a GSM escape
  pair or a UTF-16 surrogate pair, and every segment fits one SMS with its UDH.
- A message the ESME segmented (userDataHeader) goes as one PDU: UDH + body.
- registered_delivery is always 1: the gateway needs every receipt for its own
  state, whatever the ESME asked for.
- Premium fields (tariff, currency, productCategory, ...) and other
  customParameters have no place in SMPP 3.4 and LINK's endpoint documents no
  vendor TLV for them: they are not sent. Accounts that need premium SMS must
  use the Common route.
- `submit_pdus` and `mo_from_deliver_sm` raise `MappingError` (with the
  command_status that describes the problem) and nothing else;
  `receipt_from_deliver_sm` raises `ReceiptError` and nothing else.
- Every table is a literal, read-only mapping.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from gateway.connectors.base import ACCEPTED, REJECTED, TEMPORARY
from gateway.ids import upstream_id_forms
from gateway.inbound import IncomingMo, LinkReceipt
from gateway.mapping import Outcome, receipt_err
from gateway.smpp.codec import encode
from gateway.smpp.pdu import (
    ESM_CLASS_RECEIPT,
    ESM_CLASS_TYPE_MASK,
    ESM_CLASS_UDHI,
    SM_LENGTH_MAX,
    CommandStatus,
    DeliverSm,
    MessageState,
    SubmitSm,
    Tag,
)
from gateway.smpp.receipts import (
    STAT_STATE,
    ReceiptError,
    parse_receipt_date,
    parse_receipt_text,
)
from gateway.smpp.text import TextError, decode_content, encode_for_esme
from gateway.smpp.times import format_absolute

if TYPE_CHECKING:
    from gateway.store.base import Message

__all__ = [
    "DEST_TON_NPI",
    "FLASH_CODING",
    "PLAIN_CODING",
    "REJECT_ERR",
    "SOURCE_TON_NPI",
    "STAT_WORDS",
    "TEMPORARY_STATUSES",
    "THROTTLE_STATUSES",
    "MappingError",
    "format_relative",
    "id_forms",
    "is_receipt",
    "mo_from_deliver_sm",
    "outcome_for_status",
    "receipt_from_deliver_sm",
    "submit_pdus",
]

_S = CommandStatus


class MappingError(ValueError):
    """A message LINK's SMPP endpoint cannot carry; `status` names the reason."""

    def __init__(self, message: str, status: int = _S.ESME_RSUBMITFAIL) -> None:
        super().__init__(message)
        self.status = status


# --- addresses (seed 004 "Originator Type of Number") -------------------------

SOURCE_TON_NPI: Final[Mapping[str, tuple[int, int]]] = MappingProxyType(
    {
        "ALPHANUMERIC": (5, 0),
        "SHORTNUMBER": (3, 0),
        "MSISDN": (1, 1),
    }
)
# Unknown kind: ton 0, "TON is automatically detected if 0 is submitted".
_AUTO_TON_NPI: Final = (0, 0)
DEST_TON_NPI: Final = (1, 1)

# --- content --------------------------------------------------------------------

# data_coding by alphabet; the flash forms are GSM 03.38 general group 0001xxxx
# with message class 0 (bits 3-2 the alphabet, bits 1-0 the class).
PLAIN_CODING: Final[Mapping[str, int]] = MappingProxyType(
    {"gsm": 0x00, "ucs2": 0x08, "binary": 0x04}
)
FLASH_CODING: Final[Mapping[str, int]] = MappingProxyType(
    {"gsm": 0x10, "ucs2": 0x18, "binary": 0x14}
)

# (octets in a lone SMS, octets per segment after the 6-octet concat UDH).
# GSM counts unpacked septets: 160, and 153 after the UDH's 7 septets.
_SIZES: Final[Mapping[str, tuple[int, int]]] = MappingProxyType(
    {"gsm": (160, 153), "ucs2": (140, 134), "binary": (140, 134)}
)
_MAX_SEGMENTS: Final = 255
_ESC: Final = 0x1B
_REGISTERED_DELIVERY: Final = 0x01
# A relative validity_period holds at most 99 days in its DD field that we use.
_MAX_RELATIVE_S: Final = 99 * 86400 + 86399


def format_relative(seconds: int) -> str:
    """A relative SMPP time, `000DDhhmmss000R` (SMPP 3.4 section 7.1.1.2).

    Years and months are left at zero (their length is the SMSC's guess);
    the value is clamped to 1 second .. 99 days 23:59:59.
    """
    seconds = min(max(seconds, 1), _MAX_RELATIVE_S)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"


def _source(fields: Mapping[str, object]) -> tuple[str, int, int]:
    source = str(fields.get("source") or "")
    if not source:
        raise MappingError("no source address", _S.ESME_RINVSRCADR)
    kind = fields.get("sourceTON")
    ton, npi = SOURCE_TON_NPI.get(kind, _AUTO_TON_NPI) if isinstance(kind, str) else _AUTO_TON_NPI
    if kind == "MSISDN":
        source = source.removeprefix("+")
    # source_addr is a C21 of single octets.
    if len(source) > 20 or not source.isascii():
        raise MappingError("source address not 1-20 ASCII characters", _S.ESME_RINVSRCADR)
    return source, ton, npi


def _destination(fields: Mapping[str, object]) -> str:
    destination = str(fields.get("destination") or "").removeprefix("+")
    if not (destination.isascii() and destination.isdigit() and len(destination) <= 20):
        raise MappingError("destination is not +digits", _S.ESME_RINVDSTADR)
    return destination


def _encode(text: str, alphabet: str) -> bytes:
    if alphabet == "gsm":
        coding, octets = encode_for_esme(text)
        if coding != 0:
            raise MappingError("text is not GSM 03.38", _S.ESME_RSUBMITFAIL)
        return octets
    return text.encode("utf-16-be", "surrogatepass")


def _split(octets: bytes, alphabet: str, ref: int) -> list[tuple[bytes, bytes]]:
    """(udh, body) parts; one part with an empty UDH when the octets fit one SMS."""
    single, part = _SIZES[alphabet]
    if len(octets) <= single:
        return [(b"", octets)]
    chunks: list[bytes] = []
    pos = 0
    while pos < len(octets):
        end = min(pos + part, len(octets))
        if end < len(octets):
            # A GSM escape and its code, or a UTF-16 surrogate pair, stay together:
            # a handset shows garbage where one half ends a segment.
            # In encoded text 0x1B is only ever an escape prefix (no extension
            # code is 0x1B), so one ending a segment always opens a pair.
            if alphabet == "gsm" and octets[end - 1] == _ESC:
                end -= 1
            elif alphabet == "ucs2" and 0xD8 <= octets[end - 2] <= 0xDB:
                end -= 2
        chunks.append(octets[pos:end])
        pos = end
    if len(chunks) > _MAX_SEGMENTS:
        raise MappingError("text needs more than 255 segments", _S.ESME_RINVMSGLEN)
    total = len(chunks)
    ref8 = ref & 0xFF
    return [
        (bytes((0x05, 0x00, 0x03, ref8, total, seq)), chunk)
        for seq, chunk in enumerate(chunks, start=1)
    ]


def _schedule(custom: Mapping[str, object], now: float | None) -> str:
    value = custom.get("scheduledTime")
    if not value:
        return ""
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise MappingError(f"scheduledTime {value!r} is not RFC 3339", _S.ESME_RINVSCHED) from None
    if when.tzinfo is None:
        raise MappingError(f"scheduledTime {value!r} has no time zone", _S.ESME_RINVSCHED)
    epoch = when.timestamp()
    if now is not None and epoch <= now:
        return ""  # already due: send now
    return format_absolute(epoch)


def submit_pdus(message: Message, ref: int, *, now: float | None = None) -> list[SubmitSm]:
    """The submit_sm PDUs for one message, in segment order.

    `ref` is the 8-bit concatenation reference for text this function splits;
    the same message and ref always give the same segments. `now` makes the
    validity the time the message has left (`expires_at`); without it the
    validity is the message's full `validity_s`.
    """
    fields = message.fields
    source, source_ton, source_npi = _source(fields)
    destination = _destination(fields)
    custom_raw = fields.get("customParameters")
    custom: Mapping[str, object] = custom_raw if isinstance(custom_raw, Mapping) else {}
    flash = str(custom.get("flash.sms", "")).lower() == "true"
    dcs = fields.get("dcs", "TEXT")
    user_data = fields.get("userData")
    user_data = "" if user_data is None else str(user_data)
    udh_hex = fields.get("userDataHeader")

    udh: bytes | None = None
    try:
        if udh_hex:
            udh = bytes.fromhex(str(udh_hex))
        if dcs == "BINARY":
            alphabet = "binary"
            body = bytes.fromhex(user_data)
        elif dcs in ("GSM", "UCS2"):
            alphabet = "gsm" if dcs == "GSM" else "ucs2"
            body = _encode(user_data, alphabet)
        elif dcs == "TEXT":
            coding, body = encode_for_esme(user_data)
            alphabet = "gsm" if coding == 0 else "ucs2"
        else:
            raise MappingError(f"dcs {dcs!r} unknown", _S.ESME_RSUBMITFAIL)
    except ValueError as exc:  # bad hex, TextError
        if isinstance(exc, MappingError):
            raise
        status = exc.status if isinstance(exc, TextError) else _S.ESME_RSUBMITFAIL
        raise MappingError(str(exc), status) from None

    parts = [(udh, body)] if udh else _split(body, alphabet, ref)
    coding = (FLASH_CODING if flash else PLAIN_CODING)[alphabet]

    if now is not None:
        validity = format_relative(math.ceil(message.expires_at - now))
    elif message.validity_s > 0:
        validity = format_relative(message.validity_s)
    else:
        validity = ""
    schedule = _schedule(custom, now)
    priority = 1 if message.priority == "HIGH" else 0

    pdus = [
        SubmitSm(
            source_addr_ton=source_ton,
            source_addr_npi=source_npi,
            source_addr=source,
            dest_addr_ton=DEST_TON_NPI[0],
            dest_addr_npi=DEST_TON_NPI[1],
            destination_addr=destination,
            esm_class=ESM_CLASS_UDHI if part_udh else 0,
            priority_flag=priority,
            schedule_delivery_time=schedule,
            validity_period=validity,
            registered_delivery=_REGISTERED_DELIVERY,
            data_coding=coding,
            short_message=(part_udh or b"") + part_body,
        )
        for part_udh, part_body in parts
    ]
    for pdu in pdus:
        if len(pdu.short_message) > SM_LENGTH_MAX:
            raise MappingError("segment longer than short_message allows", _S.ESME_RINVMSGLEN)
        try:
            # What the session cannot encode would fail later, on the wire side.
            encode(pdu)
        except ValueError as exc:
            raise MappingError(f"not encodable as submit_sm: {exc}", _S.ESME_RSUBMITFAIL) from None
    return pdus


# --- submit_sm_resp status -> outcome ------------------------------------------------

# LINK is busy: the message waits in the connector and sending pauses.
THROTTLE_STATUSES: Final = frozenset({_S.ESME_RTHROTTLED, _S.ESME_RMSGQFUL})
# Worth another attempt later (the dispatcher's retry): LINK's own trouble, or
# a bind state LINK and we disagree about (fixed by binding again).
TEMPORARY_STATUSES: Final = THROTTLE_STATUSES | frozenset(
    {_S.ESME_RSYSERR, _S.ESME_RX_T_APPN, _S.ESME_RINVBNDSTS}
)

# Permanent refusals: the err of LINK's own table (seed 004 "Response Codes")
# that says the same, for the REJECTD receipt the ESME gets.
REJECT_ERR: Final[Mapping[int, int]] = MappingProxyType(
    {
        _S.ESME_RINVMSGLEN: 924,  # Message length invalid
        _S.ESME_RINVCMDLEN: 902,  # Syntax error
        _S.ESME_RINVCMDID: 903,  # Operation not supported by system
        _S.ESME_RINVPRTFLG: 912,  # Priority call not allowed
        _S.ESME_RINVREGDLVFLG: 902,
        _S.ESME_RINVSRCADR: 939,  # Invalid source address
        _S.ESME_RINVDSTADR: 206,  # Invalid destination address
        _S.ESME_RINVMSGID: 902,
        _S.ESME_RBINDFAIL: 236,  # Configuration problem: our account
        _S.ESME_RINVPASWD: 236,
        _S.ESME_RINVSYSID: 236,
        _S.ESME_RINVSERTYP: 902,
        _S.ESME_RINVNUMDESTS: 942,
        _S.ESME_RINVDLNAME: 942,
        _S.ESME_RINVDESTFLAG: 942,
        _S.ESME_RINVSUBREP: 902,
        _S.ESME_RINVESMCLASS: 941,  # Invalid esm_class field data
        _S.ESME_RCNTSUBDL: 942,
        _S.ESME_RSUBMITFAIL: 942,  # submit_sm or submit_multi failed
        _S.ESME_RINVSRCTON: 943,  # Invalid source address TON
        _S.ESME_RINVSRCNPI: 944,  # Invalid source address NPI
        _S.ESME_RINVDSTTON: 945,  # Invalid destination address TON
        _S.ESME_RINVDSTNPI: 946,  # Invalid destination address NPI
        _S.ESME_RINVSYSTYP: 236,
        _S.ESME_RINVREPFLAG: 902,
        _S.ESME_RINVNUMMSGS: 902,
        _S.ESME_RINVSCHED: 947,  # Invalid schedule delivery time
        _S.ESME_RINVEXPIRY: 948,  # Invalid message validity period
        _S.ESME_RINVDFTMSGID: 925,  # Requested standard text not valid
        _S.ESME_RX_P_APPN: 904,  # Operation not allowed
        _S.ESME_RX_R_APPN: 225,  # SMS was rejected
        _S.ESME_RINVOPTPARSTREAM: 902,
        _S.ESME_ROPTPARNOTALLWD: 903,
        _S.ESME_RINVPARLEN: 902,
        _S.ESME_RMISSINGOPTPARAM: 238,  # Missing parameters
        _S.ESME_RINVOPTPARAMVAL: 127,  # Unexpected data value
        _S.ESME_RDELIVERYFAILURE: 108,  # Delivery fail
        _S.ESME_RUNKNOWNERR: 255,  # Unknown error
        _S.ESME_RINVDCS: 252,  # Message encoding wrong
    }
)
_UNKNOWN_ERR: Final = 255


def outcome_for_status(command_status: int) -> tuple[str, Outcome | None]:
    """(ACCEPTED | TEMPORARY | REJECTED, the REJECTD receipt outcome for REJECTED).

    A status not in the tables is a permanent REJECTD/255: retrying what LINK
    refused for a reason we cannot read would only refuse it again.
    """
    if command_status == _S.ESME_ROK:
        return ACCEPTED, None
    if command_status in TEMPORARY_STATUSES:
        return TEMPORARY, None
    err = REJECT_ERR.get(command_status, _UNKNOWN_ERR)
    return REJECTED, Outcome("REJECTD", err, True, MessageState.REJECTED)


# --- deliver_sm from LINK -------------------------------------------------------

# esm_class message types that carry a receipt: SMSC delivery receipt and
# intermediate delivery notification (SMPP 3.4 section 5.2.12).
_INTERMEDIATE: Final = 0x20

# Stat words as LINK and other SMSCs write them -> the eight of SMPP 3.4
# Appendix B. A word not here becomes UNKNOWN: the message still gets a final
# receipt instead of waiting for one that will never be readable.
STAT_WORDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        **{word: word for word in STAT_STATE},
        "DELIVERED": "DELIVRD",
        "UNDELIVERABLE": "UNDELIV",
        "UNDELIVERED": "UNDELIV",
        "ACCEPTED": "ACCEPTD",
        "REJECTED": "REJECTD",
        "FAILED": "UNDELIV",
    }
)
_STATE_STAT: Final[Mapping[int, str]] = MappingProxyType(
    {int(state): stat for stat, state in STAT_STATE.items()}
)
_SUCCESS_STATS: Final = frozenset({"DELIVRD", "ACCEPTD", "ENROUTE"})


def is_receipt(esm_class: int) -> bool:
    """Whether a deliver_sm with this esm_class is a delivery receipt, not an MO."""
    return bool(esm_class & ESM_CLASS_RECEIPT) or esm_class & ESM_CLASS_TYPE_MASK == _INTERMEDIATE


def _content(pdu: DeliverSm) -> bytes:
    if pdu.short_message:
        return pdu.short_message
    return pdu.tlv(Tag.MESSAGE_PAYLOAD) or b""


def _tlv_text(pdu: DeliverSm, tag: int) -> str:
    value = pdu.tlv(tag)
    if value is None:
        return ""
    return value.split(b"\x00", 1)[0].decode("latin-1").strip()


def receipt_from_deliver_sm(pdu: DeliverSm) -> LinkReceipt | None:
    """The receipt in a deliver_sm; None when esm_class says it is not a receipt.

    The id comes from the receipted_message_id TLV when LINK sends one, else
    from the text; stat and err from the text, else from the message_state and
    network_error_code TLVs. ReceiptError when it is a receipt without a
    readable id and stat.
    """
    if not is_receipt(pdu.esm_class):
        return None
    try:
        parsed = parse_receipt_text(_content(pdu))
    except ReceiptError:
        parsed = None
    upstream_id = _tlv_text(pdu, Tag.RECEIPTED_MESSAGE_ID) or (parsed.message_id if parsed else "")
    if not upstream_id:
        raise ReceiptError("receipt without a message id")

    stat: str | None = None
    if parsed is not None:
        stat = STAT_WORDS.get(parsed.stat, "UNKNOWN")
    else:
        state = pdu.tlv_int(Tag.MESSAGE_STATE)
        stat = _STATE_STAT.get(state) if state is not None else None
    if stat is None:
        raise ReceiptError("receipt without a readable stat")

    err: int | None = None
    if parsed is not None and parsed.err.isascii() and parsed.err.isdigit():
        err = int(parsed.err)
    if err is None:
        network = pdu.tlv(Tag.NETWORK_ERROR_CODE)
        if network is not None and len(network) == 3:
            err = int.from_bytes(network[1:], "big")
    if err is None:
        err = 0 if stat in _SUCCESS_STATS else _UNKNOWN_ERR
    done_at = parse_receipt_date(parsed.done_date) if parsed is not None else None
    # An err that does not fit three digits is not clamped into LINK's real 999.
    return LinkReceipt(upstream_id=upstream_id, stat=stat, err=receipt_err(err), done_at=done_at)


def mo_from_deliver_sm(pdu: DeliverSm, connector: str, now: float) -> IncomingMo:
    """An MO deliver_sm as the gateway routes it; MappingError if it cannot be decoded.

    LINK's deliver_sm carries no id of the MO itself: unless a
    receipted_message_id TLV names one, the id is made from the connection's
    sequence number, the arrival time and the content, so that two identical
    messages from one sender are never taken for one.
    """
    payload = _content(pdu)
    try:
        content = decode_content(
            pdu.data_coding, payload, udhi=bool(pdu.esm_class & ESM_CLASS_UDHI)
        )
    except TextError as exc:
        raise MappingError(str(exc), exc.status) from None
    upstream_id = _tlv_text(pdu, Tag.RECEIPTED_MESSAGE_ID)
    if not upstream_id:
        digest = hashlib.sha256()
        for part in (
            pdu.sequence.to_bytes(4, "big"),
            repr(now).encode(),
            pdu.source_addr.encode("latin-1"),
            pdu.destination_addr.encode("latin-1"),
            bytes((pdu.esm_class, pdu.data_coding)),
            payload,
        ):
            digest.update(len(part).to_bytes(4, "big") + part)
        upstream_id = f"{connector}-{digest.hexdigest()[:20]}"
    binary = bytes.fromhex(content.hex) if content.hex is not None else None
    return IncomingMo(
        upstream_id=upstream_id,
        source=pdu.source_addr,
        destination=pdu.destination_addr,
        text=content.text,
        binary=binary,
        udh=content.udh,
        source_ton=pdu.source_addr_ton,
        dest_ton=pdu.dest_addr_ton,
        connector=connector,
        received_at=now,
    )


# --- ids --------------------------------------------------------------------------


def id_forms(link_id: str) -> tuple[str, ...]:
    """The canonical forms under which LINK may write `link_id` back to us.

    Lower case without leading zeros; an all-hex id also as its decimal value,
    an all-decimal id also as its hex. A receipt id and a submit_sm_resp id
    are the same message when their forms share one. The store matches with
    the same function (gateway.ids.upstream_id_forms), so there is one rule.
    """
    return upstream_id_forms(link_id)
