"""SMPP 3.4 PDU types: command ids, statuses, TLV tags and one class per PDU.

The wire layout of each class (its mandatory fields in order, the TLV table)
is data in `layout.py`; `codec.py` reads it from there and nothing else.

What always holds:
- C-octet strings are `str` (decoded as Latin-1, so any byte survives a round
  trip); `short_message` and TLV values are `bytes`.
- `tlvs` keeps every TLV in wire order, unknown tags included, as raw bytes.
- `sequence` and `status` are opaque 32-bit values owned by the session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import ClassVar, Final

RESPONSE_BIT: Final = 0x80000000
HEADER_LENGTH: Final = 16


class CommandId(IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


class CommandStatus(IntEnum):
    """Every status an SMPP 3.4 peer understands (SMPP-NOTES section 3).

    ESME_RINVDCS is SMPP 5.0 and may only be sent to ESMEs bound as 5.0.
    """

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RINVPRTFLG = 0x06
    ESME_RINVREGDLVFLG = 0x07
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RCANCELFAIL = 0x11
    ESME_RREPLACEFAIL = 0x13
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVNUMDESTS = 0x33
    ESME_RINVDLNAME = 0x34
    ESME_RINVDESTFLAG = 0x40
    ESME_RINVSUBREP = 0x42
    ESME_RINVESMCLASS = 0x43
    ESME_RCNTSUBDL = 0x44
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSRCTON = 0x48
    ESME_RINVSRCNPI = 0x49
    ESME_RINVDSTTON = 0x50
    ESME_RINVDSTNPI = 0x51
    ESME_RINVSYSTYP = 0x53
    ESME_RINVREPFLAG = 0x54
    ESME_RINVNUMMSGS = 0x55
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVDFTMSGID = 0x63
    ESME_RX_T_APPN = 0x64
    ESME_RX_P_APPN = 0x65
    ESME_RX_R_APPN = 0x66
    ESME_RQUERYFAIL = 0x67
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_ROPTPARNOTALLWD = 0xC1
    ESME_RINVPARLEN = 0xC2
    ESME_RMISSINGOPTPARAM = 0xC3
    ESME_RINVOPTPARAMVAL = 0xC4
    ESME_RDELIVERYFAILURE = 0xFE
    ESME_RUNKNOWNERR = 0xFF
    ESME_RINVDCS = 0x104


class Tag(IntEnum):
    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383


class MessageState(IntEnum):
    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


# esm_class bits (SMPP 3.4 section 5.2.12)
ESM_CLASS_RECEIPT: Final = 0x04
ESM_CLASS_UDHI: Final = 0x40
ESM_CLASS_TYPE_MASK: Final = 0x3C

# interface_version at or below which a peer is served as SMPP 3.3 (no TLVs)
SMPP_33: Final = 0x33
SMPP_34: Final = 0x34


@dataclass(slots=True, kw_only=True)
class Pdu:
    """Header fields and TLVs shared by every PDU."""

    command_id: ClassVar[CommandId]
    sequence: int = 0
    status: int = 0
    tlvs: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    def tlv(self, tag: int) -> bytes | None:
        """The raw value of the first TLV with `tag`, or None."""
        for t, value in self.tlvs:
            if t == tag:
                return value
        return None

    def tlv_int(self, tag: int) -> int | None:
        value = self.tlv(tag)
        return None if value is None else int.from_bytes(value, "big")


# --- binds ---------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class _Bind(Pdu):
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    interface_version: int = SMPP_34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(slots=True, kw_only=True)
class BindReceiver(_Bind):
    command_id = CommandId.BIND_RECEIVER


@dataclass(slots=True, kw_only=True)
class BindTransmitter(_Bind):
    command_id = CommandId.BIND_TRANSMITTER


@dataclass(slots=True, kw_only=True)
class BindTransceiver(_Bind):
    command_id = CommandId.BIND_TRANSCEIVER


@dataclass(slots=True, kw_only=True)
class _BindResp(Pdu):
    system_id: str = ""


@dataclass(slots=True, kw_only=True)
class BindReceiverResp(_BindResp):
    command_id = CommandId.BIND_RECEIVER_RESP


@dataclass(slots=True, kw_only=True)
class BindTransmitterResp(_BindResp):
    command_id = CommandId.BIND_TRANSMITTER_RESP


@dataclass(slots=True, kw_only=True)
class BindTransceiverResp(_BindResp):
    command_id = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(slots=True, kw_only=True)
class Outbind(Pdu):
    command_id = CommandId.OUTBIND
    system_id: str = ""
    password: str = ""


# --- header-only PDUs ------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class GenericNack(Pdu):
    command_id = CommandId.GENERIC_NACK


@dataclass(slots=True, kw_only=True)
class Unbind(Pdu):
    command_id = CommandId.UNBIND


@dataclass(slots=True, kw_only=True)
class UnbindResp(Pdu):
    command_id = CommandId.UNBIND_RESP


@dataclass(slots=True, kw_only=True)
class EnquireLink(Pdu):
    command_id = CommandId.ENQUIRE_LINK


@dataclass(slots=True, kw_only=True)
class EnquireLinkResp(Pdu):
    command_id = CommandId.ENQUIRE_LINK_RESP


@dataclass(slots=True, kw_only=True)
class CancelSmResp(Pdu):
    command_id = CommandId.CANCEL_SM_RESP


@dataclass(slots=True, kw_only=True)
class ReplaceSmResp(Pdu):
    command_id = CommandId.REPLACE_SM_RESP


# --- messages --------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class _ShortMessage(Pdu):
    """submit_sm and deliver_sm share their body (SMPP 3.4 sections 4.4.1, 4.6.1)."""

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(slots=True, kw_only=True)
class SubmitSm(_ShortMessage):
    command_id = CommandId.SUBMIT_SM


@dataclass(slots=True, kw_only=True)
class DeliverSm(_ShortMessage):
    command_id = CommandId.DELIVER_SM


@dataclass(slots=True, kw_only=True)
class SubmitSmResp(Pdu):
    command_id = CommandId.SUBMIT_SM_RESP
    message_id: str = ""


@dataclass(slots=True, kw_only=True)
class DeliverSmResp(Pdu):
    command_id = CommandId.DELIVER_SM_RESP
    message_id: str = ""


@dataclass(slots=True, kw_only=True)
class DestAddress:
    """One submit_multi destination: an SME address (flag 1) or a list name (flag 2)."""

    dest_flag: int = 1
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    dl_name: str = ""


@dataclass(slots=True, kw_only=True)
class UnsuccessSme:
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    error_status_code: int = 0


@dataclass(slots=True, kw_only=True)
class SubmitMulti(Pdu):
    command_id = CommandId.SUBMIT_MULTI
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addresses: list[DestAddress] = field(default_factory=list)
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(slots=True, kw_only=True)
class SubmitMultiResp(Pdu):
    command_id = CommandId.SUBMIT_MULTI_RESP
    message_id: str = ""
    unsuccess_smes: list[UnsuccessSme] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class DataSm(Pdu):
    command_id = CommandId.DATA_SM
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0


@dataclass(slots=True, kw_only=True)
class DataSmResp(Pdu):
    command_id = CommandId.DATA_SM_RESP
    message_id: str = ""


@dataclass(slots=True, kw_only=True)
class QuerySm(Pdu):
    command_id = CommandId.QUERY_SM
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""


@dataclass(slots=True, kw_only=True)
class QuerySmResp(Pdu):
    command_id = CommandId.QUERY_SM_RESP
    message_id: str = ""
    final_date: str = ""
    message_state: int = 0
    error_code: int = 0


@dataclass(slots=True, kw_only=True)
class CancelSm(Pdu):
    command_id = CommandId.CANCEL_SM
    service_type: str = ""
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@dataclass(slots=True, kw_only=True)
class ReplaceSm(Pdu):
    command_id = CommandId.REPLACE_SM
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""


@dataclass(slots=True, kw_only=True)
class AlertNotification(Pdu):
    command_id = CommandId.ALERT_NOTIFICATION
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    esme_addr_ton: int = 0
    esme_addr_npi: int = 0
    esme_addr: str = ""


BIND_REQUESTS: Final = (BindReceiver, BindTransmitter, BindTransceiver)

PDU_CLASSES: Final[dict[int, type[Pdu]]] = {
    cls.command_id: cls
    for cls in (
        GenericNack,
        BindReceiver,
        BindReceiverResp,
        BindTransmitter,
        BindTransmitterResp,
        BindTransceiver,
        BindTransceiverResp,
        Outbind,
        QuerySm,
        QuerySmResp,
        SubmitSm,
        SubmitSmResp,
        DeliverSm,
        DeliverSmResp,
        Unbind,
        UnbindResp,
        ReplaceSm,
        ReplaceSmResp,
        CancelSm,
        CancelSmResp,
        EnquireLink,
        EnquireLinkResp,
        SubmitMulti,
        SubmitMultiResp,
        AlertNotification,
        DataSm,
        DataSmResp,
    )
}


def response_class(command_id: int) -> type[Pdu] | None:
    """The response class for a request, or None for outbind/alert_notification."""
    return PDU_CLASSES.get(command_id | RESPONSE_BIT) if not command_id & RESPONSE_BIT else None


def sar_numbers(pdu: Pdu) -> tuple[int, int, int] | None:
    """(sar_msg_ref_num, sar_total_segments, sar_segment_seqnum) when all three are there."""
    if not pdu.tlvs:
        return None
    ref = pdu.tlv_int(Tag.SAR_MSG_REF_NUM)
    total = pdu.tlv_int(Tag.SAR_TOTAL_SEGMENTS)
    seq = pdu.tlv_int(Tag.SAR_SEGMENT_SEQNUM)
    if ref is None or total is None or seq is None:
        return None
    return ref, total, seq


# Each bind request's response class and the name operators know it by.
BIND_RESPONSES: Final[
    Mapping[int, type[BindTransmitterResp | BindReceiverResp | BindTransceiverResp]]
] = MappingProxyType(
    {
        CommandId.BIND_TRANSMITTER: BindTransmitterResp,
        CommandId.BIND_RECEIVER: BindReceiverResp,
        CommandId.BIND_TRANSCEIVER: BindTransceiverResp,
    }
)
BIND_NAMES: Final[Mapping[int, str]] = MappingProxyType(
    {
        CommandId.BIND_TRANSMITTER: "transmitter",
        CommandId.BIND_RECEIVER: "receiver",
        CommandId.BIND_TRANSCEIVER: "transceiver",
    }
)
