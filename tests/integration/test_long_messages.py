"""Long messages in parts, end to end: ESME -> gateway (a process) -> fake Common -> receipts.

Parts of 254 octets (SAR TLVs, as some client libraries cut) and UDH parts are
put back together and sent to Common as one message; every part gets its own
receipt; parts survive a restart while their siblings are missing; parts
whose siblings never come go on as segments or get REJECTD receipts.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.smpp import pdu as p
from gateway.smpp.receipts import parse_receipt_text
from tests.esme import Esme, submit
from tests.harness import (
    FakeCommonProcess,
    GatewayProcess,
    account_toml,
    cli,
    gateway_with_common,
    metric_value,
    wait_for_metric,
)

S = p.CommandStatus
TIMEOUT = 3.0

ACCOUNTS = (
    account_toml("parts", "pw", "main")
    + account_toml("always", "pw", "main", reassemble="always")
    + account_toml("never", "pw", "main", reassemble="never")
    + account_toml("upstream", "pw", "main", accept="upstream")
)


def sar(ref: int, total: int, seq: int) -> list[tuple[int, bytes]]:
    return [
        (p.Tag.SAR_MSG_REF_NUM, ref.to_bytes(2, "big")),
        (p.Tag.SAR_TOTAL_SEGMENTS, bytes([total])),
        (p.Tag.SAR_SEGMENT_SEQNUM, bytes([seq])),
    ]


def sar_parts(
    destination: str, octets: bytes, ref: int, size: int = 254, **fields: Any
) -> list[p.SubmitSm]:
    chunks = [octets[i : i + size] for i in range(0, len(octets), size)]
    return [
        submit(destination, chunk, tlvs=sar(ref, len(chunks), n), **fields)
        for n, chunk in enumerate(chunks, start=1)
    ]


def udh_part(destination: str, ref: int, total: int, seq: int, body: bytes, **fields: Any) -> Any:
    udh = bytes((0x05, 0x00, 0x03, ref, total, seq))
    return submit(destination, udh + body, esm_class=0x40, **fields)


def receipt_ids(receipts: list[p.DeliverSm]) -> dict[str, Any]:
    return {
        parse_receipt_text(r.short_message).message_id: parse_receipt_text(r.short_message)
        for r in receipts
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Any]]:
    directory = tmp_path_factory.mktemp("long")
    with gateway_with_common(
        directory,
        accounts=ACCOUNTS,
        smpp_extra=f"reassembly_timeout = {TIMEOUT}\n",
        fake_options={"keep_messages": True},
    ) as pair:
        yield pair


@pytest.fixture
def gateway(stack: tuple[GatewayProcess, FakeCommonProcess]) -> GatewayProcess:
    return stack[0]


@pytest.fixture
def fake(stack: tuple[GatewayProcess, FakeCommonProcess]) -> Iterator[FakeCommonProcess]:
    yield stack[1]
    stack[1].control({"result_rules": {}})


def test_254_octet_sar_parts_go_to_common_as_one_message(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    text = bytes(ord("a") + i % 26 for i in range(600))
    parts = sar_parts("4712300001", text, ref=0x1234)
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("parts", "pw").status == S.ESME_ROK
        # In an order of their own: the second part last.
        answers = {n: esme.request(parts[n - 1]) for n in (3, 1, 2)}
        assert {a.status for a in answers.values()} == {S.ESME_ROK}
        ids = {n: a.message_id for n, a in answers.items()}  # type: ignore[attr-defined]
        assert len(set(ids.values())) == 3
        receipts = receipt_ids(esme.receipts(3))
    (sent,) = fake.messages_to("+4712300001")
    assert sent["userData"] == text.decode()
    assert "userDataHeader" not in sent and sent.get("dcs", "TEXT") == "TEXT"
    assert set(receipts) == set(ids.values())
    # 600 GSM characters make 4 SMS of 153 at Common; each receipt counts the
    # SMS that carried some of its part: [0, 254) two, [254, 508) three, the rest one.
    counts = [
        (receipts[ids[n]].stat, receipts[ids[n]].sub, receipts[ids[n]].dlvrd) for n in (1, 2, 3)
    ]
    assert counts == [("DELIVRD", 2, 2), ("DELIVRD", 3, 3), ("DELIVRD", 1, 1)]
    merged = metric_value(
        gateway.metrics(), "smppgw_long_message_parts_total", account="parts", outcome="merged"
    )
    assert merged >= 3


def test_udh_parts_of_one_sms_each_still_go_one_by_one(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    # Well-formed segments under "oversized": today's behaviour, one request each.
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("parts", "pw").status == S.ESME_ROK
        for seq in (1, 2):
            assert esme.request(udh_part("4712300002", 7, 2, seq, b"x" * 150)).status == 0
        esme.receipts(2)
    sent = fake.messages_to("+4712300002")
    assert [m["userDataHeader"] for m in sent] == ["050003070201", "050003070202"]


def test_always_reassembles_udh_segments_and_keeps_binary_byte_for_byte(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    data = bytes(range(256)) + bytes(range(40))
    chunks = [data[:134], data[134:268], data[268:]]
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("always", "pw").status == S.ESME_ROK
        ids = []
        for seq, chunk in enumerate(chunks, start=1):
            pdu = udh_part("4712300003", 0x42, 3, seq, chunk, data_coding=4)
            answer = esme.request(pdu)
            assert answer.status == S.ESME_ROK
            ids.append(answer.message_id)  # type: ignore[attr-defined]
        receipts = receipt_ids(esme.receipts(3))
    (sent,) = fake.messages_to("+4712300003")
    assert (sent["dcs"], sent["userData"]) == ("BINARY", data.hex().upper())
    assert set(receipts) == set(ids)


def test_parts_of_an_upstream_account_are_answered_once_stored(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    # LINK never sees a part alone, so there is no LINK answer to wait for.
    text = b"u" * 400
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("upstream", "pw").status == S.ESME_ROK
        ids = []
        for pdu in sar_parts("4712300010", text, ref=88):
            answer = esme.request(pdu)
            assert answer.status == S.ESME_ROK
            ids.append(answer.message_id)  # type: ignore[attr-defined]
        receipts = receipt_ids(esme.receipts(2))
    (sent,) = fake.messages_to("+4712300010")
    assert sent["userData"] == text.decode()
    assert set(receipts) == set(ids)


def test_never_refuses_a_part_longer_than_one_sms(gateway: GatewayProcess) -> None:
    (first, _second) = sar_parts("4712300004", b"y" * 300, ref=9)
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("never", "pw").status == S.ESME_ROK
        assert esme.request(first).status == S.ESME_RINVMSGLEN


def test_a_failed_segment_fails_only_the_parts_it_carried(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    # Common reports 4 SMS; $0, the first, is not delivered: only the ESME's first
    # part, which it carried, gets UNDELIV ($1 carried the first and the second).
    fake.control({"result_rules": {"+4712300005$0": 1006}})
    text = b"z" * 600
    parts = sar_parts("4712300005", text, ref=77)
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("parts", "pw").status == S.ESME_ROK
        ids = [esme.request(pdu).message_id for pdu in parts]  # type: ignore[attr-defined]
        receipts = receipt_ids(esme.receipts(3))
    assert [(receipts[i].stat, receipts[i].sub, receipts[i].dlvrd) for i in ids] == [
        ("UNDELIV", 2, 1),
        ("DELIVRD", 3, 3),
        ("DELIVRD", 1, 1),
    ]


def test_missing_parts_time_out_into_rejectd_receipts(gateway: GatewayProcess) -> None:
    first, _second, third = sar_parts("4712300006", b"q" * 700, ref=5)
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("parts", "pw").status == S.ESME_ROK
        ids = [esme.request(pdu).message_id for pdu in (first, third)]  # type: ignore[attr-defined]
        wait_for_metric(gateway, "smppgw_long_message_parts_waiting", 2, timeout=5)
        # The operator sees them wait (`smpp-gateway queues`).
        shown = cli("queues", "--config", str(gateway.config), "--json")
        assert shown.returncode == 0, shown.stderr
        rows = {(q["queue"], q["account"]): q for q in json.loads(shown.stdout)["queues"]}
        assert rows[("mt_reassembling", "parts")]["count"] == 2
        receipts = receipt_ids(esme.receipts(2, timeout=TIMEOUT + 10))
    assert {(receipts[i].stat, receipts[i].err) for i in ids} == {("REJECTD", "998")}


def test_a_lone_last_part_that_fits_goes_on_as_a_segment_after_the_timeout(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("parts", "pw").status == S.ESME_ROK
        assert esme.request(udh_part("4712300007", 3, 3, 3, b"tail")).status == S.ESME_ROK
        (receipt,) = esme.receipts(1, timeout=TIMEOUT + 10)
    assert parse_receipt_text(receipt.short_message).stat == "DELIVRD"
    (sent,) = fake.messages_to("+4712300007")
    assert sent["userDataHeader"] == "050003030303"


def test_query_and_cancel_through_any_part(gateway: GatewayProcess) -> None:
    first, second, _third = sar_parts("4712300008", b"c" * 700, ref=11)
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("parts", "pw").status == S.ESME_ROK
        one = esme.request(first).message_id  # type: ignore[attr-defined]
        two = esme.request(second).message_id  # type: ignore[attr-defined]
        query = esme.request(p.QuerySm(message_id=two, source_addr="LINK", source_addr_ton=5))
        assert (query.status, query.message_state) == (0, p.MessageState.ENROUTE)  # type: ignore[attr-defined]
        cancel = esme.request(p.CancelSm(message_id=two, source_addr="LINK", source_addr_ton=5))
        assert cancel.status == S.ESME_ROK
        receipts = receipt_ids(esme.receipts(2))
        assert {(r.stat, r.err) for r in receipts.values()} == {("DELETED", "221")}
        assert set(receipts) == {one, two}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_parts_survive_a_restart(tmp_path: Path, sig: int) -> None:
    octets = b"r" * 500
    first, second = sar_parts("4712300009", octets, ref=21)
    with gateway_with_common(tmp_path, accounts=ACCOUNTS, fake_options={"keep_messages": True}) as (
        gateway,
        fake,
    ):
        with Esme(gateway.smpp_port) as esme:
            assert esme.bind("parts", "pw").status == S.ESME_ROK
            one = esme.request(first).message_id  # type: ignore[attr-defined]
        gateway.stop(sig)
        gateway.start()
        with Esme(gateway.smpp_port) as esme:
            assert esme.bind("parts", "pw").status == S.ESME_ROK
            two = esme.request(second).message_id  # type: ignore[attr-defined]
            receipts = receipt_ids(esme.receipts(2))
        (sent,) = fake.messages_to("+4712300009")
    assert sent["userData"] == octets.decode()
    assert set(receipts) == {one, two}
