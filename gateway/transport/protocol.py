"""The Twisted side of one SMPP connection, kept thin.

Bytes from the socket go into a sans-IO `Session`; its events go to a handler
(the ESME-facing server logic, or the upstream client); its bytes go to the
socket. This class adds only what needs a reactor: timers (bind timeout,
inactivity, enquire_link, response timeouts, partial PDUs, stalled output)
and flow control in both directions.

What always holds:

* Reading stops while any of three things holds, and resumes when none does:
  the session's window for the peer is full (a fast ESME is slowed by TCP
  instead of being refused), the shutdown drain asked for it (`stop_reading`),
  or the socket's send buffer is over its bound because the peer does not read
  what we send. The last comes from Twisted's producer/consumer protocol: from
  the peer's first bytes on, this protocol is the transport's streaming
  producer, so the transport calls
  `pauseProducing` once its buffer passes its size and `resumeProducing` once
  it drained. Unread input then waits in the kernel, and what one peer can make
  us hold in memory is bounded by one read and one window, not by its patience.
* Output that stays over that bound for `write_timeout` closes the connection
  (aborted: a peer that does not read would hold a graceful close for ever);
  so does a connection still unbound at `bind_timeout`, whatever is buffered.
  A graceful close that has not completed after `write_timeout` is aborted too.
* `pump` never runs inside itself. An answer made while events are being
  handled (a refusal that needs no store, answered at once) only marks that
  there is more to do; the running loop takes it. However many PDUs one read
  holds, the stack stays flat and every request gets its answer.
* A partial PDU has a deadline counted from its first byte, so a peer
  dribbling a byte a second cannot hold a session with a PDU that never ends.
* One connection gets at most FRAMES_PER_TURN PDUs decoded per reactor turn;
  the rest waits, and its socket unread, for the next turn, so that a flood
  on one connection delays the others by one share, not by the whole read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway.config import SmppSettings
from gateway.logs import Repeats
from gateway.smpp import pdu as p
from gateway.smpp.session import BOUND, BindState, Event, Response, Role, Session
from gateway.transport import immediate

log = Logger()


class Handler(TypingProtocol):
    def event(self, event: Event) -> None: ...

    def closed(self) -> None: ...


class LinkLost(Exception):
    pass


class LinkTimeout(Exception):
    pass


@implementer(IPushProducer)
class SmppProtocol(Protocol):
    def __init__(
        self,
        clock: Any,
        settings: SmppSettings,
        role: Role,
        send_window: int,
        *,
        tick: float = 1.0,
        close_log: Repeats | None = None,
        on_disconnect: Callable[[str], None] = lambda reason: None,
    ) -> None:
        """`tick` is how often the timers are checked; sub-second timeouts need a finer one.

        `close_log`, shared by a server's connections, keeps a storm of connections
        closed for the same reason to a line a minute; `on_disconnect` hears the
        reason of each connection closed on a timer (for a metric).
        """
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
        self._reading = True  # what we last told the transport
        # Shutdown drain (stop_reading): the window may free up, the socket stays unread.
        self._reading_stopped = False
        # Since when the transport's send buffer is over its bound (None: it is not).
        self.write_blocked_since: float | None = None
        self._producing = False  # registered as the transport's producer
        self._pumping = False
        self._pump_again = False
        self._next_turn: Any = None  # frames left for the next reactor turn
        self._closing = False
        self._closing_since = 0.0
        # The incomplete PDU at the head of the input: since when, and the frame
        # count then (a new frame means a new partial PDU).
        self._partial_since: float | None = None
        self._partial_frames = 0
        self._timer = LoopingCall(self._check_timers)
        self._timer.clock = clock
        self._tick = tick
        self.connected_at = 0.0
        self.last_received = 0.0
        self.last_sent = 0.0
        self.peer_host = ""
        self._close_log = close_log or Repeats()
        self._on_disconnect = on_disconnect

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
        if not self._producing and not self._closing:
            # Only once the peer has spoken: TLS holds what we write until its
            # handshake is done and pauses its producer meanwhile, and a pause
            # must not stop the reading that completes the handshake. Before the
            # peer's first bytes we write nothing bigger than a bind.
            self._producing = True
            self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self.session.receive_data(data)
        self.session.allow_frames(FRAMES_PER_TURN)
        self.pump()

    def connectionLost(self, reason: Failure = Failure(Exception("closed"))) -> None:  # noqa: B008
        self._closing = True
        if self._timer.running:
            self._timer.stop()
        if self._next_turn is not None and self._next_turn.active():
            self._next_turn.cancel()
        self._next_turn = None
        self.session.close()
        waiting, self._waiting = self._waiting, {}
        for d in waiting.values():
            if not d.called:
                d.errback(LinkLost())
        if self.handler is not None:
            self.handler.closed()

    # --- IPushProducer: the transport about its send buffer -------------------------

    def pauseProducing(self) -> None:
        if self.write_blocked_since is None:
            self.write_blocked_since = self.clock.seconds()
            self._update_reading()

    def resumeProducing(self) -> None:
        if self.write_blocked_since is not None:
            self.write_blocked_since = None
            # Frames read before the pause may wait in the session.
            self.pump()

    def stopProducing(self) -> None:
        pass  # the connection is going; connectionLost follows

    # --- the loop -------------------------------------------------------------------

    def pump(self) -> None:
        if self._pumping:
            self._pump_again = True
            return
        session = self.session
        self._pumping = True
        try:
            while True:
                self._pump_again = False
                while self.write_blocked_since is None:
                    event = session.next_event()
                    if event is None:
                        break
                    if isinstance(event, Response):
                        d = self._waiting.pop(event.pdu.sequence, None)
                        if d is not None and not d.called:
                            d.callback(event)
                        continue
                    assert self.handler is not None
                    self.handler.event(event)
                    # Answers made meanwhile wait in the session; past a socket buffer's
                    # worth they go now, so that the transport can push back.
                    if session.bytes_to_send >= _FLUSH_AT:
                        self.flush()
                if not self._pump_again:
                    break
        finally:
            self._pumping = False
        self.flush()
        if session.must_close:
            self.close()
            return
        if (
            session.backlog
            and not session.paused
            and self.write_blocked_since is None
            and self._next_turn is None
        ):
            # The allowance is spent: the rest waits, unread, for the next turn.
            self._next_turn = self.clock.callLater(0, self._take_turn)
        self._update_reading()

    def _take_turn(self) -> None:
        self._next_turn = None
        self.session.allow_frames(FRAMES_PER_TURN)
        self.pump()

    def _update_reading(self) -> None:
        transport: Any = self.transport
        if transport is None or self._closing:
            return
        want = not (
            self.session.paused
            or self._reading_stopped
            or self.write_blocked_since is not None
            or self._next_turn is not None
        )
        if want != self._reading:
            self._reading = want
            if want:
                transport.resumeProducing()
            else:
                transport.pauseProducing()
        self._track_partial()

    def _track_partial(self) -> None:
        session = self.session
        if not session.partial or not self._reading:
            # Unread input is ours to wait for: the deadline runs only while we read.
            self._partial_since = None
        elif self._partial_since is None or session.frames != self._partial_frames:
            self._partial_since = self.clock.seconds()
            self._partial_frames = session.frames

    def flush(self) -> None:
        data = self.session.data_to_send()
        transport: Any = self.transport
        if data and transport is not None and not self._closing:
            self.last_sent = self.clock.seconds()
            immediate.send(transport, data)

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
        self._reading_stopped = True
        self._update_reading()

    def resume_reading(self) -> None:
        self._reading_stopped = False
        self._update_reading()

    def close(self, *, abort: bool = False) -> None:
        """Close after what is buffered is sent; `abort` drops it and closes now."""
        transport: Any = self.transport
        if transport is None:
            return
        if not self._closing:
            if not abort:
                # Answers the session made in this pass (say, refusals read just
                # before an unbind_resp that closes us) are buffered too.
                self.flush()
            self._closing = True
            self._closing_since = self.clock.seconds()
            if self._producing:
                # A registered producer keeps a transport from closing (twisted's
                # FileDescriptor.loseConnection): let go of it first.
                self._producing = False
                transport.unregisterProducer()
            transport.loseConnection()
        if abort:
            transport.abortConnection()

    # --- timers ---------------------------------------------------------------------

    def _check_timers(self) -> None:
        now = self.clock.seconds()
        s = self.settings
        session = self.session
        if self._closing:
            if now - self._closing_since >= s.write_timeout:
                # The peer does not read what a graceful close must send first.
                self.close(abort=True)
            return
        if (
            session.state is BindState.OPEN
            and session.role is Role.SMSC
            and now - self.connected_at >= s.bind_timeout
        ):
            self._closing_for("no_bind", "no bind within {timeout}s", s.bind_timeout, now)
            self.close(abort=True)
            return
        blocked = self.write_blocked_since
        if blocked is not None and now - blocked >= s.write_timeout:
            self._closing_for(
                "unread", "it has not read what we sent for {timeout}s", s.write_timeout, now
            )
            self.close(abort=True)
            return
        partial = self._partial_since
        if partial is not None and now - partial >= s.partial_pdu_timeout:
            self._closing_for(
                "partial_pdu",
                "a PDU not complete {timeout}s after its first byte",
                s.partial_pdu_timeout,
                now,
            )
            self.close()
            return
        if s.inactivity_timeout and now - self.last_received >= s.inactivity_timeout:
            self._closing_for("silent", "silent for {timeout}s", s.inactivity_timeout, now)
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

    def _closing_for(self, reason: str, why: str, timeout: float, now: float) -> None:
        self._on_disconnect(reason)
        left_out = self._close_log.note(reason, now)
        if left_out is not None:
            log.info(
                "closing {peer}: " + why + " ({left_out} more closed so since the last line)",
                peer=self.peer_host,
                timeout=timeout,
                reason=reason,
                left_out=left_out,
            )


# PDUs one connection may have decoded per reactor turn: a read can hold thousands,
# and some are answered without the application, so without a bound one peer's
# read is everyone's wait (three enquire_link floods: 100 ms for a side ESME).
FRAMES_PER_TURN = 64
# Pending answers past this many octets are written before more PDUs are handled
# (Twisted's transport buffer is 64 KiB; this keeps our own share below it).
_FLUSH_AT = 16384
