"""data_coding <-> text, UDH parsing and segmentation (gateway.smpp.text)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
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
RINVMSGLEN = CommandStatus.ESME_RINVMSGLEN
CONCAT_8 = bytes.fromhex("0500032A0201")
CONCAT_16 = bytes.fromhex("060804BEEF0302")

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


def refusal(data_coding: int, payload: bytes, *, udhi: bool = False, **kwargs: object) -> int:
    with pytest.raises(TextError) as info:
        decode_content(data_coding, payload, udhi=udhi, **kwargs)  # type: ignore[arg-type]
    return info.value.status


# --- every data_coding value, with literal octets -----------------------------------
#
# (data_coding, octets, expected Content) for each value the gateway carries;
# written out here, never read from the module's own table.

TEXT = "TEXT"
ACCEPTED: list[tuple[int, bytes, Content]] = [
    # 0: GSM 03.38 unpacked, extension table included
    (0x00, b"Hi \x1b\x14\x1b\x28\x1b\x29\x1b\x2f", Content(TEXT, "Hi ^{}\\", None, None, False)),
    (0x00, b"\x1b\x3c\x1b\x3d\x1b\x3e\x1b\x40\x1b\x65", Content(TEXT, "[~]|€", None, None, False)),
    # 1: IA5 (ASCII), 7 bits only
    (0x01, b"Hello ~{}[]\\|^", Content(TEXT, "Hello ~{}[]\\|^", None, None, False)),
    # 2: 8-bit binary
    (0x02, b"\x00\x7f\x80\xff", Content("BINARY", None, "007F80FF", None, False)),
    # 3: Latin-1
    (0x03, b"Gr\xfc\xdfe \xa4\xe9\xff", Content(TEXT, "Grüße ¤éÿ", None, None, False)),
    # 4: 8-bit binary
    (0x04, b"\x0b\x84\x23\xf0", Content("BINARY", None, "0B8423F0", None, False)),
    # 8: UCS-2 big-endian, BMP only
    (
        0x08,
        b"\x04\x1f\x04\x40\x04\x38\x00\x20\x20\xac\x00\x21",
        Content(TEXT, "При €!", None, None, False),
    ),
    (0x08, b"\x4e\x2d\x65\x87\xff\xfd", Content(TEXT, "中文\ufffd", None, None, False)),
    # GSM 03.38 general group 00xx: bits 3-2 alphabet, class 0 (bits 1-0 = 0) is flash
    (0x10, b"Flash", Content(TEXT, "Flash", None, None, True)),
    (0x11, b"Hi", Content(TEXT, "Hi", None, None, False)),
    (0x12, b"Hi", Content(TEXT, "Hi", None, None, False)),
    (0x13, b"Hi", Content(TEXT, "Hi", None, None, False)),
    (0x14, b"\x01\x02", Content("BINARY", None, "0102", None, True)),
    (0x15, b"\x01\x02", Content("BINARY", None, "0102", None, False)),
    (0x16, b"\x01\x02", Content("BINARY", None, "0102", None, False)),
    (0x17, b"\x01\x02", Content("BINARY", None, "0102", None, False)),
    (0x18, b"\x00H\x00i", Content(TEXT, "Hi", None, None, True)),
    (0x19, b"\x00H\x00i", Content(TEXT, "Hi", None, None, False)),
    (0x1A, b"\x00H\x00i", Content(TEXT, "Hi", None, None, False)),
    (0x1B, b"\x00H\x00i", Content(TEXT, "Hi", None, None, False)),
    # Data coding / message class group 1111 0xxx: bit 2 8-bit, bits 1-0 class
    (0xF0, b"Hi\x1b\x65", Content(TEXT, "Hi€", None, None, True)),
    (0xF1, b"Hi", Content(TEXT, "Hi", None, None, False)),
    (0x06, b"\xbf\xe0\xd8\xd2\xd5\xe2", Content(TEXT, "Привет", None, None, False)),
    (0x07, b"\xf9\xec\xe5\xed", Content(TEXT, "שלום", None, None, False)),
    (0xF2, b"Hi", Content(TEXT, "Hi", None, None, False)),
    (0xF3, b"Hi", Content(TEXT, "Hi", None, None, False)),
    (0xF4, b"\x00\xab\xff", Content("BINARY", None, "00ABFF", None, True)),
    (0xF5, b"\x00\xab\xff", Content("BINARY", None, "00ABFF", None, False)),
    (0xF6, b"\x00\xab\xff", Content("BINARY", None, "00ABFF", None, False)),
    (0xF7, b"\x00\xab\xff", Content("BINARY", None, "00ABFF", None, False)),
]
CARRIED = frozenset(row[0] for row in ACCEPTED)


@pytest.mark.parametrize(
    ("data_coding", "octets", "content"), ACCEPTED, ids=[f"0x{r[0]:02X}" for r in ACCEPTED]
)
def test_data_coding(data_coding: int, octets: bytes, content: Content) -> None:
    assert decode_content(data_coding, octets, udhi=False) == content


def test_accepted_table_names_every_carried_value() -> None:
    assert sorted(CARRIED) == [
        *(0x00, 0x01, 0x02, 0x03, 0x04, 0x06, 0x07, 0x08),
        *range(0x10, 0x1C),
        *range(0xF0, 0xF8),
    ]


@pytest.mark.parametrize(
    "data_coding", [dc for dc in range(256) if dc not in CARRIED], ids=lambda dc: f"0x{dc:02X}"
)
def test_every_other_data_coding_is_refused(data_coding: int) -> None:
    # "Hi" is valid in every alphabet the gateway knows: only the coding is wrong.
    assert refusal(data_coding, b"Hi") == RSUBMITFAIL


@pytest.mark.parametrize(
    ("data_coding", "octets", "what"),
    [
        (0x05, b"\x82\xa0", "JIS"),
        (0x09, b"\x01", "pictogram"),
        (0x0A, b"\x1b$B", "ISO-2022-JP"),
        (0x0D, b"\x81\x40", "extended kanji"),
        (0x0E, b"\xb0\xa1", "KS C 5601"),
        (0x1C, b"Hi", "general group, alphabet 11 (reserved)"),
        (0x20, b"Hi", "compressed"),
        (0x40, b"Hi", "marked for automatic deletion"),
        (0xC0, b"Hi", "message waiting, discard"),
        (0xE0, b"\x00H", "message waiting, UCS-2"),
        (0xF8, b"Hi", "class group with the reserved bit 3"),
        (0xFF, b"Hi", "class group with the reserved bit 3"),
        (256, b"Hi", "not an octet"),
        (-1, b"Hi", "not an octet"),
    ],
)
def test_unsupported_codings_refused(data_coding: int, octets: bytes, what: str) -> None:
    assert refusal(data_coding, octets) == RSUBMITFAIL, what


# --- data_coding 0: GSM 03.38 -----------------------------------------------------


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
        (b"\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x7f", "èéùìòÇ\nØø\rà"),
        (b"Price: 5\x1b\x65 [x]", "Price: 5€ ÄxÑ"),
        (b"\x1b\x65\x1b\x65", "€€"),
        (b"", ""),
    ],
)
def test_gsm_basic(octets: bytes, text: str) -> None:
    content = decode_content(0, octets, udhi=False)
    assert content == Content("TEXT", text, None, None, False)


@pytest.mark.parametrize(
    ("octets", "why"),
    [
        (b"abc\x1b", "escape as the last octet"),
        (b"\x1b", "escape alone"),
        (b"\x1b\x1b\x65", "0x1B 0x1B: reserved for another extension table"),
        (b"\x1b\x41", "escape before a code with no extension meaning"),
        (b"\x1b\x00", "escape before a code with no extension meaning"),
        (b"\x1b\x80", "escape before an octet that is no septet"),
        (b"caf\xe9", "an octet above 0x7F"),
        (b"\x80", "an octet above 0x7F"),
        (b"\xff", "an octet above 0x7F"),
    ],
)
def test_gsm_undecodable(octets: bytes, why: str) -> None:
    # Refused, never mapped to a space or dropped (see gateway.smpp.text).
    assert refusal(0, octets) == RSUBMITFAIL, why


def test_data_coding_0_can_mean_latin1() -> None:
    assert text_of(0, b"caf\xe9 \x80", default_alphabet="latin1") == "café \x80"
    assert text_of(0, b"\x1b\x65", default_alphabet="latin1") == "\x1be"
    assert refusal(0, b"caf\xe9", default_alphabet="gsm") == RSUBMITFAIL


def test_latin1_alphabet_does_not_change_the_other_codings() -> None:
    assert text_of(0xF0, b"\x1b\x65", default_alphabet="latin1") == "€"
    assert refusal(1, b"\xe9", default_alphabet="latin1") == RSUBMITFAIL


# --- data_coding 1, 3, 8 ----------------------------------------------------------


@pytest.mark.parametrize("octets", [b"caf\xe9", b"\x80", b"\xff", b"ok\xa4"])
def test_ia5_refuses_octets_above_0x7f(octets: bytes) -> None:
    assert refusal(1, octets) == RSUBMITFAIL


def test_latin1_takes_every_octet() -> None:
    assert text_of(3, bytes(range(256))) == bytes(range(256)).decode("latin-1")


@pytest.mark.parametrize(
    ("octets", "status"),
    [
        (b"\x00H\x00", RINVMSGLEN),  # odd length
        (b"\x00", RINVMSGLEN),
        (b"\xd8\x3d\xde\x00", RSUBMITFAIL),  # surrogate pair: U+1F600, outside the BMP
        (b"\x00A\xdb\xff\xdf\xff", RSUBMITFAIL),  # U+10FFFF
        (b"\xd8\x00\x00A", RSUBMITFAIL),  # unpaired high surrogate
        (b"\x00A\xd8\x00", RSUBMITFAIL),  # high surrogate at the end
        (b"\xde\x00", RSUBMITFAIL),  # unpaired low surrogate
    ],
)
def test_ucs2_refused(octets: bytes, status: int) -> None:
    assert refusal(8, octets) == status


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


@pytest.mark.parametrize("udh", [CONCAT_8, CONCAT_16], ids=["8-bit ref", "16-bit ref"])
def test_both_concat_references_accepted(udh: bytes) -> None:
    content = decode_content(0, udh + b"part", udhi=True)
    assert content == Content("GSM", "part", None, udh, False)


def test_udhi_with_only_a_header() -> None:
    assert decode_content(0, CONCAT_8, udhi=True) == Content("GSM", "", None, CONCAT_8, False)


def test_udhi_with_an_empty_header() -> None:
    assert decode_content(0, b"\x00Hi", udhi=True) == Content("GSM", "Hi", None, b"\x00", False)


def test_latin1_segment_that_cannot_fit_once_reencoded() -> None:
    assert refusal(3, CONCAT_8 + b"\xea" * 100, udhi=True) == RSUBMITFAIL


@pytest.mark.parametrize(
    ("data_coding", "body_fits", "body_too_long"),
    [
        # 6-octet UDH = 7 septets: 153 septets of text are left
        (0, b"a" * 153, b"a" * 154),
        (0, b"a" * 151 + b"\x1b\x65", b"a" * 152 + b"\x1b\x65"),  # € is two septets
        # 140 - 6 octets: 67 UCS-2 characters, 134 binary octets
        (8, b"\x00a" * 67, b"\x00a" * 68),
        (4, b"\x01" * 134, b"\x01" * 135),
    ],
)
def test_esme_segment_must_fit_one_sms(
    data_coding: int, body_fits: bytes, body_too_long: bytes
) -> None:
    decode_content(data_coding, CONCAT_8 + body_fits, udhi=True)
    assert refusal(data_coding, CONCAT_8 + body_too_long, udhi=True) == RINVMSGLEN


def test_gsm_segment_with_a_7_octet_udh() -> None:
    # 7 octets = 8 septets: 152 left (SMPP-NOTES section 6)
    decode_content(0, CONCAT_16 + b"a" * 152, udhi=True)
    assert refusal(0, CONCAT_16 + b"a" * 153, udhi=True) == RINVMSGLEN


def test_without_udh_length_is_commons_business() -> None:
    # message_payload: Common splits long text itself.
    assert text_of(0, b"a" * 1000) == "a" * 1000


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x05\x00\x03\x01",  # UDHL beyond the payload
        b"\xff" + b"\x00" * 100,  # UDHL beyond the payload
        b"\x03\x00\x03\x01Hi",  # IE overruns the UDH
        b"\x04\x00\x02\x01\x01Hi",  # concat IE of length 2
        b"\x05\x00\x03\x01\x02\x00Hi",  # seq 0
        b"\x05\x00\x03\x01\x02\x03Hi",  # seq > total
        b"\x05\x00\x03\x01\x00\x00Hi",  # total 0
        b"\x05\x08\x03\x01\x02\x01Hi",  # 16-bit concat IE of length 3
        b"\x03\x04\x01\x05Hi",  # 8-bit port IE of length 1
        b"\x05\x05\x03\x01\x02\x03Hi",  # 16-bit port IE of length 3
        b"\x01\x00Hi",  # IE header cut short
        b"\x0a\x00\x03\x01\x02\x01\x00\x03\x02\x02\x01Hi",  # two concat IEs
        b"\x0b\x00\x03\x01\x02\x01\x08\x04\x00\x01\x02\x01Hi",  # 8- and 16-bit concat
    ],
)
def test_malformed_udh(payload: bytes) -> None:
    assert refusal(0, payload, udhi=True) == RINVESMCLASS


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


VALID_STATUSES = frozenset({RSUBMITFAIL, RINVESMCLASS, RINVMSGLEN})


def _check(data_coding: int, payload: bytes, udhi: bool, alphabet: str) -> None:
    try:
        content = decode_content(data_coding, payload, udhi=udhi, default_alphabet=alphabet)
    except TextError as exc:
        assert exc.status in VALID_STATUSES
        return
    assert (content.text is None) != (content.hex is None)
    assert (content.udh is not None) == udhi
    if content.text is not None:
        # Common takes no character outside the BMP.
        assert all(ord(ch) <= 0xFFFF and not 0xD800 <= ord(ch) <= 0xDFFF for ch in content.text)
    body = payload[len(content.udh) :] if content.udh is not None else payload
    if content.hex is not None:
        assert bytes.fromhex(content.hex) == body
    elif data_coding in (0, 0xF0) and alphabet == "gsm":
        # Exactly what the octets say: the text encodes back to them.
        assert encode_for_esme(content.text or "") == (0, body)


@settings(max_examples=500)
@given(
    st.integers(min_value=-1, max_value=256),
    st.binary(max_size=300),
    st.booleans(),
    st.sampled_from(["gsm", "latin1"]),
)
def test_decode_content_raises_only_text_error(
    data_coding: int, payload: bytes, udhi: bool, alphabet: str
) -> None:
    _check(data_coding, payload, udhi, alphabet)


_ie = st.one_of(
    st.tuples(st.just(0x00), st.binary(min_size=3, max_size=3)),
    st.tuples(st.just(0x08), st.binary(min_size=4, max_size=4)),
    st.tuples(st.sampled_from([0x04, 0x05, 0x24, 0x70]), st.binary(max_size=5)),
)


@st.composite
def _udh_payloads(draw: st.DrawFn) -> bytes:
    """Mostly well-formed UDHs, so the checks behind the UDH parser are reached."""
    elements = draw(st.lists(_ie, max_size=3))
    header = b"".join(bytes((iei, len(data))) + data for iei, data in elements)
    udhl = draw(st.one_of(st.just(len(header)), st.integers(0, 255)))
    return bytes((udhl,)) + header + draw(st.binary(max_size=160))


@settings(max_examples=500)
@given(
    st.sampled_from([0x00, 0x01, 0x03, 0x04, 0x08, 0x10, 0x18, 0xF0, 0xF4]),
    _udh_payloads(),
    st.sampled_from(["gsm", "latin1"]),
)
def test_decode_content_with_udh_raises_only_text_error(
    data_coding: int, payload: bytes, alphabet: str
) -> None:
    _check(data_coding, payload, True, alphabet)


@given(st.text(alphabet=GSM_ALPHABET, max_size=200))
def test_gsm_text_survives_encode_then_decode(text: str) -> None:
    data_coding, octets = encode_for_esme(text)
    assert data_coding == 0
    assert decode_content(0, octets, udhi=False).text == text


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
