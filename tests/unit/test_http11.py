"""The sans-IO HTTP/1.1 request parser and response formatter (gateway.http.parser)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.http.parser import (
    CONTINUE,
    HttpError,
    HttpRequest,
    RequestParser,
    error_response,
    format_response,
    http_date,
)


def parse_all(data: bytes, **limits: int) -> list[HttpRequest]:
    parser = RequestParser(**limits)
    parser.feed(data)
    requests = []
    while (request := parser.next_request()) is not None:
        requests.append(request)
    return requests


def parse_one(data: bytes, **limits: int) -> HttpRequest:
    [request] = parse_all(data, **limits)
    return request


def refused(data: bytes, **limits: int) -> int:
    """The status of the HttpError the request gets."""
    with pytest.raises(HttpError) as caught:
        parse_all(data, **limits)
    return caught.value.status


POST = (
    b"POST /callbacks/dlr?x=1 HTTP/1.1\r\n"
    b"Host: gw.example\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 13\r\n"
    b"\r\n"
    b'{"id": "abc"}'
)


# -- request line ---------------------------------------------------------------------


def test_post_with_content_length() -> None:
    request = parse_one(POST)
    assert request.method == b"POST"
    assert request.target == b"/callbacks/dlr?x=1"
    assert (request.path, request.query) == (b"/callbacks/dlr", b"x=1")
    assert request.version == b"HTTP/1.1"
    assert request.body == b'{"id": "abc"}'
    assert request.keep_alive
    assert request.headers[b"content-type"] == b"application/json"


def test_get_without_length_has_no_body() -> None:
    request = parse_one(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (request.method, request.path, request.query, request.body) == (
        b"GET",
        b"/healthz",
        b"",
        b"",
    )


def test_absolute_and_asterisk_form_targets() -> None:
    request = parse_one(b"GET http://gw.example:8080/metrics?a=b HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (request.path, request.query) == (b"/metrics", b"a=b")
    assert parse_one(b"GET https://gw.example HTTP/1.1\r\nHost: x\r\n\r\n").path == b"/"
    assert parse_one(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").path == b"*"
    assert parse_one(b"CONNECT gw:443 HTTP/1.1\r\nHost: gw\r\n\r\n").path == b"gw:443"


def test_leading_empty_lines_are_skipped() -> None:
    assert parse_one(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").method == b"GET"


@pytest.mark.parametrize(
    "line",
    [
        b"GET / HTTP/1.1 extra",
        b"GET  / HTTP/1.1",
        b"GET /",
        b"GET / http/1.1",
        b"G(T / HTTP/1.1",
        b"GET /a\tb HTTP/1.1",
        b"GET nonsense HTTP/1.1",
        b" GET / HTTP/1.1",
        b"",
    ],
)
def test_bad_request_lines(line: bytes) -> None:
    assert refused(line + b"\r\nHost: h\r\n\r\n") == 400


@pytest.mark.parametrize("version", [b"2.0", b"2", b"0.9", b"3.0", b"1.10"])
def test_other_versions_get_505(version: bytes) -> None:
    assert refused(b"GET / HTTP/" + version + b"\r\nHost: h\r\n\r\n") == 505


def test_http2_preface_gets_505() -> None:
    assert refused(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == 505


def test_higher_minor_version_is_treated_as_1_1() -> None:
    request = parse_one(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n")
    assert request.keep_alive and request.version == b"HTTP/1.2"


def test_long_target_gets_414() -> None:
    assert refused(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n") == 414
    # Known as soon as the line is over the limit, before the head ends.
    assert refused(b"GET /" + b"a" * 20000, max_header_bytes=16384) == 414


# -- header fields --------------------------------------------------------------------


def test_header_names_lower_case_values_trimmed_repeats_joined() -> None:
    request = parse_one(
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Thing:  a \r\nx-thing:\tb\r\nEmpty:\r\n\r\n"
    )
    assert request.headers == {b"host": b"h", b"x-thing": b"a, b", b"empty": b""}


def test_obs_text_in_values_is_kept() -> None:
    assert parse_one(b"GET / HTTP/1.1\r\nHost: h\r\nX: caf\xe9\r\n\r\n").headers[b"x"] == b"caf\xe9"


@pytest.mark.parametrize(
    "line",
    [
        b"Name : value",  # RFC 9112, section 5.1
        b" folded",  # obs-fold, section 5.2
        b"\tfolded",
        b"no colon",
        b": no name",
        b"Na(me: value",
        b"X: a\x00b",
        b"X: a\x7fb",
        b"X: a\rb",
        b"X: a\nb",
    ],
)
def test_bad_header_lines(line: bytes) -> None:
    assert refused(b"GET / HTTP/1.1\r\nHost: h\r\n" + line + b"\r\n\r\n") == 400


def test_http11_needs_exactly_one_host() -> None:
    assert refused(b"GET / HTTP/1.1\r\n\r\n") == 400
    assert refused(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == 400
    assert parse_one(b"GET / HTTP/1.0\r\n\r\n").method == b"GET"


def test_header_block_over_limit_gets_431() -> None:
    big = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 200 + b"\r\n\r\n"
    assert refused(big, max_header_bytes=100) == 431
    # Refused before the block ends, so an endless header costs bounded memory.
    parser = RequestParser(max_header_bytes=100)
    parser.feed(b"GET / HTTP/1.1\r\nX: " + b"a" * 200)
    with pytest.raises(HttpError) as caught:
        parser.next_request()
    assert caught.value.status == 431


def test_header_block_at_limit_is_fine() -> None:
    head = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 50
    assert parse_one(head + b"\r\n\r\n", max_header_bytes=len(head)).method == b"GET"


# -- Content-Length ------------------------------------------------------------------


def test_content_length_waits_for_the_whole_body() -> None:
    parser = RequestParser()
    parser.feed(POST[:-5])
    assert parser.next_request() is None
    assert parser.has_partial
    parser.feed(POST[-5:])
    request = parser.next_request()
    assert request is not None and request.body == b'{"id": "abc"}'
    assert not parser.has_partial


def test_identical_content_lengths_are_one() -> None:
    data = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"
    assert parse_one(data).body == b"ok"


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1, 2", b"+5", b"0x10", b"", b"1 2"])
def test_bad_content_length(value: bytes) -> None:
    assert refused(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + value + b"\r\n\r\n") == 400


def test_body_over_limit_refused_from_the_declared_length() -> None:
    parser = RequestParser(max_body=100)
    parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n")
    with pytest.raises(HttpError) as caught:
        parser.next_request()
    assert caught.value.status == 413
    assert (
        refused(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + b"9" * 40 + b"\r\n\r\n") == 413
    )


def test_body_at_limit_is_fine() -> None:
    data = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + b"x" * 100
    assert len(parse_one(data, max_body=100).body) == 100


# -- chunked --------------------------------------------------------------------------

CHUNKED = (
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;name=value;other\r\nhello\r\n"
    b"1A\r\n" + b"z" * 26 + b"\r\n"
    b"0;last\r\n"
    b"Trailer-One: x\r\nTrailer-Two: y\r\n\r\n"
)


def test_chunked_with_extensions_and_trailers() -> None:
    request = parse_one(CHUNKED)
    assert request.body == b"hello" + b"z" * 26
    assert b"trailer-one" not in request.headers


def test_chunked_without_trailers() -> None:
    data = b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    assert parse_one(data).body == b"ok"


def test_chunked_total_over_limit_refused_at_the_chunk_size() -> None:
    parser = RequestParser(max_body=10)
    parser.feed(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n"
    )
    assert parser.next_request() is None
    parser.feed(b"3\r\n")  # 11 bytes in all: refused before the data arrives
    with pytest.raises(HttpError) as caught:
        parser.next_request()
    assert caught.value.status == 413


@pytest.mark.parametrize(
    "body",
    [
        b"xyz\r\nabc\r\n0\r\n\r\n",
        b"\r\n",
        b"-1\r\n",
        b"3\r\nabcX\r\n0\r\n\r\n",
        b"11111111111111111\r\n",
        b"5" + b";x" * 3000 + b"\r\n",
    ],
)
def test_bad_chunks(body: bytes) -> None:
    head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert refused(head + body) == 400


def test_trailers_over_limit_get_431() -> None:
    head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    assert refused(head + b"T: " + b"a" * 300 + b"\r\n\r\n", max_header_bytes=200) == 431


@pytest.mark.parametrize(
    ("coding", "status"),
    [(b"gzip", 501), (b"gzip, chunked", 501), (b"chunked, chunked", 400), (b",", 400)],
)
def test_transfer_codings(coding: bytes, status: int) -> None:
    data = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + coding + b"\r\n\r\n"
    assert refused(data) == status


def test_both_framings_refused() -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert refused(data) == 400


def test_transfer_encoding_in_http10_refused() -> None:
    assert refused(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 400


# -- pipelining -----------------------------------------------------------------------


PIPELINE = (
    POST
    + b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"
    + CHUNKED
    + b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
    + b"GET /last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
)


def test_pipelined_requests_in_one_chunk_all_come_out() -> None:
    requests = parse_all(PIPELINE)
    assert [r.path for r in requests] == [b"/callbacks/dlr", b"/healthz", b"/c", b"/x", b"/last"]
    assert [r.keep_alive for r in requests] == [True, True, True, True, False]


def test_split_at_every_byte_boundary() -> None:
    expected = parse_all(PIPELINE)
    for cut in range(len(PIPELINE) + 1):
        parser = RequestParser()
        got = []
        for piece in (PIPELINE[:cut], PIPELINE[cut:]):
            parser.feed(piece)
            while (request := parser.next_request()) is not None:
                got.append(request)
        assert got == expected, cut


def test_byte_at_a_time() -> None:
    parser = RequestParser()
    got = []
    for i in range(len(PIPELINE)):
        parser.feed(PIPELINE[i : i + 1])
        while (request := parser.next_request()) is not None:
            got.append(request)
    assert got == parse_all(PIPELINE)


# -- persistence ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"1.1", None, True),
        (b"1.1", b"close", False),
        (b"1.1", b"Keep-Alive, Close", False),
        (b"1.1", b"closed", True),
        (b"1.1", b"keep-alive", True),
        (b"1.0", None, False),
        (b"1.0", b"keep-alive", True),
        (b"1.0", b"Keep-Alive", True),
        (b"1.0", b"close", False),
    ],
)
def test_keep_alive(version: bytes, connection: bytes | None, keep_alive: bool) -> None:
    head = b"GET / HTTP/" + version + b"\r\nHost: h\r\n"
    if connection is not None:
        head += b"Connection: " + connection + b"\r\n"
    assert parse_one(head + b"\r\n").keep_alive is keep_alive


# -- Expect: 100-continue --------------------------------------------------------------

EXPECTING = b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\n"


def test_expects_continue_until_the_body_starts() -> None:
    parser = RequestParser()
    parser.feed(EXPECTING)
    assert not parser.expects_continue  # nothing parsed yet
    assert parser.next_request() is None
    assert parser.expects_continue
    parser.continue_sent()
    assert not parser.expects_continue
    parser.feed(b"body")
    request = parser.next_request()
    assert request is not None and request.body == b"body"


def test_body_arriving_without_waiting_clears_the_expectation() -> None:
    parser = RequestParser()
    parser.feed(EXPECTING)
    assert parser.next_request() is None and parser.expects_continue
    parser.feed(b"bo")
    assert not parser.expects_continue
    assert parser.next_request() is None
    parser.feed(b"dy")
    assert parser.next_request() is not None


def test_no_continue_when_body_came_with_the_head_or_http10_or_no_body() -> None:
    parser = RequestParser()
    parser.feed(EXPECTING + b"bo")
    assert parser.next_request() is None and not parser.expects_continue
    parser = RequestParser()
    parser.feed(EXPECTING.replace(b"HTTP/1.1", b"HTTP/1.0"))
    assert parser.next_request() is None and not parser.expects_continue
    parser = RequestParser()
    parser.feed(EXPECTING.replace(b"Content-Length: 4", b"Content-Length: 0"))
    assert parser.next_request() is not None and not parser.expects_continue


def test_chunked_expecting_continue() -> None:
    parser = RequestParser()
    parser.feed(
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert parser.next_request() is None and parser.expects_continue


def test_oversized_expecting_request_refused_before_continue() -> None:
    parser = RequestParser(max_body=3)
    parser.feed(EXPECTING)
    with pytest.raises(HttpError) as caught:
        parser.next_request()
    assert caught.value.status == 413 and not parser.expects_continue


# -- errors -----------------------------------------------------------------------------


def test_error_is_sticky() -> None:
    parser = RequestParser()
    parser.feed(b"BAD\r\n\r\n")
    for _ in range(2):
        with pytest.raises(HttpError) as caught:
            parser.next_request()
        assert caught.value.status == 400
    parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(HttpError):
        parser.next_request()


def test_every_error_status() -> None:
    cases = {
        400: b"nonsense\r\n\r\n",
        413: b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 70000\r\n\r\n",
        414: b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
        431: b"GET / HTTP/1.1\r\nX: " + b"a" * 17000 + b"\r\n\r\n",
        501: b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: br\r\n\r\n",
        505: b"GET / HTTP/2.0\r\n\r\n",
    }
    for status, data in cases.items():
        assert refused(data) == status, status


# -- query strings --------------------------------------------------------------------


def test_query_args() -> None:
    request = parse_one(
        b"GET /?id=abc%240&resultCode=1001&empty=&flag&id=x+y&%C3%A6=%FF HTTP/1.1\r\n"
        b"Host: h\r\n\r\n"
    )
    assert request.query_args() == {
        b"id": [b"abc$0", b"x y"],
        b"resultCode": [b"1001"],
        b"empty": [b""],
        b"flag": [b""],
        b"\xc3\xa6": [b"\xff"],
    }
    assert parse_one(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").query_args() == {}


# -- responses -------------------------------------------------------------------------


def test_format_response() -> None:
    assert format_response(200, b"OK") == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nOK"
    )
    closing = format_response(
        401,
        b"no\n",
        content_type=b"text/html",
        headers=[(b"WWW-Authenticate", b'Basic realm="x"')],
        keep_alive=False,
        now=784111777.5,
    )
    assert closing == (
        b"HTTP/1.1 401 Unauthorized\r\n"
        b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        b"Content-Type: text/html\r\nContent-Length: 3\r\n"
        b'WWW-Authenticate: Basic realm="x"\r\n'
        b"Connection: close\r\n\r\nno\n"
    )


def test_format_response_head_and_no_content() -> None:
    assert format_response(200, b"hello", head=True).endswith(b"Content-Length: 5\r\n\r\n")
    no_content = format_response(204, b"ignored")
    assert no_content == b"HTTP/1.1 204 No Content\r\n\r\n"


def test_error_response_closes() -> None:
    data = error_response(HttpError(413, "request body too large"))
    assert data.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert b"Connection: close\r\n" in data and data.endswith(b"request body too large\n")


def test_http_date_is_cached_per_second() -> None:
    assert http_date(0) == b"Thu, 01 Jan 1970 00:00:00 GMT"
    assert http_date(0.9) is http_date(0.1)
    assert http_date(1_700_000_000) == b"Tue, 14 Nov 2023 22:13:20 GMT"


def test_continue_line() -> None:
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"


# -- properties --------------------------------------------------------------------------


def drain(parser: RequestParser) -> list[HttpRequest]:
    out = []
    while (request := parser.next_request()) is not None:
        out.append(request)
    return out


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=64))
def test_random_bytes_raise_only_http_error(data: bytes, step: int) -> None:
    parser = RequestParser(max_header_bytes=256, max_body=256)
    try:
        for i in range(0, len(data), step):
            parser.feed(data[i : i + step])
            drain(parser)
    except HttpError as e:
        assert e.status in (400, 413, 414, 431, 501, 505)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from([POST, CHUNKED, EXPECTING + b"body", PIPELINE]),
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=2000),
            st.sampled_from(["flip", "insert", "delete"]),
            st.integers(min_value=0, max_value=255),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_requests_raise_only_http_error(
    original: bytes, mutations: list[tuple[int, str, int]]
) -> None:
    data = bytearray(original)
    for position, kind, value in mutations:
        at = position % (len(data) + 1)
        if kind == "insert":
            data[at:at] = bytes([value])
        elif data and at < len(data):
            if kind == "flip":
                data[at] = value
            else:
                del data[at]
    parser = RequestParser(max_header_bytes=512, max_body=512)
    parser.feed(bytes(data))
    with contextlib.suppress(HttpError):
        drain(parser)


TOKEN = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RESERVED = {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect"}


@dataclass
class Built:
    wire: bytes
    method: bytes
    path: bytes
    query: bytes
    version: bytes
    headers: dict[bytes, bytes]
    body: bytes
    keep_alive: bool


@st.composite
def valid_requests(draw: st.DrawFn) -> Built:
    method = draw(
        st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE"])
        | st.text(TOKEN, min_size=1, max_size=8).map(str.encode)
    )
    path_chars = "abcXYZ019-._~%/:@!$&'()*+,;="
    path = b"/" + draw(st.text(path_chars, max_size=30)).encode()
    query = draw(st.text(path_chars + "?=&", max_size=20)).encode()
    http10 = draw(st.booleans())
    fields = draw(
        st.lists(
            st.tuples(
                st.text(TOKEN, min_size=1, max_size=12).map(str.encode),
                st.binary(max_size=20).map(lambda b: bytes(c for c in b if c > 0x20 and c != 0x7F)),
            ),
            max_size=6,
        )
    )
    fields = [(name, value) for name, value in fields if name.lower() not in RESERVED]
    body = draw(st.binary(max_size=300))
    chunked = not http10 and draw(st.booleans())
    close = draw(st.booleans())
    target = path + (b"?" + query if query else b"")
    lines = [method + b" " + target + (b" HTTP/1.0" if http10 else b" HTTP/1.1")]
    expected: dict[bytes, bytes] = {}
    if not http10:
        lines.append(b"Host: gw.example")
        expected[b"host"] = b"gw.example"
    for name, value in fields:
        lines.append(name + b": " + value)
        key = name.lower()
        expected[key] = expected[key] + b", " + value if key in expected else value
    if http10 and not close:
        lines.append(b"Connection: keep-alive")
        expected[b"connection"] = b"keep-alive"
    elif close:
        lines.append(b"Connection: close")
        expected[b"connection"] = b"close"
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
        expected[b"transfer-encoding"] = b"chunked"
        sizes = draw(st.lists(st.integers(min_value=1, max_value=64), max_size=10))
        encoded = b""
        rest = body
        for size in sizes:
            if not rest:
                break
            piece, rest = rest[:size], rest[size:]
            encoded += b"%x\r\n%s\r\n" % (len(piece), piece)
        if rest:
            encoded += b"%X;ext=1\r\n%s\r\n" % (len(rest), rest)
        encoded += b"0\r\n\r\n"
    elif body or draw(st.booleans()):
        lines.append(b"Content-Length: %d" % len(body))
        expected[b"content-length"] = b"%d" % len(body)
        encoded = body
    else:
        encoded = b""
    wire = b"\r\n".join(lines) + b"\r\n\r\n" + encoded
    return Built(
        wire,
        method,
        path,
        query,
        b"HTTP/1.0" if http10 else b"HTTP/1.1",
        expected,
        body,
        not close,
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(valid_requests(), min_size=1, max_size=4), st.data())
def test_valid_requests_parse_back_in_any_chunking(built: list[Built], data: st.DataObject) -> None:
    wire = b"".join(b.wire for b in built)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(wire)), max_size=8)))
    parser = RequestParser()
    got: list[HttpRequest] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        parser.feed(wire[start:cut])
        start = cut
        got.extend(drain(parser))
    # Everything after a "close" request is still parsed here; not acting on it is
    # the server's job.
    assert len(got) == len(built)
    for request, expected in zip(got, built, strict=True):
        assert request.method == expected.method
        assert request.path == expected.path
        assert request.query == expected.query
        assert request.version == expected.version
        assert request.headers == expected.headers
        assert request.body == expected.body
        assert request.keep_alive is expected.keep_alive


@settings(max_examples=300, deadline=None)
@given(valid_requests(), st.data())
def test_a_head_with_a_bare_lf_is_refused_as_soon_as_the_lf_arrives(
    built: Built, data: st.DataObject
) -> None:
    """Whatever the head and wherever the CR goes missing, 400 comes with the LF,
    not when (or if) a CRLF CRLF arrives."""
    head_end = built.wire.index(b"\r\n\r\n") + 2
    line_ends = [i for i in range(head_end) if built.wire[i : i + 2] == b"\r\n"]
    dropped = data.draw(st.sampled_from(line_ends))
    wire = built.wire[:dropped] + built.wire[dropped + 1 :]  # that CR is gone
    parser = RequestParser()
    parser.feed(wire[: dropped + 1])  # up to and with the bare LF, nothing after it
    with pytest.raises(HttpError) as refused:
        drain(parser)
    assert refused.value.status == 400
