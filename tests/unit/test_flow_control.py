"""Flow control of the Twisted shells, without sockets: gateway.transport.protocol
(SMPP) and gateway.http.server, on a fake clock and an in-memory transport.

What is checked: answers made while a read is being handled never recurse,
however many PDUs the read held; a peer that leaves our output unread stops
being read and is aborted after write_timeout; an unbound connection is aborted
at bind_timeout whatever is buffered; a partial PDU's deadline runs from its
first byte; a close in the middle of a read still sends the answers made before
it; one HTTP connection gets a bounded share of each reactor turn; and 100
(Continue) waits for the head to pass the screen.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from gateway.config import SmppSettings
from gateway.http.parser import HttpRequest, Response
from gateway.http.server import _PER_TURN, HttpServerFactory
from gateway.smpp import pdu as p
from gateway.smpp.codec import Framer, decode, encode
from gateway.smpp.session import ProtocolError, Request, Role
from gateway.transport.protocol import FRAMES_PER_TURN, SmppProtocol

S = p.CommandStatus


class Transport(StringTransport):
    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class Refusing:
    """An application that answers every submit_sm at once with an error, as the
    gateway does for a refused data_coding or an account over its rate (or, with
    `answering` False, answers nothing but binds)."""

    def __init__(self, link: SmppProtocol) -> None:
        self.link = link
        self.errors: list[ProtocolError] = []
        self.answering = True

    def event(self, event: Any) -> None:
        if isinstance(event, Request):
            pdu = event.pdu
            if isinstance(pdu, p.BindTransceiver):
                self.link.respond(pdu, p.BindTransceiverResp(system_id="gw"))
            elif self.answering:
                self.link.respond(pdu, p.SubmitSmResp(status=S.ESME_RTHROTTLED))
        elif isinstance(event, ProtocolError):
            self.errors.append(event)

    def closed(self) -> None:
        pass


def connect(**settings: Any) -> tuple[SmppProtocol, Transport, Clock]:
    clock = Clock()
    link = SmppProtocol(clock, SmppSettings(**settings), Role.SMSC, 10)
    link.handler = Refusing(link)
    transport = Transport(peerAddress=IPv4Address("TCP", "192.0.2.1", 40000))
    link.makeConnection(transport)
    return link, transport, clock


def pdus(data: bytes) -> list[p.Pdu]:
    framer = Framer(1 << 20)
    framer.feed(data)
    out = []
    while (frame := framer.next_frame()) is not None:
        out.append(decode(frame))
    return out


def bound(**settings: Any) -> tuple[SmppProtocol, Transport, Clock]:
    link, transport, clock = connect(**settings)
    link.dataReceived(encode(p.BindTransceiver(system_id="a", password="b", sequence=1)))
    transport.clear()
    return link, transport, clock


def submits(count: int, first: int = 100) -> bytes:
    out = b""
    for n in range(count):
        out += encode(p.SubmitSm(destination_addr="4799999999", sequence=first + n))
    return out


def test_thousands_of_refusals_in_one_read_all_get_their_answer() -> None:
    # Answered at once, each answer used to pump the session again from inside
    # the pump: past ~135 PDUs in one read, RecursionError and lost answers.
    link, transport, clock = bound(window=5000)
    link.dataReceived(submits(3000))
    clock.advance(0)  # the turns that take the rest of the read
    answers = pdus(transport.value())
    assert [a.sequence for a in answers] == list(range(100, 3100))
    assert {a.status for a in answers} == {S.ESME_RTHROTTLED}
    assert link.session.peer_outstanding == 0
    # And the session goes on.
    transport.clear()
    link.dataReceived(submits(1, first=5))
    assert [a.sequence for a in pdus(transport.value())] == [5]


def test_one_read_of_thousands_of_pdus_is_taken_a_share_per_reactor_turn() -> None:
    link, transport, clock = bound(window=5000)
    link.dataReceived(encode(p.EnquireLink(sequence=1)) * 1000)
    assert len(pdus(transport.value())) == FRAMES_PER_TURN
    # The rest waits, and the socket is not read, until the next turn.
    assert transport.producerState == "paused"
    assert link.session.backlog
    clock.advance(0)
    assert len(pdus(transport.value())) == 1000
    assert transport.producerState == "producing"


def test_a_peer_that_leaves_our_output_unread_stops_being_read_then_is_aborted() -> None:
    link, transport, clock = bound(write_timeout=30.0)
    assert transport.producer is link  # registered once the peer spoke
    # The transport's buffer passed its size: it pauses its producer (us).
    link.pauseProducing()
    assert transport.producerState == "paused"
    # What was already read waits in the session, unanswered while blocked.
    link.dataReceived(submits(3))
    assert pdus(transport.value()) == []
    clock.advance(29)
    assert not transport.disconnecting
    # It drained: the waiting PDUs are handled and reading resumes.
    link.resumeProducing()
    assert transport.producerState == "producing"
    assert len(pdus(transport.value())) == 3
    link.pauseProducing()
    clock.advance(30)
    assert transport.aborted


def test_blocked_writes_and_a_full_window_both_hold_reading() -> None:
    link, transport, _ = bound(window=2)
    handler = link.handler
    assert isinstance(handler, Refusing)
    handler.answering = False  # the window fills
    link.dataReceived(submits(2))
    assert transport.producerState == "paused"  # the window is full
    link.pauseProducing()
    handler.answering = True
    for request in (p.SubmitSm(sequence=100), p.SubmitSm(sequence=101)):
        link.respond(request, p.SubmitSmResp(status=S.ESME_RTHROTTLED))
    # The window has room again, but the peer still does not read: still paused.
    assert transport.producerState == "paused"
    link.resumeProducing()
    assert transport.producerState == "producing"


def test_an_unbound_connection_is_aborted_at_bind_timeout_whatever_is_buffered() -> None:
    link, transport, clock = connect(bind_timeout=5.0)
    link.dataReceived(encode(p.EnquireLink(sequence=1)) * 1000)
    link.pauseProducing()  # the client reads none of the answers
    clock.advance(5)
    assert transport.aborted


def test_a_graceful_close_that_cannot_finish_is_aborted_after_write_timeout() -> None:
    link, transport, clock = bound(write_timeout=10.0)
    link.close()
    assert transport.disconnecting and not transport.aborted
    assert transport.producer is None  # let go, or the transport would never close
    clock.advance(10)
    assert transport.aborted


def test_a_partial_pdu_must_be_complete_partial_pdu_timeout_after_its_first_byte() -> None:
    link, transport, clock = bound(partial_pdu_timeout=3.0, inactivity_timeout=0)
    pdu = encode(p.EnquireLink(sequence=9))
    # One byte a second: every byte is recent, but the PDU began 3 s ago.
    for byte in pdu[:4]:
        link.dataReceived(bytes([byte]))
        clock.advance(1)
    assert transport.disconnecting


def test_whole_pdus_arriving_slowly_are_not_partial() -> None:
    link, transport, clock = bound(partial_pdu_timeout=3.0, inactivity_timeout=0)
    pdu = encode(p.EnquireLink(sequence=9))
    link.dataReceived(pdu[:8])
    for _ in range(10):
        clock.advance(2)
        # Each read completes one PDU and starts the next: a new first byte each time.
        link.dataReceived(pdu[8:] + pdu[:8])
    assert not transport.disconnecting


# --- HTTP --------------------------------------------------------------------------


class Served:
    def __init__(self, **options: Any) -> None:
        self.clock = Clock()
        self.routed: list[bytes] = []

        def router(request: HttpRequest) -> Response:
            self.routed.append(request.path)
            return Response(200, b"ok")

        def screen(head: HttpRequest, peer: str) -> Response | None:
            if head.headers.get(b"authorization") != b"Basic good":
                return Response(401, b"no\n")
            return None

        self.factory = HttpServerFactory(
            self.clock, router, max_body=1024, screen=screen, **options
        )
        self.protocol = self.factory.buildProtocol(None)
        self.transport = Transport(peerAddress=IPv4Address("TCP", "192.0.2.2", 40000))
        self.protocol.makeConnection(self.transport)


GET = b"GET /x HTTP/1.1\r\nHost: gw\r\n\r\n"


def test_one_connection_gets_a_bounded_share_of_each_reactor_turn() -> None:
    served = Served()
    served.protocol.dataReceived(GET * 100)
    assert len(served.routed) == _PER_TURN
    # The rest waits, and the socket unread, for the next turns (a Clock runs
    # them all in one advance; the reactor runs one batch per turn).
    assert served.transport.producerState == "paused"
    assert len(served.clock.getDelayedCalls()) == 2  # the request timer and the next turn
    served.clock.advance(0)
    assert len(served.routed) == 100
    assert served.transport.producerState == "producing"
    assert served.transport.value().count(b"HTTP/1.1 200 ") == 100


def test_answers_left_unread_pause_the_connection_then_abort_it() -> None:
    served = Served(write_timeout=5.0)
    served.protocol.pauseProducing()  # the transport's buffer is full
    served.protocol.dataReceived(GET * 3)
    assert served.routed == []
    assert served.transport.producerState == "paused"
    served.protocol.resumeProducing()
    assert len(served.routed) == 3
    served.protocol.pauseProducing()
    served.clock.advance(5)
    assert served.transport.aborted


def test_100_continue_only_after_the_screen_passes() -> None:
    head = b"POST /cb HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
    refused = Served()
    refused.protocol.dataReceived(head + b"Authorization: Basic bad\r\n\r\n")
    answer = refused.transport.value()
    assert answer.startswith(b"HTTP/1.1 401 ") and b"100 Continue" not in answer
    assert refused.transport.disconnecting and refused.routed == []
    allowed = Served()
    allowed.protocol.dataReceived(head + b"Authorization: Basic good\r\n\r\n")
    assert allowed.transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    allowed.protocol.dataReceived(b"body")
    assert allowed.routed == [b"/cb"]


def test_a_head_of_bare_lf_lines_is_refused_at_once() -> None:
    served = Served()
    served.protocol.dataReceived(b"GET /x HTTP/1.1\nHost: gw\n\n")
    assert served.transport.value().startswith(b"HTTP/1.1 400 ")
    assert served.transport.disconnecting


def test_a_close_in_the_middle_of_a_read_sends_the_answers_made_before_it() -> None:
    # Shutdown: the unbind_resp that closes us can share a read with submit_sm the
    # ESME sent before it; their refusals were made in that pass and must go out.
    link, transport, _clock = bound()
    unbind = link.request(p.Unbind())
    unbind.addCallback(lambda _: link.close())
    (sent,) = pdus(transport.value())
    transport.clear()
    link.dataReceived(submits(3) + encode(p.UnbindResp(sequence=sent.sequence)))
    assert unbind.called
    assert [a.sequence for a in pdus(transport.value())] == [100, 101, 102]
    assert transport.disconnecting
