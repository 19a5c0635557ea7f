"""Delivery receipts: Appendix B text, TLVs, tolerant parsing (gateway.smpp.receipts)."""

from __future__ import annotations

import string
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.smpp.pdu import DeliverSm, MessageState
from gateway.smpp.receipts import (
    STAT_STATE,
    ParsedReceipt,
    ReceiptError,
    ascii_text,
    build_receipt,
    format_receipt_text,
    parse_receipt_date,
    parse_receipt_text,
)

SUBMITTED = datetime(2024, 1, 2, 3, 4, 59, tzinfo=UTC).timestamp()
DONE = datetime(2024, 1, 2, 3, 5, 1, tzinfo=UTC).timestamp()


def receipt(**overrides: object) -> bytes:
    args: dict[str, object] = {
        "message_id": "1234567890",
        "sub": 1,
        "dlvrd": 1,
        "submit_date": SUBMITTED,
        "done_date": DONE,
        "stat": "DELIVRD",
        "err": 0,
        "text": "Hello world, this is a longer text",
    }
    args.update(overrides)
    return format_receipt_text(**args)  # type: ignore[arg-type]


def test_exact_text() -> None:
    assert receipt() == (
        b"id:1234567890 sub:001 dlvrd:001 submit date:2401020304 done date:2401020305"
        b" stat:DELIVRD err:000 text:Hello world, this is"
    )


@pytest.mark.parametrize(
    ("overrides", "tail"),
    [
        ({"stat": "UNDELIV", "err": 222, "dlvrd": 0}, b"stat:UNDELIV err:222 text:Hi"),
        ({"stat": "EXPIRED", "err": 10}, b"stat:EXPIRED err:010 text:Hi"),
        ({"err": "10"}, b"err:010 text:Hi"),
        ({"err": "ABC"}, b"err:ABC text:Hi"),
        # ASCII spellings where they exist, '?' where none does (issue 14).
        ({"text": "Grüße € 😀"}, b"text:Grusse EUR ?"),
        ({"text": "Grüße £5"}, b"text:Grusse ?5"),
        ({"text": "Ærøskøbing café"}, b"text:AEroskobing cafe"),
        ({"text": "ßßßßßßßßßßßßßßßßßßßß"}, b"text:ssssssssssssssssssss"),
        ({"text": "two\nlines\x00\x7f"}, b"text:two?lines??"),
        ({"text": ""}, b"err:000 text:"),
    ],
)
def test_text_variants(overrides: dict[str, object], tail: bytes) -> None:
    merged: dict[str, object] = {"text": "Hi", **overrides}
    assert receipt(**merged).endswith(tail)


def test_sub_and_dlvrd_are_three_digits() -> None:
    assert b" sub:012 dlvrd:000 " in receipt(sub=12, dlvrd=0)


@pytest.mark.parametrize(
    ("stat", "state"),
    [
        ("ENROUTE", MessageState.ENROUTE),
        ("DELIVRD", MessageState.DELIVERED),
        ("EXPIRED", MessageState.EXPIRED),
        ("DELETED", MessageState.DELETED),
        ("UNDELIV", MessageState.UNDELIVERABLE),
        ("ACCEPTD", MessageState.ACCEPTED),
        ("UNKNOWN", MessageState.UNKNOWN),
        ("REJECTD", MessageState.REJECTED),
    ],
)
def test_stat_state(stat: str, state: MessageState) -> None:
    assert STAT_STATE[stat] is state


def test_stat_state_has_only_the_eight_words() -> None:
    assert len(STAT_STATE) == 8


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            # LINK's default format: 12-digit dates
            b"id:abc123 sub:001 dlvrd:001 submit date:240102030405 done date:240102030506"
            b" stat:DELIVRD err:000 text:Hi there",
            ParsedReceipt(
                "abc123", 1, 1, "240102030405", "240102030506", "DELIVRD", "000", "Hi there"
            ),
        ),
        (
            # minute-only dates, upper-case labels, Text:, lower-case stat
            b"ID:77 SUB:001 DLVRD:000 SUBMIT DATE:2401020304 DONE DATE:2401020305"
            b" STAT:undeliv ERR:222 Text:x",
            ParsedReceipt("77", 1, 0, "2401020304", "2401020305", "UNDELIV", "222", "x"),
        ),
        (
            # no sub, dlvrd, text
            b"id:42 submit date:2401020304 done date:2401020305 stat:EXPIRED err:10",
            ParsedReceipt("42", None, None, "2401020304", "2401020305", "EXPIRED", "10", ""),
        ),
        (
            # only id and stat, extra spaces, a NUL-terminated text
            b"id:9  stat:REJECTD  text:ab\x00",
            ParsedReceipt("9", None, None, "", "", "REJECTD", "", "ab"),
        ),
        (
            # the text may look like fields
            b"id:1 sub:001 dlvrd:001 submit date:2401020304 done date:2401020305 stat:DELIVRD"
            b" err:000 text:stat:REJECTD id:2",
            ParsedReceipt(
                "1", 1, 1, "2401020304", "2401020305", "DELIVRD", "000", "stat:REJECTD id:2"
            ),
        ),
    ],
)
def test_parse_tolerant(data: bytes, expected: ParsedReceipt) -> None:
    assert parse_receipt_text(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"Hello, this is an MO message",
        b"id: stat:DELIVRD",
        b"id:1 sub:001 dlvrd:001",
        b"stat:DELIVRD id:1",
        b"id:1 submit date:24010203 stat:DELIVRD",
        b"\xff\xfe\x00",
    ],
)
def test_parse_garbage(data: bytes) -> None:
    with pytest.raises(ReceiptError):
        parse_receipt_text(data)


def test_receipt_error_is_a_value_error() -> None:
    assert issubclass(ReceiptError, ValueError)


def _build(interface_version: int, **overrides: object) -> DeliverSm:
    args: dict[str, object] = {
        "message_id": "42",
        "source_addr": "4799999999",
        "source_addr_ton": 1,
        "source_addr_npi": 1,
        "destination_addr": "Shop",
        "dest_addr_ton": 5,
        "dest_addr_npi": 0,
        "stat": "DELIVRD",
        "err": 0,
        "sub": 1,
        "dlvrd": 1,
        "submit_date": SUBMITTED,
        "done_date": DONE,
        "text": "Hello",
        "interface_version": interface_version,
    }
    args.update(overrides)
    return build_receipt(**args)  # type: ignore[arg-type]


def test_build_receipt_for_34() -> None:
    pdu = _build(0x34, stat="UNDELIV", err=222, dlvrd=0)
    assert pdu.esm_class == 0x04
    assert pdu.data_coding == 0
    assert (pdu.source_addr, pdu.source_addr_ton, pdu.source_addr_npi) == ("4799999999", 1, 1)
    assert (pdu.destination_addr, pdu.dest_addr_ton, pdu.dest_addr_npi) == ("Shop", 5, 0)
    assert pdu.short_message == (
        b"id:42 sub:001 dlvrd:000 submit date:2401020304 done date:2401020305"
        b" stat:UNDELIV err:222 text:Hello"
    )
    assert pdu.tlvs == [
        (0x001E, b"42\x00"),
        (0x0427, b"\x05"),
        (0x0423, b"\x03\x00\xde"),
    ]


@pytest.mark.parametrize("version", [0x50, 0x35])
def test_build_receipt_tlvs_for_newer_binds(version: int) -> None:
    assert [tag for tag, _ in _build(version).tlvs] == [0x001E, 0x0427, 0x0423]


@pytest.mark.parametrize("version", [0x33, 0x00, 0x30])
def test_build_receipt_no_tlvs_for_33(version: int) -> None:
    assert _build(version).tlvs == []


def test_build_receipt_rejects_unknown_stat() -> None:
    with pytest.raises(KeyError):
        _build(0x34, stat="FAILED")


def _sanitized(text: str) -> str:
    return "".join(ch if " " <= ch <= "~" else "?" for ch in ascii_text(text[:20])[:20])


@given(
    message_id=st.text(
        alphabet=string.ascii_letters + string.digits + "-$_", min_size=1, max_size=64
    ),
    sub=st.integers(0, 999),
    dlvrd=st.integers(0, 999),
    submit_date=st.floats(946684800, 4102444799),
    done_date=st.floats(946684800, 4102444799),
    stat=st.sampled_from(sorted(STAT_STATE)),
    err=st.integers(0, 999),
    text=st.text(max_size=40),
)
def test_round_trip(
    message_id: str,
    sub: int,
    dlvrd: int,
    submit_date: float,
    done_date: float,
    stat: str,
    err: int,
    text: str,
) -> None:
    data = format_receipt_text(
        message_id=message_id,
        sub=sub,
        dlvrd=dlvrd,
        submit_date=submit_date,
        done_date=done_date,
        stat=stat,
        err=err,
        text=text,
    )
    assert data.isascii()
    parsed = parse_receipt_text(data)
    assert parsed.message_id == message_id
    assert (parsed.sub, parsed.dlvrd) == (sub, dlvrd)
    assert len(parsed.submit_date) == len(parsed.done_date) == 10
    assert parsed.stat == stat
    assert parsed.err == f"{err:03d}"
    assert parsed.text == _sanitized(text)


# --- LINK's SMPP receipts (seed 004): both date formats ---------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            # the default format: dates with seconds, empty text
            b"id:3000000001 sub:001 dlvrd:001 submit date:240102030405"
            b" done date:240102030506 stat:DELIVRD err:000 text:",
            ParsedReceipt("3000000001", 1, 1, "240102030405", "240102030506", "DELIVRD", "000", ""),
        ),
        (
            # the alternative: without seconds
            b"id:B2D05E01 sub:001 dlvrd:000 submit date:2401020304"
            b" done date:2401020305 stat:REJECTD err:945 text:",
            ParsedReceipt("B2D05E01", 1, 0, "2401020304", "2401020305", "REJECTD", "945", ""),
        ),
        (
            # mixed, as a NUL-terminated C-string
            b"id:0042 sub:001 dlvrd:000 submit date:2401020304"
            b" done date:240102030506 stat:ACCEPTD err:223 text:\x00",
            ParsedReceipt("0042", 1, 0, "2401020304", "240102030506", "ACCEPTD", "223", ""),
        ),
    ],
)
def test_parse_link_formats(data: bytes, expected: ParsedReceipt) -> None:
    assert parse_receipt_text(data) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("240102030506", datetime(2024, 1, 2, 3, 5, 6, tzinfo=UTC).timestamp()),
        ("2401020305", datetime(2024, 1, 2, 3, 5, tzinfo=UTC).timestamp()),
        ("240229235959", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC).timestamp()),
        ("991231235959", datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()),
        ("", None),
        ("24010203", None),
        ("24010203050", None),
        ("2401020305066", None),
        ("230229000000", None),  # no 29 February in 2023
        ("241301000000", None),
        ("240100000000", None),
        ("240102240000", None),
        ("240102236000", None),
        ("240102235960", None),
        ("٢٤٠١٠٢٠٣٠٥", None),  # non-ASCII digits
    ],
)
def test_parse_receipt_date(value: str, expected: float | None) -> None:
    assert parse_receipt_date(value) == expected


def test_receipt_date_round_trip() -> None:
    parsed = parse_receipt_text(receipt())
    assert parse_receipt_date(parsed.done_date) == DONE - DONE % 60


@given(st.text(max_size=20))
def test_parse_receipt_date_never_raises(value: str) -> None:
    result = parse_receipt_date(value)
    assert result is None or isinstance(result, float)


@given(st.binary(max_size=300))
def test_parse_receipt_text_raises_only_receipt_error(data: bytes) -> None:
    try:
        parsed = parse_receipt_text(data)
    except ReceiptError:
        return
    assert parsed.message_id and parsed.stat
    assert parse_receipt_date(parsed.done_date) is None or parsed.done_date


@pytest.mark.parametrize("err", [-1, 1000, 65535])
def test_an_err_outside_three_digits_is_refused_not_clamped(err: int) -> None:
    # 999 is a real LINK code: nothing may become it by accident (gateway.mapping
    # turns LINK's oversized errs into 099 before they get here).
    with pytest.raises(ValueError):
        receipt(err=err)
