"""data_coding <-> text, UDH parsing and segmentation (gateway.smpp.text)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.smpp.pdu import CommandStatus
from gateway.smpp.text import (
    Concat,
    Content,
    TextError,
    decode_content,
    encode_for_esme,
    parse_udh,
    segment,
)

RSUBMITFAIL = CommandStatus.ESME_RSUBMITFAIL
RINVESMCLASS = CommandStatus.ESME_RINVESMCLASS
CONCAT_8 = bytes.fromhex("0500032A0201")

# GSM 03.38 extension table, escape 0x1B then the code.
GSM_EXTENSION = [
    ("€", b"\x1b\x65"),
    ("[", b"\x1b\x3c"),
    ("]", b"\x1b\x3e"),
    ("{", b"\x1b\x28"),
    ("}", b"\x1b\x29"),
    ("~", b"\x1b\x3d"),
    ("^", b"\x1b\x14"),
    ("\\", b"\x1b\x2f"),
    ("|", b"\x1b\x40"),
    ("\f", b"\x1b\x0a"),
]


def text_of(data_coding: int, payload: bytes, **kwargs: object) -> str | None:
    return decode_content(data_coding, payload, udhi=False, **kwargs).text  # type: ignore[arg-type]


# --- GSM 03.38 ----------------------------------------------------------------


@pytest.mark.parametrize(("char", "octets"), GSM_EXTENSION)
def test_gsm_extension_characters(char: str, octets: bytes) -> None:
    assert text_of(0, b"a" + octets + b"b") == f"a{char}b"


@pytest.mark.parametrize(
    ("octets", "text"),
    [
        (b"Hello world", "Hello world"),
        (b"\x00\x01\x02\x03\x11", "@£$¥_"),
        (b"\x5b\x5c\x5d\x5e\x5f\x7b\x7c\x7d\x7e", "ÄÖÑÜ§äöñü"),
        (b"\x0e\x0f\x1c\x1d\x1e\x1f\x40\x60", "ÅåÆæßÉ¡¿"),
        (b"\x10\x12\x13\x14\x15\x16\x17\x18\x19\x1a", "ΔΦΓΛΩΠΨΣΘΞ"),
        (b"Price: 5\x1b\x65 [x]", "Price: 5€ ÄxÑ"),
        (b"", ""),
    ],
)
def test_gsm_basic(octets: bytes, text: str) -> None:
    content = decode_content(0, octets, udhi=False)
    assert content == Content("TEXT", text, None, None, False)


@pytest.mark.parametrize(
    "octets",
    [b"abc\x1b", b"\x1b\x1b\x65", b"\x1b\x41", b"\x1b\x80", b"caf\xe9", b"\x80", b"\xff"],
)
def test_gsm_undecodable(octets: bytes) -> None:
    with pytest.raises(TextError) as info:
        decode_content(0, octets, udhi=False)
    assert info.value.status == RSUBMITFAIL


def test_data_coding_0_can_mean_latin1() -> None:
    assert text_of(0, b"caf\xe9 \x80", default_alphabet="latin1") == "café \x80"
    with pytest.raises(TextError):
        text_of(0, b"caf\xe9", default_alphabet="gsm")


# --- other alphabets ------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_coding", "octets", "text"),
    [
        (1, b"Hello ~{}", "Hello ~{}"),
        (3, b"Gr\xfc\xdfe \xa4\xe9", "Grüße ¤é"),
        (6, b"\xbf\xe0\xd8\xd2\xd5\xe2", "Привет"),
        (7, b"\xf9\xec\xe5\xed", "שלום"),
        (8, bytes.fromhex("041F044004380432043504420020 20AC".replace(" ", "")), "Привет €"),
        (8, b"\x00H\x00i", "Hi"),
        (8, b"", ""),
    ],
)
def test_text_alphabets(data_coding: int, octets: bytes, text: str) -> None:
    assert decode_content(data_coding, octets, udhi=False) == Content(
        "TEXT", text, None, None, False
    )


@pytest.mark.parametrize(
    ("data_coding", "octets"),
    [
        (1, b"caf\xe9"),
        (8, b"\x00H\x00"),  # odd length
        (8, b"\xd8\x3d\xde\x00"),  # surrogate pair: outside the BMP
        (8, b"\xd8\x00\x00A"),  # unpaired high surrogate
        (8, b"\xde\x00"),  # unpaired low surrogate
    ],
)
def test_text_refused(data_coding: int, octets: bytes) -> None:
    with pytest.raises(TextError) as info:
        decode_content(data_coding, octets, udhi=False)
    assert info.value.status == RSUBMITFAIL


@pytest.mark.parametrize(
    ("data_coding", "flash"),
    [(0x02, False), (0x04, False), (0xF4, True), (0xF5, False), (0xF6, False), (0xF7, False)],
)
def test_binary(data_coding: int, flash: bool) -> None:
    content = decode_content(data_coding, b"\x00\xab\xff", udhi=False)
    assert content == Content("BINARY", None, "00ABFF", None, flash)


@pytest.mark.parametrize(
    ("data_coding", "payload", "dcs", "text", "flash"),
    [
        (0xF0, b"Hi\x1b\x65", "TEXT", "Hi€", True),
        (0xF1, b"Hi", "TEXT", "Hi", False),
        (0xF2, b"Hi", "TEXT", "Hi", False),
        (0xF3, b"Hi", "TEXT", "Hi", False),
        (0x10, b"Hi", "TEXT", "Hi", True),
        (0x11, b"Hi", "TEXT", "Hi", False),
        (0x18, b"\x00H\x00i", "TEXT", "Hi", True),
        (0x1A, b"\x00H\x00i", "TEXT", "Hi", False),
        (0x14, b"Hi", "BINARY", None, True),
        (0x15, b"Hi", "BINARY", None, False),
    ],
)
def test_message_class_groups(
    data_coding: int, payload: bytes, dcs: str, text: str | None, flash: bool
) -> None:
    content = decode_content(data_coding, payload, udhi=False)
    assert (content.dcs, content.text, content.flash) == (dcs, text, flash)


@pytest.mark.parametrize(
    "data_coding", [5, 9, 0x0A, 0x0B, 0x0D, 0x0E, 0x0F, 0x1C, 0x20, 0x40, 0xC0, 0xF8, 0xFF, 256, -1]
)
def test_unknown_data_coding(data_coding: int) -> None:
    with pytest.raises(TextError) as info:
        decode_content(data_coding, b"Hi", udhi=False)
    assert info.value.status == RSUBMITFAIL


# --- UDH ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_coding", "body", "dcs", "text", "hex_"),
    [
        (0, b"Hello \x1b\x65", "GSM", "Hello €", None),
        (0xF0, b"Hello", "GSM", "Hello", None),
        (8, b"\x04\x1f\x00!", "UCS2", "П!", None),
        (4, b"\x01\x02", "BINARY", None, "0102"),
        (3, b"caf\xe9 \xdf", "GSM", "café ß", None),  # Latin-1 but all GSM
        (3, b"caf\xea", "UCS2", "cafê", None),  # ê is not GSM
        (1, b"[x]", "GSM", "[x]", None),
    ],
)
def test_udhi_keeps_segment_dcs(
    data_coding: int, body: bytes, dcs: str, text: str | None, hex_: str | None
) -> None:
    content = decode_content(data_coding, CONCAT_8 + body, udhi=True)
    assert content == Content(dcs, text, hex_, CONCAT_8, data_coding == 0xF0)


def test_udhi_with_only_a_header() -> None:
    assert decode_content(0, CONCAT_8, udhi=True) == Content("GSM", "", None, CONCAT_8, False)


def test_latin1_segment_that_cannot_fit_once_reencoded() -> None:
    with pytest.raises(TextError) as info:
        decode_content(3, CONCAT_8 + b"\xea" * 100, udhi=True)
    assert info.value.status == RSUBMITFAIL


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x05\x00\x03\x01",  # UDHL beyond the payload
        b"\x03\x00\x03\x01Hi",  # IE overruns the UDH
        b"\x04\x00\x02\x01\x01Hi",  # concat IE of length 2
        b"\x05\x00\x03\x01\x02\x00Hi",  # seq 0
        b"\x05\x00\x03\x01\x02\x03Hi",  # seq > total
        b"\x05\x00\x03\x01\x00\x00Hi",  # total 0
        b"\x05\x08\x03\x01\x02\x01Hi",  # 16-bit concat IE of length 3
        b"\x03\x04\x01\x05Hi",  # 8-bit port IE of length 1
        b"\x01\x00Hi",  # IE header cut short
    ],
)
def test_malformed_udh(payload: bytes) -> None:
    with pytest.raises(TextError) as info:
        decode_content(0, payload, udhi=True)
    assert info.value.status == RINVESMCLASS


def test_parse_udh_8_bit_concat() -> None:
    udh = parse_udh(CONCAT_8)
    assert udh.concat == Concat(ref=0x2A, total=2, seq=1, ref_bits=8)
    assert udh.elements == ((0x00, b"\x2a\x02\x01"),)
    assert (udh.dest_port, udh.src_port) == (None, None)


def test_parse_udh_16_bit_concat_and_unknown_ie() -> None:
    udh = parse_udh(bytes.fromhex("0A 08 04 1234 03 02 24 02 AA BB".replace(" ", "")))
    assert udh.concat == Concat(ref=0x1234, total=3, seq=2, ref_bits=16)
    assert udh.elements[1] == (0x24, b"\xaa\xbb")


def test_parse_udh_ports() -> None:
    wap = parse_udh(bytes.fromhex("0605040B8423F0"))
    assert (wap.dest_port, wap.src_port, wap.concat) == (2948, 9200, None)
    eight = parse_udh(bytes.fromhex("0404021005"))
    assert (eight.dest_port, eight.src_port) == (0x10, 0x05)


def test_parse_udh_empty_header() -> None:
    assert parse_udh(b"\x00").elements == ()


def test_parse_udh_length_mismatch() -> None:
    with pytest.raises(TextError):
        parse_udh(CONCAT_8 + b"x")


# --- towards the ESME -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "data_coding", "octets"),
    [
        ("Hello €[]", 0, b"Hello \x1b\x65\x1b\x3c\x1b\x3e"),
        ("", 0, b""),
        ("Привет", 8, bytes.fromhex("041F0440043804320435 0442".replace(" ", ""))),
        ("😀", 8, b"\xd8\x3d\xde\x00"),
        ("café", 0, b"caf\x05"),  # é is in GSM 03.38
        ("cafê", 8, b"\x00c\x00a\x00f\x00\xea"),  # ê is not
    ],
)
def test_encode_for_esme(text: str, data_coding: int, octets: bytes) -> None:
    assert encode_for_esme(text) == (data_coding, octets)


def test_segment_single_parts() -> None:
    assert segment("a" * 160, 1) == [(0, b"", b"a" * 160)]
    assert segment("ж" * 70, 1) == [(8, b"", "ж".encode("utf-16-be") * 70)]


def test_segment_gsm_parts() -> None:
    parts = segment("a" * 161, 0x1FF)
    assert parts == [
        (0, bytes.fromhex("050003FF0201"), b"a" * 153),
        (0, bytes.fromhex("050003FF0202"), b"a" * 8),
    ]


def test_segment_never_splits_an_escape() -> None:
    parts = segment("a" * 152 + "€" + "b" * 10, 7)
    assert parts[0][2] == b"a" * 152
    assert parts[1][2] == b"\x1b\x65" + b"b" * 10


def test_segment_never_splits_a_surrogate_pair() -> None:
    parts = segment("ж" * 66 + "😀" + "ж" * 10, 7)
    assert len(parts[0][2]) == 132
    assert parts[1][2].startswith(b"\xd8\x3d\xde\x00")


def test_segment_ucs2_parts() -> None:
    parts = segment("ж" * 71, 3)
    assert [(dc, udh, len(body)) for dc, udh, body in parts] == [
        (8, bytes.fromhex("050003030201"), 134),
        (8, bytes.fromhex("050003030202"), 8),
    ]


def test_segment_too_many_parts() -> None:
    with pytest.raises(TextError):
        segment("a" * (153 * 255 + 1), 1)


# --- properties -------------------------------------------------------------------

GSM_ALPHABET = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCXYZÄÖÑÜ§¿abcxyzäöñüà€[]{}~^\\|\f"  # noqa: E501


@given(st.integers(min_value=-1, max_value=256), st.binary(max_size=300), st.booleans())
def test_decode_content_raises_only_text_error(
    data_coding: int, payload: bytes, udhi: bool
) -> None:
    try:
        content = decode_content(data_coding, payload, udhi=udhi)
    except TextError as exc:
        assert exc.status in (RSUBMITFAIL, RINVESMCLASS)
        return
    assert (content.text is None) != (content.hex is None)


def _reassemble(parts: list[tuple[int, bytes, bytes]]) -> str:
    total = len(parts)
    pieces = []
    for seq, (data_coding, udh, body) in enumerate(parts, start=1):
        if total > 1:
            assert parse_udh(udh).concat == Concat(ref=0xAB, total=total, seq=seq, ref_bits=8)
            septets_or_octets = (len(udh) * 8 + 6) // 7 + len(body)
        else:
            assert udh == b""
            septets_or_octets = len(body)
        if data_coding == 0:
            assert septets_or_octets <= 160  # 140 octets once packed
            pieces.append(decode_content(0, body, udhi=False).text or "")
        else:
            assert len(udh) + len(body) <= 140
            pieces.append(body.decode("utf-16-be"))  # strict: no split surrogate pair
    return "".join(pieces)


@given(st.text(alphabet=GSM_ALPHABET, max_size=700))
def test_segment_gsm_reassembles(text: str) -> None:
    assert _reassemble(segment(text, 0xAB)) == text


@given(st.text(max_size=400))
def test_segment_any_text_reassembles(text: str) -> None:
    assert _reassemble(segment(text, 0xAB)) == text


def test_sans_io_modules_import_no_twisted() -> None:
    code = (
        "import sys, gateway.smpp.text, gateway.smpp.times, gateway.smpp.receipts;"
        "sys.exit('twisted' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
