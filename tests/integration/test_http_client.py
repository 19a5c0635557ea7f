"""gateway.http.client over real TCP on 127.0.0.1, against a small scripted server."""

from __future__ import annotations

import datetime
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from gateway.connectors.common.client import _load_trust_root
from gateway.http.answers import Answer
from gateway.http.client import HttpClient, HttpTransportError
from gateway.http.parser import HttpRequest, RequestParser, format_response
from tests.tlspki import ServerTls

Respond = Callable[["ServerConnection", HttpRequest], None]


def echo(connection: ServerConnection, request: HttpRequest) -> None:
    """200 with "<method> <target> <body>" as its body, keep-alive."""
    body = b"%s %s %s" % (request.method, request.target, request.body)
    connection.transport.write(format_response(200, body))  # type: ignore[union-attr]


class ServerConnection(Protocol):
    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.parser = RequestParser(max_body=1 << 20)
        self.received = b""
        self.lost = False

    def connectionMade(self) -> None:
        self.server.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if not self.server.parse:
            return
        self.parser.feed(data)
        while (request := self.parser.next_request()) is not None:
            self.server.requests.append((self, request))
            self.server.respond(self, request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True

    def write(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]

    def close(self) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]


class ScriptedServer(Factory):
    """Every connection and request it saw; `respond` answers (or does not)."""

    noisy = False

    def __init__(self) -> None:
        self.connections: list[ServerConnection] = []
        self.requests: list[tuple[ServerConnection, HttpRequest]] = []
        self.respond: Respond = echo
        self.parse = True  # False: take bytes and say nothing

    def buildProtocol(self, addr: Any) -> ServerConnection:
        return ServerConnection(self)

    @property
    def open_connections(self) -> list[ServerConnection]:
        return [c for c in self.connections if not c.lost]


def self_signed(hostname: str) -> tuple[bytes, bytes]:
    """(certificate, private key), PEM, of a self-signed certificate for `hostname`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return certificate.public_bytes(pem), key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class ClientTestCase(TestCase):
    timeout = 20

    def setUp(self) -> None:
        self.server = ScriptedServer()
        self.port = reactor.listenTCP(0, self.server, interface="127.0.0.1")
        self.addCleanup(self.stop_server)

    @inlineCallbacks
    def stop_server(self) -> Any:
        yield self.port.stopListening()
        for connection in self.server.open_connections:
            connection.transport.abortConnection()  # type: ignore[union-attr]
        yield self.until(lambda: not self.server.open_connections)

    def client(self, url: str | None = None, **options: Any) -> HttpClient:
        url = url or f"http://127.0.0.1:{self.port.getHost().port}"
        client = HttpClient(reactor, url, **options)
        self.addCleanup(client.close)
        return client

    @inlineCallbacks
    def until(self, condition: Callable[[], object], seconds: float = 5.0) -> Any:
        for _ in range(int(seconds / 0.01)):
            if condition():
                return
            yield deferLater(reactor, 0.01, lambda: None)
        self.fail("condition not reached in time")

    @inlineCallbacks
    def transport_error(self, d: Deferred[Answer]) -> Any:
        try:
            yield d
        except HttpTransportError as e:
            return e.description
        self.fail("expected HttpTransportError")


class KeepAliveTests(ClientTestCase):
    @inlineCallbacks
    def test_sequential_requests_share_one_connection(self) -> Any:
        client = self.client()
        for i in range(5):
            answer = yield client.request(b"POST", b"/sms/send", [(b"X-N", b"%d" % i)], b"{}")
            self.assertEqual((answer.status, answer.body), (200, b"POST /sms/send {}"))
            self.assertTrue(answer.keep_alive)
        self.assertEqual(len(self.server.connections), 1)
        self.assertEqual(
            [r.headers[b"x-n"] for _, r in self.server.requests], [b"0", b"1", b"2", b"3", b"4"]
        )
        self.assertEqual((client.connections, client.idle), (1, 1))

    @inlineCallbacks
    def test_at_most_max_connections_and_the_rest_wait(self) -> Any:
        held: list[tuple[ServerConnection, HttpRequest]] = []
        self.server.respond = lambda c, r: held.append((c, r))
        client = self.client(max_connections=2)
        ds = [client.request(b"POST", b"/%d" % i, body=b"x") for i in range(5)]
        yield self.until(lambda: len(held) == 2)
        yield deferLater(reactor, 0.1, lambda: None)
        self.assertEqual((len(self.server.connections), len(held)), (2, 2))
        self.assertEqual(client.connections, 2)
        answered = 0
        while answered < 5:
            yield self.until(lambda: bool(held))
            connection, request = held.pop(0)
            echo(connection, request)
            answered += 1
        answers = yield Deferred.fromCoroutine(_gather(ds))
        # Waiting requests went out first come, first served.
        self.assertEqual([a.body for a in answers], [b"POST /%d x" % i for i in range(5)])
        self.assertEqual(len(self.server.connections), 2)

    @inlineCallbacks
    def test_most_recently_used_idle_connection_first(self) -> Any:
        held: list[tuple[ServerConnection, HttpRequest]] = []
        self.server.respond = lambda c, r: held.append((c, r))
        client = self.client(max_connections=2)
        first, second = client.request(b"GET", b"/a"), client.request(b"GET", b"/b")
        yield self.until(lambda: len(held) == 2)
        by_target = {r.target: c for c, r in held}
        echo(*held[0])
        echo(*held[1])
        yield first
        yield second
        self.server.respond = echo
        yield client.request(b"GET", b"/c")
        # /b's connection was released last.
        self.assertIs(self.server.requests[-1][0], by_target[b"/b"])

    @inlineCallbacks
    def test_server_closing_an_idle_connection(self) -> Any:
        client = self.client()
        yield client.request(b"GET", b"/one")
        self.server.connections[0].close()
        yield self.until(lambda: client.connections == 0)
        answer = yield client.request(b"GET", b"/two")
        self.assertEqual(answer.body, b"GET /two ")
        self.assertEqual(len(self.server.connections), 2)

    @inlineCallbacks
    def test_unasked_bytes_on_an_idle_connection_end_it(self) -> Any:
        client = self.client()
        yield client.request(b"GET", b"/one")
        # A server timing out an idle connection may say 408 before it closes.
        self.server.connections[0].write(format_response(408, b"", keep_alive=False))
        yield self.until(lambda: client.connections == 0)
        answer = yield client.request(b"GET", b"/two")
        self.assertEqual(answer.status, 200)

    @inlineCallbacks
    def test_idle_connections_close_after_idle_timeout(self) -> Any:
        client = self.client(idle_timeout=0.2)
        yield client.request(b"GET", b"/")
        yield deferLater(reactor, 0.1, lambda: None)
        yield client.request(b"GET", b"/")  # reuse postpones the close
        yield deferLater(reactor, 0.15, lambda: None)
        self.assertEqual(client.connections, 1)
        yield self.until(lambda: not self.server.open_connections)
        self.assertEqual((client.connections, len(self.server.connections)), (0, 1))

    @inlineCallbacks
    def test_server_keep_alive_timeout_is_respected(self) -> Any:
        def short(connection: ServerConnection, request: HttpRequest) -> None:
            answer = format_response(200, b"ok", headers=[(b"Keep-Alive", b"timeout=1, max=100")])
            connection.write(answer)

        self.server.respond = short
        client = self.client()
        yield client.request(b"GET", b"/")
        # A second's timeout leaves no safe time to reuse the connection.
        yield self.until(lambda: client.connections == 0)
        yield client.request(b"GET", b"/")
        self.assertEqual(len(self.server.connections), 2)

    @inlineCallbacks
    def test_connection_close_answer(self) -> Any:
        def closing(connection: ServerConnection, request: HttpRequest) -> None:
            connection.write(format_response(200, b"bye", keep_alive=False))

        self.server.respond = closing
        client = self.client()
        for _ in range(2):
            answer = yield client.request(b"GET", b"/")
            self.assertEqual((answer.body, answer.keep_alive), (b"bye", False))
        self.assertEqual(len(self.server.connections), 2)


class FramingTests(ClientTestCase):
    @inlineCallbacks
    def test_chunked_answers(self) -> Any:
        def chunked(connection: ServerConnection, request: HttpRequest) -> None:
            connection.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            reactor.callLater(0.01, connection.write, b"6\r\n world\r\n0\r\n\r\n")

        self.server.respond = chunked
        client = self.client()
        for _ in range(3):
            answer = yield client.request(b"GET", b"/")
            self.assertEqual(answer.body, b"hello world")
        self.assertEqual(len(self.server.connections), 1)

    @inlineCallbacks
    def test_body_delimited_by_close(self) -> Any:
        def until_close(connection: ServerConnection, request: HttpRequest) -> None:
            connection.write(b"HTTP/1.0 200 OK\r\n\r\nto the end")
            reactor.callLater(0.01, connection.close)

        self.server.respond = until_close
        answer = yield self.client().request(b"POST", b"/", body=b"x")
        self.assertEqual((answer.body, answer.keep_alive), (b"to the end", False))

    @inlineCallbacks
    def test_interim_answer_is_skipped(self) -> Any:
        def interim(connection: ServerConnection, request: HttpRequest) -> None:
            connection.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            echo(connection, request)

        self.server.respond = interim
        answer = yield self.client().request(b"POST", b"/", body=b"x")
        self.assertEqual(answer.status, 200)

    @inlineCallbacks
    def test_head_answer_without_body(self) -> Any:
        def head(connection: ServerConnection, request: HttpRequest) -> None:
            connection.write(format_response(200, b"twelve bytes", head=True))

        self.server.respond = head
        client = self.client()
        answer = yield client.request(b"HEAD", b"/")
        self.assertEqual((answer.body, answer.headers[b"content-length"]), (b"", b"12"))
        yield client.request(b"HEAD", b"/")
        self.assertEqual(len(self.server.connections), 1)


class FailureTests(ClientTestCase):
    @inlineCallbacks
    def test_server_closing_mid_answer(self) -> Any:
        def cut_short(connection: ServerConnection, request: HttpRequest) -> None:
            connection.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
            reactor.callLater(0.01, connection.close)

        self.server.respond = cut_short
        client = self.client()
        description = yield self.transport_error(client.request(b"POST", b"/", body=b"x"))
        self.assertIn("4 of the body's 100 bytes", description)
        self.server.respond = echo
        answer = yield client.request(b"POST", b"/", body=b"y")
        self.assertEqual(answer.status, 200)

    @inlineCallbacks
    def test_a_post_is_never_sent_twice(self) -> Any:
        # The server read the request and closed without a word: it may have acted
        # on it, so the client must not send it again.
        self.server.respond = lambda c, r: c.close()
        client = self.client()
        description = yield self.transport_error(client.request(b"POST", b"/", body=b"x"))
        self.assertIn("connection closed before an answer", description)
        yield deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(len(self.server.requests), 1)

    @inlineCallbacks
    def test_unreadable_answer(self) -> Any:
        self.server.respond = lambda c, r: c.write(b"SMTP 220 hello\r\n\r\n")
        client = self.client()
        description = yield self.transport_error(client.request(b"GET", b"/"))
        self.assertIn("unreadable answer: malformed status line", description)
        yield self.until(lambda: not self.server.open_connections)

    @inlineCallbacks
    def test_connection_refused(self) -> Any:
        port = self.port.getHost().port
        yield self.port.stopListening()
        client = self.client(f"http://127.0.0.1:{port}")
        description = yield self.transport_error(client.request(b"GET", b"/"))
        self.assertIn(f"cannot connect to 127.0.0.1:{port}", description)
        self.assertIn("ConnectionRefusedError", description)
        self.assertEqual(client.connections, 0)

    @inlineCallbacks
    def test_cancel_on_a_connection(self) -> Any:
        self.server.respond = lambda c, r: None  # never answers
        client = self.client()
        d = client.request(b"POST", b"/", body=b"x")
        yield self.until(lambda: bool(self.server.requests))
        d.cancel()
        with self.assertRaises(CancelledError):
            yield d
        # The connection is gone: an answer on it now would answer nobody.
        yield self.until(lambda: not self.server.open_connections)
        self.server.respond = echo
        answer = yield client.request(b"POST", b"/", body=b"again")
        self.assertEqual(answer.body, b"POST / again")

    @inlineCallbacks
    def test_cancel_while_waiting(self) -> Any:
        held: list[tuple[ServerConnection, HttpRequest]] = []
        self.server.respond = lambda c, r: held.append((c, r))
        client = self.client(max_connections=1)
        first = client.request(b"GET", b"/first")
        second = client.request(b"GET", b"/second")
        yield self.until(lambda: bool(held))
        second.cancel()
        with self.assertRaises(CancelledError):
            yield second
        echo(*held[0])
        answer = yield first
        self.assertEqual(answer.body, b"GET /first ")
        yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual([r.target for _, r in self.server.requests], [b"/first"])
        self.assertEqual(len(self.server.connections), 1)

    @inlineCallbacks
    def test_close_fails_waiting_requests_and_ends_connections(self) -> Any:
        held: list[tuple[ServerConnection, HttpRequest]] = []
        self.server.respond = lambda c, r: held.append((c, r))
        client = self.client(max_connections=1)
        first = client.request(b"GET", b"/first")
        second = client.request(b"GET", b"/second")
        yield self.until(lambda: bool(held))
        closed = client.close()
        description = yield self.transport_error(second)
        self.assertEqual(description, "the client was closed")
        self.assertFalse(closed.called)  # the busy connection ends after its answer
        echo(*held[0])
        yield first
        yield closed
        self.assertEqual(client.connections, 0)
        yield self.until(lambda: not self.server.open_connections)

    def test_bad_base_urls(self) -> None:
        for url in ("ftp://x", "http://", "http://h/p?q=1", "http://u:p@h"):
            with self.assertRaises(ValueError):
                HttpClient(reactor, url)


class TlsTests(ClientTestCase):
    def setUp(self) -> None:
        super().setUp()
        certificate, key = self_signed("localhost")
        self.ca_file = Path(tempfile.mkdtemp()) / "trusted.pem"
        self.ca_file.write_bytes(certificate)
        self.tls_server = ScriptedServer()
        self.tls_port = reactor.listenSSL(
            0, self.tls_server, ServerTls(key, certificate), interface="127.0.0.1"
        )
        self.addCleanup(self.tls_port.stopListening)

    def https(self, host: str, **options: Any) -> HttpClient:
        url = f"https://{host}:{self.tls_port.getHost().port}"
        return self.client(url, trust_root=_load_trust_root(str(self.ca_file)), **options)

    @inlineCallbacks
    def test_trusted_certificate(self) -> Any:
        client = self.https("localhost")
        for _ in range(2):
            answer = yield client.request(b"POST", b"/sms/send", body=b"{}")
            self.assertEqual(answer.body, b"POST /sms/send {}")
        self.assertEqual(len(self.tls_server.connections), 1)
        [(_, request)] = self.tls_server.requests[:1]
        self.assertEqual(request.headers[b"host"], b"localhost:%d" % self.tls_port.getHost().port)

    @inlineCallbacks
    def test_wrong_hostname_fails_before_the_request_is_sent(self) -> Any:
        # The certificate names "localhost", not the address.
        client = self.https("127.0.0.1")
        description = yield self.transport_error(client.request(b"POST", b"/", body=b"secret"))
        self.assertIn("cannot connect to 127.0.0.1", description)
        self.assertIn("VerificationError", description)
        yield deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(self.tls_server.requests, [])
        self.assertTrue(all(c.received == b"" for c in self.tls_server.connections))
        self.assertEqual(client.connections, 0)

    @inlineCallbacks
    def test_handshake_that_never_ends_times_out(self) -> Any:
        # A plain TCP server that never answers a ClientHello.
        self.server.parse = False
        url = f"https://localhost:{self.port.getHost().port}"
        client = self.client(url, connect_timeout=0.3)
        description = yield self.transport_error(client.request(b"GET", b"/"))
        self.assertIn("no connection within 0.3s", description)
        yield self.until(lambda: not self.server.open_connections)


async def _gather(ds: list[Deferred[Answer]]) -> list[Answer]:
    return [await d for d in ds]
