"""One SMPP connection as a plain object: bytes in, events out; PDUs in, bytes out.

The session owns the bind state, the sequence numbers and both windows, and it
answers by itself whatever needs no application decision: enquire_link, PDUs
not allowed in the current state (ESME_RINVBNDSTS), undecodable PDUs (the
matching `*_resp` or generic_nack with the status the codec found), responses
to requests it never sent (dropped), and unbind (answered once every earlier
request from the peer has been answered, so that no response is lost).

Invariants:
- A request event is produced only when the bind state allows that command
  from the peer (the tables `PEER_MAY_SEND` below) and the peer's window has
  room; while `paused` is true the session holds buffered frames back, which
  is how the transport turns a full window into TCP backpressure.
- Every request from the peer gets exactly one response, from the session or
  through `respond`. The peer's unbind is answered last, once both its earlier
  requests and ours are settled (answered or expired).
- Our own requests carry sequence numbers from this session's counter and are
  tracked until their response arrives or `expire` gives them up.
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
    ) -> None:
        self.role = role
        self.state = BindState.OPEN
        self.window = window
        self.send_window = send_window
        self.interface_version = p.SMPP_34
        self.bind_command: p.CommandId | None = None
        self._framer = Framer(max_pdu_length)
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._peer_pending: set[int] = set()  # sequences of peer requests not yet answered
        self._ours: dict[int, tuple[p.Pdu, float]] = {}
        self._next_sequence = 1
        self._unbind_sequence: int | None = None
        self.must_close = False

    # --- bytes in ---------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self.state is not BindState.CLOSED:
            self._framer.feed(data)

    @property
    def paused(self) -> bool:
        """True while the peer's window is full: stop reading from the socket."""
        return len(self._peer_pending) >= self.window

    @property
    def buffered(self) -> int:
        return self._framer.buffered

    def next_event(self) -> Event | None:
        while not self._events:
            if self.state is BindState.CLOSED or self.paused:
                return None
            try:
                frame = self._framer.next_frame()
            except PduError as e:
                self._fatal(e)
                continue
            if frame is None:
                return None
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
        answer: p.Pdu
        response = p.response_class(command_id) if command_id is not None else None
        if response is not None and command_id in p.PDU_CLASSES:
            answer = response(status=error.status, sequence=error.sequence or 0)
        elif command_id is not None and command_id & p.RESPONSE_BIT:
            # A malformed response: nobody waits for an answer to it.
            self._events.append(ProtocolError(error.status, str(error), fatal=False))
            return
        else:
            answer = p.GenericNack(status=error.status, sequence=error.sequence or 0)
        self._emit_pdu(answer)
        self._events.append(ProtocolError(error.status, str(error), fatal=False))

    def _handle_request(self, pdu: p.Pdu) -> None:
        command = pdu.command_id
        if command in _ALWAYS_ANSWERED:
            self._emit_pdu(p.EnquireLinkResp(sequence=pdu.sequence))
            return
        if command not in PEER_MAY_SEND[self.role][self.state]:
            self._refuse(pdu)
            return
        if command in _BINDS:
            self.state = BindState.BINDING
            self.bind_command = command
            assert isinstance(pdu, p.BindTransmitter | p.BindReceiver | p.BindTransceiver)
            self.interface_version = pdu.interface_version
        elif command == C.UNBIND:
            self._unbind_sequence = pdu.sequence
            self.state = BindState.UNBINDING
            self._maybe_finish_unbind()
            return
        elif command == C.OUTBIND:
            self._events.append(Request(pdu))
            return
        self._peer_pending.add(pdu.sequence)
        self._events.append(Request(pdu))

    def _refuse(self, pdu: p.Pdu) -> None:
        command = pdu.command_id
        if command in _BINDS and self.state in BOUND:
            status = p.CommandStatus.ESME_RALYBND
        else:
            status = p.CommandStatus.ESME_RINVBNDSTS
        response = p.response_class(command)
        if response is None:
            self._emit_pdu(p.GenericNack(status=status, sequence=pdu.sequence))
        else:
            self._emit_pdu(response(status=status, sequence=pdu.sequence))
        self._events.append(
            ProtocolError(status, f"{command.name} not allowed in {self.state.value}", False)
        )

    def _handle_response(self, pdu: p.Pdu) -> None:
        entry = self._ours.pop(pdu.sequence, None)
        if entry is None:
            self._events.append(
                ProtocolError(
                    p.CommandStatus.ESME_RINVCMDID,
                    f"unexpected {pdu.command_id.name} seq={pdu.sequence}",
                    fatal=False,
                )
            )
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
        if request.sequence not in self._peer_pending:
            raise NotAllowed(f"no pending request with sequence {request.sequence}")
        self._peer_pending.discard(request.sequence)
        response.sequence = request.sequence
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
        return len(self._peer_pending)

    def outstanding_requests(self) -> Iterable[p.Pdu]:
        return [request for request, _ in self._ours.values()]

    def expire(self, now: float, timeout: float) -> list[p.Pdu]:
        """Give up on our requests older than `timeout`; returns them for retry."""
        expired = [seq for seq, (_, sent) in self._ours.items() if now - sent >= timeout]
        requests = [self._ours.pop(seq)[0] for seq in expired]
        if requests:
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
        if self._unbind_sequence is not None and not self._peer_pending and not self._ours:
            self._emit_pdu(p.UnbindResp(sequence=self._unbind_sequence))
            self._unbind_sequence = None
            self._close()
            self._events.append(Unbound())

    def _close(self) -> None:
        self.state = BindState.CLOSED
        self.must_close = True
