"""The chunked transfer coding (RFC 9112, section 7.1), decoded without I/O.

Responsible for: taking one chunked body out of a connection's buffer, for the
server's request parser (gateway/http/parser.py) and the client's answer
parser (gateway/http/answers.py), which frame everything else themselves.

What always holds:

* :meth:`ChunkedBody.take` removes from the buffer exactly the bytes of the
  body (chunk-size lines, data, their CRLFs, the trailer section) and returns
  the decoded data once the last chunk and the trailers are in; until then it
  returns None and keeps what it decoded. Extensions and trailer fields are
  read and dropped (sections 7.1.1 and 7.1.2).
* Whatever the input, it raises nothing but :class:`ChunkError`, whose
  ``status`` is the HTTP answer a server would give (400 malformed, 413 too
  large, 431 trailers too large). Memory stays bounded: a body over
  ``max_body`` is refused before its chunk is read, a chunk-size line over
  MAX_LINE or trailers over ``max_trailers`` as soon as they are that long.
"""

from __future__ import annotations

import re

# Hex digits, the only characters of a chunk size (RFC 9112, section 7.1).
HEX_DIGITS = b"0123456789abcdefABCDEF"
# A chunk-size line with extensions longer than this is abuse.
MAX_LINE = 4096
_SIZE, _DATA, _TRAILERS = range(3)
_STRICT_END = re.compile(rb"\r\n\r\n")
_LENIENT_END = re.compile(rb"\r?\n\r?\n")


class ChunkError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ChunkedBody:
    """One chunked body being read. `bare_lf` takes trailers ended by LF alone
    (RFC 9112, section 2.2 lets a recipient); a server refuses them."""

    __slots__ = ("_body", "_end", "_remaining", "_state", "max_body", "max_trailers", "waiting_for")

    def __init__(self, max_body: int, max_trailers: int, *, bare_lf: bool = False) -> None:
        self.max_body = max_body
        self.max_trailers = max_trailers
        self._end = _LENIENT_END if bare_lf else _STRICT_END
        self._body = bytearray()
        self._remaining = 0
        self._state = _SIZE
        # What the last None waited for, for a peer that hangs up in the middle.
        self.waiting_for = "a chunk-size line"

    def take(self, buffer: bytearray) -> bytes | None:
        while True:
            state = self._state
            if state == _SIZE:
                end = buffer.find(b"\r\n", 0, MAX_LINE + 2)
                if end < 0:
                    if len(buffer) > MAX_LINE:
                        raise ChunkError(400, "chunk-size line too long")
                    self.waiting_for = "a chunk-size line"
                    return None
                digits = bytes(buffer[:end]).partition(b";")[0].rstrip(b" \t")
                if not digits or digits.translate(None, HEX_DIGITS) or len(digits) > 16:
                    raise ChunkError(400, "malformed chunk size")
                size = int(digits, 16)
                del buffer[: end + 2]
                if size == 0:
                    self._state = _TRAILERS
                    continue
                if len(self._body) + size > self.max_body:
                    raise ChunkError(413, f"body over {self.max_body} bytes")
                self._remaining = size
                self._state = _DATA
            elif state == _DATA:
                size = self._remaining
                if len(buffer) < size + 2:
                    self.waiting_for = "a chunk"
                    return None
                if buffer[size : size + 2] != b"\r\n":
                    raise ChunkError(400, "chunk data not followed by CRLF")
                self._body += buffer[:size]
                del buffer[: size + 2]
                self._state = _SIZE
            else:  # trailers: none, or fields up to an empty line
                if buffer[:2] == b"\r\n":
                    del buffer[:2]
                elif self._end is _LENIENT_END and buffer[:1] == b"\n":
                    del buffer[:1]
                else:
                    match = self._end.search(buffer, 0, self.max_trailers + 4)
                    if match is None:
                        if len(buffer) > self.max_trailers:
                            raise ChunkError(431, f"trailer section over {self.max_trailers} bytes")
                        self.waiting_for = "the trailer section"
                        return None
                    del buffer[: match.end()]
                body = bytes(self._body)
                self._body = bytearray()
                self._state = _SIZE
                return body


__all__ = ["HEX_DIGITS", "MAX_LINE", "ChunkError", "ChunkedBody"]
