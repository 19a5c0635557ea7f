"""SMPP 3.4 wire codec: bytes to PDU objects and back, and stream framing.

Responsible for the octets only: the 16-byte header, the mandatory fields as
declared in `pdu.FIELDS`, TLVs, and cutting a TCP byte stream into PDUs.
Whether a value is acceptable (a known system_id, a valid TON) is the
session's business, not this module's. Sans-IO: no Twisted, no sockets, no
clock.

What always holds:
- `decode` raises nothing but `PduError`, whatever the input; the error
  carries the `command_status` to answer with and, when they could be read,
  the command_id and sequence so the caller can answer with the matching
  `*_resp` (or generic_nack). `fatal` means framing is lost: close.
- `decode(encode(pdu)) == pdu` for every PDU whose fields are within their
  limits, except that error responses lose their body (below).
- `encode` raises `ValueError` for values that cannot go on the wire (a string
  over its maximum, an integer wider than its field, a time that is neither
  empty nor 16 characters, a short_message over 254 octets, a submit_multi
  with no destination or more than 254): that is a programming error, never a
  peer's. What `encode` accepts, `decode` accepts.
- Error responses (status != 0) are encoded header-only (SMPP 3.4 section
  4.4.2: "the PDU body is not returned if command_status is non-zero");
  decoding accepts them with or without a body, whole or partial.
- C-octet strings are searched for their NUL only up to the field's maximum;
  the status for a field that cannot be read comes from `pdu.FIELD_ERRORS`.
- TLVs are kept in wire order, unknown tags included; a known tag with a
  length outside `pdu.TLV_SPECS` is refused (ESME_RINVPARLEN), and so is a TLV
  that runs past the end of the PDU (ESME_RINVOPTPARSTREAM).
- The layout tables are compiled into one decoder and one encoder function per
  class, once, at import; `pdu.FIELDS` stays the only description.
"""

from __future__ import annotations

import dataclasses
import linecache
import struct
from collections.abc import Callable
from typing import Any, Final

from gateway.smpp.layout import (
    DEST_ADDR_MAX,
    DEST_FLAG_DISTRIBUTION_LIST,
    DEST_FLAG_SME,
    DL_NAME_MAX,
    FIELDS,
    TLV_SPECS,
    FieldSpec,
    Kind,
    TlvKind,
    field_error,
)
from gateway.smpp.pdu import (
    HEADER_LENGTH,
    PDU_CLASSES,
    RESPONSE_BIT,
    CommandStatus,
    DestAddress,
    Pdu,
    UnsuccessSme,
)

__all__ = [
    "Framer",
    "PduError",
    "decode",
    "encode",
    "encode_tlv_cstring",
    "encode_tlv_int",
]


class PduError(Exception):
    """A PDU that cannot be read; carries the command_status to answer with."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        command_id: int | None = None,
        sequence: int | None = None,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.command_id = command_id
        self.sequence = sequence
        self.fatal = fatal

    def __str__(self) -> str:
        try:
            name = CommandStatus(self.status).name
        except ValueError:
            name = hex(self.status)
        return f"{name}: {self.message}"


_HEADER: Final = struct.Struct(">IIII")
_TLV_HEAD: Final = struct.Struct(">HH")
_UINT32: Final = struct.Struct(">I")
_NUL: Final = b"\x00"

_RINVCMDLEN: Final = CommandStatus.ESME_RINVCMDLEN
_RINVMSGLEN: Final = CommandStatus.ESME_RINVMSGLEN
_RINVOPTPARSTREAM: Final = CommandStatus.ESME_RINVOPTPARSTREAM
_RINVPARLEN: Final = CommandStatus.ESME_RINVPARLEN
_RINVDSTADR: Final = field_error("destination_addr")
_RINVDLNAME: Final = field_error("dl_name")
_RINVNUMDESTS: Final = field_error("dest_addresses")

_OCTET: Final = tuple(bytes((i,)) for i in range(256))
_INT_FORMATS: Final = {1: "B", 2: "H", 4: "I"}

# --- per-class functions, generated from pdu.FIELDS ----------------------------
#
# Like `dataclasses` does for __init__, each PDU class gets a decoder and an
# encoder written out as Python source once, at import: straight-line code with
# the field names, limits and struct formats as constants, so the hot path
# (submit_sm in, deliver_sm and submit_sm_resp out) pays no per-field dispatch.
# The source is kept in `linecache`, so tracebacks show the generated lines.

_Decoder = Callable[[bytes, int, int, int], Pdu]
_Encoder = Callable[[Pdu], list[bytes]]


def _short(name: str) -> PduError:
    return PduError(_RINVCMDLEN, f"body ends before {name}")


def _missing_nul(pos: int, end: int, name: str, size: int, status: int) -> PduError:
    if pos >= end:
        return _short(name)
    return PduError(status, f"{name} lacks its NUL within {size} octets")


def _bad_time(name: str, status: int) -> PduError:
    # SMPP 3.4 section 7.1: a time is NULL or exactly 16 characters.
    return PduError(status, f"{name} is neither empty nor 16 characters")


def _bad_sm_length(sm_length: int, room: int, size: int) -> PduError:
    if sm_length > size:
        return PduError(_RINVMSGLEN, f"sm_length {sm_length} is over {size}")
    return PduError(_RINVMSGLEN, f"sm_length {sm_length} but {room} octets left in the PDU")


def _unfit(name: str, value: object, size: int) -> ValueError:
    return ValueError(f"{name} {value!r} does not fit {size} octets")


def _group(fields: tuple[FieldSpec, ...]) -> list[tuple[FieldSpec, ...]]:
    """Consecutive integer fields form one group (one struct call); others stand alone."""
    groups: list[tuple[FieldSpec, ...]] = []
    for spec in fields:
        if spec.kind is Kind.INT and groups and groups[-1][-1].kind is Kind.INT:
            groups[-1] = (*groups[-1], spec)
        else:
            groups.append((spec,))
    return groups


def _decoder_source(fields: tuple[FieldSpec, ...], namespace: dict[str, Any]) -> str:
    lines = ["def decode(data, end, sequence, status):", f"    pos = {HEADER_LENGTH}"]
    add = lines.append
    for group in _group(fields):
        spec = group[0]
        var = f"f_{spec.name}"
        if spec.kind is Kind.INT:
            compiled = struct.Struct(">" + "".join(_INT_FORMATS[f.size] for f in group))
            add(f"    if pos + {compiled.size} > end:")
            add(f"        raise _short({spec.name!r})")
            if compiled.size == 1:
                add(f"    {var} = data[pos]")
            else:
                struct_name = f"_struct_{len(namespace)}"
                namespace[struct_name] = compiled
                targets = "".join(f"f_{f.name}, " for f in group)
                add(f"    {targets}= {struct_name}.unpack_from(data, pos)")
            add(f"    pos += {compiled.size}")
        elif spec.kind in (Kind.CSTRING, Kind.TIME):
            # SMPP-NOTES section 8: look for the NUL only within the field's
            # maximum, so a missing NUL cannot swallow the rest of the PDU.
            add(f"    nul = data.find(0, pos, pos + {spec.size})")
            add("    if nul < 0:")
            add(f"        raise _missing_nul(pos, end, {spec.name!r}, {spec.size}, {spec.error})")
            if spec.kind is Kind.TIME:
                add("    if nul - pos not in (0, 16):")
                add(f"        raise _bad_time({spec.name!r}, {spec.error})")
            add(f"    {var} = data[pos:nul].decode('latin-1')")
            add("    pos = nul + 1")
        elif spec.kind is Kind.ANY_CSTRING:
            add("    nul = data.find(0, pos, end)")
            add("    stop = end if nul < 0 else nul")
            add(f"    {var} = data[pos:stop].decode('latin-1')")
            add("    pos = stop + 1 if stop < end else end")
        elif spec.kind is Kind.SHORT_MESSAGE:
            # Trust sm_length: whatever follows the short message is TLVs.
            add("    if pos >= end:")
            add("        raise _short('sm_length')")
            add("    sm_length = data[pos]")
            add("    pos += 1")
            add(f"    if sm_length > {spec.size} or pos + sm_length > end:")
            add(f"        raise _bad_sm_length(sm_length, end - pos, {spec.size})")
            add(f"    {var} = data[pos : pos + sm_length]")
            add("    pos += sm_length")
        elif spec.kind is Kind.DEST_ADDRESSES:
            add(f"    {var}, pos = _decode_dest_addresses(data, pos, end, {spec.size})")
        else:
            add(f"    {var}, pos = _decode_unsuccess_smes(data, pos, end)")
    # Filling the slots directly skips dataclass __init__ keyword handling, a
    # third of the cost of a submit_sm; _build checks every field gets a value.
    add("    pdu = _new(cls)")
    add("    pdu.sequence = sequence")
    add("    pdu.status = status")
    for spec in fields:
        add(f"    pdu.{spec.name} = f_{spec.name}")
    add("    pdu.tlvs = _decode_tlvs(data, pos, end) if pos < end else []")
    add("    return pdu")
    return "\n".join(lines) + "\n"


def _encoder_source(fields: tuple[FieldSpec, ...], namespace: dict[str, Any]) -> str:
    lines = ["def encode(pdu):"]
    add = lines.append
    parts: list[str] = []
    for group in _group(fields):
        spec = group[0]
        var = f"v_{spec.name}"
        if spec.kind is Kind.INT:
            compiled = struct.Struct(">" + "".join(_INT_FORMATS[f.size] for f in group))
            struct_name = f"_struct_{len(namespace)}"
            namespace[struct_name] = compiled
            values = ", ".join(f"pdu.{f.name}" for f in group)
            parts.append(f"{struct_name}.pack({values})")
        elif spec.kind in (Kind.CSTRING, Kind.TIME, Kind.ANY_CSTRING):
            add(f"    {var} = pdu.{spec.name}.encode('latin-1')")
            add(f"    if len({var}) >= {spec.size} or 0 in {var}:")
            add(f"        raise _unfit({spec.name!r}, pdu.{spec.name}, {spec.size})")
            if spec.kind is Kind.TIME:
                add(f"    if len({var}) not in (0, 16):")
                add(f"        raise _unfit({spec.name!r}, pdu.{spec.name}, 16)")
            parts += [var, "_NUL"]
        elif spec.kind is Kind.SHORT_MESSAGE:
            add(f"    {var} = pdu.{spec.name}")
            add(f"    if len({var}) > {spec.size}:")
            add(f"        raise _unfit({spec.name!r}, {var}, {spec.size})")
            parts += [f"_OCTET[len({var})]", var]
        elif spec.kind is Kind.DEST_ADDRESSES:
            parts.append(f"*_encode_dest_addresses(pdu.{spec.name}, {spec.size})")
        else:
            parts.append(f"*_encode_unsuccess_smes(pdu.{spec.name}, {spec.size})")
    add(f"    return [{', '.join(parts)}]")
    return "\n".join(lines) + "\n"


def _generate(cls: type[Pdu], kind: str, source: str, namespace: dict[str, Any]) -> Any:
    filename = f"<smpp {kind} {cls.__name__}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    return namespace[kind]


def _build() -> tuple[dict[int, tuple[type[Pdu], _Decoder]], dict[type[Pdu], _Encoder]]:
    decoders: dict[int, tuple[type[Pdu], _Decoder]] = {}
    encoders: dict[type[Pdu], _Encoder] = {}
    for command_id, cls in PDU_CLASSES.items():
        fields = FIELDS[cls]
        declared = [f.name for f in dataclasses.fields(cls)]
        if declared != ["sequence", "status", "tlvs", *(f.name for f in fields)]:
            raise TypeError(f"pdu.FIELDS[{cls.__name__}] does not list the fields of the class")
        namespace: dict[str, Any] = {
            "cls": cls,
            "_new": object.__new__,
            "_short": _short,
            "_missing_nul": _missing_nul,
            "_bad_time": _bad_time,
            "_bad_sm_length": _bad_sm_length,
            "_unfit": _unfit,
            "_decode_tlvs": _decode_tlvs,
            "_decode_dest_addresses": _decode_dest_addresses,
            "_decode_unsuccess_smes": _decode_unsuccess_smes,
            "_encode_dest_addresses": _encode_dest_addresses,
            "_encode_unsuccess_smes": _encode_unsuccess_smes,
            "_NUL": _NUL,
            "_OCTET": _OCTET,
        }
        decoder = _generate(cls, "decode", _decoder_source(fields, namespace), namespace)
        decoders[command_id] = (cls, decoder)
        encoders[cls] = _generate(cls, "encode", _encoder_source(fields, namespace), namespace)
    return decoders, encoders


# --- decoding ----------------------------------------------------------------


def decode(frame: bytes) -> Pdu:
    """Decode exactly one whole PDU, as returned by `Framer.next_frame`."""
    if len(frame) < HEADER_LENGTH:
        raise PduError(
            _RINVCMDLEN, f"frame of {len(frame)} octets is shorter than the header", fatal=True
        )
    length, command_id, status, sequence = _HEADER.unpack_from(frame)
    if length != len(frame):
        raise PduError(
            _RINVCMDLEN,
            f"command_length {length} but the frame has {len(frame)} octets",
            command_id=command_id,
            sequence=sequence,
            fatal=True,
        )
    entry = _DECODERS.get(command_id)
    if entry is None:
        raise PduError(
            CommandStatus.ESME_RINVCMDID,
            f"unknown command_id {command_id:#010x}",
            command_id=command_id,
            sequence=sequence,
        )
    cls, decoder = entry
    try:
        return decoder(frame, length, sequence, status)
    except PduError as error:
        if status and command_id & RESPONSE_BIT:
            # Peers send error responses without a body, or with part of one;
            # the status is all that matters then (SMPP-NOTES section 3).
            return cls(sequence=sequence, status=status)
        error.command_id = command_id
        error.sequence = sequence
        raise


def _read_cstring(
    data: bytes, pos: int, end: int, name: str, size: int, status: int
) -> tuple[str, int]:
    nul = data.find(0, pos, pos + size)
    if nul < 0:
        raise _missing_nul(pos, end, name, size, status)
    return data[pos:nul].decode("latin-1"), nul + 1


def _read_octet(data: bytes, pos: int, end: int) -> int:
    if pos >= end:
        raise PduError(_RINVCMDLEN, "body ends inside a submit_multi list")
    return data[pos]


def _decode_dest_addresses(
    data: bytes, pos: int, end: int, maximum: int
) -> tuple[list[DestAddress], int]:
    # SMPP 3.4 section 4.5.1.1: number_of_dests, then per entry a dest_flag
    # selecting an SME address or a distribution list name.
    count = _read_octet(data, pos, end)
    pos += 1
    if not 1 <= count <= maximum:
        raise PduError(_RINVNUMDESTS, f"number_of_dests {count} outside 1..{maximum}")
    dests: list[DestAddress] = []
    for _ in range(count):
        flag = _read_octet(data, pos, end)
        pos += 1
        if flag == DEST_FLAG_SME:
            ton = _read_octet(data, pos, end)
            npi = _read_octet(data, pos + 1, end)
            addr, pos = _read_cstring(
                data, pos + 2, end, "destination_addr", DEST_ADDR_MAX, _RINVDSTADR
            )
            dests.append(
                DestAddress(
                    dest_flag=flag, dest_addr_ton=ton, dest_addr_npi=npi, destination_addr=addr
                )
            )
        elif flag == DEST_FLAG_DISTRIBUTION_LIST:
            dl_name, pos = _read_cstring(data, pos, end, "dl_name", DL_NAME_MAX, _RINVDLNAME)
            dests.append(DestAddress(dest_flag=flag, dl_name=dl_name))
        else:
            raise PduError(CommandStatus.ESME_RINVDESTFLAG, f"dest_flag {flag}")
    return dests, pos


def _decode_unsuccess_smes(data: bytes, pos: int, end: int) -> tuple[list[UnsuccessSme], int]:
    # SMPP 3.4 section 4.5.2.1: no_unsuccess, then ton, npi, address, error code.
    count = _read_octet(data, pos, end)
    pos += 1
    smes: list[UnsuccessSme] = []
    for _ in range(count):
        ton = _read_octet(data, pos, end)
        npi = _read_octet(data, pos + 1, end)
        addr, pos = _read_cstring(
            data, pos + 2, end, "destination_addr", DEST_ADDR_MAX, _RINVDSTADR
        )
        if pos + 4 > end:
            raise _short("error_status_code")
        (code,) = _UINT32.unpack_from(data, pos)
        pos += 4
        smes.append(
            UnsuccessSme(
                dest_addr_ton=ton, dest_addr_npi=npi, destination_addr=addr, error_status_code=code
            )
        )
    return smes, pos


def _decode_tlvs(data: bytes, pos: int, end: int) -> list[tuple[int, bytes]]:
    # SMPP 3.4 section 5.3: TLVs follow the mandatory fields in any order, and
    # a receiver ignores tags it does not know; we keep them for the caller.
    tlvs: list[tuple[int, bytes]] = []
    specs = TLV_SPECS
    while pos < end:
        if pos + 4 > end:
            raise PduError(_RINVOPTPARSTREAM, "truncated TLV header")
        tag, length = _TLV_HEAD.unpack_from(data, pos)
        pos += 4
        if pos + length > end:
            raise PduError(_RINVOPTPARSTREAM, f"TLV {tag:#06x} value runs past the PDU")
        spec = specs.get(tag)
        if spec is not None and not spec.min_length <= length <= spec.max_length:
            raise PduError(_RINVPARLEN, f"TLV {tag:#06x} has length {length}")
        tlvs.append((tag, data[pos : pos + length]))
        pos += length
    return tlvs


# --- encoding ----------------------------------------------------------------


def encode(pdu: Pdu) -> bytes:
    """The whole PDU, header included, with command_length computed."""
    command_id = pdu.command_id
    status = pdu.status
    try:
        if status and command_id & RESPONSE_BIT:
            # SMPP-NOTES section 3: error responses carry no body.
            body = b""
        else:
            parts = _ENCODERS[type(pdu)](pdu)
            if pdu.tlvs:
                pack_tlv = _TLV_HEAD.pack
                for tag, value in pdu.tlvs:
                    parts.append(pack_tlv(tag, len(value)))
                    parts.append(value)
            body = b"".join(parts)
        return _HEADER.pack(HEADER_LENGTH + len(body), command_id, status, pdu.sequence) + body
    except struct.error as error:
        raise ValueError(f"{type(pdu).__name__}: {error}") from error


def _encode_cstring(value: str, size: int, name: str) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) >= size or 0 in raw:
        raise _unfit(name, value, size)
    return raw + _NUL


def _count(items: list[Any], name: str, minimum: int, maximum: int) -> bytes:
    if not minimum <= len(items) <= maximum:
        raise ValueError(f"{len(items)} {name}: {minimum}..{maximum} allowed")
    return _OCTET[len(items)]


def _encode_dest_addresses(dests: list[DestAddress], maximum: int) -> list[bytes]:
    parts = [_count(dests, "dest_addresses", 1, maximum)]
    for dest in dests:
        if dest.dest_flag == DEST_FLAG_SME:
            parts.append(bytes((DEST_FLAG_SME, dest.dest_addr_ton, dest.dest_addr_npi)))
            parts.append(_encode_cstring(dest.destination_addr, DEST_ADDR_MAX, "destination_addr"))
        elif dest.dest_flag == DEST_FLAG_DISTRIBUTION_LIST:
            parts.append(_OCTET[DEST_FLAG_DISTRIBUTION_LIST])
            parts.append(_encode_cstring(dest.dl_name, DL_NAME_MAX, "dl_name"))
        else:
            raise ValueError(f"dest_flag {dest.dest_flag} is neither 1 nor 2")
    return parts


def _encode_unsuccess_smes(smes: list[UnsuccessSme], maximum: int) -> list[bytes]:
    parts = [_count(smes, "unsuccess_smes", 0, maximum)]
    for sme in smes:
        parts.append(bytes((sme.dest_addr_ton, sme.dest_addr_npi)))
        parts.append(_encode_cstring(sme.destination_addr, DEST_ADDR_MAX, "destination_addr"))
        parts.append(_UINT32.pack(sme.error_status_code))
    return parts


def encode_tlv_int(tag: int, value: int, size: int) -> tuple[int, bytes]:
    """A TLV holding `value` as an unsigned integer of exactly `size` octets."""
    try:
        return tag, value.to_bytes(size, "big")
    except OverflowError as error:
        raise ValueError(f"TLV {tag:#06x}: {value} does not fit {size} octets") from error


def encode_tlv_cstring(tag: int, value: str) -> tuple[int, bytes]:
    """A TLV holding `value` NUL-terminated; the NUL counts in the length."""
    raw = value.encode("latin-1") + _NUL
    spec = TLV_SPECS.get(tag)
    limit = spec.max_length if spec is not None and spec.kind is TlvKind.CSTRING else 0xFFFF
    if len(raw) > limit or 0 in raw[:-1]:
        raise ValueError(f"TLV {tag:#06x}: {value!r} does not fit {limit} octets")
    return tag, raw


_GENERATED: Final = _build()
_DECODERS: Final = _GENERATED[0]
_ENCODERS: Final = _GENERATED[1]


# --- framing -----------------------------------------------------------------


class Framer:
    """Cuts a byte stream into whole PDUs using command_length.

    command_length counts its own four octets (SMPP 3.4 section 3.2), so a
    length below 16 or above `max_length` means the stream can no longer be
    trusted: `next_frame` raises a fatal PduError, and keeps raising it.
    """

    def __init__(self, max_length: int = 16384) -> None:
        self._max_length = max_length
        self._buffer = bytearray()
        self.frames = 0  # frames returned so far

    @property
    def complete(self) -> bool:
        """True when a whole frame (or a length that cannot be one) waits to be taken."""
        buffer = self._buffer
        return len(buffer) >= 4 and len(buffer) >= int.from_bytes(buffer[:4], "big")

    @property
    def partial(self) -> bool:
        """True when the buffer starts with a PDU that has not fully arrived."""
        buffer = self._buffer
        if not buffer:
            return False
        return len(buffer) < 4 or len(buffer) < int.from_bytes(buffer[:4], "big")

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Octets received but not yet returned as a frame."""
        return len(self._buffer)

    def next_frame(self) -> bytes | None:
        buffer = self._buffer
        available = len(buffer)
        if available < 4:
            return None
        length = int.from_bytes(buffer[:4], "big")
        if length < HEADER_LENGTH or length > self._max_length:
            readable = available >= HEADER_LENGTH
            raise PduError(
                _RINVCMDLEN,
                f"command_length {length} outside {HEADER_LENGTH}..{self._max_length}",
                command_id=int.from_bytes(buffer[4:8], "big") if available >= 8 else None,
                sequence=int.from_bytes(buffer[12:16], "big") if readable else None,
                fatal=True,
            )
        if available < length:
            return None
        frame = bytes(buffer[:length])
        # CPython trims a bytearray's head in O(1), so this does not copy the rest.
        del buffer[:length]
        self.frames += 1
        return frame
