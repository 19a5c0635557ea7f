"""query_sm, cancel_sm, replace_sm, submit_multi and data_sm against the real daemon.

One gateway and one fake Common serve the module; each test uses its own
destination numbers, so what the fake received can be told apart.
"""

from __future__ import annotations

import struct
import time
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
    gateway_with_common,
    metric_value,
)

S = p.CommandStatus
M = p.MessageState

ACCOUNTS = (
    account_toml("ops", "pw", "main")
    + account_toml("other", "pw", "main")
    + account_toml("legacy", "pw", "main", short_message_id="decimal")
    + account_toml("legacyhex", "pw", "main", short_message_id="hex")
    + account_toml("upmulti", "pw", "main", accept="upstream")
    + account_toml("premium", "pw", "main")
    + "[accounts.vendor_tlvs]\n"
    + '0x1401 = { field = "tariff" }\n'
    + '0x1402 = { field = "customParameters.campaign" }\n'
)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, FakeCommonProcess]]:
    with gateway_with_common(tmp_path_factory.mktemp("ops"), accounts=ACCOUNTS) as pair:
        pair[1].control({"keep_messages": True})
        yield pair


@pytest.fixture
def gateway(stack: tuple[GatewayProcess, FakeCommonProcess]) -> GatewayProcess:
    return stack[0]


@pytest.fixture
def fake(stack: tuple[GatewayProcess, FakeCommonProcess]) -> Iterator[FakeCommonProcess]:
    yield stack[1]
    stack[1].control({"down": False, "result_rules": {}, "permanent_errors": {}})


def receipts_of(
    esme: Esme, ids: set[str], count: int | None = None, timeout: float = 30.0
) -> list[p.DeliverSm]:
    """`count` (default: one each) receipts for `ids`, skipping other tests' receipts."""
    found: list[p.DeliverSm] = []
    deadline = time.monotonic() + timeout
    while len(found) < (count or len(ids)):
        (receipt,) = esme.receipts(1, timeout=max(deadline - time.monotonic(), 0.1))
        if parse_receipt_text(receipt.short_message).message_id in ids:
            found.append(receipt)
    return found


def bound(gateway: GatewayProcess, account: str = "ops", **bind: Any) -> Esme:
    esme = Esme(gateway.smpp_port)
    assert esme.bind(account, "pw", **bind).status == S.ESME_ROK
    return esme


def test_query_of_a_delivered_message(gateway: GatewayProcess, fake: FakeCommonProcess) -> None:
    with bound(gateway) as esme:
        message_id = esme.request(submit("4790000001")).message_id  # type: ignore[attr-defined]
        receipts_of(esme, {message_id})
        answer = esme.request(p.QuerySm(message_id=message_id, source_addr="LINK"))
    assert isinstance(answer, p.QuerySmResp) and answer.status == S.ESME_ROK
    assert answer.message_id == message_id
    assert answer.message_state == M.DELIVERED and answer.error_code == 0
    assert len(answer.final_date) == 16 and answer.final_date.endswith("+")


def test_query_of_a_queued_message_is_enroute(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    fake.control({"down": True})
    with bound(gateway) as esme:
        message_id = esme.request(submit("4790000002")).message_id  # type: ignore[attr-defined]
        answer = esme.request(p.QuerySm(message_id=message_id))
    assert isinstance(answer, p.QuerySmResp)
    assert (answer.status, answer.message_state, answer.final_date) == (S.ESME_ROK, M.ENROUTE, "")


def test_query_of_unknown_or_foreign_ids_fails(gateway: GatewayProcess) -> None:
    with bound(gateway, "other") as other:
        foreign = other.request(submit("4790000003")).message_id  # type: ignore[attr-defined]
    with bound(gateway) as esme:
        for message_id in (foreign, "123", ""):
            answer = esme.request(p.QuerySm(message_id=message_id))
            assert isinstance(answer, p.QuerySmResp) and answer.status == S.ESME_RQUERYFAIL


def test_cancel_of_a_queued_message(gateway: GatewayProcess, fake: FakeCommonProcess) -> None:
    fake.control({"down": True})
    with bound(gateway) as esme:
        message_id = esme.request(submit("4790000004")).message_id  # type: ignore[attr-defined]
        # While Common is down the message waits for its next attempt, except for the
        # few ms each attempt is in a request, when cancel_sm answers RCANCELFAIL
        # (by design: LINK may be taking it). An ESME tries again; so does the test.
        deadline = time.monotonic() + 5.0
        while True:
            cancel = esme.request(p.CancelSm(message_id=message_id, source_addr="LINK"))
            if cancel.status != S.ESME_RCANCELFAIL or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert cancel.status == S.ESME_ROK
        (receipt,) = receipts_of(esme, {message_id})
        parsed = parse_receipt_text(receipt.short_message)
        assert (parsed.stat, parsed.err) == ("DELETED", "221")
        answer = esme.request(p.QuerySm(message_id=message_id))
        assert isinstance(answer, p.QuerySmResp) and answer.message_state == M.DELETED
        fake.control({"down": False})
        # A message submitted after it overtakes nothing: when it arrives, the
        # cancelled one would have long gone too.
        later = esme.request(submit("4790000044")).message_id  # type: ignore[attr-defined]
        receipts_of(esme, {later})
        again = esme.request(p.CancelSm(message_id=message_id))
    assert again.status == S.ESME_RCANCELFAIL
    assert fake.messages_to("+4790000004") == []
    assert len(fake.messages_to("+4790000044")) == 1


def test_cancel_by_addresses_takes_every_queued_match(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    fake.control({"down": True})
    with bound(gateway) as esme:
        ids = [
            esme.request(submit("4790000005", registered_delivery=0)).message_id  # type: ignore[attr-defined]
            for _ in range(2)
        ]
        kept = esme.request(submit("4790000055", registered_delivery=0)).message_id  # type: ignore[attr-defined]
        cancel = esme.request(p.CancelSm(source_addr="LINK", destination_addr="4790000005"))
        assert cancel.status == S.ESME_ROK
        states = [
            esme.request(p.QuerySm(message_id=i)).message_state  # type: ignore[attr-defined]
            for i in (*ids, kept)
        ]
    assert states == [M.DELETED, M.DELETED, M.ENROUTE]


def test_cancel_of_a_delivered_or_foreign_message_fails(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    with bound(gateway, "other") as other:
        fake.control({"down": True})
        foreign = other.request(submit("4790000006")).message_id  # type: ignore[attr-defined]
        with bound(gateway) as esme:
            assert esme.request(p.CancelSm(message_id=foreign)).status == S.ESME_RCANCELFAIL
            fake.control({"down": False})
            delivered = esme.request(submit("4790000066")).message_id  # type: ignore[attr-defined]
            receipts_of(esme, {delivered})
            assert esme.request(p.CancelSm(message_id=delivered)).status == S.ESME_RCANCELFAIL
        receipts_of(other, {foreign})


def test_replace_of_a_queued_message(gateway: GatewayProcess, fake: FakeCommonProcess) -> None:
    fake.control({"down": True})
    with bound(gateway) as esme:
        message_id = esme.request(submit("4790000007", b"old text")).message_id  # type: ignore[attr-defined]
        # As for cancel_sm above: during the few ms an attempt is in a request,
        # replace_sm answers RREPLACEFAIL by design; an ESME tries again.
        deadline = time.monotonic() + 5.0
        while True:
            replace = esme.request(
                p.ReplaceSm(
                    message_id=message_id,
                    source_addr="LINK",
                    registered_delivery=1,
                    short_message=b"new text \x1b\x65",  # GSM 03.38: 1B 65 is the euro sign
                )
            )
            if replace.status != S.ESME_RREPLACEFAIL or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert replace.status == S.ESME_ROK
        fake.control({"down": False})
        (receipt,) = receipts_of(esme, {message_id})
        unknown = esme.request(p.ReplaceSm(message_id="42", short_message=b"x"))
    assert unknown.status == S.ESME_RREPLACEFAIL
    (sent,) = fake.messages_to("+4790000007")
    assert sent["userData"] == "new text \u20ac" and sent["refId"] == message_id
    assert parse_receipt_text(receipt.short_message).text.startswith("new text")


def test_submit_multi_fans_out_under_one_id(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    pdu = p.SubmitMulti(
        source_addr_ton=5,
        source_addr="LINK",
        registered_delivery=1,
        short_message=b"to many",
        dest_addresses=[
            p.DestAddress(dest_addr_ton=1, dest_addr_npi=1, destination_addr="4790000008"),
            p.DestAddress(dest_addr_ton=1, dest_addr_npi=1, destination_addr="4790000009"),
            p.DestAddress(dest_addr_ton=1, dest_addr_npi=1, destination_addr="47x"),
            p.DestAddress(dest_flag=2, dl_name="friends"),
        ],
    )
    with bound(gateway) as esme:
        answer = esme.request(pdu)
        assert isinstance(answer, p.SubmitMultiResp) and answer.status == S.ESME_ROK
        receipts = receipts_of(esme, {answer.message_id}, 2)
        query = esme.request(p.QuerySm(message_id=answer.message_id))
    failed = {(u.destination_addr, u.error_status_code) for u in answer.unsuccess_smes}
    assert failed == {("47x", S.ESME_RINVDSTADR), ("friends", S.ESME_RINVDLNAME)}
    assert {r.source_addr for r in receipts} == {"4790000008", "4790000009"}
    assert {parse_receipt_text(r.short_message).message_id for r in receipts} == {answer.message_id}
    assert isinstance(query, p.QuerySmResp) and query.message_state == M.DELIVERED
    refs = [fake.messages_to(f"+479000000{n}")[0]["refId"] for n in (8, 9)]
    assert len(set(refs)) == 2 and answer.message_id in refs


def test_submit_multi_limits(gateway: GatewayProcess) -> None:
    # Our encoder refuses to write number_of_dests 0, so the PDU is written by hand.
    body = (
        b"\0"  # service_type
        + b"\x05\x00LINK\0"  # source ton, npi, addr
        + b"\x00"  # number_of_dests
        + b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
        + b"\0\0"  # schedule_delivery_time, validity_period
        + b"\x00\x00\x00\x00"  # registered_delivery, replace_if_present, data_coding, default id
        + b"\x01x"  # sm_length, short_message
    )
    header = struct.pack(">IIII", 16 + len(body), p.CommandId.SUBMIT_MULTI, 0, 77)
    with bound(gateway) as esme:
        esme.send_raw(header + body)
        empty = esme.receive(lambda r: r.sequence == 77, 10)
        assert isinstance(empty, p.SubmitMultiResp)
        only_lists = esme.request(
            p.SubmitMulti(
                source_addr="LINK",
                short_message=b"x",
                dest_addresses=[p.DestAddress(dest_flag=2, dl_name="all")],
            )
        )
    assert empty.status == S.ESME_RINVNUMDESTS
    assert only_lists.status == S.ESME_RINVDLNAME


def test_submit_multi_upstream_answers_per_destination(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    fake.control({"permanent_errors": {"+4790000011": 2104}})
    pdu = p.SubmitMulti(
        source_addr_ton=5,
        source_addr="LINK",
        short_message=b"upstream",
        dest_addresses=[
            p.DestAddress(dest_addr_ton=1, destination_addr="4790000010"),
            p.DestAddress(dest_addr_ton=1, destination_addr="4790000011"),
        ],
    )
    with bound(gateway, "upmulti") as esme:
        answer = esme.request(pdu)
    assert isinstance(answer, p.SubmitMultiResp) and answer.status == S.ESME_ROK
    assert [(u.destination_addr, u.error_status_code) for u in answer.unsuccess_smes] == [
        ("4790000011", S.ESME_RINVDSTADR)
    ]


def test_data_sm_is_taken_like_submit_sm(gateway: GatewayProcess, fake: FakeCommonProcess) -> None:
    pdu = p.DataSm(
        source_addr_ton=5,
        source_addr="LINK",
        dest_addr_ton=1,
        destination_addr="4790000012",
        registered_delivery=1,
        tlvs=[(p.Tag.MESSAGE_PAYLOAD, b"data sm text"), (p.Tag.QOS_TIME_TO_LIVE, b"\0\0\x0e\x10")],
    )
    with bound(gateway) as esme:
        answer = esme.request(pdu)
        assert isinstance(answer, p.DataSmResp) and answer.status == S.ESME_ROK
        receipts_of(esme, {answer.message_id})
    (sent,) = fake.messages_to("+4790000012")
    assert sent["userData"] == "data sm text"


@pytest.mark.parametrize(("account", "base"), [("legacy", 10), ("legacyhex", 16)])
def test_short_ids_for_33_binds(gateway: GatewayProcess, account: str, base: int) -> None:
    with bound(gateway, account, interface_version=0x33) as esme:
        ids = [
            esme.request(submit(f"47900001{n}{base}")).message_id  # type: ignore[attr-defined]
            for n in range(3)
        ]
        receipts = receipts_of(esme, set(ids))
        query = esme.request(p.QuerySm(message_id=ids[0]))
    assert all(len(i) == 8 and int(i, base) and i[0] != "0" for i in ids)
    assert len(set(ids)) == 3
    assert {parse_receipt_text(r.short_message).message_id for r in receipts} == set(ids)
    assert all(r.tlvs == [] for r in receipts)
    assert query.status == S.ESME_ROK
    # The same account bound as 3.4 gets its usual long ids.
    with bound(gateway, account) as esme:
        assert len(esme.request(submit("4790000199")).message_id) > 8  # type: ignore[attr-defined]


def test_unknown_tlvs_are_kept_ignored_and_counted(gateway: GatewayProcess) -> None:
    def count() -> float:
        return metric_value(gateway.metrics(), "smppgw_unknown_tlvs_total", command="submit_sm")

    before = count()
    with bound(gateway) as esme:
        pdu = submit("4790000013", tlvs=[(0x4001, b"\1\2"), (0x1600, b"vendor")])
        assert esme.request(pdu).status == S.ESME_ROK
    deadline = time.monotonic() + 5
    while count() < before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count() == before + 2


def test_window_overrun_throttle_answers_at_once(tmp_path: Path) -> None:
    # "throttle": requests over a full window get ESME_RTHROTTLED instead of
    # waiting in the socket; the fake Common is slow, so the window stays full.
    with gateway_with_common(
        tmp_path,
        accounts=account_toml("burst", "pw", "main", accept="upstream"),
        smpp_extra='window = 2\nwindow_overrun = "throttle"\n',
    ) as (gateway, fake):
        fake.control({"response_delay": 1.0})
        with bound(gateway, "burst") as esme:
            sequences = [esme.send(submit(f"47900003{n:02d}")) for n in range(6)]
            answers = [esme.receive(lambda r, s=s: r.sequence == s, 15) for s in sequences]
        statuses = [a.status for a in answers]
        assert statuses.count(S.ESME_ROK) == 2
        assert statuses.count(S.ESME_RTHROTTLED) == 4
        errors = metric_value(gateway.metrics(), "smppgw_protocol_errors_total", status="0x58")
        assert errors == 4


def test_vendor_tlvs_become_premium_fields(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    tlvs = [(0x1401, b"\x00\x00\x01\xf4"), (0x1402, b"spring\0")]
    with bound(gateway, "premium") as esme:
        assert esme.request(submit("4790000014", tlvs=tlvs)).status == S.ESME_ROK
        bad = esme.request(submit("4790000015", tlvs=[(0x1401, b"\x01\x02\x03")]))
    assert bad.status == S.ESME_RINVOPTPARAMVAL
    deadline = time.monotonic() + 10
    while not (sent := fake.messages_to("+4790000014")) and time.monotonic() < deadline:
        time.sleep(0.05)
    (message,) = sent
    assert message["tariff"] == 500 and message["customParameters"] == {"campaign": "spring"}


def test_c_string_without_its_nul_gets_the_fields_status(gateway: GatewayProcess) -> None:
    # source_addr is C21: 25 octets without a NUL cannot be one.
    body = b"\0" + b"\x05\x00" + b"A" * 25 + b"\0" + b"\x01\x01" + b"4712345678\0" + b"\0" * 8
    header = struct.pack(">IIII", 16 + len(body), p.CommandId.SUBMIT_SM, 0, 42)
    with bound(gateway) as esme:
        esme.send_raw(header + body)
        answer = esme.receive(lambda r: r.sequence == 42, 10)
        # The session goes on: the next PDU is served as usual.
        assert esme.request(p.EnquireLink()).status == S.ESME_ROK
    assert isinstance(answer, p.SubmitSmResp) and answer.status == S.ESME_RINVSRCADR


def test_a_scheduled_message_waits_here_where_cancel_and_replace_reach_it(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    in_an_hour = "000000010000000R"
    with bound(gateway) as esme:
        held = esme.request(submit("4790000021", schedule_delivery_time=in_an_hour)).message_id  # type: ignore[attr-defined]
        moved = esme.request(
            submit("4790000022", b"later", schedule_delivery_time=in_an_hour)
        ).message_id  # type: ignore[attr-defined]
        far = esme.request(
            submit("4790000023", schedule_delivery_time="000002000000000R")
        ).message_id  # type: ignore[attr-defined]
        # `far` leaves at once and was submitted last: once LINK has it, the two
        # before it would have gone with it or earlier had the gateway not held them.
        deadline = time.monotonic() + 10
        while not fake.messages_to("+4790000023"):
            assert time.monotonic() < deadline, "the two-day message never reached LINK"
            time.sleep(0.05)
        assert fake.messages_to("+4790000021") == [] and fake.messages_to("+4790000022") == []
        query = esme.request(p.QuerySm(message_id=held))
        assert isinstance(query, p.QuerySmResp) and query.message_state == M.ENROUTE
        assert esme.request(p.CancelSm(message_id=held)).status == S.ESME_ROK
        # Two seconds from now instead: it leaves when due, and LINK is not asked to wait.
        replace = p.ReplaceSm(
            message_id=moved,
            schedule_delivery_time="000000000002000R",
            registered_delivery=1,
            short_message=b"sooner",
        )
        assert esme.request(replace).status == S.ESME_ROK
        receipts_of(esme, {moved})
    assert fake.messages_to("+4790000021") == []
    (sooner,) = fake.messages_to("+4790000022")
    assert sooner["userData"] == "sooner" and "scheduledTime" not in sooner.get(
        "customParameters", {}
    )
    # Two days ahead is beyond hold_scheduled (24 h): LINK schedules it.
    (far_sent,) = fake.messages_to("+4790000023")
    assert far_sent["refId"] == far and "scheduledTime" in far_sent["customParameters"]
