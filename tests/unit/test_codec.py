"""The SMPP codec against hand-written byte vectors, crafted bad frames and framing."""

from __future__ import annotations

import struct

import pytest

from gateway.smpp import layout
from gateway.smpp import pdu as p
from gateway.smpp.codec import (
    Framer,
    PduError,
    decode,
    encode,
    encode_tlv_cstring,
    encode_tlv_int,
)
from gateway.smpp.layout import Kind
from gateway.smpp.pdu import CommandId, CommandStatus, Tag


def frame(command_id: int, body: bytes = b"", *, status: int = 0, sequence: int = 1) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body


def decode_error(data: bytes) -> PduError:
    with pytest.raises(PduError) as caught:
        decode(data)
    return caught.value


# --- round trips ---------------------------------------------------------------

EXAMPLES: list[p.Pdu] = [
    p.GenericNack(sequence=3, status=CommandStatus.ESME_RINVCMDID),
    p.BindReceiver(
        sequence=1, system_id="rx", password="secret", system_type="VMA", address_range="^1"
    ),
    p.BindTransmitter(sequence=2, system_id="tx", password="long-password-16", addr_ton=1),
    p.BindTransceiver(sequence=0xFFFFFFFF, system_id="trx", interface_version=0x50),
    p.BindReceiverResp(sequence=1, system_id="SMSC", tlvs=[(Tag.SC_INTERFACE_VERSION, b"\x34")]),
    p.BindTransmitterResp(sequence=2, system_id="SMSC"),
    p.BindTransceiverResp(sequence=3, system_id="SMSC"),
    p.Outbind(sequence=4, system_id="SMSC", password="pw"),
    p.Unbind(sequence=5),
    p.UnbindResp(sequence=5),
    p.EnquireLink(sequence=6),
    p.EnquireLinkResp(sequence=6),
    p.CancelSmResp(sequence=7),
    p.ReplaceSmResp(sequence=8),
    p.SubmitSm(
        sequence=9,
        service_type="CMT",
        source_addr_ton=5,
        source_addr_npi=0,
        source_addr="Brand",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="491701234567",
        esm_class=0x40,
        protocol_id=0,
        priority_flag=1,
        schedule_delivery_time="240101120000000+",
        validity_period="000001000000000R",
        registered_delivery=1,
        replace_if_present_flag=0,
        data_coding=8,
        sm_default_msg_id=0,
        short_message=bytes(range(254)),
        tlvs=[(Tag.SAR_MSG_REF_NUM, b"\x01\x02"), (0x1400, b"vendor")],
    ),
    p.DeliverSm(
        sequence=10,
        source_addr="491701234567",
        destination_addr="12345",
        esm_class=p.ESM_CLASS_RECEIPT,
        short_message=b"id:1 sub:001 dlvrd:001 submit date:2401011200 done date:2401011200"
        b" stat:DELIVRD err:000 text:",
        tlvs=[(Tag.RECEIPTED_MESSAGE_ID, b"1\x00"), (Tag.MESSAGE_STATE, b"\x02")],
    ),
    p.SubmitSmResp(sequence=9, message_id="123456789012345678"),
    p.DeliverSmResp(sequence=10),
    p.SubmitMulti(
        sequence=11,
        source_addr="src",
        dest_addresses=[
            p.DestAddress(dest_flag=1, dest_addr_ton=1, dest_addr_npi=1, destination_addr="1"),
            p.DestAddress(dest_flag=2, dl_name="friends"),
        ],
        short_message=b"hi",
    ),
    p.SubmitMultiResp(
        sequence=11,
        message_id="42",
        unsuccess_smes=[p.UnsuccessSme(destination_addr="2", error_status_code=0x0B)],
    ),
    p.DataSm(
        sequence=12,
        source_addr="a" * 64,
        destination_addr="b" * 64,
        data_coding=4,
        tlvs=[(Tag.MESSAGE_PAYLOAD, b"x" * 1000)],
    ),
    p.DataSmResp(sequence=12, message_id="7"),
    p.QuerySm(sequence=13, message_id="7", source_addr="src"),
    p.QuerySmResp(
        sequence=13, message_id="7", final_date="240101120000000+", message_state=2, error_code=0
    ),
    p.CancelSm(sequence=14, service_type="", message_id="7", source_addr="s", destination_addr="d"),
    p.ReplaceSm(sequence=15, message_id="7", source_addr="s", short_message=b"new"),
    p.AlertNotification(
        sequence=16,
        source_addr="s" * 64,
        esme_addr="e",
        tlvs=[(Tag.MS_AVAILABILITY_STATUS, b"\x00")],
    ),
]


def test_examples_cover_every_pdu_class() -> None:
    assert {type(example) for example in EXAMPLES} == set(p.PDU_CLASSES.values())


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip(example: p.Pdu) -> None:
    data = encode(example)
    assert int.from_bytes(data[:4], "big") == len(data)
    assert decode(data) == example


# --- hand-written vectors (SMPP 3.4 section 4) ---------------------------------

BIND_TRANSMITTER = bytes.fromhex(
    "0000002a"  # command_length 42
    "00000002"  # bind_transmitter
    "00000000"  # command_status
    "00000001"  # sequence_number
    "736d7070636c69656e743100"  # system_id "smppclient1"
    "70617373776f726400"  # password "password"
    "00"  # system_type ""
    "34"  # interface_version 3.4
    "01"  # addr_ton
    "01"  # addr_npi
    "00"  # address_range ""
)

SUBMIT_SM = bytes.fromhex(
    "0000003e00000004000000000000002a"
    "00"  # service_type ""
    "0101"
    "3132333400"  # source ton, npi, "1234"
    "0101"
    "3536373800"  # destination ton, npi, "5678"
    "000000"  # esm_class, protocol_id, priority_flag
    "00"
    "00"  # schedule_delivery_time, validity_period
    "01000000"  # registered_delivery, replace_if_present, data_coding, sm_default_msg_id
    "05"
    "68656c6c6f"  # sm_length 5, "hello"
    "020c00020001"  # sar_msg_ref_num 1
    "020e000102"  # sar_total_segments 2
    "020f000101"  # sar_segment_seqnum 1
)


def test_bind_transmitter_vector() -> None:
    expected = p.BindTransmitter(
        sequence=1,
        system_id="smppclient1",
        password="password",
        system_type="",
        interface_version=0x34,
        addr_ton=1,
        addr_npi=1,
        address_range="",
    )
    assert decode(BIND_TRANSMITTER) == expected
    assert encode(expected) == BIND_TRANSMITTER


def test_submit_sm_with_tlvs_vector() -> None:
    expected = p.SubmitSm(
        sequence=42,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="1234",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="5678",
        registered_delivery=1,
        short_message=b"hello",
        tlvs=[
            (Tag.SAR_MSG_REF_NUM, b"\x00\x01"),
            (Tag.SAR_TOTAL_SEGMENTS, b"\x02"),
            (Tag.SAR_SEGMENT_SEQNUM, b"\x01"),
        ],
    )
    decoded = decode(SUBMIT_SM)
    assert decoded == expected
    assert decoded.tlv_int(Tag.SAR_TOTAL_SEGMENTS) == 2
    assert encode(expected) == SUBMIT_SM


def test_submit_sm_resp_vector() -> None:
    data = bytes.fromhex("0000001780000004000000000000000561626331323300")
    assert decode(data) == p.SubmitSmResp(sequence=5, message_id="abc123")
    assert encode(p.SubmitSmResp(sequence=5, message_id="abc123")) == data


def test_generic_nack_vector() -> None:
    data = bytes.fromhex("00000010800000000000000300000007")
    nack = p.GenericNack(sequence=7, status=CommandStatus.ESME_RINVCMDID)
    assert decode(data) == nack
    assert encode(nack) == data


def test_error_response_without_body_vector() -> None:
    data = bytes.fromhex("00000010800000040000004500000009")
    assert decode(data) == p.SubmitSmResp(sequence=9, status=0x45)


def test_error_response_is_encoded_header_only() -> None:
    resp = p.SubmitSmResp(sequence=9, status=0x58, message_id="ignored", tlvs=[(0x1D, b"x\0")])
    assert encode(resp) == bytes.fromhex("00000010800000040000005800000009")
    bind_resp = p.BindTransceiverResp(sequence=1, status=0x0D, system_id="SMSC")
    assert encode(bind_resp) == bytes.fromhex("00000010800000090000000d00000001")


def test_error_response_with_partial_body_is_accepted() -> None:
    data = frame(CommandId.BIND_TRANSMITTER_RESP, b"SMS", status=0x0E, sequence=4)
    assert decode(data) == p.BindTransmitterResp(sequence=4, status=0x0E)


def test_error_response_with_body_keeps_it() -> None:
    data = frame(CommandId.SUBMIT_SM_RESP, b"77\0", status=0x45)
    assert decode(data) == p.SubmitSmResp(sequence=1, status=0x45, message_id="77")


def test_deliver_sm_resp_accepts_anything() -> None:
    assert decode(frame(CommandId.DELIVER_SM_RESP)) == p.DeliverSmResp(sequence=1)
    no_nul = decode(frame(CommandId.DELIVER_SM_RESP, b"a" * 100))
    assert isinstance(no_nul, p.DeliverSmResp)
    assert no_nul.message_id == "a" * 100


def test_sequence_numbers_are_opaque_32_bit() -> None:
    data = frame(CommandId.ENQUIRE_LINK, sequence=0xFFFFFFFF)
    assert decode(data) == p.EnquireLink(sequence=0xFFFFFFFF)
    assert encode(p.EnquireLink(sequence=0x80000000))[12:] == b"\x80\x00\x00\x00"


def test_long_password_is_accepted() -> None:
    body = b"sys\0" + b"p" * 16 + b"\0" + b"\0" + b"\x34\x00\x00" + b"\0"
    bind = decode(frame(CommandId.BIND_TRANSCEIVER, body))
    assert isinstance(bind, p.BindTransceiver)
    assert bind.password == "p" * 16


def test_latin1_strings_survive() -> None:
    sm = p.SubmitSm(source_addr="Bj\xf6rk", destination_addr="1")
    assert decode(encode(sm)) == sm


def test_unknown_tlv_is_kept() -> None:
    data = frame(CommandId.ENQUIRE_LINK_RESP, bytes.fromhex("1401000301020300ff0000"))
    assert decode(data).tlvs == [(0x1401, b"\x01\x02\x03"), (0x00FF, b"")]


def test_message_payload_of_64_kib() -> None:
    payload = b"p" * 0xFFFF
    data_sm = p.DataSm(source_addr="1", destination_addr="2", tlvs=[(Tag.MESSAGE_PAYLOAD, payload)])
    assert decode(encode(data_sm)) == data_sm


# --- errors --------------------------------------------------------------------

BIND_BODY_PARTS = [b"sys\0", b"pw\0", b"\0", b"\x34\x01\x01", b"\0"]


def bind_body(index: int, value: bytes) -> bytes:
    parts = list(BIND_BODY_PARTS)
    parts[index] = value
    return b"".join(parts)


SM_PARTS = [
    b"\0",  # service_type
    b"\x01\x01",
    b"123\0",  # source_addr
    b"\x01\x01",
    b"456\0",  # destination_addr
    b"\0\0\0",
    b"\0",  # schedule_delivery_time
    b"\0",  # validity_period
    b"\0\0\0\0",
    b"\x02hi",
]


def sm_body(index: int, value: bytes) -> bytes:
    parts = list(SM_PARTS)
    parts[index] = value
    return b"".join(parts)


@pytest.mark.parametrize(
    ("command_id", "body", "status"),
    [
        (CommandId.BIND_TRANSMITTER, bind_body(0, b"s" * 16 + b"\0"), "ESME_RINVSYSID"),
        (CommandId.BIND_TRANSMITTER, bind_body(1, b"p" * 17 + b"\0"), "ESME_RINVPASWD"),
        (CommandId.BIND_RECEIVER, bind_body(2, b"t" * 13 + b"\0"), "ESME_RINVSYSTYP"),
        (CommandId.BIND_TRANSCEIVER, bind_body(4, b"r" * 41 + b"\0"), "ESME_RINVCMDLEN"),
        (CommandId.OUTBIND, b"s" * 40, "ESME_RINVSYSID"),
        (CommandId.SUBMIT_SM, sm_body(0, b"CMTCMT\0"), "ESME_RINVSERTYP"),
        (CommandId.SUBMIT_SM, sm_body(2, b"1" * 21 + b"\0"), "ESME_RINVSRCADR"),
        (CommandId.DELIVER_SM, sm_body(4, b"2" * 21 + b"\0"), "ESME_RINVDSTADR"),
        (CommandId.SUBMIT_SM, sm_body(6, b"1" * 17 + b"\0"), "ESME_RINVSCHED"),
        (CommandId.SUBMIT_SM, sm_body(6, b"2401\0"), "ESME_RINVSCHED"),
        (CommandId.SUBMIT_SM, sm_body(7, b"0" * 17 + b"\0"), "ESME_RINVEXPIRY"),
        (CommandId.SUBMIT_SM, sm_body(7, b"0" * 15 + b"\0"), "ESME_RINVEXPIRY"),
        (CommandId.SUBMIT_SM, sm_body(9, b"\x03hi"), "ESME_RINVMSGLEN"),
        (CommandId.SUBMIT_SM, b"".join(SM_PARTS[:5]), "ESME_RINVCMDLEN"),
        (CommandId.SUBMIT_SM, b"".join(SM_PARTS[:9]), "ESME_RINVCMDLEN"),
        (CommandId.QUERY_SM, b"m" * 65 + b"\0\0\0\0", "ESME_RINVMSGID"),
        (CommandId.SUBMIT_SM_RESP, b"m" * 65 + b"\0", "ESME_RINVMSGID"),
        (CommandId.QUERY_SM_RESP, b"1\0" + b"2" * 17 + b"\0\0\0", "ESME_RINVCMDLEN"),
        (CommandId.QUERY_SM_RESP, b"1\0" + b"2" * 15 + b"\0\0\0", "ESME_RINVCMDLEN"),
        (CommandId.SUBMIT_SM, sm_body(9, b"\xff" + b"x" * 255), "ESME_RINVMSGLEN"),
        (CommandId.DELIVER_SM, sm_body(9, b"\xff" + b"x" * 300), "ESME_RINVMSGLEN"),
        (CommandId.SUBMIT_SM_RESP, b"", "ESME_RINVCMDLEN"),
        (CommandId.ALERT_NOTIFICATION, b"\0\0s\0\0\0" + b"e" * 65 + b"\0", "ESME_RINVDSTADR"),
        (CommandId.DATA_SM, b"\0\0\0" + b"s" * 65 + b"\0", "ESME_RINVSRCADR"),
        (CommandId.CANCEL_SM, b"\0" + b"m" * 70, "ESME_RINVMSGID"),
        (CommandId.ENQUIRE_LINK, b"\x02\x0c\x00", "ESME_RINVOPTPARSTREAM"),
        (CommandId.ENQUIRE_LINK, b"\x02\x0c\x00\x02\x00", "ESME_RINVOPTPARSTREAM"),
        (CommandId.SUBMIT_SM, sm_body(9, b"\0\x02\x0c\x00\x01\x00"), "ESME_RINVPARLEN"),
        (CommandId.DELIVER_SM, sm_body(9, b"\0\x04\x23\x00\x02\x03\x00"), "ESME_RINVPARLEN"),
    ],
)
def test_field_errors(command_id: int, body: bytes, status: str) -> None:
    error = decode_error(frame(command_id, body, sequence=77))
    assert error.status == CommandStatus[status]
    assert error.command_id == command_id
    assert error.sequence == 77
    assert not error.fatal


SUBMIT_MULTI_HEAD = b"\0\x01\x01src\0"
SUBMIT_MULTI_TAIL = b"\0\0\0" + b"\0\0" + b"\0\0\0\0" + b"\x00"


@pytest.mark.parametrize(
    ("dests", "status"),
    [
        (b"\x01\x03\x01\x01\x31\0", "ESME_RINVDESTFLAG"),
        (b"\x01\x02" + b"d" * 21 + b"\0", "ESME_RINVDLNAME"),
        (b"\x01\x01\x01\x01" + b"1" * 21 + b"\0", "ESME_RINVDSTADR"),
        (b"\x02\x01\x01\x01\x31\0", "ESME_RINVCMDLEN"),
    ],
)
def test_submit_multi_errors(dests: bytes, status: str) -> None:
    body = SUBMIT_MULTI_HEAD + dests + (SUBMIT_MULTI_TAIL if status != "ESME_RINVCMDLEN" else b"")
    error = decode_error(frame(CommandId.SUBMIT_MULTI, body, sequence=5))
    assert error.status == CommandStatus[status]
    assert (error.command_id, error.sequence) == (CommandId.SUBMIT_MULTI, 5)


def test_submit_multi_vector() -> None:
    dests = b"\x02" + b"\x01\x01\x01" + b"4917\0" + b"\x02" + b"list\0"
    multi = decode(frame(CommandId.SUBMIT_MULTI, SUBMIT_MULTI_HEAD + dests + SUBMIT_MULTI_TAIL))
    assert isinstance(multi, p.SubmitMulti)
    assert multi.dest_addresses == [
        p.DestAddress(dest_flag=1, dest_addr_ton=1, dest_addr_npi=1, destination_addr="4917"),
        p.DestAddress(dest_flag=2, dl_name="list"),
    ]


def test_submit_multi_resp_vector() -> None:
    body = b"id\0" + b"\x01" + b"\x01\x01" + b"4917\0" + b"\x00\x00\x00\x0b"
    resp = decode(frame(CommandId.SUBMIT_MULTI_RESP, body))
    assert resp == p.SubmitMultiResp(
        sequence=1,
        message_id="id",
        unsuccess_smes=[
            p.UnsuccessSme(
                dest_addr_ton=1, dest_addr_npi=1, destination_addr="4917", error_status_code=0x0B
            )
        ],
    )


@pytest.mark.parametrize(
    ("dests", "status"),
    [
        (b"\x00", "ESME_RINVNUMDESTS"),
        (b"\xff" + b"\x02list\0" * 255, "ESME_RINVNUMDESTS"),
        (b"\x01\x00\x01\x01\x31\0", "ESME_RINVDESTFLAG"),
        (b"\x01\xff\x01\x01\x31\0", "ESME_RINVDESTFLAG"),
        (b"\x02\x02ok\0\x02" + b"d" * 30, "ESME_RINVDLNAME"),
    ],
)
def test_submit_multi_limits(dests: bytes, status: str) -> None:
    body = SUBMIT_MULTI_HEAD + dests + SUBMIT_MULTI_TAIL
    error = decode_error(frame(CommandId.SUBMIT_MULTI, body, sequence=6))
    assert error.status == CommandStatus[status]


def test_submit_multi_takes_254_destinations() -> None:
    dests = [p.DestAddress(dest_flag=2, dl_name=f"l{i}") for i in range(layout.NUMBER_OF_DESTS_MAX)]
    multi = p.SubmitMulti(sequence=1, dest_addresses=dests)
    assert decode(encode(multi)) == multi


# --- limits, as tables -------------------------------------------------------------

# SMPP-NOTES section 3, written out again here rather than read from pdu.py: the
# status a request gets when this field cannot be read.
EXPECTED_FIELD_STATUS: dict[str, int] = {
    "source_addr": 0x0A,
    "destination_addr": 0x0B,
    "esme_addr": 0x0B,
    "service_type": 0x15,
    "system_id": 0x0F,
    "password": 0x0E,
    "system_type": 0x53,
    "schedule_delivery_time": 0x61,
    "validity_period": 0x62,
    "message_id": 0x0C,
    "dl_name": 0x34,
}
DEFAULT_FIELD_STATUS = CommandStatus.ESME_RINVCMDLEN


def test_field_error_table_matches_the_notes() -> None:
    for name, status in EXPECTED_FIELD_STATUS.items():
        assert layout.field_error(name) == status, name
    assert layout.field_error("address_range") == DEFAULT_FIELD_STATUS
    assert layout.field_error("final_date") == DEFAULT_FIELD_STATUS
    for cls, fields in layout.FIELDS.items():
        for spec in fields:
            if spec.kind in (Kind.CSTRING, Kind.TIME):
                assert spec.error == layout.field_error(spec.name), (cls.__name__, spec.name)


def minimal_body(cls: type[p.Pdu], name: str = "", value: bytes = b"") -> bytes:
    """The smallest valid body of `cls`, with the field `name` replaced by `value`."""
    parts = []
    for spec in layout.FIELDS[cls]:
        if spec.name == name:
            parts.append(value)
        elif spec.kind is Kind.INT:
            parts.append(bytes(spec.size))
        elif spec.kind is Kind.DEST_ADDRESSES:
            parts.append(b"\x01\x01\x00\x00\x00")  # one SME address, empty
        else:
            parts.append(b"\0")  # empty string or time, sm_length 0, no_unsuccess 0
    return b"".join(parts)


STRING_FIELDS = [
    (cls, spec)
    for cls, fields in layout.FIELDS.items()
    for spec in fields
    if spec.kind in (Kind.CSTRING, Kind.TIME)
]


def string_field_id(case: tuple[type[p.Pdu], layout.FieldSpec]) -> str:
    return f"{case[0].__name__}.{case[1].name}"


@pytest.mark.parametrize("case", STRING_FIELDS, ids=string_field_id)
def test_every_string_field_is_read_only_up_to_its_maximum(
    case: tuple[type[p.Pdu], layout.FieldSpec],
) -> None:
    cls, spec = case
    assert isinstance(decode(frame(cls.command_id, minimal_body(cls))), cls)
    longest = b"x" * (spec.size - 1 if spec.kind is Kind.CSTRING else 16)
    decoded = decode(frame(cls.command_id, minimal_body(cls, spec.name, longest + b"\0")))
    assert getattr(decoded, spec.name) == longest.decode()
    # The NUL right after the maximum is not looked for; the rest of the PDU
    # would hold one, and must not be swallowed into the field.
    too_long = minimal_body(cls, spec.name, b"x" * spec.size + b"\0")
    error = decode_error(frame(cls.command_id, too_long + b"\0" * 80, sequence=31))
    assert error.status == EXPECTED_FIELD_STATUS.get(spec.name, DEFAULT_FIELD_STATUS)
    assert (error.command_id, error.sequence, error.fatal) == (cls.command_id, 31, False)


TIME_FIELDS = [case for case in STRING_FIELDS if case[1].kind is Kind.TIME]


@pytest.mark.parametrize("case", TIME_FIELDS, ids=string_field_id)
@pytest.mark.parametrize("length", [1, 12, 15])
def test_times_are_empty_or_exactly_16_characters(
    case: tuple[type[p.Pdu], layout.FieldSpec], length: int
) -> None:
    cls, spec = case
    body = minimal_body(cls, spec.name, b"0" * length + b"\0")
    error = decode_error(frame(cls.command_id, body))
    assert error.status == EXPECTED_FIELD_STATUS.get(spec.name, DEFAULT_FIELD_STATUS)


def test_time_fields_are_the_spec_ones() -> None:
    assert {(cls.__name__, spec.name) for cls, spec in TIME_FIELDS} == {
        (name, field)
        for name in ("SubmitSm", "DeliverSm", "SubmitMulti", "ReplaceSm")
        for field in ("schedule_delivery_time", "validity_period")
    } | {("QuerySmResp", "final_date")}


SHORT_MESSAGE_CLASSES = [
    cls
    for cls, fields in layout.FIELDS.items()
    if any(f.kind is Kind.SHORT_MESSAGE for f in fields)
]


@pytest.mark.parametrize("cls", SHORT_MESSAGE_CLASSES, ids=lambda cls: cls.__name__)
def test_sm_length_limits(cls: type[p.Pdu]) -> None:
    ok = decode(frame(cls.command_id, minimal_body(cls, "short_message", b"\xfe" + b"m" * 254)))
    assert ok.short_message == b"m" * 254  # type: ignore[attr-defined]
    for value in (b"\xff" + b"m" * 255, b"\x05abcd", b"\xff"):
        error = decode_error(frame(cls.command_id, minimal_body(cls, "short_message", value)))
        assert error.status == CommandStatus.ESME_RINVMSGLEN


def test_sm_length_counts_only_what_is_left_in_the_pdu() -> None:
    # Five octets promised, four present before the PDU ends: the TLV-looking
    # bytes after the body do not belong to it.
    body = minimal_body(p.SubmitSm, "short_message", b"\x05abcd")
    assert decode_error(frame(CommandId.SUBMIT_SM, body)).status == CommandStatus.ESME_RINVMSGLEN


def bad_tlv_lengths() -> list[tuple[int, int]]:
    cases = []
    for tag, spec in sorted(layout.TLV_SPECS.items()):
        if spec.min_length > 0:
            cases.append((tag, spec.min_length - 1))
        if spec.max_length < 0xFFFF:
            cases.append((tag, spec.max_length + 1))
    return cases


@pytest.mark.parametrize(("tag", "length"), bad_tlv_lengths(), ids=lambda v: f"{v:#06x}")
def test_known_tlv_with_a_length_outside_its_spec(tag: int, length: int) -> None:
    tlv = struct.pack(">HH", tag, length) + b"\x01" * length
    error = decode_error(frame(CommandId.SUBMIT_SM, minimal_body(p.SubmitSm) + tlv, sequence=8))
    assert error.status == CommandStatus.ESME_RINVPARLEN
    assert (error.command_id, error.sequence) == (CommandId.SUBMIT_SM, 8)


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        (Tag.SAR_MSG_REF_NUM, b"\x01"),
        (Tag.SAR_MSG_REF_NUM, b"\x00\x01\x02"),
        (Tag.SAR_TOTAL_SEGMENTS, b"\x00\x02"),
        (Tag.NETWORK_ERROR_CODE, b"\x03\x00"),
        (Tag.RECEIPTED_MESSAGE_ID, b""),
        (Tag.RECEIPTED_MESSAGE_ID, b"9" * 65 + b"\0"),
        (Tag.ALERT_ON_MESSAGE_DELIVERY, b"\x00\x00"),
    ],
)
def test_known_tlv_length_spot_checks(tag: int, value: bytes) -> None:
    tlv = struct.pack(">HH", tag, len(value)) + value
    error = decode_error(frame(CommandId.DATA_SM, minimal_body(p.DataSm) + tlv))
    assert error.status == CommandStatus.ESME_RINVPARLEN


@pytest.mark.parametrize(
    "tail",
    [
        b"\x04",  # one octet of a TLV header
        b"\x04\x24\x00",  # three octets of a TLV header
        b"\x04\x24\x00\x05abcd",  # value one octet short
        b"\x14\x00\xff\xff",  # unknown tag, length past the end
        b"\x00\x1e\x00\x0342\0" + b"\x04\x27\x00\x01",  # the second TLV lacks its value
    ],
)
def test_tlv_running_past_the_pdu(tail: bytes) -> None:
    error = decode_error(frame(CommandId.DELIVER_SM, minimal_body(p.DeliverSm) + tail))
    assert error.status == CommandStatus.ESME_RINVOPTPARSTREAM


def test_unknown_tlvs_are_kept_in_wire_order_among_known_ones() -> None:
    tlvs = [
        (0x1500, b""),
        (Tag.SAR_MSG_REF_NUM, b"\x00\x09"),
        (0x0099, b"x" * 300),
        (Tag.SAR_TOTAL_SEGMENTS, b"\x02"),
        (0xFFFF, b"\x00"),
        (0x1500, b"again"),
    ]
    wire = minimal_body(p.SubmitSm) + b"".join(
        struct.pack(">HH", tag, len(value)) + value for tag, value in tlvs
    )
    sm = decode(frame(CommandId.SUBMIT_SM, wire))
    assert sm.tlvs == tlvs
    assert layout.unknown_tlv_tags(sm) == [0x1500, 0x0099, 0xFFFF, 0x1500]
    assert encode(sm) == frame(CommandId.SUBMIT_SM, wire)


def test_unknown_tlv_tags_of_a_pdu_without_tlvs() -> None:
    assert layout.unknown_tlv_tags(p.SubmitSm()) == []
    assert layout.unknown_tlv_tags(p.DeliverSm(tlvs=[(Tag.MESSAGE_STATE, b"\x02")])) == []


def test_unknown_command_id() -> None:
    error = decode_error(frame(0x00000099, b"junk", sequence=0xDEADBEEF))
    assert error.status == CommandStatus.ESME_RINVCMDID
    assert (error.command_id, error.sequence, error.fatal) == (0x99, 0xDEADBEEF, False)


def test_frame_length_mismatch_is_fatal() -> None:
    data = frame(CommandId.ENQUIRE_LINK) + b"\0"
    error = decode_error(data)
    assert (error.status, error.fatal) == (CommandStatus.ESME_RINVCMDLEN, True)
    assert decode_error(b"\0\0\0\x10").fatal


def test_pdu_error_str_names_the_status() -> None:
    error = decode_error(frame(0x99))
    assert str(error).startswith("ESME_RINVCMDID")


# --- encoding errors --------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        p.BindTransmitter(system_id="s" * 16),
        p.SubmitSm(source_addr="1" * 21),
        p.SubmitSm(destination_addr="a\0b"),
        p.SubmitSm(validity_period="2401"),
        p.SubmitSm(short_message=b"x" * 255),
        p.ReplaceSm(short_message=b"x" * 255),
        p.SubmitSm(esm_class=256),
        p.SubmitSm(data_coding=-1),
        p.SubmitSm(source_addr="\u20ac"),
        p.EnquireLink(sequence=1 << 32),
        p.EnquireLink(tlvs=[(0x10000, b"")]),
        p.DataSm(tlvs=[(Tag.MESSAGE_PAYLOAD, b"x" * 0x10000)]),
        p.SubmitMulti(dest_addresses=[p.DestAddress(dest_flag=3)]),
        p.SubmitMulti(dest_addresses=[]),
        p.SubmitMulti(dest_addresses=[p.DestAddress()] * 255),
        p.SubmitMulti(dest_addresses=[p.DestAddress(dl_name="d" * 21, dest_flag=2)]),
        p.QuerySmResp(final_date="2401"),
        p.SubmitMultiResp(unsuccess_smes=[p.UnsuccessSme(error_status_code=1 << 32)]),
    ],
    ids=repr,
)
def test_encode_refuses_what_does_not_fit(bad: p.Pdu) -> None:
    with pytest.raises(ValueError):
        encode(bad)


def test_tlv_helpers() -> None:
    assert encode_tlv_int(Tag.SAR_MSG_REF_NUM, 1, 2) == (0x020C, b"\x00\x01")
    assert encode_tlv_int(Tag.QOS_TIME_TO_LIVE, 0x01020304, 4) == (0x0017, b"\x01\x02\x03\x04")
    assert encode_tlv_cstring(Tag.RECEIPTED_MESSAGE_ID, "42") == (0x001E, b"42\x00")
    assert encode_tlv_cstring(Tag.RECEIPTED_MESSAGE_ID, "9" * 64)[1][-1] == 0
    with pytest.raises(ValueError):
        encode_tlv_int(Tag.SAR_TOTAL_SEGMENTS, 256, 1)
    with pytest.raises(ValueError):
        encode_tlv_int(Tag.SAR_TOTAL_SEGMENTS, -1, 1)
    with pytest.raises(ValueError):
        encode_tlv_cstring(Tag.RECEIPTED_MESSAGE_ID, "9" * 65)
    with pytest.raises(ValueError):
        encode_tlv_cstring(Tag.ADDITIONAL_STATUS_INFO_TEXT, "a\0b")


def test_tlv_tables() -> None:
    assert frozenset(Tag) == layout.KNOWN_TAGS
    assert layout.TLV_SPECS[Tag.MESSAGE_PAYLOAD].max_length == 0xFFFF
    assert layout.TLV_SPECS[Tag.NETWORK_ERROR_CODE] == layout.TlvSpec(layout.TlvKind.OCTETS, 3, 3)


# --- framing -----------------------------------------------------------------------

STREAM_FRAMES = [BIND_TRANSMITTER, SUBMIT_SM, frame(CommandId.ENQUIRE_LINK, sequence=3)]
STREAM = b"".join(STREAM_FRAMES)


def drain(framer: Framer) -> list[bytes]:
    frames = []
    while (next_frame := framer.next_frame()) is not None:
        frames.append(next_frame)
    return frames


def test_framer_several_pdus_in_one_chunk() -> None:
    framer = Framer()
    framer.feed(STREAM)
    assert drain(framer) == STREAM_FRAMES
    assert framer.buffered == 0


@pytest.mark.parametrize("cut", range(len(STREAM) + 1))
def test_framer_split_at_every_boundary(cut: int) -> None:
    framer = Framer()
    framer.feed(STREAM[:cut])
    frames = drain(framer)
    framer.feed(STREAM[cut:])
    frames += drain(framer)
    assert frames == STREAM_FRAMES


def test_framer_byte_by_byte() -> None:
    framer = Framer()
    frames = []
    for index in range(len(STREAM)):
        framer.feed(STREAM[index : index + 1])
        frames += drain(framer)
    assert frames == STREAM_FRAMES


def test_framer_buffered_counts_a_partial_pdu() -> None:
    framer = Framer()
    framer.feed(SUBMIT_SM[:10])
    assert framer.next_frame() is None
    assert framer.buffered == 10


@pytest.mark.parametrize("length", [0, 4, 15, 16385, 0xFFFFFFFF])
def test_framer_bad_length_is_fatal(length: int) -> None:
    framer = Framer()
    framer.feed(struct.pack(">IIII", length, CommandId.SUBMIT_SM, 0, 99))
    with pytest.raises(PduError) as caught:
        framer.next_frame()
    error = caught.value
    assert (error.status, error.fatal) == (CommandStatus.ESME_RINVCMDLEN, True)
    assert (error.command_id, error.sequence) == (CommandId.SUBMIT_SM, 99)
    with pytest.raises(PduError):
        framer.next_frame()


def test_framer_bad_length_before_the_sequence_arrived() -> None:
    framer = Framer(max_length=4096)
    framer.feed(struct.pack(">I", 4097))
    with pytest.raises(PduError) as caught:
        framer.next_frame()
    assert caught.value.fatal
    assert caught.value.sequence is None


def test_framer_accepts_up_to_max_length() -> None:
    big = encode(p.DataSm(tlvs=[(Tag.MESSAGE_PAYLOAD, b"x" * 4000)]))
    framer = Framer(max_length=len(big))
    framer.feed(big)
    assert framer.next_frame() == big
