"""HTTP/1.1 server side without I/O: bytes in, requests out; responses out as bytes.

Responsible for: framing requests out of a byte stream (RFC 9112), checking
them just enough that nothing ambiguous reaches a handler, and formatting the
few kinds of response the gateway sends. No socket, no clock, no Twisted: the
caller feeds :class:`RequestParser` whatever arrived and passes the time to
:func:`format_response`.

What always holds:

* :meth:`RequestParser.next_request` returns complete requests in the order
  they were sent, or ``None`` when it needs more bytes; whatever the input, it
  raises nothing but :class:`HttpError`, whose ``status`` is the answer to give
  before closing the connection (RFC 9112, section 9.6: after a framing error
  the rest of the stream cannot be trusted, so the parser stays failed).
* A body is framed by exactly one of Content-Length or ``chunked``; a request
  carrying both, an unknown transfer coding, or a body over ``max_body`` is
  refused before its body is read (RFC 9112, sections 6.1 and 6.3), so request
  smuggling through disagreeing framings cannot start here.
* A header block over ``max_header_bytes`` is refused with 431 as soon as it is
  known to be too long, so memory per connection stays bounded by
  ``max_header_bytes + max_body`` plus what the peer sent ahead (pipelined).
* Header names in :attr:`HttpRequest.headers` are lower case; a repeated field
  is one entry, its values joined with ``", "`` (RFC 9110, section 5.3).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from gateway.http.chunked import ChunkedBody, ChunkError

# The character tables and comma_list are shared with the client side
# (gateway/http/answers.py). RFC 9110, section 5.6.2: token characters, the only
# ones allowed in a method or a field name.
TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Bytes a header block may hold: visible ASCII, SP, HTAB, obs-text (RFC 9110, section
# 5.5) and the CR LF that end lines. Anything else (NUL, other controls) is refused.
HEAD_BYTES = bytes([0x09, 0x0A, 0x0D, *range(0x20, 0x7F), *range(0x80, 0x100)])
# RFC 9112, section 3: request-line = method SP request-target SP HTTP-version.
# The target is visible ASCII (RFC 3986 allows nothing else); the version is
# matched loosely here so that HTTP/2.0 and friends get 505 rather than 400.
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([!-~]+) HTTP/([0-9]+(?:\.[0-9]+)?)")

# An LF not after a CR (RFC 9112, section 2.2 lets us refuse those).
_BARE_LF = re.compile(rb"(?<!\r)\n")
# RFC 9112, section 3: servers should take request-lines of at least 8000 octets.
_MAX_TARGET = 8192

_REASONS: dict[int, bytes] = {
    100: b"Continue",
    200: b"OK",
    201: b"Created",
    202: b"Accepted",
    204: b"No Content",
    301: b"Moved Permanently",
    304: b"Not Modified",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    411: b"Length Required",
    413: b"Content Too Large",
    414: b"URI Too Long",
    415: b"Unsupported Media Type",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}

TEXT_PLAIN = b"text/plain; charset=utf-8"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpError(Exception):
    """The request stream is unusable; answer ``status`` with ``reason`` and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class HttpRequest:
    """One complete request. ``path`` and ``query`` are the target split at the
    first ``?``, still percent-encoded; for an absolute-form target (RFC 9112,
    section 3.2.2) the scheme and authority are dropped from ``path``."""

    method: bytes
    target: bytes
    path: bytes
    query: bytes
    version: bytes
    headers: dict[bytes, bytes]
    body: bytes = b""
    keep_alive: bool = True

    def query_args(self) -> dict[bytes, list[bytes]]:
        """The query string as name -> values, percent-decoded, ``+`` as space;
        blank values are kept (``a=&b`` gives ``{a: [b""], b: [b""]}``)."""
        args: dict[bytes, list[bytes]] = {}
        if not self.query:
            return args
        for pair in self.query.split(b"&"):
            if not pair:
                continue
            name, _, value = pair.partition(b"=")
            name = unquote_to_bytes(name.replace(b"+", b" "))
            value = unquote_to_bytes(value.replace(b"+", b" "))
            args.setdefault(name, []).append(value)
        return args


@dataclass(frozen=True, slots=True)
class Response:
    """What a router answers; the server adds the framing."""

    status: int
    body: bytes = b""
    content_type: bytes = TEXT_PLAIN
    headers: Sequence[tuple[bytes, bytes]] = field(default=())


# Parser states.
_HEAD, _LENGTH, _CHUNKED, _FAILED = range(4)
# What a server says for the chunked decoder's refusals, in a request's words.
_CHUNK_REASONS = {413: "request body too large", 431: "trailer section too large"}


class RequestParser:
    """Incremental request parser for one connection (server side).

    ``feed`` appends bytes; ``next_request`` hands out the next complete request
    or ``None``. After an :class:`HttpError` every later call raises it again.
    """

    __slots__ = (
        "_buffer",
        "_chunked",
        "_error",
        "_expects_continue",
        "_head",
        "_remaining",
        "_state",
        "max_body",
        "max_header_bytes",
    )

    def __init__(self, max_header_bytes: int = 16384, max_body: int = 65536) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body = max_body
        self._buffer = bytearray()
        self._state = _HEAD
        self._head: HttpRequest | None = None  # head of the request whose body is awaited
        self._chunked: ChunkedBody | None = None  # the chunked body being read
        self._remaining = 0  # Content-Length bytes, or bytes left in the current chunk
        self._expects_continue = False
        self._error: HttpError | None = None

    # -- input -------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Append received bytes; nothing is parsed until :meth:`next_request`."""
        self._buffer += data
        if self._state != _HEAD and data:
            # RFC 9110, section 10.1.1: once body bytes flow, the client is no
            # longer waiting for 100 (Continue).
            self._expects_continue = False

    @property
    def expects_continue(self) -> bool:
        """True while a request head asked for ``Expect: 100-continue`` and none of
        its body has arrived: the server should send :data:`CONTINUE` (once) if it
        means to read the body. Call :meth:`continue_sent` after sending it."""
        return self._expects_continue

    def continue_sent(self) -> None:
        self._expects_continue = False

    @property
    def head(self) -> HttpRequest | None:
        """The request whose body is awaited (without it), for a look at its
        header fields before deciding to send 100 (Continue)."""
        return self._head

    @property
    def has_partial(self) -> bool:
        """True when part of a request (not just blank lines) has arrived."""
        return self._state != _HEAD or bool(self._buffer.strip(b"\r\n"))

    # -- output ------------------------------------------------------------------

    def next_request(self) -> HttpRequest | None:
        """The next complete request, or None when more bytes are needed."""
        if self._error is not None:
            raise self._error
        try:
            if self._state == _HEAD and not self._parse_head():
                return None
            if self._state == _LENGTH:
                return self._take_length_body()
            return self._take_chunked_body()
        except HttpError as e:
            self._state = _FAILED
            self._error = e
            self._expects_continue = False
            raise

    def _parse_head(self) -> bool:
        buffer = self._buffer
        # RFC 9112, section 2.2: ignore empty lines before a request-line (some
        # clients send a CRLF after a POST body).
        while buffer[:2] == b"\r\n":
            del buffer[:2]
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > self.max_header_bytes:
                raise self._too_long_head(buffer)
            if _BARE_LF.search(buffer):
                # A head ended by bare LFs would never see its CRLF CRLF: say so now
                # rather than at the request timeout.
                raise HttpError(400, "bare LF in the request head")
            return False
        if end > self.max_header_bytes:
            raise self._too_long_head(buffer)
        head = bytes(buffer[:end])
        del buffer[: end + 4]
        if head.translate(None, HEAD_BYTES):
            raise HttpError(400, "control character in the request head")
        lines = head.split(b"\r\n")
        # RFC 9112, section 2.2: a bare CR or LF is not a line ending we accept;
        # refusing it keeps us agreeing with any proxy in front about where lines end.
        if head.count(b"\n") != len(lines) - 1 or head.count(b"\r") != len(lines) - 1:
            raise HttpError(400, "bare CR or LF in the request head")
        match = _REQUEST_LINE.fullmatch(lines[0])
        if match is None:
            raise HttpError(400, "malformed request line")
        method, target, version = match.groups()
        if version == b"1.1":
            http10 = False
        elif version == b"1.0":
            http10 = True
        elif version[:2] == b"1." and len(version) == 3:
            # RFC 9110, section 2.5: a higher minor version is HTTP/1.1-compatible.
            http10 = False
        else:
            raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            # RFC 9112, section 5.1: no whitespace between name and colon (400);
            # section 5.2: obs-fold (a line starting with whitespace) is refused.
            if not colon or not name or name.translate(None, TCHAR):
                raise HttpError(400, "malformed header line")
            name = name.lower()
            value = value.strip(b" \t")
            if name in headers:
                headers[name] = headers[name] + b", " + value
            else:
                headers[name] = value
        if len(target) > _MAX_TARGET:
            raise HttpError(414, "request target too long")
        path, _, query = target.partition(b"?")
        if path[:1] != b"/" and path != b"*":
            path = _absolute_form_path(path, method)
        request = HttpRequest(
            method, target, path, query, b"HTTP/" + version, headers, b"", not http10
        )
        self._frame(request, http10)
        return True

    def _too_long_head(self, buffer: bytearray) -> HttpError:
        # RFC 9112, section 3: a request-line longer than we take gets 414.
        first = buffer.find(b"\r\n")
        if first < 0 or first > _MAX_TARGET:
            return HttpError(414, "request line too long")
        return HttpError(431, "request header block too large")

    def _frame(self, request: HttpRequest, http10: bool) -> None:
        """Decide persistence and body framing from the head (RFC 9112, 6.3 and 9.3)."""
        headers = request.headers
        connection = headers.get(b"connection")
        if connection is not None:
            options = connection.lower()
            if http10:
                # RFC 9112, section 9.3: HTTP/1.0 persists only when asked.
                request.keep_alive = b"keep-alive" in comma_list(options)
            elif b"close" in options:
                request.keep_alive = b"close" not in comma_list(options)
        elif http10:
            request.keep_alive = False
        if not http10:
            # RFC 9112, section 3.2: an HTTP/1.1 request carries exactly one Host.
            host = headers.get(b"host")
            if host is None or b"," in host:
                raise HttpError(400, "HTTP/1.1 request needs exactly one Host header")
        expect = headers.get(b"expect")
        # RFC 9110, section 10.1.1: a 100-continue expectation in an HTTP/1.0
        # request is ignored; other expectations we simply do not act on.
        expects_continue = expect is not None and not http10 and expect.lower() == b"100-continue"
        coding = headers.get(b"transfer-encoding")
        length = headers.get(b"content-length")
        if coding is not None:
            if length is not None:
                # RFC 9112, section 6.3 (3): both present is a smuggling attempt or
                # a broken client; either way the framing cannot be trusted.
                raise HttpError(400, "both Content-Length and Transfer-Encoding")
            if http10:
                # RFC 9112, section 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
                raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
            codings = comma_list(coding.lower())
            if codings != [b"chunked"]:
                if any(c != b"chunked" for c in codings):
                    # RFC 9112, section 6.1: a coding we do not understand -> 501.
                    raise HttpError(501, "unsupported transfer coding")
                # RFC 9112, section 6.1: chunked applied twice (or empty) is invalid.
                raise HttpError(400, "malformed Transfer-Encoding")
            self._head = request
            self._chunked = ChunkedBody(self.max_body, self.max_header_bytes)
            self._state = _CHUNKED
            self._expects_continue = expects_continue and not self._buffer
            return
        if length is None:
            # RFC 9112, section 6.3 (7): no framing in a request means no body.
            self._state = _LENGTH
            self._remaining = 0
            self._head = request
            return
        size = _content_length(length)
        if size > self.max_body:
            raise HttpError(413, "request body too large")
        self._head = request
        self._remaining = size
        self._state = _LENGTH
        # RFC 9110, section 10.1.1: no 100 (Continue) when there is no body to wait
        # for, or when the client already started sending it.
        self._expects_continue = expects_continue and size > 0 and not self._buffer

    def _take_length_body(self) -> HttpRequest | None:
        size = self._remaining
        buffer = self._buffer
        if len(buffer) < size:
            return None
        request = self._head
        assert request is not None
        if size:
            request.body = bytes(buffer[:size])
            del buffer[:size]
        return self._done(request)

    def _take_chunked_body(self) -> HttpRequest | None:
        assert self._chunked is not None
        try:
            body = self._chunked.take(self._buffer)
        except ChunkError as e:
            raise HttpError(e.status, _CHUNK_REASONS.get(e.status, e.reason)) from None
        if body is None:
            return None
        request = self._head
        assert request is not None
        request.body = body
        self._chunked = None
        return self._done(request)

    def _done(self, request: HttpRequest) -> HttpRequest:
        self._head = None
        self._state = _HEAD
        self._expects_continue = False
        return request


def comma_list(value: bytes) -> list[bytes]:
    """A comma-separated list (RFC 9110, section 5.6.1), empty elements dropped."""
    return [item for item in (part.strip(b" \t") for part in value.split(b",")) if item]


def _content_length(value: bytes) -> int:
    # RFC 9112, section 6.3 (5): an invalid Content-Length is unrecoverable framing.
    # RFC 9110, section 8.6: a list of identical values may be taken as one.
    if not value.isdigit():
        values = set(comma_list(value))
        if len(values) != 1:
            raise HttpError(400, "bad Content-Length")
        value = values.pop()
        if not value.isdigit():
            raise HttpError(400, "bad Content-Length")
    if len(value) > 18:
        raise HttpError(413, "request body too large")
    return int(value)


def _absolute_form_path(target: bytes, method: bytes) -> bytes:
    """The path of an absolute-form target (RFC 9112, section 3.2.2), which a
    server must accept; authority-form is only for CONNECT (section 3.2.3)."""
    scheme, sep, rest = target.partition(b"://")
    if sep and scheme.lower() in (b"http", b"https"):
        slash = rest.find(b"/")
        return rest[slash:] if slash >= 0 else b"/"
    if method == b"CONNECT":
        return target
    raise HttpError(400, "malformed request target")


# -- responses ----------------------------------------------------------------------

_WEEKDAYS = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS = (
    b"Jan",
    b"Feb",
    b"Mar",
    b"Apr",
    b"May",
    b"Jun",
    b"Jul",
    b"Aug",
    b"Sep",
    b"Oct",
    b"Nov",
    b"Dec",
)


class _DateCache:
    """The last formatted Date value and the second it is for."""

    second = -1
    value = b""


def http_date(seconds: float) -> bytes:
    """IMF-fixdate (RFC 9110, section 5.6.7) for a POSIX time; the last value
    is cached, so a busy server formats it once a second."""
    whole = int(seconds)
    if _DateCache.second != whole:
        t = time.gmtime(whole)
        _DateCache.value = b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
            _WEEKDAYS[t.tm_wday],
            t.tm_mday,
            _MONTHS[t.tm_mon - 1],
            t.tm_year,
            t.tm_hour,
            t.tm_min,
            t.tm_sec,
        )
        _DateCache.second = whole
    return _DateCache.value


def format_response(
    status: int,
    body: bytes,
    *,
    content_type: bytes = TEXT_PLAIN,
    headers: Sequence[tuple[bytes, bytes]] = (),
    keep_alive: bool = True,
    now: float | None = None,
    head: bool = False,
) -> bytes:
    """A complete HTTP/1.1 response. ``now`` (POSIX seconds) adds the Date header
    (RFC 9110, section 6.6.1); ``head=True`` answers a HEAD request: the same
    header fields, no body (RFC 9110, section 9.3.2)."""
    reason = _REASONS.get(status, b"Unknown")
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    if now is not None:
        parts.append(b"Date: %s\r\n" % http_date(now))
    # RFC 9110, sections 8.6 and 15.3.5: no Content-Length (nor content) in a 1xx,
    # 204 or 304 answer.
    if status >= 200 and status not in (204, 304):
        parts.append(b"Content-Type: %s\r\nContent-Length: %d\r\n" % (content_type, len(body)))
    else:
        body = b""
    for name, value in headers:
        parts.append(b"%s: %s\r\n" % (name, value))
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    if not head:
        parts.append(body)
    return b"".join(parts)


def error_response(error: HttpError, *, now: float | None = None) -> bytes:
    """The answer to a request the parser refused; the connection closes after it."""
    return format_response(error.status, error.reason.encode() + b"\n", keep_alive=False, now=now)


__all__ = [
    "CONTINUE",
    "HEAD_BYTES",
    "TCHAR",
    "TEXT_PLAIN",
    "HttpError",
    "HttpRequest",
    "RequestParser",
    "Response",
    "comma_list",
    "error_response",
    "format_response",
    "http_date",
]
