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


@pytest.mark.parametrize("state", list(BindState))
@pytest.mark.parametrize(
    "command",
    [
        C.SUBMIT_SM,
        C.QUERY_SM,
        C.CANCEL_SM,
        C.REPLACE_SM,
        C.SUBMIT_MULTI,
        C.DATA_SM,
        C.DELIVER_SM,
        C.UNBIND,
        C.BIND_TRANSMITTER,
        C.ALERT_NOTIFICATION,
        C.OUTBIND,
    ],
)
def test_smsc_table_decides_what_reaches_the_application(state: BindState, command: C) -> None:
    session = Session(Role.SMSC)
    session.state = state
    pdu = p.PDU_CLASSES[command](sequence=9)
    got = feed(session, pdu)
    allowed = command in PEER_MAY_SEND[Role.SMSC][state]
    sent = replies(session)
    if state is BindState.CLOSED:
        assert got == [] and sent == []
    elif allowed and command != C.UNBIND:
        assert [type(e) for e in got] == [Request]
        assert sent == []
    elif allowed:
        assert got == [Unbound()] and isinstance(sent[0], p.UnbindResp)
    else:
        assert isinstance(got[0], ProtocolError)
        (refusal,) = sent
        expected = (
            S.ESME_RALYBND
            if command == C.BIND_TRANSMITTER and state in BOUND
            else S.ESME_RINVBNDSTS
        )
        assert refusal.status == expected and refusal.sequence == 9
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


_requests = st.sampled_from(
    [
        p.BindTransceiver,
        p.BindTransmitter,
        p.BindReceiver,
        p.SubmitSm,
        p.QuerySm,
        p.CancelSm,
        p.ReplaceSm,
        p.DataSm,
        p.EnquireLink,
        p.Unbind,
        p.DeliverSm,
        p.SubmitSmResp,
        p.GenericNack,
        p.Outbind,
        p.AlertNotification,
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(_requests, st.integers(0, 2**32 - 1)).map(
                lambda t: encode(t[0](sequence=t[1]))
            ),
            st.binary(max_size=40),
        ),
        max_size=25,
    ),
    st.booleans(),
)
def test_random_streams_never_raise_and_leave_a_defined_state(
    chunks: list[bytes], answer: bool
) -> None:
    session = Session(Role.SMSC, window=3)
    for chunk in chunks:
        session.receive_data(chunk)
        for event in events(session):
            assert isinstance(event, Request | ProtocolError | Unbound | Response)
            if answer and isinstance(event, Request):
                response_class = p.response_class(event.pdu.command_id)
                if response_class is not None:
                    session.respond(event.pdu, response_class())
        assert session.state in set(BindState)
        assert session.peer_outstanding <= 3
        replies(session)  # everything the session produced decodes


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
