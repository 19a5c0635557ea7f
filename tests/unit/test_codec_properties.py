"""Property tests: every PDU round-trips, and no input makes decode raise anything but PduError."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.smpp import layout
from gateway.smpp import pdu as p
from gateway.smpp.codec import Framer, PduError, decode, encode
from gateway.smpp.layout import FIELDS, KNOWN_TAGS, TLV_SPECS, Kind
from gateway.smpp.pdu import PDU_CLASSES, CommandStatus

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STATUSES = frozenset(int(status) for status in CommandStatus)

# Latin-1 without NUL: what a C-octet string can carry.
C_CHARS = st.characters(min_codepoint=1, max_codepoint=255)


def c_string(size: int) -> st.SearchStrategy[str]:
    return st.text(C_CHARS, max_size=size - 1)


def dest_address() -> st.SearchStrategy[p.DestAddress]:
    sme = st.builds(
        p.DestAddress,
        dest_flag=st.just(layout.DEST_FLAG_SME),
        dest_addr_ton=st.integers(0, 255),
        dest_addr_npi=st.integers(0, 255),
        destination_addr=c_string(layout.DEST_ADDR_MAX),
    )
    distribution_list = st.builds(
        p.DestAddress, dest_flag=st.just(layout.DEST_FLAG_DISTRIBUTION_LIST), dl_name=c_string(21)
    )
    return st.one_of(sme, distribution_list)


UNSUCCESS_SME = st.builds(
    p.UnsuccessSme,
    dest_addr_ton=st.integers(0, 255),
    dest_addr_npi=st.integers(0, 255),
    destination_addr=c_string(layout.DEST_ADDR_MAX),
    error_status_code=st.integers(0, 0xFFFFFFFF),
)


def field_strategy(spec: layout.FieldSpec) -> st.SearchStrategy[Any]:
    if spec.kind is Kind.INT:
        return st.integers(0, (1 << (8 * spec.size)) - 1)
    if spec.kind in (Kind.CSTRING, Kind.ANY_CSTRING):
        return c_string(spec.size)
    if spec.kind is Kind.TIME:
        return st.one_of(st.just(""), st.text(C_CHARS, min_size=16, max_size=16))
    if spec.kind is Kind.SHORT_MESSAGE:
        return st.binary(max_size=spec.size)
    if spec.kind is Kind.DEST_ADDRESSES:
        # SME addresses and distribution lists mixed, at least one (SMPP 3.4 4.5.1).
        return st.lists(dest_address(), min_size=1, max_size=8)
    return st.lists(UNSUCCESS_SME, max_size=5)


@st.composite
def tlv(draw: st.DrawFn) -> tuple[int, bytes]:
    if draw(st.booleans()):
        tag = draw(st.sampled_from(sorted(KNOWN_TAGS)))
        spec = TLV_SPECS[tag]
        value = draw(st.binary(min_size=spec.min_length, max_size=min(spec.max_length, 300)))
        return tag, value
    unknown = st.integers(0, 0xFFFF).filter(lambda tag: tag not in KNOWN_TAGS)
    return draw(unknown), draw(st.binary(max_size=40))


TLVS = st.lists(tlv(), max_size=4)


@st.composite
def any_pdu(draw: st.DrawFn, cls: type[p.Pdu] | None = None) -> p.Pdu:
    if cls is None:
        cls = draw(st.sampled_from(list(PDU_CLASSES.values())))
    values = {spec.name: draw(field_strategy(spec)) for spec in FIELDS[cls]}
    status = draw(st.one_of(st.just(0), st.integers(0, 0xFFFFFFFF)))
    return cls(sequence=draw(st.integers(0, 0xFFFFFFFF)), status=status, tlvs=draw(TLVS), **values)


def expected_after_round_trip(original: p.Pdu) -> p.Pdu:
    if original.is_response and original.status:
        # Error responses are sent header-only (SMPP-NOTES section 3).
        return type(original)(sequence=original.sequence, status=original.status)
    return original


@pytest.mark.parametrize("cls", PDU_CLASSES.values(), ids=lambda cls: cls.__name__)
@settings(SETTINGS, max_examples=40)
@given(data=st.data())
def test_every_pdu_class_round_trips(cls: type[p.Pdu], data: st.DataObject) -> None:
    original = data.draw(any_pdu(cls))
    encoded = encode(original)
    assert int.from_bytes(encoded[:4], "big") == len(encoded)
    decoded = decode(encoded)
    assert decoded == expected_after_round_trip(original)
    # And back: the decoded PDU is the same octets again.
    assert encode(decoded) == encoded
    assert layout.unknown_tlv_tags(decoded) == [t for t, _ in decoded.tlvs if t not in KNOWN_TAGS]


@SETTINGS
@given(st.data())
def test_submit_multi_keeps_mixed_destinations_in_order(data: st.DataObject) -> None:
    dests = data.draw(st.lists(dest_address(), min_size=1, max_size=layout.NUMBER_OF_DESTS_MAX))
    multi = p.SubmitMulti(sequence=1, dest_addresses=dests)
    decoded = decode(encode(multi))
    assert isinstance(decoded, p.SubmitMulti)
    assert decoded.dest_addresses == dests


def check_decode(frame: bytes) -> None:
    try:
        decode(frame)
    except PduError as error:
        assert error.status in STATUSES
        if not error.fatal:
            # A whole frame with a readable header: the answer can echo it.
            assert error.command_id == int.from_bytes(frame[4:8], "big")
            assert error.sequence == int.from_bytes(frame[12:16], "big")


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_pdu_error(blob: bytes) -> None:
    check_decode(blob)


@SETTINGS
@given(
    st.sampled_from(sorted(PDU_CLASSES)),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=300),
)
def test_random_bodies_only_raise_pdu_error(
    command_id: int, status: int, sequence: int, body: bytes
) -> None:
    check_decode(struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body)


@st.composite
def mutated_frame(draw: st.DrawFn) -> bytes:
    data = bytearray(encode(draw(any_pdu())))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        else:
            del data[position:]
    if draw(st.booleans()) and len(data) >= 16:
        # Keep command_length consistent so the body parser, not the length
        # check, meets the damage.
        data[:4] = len(data).to_bytes(4, "big")
    return bytes(data)


@SETTINGS
@given(mutated_frame())
def test_mutated_frames_only_raise_pdu_error(frame: bytes) -> None:
    check_decode(frame)


@SETTINGS
@given(st.lists(any_pdu(), min_size=1, max_size=6), st.data())
def test_random_chunking_yields_the_same_frames(pdus: list[p.Pdu], data: st.DataObject) -> None:
    frames = [encode(pdu) for pdu in pdus]
    stream = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    framer = Framer(max_length=1 << 20)
    received: list[bytes] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        framer.feed(stream[start:cut])
        start = cut
        while (frame := framer.next_frame()) is not None:
            received.append(frame)
    assert received == frames
    assert framer.buffered == 0


@SETTINGS
@given(st.lists(any_pdu(), min_size=1, max_size=6), st.data())
def test_partial_and_complete_say_where_the_next_frame_stands(
    pdus: list[p.Pdu], data: st.DataObject
) -> None:
    """`partial`: the next frame has begun but not ended; `complete`: it has ended.
    The protocol times a PDU's deadline on the one and schedules turns on the other."""
    stream = b"".join(encode(pdu) for pdu in pdus)
    framer = Framer(max_length=1 << 20)
    fed = 0
    taken = 0
    for cut in sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10))):
        framer.feed(stream[fed:cut])
        fed = cut
        if data.draw(st.booleans()):
            while (frame := framer.next_frame()) is not None:
                taken += len(frame)
        waiting = stream[taken:fed]
        whole = len(waiting) >= 4 and len(waiting) >= int.from_bytes(waiting[:4], "big")
        assert framer.complete == whole
        assert framer.partial == (bool(waiting) and not whole)
