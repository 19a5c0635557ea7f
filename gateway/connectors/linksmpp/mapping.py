"""LINK's SMPP route as data: a Message -> submit_sm, LINK's answers -> outcomes.

Responsible for everything the LINK SMPP connector decides without a socket
(seed 004, DESIGN 6): how a `Message` becomes one or more submit_sm PDUs
(`submit_pdus`), what a submit_sm_resp status means for the message
(`outcome_for_status`, `esme_status`), and how a deliver_sm from LINK becomes
a `Report` (`report_from_deliver_sm`) or an MO (`mo_from_deliver_sm`).
Nothing here reads a clock or touches the network; times are passed in.

What always holds:
- Addresses follow seed 004's TON list (gateway.addresses.smpp_address): a
  sender name ton 5 npi 0, a short code ton 3 npi 0, an MSISDN ton 1 npi 1
  without the `+`; the recipient ton 1 npi 1.
- Text goes as GSM 03.38 (data_coding 0) when every character allows it, else
  UCS-2 (8). Text longer than one SMS is split here, by the gateway's one
  segmenter (gateway.smpp.text.split_octets), into 8-bit-reference
  concatenation segments (esm_class 0x40).
- A message the ESME segmented (a UDH) goes as one PDU: UDH + body, in the
  alphabet the ESME's data_coding said.
- registered_delivery is always 1: the gateway needs every receipt for its own
  state, whatever the ESME asked for.
- Premium fields and customParameters have no place in SMPP 3.4 and LINK's
  endpoint documents no vendor TLV for them: they are not sent. Accounts that
  need premium SMS must use the Common route.
- `submit_pdus` and `mo_from_deliver_sm` raise `MappingError` (with the
  command_status that describes the problem) and nothing else;
  `report_from_deliver_sm` raises `ReceiptError` and nothing else.
- Every table is a literal, read-only mapping.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from gateway.addresses import NPI_ISDN, TON_INTERNATIONAL, smpp_address
from gateway.ids import upstream_id_forms
from gateway.records import Alphabet, IncomingMo, Message, Outcome, OutcomeKind, Report
from gateway.smpp.codec import encode
from gateway.smpp.layout import SM_LENGTH_MAX
from gateway.smpp.pdu import (
    ESM_CLASS_RECEIPT,
    ESM_CLASS_TYPE_MASK,
    ESM_CLASS_UDHI,
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
    receipt_err,
)
from gateway.smpp.text import TextError, decode_content, encode_for_esme, split_octets
from gateway.smpp.times import format_absolute, format_relative

__all__ = [
    "FLASH_CODING",
    "PLAIN_CODING",
    "REJECT_ERR",
    "STAT_WORDS",
    "TEMPORARY_STATUSES",
    "THROTTLE_STATUSES",
    "MappingError",
    "esme_status",
    "id_forms",
    "is_receipt",
    "mo_from_deliver_sm",
    "outcome_for_status",
    "report_from_deliver_sm",
    "submit_pdus",
]

_S = CommandStatus


class MappingError(ValueError):
    """A message LINK's SMPP endpoint cannot carry; `status` names the reason."""

    def __init__(self, message: str, status: int = _S.ESME_RSUBMITFAIL) -> None:
        super().__init__(message)
        self.status = status


# --- content --------------------------------------------------------------------

# data_coding by alphabet; the flash forms are GSM 03.38 general group 0001xxxx
# with message class 0 (bits 3-2 the alphabet, bits 1-0 the class).
PLAIN_CODING: Final[Mapping[Alphabet, int]] = MappingProxyType(
    {Alphabet.GSM: 0x00, Alphabet.UCS2: 0x08, Alphabet.BINARY: 0x04}
)
FLASH_CODING: Final[Mapping[Alphabet, int]] = MappingProxyType(
    {Alphabet.GSM: 0x10, Alphabet.UCS2: 0x18, Alphabet.BINARY: 0x14}
)
_SEGMENTER_KIND: Final[Mapping[Alphabet, str]] = MappingProxyType(
    {Alphabet.GSM: "gsm", Alphabet.UCS2: "ucs2", Alphabet.BINARY: "binary"}
)
_REGISTERED_DELIVERY: Final = 0x01


def _octets(message: Message) -> tuple[Alphabet, bytes]:
    """The body's alphabet and encoded octets (without any UDH)."""
    body = message.body
    if body.data is not None:
        return Alphabet.BINARY, body.data
    text = body.text or ""
    if body.alphabet is Alphabet.UCS2:
        return Alphabet.UCS2, text.encode("utf-16-be", "surrogatepass")
    coding, octets = encode_for_esme(text)
    if body.alphabet is Alphabet.GSM and coding != 0:
        raise MappingError("text is not GSM 03.38", _S.ESME_RSUBMITFAIL)
    return (Alphabet.GSM if coding == 0 else Alphabet.UCS2), octets


def submit_pdus(message: Message, ref: int, *, now: float) -> list[SubmitSm]:
    """The submit_sm PDUs for one message, in segment order.

    `ref` is the 8-bit concatenation reference for text this function splits;
    the same message, ref and time always give the same segments. The validity
    is the time the message has left at `now`; a schedule still ahead goes as
    LINK's schedule_delivery_time.
    """
    source = smpp_address(message.sender)
    if not source.addr or len(source.addr) > 20 or not source.addr.isascii():
        # source_addr is a C21 of single octets.
        raise MappingError("source address not 1-20 ASCII characters", _S.ESME_RINVSRCADR)
    destination = message.recipient.removeprefix("+")
    alphabet, octets = _octets(message)
    udh = message.body.udh
    try:
        parts = [(udh, octets)] if udh else split_octets(octets, _SEGMENTER_KIND[alphabet], ref)
    except TextError as exc:
        raise MappingError(str(exc), exc.status) from None
    coding = (FLASH_CODING if message.body.flash else PLAIN_CODING)[alphabet]
    validity = format_relative(math.ceil(message.expires_at - now))
    due = message.scheduled_at
    schedule = format_absolute(due) if due is not None and due > now else ""
    priority = 1 if message.priority >= 1 else 0

    pdus = [
        SubmitSm(
            source_addr_ton=source.ton,
            source_addr_npi=source.npi,
            source_addr=source.addr,
            dest_addr_ton=TON_INTERNATIONAL,
            dest_addr_npi=NPI_ISDN,
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


def outcome_for_status(command_status: int) -> tuple[OutcomeKind, Outcome | None]:
    """(what the status means for the message, the REJECTD receipt outcome for REJECTED).

    A status not in the tables is a permanent REJECTD/255: retrying what LINK
    refused for a reason we cannot read would only refuse it again.
    """
    if command_status == _S.ESME_ROK:
        return OutcomeKind.ACCEPTED, None
    if command_status in TEMPORARY_STATUSES:
        return OutcomeKind.TEMPORARY, None
    err = REJECT_ERR.get(command_status, _UNKNOWN_ERR)
    return OutcomeKind.REJECTED, Outcome("REJECTD", err, True, MessageState.REJECTED)


def esme_status(command_status: int) -> int:
    """The submit_sm_resp status an `accept = "upstream"` ESME gets for LINK's.

    LINK answered in SMPP already: its status says what is wrong in the ESME's
    own terms, so it passes through. Our side of the link (a bind state LINK
    and we disagree about) is not the ESME's business: RSYSERR, which ESMEs
    retry.
    """
    if command_status == _S.ESME_RINVBNDSTS:
        return _S.ESME_RSYSERR
    return command_status


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


def report_from_deliver_sm(pdu: DeliverSm) -> Report | None:
    """The receipt in a deliver_sm as a Report; None when esm_class says it is not
    a receipt. LINK's stat and err pass through (a stat word not in SMPP 3.4's
    Appendix B reads as UNKNOWN); ENROUTE is LINK's only state on the way, every
    other one is final. The Report matches LINK's id in any of its forms.

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
    outcome = Outcome(stat, receipt_err(err), stat != "ENROUTE", STAT_STATE[stat])
    return Report(upstream_id, outcome, reported_at=done_at, any_form=True)


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
