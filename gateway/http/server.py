"""The HTTP/1.1 server: a thin Twisted layer over :mod:`gateway.http.parser`.

Responsible for: moving bytes between a TCP connection and a
:class:`~gateway.http.parser.RequestParser`, handing every complete request to the
router at once, and writing the answers back. LINK pipelines delivery reports
on a few keep-alive connections, so dispatching all pipelined requests at once
lets reports from many requests share one store commit.

What always holds:

* Responses leave in request order (RFC 9112, section 9.3.2), whatever order
  the router's Deferreds fire in; an answer that is ready waits for the ones
  before it.
* After a request that ends the connection (``Connection: close``, HTTP/1.0
  without keep-alive) or a request the parser refuses, nothing more is read; the
  connection closes once every earlier answer and that one's are written
  (RFC 9112, section 9.6). A refused request gets its 4xx/5xx answer.
* A connection with nothing in progress closes after ``idle_timeout``; one whose
  oldest request (from its first byte to its answer) takes longer than
  ``request_timeout`` closes too, with 408 when nothing else is owed. A new
  connection's first request counts from the connection, so a client that
  connects and sends nothing (or dribbles a header a byte at a time) holds a
  connection for ``request_timeout`` at most, not ``idle_timeout``.
* ``admit(request, peer)``, when given, sees each complete request and the TCP
  peer's address before the router does; an answer it returns (a 403) is sent
  instead of routing.
* Reading pauses while more than ``max_pending`` answers are owed on one
  connection, so a client cannot queue unbounded work; and while the socket's
  send buffer is over its bound because the client does not read our answers
  (this protocol is the transport's streaming producer: the transport calls
  ``pauseProducing`` and ``resumeProducing``). Answers left unread past
  ``write_timeout`` abort the connection, and so does a close that has not
  completed by then.
* One connection gets at most ``_PER_TURN`` requests handled per reactor turn;
  pipelined requests beyond them wait, unread, for the next turn, so that one
  client's thousand pipelined requests cannot hold the reactor from everyone
  else.
* ``100 (Continue)`` is sent only for a request that ``screen(head, peer)``
  lets through (the client's address and credentials); one it refuses gets
  the refusal at once, and the connection closes without reading the body.
* A router exception or failed Deferred is logged and answered with 500; the
  router is called with one request at a time and never with a partial one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway.http.parser import (
    CONTINUE,
    HttpError,
    HttpRequest,
    RequestParser,
    Response,
    error_response,
    format_response,
)
from gateway.logs import Repeats
from gateway.transport import immediate

log = Logger()

Router = Callable[[HttpRequest], "Response | Deferred[Response]"]
Admit = Callable[[HttpRequest, str], "Response | None"]

_INTERNAL_ERROR = Response(500, b"internal error\n")
# Requests one connection may have handled in one reactor turn.
_PER_TURN = 16


class _Pending:
    """One answer owed on a connection, in request order."""

    __slots__ = ("data", "head", "keep_alive", "started")

    def __init__(self, started: float, keep_alive: bool, head: bool) -> None:
        self.started = started  # when the request's first byte arrived
        self.keep_alive = keep_alive
        self.head = head  # a HEAD request: header fields only
        self.data: bytes | None = None  # the formatted answer, once ready


@implementer(IPushProducer)
class HttpServerProtocol(Protocol):
    """One HTTP/1.1 server connection."""

    def __init__(self, factory: HttpServerFactory) -> None:
        self._factory = factory
        self._reactor = factory.reactor
        self._router = factory.router
        self._parser = RequestParser(factory.max_header_bytes, factory.max_body)
        self._pending: deque[_Pending] = deque()
        self._partial_since: float | None = None  # first byte of an incomplete request
        self._idle_since = 0.0
        self._awaiting_first = True  # no request yet: the idle wait is a request wait
        self._peer = ""
        self._timer: DelayedCall | None = None
        self._reading = True  # False once a request ended the connection
        self._closing = False  # loseConnection called: write nothing more
        self._paused = False  # too many answers owed
        self._write_blocked = False  # the client leaves our answers unread
        self._write_timer: DelayedCall | None = None
        self._transport_reading = True  # what we last told the transport
        self._next_turn: DelayedCall | None = None  # requests left for the next turn
        self._processing = False
        self.lost_waiters: list[Deferred[None]] = []  # fired when the connection is gone

    # -- Twisted ----------------------------------------------------------------

    def connectionMade(self) -> None:
        self._factory.connections.add(self)
        transport: Any = self.transport
        # Small answers LINK waits for; see gateway.transport.protocol on Nagle.
        if hasattr(transport, "setTcpNoDelay"):
            transport.setTcpNoDelay(True)
        transport.registerProducer(self, True)
        self._peer = getattr(transport.getPeer(), "host", "")
        self._idle_since = self._reactor.seconds()
        self._timer = self._reactor.callLater(self._idle_limit(), self._check_timeout)

    def dataReceived(self, data: bytes) -> None:
        if not self._reading:
            return
        self._parser.feed(data)
        if not self._processing and self._next_turn is None:
            self._process()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closing = True
        self._reading = False
        self._pending.clear()
        for timer in (self._timer, self._write_timer, self._next_turn):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._write_timer = self._next_turn = None
        self._factory.connections.discard(self)
        waiters, self.lost_waiters = self.lost_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    # -- requests in ----------------------------------------------------------------

    # -- IPushProducer: the transport about its send buffer ---------------------------

    def pauseProducing(self) -> None:
        if not self._write_blocked:
            self._write_blocked = True
            self._update_reading()
            self._write_timer = self._reactor.callLater(
                self._factory.write_timeout, self._write_stalled
            )

    def resumeProducing(self) -> None:
        if self._write_blocked:
            self._write_blocked = False
            if self._write_timer is not None and self._write_timer.active():
                self._write_timer.cancel()
            self._write_timer = None
            self._update_reading()
            if not self._processing and self._next_turn is None:
                self._process()

    def stopProducing(self) -> None:
        pass  # the connection is going; connectionLost follows

    def _write_stalled(self) -> None:
        self._write_timer = None
        self._factory.log_closing(
            "unread",
            "HTTP client {peer} has not read our answers for {seconds} s; closing",
            peer=self._peer,
            seconds=self._factory.write_timeout,
        )
        self.close(abort=True)

    def _update_reading(self) -> None:
        transport: Any = self.transport
        if transport is None or self._closing:
            return
        want = not (self._paused or self._write_blocked or self._next_turn is not None)
        if want != self._transport_reading:
            self._transport_reading = want
            if want:
                transport.resumeProducing()
            else:
                transport.pauseProducing()

    # -- requests in ----------------------------------------------------------------

    def _process(self) -> None:
        """Dispatch the complete requests the parser holds, unless paused, at most
        _PER_TURN of them now; the rest in the next reactor turn."""
        self._next_turn = None
        parser = self._parser
        now = self._reactor.seconds()
        if self._partial_since is not None:
            started = self._partial_since
        else:
            started = self._idle_since if self._awaiting_first else now
        self._processing = True
        handled = 0
        try:
            while self._reading and not self._paused and not self._write_blocked:
                if handled >= _PER_TURN:
                    self._next_turn = self._reactor.callLater(0, self._process)
                    break
                try:
                    request = parser.next_request()
                except HttpError as error:
                    self._refuse(error, started)
                    return
                if request is None:
                    break
                self._dispatch(request, started)
                handled += 1
                self._awaiting_first = False
                # Requests after the first in this read began arriving now.
                started = now
        finally:
            self._processing = False
        self._partial_since = started if self._reading and parser.has_partial else None
        if not self._pending:
            self._maybe_continue()
        self._update_reading()
        self._shorten_timer(now)

    def _maybe_continue(self) -> None:
        """Send 100 (Continue) to a request head waiting for it, if it may go on.

        RFC 9110, section 10.1.1: the client waits for 100 before sending the body.
        Sent only when no earlier answer is owed, so the interim response cannot be
        taken for an earlier request's; and only once the head passed `screen`, so
        that nobody can make us read a body they were never allowed to send.
        """
        parser = self._parser
        if not parser.expects_continue or not self._reading or self._closing:
            return
        head = parser.head
        screen = self._factory.screen
        refusal = screen(head, self._peer) if screen is not None and head is not None else None
        transport: Any = self.transport
        if refusal is None:
            transport.write(CONTINUE)
            parser.continue_sent()
            return
        # A final answer instead of 100: the body is never read, the connection ends.
        self._reading = False
        entry = _Pending(
            self._reactor.seconds(), False, head is not None and head.method == b"HEAD"
        )
        self._pending.append(entry)
        self._answered(refusal, entry)

    def _dispatch(self, request: HttpRequest, started: float) -> None:
        entry = _Pending(started, request.keep_alive, request.method == b"HEAD")
        pending = self._pending
        pending.append(entry)
        if not request.keep_alive:
            # RFC 9112, section 9.6: nothing after a "close" request is processed.
            self._reading = False
        elif len(pending) > self._factory.max_pending and not self._paused:
            self._paused = True
            self._update_reading()
        admit = self._factory.admit
        result: Response | Deferred[Response]
        try:
            refusal = admit(request, self._peer) if admit is not None else None
            result = refusal if refusal is not None else self._router(request)
        except Exception:
            log.failure(
                "HTTP handler failed for {method} {path}", method=request.method, path=request.path
            )
            result = _INTERNAL_ERROR
        if isinstance(result, Deferred):
            result.addCallbacks(
                self._answered, self._router_failed, callbackArgs=(entry,), errbackArgs=(entry,)
            )
        else:
            self._answered(result, entry)

    def _refuse(self, error: HttpError, started: float) -> None:
        """The parser gave up: answer after everything owed, then close."""
        self._reading = False
        self._partial_since = None
        on_error = self._factory.on_error
        if on_error is not None:
            on_error(error.status)
        entry = _Pending(started, False, False)
        entry.data = error_response(error, now=self._reactor.seconds())
        self._pending.append(entry)
        self._flush()

    # -- answers out -----------------------------------------------------------------

    def _answered(self, response: Response, entry: _Pending) -> None:
        if self._closing:
            return
        try:
            entry.data = format_response(
                response.status,
                response.body,
                content_type=response.content_type,
                headers=response.headers,
                keep_alive=entry.keep_alive,
                now=self._reactor.seconds(),
                head=entry.head,
            )
        except Exception:
            log.failure("HTTP handler answered something unusable: {response!r}", response=response)
            entry.data = format_response(
                500, _INTERNAL_ERROR.body, keep_alive=entry.keep_alive, head=entry.head
            )
        if self._pending and self._pending[0] is entry:
            self._flush()

    def _router_failed(self, failure: Failure, entry: _Pending) -> None:
        log.failure("HTTP handler failed", failure)
        self._answered(_INTERNAL_ERROR, entry)

    def _flush(self) -> None:
        """Write every ready answer at the head of the queue, in order."""
        pending = self._pending
        out: list[bytes] = []
        close = False
        while pending:
            data = pending[0].data
            if data is None:
                break
            out.append(data)
            if not pending.popleft().keep_alive:
                close = True
                break
        transport: Any = self.transport
        if out:
            immediate.send(transport, out[0] if len(out) == 1 else b"".join(out))
        if close:
            self._reading = False
            pending.clear()
            self.close()
            return
        if self._paused and len(pending) <= self._factory.max_pending // 2:
            self._paused = False
            self._update_reading()
            if not self._processing and self._next_turn is None:
                # Requests may wait in the parser's buffer from before the pause.
                self._process()
        if not pending:
            self._idle_since = self._reactor.seconds()
            self._maybe_continue()

    def close(self, *, abort: bool = False) -> None:
        """Close after what is buffered is written; abort it if that takes longer than
        write_timeout, or at once with `abort`."""
        transport: Any = self.transport
        if not self._closing:
            self._closing = True
            self._reading = False
            # A registered producer keeps a transport from closing (twisted's
            # FileDescriptor.loseConnection): let go of it first.
            transport.unregisterProducer()
            transport.loseConnection()
            if self._write_timer is not None and self._write_timer.active():
                self._write_timer.cancel()
            if not abort:
                self._write_timer = self._reactor.callLater(
                    self._factory.write_timeout, self.close, abort=True
                )
        if abort:
            transport.abortConnection()

    # -- timeouts -------------------------------------------------------------------

    def _busy_since(self) -> float | None:
        """When the oldest unanswered request began, or None when idle."""
        if self._pending:
            return self._pending[0].started
        return self._partial_since

    def _shorten_timer(self, now: float) -> None:
        """Bring the timer forward to the request deadline when the connection has
        just become busy (it may be waiting for the longer idle deadline)."""
        busy_since = self._busy_since()
        timer = self._timer
        if busy_since is None or timer is None or not timer.active():
            return
        deadline = busy_since + self._factory.request_timeout
        if timer.getTime() > deadline:
            timer.reset(max(0.0, deadline - now))

    def _check_timeout(self) -> None:
        """One timer serves both deadlines; it is re-armed only when it fires, so
        requests that come and go cost nothing here."""
        self._timer = None
        if self._closing:
            return
        now = self._reactor.seconds()
        busy_since = self._busy_since()
        transport: Any = self.transport
        if busy_since is not None:
            deadline = busy_since + self._factory.request_timeout
            if now >= deadline:
                self._factory.log_closing(
                    "request_timeout",
                    "HTTP request from {peer} not completed within {seconds} s; closing",
                    peer=_peer(transport),
                    seconds=self._factory.request_timeout,
                )
                if not self._pending:
                    # RFC 9110, section 15.5.9: 408 tells the client we gave up on it.
                    transport.write(error_response(HttpError(408, "request timeout"), now=now))
                self.close()
                return
        else:
            deadline = self._idle_since + self._idle_limit()
            if now >= deadline:
                # RFC 9112, section 9.5: a server may close an idle connection.
                self.close()
                return
        self._timer = self._reactor.callLater(deadline - now, self._check_timeout)

    def _idle_limit(self) -> float:
        factory = self._factory
        if self._awaiting_first:
            return min(factory.request_timeout, factory.idle_timeout)
        return factory.idle_timeout


def _peer(transport: Any) -> str:
    try:
        address = transport.getPeer()
        return f"{address.host}:{address.port}"
    except Exception:
        return "?"


class HttpServerFactory(Factory):
    """Builds :class:`HttpServerProtocol` connections that share one router.

    ``on_error(status)`` is called once for each request the parser refused (400,
    413, 431, ...), e.g. to count refused callbacks. ``admit`` screens requests by
    the client's address, ``screen`` the head of one that waits for 100 (Continue)
    (see the module's notes).
    """

    noisy = False

    def __init__(
        self,
        reactor: Any,
        router: Router,
        *,
        max_body: int,
        idle_timeout: float = 60.0,
        request_timeout: float = 30.0,
        max_header_bytes: int = 16384,
        max_pending: int = 64,
        on_error: Callable[[int], None] | None = None,
        admit: Admit | None = None,
        screen: Admit | None = None,
        write_timeout: float = 30.0,
        on_disconnect: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.reactor = reactor
        self.router = router
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.max_header_bytes = max_header_bytes
        self.max_pending = max_pending
        self.on_error = on_error
        self.admit = admit
        self.screen = screen
        self.write_timeout = write_timeout
        self.on_disconnect = on_disconnect
        self.connections: set[HttpServerProtocol] = set()
        # Connections closed for the same reason: a line a minute, with a count.
        self._closing_log = Repeats()

    def log_closing(self, reason: str, text: str, **fields: Any) -> None:
        self.on_disconnect(reason)
        left_out = self._closing_log.note(reason, self.reactor.seconds())
        if left_out is not None:
            log.warn(
                text + " ({left_out} more closed so since the last line)",
                left_out=left_out,
                reason=reason,
                **fields,
            )

    def buildProtocol(self, addr: Any) -> HttpServerProtocol:
        return HttpServerProtocol(self)

    def close_connections(self) -> Deferred[None]:
        """Close every open connection (at shutdown, in tests); fires once all are gone."""
        waits: list[Deferred[None]] = []
        for connection in list(self.connections):
            if connection.transport is not None:
                waiter: Deferred[None] = Deferred()
                connection.lost_waiters.append(waiter)
                waits.append(waiter)
                connection.close()
        return DeferredList(waits).addCallback(lambda _: None)


__all__ = ["Admit", "HttpServerFactory", "HttpServerProtocol", "Response", "Router"]
