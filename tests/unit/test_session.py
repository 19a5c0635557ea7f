"""The sans-IO session: bind states, what each allows, windows, unbind, bad input.

An SMSC-role session and an ESME-role session are driven against each other in
memory, bytes out of one into the other, with no socket and no clock.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.smpp import pdu as p
from gateway.smpp.codec import decode, encode
from gateway.smpp.session import (
    BOUND,
    PEER_MAY_EVER_SEND,
    PEER_MAY_SEND,
    BindState,
    NotAllowed,
    ProtocolError,
    Request,
    Response,
    Role,
    Session,
    Unbound,
    WindowFull,
)
from tests.support.pdus import any_pdu

S = p.CommandStatus
C = p.CommandId


def events(session: Session) -> list[object]:
    out = []
    while (event := session.next_event()) is not None:
        out.append(event)
    return out


def replies(session: Session) -> list[p.Pdu]:
    """Decode everything the session wants to send."""
    data = session.data_to_send()
    pdus = []
    while data:
        (length,) = struct.unpack(">I", data[:4])
        pdus.append(decode(data[:length]))
        data = data[length:]
    return pdus


def feed(session: Session, *pdus: p.Pdu) -> list[object]:
    for pdu in pdus:
        session.receive_data(encode(pdu))
    return events(session)


def bound_smsc(bind: type[p.Pdu] = p.BindTransceiver, **kwargs: int) -> Session:
    smsc = Session(Role.SMSC, **kwargs)
    (request,) = feed(smsc, bind(sequence=1, system_id="a", password="b"))  # type: ignore[call-arg]
    assert isinstance(request, Request)
    response_class = p.response_class(request.pdu.command_id)
    assert response_class is not None
    smsc.respond(request.pdu, response_class())
    replies(smsc)
    return smsc


def test_esme_and_smsc_bind_submit_deliver_unbind_in_memory() -> None:
    esme, smsc = Session(Role.ESME), Session(Role.SMSC)

    def pump(a: Session, b: Session) -> list[object]:
        b.receive_data(a.data_to_send())
        return events(b)

    esme.send_request(p.BindTransceiver(system_id="shop", password="pw"), now=0)
    (bind,) = pump(esme, smsc)
    assert isinstance(bind, Request) and smsc.state is BindState.BINDING
    smsc.respond(bind.pdu, p.BindTransceiverResp(system_id="gw"))
    assert smsc.state is BindState.BOUND_TRX
    (bound,) = pump(smsc, esme)
    assert isinstance(bound, Response) and esme.state is BindState.BOUND_TRX

    esme.send_request(p.SubmitSm(destination_addr="4799", short_message=b"hi"), now=1)
    (submit,) = pump(esme, smsc)
    assert isinstance(submit, Request) and isinstance(submit.pdu, p.SubmitSm)
    smsc.respond(submit.pdu, p.SubmitSmResp(message_id="42"))
    (answer,) = pump(smsc, esme)
    assert isinstance(answer, Response) and answer.pdu.message_id == "42"  # type: ignore[attr-defined]
    assert answer.request.command_id == C.SUBMIT_SM and answer.sent_at == 1

    smsc.send_request(p.DeliverSm(esm_class=4, short_message=b"id:42"), now=2)
    (deliver,) = pump(smsc, esme)
    assert isinstance(deliver, Request)
    esme.respond(deliver.pdu, p.DeliverSmResp())
    (delivered,) = pump(esme, smsc)
    assert isinstance(delivered, Response) and smsc.outstanding == 0

    esme.send_request(p.Unbind(), now=3)
    assert pump(esme, smsc) == [Unbound()]
    assert smsc.state is BindState.CLOSED and smsc.must_close
    resp, unbound = pump(smsc, esme)
    assert isinstance(resp, Response) and unbound == Unbound()
    assert esme.state is BindState.CLOSED


REQUEST_COMMANDS = [command for command in C if not command & p.RESPONSE_BIT]


def sample(command: int, sequence: int = 9) -> p.Pdu:
    """A valid request of this command (submit_multi needs a destination)."""
    pdu = p.PDU_CLASSES[command](sequence=sequence)
    if isinstance(pdu, p.SubmitMulti):
        pdu.dest_addresses = [p.DestAddress(destination_addr="4799")]
    return pdu


def expected_refusal(role: Role, state: BindState, command: C) -> int:
    if command not in PEER_MAY_EVER_SEND[role]:
        return S.ESME_RINVCMDID
    if command in (C.BIND_TRANSMITTER, C.BIND_RECEIVER, C.BIND_TRANSCEIVER) and state in BOUND:
        return S.ESME_RALYBND
    return S.ESME_RINVBNDSTS


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("state", list(BindState))
@pytest.mark.parametrize("command", REQUEST_COMMANDS, ids=lambda c: c.name)
def test_table_decides_what_reaches_the_application(
    role: Role, state: BindState, command: C
) -> None:
    session = Session(role)
    session.state = state
    got = feed(session, sample(command))
    allowed = command in PEER_MAY_SEND[role][state]
    sent = replies(session)
    if state is BindState.CLOSED:
        assert got == [] and sent == []
    elif command == C.ENQUIRE_LINK:
        assert got == [] and [type(x) for x in sent] == [p.EnquireLinkResp]
    elif allowed and command != C.UNBIND:
        assert [type(e) for e in got] == [Request]
        assert sent == []
    elif allowed:
        assert got == [Unbound()] and isinstance(sent[0], p.UnbindResp)
    else:
        (error,) = got
        assert isinstance(error, ProtocolError) and not error.fatal
        (refusal,) = sent
        assert refusal.status == error.status == expected_refusal(role, state, command)
        assert refusal.sequence == 9
        response_class = p.response_class(command)
        assert type(refusal) is (response_class or p.GenericNack)


def test_tables_say_transmitters_submit_and_receivers_do_not() -> None:
    table = PEER_MAY_SEND[Role.SMSC]
    assert C.SUBMIT_SM in table[BindState.BOUND_TX] and C.SUBMIT_SM in table[BindState.BOUND_TRX]
    assert C.SUBMIT_SM not in table[BindState.BOUND_RX] and C.SUBMIT_SM not in table[BindState.OPEN]
    assert C.DELIVER_SM not in table[BindState.BOUND_TRX]  # only the SMSC sends deliver_sm


@pytest.mark.parametrize("state", list(BindState))
def test_enquire_link_is_answered_in_every_open_state(state: BindState) -> None:
    session = Session(Role.SMSC)
    session.state = state
    assert feed(session, p.EnquireLink(sequence=3)) == []
    sent = replies(session)
    if state is BindState.CLOSED:
        assert sent == []
    else:
        assert [type(x) for x in sent] == [p.EnquireLinkResp] and sent[0].sequence == 3


def test_failed_bind_answers_then_closes() -> None:
    session = Session(Role.SMSC)
    (request,) = feed(session, p.BindTransmitter(sequence=1))
    assert isinstance(request, Request)
    session.respond(request.pdu, p.BindTransmitterResp(status=S.ESME_RINVPASWD))
    assert session.must_close and session.state is BindState.OPEN
    (resp,) = replies(session)
    assert resp.status == S.ESME_RINVPASWD


def test_window_pauses_and_resumes() -> None:
    session = bound_smsc(window=2)
    session.receive_data(b"".join(encode(p.SubmitSm(sequence=10 + i)) for i in range(5)))
    first = events(session)
    assert len(first) == 2 and session.paused
    assert session.next_event() is None  # frames stay buffered while the window is full
    session.respond(first[0].pdu, p.SubmitSmResp(message_id="1"))  # type: ignore[attr-defined]
    assert not session.paused
    more = events(session)
    assert len(more) == 1 and session.paused
    assert [e.pdu.sequence for e in first + more] == [10, 11, 12]  # type: ignore[attr-defined]


def test_unbind_waits_for_earlier_requests_to_be_answered() -> None:
    session = bound_smsc()
    (submit,) = feed(session, p.SubmitSm(sequence=5))
    assert feed(session, p.Unbind(sequence=6)) == []
    assert session.state is BindState.UNBINDING and replies(session) == []
    session.respond(submit.pdu, p.SubmitSmResp(message_id="9"))  # type: ignore[attr-defined]
    answer, unbind_resp = replies(session)
    assert isinstance(answer, p.SubmitSmResp) and isinstance(unbind_resp, p.UnbindResp)
    assert unbind_resp.sequence == 6 and session.must_close
    assert events(session) == [Unbound()]


def test_our_window_and_sequence_numbers() -> None:
    session = bound_smsc(send_window=2)
    first = session.send_request(p.DeliverSm(), now=0)
    second = session.send_request(p.DeliverSm(), now=0)
    assert (first, second) == (1, 2) and not session.can_send
    with pytest.raises(WindowFull):
        session.send_request(p.DeliverSm(), now=0)
    session.send_request(p.EnquireLink(), now=0)  # liveness is never blocked by the window
    expired = session.expire(now=30, timeout=30)
    assert len(expired) == 3 and session.can_send


def test_sequence_wraps_after_the_spec_maximum() -> None:
    session = bound_smsc()
    session._next_sequence = 0x7FFFFFFF
    assert session.send_request(p.DeliverSm(), now=0) == 0x7FFFFFFF
    assert session.send_request(p.DeliverSm(), now=0) == 1


def test_we_may_not_send_deliver_sm_to_a_transmitter() -> None:
    session = bound_smsc(p.BindTransmitter)
    with pytest.raises(NotAllowed):
        session.send_request(p.DeliverSm(), now=0)


def test_unexpected_response_is_reported_not_raised() -> None:
    session = bound_smsc()
    (event,) = feed(session, p.DeliverSmResp(sequence=99))
    assert isinstance(event, ProtocolError) and not event.fatal


def test_response_to_unknown_sequence_and_respond_twice() -> None:
    session = bound_smsc()
    (request,) = feed(session, p.SubmitSm(sequence=5))
    session.respond(request.pdu, p.SubmitSmResp())  # type: ignore[attr-defined]
    with pytest.raises(NotAllowed):
        session.respond(request.pdu, p.SubmitSmResp())  # type: ignore[attr-defined]


def test_undecodable_request_gets_its_own_response_with_the_status() -> None:
    session = bound_smsc()
    bad = bytearray(encode(p.SubmitSm(sequence=7, short_message=b"hello")))
    bad[-6] = 200  # sm_length far beyond the body
    session.receive_data(bytes(bad))
    (event,) = events(session)
    assert isinstance(event, ProtocolError) and not event.fatal
    (resp,) = replies(session)
    assert isinstance(resp, p.SubmitSmResp) and resp.sequence == 7
    assert resp.status == S.ESME_RINVMSGLEN


def test_bad_command_length_is_fatal() -> None:
    session = bound_smsc()
    session.receive_data(struct.pack(">IIII", 12, 0x15, 0, 1))
    (event,) = events(session)
    assert isinstance(event, ProtocolError) and event.fatal
    assert session.state is BindState.CLOSED and session.must_close
    (nack,) = replies(session)
    assert isinstance(nack, p.GenericNack) and nack.status == S.ESME_RINVCMDLEN


def test_close_returns_our_unanswered_requests() -> None:
    session = bound_smsc()
    session.send_request(p.DeliverSm(short_message=b"r1"), now=0)
    pending = session.close()
    assert [x.short_message for x in pending] == [b"r1"]  # type: ignore[attr-defined]
    assert session.state is BindState.CLOSED


def test_unbind_waits_for_the_answer_to_our_outstanding_deliver_sm() -> None:
    session = bound_smsc()
    session.send_request(p.DeliverSm(short_message=b"receipt"), now=0)
    replies(session)
    assert feed(session, p.Unbind(sequence=40)) == []
    assert replies(session) == []  # not yet: our deliver_sm is still open
    response, unbound = feed(session, p.DeliverSmResp(sequence=1))
    assert isinstance(response, Response) and isinstance(response.pdu, p.DeliverSmResp)
    assert unbound == Unbound()
    (unbind_resp,) = replies(session)
    assert isinstance(unbind_resp, p.UnbindResp) and unbind_resp.sequence == 40


def test_unbind_answered_when_our_request_expires() -> None:
    session = bound_smsc()
    session.send_request(p.DeliverSm(), now=0)
    replies(session)
    feed(session, p.Unbind(sequence=41))
    assert len(session.expire(now=31, timeout=30)) == 1
    (unbind_resp,) = replies(session)
    assert isinstance(unbind_resp, p.UnbindResp) and session.must_close


# --- PDUs the peer's role never sends, and responses to nothing -----------------------


def bound_esme(bind: type[p.Pdu] = p.BindTransceiver, **kwargs: object) -> Session:
    esme = Session(Role.ESME, **kwargs)  # type: ignore[arg-type]
    sequence = esme.send_request(bind(system_id="a", password="b"), now=0)  # type: ignore[call-arg]
    response_class = p.response_class(bind.command_id)
    assert response_class is not None
    (response,) = feed(esme, response_class(sequence=sequence, system_id="SMSC"))  # type: ignore[call-arg]
    assert isinstance(response, Response) and esme.state in BOUND
    replies(esme)
    return esme


@pytest.mark.parametrize(
    ("pdu", "answer", "status"),
    [
        (p.Outbind(sequence=4, system_id="SMSC"), p.GenericNack, S.ESME_RINVCMDID),
        (p.AlertNotification(sequence=4, source_addr="1"), p.GenericNack, S.ESME_RINVCMDID),
        (p.DeliverSm(sequence=4, short_message=b"mo?"), p.DeliverSmResp, S.ESME_RINVCMDID),
        (p.BindTransceiver(sequence=4), p.BindTransceiverResp, S.ESME_RALYBND),
    ],
    ids=lambda v: getattr(v, "__name__", type(v).__name__),
)
def test_smsc_answers_what_an_esme_may_not_send(
    pdu: p.Pdu, answer: type[p.Pdu], status: int
) -> None:
    session = bound_smsc()
    (error,) = feed(session, pdu)
    assert isinstance(error, ProtocolError) and error.status == status and not error.fatal
    (sent,) = replies(session)
    assert type(sent) is answer and sent.status == status and sent.sequence == 4
    assert session.state is BindState.BOUND_TRX and session.peer_outstanding == 0


@pytest.mark.parametrize(
    ("pdu", "answer", "status"),
    [
        (p.BindTransmitter(sequence=4), p.BindTransmitterResp, S.ESME_RINVCMDID),
        (sample(C.SUBMIT_SM, 4), p.SubmitSmResp, S.ESME_RINVCMDID),
        (sample(C.SUBMIT_MULTI, 4), p.SubmitMultiResp, S.ESME_RINVCMDID),
        (sample(C.QUERY_SM, 4), p.QuerySmResp, S.ESME_RINVCMDID),
        (sample(C.CANCEL_SM, 4), p.CancelSmResp, S.ESME_RINVCMDID),
        (sample(C.REPLACE_SM, 4), p.ReplaceSmResp, S.ESME_RINVCMDID),
        (p.Outbind(sequence=4), p.GenericNack, S.ESME_RINVBNDSTS),
    ],
    ids=lambda v: getattr(v, "__name__", type(v).__name__),
)
def test_esme_answers_what_an_smsc_may_not_send(
    pdu: p.Pdu, answer: type[p.Pdu], status: int
) -> None:
    session = bound_esme()
    (error,) = feed(session, pdu)
    assert isinstance(error, ProtocolError) and error.status == status
    (sent,) = replies(session)
    assert type(sent) is answer and sent.status == status and sent.sequence == 4


def test_esme_bound_as_transmitter_refuses_deliver_sm_for_its_state() -> None:
    session = bound_esme(p.BindTransmitter)
    (error,) = feed(session, p.DeliverSm(sequence=6))
    assert isinstance(error, ProtocolError)
    (sent,) = replies(session)
    assert isinstance(sent, p.DeliverSmResp) and sent.status == S.ESME_RINVBNDSTS


def test_esme_takes_outbind_and_alert_notification_without_answering() -> None:
    session = Session(Role.ESME)
    (outbind,) = feed(session, p.Outbind(sequence=1, system_id="SMSC", password="pw"))
    assert isinstance(outbind, Request) and replies(session) == []
    session.send_request(p.BindReceiver(system_id="a"), now=0)
    replies(session)
    feed(session, p.BindReceiverResp(sequence=1, system_id="SMSC"))
    alert = p.AlertNotification(sequence=2, tlvs=[(p.Tag.MS_AVAILABILITY_STATUS, b"\x00")])
    (event,) = feed(session, alert)
    assert isinstance(event, Request) and event.pdu == alert
    # No response exists, so the alert takes no room in the window.
    assert replies(session) == [] and session.peer_outstanding == 0
    with pytest.raises(NotAllowed):
        session.respond(alert, p.GenericNack())


@pytest.mark.parametrize("role", list(Role))
def test_response_to_nothing_is_reported_not_nacked(role: Role) -> None:
    # A nack answers nothing the peer waits for, and smpplib's default handler
    # raises on any generic_nack: stray responses are only reported.
    session = bound_smsc() if role is Role.SMSC else bound_esme()
    (error,) = feed(session, p.SubmitSmResp(sequence=99, message_id="x"))
    assert isinstance(error, ProtocolError) and error.status == S.ESME_RINVCMDID
    assert replies(session) == []


def test_response_to_nothing_before_bind_is_reported() -> None:
    session = Session(Role.SMSC)
    (error,) = feed(session, p.EnquireLinkResp(sequence=3))
    assert isinstance(error, ProtocolError) and replies(session) == []
    assert session.state is BindState.OPEN


def test_generic_nack_to_nothing_is_not_nacked() -> None:
    session = bound_smsc()
    (error,) = feed(session, p.GenericNack(sequence=5, status=S.ESME_RINVCMDID))
    assert isinstance(error, ProtocolError)
    assert replies(session) == []  # two sessions like this one would nack each other forever


def test_stray_response_with_the_sequence_of_a_waiting_request_is_not_nacked() -> None:
    session = bound_smsc()
    (submit,) = feed(session, p.SubmitSm(sequence=7))
    (error,) = feed(session, p.DeliverSmResp(sequence=7))
    assert isinstance(error, ProtocolError)
    # A generic_nack 7 would end the peer's submit_sm 7 for it.
    assert replies(session) == []
    session.respond(submit.pdu, p.SubmitSmResp(message_id="1"))  # type: ignore[attr-defined]
    (resp,) = replies(session)
    assert isinstance(resp, p.SubmitSmResp) and resp.status == S.ESME_ROK


def test_late_response_after_expiry_is_reported_not_nacked() -> None:
    session = bound_smsc()
    sequence = session.send_request(p.DeliverSm(), now=0)
    replies(session)
    assert len(session.expire(now=60, timeout=30)) == 1
    (error,) = feed(session, p.DeliverSmResp(sequence=sequence))
    assert isinstance(error, ProtocolError) and "expired" in error.reason
    assert replies(session) == []


def test_response_of_the_wrong_command_does_not_settle_our_request() -> None:
    session = bound_smsc()
    sequence = session.send_request(p.DeliverSm(), now=0)
    replies(session)
    (error,) = feed(session, p.SubmitSmResp(sequence=sequence))
    assert isinstance(error, ProtocolError) and session.outstanding == 1
    assert replies(session) == []
    (response,) = feed(session, p.DeliverSmResp(sequence=sequence))
    assert isinstance(response, Response) and session.outstanding == 0


def test_generic_nack_settles_our_request() -> None:
    session = bound_smsc()
    sequence = session.send_request(p.DeliverSm(), now=0)
    (response,) = feed(session, p.GenericNack(sequence=sequence, status=S.ESME_RINVCMDID))
    assert isinstance(response, Response) and isinstance(response.pdu, p.GenericNack)
    assert session.outstanding == 0


# --- undecodable PDUs get their own response -------------------------------------------

# A bad TLV length after a valid body: the header and the body parse, the PDU does not.
BAD_TLV = struct.pack(">HH", p.Tag.SAR_MSG_REF_NUM, 1) + b"\x01"


def with_bad_tlv(pdu: p.Pdu) -> bytes:
    data = encode(pdu) + BAD_TLV
    return len(data).to_bytes(4, "big") + data[4:]


@pytest.mark.parametrize(
    "command",
    [C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM, C.QUERY_SM, C.CANCEL_SM, C.REPLACE_SM, C.UNBIND],
    ids=lambda c: c.name,
)
def test_smsc_answers_an_undecodable_request_with_its_own_response(command: C) -> None:
    session = bound_smsc()
    session.receive_data(with_bad_tlv(sample(command, 21)))
    (error,) = events(session)
    assert isinstance(error, ProtocolError) and error.status == S.ESME_RINVPARLEN
    (resp,) = replies(session)
    assert type(resp) is p.response_class(command)
    assert (resp.status, resp.sequence) == (S.ESME_RINVPARLEN, 21)
    assert session.state is BindState.BOUND_TRX and session.peer_outstanding == 0


@pytest.mark.parametrize("command", [C.DELIVER_SM, C.DATA_SM], ids=lambda c: c.name)
def test_esme_answers_an_undecodable_request_with_its_own_response(command: C) -> None:
    session = bound_esme()
    session.receive_data(with_bad_tlv(sample(command, 22)))
    (error,) = events(session)
    assert isinstance(error, ProtocolError)
    (resp,) = replies(session)
    assert type(resp) is p.response_class(command)
    assert (resp.status, resp.sequence) == (S.ESME_RINVPARLEN, 22)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"\x00\x01\x01\x31\x00" + b"\x00", S.ESME_RINVNUMDESTS),
        (b"\x00\x01\x01\x31\x00" + b"\x01\x07", S.ESME_RINVDESTFLAG),
        (b"\x00\x01\x01\x31\x00" + b"\x01\x02" + b"d" * 25, S.ESME_RINVDLNAME),
        (b"\x00\x01\x01" + b"1" * 30, S.ESME_RINVSRCADR),
    ],
)
def test_undecodable_submit_multi_gets_submit_multi_resp(body: bytes, status: int) -> None:
    session = bound_smsc()
    session.receive_data(struct.pack(">IIII", 16 + len(body), C.SUBMIT_MULTI, 0, 23) + body)
    (error,) = events(session)
    assert isinstance(error, ProtocolError) and error.status == status
    (resp,) = replies(session)
    assert isinstance(resp, p.SubmitMultiResp)
    assert (resp.status, resp.sequence) == (status, 23)


def test_undecodable_request_not_allowed_in_the_state_is_refused_for_the_state() -> None:
    session = Session(Role.SMSC)
    session.receive_data(with_bad_tlv(sample(C.SUBMIT_SM, 24)))
    (error,) = events(session)
    assert isinstance(error, ProtocolError) and error.status == S.ESME_RINVBNDSTS
    (resp,) = replies(session)
    assert isinstance(resp, p.SubmitSmResp) and resp.status == S.ESME_RINVBNDSTS


def test_undecodable_bind_is_a_failed_bind() -> None:
    session = Session(Role.SMSC)
    body = b"s" * 20 + b"\0pw\0\0\x34\x00\x00\0"
    session.receive_data(struct.pack(">IIII", 16 + len(body), C.BIND_TRANSCEIVER, 0, 1) + body)
    (error,) = events(session)
    assert isinstance(error, ProtocolError) and error.status == S.ESME_RINVSYSID
    (resp,) = replies(session)
    assert isinstance(resp, p.BindTransceiverResp) and resp.status == S.ESME_RINVSYSID
    assert session.must_close and session.state is BindState.OPEN


def test_undecodable_outbind_gets_generic_nack() -> None:
    session = Session(Role.ESME)
    session.receive_data(struct.pack(">IIII", 16 + 20, C.OUTBIND, 0, 2) + b"s" * 20)
    (error,) = events(session)
    assert isinstance(error, ProtocolError) and error.status == S.ESME_RINVSYSID
    (nack,) = replies(session)
    assert isinstance(nack, p.GenericNack) and (nack.status, nack.sequence) == (S.ESME_RINVSYSID, 2)


@pytest.mark.parametrize(
    ("command_id", "nacked"), [(0x00000042, True), (0x80000042, False), (0x80000102, False)]
)
def test_unknown_command_id_gets_generic_nack(command_id: int, nacked: bool) -> None:
    # An unknown request is nacked; an unknown response waits for no answer, so
    # it is only reported, like any stray response.
    session = bound_smsc()
    session.receive_data(struct.pack(">IIII", 16, command_id, 0, 777))
    (error,) = events(session)
    assert isinstance(error, ProtocolError) and error.status == S.ESME_RINVCMDID
    sent = replies(session)
    assert [(type(n), n.sequence) for n in sent] == ([(p.GenericNack, 777)] if nacked else [])
    assert session.state is BindState.BOUND_TRX


def test_malformed_response_is_reported_and_leaves_our_request_waiting() -> None:
    session = bound_smsc()
    sequence = session.send_request(p.DeliverSm(), now=0)
    replies(session)
    data = encode(p.DeliverSmResp(sequence=sequence)) + b"\x00\x01"
    session.receive_data(len(data).to_bytes(4, "big") + data[4:])
    (error,) = events(session)
    assert isinstance(error, ProtocolError) and error.status == S.ESME_RINVOPTPARSTREAM
    assert replies(session) == [] and session.outstanding == 1


@pytest.mark.parametrize("length", [0, 15, 4097, 0xFFFFFFFF])
def test_impossible_command_length_nacks_and_closes(length: int) -> None:
    session = bound_smsc(max_pdu_length=4096)
    session.receive_data(struct.pack(">IIII", length, C.SUBMIT_SM, 0, 12))
    (error,) = events(session)
    assert isinstance(error, ProtocolError) and error.fatal
    (nack,) = replies(session)
    assert isinstance(nack, p.GenericNack) and nack.status == S.ESME_RINVCMDLEN
    assert nack.sequence == 12 and session.state is BindState.CLOSED and session.must_close


# --- window overrun ------------------------------------------------------------------


def test_window_overrun_defaults_to_wait() -> None:
    session = bound_smsc(window=1)
    assert session.window_overrun == "wait"
    session.receive_data(encode(p.SubmitSm(sequence=1)) + encode(p.EnquireLink(sequence=2)))
    (request,) = events(session)
    assert session.paused and replies(session) == []  # even enquire_link waits in the framer
    session.respond(request.pdu, p.SubmitSmResp())  # type: ignore[attr-defined]
    assert events(session) == []
    assert [type(x) for x in replies(session)] == [p.SubmitSmResp, p.EnquireLinkResp]


def test_unknown_window_overrun_mode_is_refused() -> None:
    with pytest.raises(ValueError):
        Session(Role.SMSC, window_overrun="drop")


@pytest.mark.parametrize(
    "command",
    [C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM, C.QUERY_SM, C.CANCEL_SM, C.REPLACE_SM],
    ids=lambda c: c.name,
)
def test_throttle_answers_requests_over_the_window_at_once(command: C) -> None:
    session = bound_smsc(window=2, window_overrun="throttle")  # type: ignore[arg-type]
    session.receive_data(b"".join(encode(sample(command, 10 + i)) for i in range(5)))
    got = events(session)
    requests = [e for e in got if isinstance(e, Request)]
    errors = [e for e in got if isinstance(e, ProtocolError)]
    assert [e.pdu.sequence for e in requests] == [10, 11]
    assert [(e.status, e.fatal) for e in errors] == [(S.ESME_RTHROTTLED, False)] * 3
    assert not session.paused and session.peer_outstanding == 2
    throttled = replies(session)
    assert [(type(x), x.status, x.sequence) for x in throttled] == [
        (p.response_class(command), S.ESME_RTHROTTLED, sequence) for sequence in (12, 13, 14)
    ]
    session.respond(requests[0].pdu, p.response_class(command)())  # type: ignore[misc]
    (accepted,) = feed(session, sample(command, 15))
    assert isinstance(accepted, Request) and session.peer_outstanding == 2


def test_throttle_never_refuses_enquire_link_or_unbind() -> None:
    session = bound_smsc(window=1, window_overrun="throttle")  # type: ignore[arg-type]
    (submit,) = feed(session, p.SubmitSm(sequence=1))
    assert feed(session, p.EnquireLink(sequence=2)) == []
    (link,) = replies(session)
    assert isinstance(link, p.EnquireLinkResp) and link.status == S.ESME_ROK
    assert feed(session, p.Unbind(sequence=3)) == []
    assert replies(session) == []  # unbind waits for the submit_sm, it is not throttled
    session.respond(submit.pdu, p.SubmitSmResp())  # type: ignore[attr-defined]
    _, unbind_resp = replies(session)
    assert isinstance(unbind_resp, p.UnbindResp) and unbind_resp.status == S.ESME_ROK


def test_throttle_in_an_esme_session() -> None:
    session = bound_esme(window=1, window_overrun="throttle")
    (first,) = feed(session, p.DeliverSm(sequence=1))
    (error,) = feed(session, p.DeliverSm(sequence=2))
    assert isinstance(first, Request) and isinstance(error, ProtocolError)
    (resp,) = replies(session)
    assert isinstance(resp, p.DeliverSmResp) and resp.status == S.ESME_RTHROTTLED
    # alert_notification takes no room, so it is never throttled.
    (alert,) = feed(session, p.AlertNotification(sequence=3))
    assert isinstance(alert, Request) and replies(session) == []


def test_a_reused_sequence_gets_each_of_its_answers() -> None:
    session = bound_smsc()
    first, second = feed(session, p.SubmitSm(sequence=5), p.SubmitSm(sequence=5))
    assert session.peer_outstanding == 2
    session.respond(first.pdu, p.SubmitSmResp(message_id="1"))  # type: ignore[attr-defined]
    session.respond(second.pdu, p.SubmitSmResp(message_id="2"))  # type: ignore[attr-defined]
    assert [x.message_id for x in replies(session)] == ["1", "2"]  # type: ignore[attr-defined]
    assert session.peer_outstanding == 0
    with pytest.raises(NotAllowed):
        session.respond(first.pdu, p.SubmitSmResp())  # type: ignore[attr-defined]


# --- properties ---------------------------------------------------------------------

MODES = ["wait", "throttle"]
RESPONSE_TYPES = (Request, Response, ProtocolError, Unbound)


def check_invariants(session: Session) -> None:
    assert session.state in set(BindState)
    assert 0 <= session.peer_outstanding <= session.window
    assert session.peer_outstanding == sum(session._peer_pending.values())
    assert all(uses > 0 for uses in session._peer_pending.values())
    assert session.paused == (
        session.window_overrun == "wait" and session.peer_outstanding >= session.window
    )


def start(role: Role, mode: str, window: int, bind: bool) -> Session:
    if not bind:
        return Session(role, window=window, window_overrun=mode)
    if role is Role.SMSC:
        return bound_smsc(window=window, window_overrun=mode)  # type: ignore[arg-type]
    return bound_esme(window=window, window_overrun=mode)


def answer(session: Session, event: object, status: int = 0) -> None:
    if isinstance(event, Request):
        response_class = p.response_class(event.pdu.command_id)
        if response_class is not None:
            session.respond(event.pdu, response_class(status=status))


@settings(max_examples=200, deadline=None)
@given(
    role=st.sampled_from(list(Role)),
    mode=st.sampled_from(MODES),
    bind=st.booleans(),
    chunks=st.lists(
        st.one_of(
            any_pdu().map(encode),
            st.binary(max_size=40),
            st.tuples(st.sampled_from(REQUEST_COMMANDS), st.integers(0, 2**32 - 1)).map(
                lambda t: encode(sample(*t))
            ),
        ),
        max_size=25,
    ),
    respond=st.booleans(),
)
def test_random_streams_never_raise_and_leave_a_defined_state(
    role: Role, mode: str, bind: bool, chunks: list[bytes], respond: bool
) -> None:
    session = start(role, mode, 3, bind)
    for chunk in chunks:
        session.receive_data(chunk)
        for event in events(session):
            assert isinstance(event, RESPONSE_TYPES)
            if respond:
                answer(session, event)
        check_invariants(session)
        for sent in replies(session):  # everything the session produced decodes
            assert sent.is_response


@settings(max_examples=250, deadline=None)
@given(
    role=st.sampled_from(list(Role)),
    mode=st.sampled_from(MODES),
    bind=st.booleans(),
    pdus=st.lists(
        st.one_of(
            any_pdu(),
            st.tuples(st.sampled_from(REQUEST_COMMANDS), st.integers(0, 2**32 - 1)).map(
                lambda t: sample(*t)
            ),
        ),
        max_size=20,
    ),
    data=st.data(),
)
def test_every_request_gets_exactly_one_answer(
    role: Role, mode: str, bind: bool, pdus: list[p.Pdu], data: st.DataObject
) -> None:
    session = start(role, mode, 2, bind)
    for pdu in pdus:
        was_open = session.state is not BindState.CLOSED
        was_paused = session.paused
        session.receive_data(encode(pdu))
        got = events(session)
        for event in got:
            assert isinstance(event, RESPONSE_TYPES)
        # In throttle mode some requests stay unanswered, so the window fills.
        answered = mode == "wait" or data.draw(st.booleans())
        if answered:
            for event in got:
                answer(session, event)
        sent = replies(session)
        check_invariants(session)
        if not was_open or was_paused:
            assert sent == [] or was_paused
            continue
        ours = [x for x in sent if x.sequence == pdu.sequence]
        if pdu.is_response:
            # Answered only by a generic_nack, and a generic_nack never.
            assert all(isinstance(x, p.GenericNack) for x in ours)
            assert len(ours) <= (0 if isinstance(pdu, p.GenericNack) else 1)
            continue
        requests = [e for e in got if isinstance(e, Request)]
        if pdu.command_id in (C.OUTBIND, C.ALERT_NOTIFICATION):
            expected = 0 if requests else 1
        elif requests:
            # The application's answer, or none yet.
            expected = 1 if answered else 0
        else:
            expected = 1  # the session answered it itself
        answers = [x for x in ours if type(x) in (p.response_class(pdu.command_id), p.GenericNack)]
        if pdu.command_id == C.UNBIND and not got and session.state is BindState.UNBINDING:
            expected = 0  # accepted: answered once the requests before it are settled
        assert len(answers) == expected, (pdu, sent, got)


@settings(max_examples=150, deadline=None)
@given(
    role=st.sampled_from(list(Role)),
    mode=st.sampled_from(MODES),
    pdus=st.lists(any_pdu(), max_size=25),
    allowances=st.lists(st.integers(0, 5), min_size=1, max_size=30),
)
def test_an_allowance_only_delays_never_changes_what_happens(
    role: Role, mode: str, pdus: list[p.Pdu], allowances: list[int]
) -> None:
    """Frames held back by `allow_frames` are taken later, in order, with the same
    answers and events as a session that takes them all at once."""
    stream = b"".join(encode(pdu) for pdu in pdus)
    free, rationed = start(role, mode, 1000, True), start(role, mode, 1000, True)
    free.receive_data(stream)
    expected_events = [type(e).__name__ for e in events(free)]
    expected_bytes = free.data_to_send()
    rationed.receive_data(stream)
    got_events: list[str] = []
    got_bytes = b""
    for allowance in [*allowances, None]:  # None: the rest, as a last turn
        rationed.allow_frames(allowance)
        got_events += [type(e).__name__ for e in events(rationed)]
        got_bytes += rationed.data_to_send()
    assert got_events == expected_events
    assert got_bytes == expected_bytes
    assert not rationed.backlog
