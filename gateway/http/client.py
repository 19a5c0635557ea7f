"""HTTP/1.1 client for one origin: a thin Twisted layer over :mod:`gateway.http.answers`.

Responsible for: keeping up to ``max_connections`` keep-alive connections to one
origin (the scheme, host and port of a base URL, parsed once), writing each
request on one of them and reading its answer with an
:class:`~gateway.http.answers.AnswerParser`. It replaces treq and twisted.web's
``Agent`` for the REST calls to LINK, which spent several times its CPU on each
request (URL objects, the pool's and the endpoints' machinery, ``_newclient``'s
state machines) while the gateway posts one request per batch, at ordinary
rates one per few messages; ``python -m bench.http_client`` measures both.
Endpoints are used only to open a connection, which keep-alive makes rare.

What always holds:

* A connection carries one request at a time (no pipelining), and there are
  never more than ``max_connections``. A request that finds no idle connection
  waits, first come first served, for the next one free, and a new one is
  opened for it while there are fewer. Idle connections are reused most
  recently used first: the one reused is the least likely to have been closed
  by the server meanwhile, and in a quiet spell the others reach
  ``idle_timeout`` and close.
* Every Deferred from :meth:`HttpClient.request` fires with an
  :class:`~gateway.http.answers.Answer` (whatever its status: judging it is the
  caller's job) or fails with :class:`HttpTransportError` (no connection, the
  connection lost before a complete answer, an answer that cannot be parsed),
  or with ``CancelledError`` when the caller cancelled it. Cancelling a request
  that is on a connection aborts that connection (its late answer would
  otherwise be taken for the next request's); the client stays usable.
* A request is written once at most. Whether to send it again after a failure
  is the caller's decision (a POST that reached the server must not go twice).
  Only a connection found unusable when picked, before any byte of the request
  is written to it, is passed over for another or a new one.
* An idle connection the server closes is dropped at once, one the server
  writes to while idle (a 408 before it closes) is aborted: neither is handed to
  a request. Idle connections close after ``idle_timeout``, or earlier when the
  server's ``Keep-Alive: timeout=N`` says it drops them sooner.
* HTTPS verifies the server's certificate against ``trust_root`` (else the
  platform's roots) and the host name against it (service_identity). A request
  is written only once the handshake has completed and the name matched.
* :meth:`HttpClient.close` fails the waiting requests, closes idle connections at
  once and busy ones after their answer; its Deferred fires when every
  connection is gone. A later request opens new connections.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import ssl
from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway.http.answers import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_HEADER_BYTES,
    Answer,
    AnswerError,
    AnswerParser,
    format_request,
)
from gateway.transport import immediate

Headers = Sequence[tuple[bytes, bytes]]

# Seconds taken off a server's `Keep-Alive: timeout=N` (RFC 2068, section 19.7.1.1;
# gone from RFC 9112 but still sent by Apache and others), so that a request does
# not cross the server's close of an idle connection.
_KEEP_ALIVE_MARGIN = 1.0


class HttpTransportError(Exception):
    """No HTTP answer came: ``description`` says what happened instead."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True, slots=True)
class Origin:
    """Scheme, host and port of a base URL; ``path`` is its path without the final
    slash (the prefix of every request target)."""

    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def from_url(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{url!r}: not an http:// or https:// URL")
        if not parts.hostname:
            raise ValueError(f"{url!r}: no host")
        if parts.query or parts.fragment or parts.username is not None:
            raise ValueError(f"{url!r}: a base URL has no query, fragment or user")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> bytes:
        """The Host field (RFC 9110, section 7.2): the port only when not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != (443 if self.scheme == "https" else 80):
            host = f"{host}:{self.port}"
        return host.encode("idna") if not host.isascii() else host.encode()


class _Exchange:
    """One request: its method, its bytes, the Deferred its caller holds and the
    connection carrying it (None while it waits)."""

    __slots__ = ("connection", "data", "deferred", "method")

    def __init__(self, method: bytes, data: bytes, client: HttpClient) -> None:
        self.method = method
        self.data = data
        self.deferred: Deferred[Answer] = Deferred(lambda _: client._cancel(self))
        self.connection: _Connection | None = None


# Connection states.
_CONNECTING, _IDLE, _BUSY, _GONE = range(4)


@implementer(IHandshakeListener)
class _Connection(Protocol):
    """One connection of an :class:`HttpClient`; the client decides what it carries."""

    def __init__(self, client: HttpClient, tls: bool) -> None:
        self._client = client
        self._tls = tls
        self.state = _CONNECTING
        self.exchange: _Exchange | None = None
        self.closing = False  # close once the current answer is in
        self.ending = False  # closed or aborted by us; connectionLost will follow
        self.idle_since = 0.0
        self.idle_limit = client.idle_timeout
        self.idle_timer: DelayedCall | None = None
        self.connect_timer: DelayedCall | None = None
        self.attempt: Deferred[Any] | None = None
        self.problem: str | None = None  # why the attempt was given up, when we did
        self.parser = AnswerParser(client.max_header_bytes, client.max_body)
        self.wire: Any = None  # the transport, once connected

    @property
    def usable(self) -> bool:
        return self.state == _IDLE and not self.ending and not self.wire.disconnecting

    # -- Twisted's calls ---------------------------------------------------------

    def connectionMade(self) -> None:
        self.wire = self.transport
        # A request is written at once and its answer awaited: Nagle's algorithm
        # could only hold back its last segment (tens of ms with delayed ACKs).
        tcp: Any = getattr(self.wire, "transport", None) if self._tls else self.wire
        if hasattr(tcp, "setTcpNoDelay"):
            tcp.setTcpNoDelay(True)
        if not self._tls:
            self._client._ready(self)

    def handshakeCompleted(self) -> None:
        # A host name that does not match aborts the connection inside the
        # handshake, just before this is called: no request may follow then.
        if not self.wire.disconnecting:
            self._client._ready(self)

    def dataReceived(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            # Idle (or cancelled): whatever the server says now answers no request.
            self.abort()
            return
        parser = self.parser
        parser.feed(data)
        try:
            answer = parser.next_answer()
        except AnswerError as e:
            self.exchange = None
            self.abort()
            exchange.deferred.errback(HttpTransportError(f"unreadable answer: {e}"))
            return
        if answer is not None:
            self._answered(exchange, answer)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        exchange, self.exchange = self.exchange, None
        state, self.state = self.state, _GONE
        if self.idle_timer is not None and self.idle_timer.active():
            self.idle_timer.cancel()
        client = self._client
        if exchange is None:
            client._lost(self, state, reason)
            return
        parser = self.parser
        parser.feed_eof()
        answer: Answer | None = None
        try:
            # Only a body delimited by the end of the connection ends here.
            answer = parser.next_answer()
        except AnswerError as e:
            problem = f"{e} ({_describe(reason)})"
        else:
            problem = f"connection lost before an answer ({_describe(reason)})"
        client._lost(self, state, reason)
        if answer is not None:
            exchange.deferred.callback(answer)
        else:
            exchange.deferred.errback(HttpTransportError(problem))

    # -- the client's calls ------------------------------------------------------

    def send(self, exchange: _Exchange) -> None:
        self.state = _BUSY
        self.exchange = exchange
        exchange.connection = self
        self.parser.sent(exchange.method)
        immediate.send(self.wire, exchange.data)

    def close(self) -> None:
        self.ending = True
        self.wire.loseConnection()

    def abort(self) -> None:
        self.ending = True
        if self.wire is not None:
            self.wire.abortConnection()

    def _answered(self, exchange: _Exchange, answer: Answer) -> None:
        self.exchange = None
        reusable = answer.keep_alive and not self.closing and not self.parser.buffered
        if reusable:
            limit = _server_idle_limit(answer.headers.get(b"keep-alive"))
            if limit is not None and limit < self.idle_limit:
                self.idle_limit = limit
            reusable = self.idle_limit > 0
        if reusable:
            self._client._released(self)
        else:
            self.close()
        exchange.deferred.callback(answer)


class _ConnectionFactory(Factory):
    # Twisted logs "Starting factory" for every connection at info level.
    noisy = False

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def buildProtocol(self, addr: Any) -> _Connection:
        return self._connection


class HttpClient:
    """Requests to one origin over persistent connections; see the module docstring."""

    def __init__(
        self,
        reactor: Any,
        base_url: str,
        *,
        max_connections: int = 8,
        connect_timeout: float = 10.0,
        idle_timeout: float = 60.0,
        trust_root: Any = None,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        """``trust_root`` is an ``IOpenSSLTrustRoot`` (e.g.
        ``ssl.trustRootFromCertificates``); None trusts the platform's roots."""
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.origin = Origin.from_url(base_url)
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_header_bytes = max_header_bytes
        self.max_body = max_body
        self._reactor = reactor
        self._host = self.origin.host_header
        self._tls = self.origin.scheme == "https"
        endpoint: Any = HostnameEndpoint(
            reactor, self.origin.host, self.origin.port, timeout=connect_timeout
        )
        if self._tls:
            options = ssl.optionsForClientTLS(self.origin.host, trustRoot=trust_root)
            endpoint = wrapClientTLS(options, endpoint)
        self._endpoint = endpoint
        self._connections: set[_Connection] = set()
        self._idle: list[_Connection] = []  # most recently used last
        self._waiting: deque[_Exchange] = deque()
        self._connecting = 0
        self._closed: list[Deferred[None]] = []  # close() callers waiting

    @property
    def connections(self) -> int:
        """Connections open or being opened."""
        return len(self._connections)

    @property
    def idle(self) -> int:
        return len(self._idle)

    def request(
        self, method: bytes, target: bytes, headers: Headers = (), body: bytes | None = None
    ) -> Deferred[Answer]:
        """Send one request (``target`` in origin-form, ``/path?query``); fires with
        its answer. Raises ValueError at once for a request that cannot be written."""
        exchange = _Exchange(
            method, format_request(method, target, self._host, headers, body), self
        )
        connection = self._pick()
        if connection is not None:
            connection.send(exchange)
        else:
            self._waiting.append(exchange)
            self._open_as_needed()
        return exchange.deferred

    def close(self) -> Deferred[None]:
        """Fail waiting requests, close idle connections now and busy ones after
        their answer; fires once no connection is left."""
        waiting, self._waiting = self._waiting, deque()
        for exchange in waiting:
            exchange.deferred.errback(HttpTransportError("the client was closed"))
        for connection in list(self._connections):
            connection.closing = True
            if connection.state == _IDLE:
                connection.close()
            elif connection.state == _CONNECTING:
                if connection.attempt is not None and not connection.attempt.called:
                    connection.attempt.cancel()
                else:
                    connection.abort()
        self._idle.clear()
        if not self._connections:
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._closed.append(done)
        return done

    # -- connections -------------------------------------------------------------

    def _pick(self) -> _Connection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.usable:
                return connection
            # Closing already, though its connectionLost has not come: nothing was
            # written to it, so another connection may take the request.
            if not connection.ending:
                connection.abort()
        return None

    def _open_as_needed(self) -> None:
        """Start connection attempts for waiting requests, within max_connections."""
        while len(self._waiting) > self._connecting and len(self._connections) < (
            self.max_connections
        ):
            self._open()

    def _open(self) -> None:
        connection = _Connection(self, self._tls)
        self._connections.add(connection)
        self._connecting += 1
        connection.connect_timer = self._reactor.callLater(
            self.connect_timeout, self._connect_timed_out, connection
        )
        attempt = self._endpoint.connect(_ConnectionFactory(connection))
        connection.attempt = attempt
        attempt.addErrback(self._connect_failed, connection)

    def _connect_timed_out(self, connection: _Connection) -> None:
        connection.connect_timer = None
        connection.problem = f"no connection within {self.connect_timeout:g}s"
        if connection.attempt is not None and not connection.attempt.called:
            connection.attempt.cancel()  # _connect_failed follows
        else:
            connection.abort()  # connected, TLS handshake unfinished: _lost follows

    def _connect_failed(self, reason: Failure, connection: _Connection) -> None:
        self._failed(connection, connection.problem or _describe(reason))

    def _failed(self, connection: _Connection, description: str) -> None:
        """An attempt that gave no usable connection fails the oldest waiting request."""
        if connection not in self._connections:
            return
        self._forget(connection, _CONNECTING)
        if self._waiting:
            origin = self.origin
            self._waiting.popleft().deferred.errback(
                HttpTransportError(f"cannot connect to {origin.host}:{origin.port}: {description}")
            )
        self._open_as_needed()

    def _ready(self, connection: _Connection) -> None:
        """Connected (and, for HTTPS, verified)."""
        if connection.connect_timer is not None:
            connection.connect_timer.cancel()
            connection.connect_timer = None
        self._connecting -= 1
        connection.state = _IDLE
        if connection.closing:
            connection.close()
            return
        self._released(connection)

    def _released(self, connection: _Connection) -> None:
        """A connection free for the next request."""
        if self._waiting:
            connection.send(self._waiting.popleft())
            return
        connection.state = _IDLE
        self._idle.append(connection)
        connection.idle_since = self._reactor.seconds()
        if connection.idle_timer is None or not connection.idle_timer.active():
            connection.idle_timer = self._reactor.callLater(
                connection.idle_limit, self._idle_check, connection
            )
        elif connection.idle_timer.getTime() > connection.idle_since + connection.idle_limit:
            connection.idle_timer.reset(connection.idle_limit)

    def _idle_check(self, connection: _Connection) -> None:
        # One timer per connection, moved only when it fires: reusing a connection
        # costs no timer call.
        if connection.state != _IDLE:
            return
        left = connection.idle_since + connection.idle_limit - self._reactor.seconds()
        if left > 0:
            connection.idle_timer = self._reactor.callLater(left, self._idle_check, connection)
            return
        self._idle.remove(connection)
        connection.close()

    def _lost(self, connection: _Connection, state: int, reason: Failure) -> None:
        if state == _CONNECTING:
            # TLS handshake failed (or timed out) after TCP connected.
            self._failed(connection, connection.problem or _describe(reason))
            return
        if connection in self._idle:
            self._idle.remove(connection)
        self._forget(connection, state)
        self._open_as_needed()

    def _forget(self, connection: _Connection, state: int) -> None:
        if state == _CONNECTING and connection in self._connections:
            self._connecting -= 1
            if connection.connect_timer is not None:
                connection.connect_timer.cancel()
                connection.connect_timer = None
        connection.state = _GONE
        self._connections.discard(connection)
        if not self._connections and self._closed:
            closed, self._closed = self._closed, []
            for done in closed:
                done.callback(None)

    def _cancel(self, exchange: _Exchange) -> None:
        """The caller cancelled: Deferred fails it with CancelledError after this."""
        connection = exchange.connection
        if connection is None:
            if exchange in self._waiting:
                self._waiting.remove(exchange)
            return
        if connection.exchange is exchange:
            connection.exchange = None
            connection.abort()


def _server_idle_limit(keep_alive: bytes | None) -> float | None:
    """Seconds a connection may stay idle by the server's ``Keep-Alive: timeout=N``."""
    if keep_alive is None:
        return None
    for item in keep_alive.split(b","):
        name, _, value = item.strip().partition(b"=")
        if name.strip().lower() == b"timeout" and value.strip().isdigit():
            return max(int(value.strip()) - _KEEP_ALIVE_MARGIN, 0.0)
    return None


def _describe(reason: Failure) -> str:
    value = reason.value
    return f"{type(value).__name__}: {value}"


__all__ = ["Answer", "Headers", "HttpClient", "HttpTransportError", "Origin"]
