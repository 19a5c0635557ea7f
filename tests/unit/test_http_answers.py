"""The sans-IO HTTP/1.1 answer parser and request formatter (gateway.http.answers)."""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.http.answers import Answer, AnswerError, AnswerParser, format_request
from gateway.http.parser import RequestParser


def parse_all(
    data: bytes | list[bytes],
    methods: tuple[bytes, ...] = (b"POST",),
    *,
    eof: bool = False,
    **limits: int,
) -> list[Answer]:
    """Every answer in `data` (one chunk or several), for requests with `methods`."""
    parser = AnswerParser(**limits)
    for method in methods:
        parser.sent(method)
    answers = []
    for chunk in [data] if isinstance(data, bytes) else data:
        parser.feed(chunk)
        while (answer := parser.next_answer()) is not None:
            answers.append(answer)
    if eof:
        parser.feed_eof()
        while (answer := parser.next_answer()) is not None:
            answers.append(answer)
    return answers


def parse_one(data: bytes, method: bytes = b"POST", **options: int) -> Answer:
    [answer] = parse_all(data, (method,), **options)  # type: ignore[arg-type]
    return answer


def refused(data: bytes, method: bytes = b"POST", *, eof: bool = False, **limits: int) -> str:
    with pytest.raises(AnswerError) as caught:
        parse_all(data, (method,), eof=eof, **limits)
    return str(caught.value)


OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"id": "abc"}'


# -- framing -----------------------------------------------------------------------


def test_content_length() -> None:
    headers = {b"content-type": b"application/json", b"content-length": b"13"}
    assert parse_one(OK) == Answer(200, headers, b'{"id": "abc"}', True)


def test_chunked_with_extensions_and_trailers() -> None:
    data = (
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    answer = parse_one(data)
    assert (answer.status, answer.body, answer.keep_alive) == (201, b"hello world", True)


def test_body_until_close() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"
    parser = AnswerParser()
    parser.sent(b"POST")
    parser.feed(data)
    assert parser.next_answer() is None  # the end is not known yet
    parser.feed(b", and more")
    parser.feed_eof()
    answer = parser.next_answer()
    assert answer is not None
    assert (answer.body, answer.keep_alive) == (b"all of it, and more", False)


def test_http10_without_length_ends_at_close() -> None:
    [answer] = parse_all(b"HTTP/1.0 200 OK\r\n\r\nold", eof=True)
    assert (answer.body, answer.keep_alive) == (b"old", False)


def test_http10_keep_alive_with_length() -> None:
    answer = parse_one(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok")
    assert answer.keep_alive


def test_http10_without_keep_alive_closes() -> None:
    assert not parse_one(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok").keep_alive


def test_connection_close() -> None:
    answer = parse_one(
        b"HTTP/1.1 503 Busy\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n"
    )
    assert (answer.status, answer.keep_alive) == (503, False)


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int) -> None:
    # A 304 may announce the Content-Length of what it stands for; nothing follows.
    data = b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status + OK
    answers = parse_all(data, (b"GET", b"GET"))
    assert [(a.status, a.body, a.keep_alive) for a in answers] == [
        (status, b"", True),
        (200, b'{"id": "abc"}', True),
    ]


def test_head_answer_has_no_body() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n" + OK
    answers = parse_all(data, (b"HEAD", b"GET"))
    assert [a.body for a in answers] == [b"", b'{"id": "abc"}']


def test_interim_answers_are_skipped() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK
    assert parse_one(data).status == 200


def test_switching_protocols_is_refused() -> None:
    assert "101" in refused(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n")


def test_answers_in_sequence_on_one_connection() -> None:
    answers = parse_all(OK + b"\r\n" + OK, (b"POST", b"POST"))
    assert len(answers) == 2


def test_transfer_encoding_overrides_content_length_and_ends_the_connection() -> None:
    data = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    )
    answer = parse_one(data)
    assert (answer.body, answer.keep_alive) == (b"ok", False)


def test_nothing_is_read_after_a_closing_answer() -> None:
    parser = AnswerParser()
    parser.sent(b"GET")
    parser.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\ngarbage")
    answer = parser.next_answer()
    assert answer is not None and not answer.keep_alive
    parser.feed(b"more garbage")
    assert parser.next_answer() is None
    assert parser.buffered == 0
    parser.sent(b"GET")
    with pytest.raises(AnswerError):
        parser.next_answer()


# -- header fields -------------------------------------------------------------------


def test_header_fields() -> None:
    data = (
        b"HTTP/1.1 200\r\n"  # no reason phrase, not even its SP
        b"Set-Cookie: a=1\r\nSET-COOKIE: b=2\r\n"
        b"X-Folded: one\r\n  two\r\n"
        b"Location:   /gates/id/42 \r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    answer = parse_one(data)
    assert answer.headers == {
        b"set-cookie": b"a=1, b=2",
        b"x-folded": b"one two",
        b"location": b"/gates/id/42",
        b"content-length": b"0",
    }


def test_bare_lf_line_ends_are_taken() -> None:
    answer = parse_one(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
    assert (answer.status, answer.body) == (200, b"ok")


def test_identical_content_lengths_are_one() -> None:
    assert parse_one(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok").body == b"ok"


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded-first: x\r\n\r\n",
        b"HTTP/1.1 200 OK\rX: y\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: \x00\r\n\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"HTTP/1.1 600 Nope\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n",
    ],
)
def test_malformed_answers_are_refused(data: bytes) -> None:
    refused(data)


def test_a_failed_parser_stays_failed() -> None:
    parser = AnswerParser()
    parser.sent(b"GET")
    parser.feed(b"HTTP/9 what\r\n\r\n")
    with pytest.raises(AnswerError) as first:
        parser.next_answer()
    parser.feed(OK)
    with pytest.raises(AnswerError) as again:
        parser.next_answer()
    assert again.value is first.value


def test_an_answer_to_no_request_is_refused() -> None:
    assert "no request" in refused(OK + OK)
    # Blank lines between answers are not an answer.
    assert len(parse_all(OK + b"\r\n\r\n")) == 1


# -- the end of the connection ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "before an answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Len", "middle of an answer head"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "5 of the body's 10 bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "middle of a chunk"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5", "chunk-size line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1", "trailer"),
        (b"HTTP/1.1 100 Continue\r\n\r\n", "before an answer"),
    ],
)
def test_connection_closed_before_the_answer_ends(data: bytes, says: str) -> None:
    assert says in refused(data, eof=True)


def test_a_clean_close_between_answers_is_no_error() -> None:
    parser = AnswerParser()
    parser.feed_eof()
    assert parser.next_answer() is None


# -- limits ------------------------------------------------------------------------------


def test_head_over_the_limit() -> None:
    head = b"HTTP/1.1 200 OK\r\nX: " + b"a" * 2000
    assert "head over 1024 bytes" in refused(head, max_header_bytes=1024)
    assert "head over 1024 bytes" in refused(head + b"\r\n\r\n", max_header_bytes=1024)


def test_content_length_over_the_limit_is_refused_before_the_body() -> None:
    message = refused(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n", max_body=100)
    assert "101 bytes, over 100" in message
    assert parse_one(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100, max_body=100)


def test_chunked_body_over_the_limit() -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + b"x" * 64 + b"\r\n"
    assert "over 100" in refused(data + data[-70:], max_body=100)


def test_body_until_close_over_the_limit() -> None:
    assert "over 100" in refused(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 101, max_body=100)


def test_trailers_over_the_limit() -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + b"a" * 300
    assert "trailer section over 256" in refused(data, max_header_bytes=256)


def test_chunk_size_line_too_long() -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 5000
    assert "chunk-size line too long" in refused(data)


# -- properties --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scripted:
    """An answer and how it is framed on the wire."""

    status: int
    fields: tuple[tuple[bytes, bytes], ...]
    body: bytes
    framing: str  # "length" or "chunked"
    chunks: tuple[int, ...]  # chunk sizes to cut the body into, for "chunked"

    def encode(self) -> bytes:
        head = b"HTTP/1.1 %d Reason\r\n" % self.status
        head += b"".join(b"%s: %s\r\n" % field for field in self.fields)
        if self.framing == "length":
            return head + b"Content-Length: %d\r\n\r\n" % len(self.body) + self.body
        out, rest = [head + b"Transfer-Encoding: chunked\r\n\r\n"], self.body
        for size in self.chunks:
            if not rest:
                break
            piece, rest = rest[:size], rest[size:]
            out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        if rest:
            out.append(b"%x\r\n%s\r\n" % (len(rest), rest))
        out.append(b"0\r\n\r\n")
        return b"".join(out)


_names = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).map(str.encode)
_values = st.binary(max_size=30).map(lambda v: bytes(b for b in v if 0x21 <= b < 0x7F))
scripted = st.builds(
    Scripted,
    status=st.sampled_from([200, 201, 202, 400, 401, 404, 429, 500, 503]),
    fields=st.lists(
        st.tuples(
            _names.filter(
                lambda n: n not in (b"content-length", b"transfer-encoding", b"connection")
            ),
            _values,
        ),
        max_size=5,
    ).map(tuple),
    body=st.binary(max_size=300),
    framing=st.sampled_from(["length", "chunked"]),
    chunks=st.lists(st.integers(1, 80), max_size=8).map(tuple),
)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(st.lists(scripted, min_size=1, max_size=4), st.lists(st.integers(0, 10_000), max_size=30))
@settings(max_examples=300)
def test_any_split_gives_the_same_answers(answers: list[Scripted], points: list[int]) -> None:
    stream = b"".join(a.encode() for a in answers)
    methods = (b"POST",) * len(answers)
    whole = parse_all(stream, methods)
    assert parse_all(cut(stream, points), methods) == whole
    assert parse_all([bytes([b]) for b in stream], methods) == whole
    assert [(a.status, a.body, a.keep_alive) for a in whole] == [
        (a.status, a.body, True) for a in answers
    ]


@given(scripted)
def test_header_fields_round_trip(answer: Scripted) -> None:
    [parsed] = parse_all(answer.encode())
    expected: dict[bytes, bytes] = {}
    for name, value in answer.fields:
        expected[name] = expected[name] + b", " + value if name in expected else value
    for name, value in expected.items():
        assert parsed.headers[name] == value


@given(st.binary(max_size=2000), st.lists(st.integers(1, 500), max_size=10))
def test_chunked_and_length_bodies_round_trip(body: bytes, chunks: list[int]) -> None:
    for framing in ("length", "chunked"):
        encoded = Scripted(200, (), body, framing, tuple(chunks)).encode()
        assert parse_one(encoded).body == body


@given(st.binary(max_size=500), st.booleans(), st.sampled_from([b"GET", b"HEAD", b"POST"]))
@settings(max_examples=500)
def test_garbage_raises_only_answer_error(data: bytes, eof: bool, method: bytes) -> None:
    with contextlib.suppress(AnswerError):
        parse_all(cut(data, [len(data) // 3]), (method, method), eof=eof)


@given(scripted, st.integers(0, 10_000), st.binary(min_size=1, max_size=4), st.booleans())
@settings(max_examples=500)
def test_damaged_answers_raise_only_answer_error(
    answer: Scripted, where: int, junk: bytes, eof: bool
) -> None:
    data = answer.encode()
    where %= len(data)
    with contextlib.suppress(AnswerError):
        parse_all(data[:where] + junk + data[where + len(junk) :], eof=eof)


@given(st.binary(min_size=1, max_size=64), st.integers(1, 400))
@settings(max_examples=200)
def test_memory_stays_within_the_limits(piece: bytes, pieces: int) -> None:
    """However the server keeps sending, the parser holds no more than its
    limits plus the last piece fed before it refuses."""
    limits = {"max_header_bytes": 256, "max_body": 1024}
    for start in (
        b"",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    ):
        parser = AnswerParser(**limits)
        parser.sent(b"GET")
        parser.feed(start)
        try:
            for _ in range(pieces):
                parser.feed(piece)
                while parser.next_answer() is not None:
                    parser.sent(b"GET")
                assert parser.buffered <= 256 + 1024 + 4096 + len(start) + len(piece)
        except AnswerError:
            pass


# -- requests ----------------------------------------------------------------------------


def test_format_post() -> None:
    request = format_request(
        b"POST", b"/sms/send", b"api.example:8443", [(b"Content-Type", b"application/json")], b"{}"
    )
    assert request == (
        b"POST /sms/send HTTP/1.1\r\nHost: api.example:8443\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )


def test_format_get_and_empty_post() -> None:
    assert format_request(b"GET", b"/x?y=1", b"h") == b"GET /x?y=1 HTTP/1.1\r\nHost: h\r\n\r\n"
    assert format_request(b"POST", b"/x", b"h").endswith(b"Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize(
    ("method", "target", "host", "headers"),
    [
        (b"GET", b"/x", b"h", [(b"X-Token", b"a\r\nX-Evil: 1")]),
        (b"GET", b"/x", b"h", [(b"X-Token", b"a\nb")]),
        (b"GET", b"/x", b"h", [(b"Bad Name", b"v")]),
        (b"GET", b"/x", b"h", [(b"Content-Length", b"5")]),
        (b"GET", b"/x", b"h", [(b"transfer-encoding", b"chunked")]),
        (b"GET", b"/x", b"h", [(b"Host", b"other")]),
        (b"GET", b"/a b", b"h", []),
        (b"GET", b"/x", b"h\r\nX: y", []),
        (b"G T", b"/x", b"h", []),
    ],
)
def test_format_refuses_what_could_split_the_request(
    method: bytes, target: bytes, host: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    with pytest.raises(ValueError):
        format_request(method, target, host, headers)


@given(
    st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE"]),
    st.lists(st.tuples(_names.filter(lambda n: n != b"host"), _values), max_size=5),
    st.one_of(st.none(), st.binary(max_size=200)),
)
def test_our_server_reads_our_requests(
    method: bytes, fields: list[tuple[bytes, bytes]], body: bytes | None
) -> None:
    fields = [(n, v) for n, v in fields if n not in (b"content-length", b"transfer-encoding")]
    parser = RequestParser(max_body=1000)
    parser.feed(format_request(method, b"/p?q=1", b"gw.example", fields, body))
    request = parser.next_request()
    assert request is not None
    assert (request.method, request.target, request.body) == (method, b"/p?q=1", body or b"")
    assert request.headers[b"host"] == b"gw.example"
    for name, value in fields:
        assert value in request.headers[name]
