"""The HTTP/1.1 server (gateway.http.server) over real TCP on 127.0.0.1:
pipelining, ordering, 100-continue, persistence, timeouts and refusals."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from gateway.http.parser import HttpRequest, Response
from gateway.http.server import HttpServerFactory
from gateway.http.site import Router


class RawClient(Protocol):
    """Writes raw bytes, keeps everything the server sends back."""

    def __init__(self) -> None:
        self.received = b""
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)

    @property
    def closed(self) -> bool:
        return self.lost.called

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


def split_responses(data: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """(status, headers, body) for each complete response with Content-Length."""
    responses = []
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        lines = data[:end].split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        if len(data) < end + 4 + length:
            break
        responses.append((status, headers, data[end + 4 : end + 4 + length]))
        data = data[end + 4 + length :]
    return responses


def get(path: bytes, *extra: bytes) -> bytes:
    return (
        b"GET "
        + path
        + b" HTTP/1.1\r\nHost: t\r\n"
        + b"".join(e + b"\r\n" for e in extra)
        + b"\r\n"
    )


def post(path: bytes, body: bytes, *extra: bytes) -> bytes:
    head = b"POST " + path + b" HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n" % len(body)
    return head + b"".join(e + b"\r\n" for e in extra) + b"\r\n" + body


class ServerTests(TestCase):
    timeout = 10

    def setUp(self) -> None:
        self.calls: list[HttpRequest] = []
        self.waiting: dict[bytes, Deferred[Response]] = {}
        self.errors: list[int] = []

    def router(self, request: HttpRequest) -> Response | Deferred[Response]:
        self.calls.append(request)
        if request.path.startswith(b"/later/"):
            d: Deferred[Response] = Deferred()
            self.waiting[request.path] = d
            return d
        if request.path == b"/boom":
            raise RuntimeError("handler bug")
        if request.path == b"/fail":
            failed: Deferred[Response] = Deferred()
            failed.errback(RuntimeError("async handler bug"))
            return failed
        return Response(200, b"%s %s %s" % (request.method, request.path, request.body))

    @inlineCallbacks
    def serve(self, **options: Any) -> Any:
        settings: dict[str, Any] = {"max_body": 1000, "on_error": self.errors.append}
        settings.update(options)
        self.factory = HttpServerFactory(reactor, self.router, **settings)
        port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(self.factory.close_connections)
        self.port = port.getHost().port
        return (yield self.connect())

    @inlineCallbacks
    def connect(self) -> Any:
        client = RawClient()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        yield connectProtocol(endpoint, client)
        self.addCleanup(lambda: None if client.closed else client.transport.abortConnection())
        return client

    @inlineCallbacks
    def until(self, predicate: Any, seconds: float = 3.0) -> Any:
        for _ in range(int(seconds / 0.005)):
            if predicate():
                return
            yield deferLater(reactor, 0.005, lambda: None)
        self.fail("condition not reached in time")

    @inlineCallbacks
    def responses(self, client: RawClient, n: int) -> Any:
        yield self.until(lambda: len(split_responses(client.received)) >= n)
        return split_responses(client.received)

    @inlineCallbacks
    def test_pipelined_answers_in_request_order_whatever_order_they_finish(self) -> Any:
        client = yield self.serve()
        client.send(get(b"/later/1") + post(b"/later/2", b"two") + get(b"/now") + get(b"/later/3"))
        # Every pipelined request reaches the router at once.
        yield self.until(lambda: len(self.calls) == 4)
        self.waiting[b"/later/3"].callback(Response(200, b"third"))
        self.waiting[b"/later/2"].callback(Response(201, b"second"))
        yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(client.received, b"")  # the first one still holds them back
        self.waiting[b"/later/1"].callback(Response(202, b"first", content_type=b"text/x"))
        answers = yield self.responses(client, 4)
        self.assertEqual(
            [(status, body) for status, _, body in answers],
            [(202, b"first"), (201, b"second"), (200, b"GET /now "), (200, b"third")],
        )
        self.assertEqual(answers[0][1][b"content-type"], b"text/x")
        self.assertIn(b"date", answers[0][1])
        self.assertFalse(client.closed)

    @inlineCallbacks
    def test_keep_alive_reuses_the_connection(self) -> Any:
        client = yield self.serve()
        for i in range(3):
            client.send(post(b"/echo", b"n%d" % i))
            answers = yield self.responses(client, i + 1)
            self.assertEqual(answers[i][2], b"POST /echo n%d" % i)
        self.assertEqual(len(self.factory.connections), 1)
        self.assertFalse(client.closed)

    @inlineCallbacks
    def test_connection_close_answers_then_closes_and_reads_no_further(self) -> Any:
        client = yield self.serve()
        client.send(get(b"/a") + get(b"/b", b"Connection: close") + get(b"/c"))
        yield client.lost
        answers = split_responses(client.received)
        self.assertEqual([body for _, _, body in answers], [b"GET /a ", b"GET /b "])
        self.assertEqual(answers[1][1][b"connection"], b"close")
        self.assertEqual([r.path for r in self.calls], [b"/a", b"/b"])

    @inlineCallbacks
    def test_http10_closes_unless_keep_alive(self) -> Any:
        client = yield self.serve()
        client.send(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        yield self.responses(client, 1)
        self.assertFalse(client.closed)
        client.send(b"GET /y HTTP/1.0\r\n\r\n")
        yield client.lost
        self.assertEqual(len(split_responses(client.received)), 2)

    @inlineCallbacks
    def test_100_continue_before_the_body(self) -> Any:
        client = yield self.serve()
        client.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
        )
        yield self.until(lambda: client.received == b"HTTP/1.1 100 Continue\r\n\r\n")
        self.assertEqual(self.calls, [])
        client.send(b"body")
        yield self.until(lambda: b"POST /echo body" in client.received)
        [(status, _, body)] = split_responses(
            client.received[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
        )
        self.assertEqual((status, body), (200, b"POST /echo body"))

    @inlineCallbacks
    def test_100_continue_waits_for_earlier_answers(self) -> Any:
        client = yield self.serve()
        client.send(
            get(b"/later/1")
            + b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        )
        yield self.until(lambda: len(self.calls) == 1)
        yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(client.received, b"")
        self.waiting[b"/later/1"].callback(Response(200, b"one"))
        yield self.until(lambda: client.received.endswith(b"HTTP/1.1 100 Continue\r\n\r\n"))
        client.send(b"ok")
        yield self.until(lambda: client.received.endswith(b"POST /echo ok"))

    @inlineCallbacks
    def test_idle_connection_closed(self) -> Any:
        client = yield self.serve(idle_timeout=0.2)
        client.send(get(b"/a"))
        yield self.responses(client, 1)
        yield client.lost
        self.assertEqual(len(split_responses(client.received)), 1)

    @inlineCallbacks
    def test_incomplete_request_times_out_with_408(self) -> Any:
        client = yield self.serve(idle_timeout=30.0, request_timeout=0.2)
        client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        yield client.lost
        [(status, headers, _)] = split_responses(client.received)
        self.assertEqual((status, headers[b"connection"]), (408, b"close"))

    @inlineCallbacks
    def test_router_that_never_answers_times_out(self) -> Any:
        client = yield self.serve(idle_timeout=30.0, request_timeout=0.2)
        client.send(get(b"/later/never"))
        yield client.lost
        self.assertEqual(client.received, b"")
        # Answering after the connection is gone is harmless.
        self.waiting[b"/later/never"].callback(Response(200, b"late"))

    @inlineCallbacks
    def test_malformed_request_gets_400_and_close(self) -> Any:
        client = yield self.serve()
        client.send(get(b"/a") + b"NOT HTTP AT ALL\r\n\r\n" + get(b"/b"))
        yield client.lost
        answers = split_responses(client.received)
        self.assertEqual([status for status, _, _ in answers], [200, 400])
        self.assertEqual(answers[1][1][b"connection"], b"close")
        self.assertEqual([r.path for r in self.calls], [b"/a"])
        self.assertEqual(self.errors, [400])

    @inlineCallbacks
    def test_error_waits_for_earlier_answers(self) -> Any:
        client = yield self.serve()
        client.send(get(b"/later/1") + b"BAD\r\n\r\n")
        yield self.until(lambda: len(self.calls) == 1)
        self.waiting[b"/later/1"].callback(Response(200, b"one"))
        yield client.lost
        answers = split_responses(client.received)
        self.assertEqual([status for status, _, _ in answers], [200, 400])

    @inlineCallbacks
    def test_oversized_body_gets_413_and_close(self) -> Any:
        client = yield self.serve(max_body=10)
        client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n")
        yield client.lost
        [(status, headers, _)] = split_responses(client.received)
        self.assertEqual((status, headers[b"connection"]), (413, b"close"))
        self.assertEqual((self.calls, self.errors), ([], [413]))

    @inlineCallbacks
    def test_handler_errors_are_500_and_the_connection_lives_on(self) -> Any:
        client = yield self.serve()
        client.send(get(b"/boom") + get(b"/fail") + get(b"/ok"))
        answers = yield self.responses(client, 3)
        self.assertEqual([status for status, _, _ in answers], [500, 500, 200])
        self.assertFalse(client.closed)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    @inlineCallbacks
    def test_head_gets_no_body(self) -> Any:
        client = yield self.serve()
        client.send(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n" + get(b"/y"))
        yield self.until(lambda: client.received.endswith(b"GET /y "))
        head, _, rest = client.received.partition(b"\r\n\r\n")
        self.assertIn(b"Content-Length: 8", head)
        self.assertTrue(rest.startswith(b"HTTP/1.1 200 OK"))

    @inlineCallbacks
    def test_reading_pauses_while_too_many_answers_are_owed(self) -> Any:
        client = yield self.serve(max_pending=4)
        client.send(b"".join(get(b"/later/%d" % i) for i in range(20)))
        yield self.until(lambda: len(self.calls) == 5)
        yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(len(self.calls), 5)  # paused after the fifth
        for i in range(20):
            yield self.until(lambda i=i: len(self.calls) > i)
            self.waiting[b"/later/%d" % i].callback(Response(200, b"%d" % i))
        answers = yield self.responses(client, 20)
        self.assertEqual([body for _, _, body in answers], [b"%d" % i for i in range(20)])

    @inlineCallbacks
    def test_chunked_request_body(self) -> Any:
        client = yield self.serve()
        client.send(
            b"PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        yield deferLater(reactor, 0.02, lambda: None)
        client.send(b"2;x=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n")
        [(status, _, body)] = yield self.responses(client, 1)
        self.assertEqual((status, body), (200, b"PUT /echo abcde"))


class RouterTests(TestCase):
    """gateway.http.site.Router behind the server: 404, 405 with Allow, subtree paths."""

    timeout = 10

    @inlineCallbacks
    def test_routes(self) -> Any:
        router = Router()
        router.add(b"/callbacks/dlr", frozenset((b"POST", b"GET")), self.echo, subtree=True)
        router.add(b"/healthz", frozenset((b"GET", b"HEAD")), self.echo)
        factory = HttpServerFactory(reactor, router, max_body=1000)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(factory.close_connections)
        client = RawClient()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        yield connectProtocol(endpoint, client)
        client.send(
            get(b"/nothing")
            + post(b"/healthz", b"x")
            + post(b"/callbacks/dlr", b"a")
            + get(b"/callbacks/dlr/sub?x=1")
            + get(b"/callbacks/dlrx")
            + get(b"/healthz")
        )
        for _ in range(600):
            if len(split_responses(client.received)) >= 6:
                break
            yield deferLater(reactor, 0.005, lambda: None)
        answers = split_responses(client.received)
        self.assertEqual(
            [(status, body) for status, _, body in answers],
            [
                (404, b"not found\n"),
                (405, b"method not allowed\n"),
                (200, b"/callbacks/dlr"),
                (200, b"/callbacks/dlr/sub"),
                (404, b"not found\n"),
                (200, b"/healthz"),
            ],
        )
        self.assertEqual(answers[1][1][b"allow"], b"GET, HEAD")

    def echo(self, request: HttpRequest) -> Response:
        return Response(200, request.path)
