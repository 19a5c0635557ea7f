"""ESME -> gateway -> LINK's SMPP endpoint -> receipts and MO back, with failover.

Three real processes: the gateway (twistd), a fake of LINK's SMPP endpoint
over TLS with a test CA (window 1, a rate limit, LINK's receipt formats), and
the fake Common for the routes that fail over between the two.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.smpp import pdu as p
from gateway.smpp.receipts import parse_receipt_text
from gateway.smpp.text import parse_udh
from tests.esme import Esme, submit
from tests.harness import (
    FakeCommonProcess,
    FakeLinkSmppProcess,
    GatewayProcess,
    account_toml,
    free_port,
    gateway_config,
    metric_value,
    wait_for_link_up,
    wait_for_metric,
)

S = p.CommandStatus
ROUTE_TLV = 0x1410

ACCOUNTS = account_toml(
    "viasmpp", "pw", "link", route_tlv=ROUTE_TLV, mo_numbers=["2233"]
) + account_toml("routed", "pw", "main", route_tlv=ROUTE_TLV, mo_numbers=["+4790001234"])
# Destinations under +46 go over LINK SMPP; everything of "routed" goes to
# Common first and falls back to LINK SMPP while Common is down.
ROUTES = """
[[routes]]
prefixes = ["+46"]
connector = "link"

[[routes]]
accounts = ["routed"]
connector = "main"
fallback = "link"

[connectors.main.breaker]
failures = 2
open_for = "2s"
"""


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, FakeLinkSmppProcess, FakeCommonProcess]]:
    directory = tmp_path_factory.mktemp("linksmpp")
    smpp_port, http_port = free_port(), free_port()
    callback = f"http://127.0.0.1:{http_port}/callbacks/dlr"
    with (
        FakeLinkSmppProcess(
            directory,
            rate=50,
            burst=5,
            receipt_format="minutes",
            receipt_id_variant="other_base",
            idle_timeout=2,
        ) as link,
        FakeCommonProcess(callback, keep_messages="true") as common,
    ):
        path = gateway_config(
            directory,
            smpp_port=smpp_port,
            http_port=http_port,
            common_url=common.url,
            accounts=ACCOUNTS,
            # 45/s against the fake's 50/s: two processes' clocks and the loopback
            # jitter, not the gateway, would otherwise decide a borderline second.
            connector_extra=link.connector_toml(rate=45, burst=5, enquire_link_interval=0.5)
            + ROUTES,
        )
        with GatewayProcess(path, smpp_port, http_port) as gateway:
            yield gateway, link, common


@pytest.fixture
def gateway(stack: tuple[GatewayProcess, FakeLinkSmppProcess, FakeCommonProcess]) -> GatewayProcess:
    return stack[0]


@pytest.fixture
def link(
    stack: tuple[GatewayProcess, FakeLinkSmppProcess, FakeCommonProcess],
) -> Iterator[FakeLinkSmppProcess]:
    yield stack[1]
    stack[1].control({"rules": {}, "submit_status": {}})


@pytest.fixture
def common(
    stack: tuple[GatewayProcess, FakeLinkSmppProcess, FakeCommonProcess],
) -> Iterator[FakeCommonProcess]:
    yield stack[2]
    stack[2].control({"down": False})


def bound(gateway: GatewayProcess, account: str, kind: type[p.Pdu] = p.BindTransceiver) -> Esme:
    esme = Esme(gateway.smpp_port)
    assert esme.bind(account, "pw", kind).status == S.ESME_ROK
    return esme


def receipts_for(esme: Esme, ids: set[str], timeout: float = 30.0) -> dict[str, p.DeliverSm]:
    found: dict[str, p.DeliverSm] = {}
    deadline = time.monotonic() + timeout
    while set(found) != ids:
        (receipt,) = esme.receipts(1, timeout=max(deadline - time.monotonic(), 0.1))
        message_id = parse_receipt_text(receipt.short_message).message_id
        if message_id in ids:
            assert message_id not in found, f"second receipt for {message_id}"
            found[message_id] = receipt
    return found


def submits_to(link: FakeLinkSmppProcess, destination: str) -> list[dict[str, Any]]:
    """The submit_sm LINK accepted for `destination`."""
    return [
        s
        for s in link.get("/_submits")
        if s.get("destination_addr") == destination and s.get("outcome") == "accepted"
    ]


def test_submit_and_receipt_over_link_smpp(
    gateway: GatewayProcess, link: FakeLinkSmppProcess
) -> None:
    wait_for_link_up(gateway)
    link.control({"rules": {"4790000002": ["UNDELIV", 101]}})
    with bound(gateway, "viasmpp") as esme:
        ok = esme.request(submit("4790000001", b"over SMPP")).message_id  # type: ignore[attr-defined]
        bad = esme.request(submit("4790000002", b"to nobody")).message_id  # type: ignore[attr-defined]
        got = receipts_for(esme, {ok, bad})
        query = esme.request(p.QuerySm(message_id=ok))
    good = parse_receipt_text(got[ok].short_message)
    failed = parse_receipt_text(got[bad].short_message)
    assert (good.stat, good.err) == ("DELIVRD", "000")
    # LINK's stat and err pass through; receipts carry our id, in text and TLV.
    assert (failed.stat, failed.err) == ("UNDELIV", "101")
    assert got[bad].tlv(p.Tag.RECEIPTED_MESSAGE_ID) == bad.encode() + b"\0"
    assert got[bad].tlv_int(p.Tag.MESSAGE_STATE) == p.MessageState.UNDELIVERABLE
    (sent,) = submits_to(link, "4790000001")
    assert (sent["dest_addr_ton"], sent["source_addr_ton"], sent["registered_delivery"]) == (
        1,
        5,
        1,
    )
    assert isinstance(query, p.QuerySmResp) and query.message_state == p.MessageState.DELIVERED
    assert query.tlv(ROUTE_TLV) == b"link\0"


def test_long_text_goes_in_segments_and_comes_back_as_one_receipt(
    gateway: GatewayProcess, link: FakeLinkSmppProcess
) -> None:
    text = b"0123456789" * 40  # 400 GSM characters: three segments of 153
    with bound(gateway, "viasmpp") as esme:
        pdu = submit("4790000003", b"", tlvs=[(p.Tag.MESSAGE_PAYLOAD, text)])
        message_id = esme.request(pdu).message_id  # type: ignore[attr-defined]
        receipt = receipts_for(esme, {message_id})[message_id]
    parsed = parse_receipt_text(receipt.short_message)
    assert (parsed.stat, parsed.sub, parsed.dlvrd) == ("DELIVRD", 3, 3)
    segments = submits_to(link, "4790000003")
    assert len(segments) == 3 and all(s["esm_class"] == 0x40 for s in segments)


def test_parts_longer_than_one_sms_are_resplit_into_proper_segments(
    gateway: GatewayProcess, link: FakeLinkSmppProcess
) -> None:
    # Two parts of 254 and 146 octets (sar_* TLVs): LINK's endpoint takes
    # segments, so the whole text goes as three of 153; each part gets a receipt.
    text = b"abcdefghij" * 40
    sar = [(p.Tag.SAR_MSG_REF_NUM, b"\x00\x31"), (p.Tag.SAR_TOTAL_SEGMENTS, b"\x02")]
    with bound(gateway, "viasmpp") as esme:
        ids = set()
        for seq, chunk in enumerate((text[:254], text[254:]), start=1):
            tlvs = [*sar, (p.Tag.SAR_SEGMENT_SEQNUM, bytes([seq]))]
            answer = esme.request(submit("4790000009", chunk, tlvs=tlvs))
            assert answer.status == S.ESME_ROK
            ids.add(answer.message_id)  # type: ignore[attr-defined]
        got = receipts_for(esme, ids)
    assert {parse_receipt_text(r.short_message).stat for r in got.values()} == {"DELIVRD"}
    segments = submits_to(link, "4790000009")
    assert len(segments) == 3 and all(s["esm_class"] == 0x40 for s in segments)
    bodies = [bytes.fromhex(s["short_message"]) for s in segments]
    assert b"".join(body[6:] for body in bodies) == text
    assert all(len(body) <= 159 for body in bodies)


def test_prefix_route_and_failover_from_common_to_link_smpp_and_back(
    gateway: GatewayProcess, link: FakeLinkSmppProcess, common: FakeCommonProcess
) -> None:
    wait_for_link_up(gateway)
    with bound(gateway, "routed") as esme:
        # +46: the prefix route takes it to LINK SMPP whatever the account.
        swedish = esme.request(submit("46700000001")).message_id  # type: ignore[attr-defined]
        receipts_for(esme, {swedish})
        assert len(submits_to(link, "46700000001")) == 1
        common.control({"down": True})
        during = [
            esme.request(submit(f"479000001{n}")).message_id  # type: ignore[attr-defined]
            for n in range(4)
        ]
        receipts_for(esme, set(during))
        # Common failed twice, its breaker opened: the messages went to LINK SMPP.
        assert sum(len(submits_to(link, f"479000001{n}")) for n in range(4)) == 4
        common.control({"down": False})
        time.sleep(2.5)  # open_for: the next request to Common is the probe
        after = esme.request(submit("4790000020")).message_id  # type: ignore[attr-defined]
        receipts_for(esme, {after})
        query = esme.request(p.QuerySm(message_id=during[0]))
    assert submits_to(link, "4790000020") == []
    assert query.tlv(ROUTE_TLV) == b"link\0"


def test_connection_dropped_mid_window_loses_and_doubles_nothing(
    gateway: GatewayProcess, link: FakeLinkSmppProcess
) -> None:
    wait_for_link_up(gateway)
    link.control({"drop_next_submit": True})
    with bound(gateway, "viasmpp") as esme:
        ids = {
            esme.request(submit(f"47900003{n:02d}")).message_id  # type: ignore[attr-defined]
            for n in range(5)
        }
        receipts_for(esme, ids)
        with pytest.raises(TimeoutError):
            esme.receipts(1, timeout=1.5)
    assert len(link.control()["connections"]) >= 2


def test_mo_over_smpp_reaches_the_owning_esme_even_if_it_binds_later(
    gateway: GatewayProcess, link: FakeLinkSmppProcess
) -> None:
    wait_for_link_up(gateway)
    before = metric_value(
        gateway.metrics(), "smppgw_mo_total", account="viasmpp", outcome="accepted"
    )
    long_text = "MO over LINK's SMPP endpoint, long enough for two parts. " * 3
    link.control(
        {
            "inject_mo": [
                {"source": "4790000099", "destination": "2233", "text": "short one"},
                {"source": "4790000099", "destination": "2233", "text": long_text},
            ]
        }
    )
    # All three deliver_sm stored for the account (one MO each) before it binds.
    wait_for_metric(gateway, "smppgw_mo_total", before + 3, account="viasmpp", outcome="accepted")
    with bound(gateway, "viasmpp", p.BindReceiver) as esme:
        got = esme.receipts(1 + 2, timeout=15)
    plain = [d for d in got if not d.esm_class & 0x40]
    parts = sorted((d for d in got if d.esm_class & 0x40), key=lambda d: d.short_message[5])
    assert [d.short_message for d in plain] == [b"short one"]
    assert plain[0].source_addr == "4790000099" and plain[0].esm_class == 0
    body = b""
    for part in parts:
        udh = parse_udh(part.short_message[: part.short_message[0] + 1])
        body += part.short_message[len(udh.raw) :]
    assert body.decode("ascii") == long_text


def test_a_burst_of_100_respects_links_window_and_rate(
    gateway: GatewayProcess, link: FakeLinkSmppProcess
) -> None:
    wait_for_link_up(gateway)
    before = link.control()["violations"]
    with bound(gateway, "viasmpp") as esme:
        ids = {
            esme.request(submit(f"4790001{n:03d}")).message_id  # type: ignore[attr-defined]
            for n in range(100)
        }
        receipts_for(esme, ids, timeout=60)
    # The fake refuses (and counts) a second outstanding submit_sm or one over
    # its 50/s: the gateway never made it.
    assert link.control()["violations"] == before
    assert sum(len(submits_to(link, f"4790001{n:03d}")) for n in range(100)) == 100


def test_reconnects_after_the_delay_and_pings_an_idle_link(
    gateway: GatewayProcess, link: FakeLinkSmppProcess
) -> None:
    wait_for_link_up(gateway)
    before = len(link.control()["connections"])
    link.control({"drop": True})
    deadline = time.monotonic() + 15
    while True:  # bound again, on a connection after the dropped one
        connections = link.control()["connections"]
        if len(connections) > before and connections[before]["bound_at"] is not None:
            break
        assert time.monotonic() < deadline, f"no new bound link after the drop: {connections}"
        time.sleep(0.05)
    wait_for_link_up(gateway)
    dropped, again = connections[before - 1], connections[before]
    # reconnect_delay = 0.5 s: LINK asks for a pause before reconnecting.
    assert again["connected_at"] - dropped["closed_at"] >= 0.5
    # The fake closes a link idle for 2 s; enquire_link every 0.5 s keeps it open.
    # Five of them on the new link: it has lived at least 2.5 s, past that idle
    # timeout (which the fake checks every 0.2 s).
    deadline = time.monotonic() + 10
    while (latest := link.control()["connections"][-1])["enquire_links"] < 5:
        assert latest["closed_at"] is None, f"the link was closed: {latest}"
        assert time.monotonic() < deadline, f"too few enquire_link: {latest}"
        time.sleep(0.1)
    assert latest["number"] == again["number"] and latest["closed_at"] is None
    assert len(link.control()["connections"]) == len(connections)
