"""Long messages in parts through the gateway's own flows, on a fake clock.

What the process tests (tests/integration/test_long_messages.py) cannot time:
the crash between the last part's commit and the whole message's, the timeout
to the tenth of a second, and what the whole message takes from which part.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.records import Body
from gateway.smpp import pdu as p
from gateway.smpp.receipts import parse_receipt_text
from gateway.smpp.times import rfc3339
from gateway.store.sqlite import SqliteStore
from tests.support.inprocess import Esme, InProcessGateway, delivery_report_body
from tests.support.records import message

S = p.CommandStatus
ACCOUNTS = (
    {"system_id": "shop1", "premium": {"tariff": 500, "currency": "NOK"}},
    {"system_id": "shop2", "reassemble": "always"},
    {"system_id": "shop3", "max_waiting_parts": 2},
)


def sar_part(ref: int, total: int, seq: int, text: str, **fields: Any) -> p.SubmitSm:
    values: dict[str, Any] = dict(
        source_addr_ton=5,
        source_addr="SHOP",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="4712345678",
        registered_delivery=1,
        short_message=text.encode(),
        tlvs=[
            (p.Tag.SAR_MSG_REF_NUM, ref.to_bytes(2, "big")),
            (p.Tag.SAR_TOTAL_SEGMENTS, bytes([total])),
            (p.Tag.SAR_SEGMENT_SEQNUM, bytes([seq])),
        ],
    )
    values.update(fields)
    return p.SubmitSm(**values)


def sent_texts(gateway: InProcessGateway) -> list[str]:
    """userData of every message sent to Common, alone or in a batch."""
    bodies = [r.body for r in gateway.common.requests]
    return [m["userData"] for b in bodies for m in b.get("sendRequestMessages", [b])]


def accepted(esme: Esme, pdu: p.SubmitSm) -> str:
    response = esme.request(pdu)
    assert isinstance(response, p.SubmitSmResp)
    assert response.status == S.ESME_ROK, hex(response.status)
    return response.message_id


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[InProcessGateway]:
    gw = InProcessGateway.build(tmp_path, *ACCOUNTS)
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def esme(gateway: InProcessGateway) -> Esme:
    client = Esme(gateway)
    assert client.bind().status == S.ESME_ROK
    return client


def test_the_whole_message_takes_the_first_parts_fields_and_the_tariff_once(
    gateway: InProcessGateway, esme: Esme
) -> None:
    # Kannel asks for a receipt on the first part only; the tariff goes once.
    second = accepted(esme, sar_part(3, 2, 2, "b" * 200, registered_delivery=0))
    first = accepted(esme, sar_part(3, 2, 1, "a" * 254, priority_flag=1))
    gateway.run(1.0)
    (sent,) = gateway.common.requests
    assert sent.body["userData"] == "a" * 254 + "b" * 200
    assert (sent.body["tariff"], sent.body["priority"]) == (500, "HIGH")
    assert "userDataHeader" not in sent.body and sent.body["dcs"] == "TEXT"
    (link_id,) = gateway.common.message_ids
    gateway.report(
        delivery_report_body(
            link_id,
            sent.body["refId"],
            1001,
            timestamp=rfc3339(gateway.reactor.seconds()),
            source="SHOP",
            destination="+4712345678",
        )
    )
    gateway.run(1.0)
    (receipt,) = esme.take(p.DeliverSm)
    assert parse_receipt_text(receipt.short_message).message_id == first  # type: ignore[attr-defined]
    assert second != first


def test_parts_complete_in_the_store_at_a_crash_are_merged_at_the_start(tmp_path: Path) -> None:
    # The last part was durable, the whole message not yet: the start merges.
    gateway = InProcessGateway.build(tmp_path, *ACCOUNTS)
    store = SqliteStore(
        gateway.reactor,
        gateway.config.store.path,
        synchronous=gateway.config.store.synchronous,
        checkpoint_interval=10.0**9,
    )
    gateway.result(store.open())
    parts = [
        message(
            f"p{seq}",
            connector="main",
            submitted_at=gateway.reactor.seconds(),
            expires_at=gateway.reactor.seconds() + 3600,
            body=Body(text=text, udh=bytes((5, 0, 3, 9, 2, seq))),
            esm_class=0x40,
        )
        for seq, text in ((2, "second half"), (1, "x" * 200))
    ]
    gateway.result(store.hold(parts))
    gateway.result(store.close())
    gateway.start()
    try:
        gateway.run(1.0)
        (sent,) = gateway.common.requests
        assert sent.body["userData"] == "x" * 200 + "second half"
        assert gateway.metric("smppgw_long_message_parts_total", account="shop1", outcome="merged")
    finally:
        gateway.stop()


def test_the_timeout_is_counted_from_the_first_part(gateway: InProcessGateway, esme: Esme) -> None:
    timeout = gateway.config.smpp.reassembly_timeout
    first = accepted(esme, sar_part(4, 3, 1, "c" * 254))
    gateway.run(timeout / 2)
    third = accepted(esme, sar_part(4, 3, 3, "d" * 10))
    gateway.run(timeout / 2 - 0.5)
    assert esme.take(p.DeliverSm) == []
    gateway.run(1.0)
    texts = [parse_receipt_text(d.short_message) for d in esme.take(p.DeliverSm)]
    assert {(t.message_id, t.stat, t.err) for t in texts} == {  # type: ignore[attr-defined]
        (first, "REJECTD", "998"),
        (third, "REJECTD", "998"),
    }
    assert gateway.common.requests == []
    assert (
        gateway.metric("smppgw_long_message_parts_total", account="shop1", outcome="rejected") == 2
    )


def test_always_sends_fitting_parts_as_segments_when_one_is_missing(
    gateway: InProcessGateway, esme: Esme
) -> None:
    client = Esme(gateway)
    assert client.bind("shop2").status == S.ESME_ROK
    accepted(client, sar_part(5, 3, 1, "e" * 150))
    accepted(client, sar_part(5, 3, 3, "f" * 20))
    gateway.run(gateway.config.smpp.reassembly_timeout + 1.0)
    (batch,) = gateway.common.requests
    sent = batch.body["sendRequestMessages"]
    assert [(b["userDataHeader"], b["userData"]) for b in sent] == [
        ("050003050301", "e" * 150),
        ("050003050303", "f" * 20),
    ]


def test_a_reused_reference_closes_the_waiting_message(
    gateway: InProcessGateway, esme: Esme
) -> None:
    old = accepted(esme, sar_part(6, 2, 1, "g" * 254))
    accepted(esme, sar_part(6, 2, 1, "h" * 254))  # another message, same reference
    gateway.run(1.0)
    (receipt,) = esme.take(p.DeliverSm)
    text = parse_receipt_text(receipt.short_message)
    assert (text.message_id, text.stat, text.err) == (old, "REJECTD", "998")  # type: ignore[attr-defined]


def test_held_parts_count_towards_the_accounts_queue(gateway: InProcessGateway) -> None:
    admission = gateway.admission
    assert admission.long.held("shop1") == 0
    client = Esme(gateway)
    assert client.bind().status == S.ESME_ROK
    accepted(client, sar_part(7, 2, 1, "i" * 254))
    assert admission.long.held("shop1") == 1
    assert gateway.metric("smppgw_long_message_parts_waiting") == 1


def test_an_account_may_keep_only_so_many_parts_waiting(gateway: InProcessGateway) -> None:
    client = Esme(gateway)
    assert client.bind("shop3").status == S.ESME_ROK
    accepted(client, sar_part(8, 3, 1, "j" * 254))
    accepted(client, sar_part(9, 3, 1, "k" * 254))
    refused = client.request(sar_part(10, 3, 1, "l" * 254))
    assert isinstance(refused, p.SubmitSmResp) and refused.status == S.ESME_RMSGQFUL
    # A copy of a waiting part would not complete anything: refused as well.
    copy = client.request(sar_part(9, 3, 1, "k" * 254))
    assert isinstance(copy, p.SubmitSmResp) and copy.status == S.ESME_RMSGQFUL
    # What goes on at once is not held back by the waiting ones, nor are the
    # missing parts of a waiting message.
    accepted(client, sar_part(11, 2, 1, "m" * 100))
    accepted(client, sar_part(8, 3, 2, "n" * 254))
    accepted(client, sar_part(8, 3, 3, "o" * 10))
    gateway.run(1.0)
    assert sorted(text[:1] for text in sent_texts(gateway)) == ["j", "m"]
    assert gateway.metric("smppgw_submits_total", account="shop3", outcome="queue_full") == 2
    assert gateway.admission.long.held("shop3") == 1
