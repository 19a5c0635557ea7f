"""One SMPP connection as a plain object: bytes in, events out; PDUs in, bytes out.

The session owns the bind state, the sequence numbers and both windows, and it
answers by itself whatever needs no application decision:
- enquire_link, in every state;
- requests the peer's role never sends (ESME_RINVCMDID) or may not send in the
  current state (ESME_RINVBNDSTS; a second bind ESME_RALYBND), with the
  request's own `*_resp`, or generic_nack where it has none (outbind,
  alert_notification);
- undecodable PDUs: the request's own `*_resp` with the status the codec found
  (so peers that match responses by command and sequence see it), generic_nack
  for an unknown command_id, generic_nack and close for broken framing;
- responses to requests it never sent, or late ones: reported as a
  ProtocolError, never answered (a generic_nack answers nothing the peer waits
  for, could pass for our answer to one of its requests, and makes smpplib's
  default handler raise);
- in "throttle" mode, requests over the peer's window: ESME_RTHROTTLED;
- unbind, answered once every earlier request both ways is settled, so that no
  response is lost.

Invariants:
- A request event is produced only when the bind state allows that command
  from the peer (the tables `PEER_MAY_SEND` below) and the peer's window has
  room. When it has none, `window_overrun` decides: "wait" (the default) makes
  `paused` true and holds buffered frames back, which the transport turns into
  TCP backpressure; "throttle" keeps reading and refuses each request over the
  window with ESME_RTHROTTLED (enquire_link and unbind are never refused so).
- Every request from the peer gets exactly one response, from the session or
  through `respond`; outbind and alert_notification have none (unless refused:
  generic_nack) and never occupy the window. The peer's unbind is answered
  last, once both its earlier requests and ours are settled (answered or
  expired).
- Our own requests carry sequence numbers from this session's counter and are
  tracked until their response arrives or `expire` gives them up; a response
  that comes after that is reported, not answered.
- Every answer the session makes by itself is also reported as a
  `ProtocolError` event carrying the status it sent, for logs and metrics.
- The session never reads a clock: callers pass `now` where time matters.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from gateway.smpp import pdu as p
from gateway.smpp.codec import Framer, PduError, decode, encode


class BindState(enum.Enum):
    OPEN = "open"
    BINDING = "binding"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBINDING = "unbinding"
    CLOSED = "closed"


class Role(enum.Enum):
    SMSC = "smsc"
    ESME = "esme"


C = p.CommandId
_BIND_STATE: Final = {
    C.BIND_TRANSMITTER: BindState.BOUND_TX,
    C.BIND_RECEIVER: BindState.BOUND_RX,
    C.BIND_TRANSCEIVER: BindState.BOUND_TRX,
    C.BIND_TRANSMITTER_RESP: BindState.BOUND_TX,
    C.BIND_RECEIVER_RESP: BindState.BOUND_RX,
    C.BIND_TRANSCEIVER_RESP: BindState.BOUND_TRX,
}
BOUND: Final = frozenset({BindState.BOUND_TX, BindState.BOUND_RX, BindState.BOUND_TRX})

_ESME_TX: Final = frozenset(
    {C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM, C.QUERY_SM, C.CANCEL_SM, C.REPLACE_SM}
)
_SMSC_TO_RX: Final = frozenset({C.DELIVER_SM, C.DATA_SM, C.ALERT_NOTIFICATION})
_ANY_BOUND: Final = frozenset({C.ENQUIRE_LINK, C.UNBIND})
_BINDS: Final = frozenset({C.BIND_TRANSMITTER, C.BIND_RECEIVER, C.BIND_TRANSCEIVER})

# Requests the peer may send, by our role and the bind state (SMPP 3.4 section 2.3).
PEER_MAY_SEND: Final[dict[Role, dict[BindState, frozenset[p.CommandId]]]] = {
    Role.SMSC: {
        BindState.OPEN: _BINDS,
        BindState.BINDING: frozenset(),
        BindState.BOUND_TX: _ESME_TX | _ANY_BOUND,
        BindState.BOUND_RX: _ANY_BOUND,
        BindState.BOUND_TRX: _ESME_TX | _ANY_BOUND,
        BindState.UNBINDING: frozenset(),
        BindState.CLOSED: frozenset(),
    },
    Role.ESME: {
        BindState.OPEN: frozenset({C.OUTBIND}),
        BindState.BINDING: frozenset(),
        BindState.BOUND_TX: _ANY_BOUND,
        BindState.BOUND_RX: _SMSC_TO_RX | _ANY_BOUND,
        BindState.BOUND_TRX: _SMSC_TO_RX | _ANY_BOUND,
        BindState.UNBINDING: frozenset(),
        BindState.CLOSED: frozenset(),
    },
}

# Requests we may send, by our role and the bind state.
WE_MAY_SEND: Final[dict[Role, dict[BindState, frozenset[p.CommandId]]]] = {
    Role.SMSC: {
        BindState.BOUND_RX: _SMSC_TO_RX | _ANY_BOUND,
        BindState.BOUND_TRX: _SMSC_TO_RX | _ANY_BOUND,
        BindState.BOUND_TX: _ANY_BOUND,
    },
    Role.ESME: {
        BindState.OPEN: _BINDS,
        BindState.BOUND_TX: _ESME_TX | _ANY_BOUND,
        BindState.BOUND_RX: _ANY_BOUND,
        BindState.BOUND_TRX: _ESME_TX | _ANY_BOUND,
    },
}

# enquire_link is answered in every state but CLOSED (SMPP-NOTES section 7).
_ALWAYS_ANSWERED: Final = frozenset({C.ENQUIRE_LINK})

# Requests the peer sends in some state, by our role. A request outside this is
# one the peer's role never sends (an ESME's deliver_sm, outbind or
# alert_notification; an SMSC's bind or submit_sm): ESME_RINVCMDID. Inside it,
# only the bind state is wrong: ESME_RINVBNDSTS.
PEER_MAY_EVER_SEND: Final[dict[Role, frozenset[p.CommandId]]] = {
    role: frozenset[p.CommandId]().union(*states.values()) | _ALWAYS_ANSWERED
    for role, states in PEER_MAY_SEND.items()
}

# Requests that have no response (SMPP 3.4 sections 4.1.7, 4.12.1): they are
# passed on, never answered, and never occupy the window.
_UNANSWERED: Final = frozenset({C.OUTBIND, C.ALERT_NOTIFICATION})

WINDOW_OVERRUN_MODES: Final = ("wait", "throttle")

# How many of our expired sequences to remember, so that their late responses
# are recognised as late rather than answered as strays.
_EXPIRED_MEMORY: Final = 1024


@dataclass(slots=True)
class Request:
    """A request from the peer that the application answers with `respond`."""

    pdu: p.Pdu


@dataclass(slots=True)
class Response:
    """The peer's response (or generic_nack) to one of our requests."""

    pdu: p.Pdu
    request: p.Pdu
    sent_at: float


@dataclass(slots=True)
class ProtocolError:
    """Something the session already answered or will close on; for logs and metrics."""

    status: int
    reason: str
    fatal: bool


@dataclass(slots=True)
class Unbound:
    """The session ended cleanly (unbind answered, or our unbind acknowledged)."""


Event = Request | Response | ProtocolError | Unbound


class WindowFull(Exception):
    pass


class NotAllowed(Exception):
    pass


class Session:
    def __init__(
        self,
        role: Role = Role.SMSC,
        *,
        window: int = 100,
        send_window: int = 10,
        max_pdu_length: int = 16384,
        window_overrun: str = "wait",
    ) -> None:
        """`window` bounds the peer's requests awaiting our answer, `send_window` ours.

        `window_overrun` says what a request over a full `window` meets: "wait"
        (stop decoding, `paused`, TCP backpressure) or "throttle" (an immediate
        ESME_RTHROTTLED response).
        """
        if window_overrun not in WINDOW_OVERRUN_MODES:
            raise ValueError(
                f"window_overrun {window_overrun!r}: one of {', '.join(WINDOW_OVERRUN_MODES)}"
            )
        self.role = role
        self.state = BindState.OPEN
        self.window = window
        self.send_window = send_window
        self.window_overrun = window_overrun
        self._throttle = window_overrun == "throttle"
        self.interface_version = p.SMPP_34
        self.bind_command: p.CommandId | None = None
        self._framer = Framer(max_pdu_length)
        self._out = bytearray()
        self._events: deque[Event] = deque()
        # Peer requests not yet answered, by sequence, with how many share it: a
        # peer may reuse a sequence before we answer, and each use gets its answer.
        self._peer_pending: dict[int, int] = {}
        self._peer_count = 0
        self._ours: dict[int, tuple[p.Pdu, float]] = {}
        self._expired: dict[int, None] = {}  # insertion-ordered, oldest first
        self._next_sequence = 1
        self._unbind_sequence: int | None = None
        self._allowed: int | None = None  # frames to decode before the caller says more
        self.must_close = False

    # --- bytes in ---------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self.state is not BindState.CLOSED:
            self._framer.feed(data)

    @property
    def paused(self) -> bool:
        """True while the peer's window is full in "wait" mode: stop reading from the socket."""
        return not self._throttle and self._peer_count >= self.window

    @property
    def buffered(self) -> int:
        return self._framer.buffered

    def allow_frames(self, count: int | None) -> None:
        """Decode at most `count` more frames (None: as many as arrive).

        One read from a socket may hold thousands of PDUs, and some (enquire_link,
        refusals) are answered here without an event: the allowance is how the
        caller keeps one peer's read to a share of its time. `next_event` returns
        None when it is spent; `backlog` then says that frames wait.
        """
        self._allowed = count

    @property
    def backlog(self) -> bool:
        """A whole frame waits, held back by the window or the allowance."""
        return self.state is not BindState.CLOSED and self._framer.complete

    @property
    def partial(self) -> bool:
        """True while the next PDU has begun to arrive but is not complete."""
        return self._framer.partial

    @property
    def frames(self) -> int:
        """PDUs framed so far; a change tells a new partial PDU from an old one."""
        return self._framer.frames

    @property
    def bytes_to_send(self) -> int:
        return len(self._out)

    def next_event(self) -> Event | None:
        while not self._events:
            if self.state is BindState.CLOSED or self.paused or self._allowed == 0:
                return None
            try:
                frame = self._framer.next_frame()
            except PduError as e:
                self._fatal(e)
                continue
            if frame is None:
                return None
            if self._allowed is not None:
                self._allowed -= 1
            self._handle_frame(frame)
        return self._events.popleft()

    def _fatal(self, error: PduError) -> None:
        # Framing is lost: nothing after this point can be trusted (SMPP-NOTES section 8).
        self._emit_pdu(p.GenericNack(status=error.status, sequence=error.sequence or 0))
        self._events.append(ProtocolError(error.status, str(error), fatal=True))
        self._close()

    def _handle_frame(self, frame: bytes) -> None:
        try:
            pdu = decode(frame)
        except PduError as e:
            self._reject_undecodable(e)
            return
        if pdu.is_response:
            self._handle_response(pdu)
        else:
            self._handle_request(pdu)

    def _reject_undecodable(self, error: PduError) -> None:
        command_id = error.command_id
        sequence = error.sequence or 0
        reason = str(error)
        if command_id is None or command_id not in p.PDU_CLASSES:
            # Unknown command_id: generic_nack echoing the sequence (SMPP-NOTES
            # section 3). One with the response bit expects no answer, so it gets
            # the nack only where that cannot pass for our answer to a request.
            if command_id is not None and command_id & p.RESPONSE_BIT:
                self._events.append(ProtocolError(error.status, reason, fatal=False))
            else:
                self._emit_pdu(p.GenericNack(status=error.status, sequence=sequence))
                self._events.append(ProtocolError(error.status, reason, fatal=False))
            return
        command = p.CommandId(command_id)
        if command_id & p.RESPONSE_BIT:
            # A malformed response: nobody waits for an answer to it, and the
            # request it answers, if any, stays ours until it expires.
            self._events.append(ProtocolError(error.status, reason, fatal=False))
            return
        if command not in _ALWAYS_ANSWERED and command not in PEER_MAY_SEND[self.role][self.state]:
            # The bind state decides before the body: a PDU refused for its state
            # is refused the same way whatever it holds.
            self._refuse(command, sequence)
            return
        if command in _BINDS:
            # A failed bind: bind_resp, then close (SMPP-NOTES section 8).
            self.must_close = True
        self._answer_at_once(command, sequence, error.status, reason)

    def _handle_request(self, pdu: p.Pdu) -> None:
        command = pdu.command_id
        if command in _ALWAYS_ANSWERED:
            self._emit_pdu(p.EnquireLinkResp(sequence=pdu.sequence))
            return
        if command not in PEER_MAY_SEND[self.role][self.state]:
            self._refuse(command, pdu.sequence)
            return
        if command == C.UNBIND:
            self._unbind_sequence = pdu.sequence
            self.state = BindState.UNBINDING
            self._maybe_finish_unbind()
            return
        if command in _UNANSWERED:
            self._events.append(Request(pdu))
            return
        if self._throttle and self._peer_count >= self.window:
            self._answer_at_once(
                command,
                pdu.sequence,
                p.CommandStatus.ESME_RTHROTTLED,
                f"{command.name} seq={pdu.sequence} over the window of {self.window}",
            )
            return
        if command in _BINDS:
            self.state = BindState.BINDING
            self.bind_command = command
            assert isinstance(pdu, p.BindTransmitter | p.BindReceiver | p.BindTransceiver)
            self.interface_version = pdu.interface_version
        pending = self._peer_pending
        pending[pdu.sequence] = pending.get(pdu.sequence, 0) + 1
        self._peer_count += 1
        self._events.append(Request(pdu))

    def _refuse(self, command: p.CommandId, sequence: int) -> None:
        if command not in PEER_MAY_EVER_SEND[self.role]:
            status = p.CommandStatus.ESME_RINVCMDID
            reason = f"{command.name} is never sent to an {self.role.name}"
        else:
            if command in _BINDS and self.state in BOUND:
                status = p.CommandStatus.ESME_RALYBND
            else:
                status = p.CommandStatus.ESME_RINVBNDSTS
            reason = f"{command.name} not allowed in {self.state.value}"
        self._answer_at_once(command, sequence, status, reason)

    def _answer_at_once(
        self, command: p.CommandId, sequence: int, status: int, reason: str
    ) -> None:
        """Answer a peer request ourselves: its own response, else generic_nack."""
        response = p.response_class(command)
        if response is None:
            self._emit_pdu(p.GenericNack(status=status, sequence=sequence))
        else:
            self._emit_pdu(response(status=status, sequence=sequence))
        self._events.append(ProtocolError(status, reason, fatal=False))

    def _handle_response(self, pdu: p.Pdu) -> None:
        sequence = pdu.sequence
        entry = self._ours.pop(sequence, None)
        if entry is not None and not _answers(pdu, entry[0]):
            # Right sequence, wrong command: not the answer to our request.
            self._ours[sequence] = entry
            entry = None
        if entry is None:
            status = p.CommandStatus.ESME_RINVCMDID
            reason = f"unexpected {pdu.command_id.name} seq={sequence}"
            if sequence in self._expired:
                # Late, not stray: the request was ours, we gave up on it.
                reason += " after it expired"
            # Reported, never nacked: a nack answers nothing the peer waits for,
            # and some clients (smpplib's default handler) raise on any nack.
            self._events.append(ProtocolError(status, reason, fatal=False))
            return
        request, sent_at = entry
        if self._unbind_sequence is not None:
            self._events.append(Response(pdu, request, sent_at))
            self._maybe_finish_unbind()
            return
        if pdu.command_id == C.UNBIND_RESP or request.command_id == C.UNBIND:
            self._events.append(Response(pdu, request, sent_at))
            self._close()
            self._events.append(Unbound())
            return
        if request.command_id in _BINDS:
            if pdu.status == p.CommandStatus.ESME_ROK and pdu.command_id != C.GENERIC_NACK:
                self.state = _BIND_STATE[request.command_id]
            else:
                self.state = BindState.OPEN
        self._events.append(Response(pdu, request, sent_at))

    # --- PDUs out -----------------------------------------------------------

    def respond(self, request: p.Pdu, response: p.Pdu) -> None:
        """Answer a request event; the response takes the request's sequence."""
        sequence = request.sequence
        pending = self._peer_pending
        uses = pending.get(sequence)
        if uses is None:
            raise NotAllowed(f"no pending request with sequence {sequence}")
        if uses == 1:
            del pending[sequence]
        else:
            pending[sequence] = uses - 1
        self._peer_count -= 1
        response.sequence = sequence
        if request.command_id in _BINDS:
            if response.status == p.CommandStatus.ESME_ROK:
                self.state = _BIND_STATE[request.command_id]
            else:
                # SMPP-NOTES section 8: after a failed bind, bind_resp then close.
                self.must_close = True
                self.state = BindState.OPEN
        self._emit_pdu(response)
        self._maybe_finish_unbind()

    def send_request(self, pdu: p.Pdu, now: float) -> int:
        """Queue one of our requests; returns the sequence number it got."""
        allowed = WE_MAY_SEND[self.role].get(self.state, frozenset())
        if pdu.command_id not in allowed:
            raise NotAllowed(f"{pdu.command_id.name} not allowed in {self.state.value}")
        if pdu.command_id not in _ANY_BOUND and len(self._ours) >= self.send_window:
            raise WindowFull()
        sequence = self._next_sequence
        # SMPP 3.4 section 3.2: 0x00000001..0x7FFFFFFF, then wrap.
        self._next_sequence = 1 if sequence >= 0x7FFFFFFF else sequence + 1
        pdu.sequence = sequence
        self._ours[sequence] = (pdu, now)
        if pdu.command_id in _BINDS:
            self.state = BindState.BINDING
            self.bind_command = pdu.command_id
        elif pdu.command_id == C.UNBIND:
            self.state = BindState.UNBINDING
        self._emit_pdu(pdu)
        return sequence

    @property
    def can_send(self) -> bool:
        return len(self._ours) < self.send_window

    @property
    def outstanding(self) -> int:
        return len(self._ours)

    @property
    def peer_outstanding(self) -> int:
        """The peer's requests waiting for our answer (what `window` bounds)."""
        return self._peer_count

    def outstanding_requests(self) -> Iterable[p.Pdu]:
        return [request for request, _ in self._ours.values()]

    def expire(self, now: float, timeout: float) -> list[p.Pdu]:
        """Give up on our requests older than `timeout`; returns them for retry."""
        expired = [seq for seq, (_, sent) in self._ours.items() if now - sent >= timeout]
        requests = [self._ours.pop(seq)[0] for seq in expired]
        if requests:
            remembered = self._expired
            for seq in expired:
                remembered.pop(seq, None)
                remembered[seq] = None
            while len(remembered) > _EXPIRED_MEMORY:
                del remembered[next(iter(remembered))]
            self._maybe_finish_unbind()
        return requests

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def close(self) -> list[p.Pdu]:
        """The connection is gone: returns our unanswered requests for retry."""
        pending = [request for request, _ in self._ours.values()]
        self._ours.clear()
        self._close()
        return pending

    # --- internals --------------------------------------------------------

    def _emit_pdu(self, pdu: p.Pdu) -> None:
        self._out += encode(pdu)

    def _maybe_finish_unbind(self) -> None:
        # Answer unbind once every request is settled both ways: a deliver_sm_resp that
        # the peer sends right after its unbind must still count, or its receipt would
        # be sent again on another session.
        if self._unbind_sequence is not None and not self._peer_count and not self._ours:
            self._emit_pdu(p.UnbindResp(sequence=self._unbind_sequence))
            self._unbind_sequence = None
            self._close()
            self._events.append(Unbound())

    def _close(self) -> None:
        self.state = BindState.CLOSED
        self.must_close = True


def _answers(response: p.Pdu, request: p.Pdu) -> bool:
    """Whether `response` is of a kind that answers `request` (its _resp or generic_nack)."""
    command = response.command_id
    return command == C.GENERIC_NACK or command == request.command_id | p.RESPONSE_BIT
