"""HTTP/1.1 client side without I/O: requests out as bytes, bytes in, answers out.

Responsible for: formatting the requests the gateway sends to an origin server
(:func:`format_request`), and framing that server's answers out of the byte
stream of one connection (RFC 9112). No socket, no clock, no Twisted: the caller
tells :class:`AnswerParser` which request went out (:meth:`~AnswerParser.sent`),
feeds it whatever arrived, and says when the connection ended
(:meth:`~AnswerParser.feed_eof`), since some bodies end only there.

What always holds:

* :meth:`AnswerParser.next_answer` returns final answers (status 200-599), one
  for each request sent and in order, or ``None`` when it needs more bytes;
  whatever the input, it raises nothing but :class:`AnswerError`, and after one
  the parser stays failed: the rest of the stream cannot be trusted and the
  connection must close (RFC 9112, section 9.6).
* Interim answers (1xx: 100 Continue, 103 Early Hints) are read and dropped
  (RFC 9110, section 15.2); a 101 is an error, since we never ask to switch
  protocols.
* A body is framed as RFC 9112, section 6.3 orders it: none in an answer to HEAD
  or in a 204 or 304; ``chunked`` when Transfer-Encoding says so (it overrides a
  Content-Length); else Content-Length; else everything until the connection
  ends. An answer cut short by the end of the connection is an error, never a
  short body.
* Memory stays bounded by ``max_header_bytes + max_body`` plus whatever the
  server sends ahead: a head or trailer section over ``max_header_bytes`` or a
  body over ``max_body`` is refused as soon as it is known to be too long (a
  Content-Length over it before any body byte is read).
* :attr:`Answer.keep_alive` is True only when the connection may carry another
  request: HTTP/1.1 without ``Connection: close`` (or HTTP/1.0 asking for
  keep-alive) whose body length was known from the head. After an answer that
  is not, the parser takes nothing more from the stream.
* Header names in :attr:`Answer.headers` are lower case; a repeated field is one
  entry, its values joined with ``", "`` (RFC 9110, section 5.3), as
  :mod:`gateway.http.parser` does for requests.
* :func:`format_request` frames a body with exactly one Content-Length and
  refuses a field that could split the head (CR, LF or NUL in it) or a framing
  field from the caller, so no server can read the request two ways.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.http.chunked import ChunkedBody, ChunkError
from gateway.http.parser import HEAD_BYTES, TCHAR, comma_list

# RFC 9112, section 4: status-line = HTTP-version SP status-code SP [reason-phrase].
# The SP before an empty reason is often left out; we take the line without it.
_STATUS_LINE = re.compile(rb"HTTP/([0-9])\.([0-9]) ([1-5][0-9][0-9])(?: .*)?", re.DOTALL)
# RFC 9112, section 2.2: a recipient may take a bare LF as the end of a start-line
# or field line; a bare CR it must not.
_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")
# A field value: HTAB, SP, visible ASCII, obs-text (RFC 9110, section 5.5).
_VALUE_BYTES = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])
_TARGET_BYTES = bytes(range(0x21, 0x7F))
# Fields format_request writes itself: the request's framing is its business.
_FRAMING_FIELDS = frozenset((b"host", b"content-length", b"transfer-encoding"))
# RFC 9110, section 8.6: a request whose method gives content a meaning carries a
# Content-Length even when empty, or a server may wait for a body.
_CONTENT_METHODS = frozenset((b"POST", b"PUT", b"PATCH"))

DEFAULT_MAX_HEADER_BYTES = 65536
DEFAULT_MAX_BODY = 16 * 1024 * 1024


class AnswerError(Exception):
    """The answer stream is unusable: the connection must close. ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One final answer: its status, header fields (lower-case names), body, and
    whether the connection may carry another request."""

    status: int
    headers: dict[bytes, bytes]
    body: bytes = b""
    keep_alive: bool = True


def format_request(
    method: bytes,
    target: bytes,
    host: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    body: bytes | None = None,
) -> bytes:
    """A complete HTTP/1.1 request: ``target`` in origin-form (``/path?query``),
    ``host`` the Host field's value. Raises ValueError for a method, target,
    host or field that cannot be written as given."""
    if not method or method.translate(None, TCHAR):
        raise ValueError(f"not an HTTP method: {method!r}")
    if not target or target.translate(None, _TARGET_BYTES):
        raise ValueError(f"not a request target: {target!r}")
    if not host or host.translate(None, _TARGET_BYTES):
        raise ValueError(f"not a Host value: {host!r}")
    parts = [b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target, host)]
    for name, value in headers:
        if not name or name.translate(None, TCHAR) or name.lower() in _FRAMING_FIELDS:
            raise ValueError(f"cannot send a header field named {name!r}")
        if value.translate(None, _VALUE_BYTES):
            raise ValueError(f"control character in the value of {name!r}")
        parts.append(b"%s: %s\r\n" % (name, value))
    if body is not None or method in _CONTENT_METHODS:
        body = body or b""
        parts.append(b"Content-Length: %d\r\n\r\n" % len(body))
        parts.append(body)
    else:
        parts.append(b"\r\n")
    return b"".join(parts)


# Parser states.
_HEAD, _LENGTH, _CHUNKED, _UNTIL_CLOSE, _CLOSED, _FAILED = range(6)


class AnswerParser:
    """Incremental answer parser for one connection (client side).

    :meth:`sent` records each request's method as it goes out (the answer to a
    HEAD has no body); :meth:`feed` appends bytes; :meth:`feed_eof` marks the end
    of the stream; :meth:`next_answer` hands out the next complete answer or
    ``None``. After an :class:`AnswerError` every later call raises it again.
    """

    __slots__ = (
        "_buffer",
        "_chunked",
        "_eof",
        "_error",
        "_headers",
        "_keep_alive",
        "_methods",
        "_remaining",
        "_scanned",
        "_state",
        "_status",
        "max_body",
        "max_header_bytes",
    )

    def __init__(
        self, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES, max_body: int = DEFAULT_MAX_BODY
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body = max_body
        self._buffer = bytearray()
        self._methods: deque[bytes] = deque()  # of the requests not answered yet
        self._state = _HEAD
        self._scanned = 0  # head bytes already searched for their end
        self._status = 0
        self._headers: dict[bytes, bytes] = {}
        self._keep_alive = True
        self._chunked: ChunkedBody | None = None  # the chunked body being read
        self._remaining = 0  # Content-Length bytes, or bytes left in the current chunk
        self._eof = False
        self._error: AnswerError | None = None

    # -- input -------------------------------------------------------------------

    def sent(self, method: bytes) -> None:
        """A request with this method went out; its answer is expected next."""
        self._methods.append(method)

    def feed(self, data: bytes) -> None:
        """Append received bytes; nothing is parsed until :meth:`next_answer`."""
        if self._state < _CLOSED:
            self._buffer += data

    def feed_eof(self) -> None:
        """The server closed the connection: a body read until then is complete,
        and anything unfinished will never be."""
        self._eof = True

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of an answer handed out."""
        return len(self._buffer)

    # -- output ------------------------------------------------------------------

    def next_answer(self) -> Answer | None:
        """The next complete final answer, or None when more bytes are needed."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except AnswerError as e:
            self._fail(e)
            raise

    def _fail(self, error: AnswerError) -> None:
        self._state = _FAILED
        self._error = error
        self._buffer = bytearray()
        self._chunked = None

    def _next(self) -> Answer | None:
        while True:
            state = self._state
            if state == _HEAD:
                if not self._parse_head():
                    return None
                continue  # an interim answer, or a final one now framed
            if state == _LENGTH:
                return self._take_length_body()
            if state == _UNTIL_CLOSE:
                return self._take_until_close()
            if state == _CLOSED:
                if self._methods:
                    raise AnswerError("request sent on a connection the server is closing")
                return None
            return self._take_chunked_body()

    def _parse_head(self) -> bool:
        """Frame the next head; False when it is not all here yet."""
        buffer = self._buffer
        if buffer and buffer[0] in b"\r\n":
            # Blank lines between answers (a server's stray CRLF after a body).
            stripped = buffer.lstrip(b"\r\n")
            del buffer[: len(buffer) - len(stripped)]
            self._scanned = 0
        if not self._methods:
            if buffer:
                raise AnswerError("the server sent an answer to no request")
            return False
        match = _END_OF_HEAD.search(buffer, max(self._scanned - 3, 0))
        if match is None:
            if len(buffer) > self.max_header_bytes:
                raise AnswerError(f"answer head over {self.max_header_bytes} bytes")
            if self._eof:
                raise AnswerError(
                    "connection closed before an answer"
                    if not buffer
                    else "connection closed in the middle of an answer head"
                )
            self._scanned = len(buffer)
            return False
        end = match.start()
        if end > self.max_header_bytes:
            raise AnswerError(f"answer head over {self.max_header_bytes} bytes")
        head = bytes(buffer[:end])
        del buffer[: match.end()]
        self._scanned = 0
        status, http10, headers = _parse_fields(head)
        if status < 200:
            if status == 101:
                raise AnswerError("101 Switching Protocols to a request that asked for none")
            return True  # RFC 9110, section 15.2: an interim answer, skipped
        self._frame(status, http10, headers)
        return True

    def _frame(self, status: int, http10: bool, headers: dict[bytes, bytes]) -> None:
        """Persistence and body framing from the head (RFC 9112, sections 6.3 and 9.3)."""
        self._status = status
        self._headers = headers
        connection = headers.get(b"connection")
        if connection is None:
            keep_alive = not http10
        elif http10:
            keep_alive = b"keep-alive" in comma_list(connection.lower())
        else:
            keep_alive = b"close" not in comma_list(connection.lower())
        method = self._methods[0]
        if method == b"HEAD" or status in (204, 304):
            # RFC 9112, section 6.3 (1): whatever the header fields say, no body.
            self._keep_alive = keep_alive
            self._remaining = 0
            self._state = _LENGTH
            return
        coding = headers.get(b"transfer-encoding")
        length = headers.get(b"content-length")
        if coding is not None:
            if http10:
                # RFC 9112, section 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
                raise AnswerError("Transfer-Encoding in an HTTP/1.0 answer")
            if comma_list(coding.lower()) != [b"chunked"]:
                # We send no TE field, so chunked is the only coding a server may
                # use (RFC 9110, section 10.1.4).
                raise AnswerError(f"unsupported transfer coding {coding!r}")
            # RFC 9112, section 6.3 (3): Transfer-Encoding overrides Content-Length,
            # but such an answer may be an attempt at splitting: do not reuse.
            self._keep_alive = keep_alive and length is None
            self._chunked = ChunkedBody(self.max_body, self.max_header_bytes, bare_lf=True)
            self._state = _CHUNKED
            return
        if length is not None:
            size = _content_length(length)
            if size > self.max_body:
                raise AnswerError(f"answer body of {size} bytes, over {self.max_body}")
            self._keep_alive = keep_alive
            self._remaining = size
            self._state = _LENGTH
            return
        # RFC 9112, section 6.3 (8): the body runs until the server closes.
        self._keep_alive = False
        self._state = _UNTIL_CLOSE

    def _take_length_body(self) -> Answer | None:
        size = self._remaining
        buffer = self._buffer
        if len(buffer) < size:
            if self._eof:
                raise AnswerError(
                    f"connection closed after {len(buffer)} of the body's {size} bytes"
                )
            return None
        body = bytes(buffer[:size]) if size else b""
        if size:
            del buffer[:size]
        return self._done(body)

    def _take_until_close(self) -> Answer | None:
        buffer = self._buffer
        if len(buffer) > self.max_body:
            raise AnswerError(f"answer body over {self.max_body} bytes")
        if not self._eof:
            return None
        body = bytes(buffer)
        buffer.clear()
        return self._done(body)

    def _take_chunked_body(self) -> Answer | None:
        assert self._chunked is not None
        try:
            body = self._chunked.take(self._buffer)
        except ChunkError as e:
            raise AnswerError(e.reason if e.status != 413 else f"answer {e.reason}") from None
        if body is None:
            self._short(self._chunked.waiting_for)
            return None
        self._chunked = None
        return self._done(body)

    def _short(self, what: str) -> None:
        """More bytes are needed; an error if none can come any more."""
        if self._eof:
            raise AnswerError(f"connection closed in the middle of {what}")

    def _done(self, body: bytes) -> Answer:
        self._methods.popleft()
        answer = Answer(self._status, self._headers, body, self._keep_alive)
        self._headers = {}
        if self._keep_alive:
            self._state = _HEAD
        else:
            # RFC 9112, section 9.6: nothing after the last answer is read.
            self._state = _CLOSED
            self._buffer = bytearray()
        return answer


def _parse_fields(head: bytes) -> tuple[int, bool, dict[bytes, bytes]]:
    """(status, is HTTP/1.0, header fields) of one answer head without its blank line."""
    if head.translate(None, HEAD_BYTES):
        raise AnswerError("control character in the answer head")
    crlf = head.count(b"\r\n")
    if head.count(b"\r") != crlf:
        raise AnswerError("bare CR in the answer head")
    lines = head.split(b"\r\n") if head.count(b"\n") == crlf else _LINE_END.split(head)
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise AnswerError(f"malformed status line {lines[0][:80]!r}")
    major, minor, code = match.groups()
    if major != b"1":
        raise AnswerError(f"not an HTTP/1.x answer: HTTP/{major.decode()}.{minor.decode()}")
    headers: dict[bytes, bytes] = {}
    name = b""
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            # RFC 9112, section 5.2: obs-fold; a user agent replaces it with SP.
            if not name:
                raise AnswerError("whitespace before the first header field")
            headers[name] = headers[name] + b" " + line.strip(b" \t")
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(None, TCHAR):
            raise AnswerError(f"malformed header line {line[:80]!r}")
        name = name.lower()
        value = value.strip(b" \t")
        if name in headers:
            headers[name] = headers[name] + b", " + value
        else:
            headers[name] = value
    return int(code), minor == b"0", headers


def _content_length(value: bytes) -> int:
    # RFC 9112, section 6.3 (5): an invalid Content-Length is unrecoverable framing.
    # RFC 9110, section 8.6: a list of identical values may be taken as one.
    if not value.isdigit():
        values = set(comma_list(value))
        if len(values) != 1:
            raise AnswerError(f"bad Content-Length {value[:40]!r}")
        value = values.pop()
        if not value.isdigit():
            raise AnswerError(f"bad Content-Length {value[:40]!r}")
    if len(value) > 18:
        raise AnswerError("answer body of more than 10**18 bytes")
    return int(value)


__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_HEADER_BYTES",
    "Answer",
    "AnswerError",
    "AnswerParser",
    "format_request",
]
