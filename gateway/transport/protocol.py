"""The Twisted side of one SMPP connection, kept thin.

Bytes from the socket go into a sans-IO `Session`; its events go to a handler
(the ESME-facing server logic, or later the upstream client); its bytes go to
the socket. This class adds only what needs a reactor: timers (bind timeout,
inactivity, enquire_link, response timeouts, partial PDUs) and TCP
backpressure: while the session's window for the peer is full, the transport
stops reading, so a fast ESME is slowed by TCP instead of being refused.

Both ends use it: the ESME-facing server (Role.SMSC) and the upstream LINK
client (Role.ESME, gateway.linksmpp.connector), which subclasses it only to
learn when the connection is made and why it was lost.
"""

from __future__ import annotations

from typing import Any
from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.config import SmppSettings
from gateway.smpp import pdu as p
from gateway.smpp.session import BOUND, BindState, Event, Response, Role, Session

log = Logger()

PARTIAL_PDU_TIMEOUT = 10.0


class Handler(TypingProtocol):
    def event(self, event: Event) -> None: ...

    def closed(self) -> None: ...


class LinkLost(Exception):
    pass


class LinkTimeout(Exception):
    pass


class SmppProtocol(Protocol):
    def __init__(
        self,
        clock: Any,
        settings: SmppSettings,
        role: Role,
        send_window: int,
        *,
        tick: float = 1.0,
    ) -> None:
        """`tick` is how often the timers are checked; sub-second timeouts need a finer one."""
        self.clock = clock
        self.settings = settings
        self.session = Session(
            role,
            window=settings.window,
            send_window=send_window,
            max_pdu_length=settings.max_pdu_length,
            window_overrun=settings.window_overrun,
        )
        self.handler: Handler | None = None
        self._waiting: dict[int, Deferred[Response]] = {}
        self._paused = False
        # Shutdown drain (stop_reading): the window may free up, the socket stays unread.
        self._reading_stopped = False
        self._closing = False
        self._timer = LoopingCall(self._check_timers)
        self._timer.clock = clock
        self._tick = tick
        self.connected_at = 0.0
        self.last_received = 0.0
        self.last_sent = 0.0
        self.peer_host = ""

    # --- Twisted callbacks ------------------------------------------------------

    def connectionMade(self) -> None:
        now = self.clock.seconds()
        self.connected_at = self.last_received = self.last_sent = now
        transport: Any = self.transport
        peer = transport.getPeer()
        # Every PDU is a small write that the peer waits for: Nagle's algorithm would
        # hold it back until the previous one is acknowledged (tens of ms with delayed
        # ACKs).
        if hasattr(transport, "setTcpNoDelay"):
            transport.setTcpNoDelay(True)
        self.peer_host = getattr(peer, "host", "")
        self._timer.start(self._tick, now=False)

    def dataReceived(self, data: bytes) -> None:
        self.last_received = self.clock.seconds()
        self.session.receive_data(data)
        self.pump()

    def connectionLost(self, reason: Failure = Failure(Exception("closed"))) -> None:  # noqa: B008
        if self._timer.running:
            self._timer.stop()
        self.session.close()
        waiting, self._waiting = self._waiting, {}
        for d in waiting.values():
            if not d.called:
                d.errback(LinkLost())
        if self.handler is not None:
            self.handler.closed()

    # --- the loop -------------------------------------------------------------------

    def pump(self) -> None:
        session = self.session
        while (event := session.next_event()) is not None:
            if isinstance(event, Response):
                d = self._waiting.pop(event.pdu.sequence, None)
                if d is not None and not d.called:
                    d.callback(event)
                continue
            assert self.handler is not None
            self.handler.event(event)
        self.flush()
        if session.must_close:
            self.close()
            return
        if session.paused and not self._paused:
            self._paused = True
            self.transport.pauseProducing()  # type: ignore[union-attr]
        elif self._paused and not session.paused:
            self._paused = False
            if not self._reading_stopped:
                self.transport.resumeProducing()  # type: ignore[union-attr]

    def flush(self) -> None:
        data = self.session.data_to_send()
        transport: Any = self.transport
        if data and transport is not None and not self._closing:
            self.last_sent = self.clock.seconds()
            transport.write(data)

    def respond(self, request: p.Pdu, response: p.Pdu) -> None:
        if self.session.state is BindState.CLOSED and self._closing:
            return  # the connection went away while the answer was being prepared
        self.session.respond(request, response)
        self.pump()

    def request(self, pdu: p.Pdu) -> Deferred[Response]:
        """Send one of our requests; fires with the peer's Response event.

        Fails with LinkTimeout after `response_timeout`, LinkLost if the connection goes.
        """
        sequence = self.session.send_request(pdu, self.clock.seconds())

        def cancel(_: Deferred[Response]) -> None:
            # The caller stopped waiting; a late response is then simply dropped.
            self._waiting.pop(sequence, None)

        d: Deferred[Response] = Deferred(cancel)
        self._waiting[sequence] = d
        self.flush()
        return d

    def stop_reading(self) -> None:
        """Read nothing more from the peer (shutdown); what was read is still handled.

        Requests already read are answered as they complete; later ones stay unread in
        the socket, never taken (refused once an unbind is out and reading resumes).
        Responses wait unread too, until `resume_reading`.
        """
        if not self._reading_stopped:
            self._reading_stopped = True
            if not self._paused and self.transport is not None:
                self.transport.pauseProducing()

    def resume_reading(self) -> None:
        if self._reading_stopped:
            self._reading_stopped = False
            if not self._paused and self.transport is not None:
                self.transport.resumeProducing()

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            transport: Any = self.transport
            if transport is not None:
                transport.loseConnection()

    # --- timers ---------------------------------------------------------------------

    def _check_timers(self) -> None:
        now = self.clock.seconds()
        s = self.settings
        session = self.session
        if (
            session.state is BindState.OPEN
            and session.role is Role.SMSC
            and now - self.connected_at >= s.bind_timeout
        ):
            log.info(
                "closing {peer}: no bind within {timeout}s",
                peer=self.peer_host,
                timeout=s.bind_timeout,
            )
            self.close()
            return
        if session.buffered and now - self.last_received >= PARTIAL_PDU_TIMEOUT:
            log.info("closing {peer}: a partial PDU never completed", peer=self.peer_host)
            self.close()
            return
        if s.inactivity_timeout and now - self.last_received >= s.inactivity_timeout:
            log.info(
                "closing {peer}: silent for {timeout}s",
                peer=self.peer_host,
                timeout=s.inactivity_timeout,
            )
            self.close()
            return
        expired = session.expire(now, s.response_timeout)
        for request in expired:
            d = self._waiting.pop(request.sequence, None)
            if d is not None and not d.called:
                d.errback(LinkTimeout())
        if expired:
            # An unbind may have been waiting for these: let it be answered.
            self.pump()
        idle = now - max(self.last_received, self.last_sent)
        if session.state in BOUND and s.enquire_link_interval and idle >= s.enquire_link_interval:
            self.request(p.EnquireLink()).addErrback(lambda _: None)
