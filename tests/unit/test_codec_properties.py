"""Property tests: every PDU round-trips, and no input makes decode raise anything but PduError."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.smpp import layout
from gateway.smpp import pdu as p
from gateway.smpp.codec import Framer, PduError, decode, encode
from gateway.smpp.layout import KNOWN_TAGS
from gateway.smpp.pdu import PDU_CLASSES, CommandStatus
from tests.support.pdus import any_pdu, dest_address

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STATUSES = frozenset(int(status) for status in CommandStatus)


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
