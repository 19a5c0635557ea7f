"""MO over REST: LINK's Gate posts an SmsMessage, the owning ESME gets a deliver_sm.

The test plays LINK's Gate with real HTTP requests to the real daemon; ESMEs
are socket clients. The gateway runs on the simulator connector: MT is not
what is tested here.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from gateway.smpp import pdu as p
from gateway.smpp.text import parse_udh
from tests.esme import Esme
from tests.harness import (
    CALLBACK_PASSWORD,
    CALLBACK_USER,
    GatewayProcess,
    account_toml,
    free_port,
    gateway_config,
    metric_value,
    wait_for_metric,
)

S = p.CommandStatus

ACCOUNTS = (
    account_toml("shop", "pw", "main", mo_numbers=["2233"], mo_keywords=["SHOP"])
    + account_toml("general", "pw", "main", mo_numbers=["2233", "+4790001234"])
    + account_toml("late", "pw", "main", mo_numbers=["4455"])
    + account_toml("ucs", "pw", "main", mo_numbers=["5566"])
)
MO_SECTION = '[mo]\nttl = "1h"\n'


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    directory = tmp_path_factory.mktemp("mo")
    smpp_port, http_port = free_port(), free_port()
    path = gateway_config(
        directory,
        smpp_port=smpp_port,
        http_port=http_port,
        common_url=None,
        accounts=ACCOUNTS,
        connector_extra=MO_SECTION,
    )
    with GatewayProcess(path, smpp_port, http_port) as process:
        yield process


def post_mo(
    gateway: GatewayProcess, body: bytes, content_type: str = "application/json"
) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{gateway.http_port}/callbacks/mo"
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", content_type)
    token = base64.b64encode(f"{CALLBACK_USER}:{CALLBACK_PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def sms(message_id: str, destination: str, text: str, source: str = "+4790000000") -> bytes:
    return json.dumps(
        {"messageId": message_id, "source": source, "destination": destination, "userData": text}
    ).encode()


def receiver(gateway: GatewayProcess, account: str) -> Esme:
    esme = Esme(gateway.smpp_port)
    assert esme.bind(account, "pw", p.BindReceiver).status == S.ESME_ROK
    return esme


def deliveries(esme: Esme, count: int, timeout: float = 10.0) -> list[p.DeliverSm]:
    return esme.receipts(count, timeout=timeout)


def test_mo_reaches_the_account_that_owns_number_and_keyword(gateway: GatewayProcess) -> None:
    with receiver(gateway, "shop") as shop, receiver(gateway, "general") as general:
        assert post_mo(gateway, sms("mo-1", "2233", "Shop: two shirts"))[0] == 200
        assert post_mo(gateway, sms("mo-2", "2233", "hello there"))[0] == 200
        assert post_mo(gateway, sms("mo-3", "004790001234", "to the MSISDN"))[0] == 200
        (to_shop,) = deliveries(shop, 1)
        to_general = deliveries(general, 2)
    assert to_shop.esm_class == 0 and to_shop.short_message == b"Shop: two shirts"
    assert (to_shop.source_addr, to_shop.source_addr_ton) == ("4790000000", 1)
    assert (to_shop.destination_addr, to_shop.dest_addr_ton) == ("2233", 3)
    assert {d.short_message for d in to_general} == {b"hello there", b"to the MSISDN"}


def test_long_mo_is_split_into_udh_segments(gateway: GatewayProcess) -> None:
    text = "Long reply with the euro sign \u20ac. " * 8  # 264 GSM septets
    with receiver(gateway, "general") as esme:
        assert post_mo(gateway, sms("mo-long", "2233", text))[0] == 200
        parts = deliveries(esme, 2)
    body = b""
    for part in sorted(parts, key=lambda d: d.short_message[5]):
        assert part.esm_class == 0x40 and part.data_coding == 0
        udh = parse_udh(part.short_message[: part.short_message[0] + 1])
        assert udh.concat is not None and udh.concat.total == 2
        body += part.short_message[len(udh.raw) :]
    assert body.count(b"\x1b\x65") == 8  # every euro sign whole, none split


def test_ucs2_mo_and_an_esme_that_binds_after_it_arrived(gateway: GatewayProcess) -> None:
    assert post_mo(gateway, sms("mo-ucs", "5566", "Привет, мир"))[0] == 200
    # Stored and counted for the account before it binds.
    wait_for_metric(gateway, "smppgw_mo_total", 1, account="ucs", outcome="accepted")
    with receiver(gateway, "ucs") as esme:
        (delivery,) = deliveries(esme, 1)
    assert delivery.data_coding == 8
    assert delivery.short_message.decode("utf-16-be") == "Привет, мир"


def test_the_same_mo_twice_is_delivered_once(gateway: GatewayProcess) -> None:
    with receiver(gateway, "late") as esme:
        for _ in range(2):
            assert post_mo(gateway, sms("mo-dup", "4455", "once"))[0] == 200
        (delivery,) = deliveries(esme, 1)
        assert delivery.short_message == b"once"
        with pytest.raises(TimeoutError):
            deliveries(esme, 1, timeout=1.0)
    text = gateway.metrics()
    assert metric_value(text, "smppgw_mo_total", account="late", outcome="duplicate") == 1


def test_mo_in_form_and_xml_bodies(gateway: GatewayProcess) -> None:
    form = urllib.parse.urlencode(
        {"messageId": "mo-form", "source": "+4790000001", "destination": "4455", "userData": "f"}
    ).encode()
    xml = (
        b"<SmsMessage><messageId>mo-xml</messageId><source>+4790000002</source>"
        b"<destination>4455</destination><userData>x</userData></SmsMessage>"
    )
    with receiver(gateway, "late") as esme:
        assert post_mo(gateway, form, "application/x-www-form-urlencoded")[0] == 200
        assert post_mo(gateway, xml, "application/xml")[0] == 200
        got = {d.short_message for d in deliveries(esme, 2)}
    assert got == {b"f", b"x"}


def test_bad_and_unrouted_mo(gateway: GatewayProcess) -> None:
    before = gateway.metrics()
    status, reason = post_mo(gateway, b'{"messageId": "x", "source": "+47"}')
    assert status == 400 and b"destination" in reason
    # Nobody owns 9999: answered 200 (LINK would retry forever), counted, dropped.
    assert post_mo(gateway, sms("mo-nobody", "9999", "hi"))[0] == 200
    after = gateway.metrics()
    assert metric_value(after, "smppgw_mo_total", account="", outcome="unrouted") == 1
    assert (
        metric_value(after, "smppgw_callbacks_total", kind="mo", outcome="bad_request")
        - metric_value(before, "smppgw_callbacks_total", kind="mo", outcome="bad_request")
        == 1
    )
