"""gateway.transport.immediate over real loopback TCP: at once when it can, in order always."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from gateway.transport import immediate
from tests.support.store_contract import Steps


class Collect(Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback(None)


class ImmediateTests(TestCase):
    timeout = 20

    @inlineCallbacks
    def connect(self) -> Steps:
        """(the server side's transport, what the client received)."""
        accepted: Deferred[Protocol] = Deferred()

        class Server(Protocol):
            def connectionMade(self) -> None:
                accepted.callback(self)

        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(Server)
        )
        self.addCleanup(port.stopListening)
        client = Collect()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), client)
        server = yield accepted
        self.addCleanup(client.lost.addErrback, lambda _: None)
        self.addCleanup(server.transport.loseConnection)
        return server.transport, client

    @inlineCallbacks
    def until(self, client: Collect, size: int) -> Steps:
        for _ in range(400):
            if len(client.data) >= size:
                return
            yield deferLater(reactor, 0.01, lambda: None)

    @inlineCallbacks
    def test_an_empty_buffer_sends_at_once(self) -> Steps:
        transport, client = yield self.connect()
        immediate.send(transport, b"answer")
        # Nothing left for the reactor to write: the socket took it in this call.
        assert transport.dataBuffer == b"" and not transport._tempDataBuffer
        yield self.until(client, 6)
        assert bytes(client.data) == b"answer"

    @inlineCallbacks
    def test_what_is_buffered_ahead_goes_first(self) -> Steps:
        transport, client = yield self.connect()
        transport.write(b"first ")
        immediate.send(transport, b"second")
        yield self.until(client, 12)
        assert bytes(client.data) == b"first second"

    @inlineCallbacks
    def test_what_the_socket_does_not_take_is_buffered_in_order(self) -> Steps:
        transport, client = yield self.connect()
        big = bytes(range(256)) * 40_000  # 10 MB: more than any socket buffer
        immediate.send(transport, big)
        immediate.send(transport, b"tail")
        yield self.until(client, len(big) + 4)
        assert bytes(client.data) == big + b"tail"

    def test_other_transports_are_written_as_usual(self) -> None:
        transport = StringTransport()
        immediate.send(transport, b"x")
        immediate.send(transport, b"y")
        assert transport.value() == b"xy"
