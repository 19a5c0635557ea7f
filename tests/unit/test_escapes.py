"""gateway.smpp.escapes: a GSM escape pair cut between two segments is made whole."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.mt.submission import AccountPolicy, SubmitRefused, map_submit
from gateway.smpp import pdu as p
from gateway.smpp.escapes import EscapeCarry, dangling_escape

NOW = 1_760_000_000.0
EURO = b"\x1b\x65"


def segment(body: bytes, seq: int, total: int = 2, ref: int = 7, **fields: object) -> p.SubmitSm:
    udh = bytes((5, 0, 3, ref, total, seq))
    values: dict[str, object] = dict(
        source_addr="SHOP",
        source_addr_ton=5,
        destination_addr="4712345678",
        dest_addr_ton=1,
        esm_class=p.ESM_CLASS_UDHI,
        short_message=udh + body,
    )
    values.update(fields)
    return p.SubmitSm(**values)  # type: ignore[arg-type]


def text_of(pdu: p.SubmitSm) -> str:
    value = map_submit(pdu, AccountPolicy(reassemble="never"), now=NOW).body.text
    assert isinstance(value, str)
    return value


def test_dangling_escape() -> None:
    assert dangling_escape(b"abc\x1b")
    assert not dangling_escape(b"abc\x1b\x1b")
    assert dangling_escape(b"\x1b\x1b\x1b")
    assert not dangling_escape(b"abc") and not dangling_escape(b"")


def test_split_euro_is_carried_to_the_next_segment() -> None:
    carry = EscapeCarry(lambda: NOW)
    first = carry.repair("a", segment(b"Price 5" + EURO[:1], 1))
    second = carry.repair("a", segment(EURO[1:] + b" only", 2))
    assert (text_of(first), text_of(second)) == ("Price 5", "\u20ac only")
    assert len(carry) == 0


def test_whole_pairs_and_last_segments_are_left_alone() -> None:
    carry = EscapeCarry(lambda: NOW)
    whole = segment(b"5" + EURO, 1)
    assert carry.repair("a", whole) is whole
    # The last segment has no continuation to give a dangling escape to.
    last = segment(b"x\x1b", 2)
    assert carry.repair("a", last) is last
    plain = p.SubmitSm(short_message=b"x\x1b")
    assert carry.repair("a", plain) is plain
    assert len(carry) == 0


def test_the_carry_belongs_to_one_message() -> None:
    carry = EscapeCarry(lambda: NOW)
    carry.repair("a", segment(b"x\x1b", 1, ref=1))
    # Another account, another reference, another destination: not theirs.
    for other in (
        ("b", segment(b"e", 2, ref=1)),
        ("a", segment(b"e", 2, ref=2)),
        ("a", segment(b"e", 2, ref=1, destination_addr="4700000000")),
    ):
        assert text_of(carry.repair(*other)) == "e"
    assert text_of(carry.repair("a", segment(b"e", 2, ref=1))) == "\u20ac"


def test_a_full_continuation_no_longer_fits_and_is_refused() -> None:
    carry = EscapeCarry(lambda: NOW)
    carry.repair("a", segment(b"x" * 152 + b"\x1b", 1, total=3))
    repaired = carry.repair("a", segment(b"e" + b"y" * 152, 2, total=3))
    with pytest.raises(SubmitRefused) as refused:
        text_of(repaired)
    assert refused.value.status == p.CommandStatus.ESME_RINVMSGLEN


def test_sar_segments_and_payload_are_repaired_too() -> None:
    carry = EscapeCarry(lambda: NOW)
    sar = [(p.Tag.SAR_MSG_REF_NUM, b"\0\x09"), (p.Tag.SAR_TOTAL_SEGMENTS, b"\2")]
    first = p.SubmitSm(
        destination_addr="47",
        tlvs=[*sar, (p.Tag.SAR_SEGMENT_SEQNUM, b"\1"), (p.Tag.MESSAGE_PAYLOAD, b"a\x1b")],
    )
    second = p.SubmitSm(
        destination_addr="47",
        short_message=b"e",
        tlvs=[*sar, (p.Tag.SAR_SEGMENT_SEQNUM, b"\2")],
    )
    repaired = carry.repair("a", first)
    assert repaired.tlv(p.Tag.MESSAGE_PAYLOAD) == b"a" and repaired.short_message == b""
    assert carry.repair("a", second).short_message == b"\x1be"


def test_entries_expire_and_are_bounded() -> None:
    now = [NOW]
    carry = EscapeCarry(lambda: now[0], ttl=10, max_entries=3)
    for ref in range(5):
        carry.repair("a", segment(b"\x1b", 1, ref=ref))
    assert len(carry) == 3
    now[0] += 11
    carry.repair("a", segment(b"\x1b", 1, ref=9))
    assert len(carry) == 1
    # Ref 4's continuation comes too late: it is left as it is.
    late = segment(b"e", 2, ref=4)
    assert carry.repair("a", late) is late
    assert len(carry) == 1


@given(st.binary(max_size=160), st.binary(max_size=160))
def test_any_two_segments_keep_their_octets_in_order(a: bytes, b: bytes) -> None:
    carry = EscapeCarry(lambda: NOW)
    first = carry.repair("x", segment(a, 1))
    second = carry.repair("x", segment(b, 2))
    # Whatever moved, the two bodies together are the original octets, and the
    # first no longer ends inside an escape pair.
    bodies = first.short_message[6:] + second.short_message[6:]
    assert bodies == a + b
    assert not dangling_escape(first.short_message[6:])
