"""The gateway's MT and intake flows end to end, in one process, on a fake clock.

The parts are wired as gateway/tap.py wires them (tests/support/inprocess.py):
an ESME's SMPP connection is the server's own protocol on a StringTransport,
LINK Common is a twisted.web resource answering /sms/send and /sms/sendbatch as
seed 001 says, reached through treq's StubTreq; delivery reports are seed 001
callback bodies parsed by gateway/connectors/common/payloads.py. No sockets, no
subprocesses, no waiting for real time.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.smpp import pdu as p
from gateway.smpp.receipts import parse_receipt_text
from gateway.smpp.times import format_receipt_date, rfc3339
from gateway.store.base import MO_QUEUE
from tests.support.inprocess import (
    COMMON_PASSWORD,
    COMMON_USER,
    GATE_ID,
    PLATFORM_ID,
    PLATFORM_PARTNER_ID,
    Esme,
    InProcessGateway,
    delivery_report_body,
)
from tests.support.records import incoming_mo

S = p.CommandStatus
State = p.MessageState
TEXT = "Hello world"


def submit(text: str = TEXT, **fields: Any) -> p.SubmitSm:
    """submit_sm from the alphanumeric sender SHOP to +4712345678, receipt requested."""
    values: dict[str, Any] = dict(
        source_addr_ton=5,
        source_addr_npi=0,
        source_addr="SHOP",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="4712345678",
        registered_delivery=1,
        short_message=text.encode(),
    )
    values.update(fields)
    return p.SubmitSm(**values)


def submitted(esme: Esme, text: str = TEXT) -> str:
    """Submit one message; its id (the submit_sm_resp said ESME_ROK)."""
    response = esme.request(submit(text))
    assert isinstance(response, p.SubmitSmResp)
    assert response.status == S.ESME_ROK
    assert response.message_id
    return response.message_id


def query(esme: Esme, message_id: str) -> p.QuerySmResp:
    response = esme.request(p.QuerySm(message_id=message_id, source_addr="SHOP"))
    assert isinstance(response, p.QuerySmResp)
    return response


def receipts(esme: Esme) -> list[p.DeliverSm]:
    delivered = esme.take(p.DeliverSm)
    assert all(isinstance(d, p.DeliverSm) for d in delivered)
    return delivered  # type: ignore[return-value]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[InProcessGateway]:
    gw = InProcessGateway.build(
        tmp_path,
        {"system_id": "shop1", "mo_numbers": ["2270"]},
        {"system_id": "shop2"},
    )
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def esme(gateway: InProcessGateway) -> Esme:
    client = Esme(gateway)
    bound = client.bind()
    assert isinstance(bound, p.BindTransceiverResp)
    assert (bound.status, bound.system_id) == (S.ESME_ROK, "smppgw")
    return client


# --- (1) submit_sm -> Common -> delivery report -> receipt -------------------------------


def test_submit_goes_to_common_once_and_its_delivery_report_comes_back_as_a_receipt(
    gateway: InProcessGateway, esme: Esme
) -> None:
    submitted_at = gateway.reactor.seconds()
    message_id = submitted(esme)
    gateway.run(1.0)

    # Exactly one /sms/send, carrying seed 001's fields for this message.
    (sent,) = gateway.common.requests
    assert sent.path == "/sms/send"
    credentials = base64.b64encode(f"{COMMON_USER}:{COMMON_PASSWORD}".encode()).decode()
    assert sent.authorization == f"Basic {credentials}"
    assert sent.body == {
        "platformId": PLATFORM_ID,
        "platformPartnerId": PLATFORM_PARTNER_ID,
        "useDeliveryReport": True,
        "deliveryReportGates": [GATE_ID],
        "relativeValidityTime": 48 * 3600 * 1000,
        "source": "SHOP",
        "sourceTON": "ALPHANUMERIC",
        "destination": "+4712345678",
        "destinationTON": "MSISDN",
        "dcs": "TEXT",
        "userData": TEXT,
        "refId": message_id,
    }
    (link_id,) = gateway.common.message_ids
    assert gateway.metric("smppgw_upstream_messages_total", connector="main", outcome="accepted")
    assert query(esme, message_id).message_state == State.ENROUTE
    assert receipts(esme) == []

    # Common's report for it, a minute after the submission, read two minutes in.
    gateway.run(120.0)
    reported_at = submitted_at + 60
    gateway.report(
        delivery_report_body(
            link_id,
            message_id,
            1001,
            timestamp=rfc3339(reported_at),
            source="SHOP",
            destination="+4712345678",
        )
    )
    gateway.run(0.1)
    (receipt,) = receipts(esme)
    assert receipt.esm_class == p.ESM_CLASS_RECEIPT
    assert (receipt.source_addr, receipt.source_addr_ton, receipt.source_addr_npi) == (
        "4712345678",
        1,
        1,
    )
    assert (receipt.destination_addr, receipt.dest_addr_ton) == ("SHOP", 5)
    assert (
        receipt.short_message
        == (
            f"id:{message_id} sub:001 dlvrd:001 submit date:{format_receipt_date(submitted_at)}"
            f" done date:{format_receipt_date(reported_at)} stat:DELIVRD err:000 text:{TEXT}"
        ).encode()
    )
    parsed = parse_receipt_text(receipt.short_message)
    assert (parsed.message_id, parsed.stat, parsed.err) == (message_id, "DELIVRD", "000")
    assert receipt.tlv(p.Tag.RECEIPTED_MESSAGE_ID) == message_id.encode() + b"\0"
    assert receipt.tlv_int(p.Tag.MESSAGE_STATE) == State.DELIVERED

    esme.acknowledge(receipt)
    gateway.run(1.0)
    assert gateway.metric("smppgw_receipt_deliveries_total", outcome="ok") == 1
    final = query(esme, message_id)
    assert (final.message_state, final.error_code) == (State.DELIVERED, 0)
    assert final.final_date
    # Nothing waits anywhere: not the message, not its receipt; nor was it sent again.
    assert gateway.result(gateway.store.depths()) == []
    gateway.run(60.0)
    assert len(gateway.common.requests) == 1
    assert receipts(esme) == []


def test_a_report_that_overtakes_a_slow_answer_stops_the_message_from_going_again(
    gateway: InProcessGateway, esme: Esme
) -> None:
    # LINK took the message, but its answer is slow; the delivery report (which
    # carries our refId) comes first, then our request times out.
    gateway.common.hold = True
    message_id = submitted(esme)
    gateway.run(0.5)
    assert len(gateway.common.held) == 1
    gateway.report(
        delivery_report_body(
            "QC5BHHuqylsAAAFiQ08nX2ph",
            message_id,
            1001,
            timestamp=rfc3339(gateway.reactor.seconds()),
            source="SHOP",
            destination="+4712345678",
        )
    )
    gateway.run(0.1)
    (receipt,) = receipts(esme)
    assert parse_receipt_text(receipt.short_message).stat == "DELIVRD"
    esme.acknowledge(receipt)
    assert query(esme, message_id).message_state == State.DELIVERED
    gateway.common.hold = False
    gateway.run(60.0)  # past the client's timeout (5 s) and any retry
    # Delivered, by LINK's own word: sending it again would reach the handset twice.
    assert len(gateway.common.requests) == 1
    assert gateway.result(gateway.store.depths()) == []


def test_a_repeated_delivery_report_makes_no_second_receipt(
    gateway: InProcessGateway, esme: Esme
) -> None:
    message_id = submitted(esme)
    gateway.run(1.0)
    (link_id,) = gateway.common.message_ids
    body = delivery_report_body(
        link_id,
        message_id,
        1001,
        timestamp=rfc3339(gateway.reactor.seconds()),
        source="SHOP",
        destination="+4712345678",
    )
    gateway.report(body)
    gateway.report(body)  # LINK did not see our 200 and sends it again
    gateway.run(0.1)
    assert len(receipts(esme)) == 1
    assert gateway.metric("smppgw_reports_total", outcome="final") == 1
    assert gateway.metric("smppgw_reports_total", outcome="duplicate") == 1


# --- (2) Common refuses ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "answer", "err", "error_code"),
    [
        # resultCode 106 (quota exceeded) and no messageId in a 200: not taken, for good.
        (200, {"resultCode": 106, "description": "Quota exceeded"}, 949, 255),
        # An ErrorResponse: 106001 "Parse Error" is the request's content (COMMON_ERRORS).
        (400, {"resultCode": 106001, "description": "Parse Error"}, 127, 127),
    ],
)
def test_a_final_refusal_of_a_stored_message_is_a_rejectd_receipt_and_no_retry(
    gateway: InProcessGateway,
    esme: Esme,
    status: int,
    answer: dict[str, Any],
    err: int,
    error_code: int,
) -> None:
    gateway.common.answer_next(status, answer)
    message_id = submitted(esme)  # accept = "stored": ESME_ROK once stored
    gateway.run(1.0)
    (receipt,) = receipts(esme)
    parsed = parse_receipt_text(receipt.short_message)
    assert (parsed.message_id, parsed.stat, parsed.err) == (message_id, "REJECTD", f"{err:03d}")
    assert (parsed.sub, parsed.dlvrd) == (1, 0)
    assert receipt.tlv_int(p.Tag.MESSAGE_STATE) == State.REJECTED
    assert gateway.metric("smppgw_upstream_messages_total", connector="main", outcome="rejected")
    assert gateway.metric("smppgw_upstream_misconfiguration_total", connector="main") == 0
    esme.acknowledge(receipt)
    final = query(esme, message_id)
    assert (final.message_state, final.error_code) == (State.REJECTED, error_code)
    # Refused for good: never sent again, however long the retry schedule would run.
    gateway.run(120.0)
    assert len(gateway.common.requests) == 1
    assert gateway.result(gateway.store.depths()) == []


def test_a_batch_takes_each_messages_own_answer_by_ref_id(
    gateway: InProcessGateway, esme: Esme
) -> None:
    # Three submit_sm in one read go out as one /sms/sendbatch; Common refuses the
    # second (106, no messageId) and takes the others.
    gateway.common.refusals["+4712345671"] = 106
    for n in range(3):
        esme.send(submit(f"msg {n}", destination_addr=f"471234567{n}"))
    gateway.run(1.0)
    answers = esme.take(p.SubmitSmResp)
    assert [a.status for a in answers] == [S.ESME_ROK] * 3
    ids = [a.message_id for a in answers if isinstance(a, p.SubmitSmResp)]
    (batch,) = gateway.common.requests
    assert batch.path == "/sms/sendbatch"
    assert batch.body["ignoreResponse"] is False  # else seed 001 answers no messageIds
    items = batch.body["sendRequestMessages"]
    assert [(i["refId"], i["destination"], i["userData"]) for i in items] == [
        (ids[n], f"+471234567{n}", f"msg {n}") for n in range(3)
    ]
    assert {k: batch.body[k] for k in ("platformId", "platformPartnerId")} == {
        "platformId": PLATFORM_ID,
        "platformPartnerId": PLATFORM_PARTNER_ID,
    }
    # Only the refused one has its receipt now: REJECTD with 106's err.
    (receipt,) = receipts(esme)
    parsed = parse_receipt_text(receipt.short_message)
    assert (parsed.message_id, parsed.stat, parsed.err) == (ids[1], "REJECTD", "949")
    assert receipt.source_addr == "4712345671"
    esme.acknowledge(receipt)
    # The other two wait for their reports under the messageIds Common gave them.
    for n, link_id in zip((0, 2), gateway.common.message_ids, strict=True):
        gateway.report(
            delivery_report_body(
                link_id,
                ids[n],
                1001,
                timestamp=rfc3339(gateway.reactor.seconds()),
                source="SHOP",
                destination=f"+471234567{n}",
            )
        )
    gateway.run(0.1)
    delivered = [parse_receipt_text(r.short_message) for r in receipts(esme)]
    assert sorted((r.message_id, r.stat) for r in delivered) == [
        (ids[0], "DELIVRD"),
        (ids[2], "DELIVRD"),
    ]
    gateway.run(60.0)
    assert len(gateway.common.requests) == 1


def test_a_text_common_splits_is_final_once_every_part_is_reported(
    gateway: InProcessGateway, esme: Esme
) -> None:
    text = "x" * 200  # two SMS: Common splits it, and reports id$0 and id$1
    message_id = submitted(esme, text)
    gateway.run(1.0)
    (sent,) = gateway.common.requests
    assert (sent.body["dcs"], sent.body["userData"]) == ("TEXT", text)
    (link_id,) = gateway.common.message_ids

    def part(n: int, code: int) -> bytes:
        stamp = rfc3339(gateway.reactor.seconds())
        return delivery_report_body(
            f"{link_id}${n}",
            message_id,
            code,
            timestamp=stamp,
            source="SHOP",
            destination="+4712345678",
            segments=2,
        )

    gateway.report(part(0, 1001))
    gateway.run(0.1)
    assert receipts(esme) == []
    assert query(esme, message_id).message_state == State.ENROUTE
    gateway.report(part(1, 1004))  # the second part did not arrive
    gateway.run(0.1)
    (receipt,) = receipts(esme)
    parsed = parse_receipt_text(receipt.short_message)
    assert (parsed.message_id, parsed.stat, parsed.err) == (message_id, "UNDELIV", "222")
    assert (parsed.sub, parsed.dlvrd) == (2, 1)


def test_throttling_is_retried_with_the_same_ref_id_not_rejected(
    gateway: InProcessGateway, esme: Esme
) -> None:
    # resultCode 3 without a messageId: LINK asks us to slow down (SEND_REFUSALS).
    gateway.common.answer_next(200, {"resultCode": 3, "description": "Throttled"})
    message_id = submitted(esme)
    gateway.run(0.5)
    assert len(gateway.common.requests) == 1
    assert query(esme, message_id).message_state == State.ENROUTE
    gateway.run(2.0)  # sent again once the connector's pause (1 s without Retry-After) ends
    first, second = gateway.common.requests
    assert first.body == second.body
    assert second.body["refId"] == message_id
    # "Too fast" slows the connector down; it is not a failed attempt.
    assert (
        gateway.metric("smppgw_upstream_messages_total", connector="main", outcome="throttled") == 1
    )
    assert gateway.metric("smppgw_upstream_messages_total", connector="main", outcome="retry") == 0
    assert gateway.metric("smppgw_upstream_messages_total", connector="main", outcome="accepted")
    assert receipts(esme) == []  # accepted now: the receipt waits for LINK's report


def test_429_slows_the_connector_down_and_does_not_open_its_breaker(
    gateway: InProcessGateway, esme: Esme
) -> None:
    # More 429s in a row than the breaker's failures (5): LINK says "too fast".
    gateway.common.answer_next(
        429,
        {"resultCode": 3, "description": "Too many requests"},
        times=8,
        headers={"Retry-After": "2"},
    )
    message_id = submitted(esme)
    gateway.run(0.1)
    assert len(gateway.common.requests) == 1
    gateway.run(1.5)
    assert len(gateway.common.requests) == 1  # nothing inside Retry-After
    for _ in range(7):
        gateway.run(2.1)
    assert len(gateway.common.requests) == 9  # each after its Retry-After, then taken
    assert {r.body["refId"] for r in gateway.common.requests} == {message_id}
    breaker = gateway.router.breaker("main")
    assert breaker is not None and breaker.state == "closed"
    assert (
        gateway.metric(
            "smppgw_upstream_requests_total", connector="main", endpoint="send", outcome="throttled"
        )
        == 8
    )
    assert (
        gateway.metric("smppgw_upstream_messages_total", connector="main", outcome="throttled") == 8
    )
    assert gateway.metric("smppgw_upstream_messages_total", connector="main", outcome="retry") == 0
    assert gateway.metric("smppgw_upstream_rate_limit", connector="main") >= 1.0
    assert query(esme, message_id).message_state == State.ENROUTE


def test_503_in_a_row_opens_the_breaker_where_429_did_not(
    gateway: InProcessGateway, esme: Esme
) -> None:
    gateway.common.answer_next(503, times=50)
    submitted(esme)
    for _ in range(40):
        gateway.run(1.0)
    breaker = gateway.router.breaker("main")
    assert breaker is not None and breaker.state != "closed"
    assert gateway.metric("smppgw_upstream_rate_limit", connector="main") == 0.0


def test_the_rate_limit_after_429_grows_back_and_goes(
    gateway: InProcessGateway, esme: Esme
) -> None:
    gateway.common.answer_next(429, headers={"Retry-After": "1"})
    first = submitted(esme)
    gateway.run(0.1)
    limited = gateway.metric("smppgw_upstream_rate_limit", connector="main")
    assert limited >= 1.0
    gateway.run(1.5)
    assert gateway.common.requests[-1].body["refId"] == first
    # Quiet, answered traffic: the limit grows back, then is lifted (0).
    for _ in range(8):
        submitted(esme)
        gateway.run(6.0)
    assert gateway.metric("smppgw_upstream_rate_limit", connector="main") == 0.0


@pytest.mark.parametrize(
    ("status", "answer", "esme_status", "misconfigured"),
    [
        # Our platformId is wrong: the account's fault, alerted; RSYSERR so the ESME retries.
        (400, {"resultCode": 106200, "description": "Invalid platformId"}, S.ESME_RSYSERR, 1),
        # Quota exceeded, final, in a 200 without messageId: no status names it.
        (200, {"resultCode": 106, "description": "Quota exceeded"}, S.ESME_RSUBMITFAIL, 0),
        # Throttling: the status ESMEs slow down for.
        (200, {"resultCode": 3, "description": "Throttled"}, S.ESME_RTHROTTLED, 0),
        # Common in trouble: temporary, RSYSERR.
        (503, None, S.ESME_RSYSERR, 0),
    ],
)
def test_an_upstream_account_gets_commons_refusal_as_its_submit_sm_resp_status(
    tmp_path: Path,
    status: int,
    answer: dict[str, Any] | None,
    esme_status: int,
    misconfigured: int,
) -> None:
    gateway = InProcessGateway.build(tmp_path, {"system_id": "live", "accept": "upstream"})
    gateway.start()
    try:
        client = Esme(gateway)
        assert client.bind("live").status == S.ESME_ROK
        gateway.common.answer_next(status, answer)
        response = client.request(submit(), within=2.0)
        assert isinstance(response, p.SubmitSmResp)
        assert (response.status, response.message_id) == (esme_status, "")
        assert (
            gateway.metric("smppgw_upstream_misconfiguration_total", connector="main")
            == misconfigured
        )
        assert gateway.metric("smppgw_submits_total", account="live", outcome="refused") == 1
        # The ESME was told and resubmits if it wants: the gateway neither retries
        # this copy nor sends a receipt for it.
        gateway.run(120.0)
        assert len(gateway.common.requests) == 1
        assert receipts(client) == []
        assert gateway.result(gateway.store.depths()) == []
    finally:
        gateway.stop()


def test_an_upstream_account_gets_rok_with_the_id_once_common_took_the_message(
    tmp_path: Path,
) -> None:
    gateway = InProcessGateway.build(tmp_path, {"system_id": "live", "accept": "upstream"})
    gateway.start()
    try:
        client = Esme(gateway)
        assert client.bind("live").status == S.ESME_ROK
        response = client.request(submit(), within=2.0)
        assert isinstance(response, p.SubmitSmResp)
        assert response.status == S.ESME_ROK
        (sent,) = gateway.common.requests
        assert sent.body["refId"] == response.message_id
    finally:
        gateway.stop()


# --- (3) query_sm and cancel_sm while Common is unavailable ---------------------------------


def test_query_and_cancel_reach_a_message_queued_while_common_answers_503(
    gateway: InProcessGateway, esme: Esme
) -> None:
    gateway.common.answer_next(503, None, times=100)
    message_id = submitted(esme)
    gateway.run(0.5)
    assert len(gateway.common.requests) == 1  # tried, refused, queued for a retry
    queued = query(esme, message_id)
    assert (queued.message_id, queued.message_state) == (message_id, State.ENROUTE)
    assert (queued.final_date, queued.error_code) == ("", 0)

    # Another account knows nothing of it.
    other = Esme(gateway, host="192.0.2.8")
    assert other.bind("shop2").status == S.ESME_ROK
    assert query(other, message_id).status == S.ESME_RQUERYFAIL
    assert other.request(p.CancelSm(message_id=message_id)).status == S.ESME_RCANCELFAIL

    cancelled = esme.request(p.CancelSm(message_id=message_id, source_addr="SHOP"))
    assert cancelled.status == S.ESME_ROK
    gateway.run(0.1)
    (receipt,) = receipts(esme)
    parsed = parse_receipt_text(receipt.short_message)
    assert (parsed.message_id, parsed.stat, parsed.err) == (message_id, "DELETED", "221")
    esme.acknowledge(receipt)
    final = query(esme, message_id)
    assert (final.message_state, final.error_code) == (State.DELETED, 221)
    assert final.final_date
    # Cancelled is final: a second cancel fails, and the retry never goes out.
    assert esme.request(p.CancelSm(message_id=message_id)).status == S.ESME_RCANCELFAIL
    gateway.run(120.0)
    assert len(gateway.common.requests) == 1
    assert (
        gateway.metric(
            "smppgw_operations_total", account="shop1", command="cancel_sm", outcome="ok"
        )
        == 1
    )
    assert gateway.result(gateway.store.depths()) == []


def test_cancel_fails_while_the_request_hangs_and_works_once_it_timed_out(
    gateway: InProcessGateway, esme: Esme
) -> None:
    gateway.common.hold = True
    message_id = submitted(esme)
    gateway.run(0.5)
    assert len(gateway.common.held) == 1
    # In a request to LINK right now: LINK may take it, so it cannot be cancelled.
    assert query(esme, message_id).message_state == State.ENROUTE
    assert esme.request(p.CancelSm(message_id=message_id)).status == S.ESME_RCANCELFAIL

    # The client gives up at its timeout (5 s): temporary, the message waits for a retry.
    gateway.run(5.0)
    assert gateway.metric(
        "smppgw_upstream_requests_total", connector="main", endpoint="send", outcome="temporary"
    )
    assert esme.request(p.CancelSm(message_id=message_id)).status == S.ESME_ROK
    gateway.run(0.1)
    (receipt,) = receipts(esme)
    assert parse_receipt_text(receipt.short_message).stat == "DELETED"
    esme.acknowledge(receipt)
    # Common is back: the cancelled message does not go to it.
    gateway.common.hold = False
    gateway.run(120.0)
    assert len(gateway.common.requests) == 1
    assert receipts(esme) == []


# --- (4) MO -------------------------------------------------------------------------------


def test_an_mo_to_an_accounts_number_reaches_its_bound_esme_once(
    gateway: InProcessGateway, esme: Esme
) -> None:
    now = gateway.reactor.seconds()
    mo = incoming_mo("mo-1", connector="main", received_at=now)
    gateway.mo([mo])
    gateway.run(0.1)
    (deliver,) = receipts(esme)
    assert (deliver.source_addr, deliver.source_addr_ton, deliver.source_addr_npi) == (
        "4798765432",
        1,
        1,
    )
    assert (deliver.destination_addr, deliver.dest_addr_ton, deliver.dest_addr_npi) == (
        "2270",
        3,
        0,
    )
    assert (deliver.esm_class, deliver.data_coding, deliver.short_message) == (0, 0, b"HELLO")
    esme.acknowledge(deliver)
    gateway.run(0.1)
    assert gateway.metric("smppgw_mo_total", account="shop1", outcome="accepted") == 1
    assert gateway.metric("smppgw_receipt_deliveries_total", outcome="ok") == 1
    # LINK sends the same MO again: taken (it is durable), not delivered twice.
    gateway.mo([mo])
    gateway.run(1.0)
    assert receipts(esme) == []
    assert gateway.metric("smppgw_mo_total", account="shop1", outcome="duplicate") == 1
    assert gateway.result(gateway.store.depths()) == []


def test_an_mo_waits_in_the_store_until_its_account_binds(gateway: InProcessGateway) -> None:
    gateway.mo([incoming_mo("mo-2", received_at=gateway.reactor.seconds())])
    gateway.run(1.0)
    (waiting,) = gateway.result(gateway.store.depths())
    assert (waiting.kind, waiting.account, waiting.count) == (MO_QUEUE, "shop1", 1)
    late = Esme(gateway)
    assert late.bind().status == S.ESME_ROK
    gateway.run(0.1)
    (deliver,) = receipts(late)
    assert deliver.short_message == b"HELLO"


def test_an_mo_nobody_owns_is_dropped_counted_and_not_refused(
    gateway: InProcessGateway, esme: Esme
) -> None:
    # 9999 is no account's number and there is no [mo] default_account.
    gateway.mo([incoming_mo("mo-3", destination="9999", received_at=gateway.reactor.seconds())])
    # `mo` returned: the intake's Deferred succeeded, so LINK is answered 200 and
    # does not send it again.
    gateway.run(60.0)
    assert receipts(esme) == []
    assert gateway.metric("smppgw_mo_total", account="", outcome="unrouted") == 1
    assert gateway.metric("smppgw_mo_total", account="shop1", outcome="accepted") == 0
    assert gateway.result(gateway.store.depths()) == []
