"""The chunked-body decoder shared by the server and client parsers (gateway/http/chunked.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.http.chunked import MAX_LINE, ChunkedBody, ChunkError

chunks = st.lists(st.binary(min_size=1, max_size=300), max_size=8)
trailers = st.sampled_from([b"", b"X-Check: 1\r\n", b"A: b\r\nC: d\r\n"])


def encode(parts: list[bytes], trailer: bytes = b"", extension: bytes = b"") -> bytes:
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(part), extension, part) for part in parts)
    return body + b"0\r\n" + trailer + b"\r\n"


def take_in_pieces(data: bytes, cuts: list[int], **options: int | bool) -> bytes | None:
    decoder = ChunkedBody(options.pop("max_body", 10_000), options.pop("max_trailers", 1000))
    buffer = bytearray()
    result = None
    last = 0
    for cut in [*sorted(cuts), len(data)]:
        buffer += data[last:cut]
        last = cut
        result = decoder.take(buffer)
        if result is not None:
            break
    assert not buffer, "bytes after the body were taken too"
    return result


@given(chunks, trailers, st.sampled_from([b"", b";name=value"]), st.data())
def test_any_split_of_the_stream_gives_the_same_body(
    parts: list[bytes], trailer: bytes, extension: bytes, data: st.DataObject
) -> None:
    encoded = encode(parts, trailer, extension)
    cuts = data.draw(st.lists(st.integers(0, len(encoded)), max_size=10))
    assert take_in_pieces(encoded, cuts) == b"".join(parts)


@given(st.binary(max_size=400))
def test_garbage_raises_nothing_but_chunk_error(garbage: bytes) -> None:
    decoder = ChunkedBody(1000, 200)
    try:
        decoder.take(bytearray(garbage))
    except ChunkError as e:
        assert e.status in (400, 413, 431)


def test_the_limits_are_refused_with_their_status() -> None:
    with pytest.raises(ChunkError) as too_large:
        ChunkedBody(10, 100).take(bytearray(encode([b"x" * 11])))
    assert too_large.value.status == 413
    with pytest.raises(ChunkError) as long_line:
        ChunkedBody(10, 100).take(bytearray(b"1" + b" " * (MAX_LINE + 2)))
    assert long_line.value.status == 400
    with pytest.raises(ChunkError) as trailer:
        ChunkedBody(10, 100).take(bytearray(b"0\r\n" + b"X: " + b"y" * 200))
    assert trailer.value.status == 431


def test_a_bare_lf_ends_the_trailers_only_where_allowed() -> None:
    data = b"1\r\na\r\n0\r\nX: 1\n\n"
    assert ChunkedBody(10, 100, bare_lf=True).take(bytearray(data)) == b"a"
    assert ChunkedBody(10, 100).take(bytearray(data)) is None  # still waiting for CRLF CRLF
