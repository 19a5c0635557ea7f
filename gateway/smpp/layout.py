"""The wire layout of every PDU as data: mandatory fields in order, and the TLVs.

SMPP 3.4 section 4 gives each PDU's mandatory body; section 5.3 the TLVs.
`codec.py` compiles these tables once, at import; nothing else describes the
layout, so a field is added or resized here and only here.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, NamedTuple

from gateway.smpp.pdu import (
    AlertNotification,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CancelSm,
    CancelSmResp,
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    ReplaceSmResp,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Unbind,
    UnbindResp,
)

# --- wire layout -------------------------------------------------------------
#
# The mandatory body of every PDU as data, in wire order (SMPP 3.4 section 4).
# `codec.py` compiles these tables once at import; nothing else describes the
# layout.


class Kind(IntEnum):
    """How one mandatory field is laid out on the wire."""

    INT = 1
    """Unsigned big-endian integer; `size` is its width in octets."""
    CSTRING = 2
    """C-octet string; `size` is the maximum length including the NUL."""
    TIME = 3
    """C1 or C17 time (SMPP 3.4 section 7.1): empty or exactly 16 characters."""
    SHORT_MESSAGE = 4
    """sm_length (I1) followed by that many octets; `size` is the maximum."""
    DEST_ADDRESSES = 5
    """number_of_dests (I1) then submit_multi dest_address entries (section 4.5.1.1);
    `size` is the most entries allowed, and there must be at least one."""
    UNSUCCESS_SMES = 6
    """no_unsuccess (I1) then unsuccess_sme entries (section 4.5.2); `size` is the
    most entries allowed."""
    ANY_CSTRING = 7
    """A C-octet string read whatever it holds, NUL or not (deliver_sm_resp);
    `size` only limits what is sent."""


class FieldSpec(NamedTuple):
    name: str
    kind: Kind
    size: int
    error: CommandStatus
    """The status to answer with when this field cannot be read."""


_S = CommandStatus

# The status that answers a request whose field of this name cannot be read
# (SMPP-NOTES sections 3 and 8): a C-octet string without its NUL within the
# field's maximum, a time neither empty nor 16 characters, an sm_length over 254
# or past the end of the PDU, a number_of_dests outside 1..254. submit_multi
# dest_address entries use the same names. A field not listed has no status of
# its own in SMPP 3.4 and gets FIELD_ERROR_DEFAULT.
FIELD_ERRORS: Final[dict[str, CommandStatus]] = {
    "system_id": _S.ESME_RINVSYSID,
    "password": _S.ESME_RINVPASWD,
    "system_type": _S.ESME_RINVSYSTYP,
    "service_type": _S.ESME_RINVSERTYP,
    "source_addr": _S.ESME_RINVSRCADR,
    "destination_addr": _S.ESME_RINVDSTADR,
    "dl_name": _S.ESME_RINVDLNAME,
    "message_id": _S.ESME_RINVMSGID,
    "schedule_delivery_time": _S.ESME_RINVSCHED,
    "validity_period": _S.ESME_RINVEXPIRY,
    # alert_notification's destination is the ESME's own address.
    "esme_addr": _S.ESME_RINVDSTADR,
    "short_message": _S.ESME_RINVMSGLEN,
    "dest_addresses": _S.ESME_RINVNUMDESTS,
}

# A body that does not parse, with no field-specific status: the PDU is not as
# long as its fields say. Not ESME_RSYSERR: Kannel retries after 0x08
# (SMPP-NOTES section 3), and a malformed PDU fails the same way every time.
FIELD_ERROR_DEFAULT: Final = _S.ESME_RINVCMDLEN


def field_error(name: str) -> CommandStatus:
    """The status for a field that cannot be read (`FIELD_ERRORS`, else the default)."""
    return FIELD_ERRORS.get(name, FIELD_ERROR_DEFAULT)


def _field(name: str, kind: Kind, size: int) -> FieldSpec:
    return FieldSpec(name, kind, size, field_error(name))


def _ints(*names: str) -> tuple[FieldSpec, ...]:
    # A truncated integer means the body is short: nothing field-specific.
    return tuple(FieldSpec(name, Kind.INT, 1, FIELD_ERROR_DEFAULT) for name in names)


def _cstring(name: str, size: int) -> FieldSpec:
    return _field(name, Kind.CSTRING, size)


# sm_length is one octet, but SMPP 3.4 section 4.4.1 caps short_message at 254.
SM_LENGTH_MAX: Final = 254
# number_of_dests: 1..254 (SMPP 3.4 section 4.5.1).
NUMBER_OF_DESTS_MAX: Final = 254
# C1|C17 (SMPP 3.4 section 7.1): NULL, or 16 characters and the NUL.
TIME_SIZE: Final = 17

_BIND_FIELDS: Final = (
    _cstring("system_id", 16),
    # C9 in SMPP 3.4 section 4.1.1, but passwords of up to 16 characters are
    # common in the wild (SMPP-NOTES section 8): read leniently, validate later.
    _cstring("password", 17),
    _cstring("system_type", 13),
    *_ints("interface_version", "addr_ton", "addr_npi"),
    _cstring("address_range", 41),
)

_SHORT_MESSAGE_FIELDS: Final = (
    _cstring("service_type", 6),
    *_ints("source_addr_ton", "source_addr_npi"),
    _cstring("source_addr", 21),
    *_ints("dest_addr_ton", "dest_addr_npi"),
    _cstring("destination_addr", 21),
    *_ints("esm_class", "protocol_id", "priority_flag"),
    _field("schedule_delivery_time", Kind.TIME, TIME_SIZE),
    _field("validity_period", Kind.TIME, TIME_SIZE),
    *_ints("registered_delivery", "replace_if_present_flag", "data_coding", "sm_default_msg_id"),
    _field("short_message", Kind.SHORT_MESSAGE, SM_LENGTH_MAX),
)

_BIND_RESP_FIELDS: Final = (_cstring("system_id", 16),)
_MESSAGE_ID: Final = _cstring("message_id", 65)

FIELDS: Final[dict[type[Pdu], tuple[FieldSpec, ...]]] = {
    GenericNack: (),
    BindReceiver: _BIND_FIELDS,
    BindTransmitter: _BIND_FIELDS,
    BindTransceiver: _BIND_FIELDS,
    BindReceiverResp: _BIND_RESP_FIELDS,
    BindTransmitterResp: _BIND_RESP_FIELDS,
    BindTransceiverResp: _BIND_RESP_FIELDS,
    Outbind: _BIND_FIELDS[:2],
    Unbind: (),
    UnbindResp: (),
    EnquireLink: (),
    EnquireLinkResp: (),
    CancelSmResp: (),
    ReplaceSmResp: (),
    SubmitSm: _SHORT_MESSAGE_FIELDS,
    DeliverSm: _SHORT_MESSAGE_FIELDS,
    SubmitSmResp: (_MESSAGE_ID,),
    # SMPP 3.4 section 4.6.2 says NULL, but SMSCs and ESMEs put ids, text or
    # nothing at all there; the value is never used (SMPP-NOTES section 2).
    DeliverSmResp: (_field("message_id", Kind.ANY_CSTRING, 65),),
    SubmitMulti: (
        *_SHORT_MESSAGE_FIELDS[:4],
        _field("dest_addresses", Kind.DEST_ADDRESSES, NUMBER_OF_DESTS_MAX),
        *_SHORT_MESSAGE_FIELDS[7:],
    ),
    SubmitMultiResp: (
        _MESSAGE_ID,
        # no_unsuccess is one octet; SMPP 3.4 sets no lower maximum.
        _field("unsuccess_smes", Kind.UNSUCCESS_SMES, 255),
    ),
    DataSm: (
        _cstring("service_type", 6),
        *_ints("source_addr_ton", "source_addr_npi"),
        _cstring("source_addr", 65),
        *_ints("dest_addr_ton", "dest_addr_npi"),
        _cstring("destination_addr", 65),
        *_ints("esm_class", "registered_delivery", "data_coding"),
    ),
    DataSmResp: (_MESSAGE_ID,),
    QuerySm: (
        _MESSAGE_ID,
        *_ints("source_addr_ton", "source_addr_npi"),
        _cstring("source_addr", 21),
    ),
    QuerySmResp: (
        _MESSAGE_ID,
        # A response: the status only labels the ProtocolError, nobody is answered.
        _field("final_date", Kind.TIME, TIME_SIZE),
        *_ints("message_state", "error_code"),
    ),
    CancelSm: (
        _cstring("service_type", 6),
        _MESSAGE_ID,
        *_SHORT_MESSAGE_FIELDS[1:7],
    ),
    ReplaceSm: (
        _MESSAGE_ID,
        *_SHORT_MESSAGE_FIELDS[1:4],
        *_SHORT_MESSAGE_FIELDS[10:12],
        *_ints("registered_delivery", "sm_default_msg_id"),
        _SHORT_MESSAGE_FIELDS[-1],
    ),
    AlertNotification: (
        *_ints("source_addr_ton", "source_addr_npi"),
        _cstring("source_addr", 65),
        *_ints("esme_addr_ton", "esme_addr_npi"),
        _cstring("esme_addr", 65),
    ),
}

# submit_multi dest_address entries (SMPP 3.4 section 4.5.1.1)
DEST_FLAG_SME: Final = 1
DEST_FLAG_DISTRIBUTION_LIST: Final = 2
DEST_ADDR_MAX: Final = 21
DL_NAME_MAX: Final = 21


# --- TLVs ----------------------------------------------------------------------


class TlvKind(IntEnum):
    INT = 1
    CSTRING = 2
    OCTETS = 3


class TlvSpec(NamedTuple):
    """The lengths a known TLV may have (SMPP 3.4 section 5.3.2)."""

    kind: TlvKind
    min_length: int
    max_length: int


def _int_tlv(size: int) -> TlvSpec:
    return TlvSpec(TlvKind.INT, size, size)


_T = Tag
TLV_SPECS: Final[dict[int, TlvSpec]] = {
    _T.DEST_ADDR_SUBUNIT: _int_tlv(1),
    _T.DEST_NETWORK_TYPE: _int_tlv(1),
    _T.DEST_BEARER_TYPE: _int_tlv(1),
    # SMPP 3.4 gives dest_telematics_id 2 octets and source_telematics_id 1;
    # implementations disagree on both, so either width is taken.
    _T.DEST_TELEMATICS_ID: TlvSpec(TlvKind.INT, 1, 2),
    _T.SOURCE_ADDR_SUBUNIT: _int_tlv(1),
    _T.SOURCE_NETWORK_TYPE: _int_tlv(1),
    _T.SOURCE_BEARER_TYPE: _int_tlv(1),
    _T.SOURCE_TELEMATICS_ID: TlvSpec(TlvKind.INT, 1, 2),
    _T.QOS_TIME_TO_LIVE: _int_tlv(4),
    _T.PAYLOAD_TYPE: _int_tlv(1),
    _T.ADDITIONAL_STATUS_INFO_TEXT: TlvSpec(TlvKind.CSTRING, 1, 256),
    _T.RECEIPTED_MESSAGE_ID: TlvSpec(TlvKind.CSTRING, 1, 65),
    _T.MS_MSG_WAIT_FACILITIES: _int_tlv(1),
    _T.PRIVACY_INDICATOR: _int_tlv(1),
    _T.SOURCE_SUBADDRESS: TlvSpec(TlvKind.OCTETS, 2, 23),
    _T.DEST_SUBADDRESS: TlvSpec(TlvKind.OCTETS, 2, 23),
    _T.USER_MESSAGE_REFERENCE: _int_tlv(2),
    _T.USER_RESPONSE_CODE: _int_tlv(1),
    _T.SOURCE_PORT: _int_tlv(2),
    _T.DESTINATION_PORT: _int_tlv(2),
    _T.SAR_MSG_REF_NUM: _int_tlv(2),
    _T.LANGUAGE_INDICATOR: _int_tlv(1),
    _T.SAR_TOTAL_SEGMENTS: _int_tlv(1),
    _T.SAR_SEGMENT_SEQNUM: _int_tlv(1),
    _T.SC_INTERFACE_VERSION: _int_tlv(1),
    _T.CALLBACK_NUM_PRES_IND: _int_tlv(1),
    _T.CALLBACK_NUM_ATAG: TlvSpec(TlvKind.OCTETS, 0, 65),
    _T.NUMBER_OF_MESSAGES: _int_tlv(1),
    _T.CALLBACK_NUM: TlvSpec(TlvKind.OCTETS, 4, 19),
    _T.DPF_RESULT: _int_tlv(1),
    _T.SET_DPF: _int_tlv(1),
    _T.MS_AVAILABILITY_STATUS: _int_tlv(1),
    # network type (3 = GSM) then a 2-octet error code
    _T.NETWORK_ERROR_CODE: TlvSpec(TlvKind.OCTETS, 3, 3),
    # The 2-octet length field is the only limit (SMPP-NOTES section 4).
    _T.MESSAGE_PAYLOAD: TlvSpec(TlvKind.OCTETS, 0, 0xFFFF),
    _T.DELIVERY_FAILURE_REASON: _int_tlv(1),
    _T.MORE_MESSAGES_TO_SEND: _int_tlv(1),
    _T.MESSAGE_STATE: _int_tlv(1),
    _T.USSD_SERVICE_OP: _int_tlv(1),
    _T.DISPLAY_TIME: _int_tlv(1),
    _T.SMS_SIGNAL: _int_tlv(2),
    _T.MS_VALIDITY: _int_tlv(1),
    # Length 0 in SMPP 3.4; SMPP 5.0 adds an optional 1-octet value.
    _T.ALERT_ON_MESSAGE_DELIVERY: TlvSpec(TlvKind.OCTETS, 0, 1),
    _T.ITS_REPLY_TYPE: _int_tlv(1),
    _T.ITS_SESSION_INFO: _int_tlv(2),
}

KNOWN_TAGS: Final[frozenset[int]] = frozenset(TLV_SPECS)


def unknown_tlv_tags(pdu: Pdu) -> list[int]:
    """The tags of `pdu`'s TLVs that are not in KNOWN_TAGS, in wire order.

    Unknown TLVs are kept and ignored, never refused (SMPP 3.4 section 5.3);
    this is for counting them. Most PDUs carry no TLVs, so that case costs a
    single truth test.
    """
    tlvs = pdu.tlvs
    if not tlvs:
        return []
    known = KNOWN_TAGS
    return [tag for tag, _ in tlvs if tag not in known]
