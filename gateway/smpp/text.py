"""Message content: `data_coding` + octets <-> text, the UDH, segmentation.

Responsible for reading what an ESME put in `short_message`/`message_payload`
(SMPP 3.4 section 5.2.19, GSM 03.38 section 4) and for producing what the
gateway sends to an ESME (`encode_for_esme`, `segment`).

What always holds:
- `decode_content` returns a `Content` or raises `TextError`, never anything
  else, whatever the octets and the data_coding; the error carries the
  command_status to answer with.
- Text is either exactly what the octets say or refused: no replacement
  characters, no silently dropped escapes.
- Text for Common never holds a character outside the Basic Multilingual Plane
  (Common takes no 4-byte characters), so UCS-2 with surrogate pairs is refused.
- `data_coding` 0 is GSM 03.38 *unpacked* (one septet per octet), with the
  default extension table; an account may declare that 0 means Latin-1.
- A GSM 0x1B escape that ends the octets, or is followed by a code the
  extension table does not define (0x1B 0x1B included), is refused. GSM 03.38
  section 6.2.1.1 lets a handset show the basic-table character (or a space
  for 0x1B 0x1B) instead, but that is a guess an SMSC should not make for the
  ESME: a split escape pair usually means the ESME cut a segment in the middle.
- Refusals: ESME_RSUBMITFAIL for a data_coding the gateway cannot carry or
  octets that are not valid in it (the caller makes that ESME_RINVDCS for 5.0
  binds); ESME_RINVMSGLEN for a length the coding cannot have (odd UCS-2) or a
  segment longer than one SMS (unless the caller will put the parts back
  together: `reassemble`); ESME_RINVESMCLASS for a UDH that does not parse
  although esm_class says there is one (UDHL beyond the octets, an element
  overrunning the header, concatenation or port elements of the wrong length
  or numbers, two concatenation elements).
- data_coding 6 (ISO-8859-5, Cyrillic) and 7 (ISO-8859-8, Latin/Hebrew), as
  SMPP 3.4 section 5.2.19 names them, are decoded and sent as text; 5 (JIS)
  and the other national or reserved codings are refused.
- The GSM tables come from the `gsm0338` package and are built once at import;
  decoding and encoding use the C charmap codecs, not a per-character loop.
"""

from __future__ import annotations

import codecs
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from gsm0338.charset import BASIC_CHARACTER_SET, BASIC_CHARACTER_SET_EXTENSION

from gateway.smpp.pdu import CommandStatus

__all__ = [
    "Concat",
    "Content",
    "TextError",
    "Udh",
    "decode_content",
    "encode_for_esme",
    "gsm_septets",
    "is_gsm",
    "parse_udh",
    "segment",
    "spans",
]


class TextError(ValueError):
    """Content the gateway cannot carry; `status` is the command_status to answer."""

    def __init__(self, message: str, status: int = CommandStatus.ESME_RSUBMITFAIL) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Content:
    """What Common needs: its DCS name and either text or hex octets.

    `dcs` is TEXT (Common encodes and splits) unless the ESME sent a UDH, in
    which case it is GSM, UCS2 or BINARY so that Common sends the segment as is.
    """

    dcs: str
    text: str | None
    hex: str | None
    udh: bytes | None
    flash: bool
    # False for a segment longer than one SMS, which only reassembly can carry
    # (decode_content's `reassemble`).
    fits: bool = True
    # The concatenation numbers of a UDH that holds nothing else: a part that can
    # be put back together without losing an element (ports stay per segment).
    concat: Concat | None = None


@dataclass(frozen=True, slots=True)
class Concat:
    """Concatenation IE (GSM 03.40 section 9.2.3.24.1 / .8): 8- or 16-bit reference."""

    ref: int
    total: int
    seq: int
    ref_bits: int


@dataclass(frozen=True, slots=True)
class Udh:
    """A parsed User Data Header; `raw` includes the UDHL octet."""

    raw: bytes
    elements: tuple[tuple[int, bytes], ...]
    concat: Concat | None
    dest_port: int | None
    src_port: int | None


# --- GSM 03.38 tables, built once -------------------------------------------

_ESC: Final = 0x1B
_UNDEFINED: Final = "\ufffe"  # what charmap_decode treats as "no mapping"


def _build_basic_decode() -> str:
    table = [_UNDEFINED] * 256
    for code, name in BASIC_CHARACTER_SET.items():
        if code != _ESC:
            table[code] = unicodedata.lookup(name)
    return "".join(table)


_GSM_DECODE: Final = _build_basic_decode()
_GSM_EXT_DECODE: Final[dict[int, str]] = {
    code: unicodedata.lookup(name) for code, name in BASIC_CHARACTER_SET_EXTENSION.items()
}
_GSM_ENCODE: Final[dict[int, int | bytes]] = {
    **{ord(ch): code for code, ch in enumerate(_GSM_DECODE) if ch != _UNDEFINED},
    **{ord(ch): bytes((_ESC, code)) for code, ch in _GSM_EXT_DECODE.items()},
}
# One septet each, or two for the extension table (escape + code).
_GSM_EXT_CHARS: Final = frozenset(_GSM_EXT_DECODE.values())
_GSM_CHARS: Final = frozenset(chr(c) for c in _GSM_ENCODE)


def _decode_gsm(octets: bytes) -> str:
    try:
        if _ESC not in octets:
            return codecs.charmap_decode(octets, "strict", _GSM_DECODE)[0]
        parts = octets.split(b"\x1b")
        chunks = [codecs.charmap_decode(parts[0], "strict", _GSM_DECODE)[0]]
        for part in parts[1:]:
            # An escape must be followed by a code of the extension table; a
            # trailing or doubled escape is refused rather than dropped.
            ext = _GSM_EXT_DECODE.get(part[0]) if part else None
            if ext is None:
                raise TextError("GSM 03.38 escape not followed by an extension character")
            chunks.append(ext)
            chunks.append(codecs.charmap_decode(part[1:], "strict", _GSM_DECODE)[0])
        return "".join(chunks)
    except UnicodeDecodeError as exc:
        raise TextError(f"not GSM 03.38 at octet {exc.start}") from None


def _encode_gsm(text: str) -> bytes | None:
    try:
        return codecs.charmap_encode(text, "strict", _GSM_ENCODE)[0]
    except UnicodeEncodeError:
        return None


def is_gsm(text: str) -> bool:
    """Whether every character is in GSM 03.38 (basic or extension table)."""
    return _GSM_CHARS.issuperset(text)


def gsm_septets(text: str) -> int:
    """Septets `text` takes in GSM 03.38 (extension characters count two)."""
    return len(text) + sum(1 for ch in text if ch in _GSM_EXT_CHARS)


def _decode_ucs2(octets: bytes) -> str:
    if len(octets) % 2:
        raise TextError("UCS-2 with an odd number of octets", CommandStatus.ESME_RINVMSGLEN)
    try:
        text = octets.decode("utf-16-be")
    except UnicodeDecodeError:
        raise TextError("UCS-2 with an unpaired surrogate") from None
    # A surrogate pair decodes to one character for two code units.
    if len(text) * 2 != len(octets):
        raise TextError("UCS-2 with characters outside the BMP (Common takes none)")
    return text


# --- data_coding dispatch ---------------------------------------------------

# Kinds of content a data_coding value announces.
_DEFAULT: Final = "default"  # 0: GSM 03.38 or, per account, Latin-1
_GSM: Final = "gsm"
_ASCII: Final = "ascii"
_IA5: Final = "ia5"  # data_coding 1: ASCII, or GSM 03.38 for accounts that say so
_LATIN1: Final = "latin-1"
_CYRILLIC: Final = "iso8859-5"
_HEBREW: Final = "iso8859-8"
_UCS2: Final = "ucs2"
_BINARY: Final = "binary"


def _build_dcs_table() -> tuple[tuple[str, bool] | None, ...]:
    """(kind, flash) per data_coding; None for what the gateway cannot carry."""
    table: list[tuple[str, bool] | None] = [None] * 256
    # SMPP 3.4 section 5.2.19. 5 (JIS), 9 (pictogram), 0x0A (ISO-2022-JP),
    # 0x0D (extended kanji) and 0x0E (KS C 5601) have no decoder here.
    table[0x00] = (_DEFAULT, False)
    table[0x01] = (_IA5, False)
    table[0x02] = (_BINARY, False)
    table[0x03] = (_LATIN1, False)
    table[0x04] = (_BINARY, False)
    table[0x06] = (_CYRILLIC, False)
    table[0x07] = (_HEBREW, False)
    table[0x08] = (_UCS2, False)
    # GSM 03.38 section 4, general group 0001xxxx: uncompressed, bits 3-2 the
    # alphabet (11 reserved), bits 1-0 the message class; class 0 is flash.
    for value in range(0x10, 0x20):
        alphabet = (value >> 2) & 0x03
        if alphabet != 0x03:
            kind = (_GSM, _BINARY, _UCS2)[alphabet]
            table[value] = (kind, value & 0x03 == 0)
    # Data coding / message class group 1111 0xxx: bit 2 8-bit data, bits 1-0
    # the class (0xF0 = GSM 7-bit flash). Bit 3 is reserved, so 0xF8-0xFF and
    # the compressed (0x20-0x3F), auto-deletion (0x40-0x7F) and
    # message-waiting (0xC0-0xEF) groups stay refused.
    for value in range(0xF0, 0xF8):
        table[value] = (_BINARY if value & 0x04 else _GSM, value & 0x03 == 0)
    return tuple(table)


_DCS_TABLE: Final = _build_dcs_table()


def is_gsm_coding(
    data_coding: int, default_alphabet: str = "gsm", ia5_alphabet: str = "ascii"
) -> bool:
    """Whether octets under this data_coding are GSM 03.38 septets, one per octet."""
    entry = _DCS_TABLE[data_coding] if 0 <= data_coding <= 0xFF else None
    if entry is None:
        return False
    return _alphabet(entry[0], default_alphabet, ia5_alphabet) == _GSM


def _alphabet(kind: str, default_alphabet: str, ia5_alphabet: str) -> str:
    """What data_coding 0 and 1 mean for this account (SMPP-NOTES section 5)."""
    if kind == _DEFAULT:
        return _LATIN1 if default_alphabet == "latin1" else _GSM
    if kind == _IA5:
        return _GSM if ia5_alphabet == "gsm" else _ASCII
    return kind


def parse_udh(udh: bytes) -> Udh:
    """Parse a whole UDH (UDHL octet first); TextError(ESME_RINVESMCLASS) if malformed."""
    if not udh or udh[0] + 1 != len(udh):
        raise TextError("UDH length octet does not match", CommandStatus.ESME_RINVESMCLASS)
    elements: list[tuple[int, bytes]] = []
    concat: Concat | None = None
    dest_port: int | None = None
    src_port: int | None = None
    pos, end = 1, len(udh)
    while pos < end:
        if pos + 2 > end or pos + 2 + udh[pos + 1] > end:
            raise TextError("UDH element overruns the header", CommandStatus.ESME_RINVESMCLASS)
        iei, length = udh[pos], udh[pos + 1]
        data = udh[pos + 2 : pos + 2 + length]
        pos += 2 + length
        elements.append((iei, data))
        if iei == 0x00 or iei == 0x08:
            want = 3 if iei == 0x00 else 4
            if length != want:
                raise TextError("bad concatenation element", CommandStatus.ESME_RINVESMCLASS)
            # GSM 03.40 9.2.3.24 lets the last of contradictory elements win;
            # Common and the handset might not agree on which, so refuse.
            if concat is not None:
                raise TextError("two concatenation elements", CommandStatus.ESME_RINVESMCLASS)
            ref = data[0] if iei == 0x00 else (data[0] << 8) | data[1]
            total, seq = data[-2], data[-1]
            if total == 0 or not 1 <= seq <= total:
                raise TextError("bad concatenation numbers", CommandStatus.ESME_RINVESMCLASS)
            concat = Concat(ref, total, seq, 8 if iei == 0x00 else 16)
        elif iei == 0x04 or iei == 0x05:
            if length != (2 if iei == 0x04 else 4):
                raise TextError("bad port element", CommandStatus.ESME_RINVESMCLASS)
            half = length // 2
            dest_port = int.from_bytes(data[:half], "big")
            src_port = int.from_bytes(data[half:], "big")
    return Udh(bytes(udh), tuple(elements), concat, dest_port, src_port)


def decode_content(
    data_coding: int,
    payload: bytes,
    *,
    udhi: bool,
    default_alphabet: str = "gsm",
    ia5_alphabet: str = "ascii",
    reassemble: bool = False,
) -> Content:
    """What Common should send for this `data_coding` and these octets.

    With `udhi` the UDH is stripped from the front of `payload`, validated and
    returned, and the DCS is GSM/UCS2/BINARY (the ESME segmented; Common must not).
    `default_alphabet` is the account's meaning of data_coding 0 ("gsm" or
    "latin1"), `ia5_alphabet` that of data_coding 1 ("ascii" or "gsm").
    With `reassemble` (the caller puts parts back together), a segment whose
    UDH holds only the concatenation element comes back with its `concat`, and
    one longer than one SMS with `fits` False and `dcs` TEXT (or BINARY) rather
    than refused with ESME_RINVMSGLEN.
    """
    entry = _DCS_TABLE[data_coding] if 0 <= data_coding <= 0xFF else None
    if entry is None:
        raise TextError(f"data_coding 0x{data_coding:02X} not supported")
    kind, flash = entry
    kind = _alphabet(kind, default_alphabet, ia5_alphabet)

    udh: bytes | None = None
    concat: Concat | None = None
    body = payload
    if udhi:
        if not payload or payload[0] + 1 > len(payload):
            raise TextError("UDHI set but no room for the UDH", CommandStatus.ESME_RINVESMCLASS)
        udh = payload[: payload[0] + 1]
        parsed = parse_udh(udh)
        body = payload[len(udh) :]
        if reassemble and len(parsed.elements) == 1:
            concat = parsed.concat
    oversize_ok = concat is not None

    if kind == _BINARY:
        fits = udh is None or _fits_one_sms(len(udh) + len(body), oversize_ok)
        return Content("BINARY", None, body.hex().upper(), udh, flash, fits, concat)
    if kind == _GSM:
        text = _decode_gsm(body)
        if udh is None:
            return Content("TEXT", text, None, None, flash)
        # Unpacked: one octet per septet, an escape pair being two.
        fits = _fits_one_sms(((_septets_of(udh) + len(body)) * 7 + 7) // 8, oversize_ok)
        return Content("GSM" if fits else "TEXT", text, None, udh, flash, fits, concat)
    if kind == _UCS2:
        text = _decode_ucs2(body)
        if udh is None:
            return Content("TEXT", text, None, None, flash)
        fits = _fits_one_sms(len(udh) + len(body), oversize_ok)
        return Content("UCS2" if fits else "TEXT", text, None, udh, flash, fits, concat)
    try:
        text = body.decode(kind)
    except UnicodeDecodeError as exc:
        raise TextError(f"not {kind} at octet {exc.start}") from None
    if udh is None:
        return Content("TEXT", text, None, None, flash)
    dcs = _segment_dcs(text, udh, oversize_ok)
    return Content(dcs or "TEXT", text, None, udh, flash, dcs is not None, concat)


_SMS_OCTETS: Final = 140  # GSM 03.40 TP-User-Data


def _septets_of(udh: bytes) -> int:
    # The UDH is padded to a septet boundary before GSM text (GSM 03.40 9.2.3.24).
    return (len(udh) * 8 + 6) // 7


def _fits_one_sms(octets: int, oversize_ok: bool) -> bool:
    """An ESME-made segment goes as it is, so it must fit one SMS (GSM 03.40 9.2.3.16)."""
    if octets <= _SMS_OCTETS:
        return True
    if oversize_ok:
        return False
    raise TextError("segment longer than one SMS", CommandStatus.ESME_RINVMSGLEN)


def _segment_dcs(text: str, udh: bytes, oversize_ok: bool) -> str | None:
    """GSM or UCS2 for a single-byte-charset segment that must go as it is.

    Common has no Latin-1 DCS, so a segment is re-encoded; it must still fit
    one SMS with its UDH (140 octets), or Common would have to split it
    (None when `oversize_ok`, else refused).
    """
    if is_gsm(text) and _septets_of(udh) + gsm_septets(text) <= 160:
        return "GSM"
    if len(udh) + 2 * len(text) <= 140:
        return "UCS2"
    if oversize_ok:
        return None
    raise TextError("segment does not fit one SMS once re-encoded")


# --- towards the ESME -------------------------------------------------------

# (octets in a lone SMS, octets per part after the 6-octet concat UDH), by how
# the octets are read: GSM unpacked counts septets (160, and 153 after the
# UDH's 7 septets); UCS-2 and any 8-bit coding count octets.
SEGMENT_SIZES: Final[Mapping[str, tuple[int, int]]] = MappingProxyType(
    {"gsm": (160, 153), "ucs2": (140, 134), "binary": (140, 134)}
)
_MAX_PARTS: Final = 255


def encode_for_esme(text: str) -> tuple[int, bytes]:
    """data_coding 0 (GSM 03.38 unpacked) if every character allows it, else 8 (UTF-16 BE)."""
    octets = _encode_gsm(text)
    if octets is not None:
        return 0, octets
    return 8, text.encode("utf-16-be", "surrogatepass")


def split_octets(octets: bytes, kind: str, ref: int) -> list[tuple[bytes, bytes]]:
    """(udh, body) parts of encoded content, `kind` a key of SEGMENT_SIZES; one part
    with an empty UDH when the octets fit one SMS.

    The one segmenter of the gateway: MO towards ESMEs and MT that a route
    splits itself. Parts carry the 8-bit concat UDH `05 00 03 ref total seq`;
    a GSM escape pair and a UTF-16 surrogate pair are never split across parts
    (a handset shows garbage where one half ends a part). TextError
    (ESME_RINVMSGLEN) beyond 255 parts.
    """
    single, part = SEGMENT_SIZES[kind]
    if len(octets) <= single:
        return [(b"", octets)]
    chunks: list[bytes] = []
    pos = 0
    while pos < len(octets):
        end = min(pos + part, len(octets))
        if end < len(octets):
            # In encoded text 0x1B is only ever an escape prefix (no extension
            # code is 0x1B), so one ending a part always opens a pair.
            if kind == "gsm" and octets[end - 1] == _ESC:
                end -= 1
            elif kind == "ucs2" and 0xD8 <= octets[end - 2] <= 0xDB:
                end -= 2
        chunks.append(octets[pos:end])
        pos = end
    total = len(chunks)
    if total > _MAX_PARTS:
        raise TextError("content needs more than 255 parts", CommandStatus.ESME_RINVMSGLEN)
    ref8 = ref & 0xFF
    return [
        (bytes((0x05, 0x00, 0x03, ref8, total, seq)), chunk)
        for seq, chunk in enumerate(chunks, start=1)
    ]


def segment(text: str, ref: int) -> list[tuple[int, bytes, bytes]]:
    """(data_coding, udh, body) parts for a text: GSM 03.38 if it allows, else UCS-2."""
    data_coding, octets = encode_for_esme(text)
    kind = "gsm" if data_coding == 0 else "ucs2"
    return [(data_coding, udh, body) for udh, body in split_octets(octets, kind, ref)]


def spans(text: str | None, data: bytes | None) -> list[tuple[int, int]]:
    """(start, end) of each SMS a route makes of a whole text, in characters, or
    of octets; `split_octets`'s cut, so that part i of a route's reports can be
    matched to the stretch of the content it carried."""
    gsm = False
    if text is None:
        chunks, width = split_octets(data or b"", "binary", 0), 1
    else:
        data_coding, octets = encode_for_esme(text)
        gsm = data_coding == 0
        chunks, width = split_octets(octets, "gsm" if gsm else "ucs2", 0), 1 if gsm else 2
    out: list[tuple[int, int]] = []
    start = 0
    for _, chunk in chunks:
        # Encoded GSM holds 0x1B only as the first octet of a two-octet character,
        # and no part ends inside one: its characters are its octets less its escapes.
        size = len(chunk) - chunk.count(_ESC) if gsm else len(chunk) // width
        out.append((start, start + size))
        start += size
    return out


def count_segments(text: str) -> int:
    """How many SMS a text makes (`segment`'s count, without building them)."""
    if len(text) <= 70:
        return 1
    data_coding, octets = encode_for_esme(text)
    kind = "gsm" if data_coding == 0 else "ucs2"
    try:
        return len(split_octets(octets, kind, 0))
    except TextError:  # over 255: the count is still what the reports will say
        return -(-len(octets) // SEGMENT_SIZES[kind][1])
