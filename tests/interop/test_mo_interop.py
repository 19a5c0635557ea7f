"""MO (incoming messages) to third-party ESMEs: python-smpplib and node-smpp (the
`smpp` npm package), bound as receiver or transceiver, take the deliver_sm the
real gateway makes of an MO, for both of LINK's MO routes:

- REST: the test plays LINK's Gate and POSTs an SmsMessage to `[mo] callback_path`;
- SMPP: a fake of LINK's SMPP endpoint (TLS, test CA) sends the MO as deliver_sm
  to the gateway's linksmpp connector (`inject_mo` through its control port).

One gateway (simulator connector for MT, a linksmpp connector for MO) and one
fake LINK SMSC serve the whole module; every test has an account of its own with
a short code of its own, so no MO of one test can reach another's ESME.

What is compared is what the client library itself received: smpplib hands over
the raw short_message (it has no GSM 03.38 decoder), compared octet for octet
with smpplib's own GSM encoder (`smpplib.gsm.gsm_encode`) or hand-written
octets, and UTF-16BE; node-smpp decodes the text itself (and the UDH into its
information elements), and its decoding is compared character for character,
next to the raw octets. The gateway's `[smpp] response_timeout` is 1 s here, so
a deliver_sm that a client left unanswered would show as a `timeout` (and a
second copy) within the 1.5 s each test keeps listening after the last part.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import select
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm

from tests.harness import (
    CALLBACK_PASSWORD,
    CALLBACK_USER,
    FakeLinkSmppProcess,
    GatewayProcess,
    account_toml,
    free_port,
    gateway_config,
    metric_value,
)
from tests.interop.conftest import GSM_TEXT, GSM_TEXT_OCTETS, UCS2_TEXT, wait_for
from tests.interop.node_esme import NODE, NODE_SMPP_INSTALLED, NodeEsme, unhex

pytestmark = pytest.mark.interop

NODE_MARKS = [
    pytest.mark.skipif(NODE is None, reason="node is not on PATH (CI installs Node 20)"),
    pytest.mark.skipif(
        not NODE_SMPP_INSTALLED,
        reason="tests/interop/node/node_modules is missing (run `make setup`)",
    ),
]

HOST = "127.0.0.1"
PASSWORD = "mo-pw"
ROK = 0
SMPP_34 = 0x34
TON_INTERNATIONAL, NPI_ISDN = 1, 1
TON_NETWORK_SPECIFIC, NPI_UNKNOWN = 3, 0
UDHI = 0x40
QUIET = 1.5  # seconds a test keeps listening after the last part it expected

CLIENTS = ("smpplib", "node")
ROUTES = ("rest", "smpp")
CASES = ("text", "long", "late")


def short_code(client: str, route: str, case: str) -> str:
    """The number (and account) of one test: 7 + client + route + case digits."""
    return f"7{CLIENTS.index(client) + 1}{ROUTES.index(route) + 1}{CASES.index(case) + 1}"


def system_id(client: str, route: str, case: str) -> str:
    return f"mo{short_code(client, route, case)}"


ACCOUNTS = "".join(
    account_toml(system_id(*key), PASSWORD, "main", mo_numbers=[short_code(*key)])
    for key in itertools.product(CLIENTS, ROUTES, CASES)
)


def _long_gsm_text() -> str:
    """300 GSM 03.38 characters with extension characters all along (345 septets:
    three parts), one of whose escapes falls on the 153rd octet, the last of a full
    part: the gateway must move that character whole to the next part."""
    pattern = "Long MO, part of a reply with extension characters €[x]{y}~^|\\ ok. "
    for shift in range(len(pattern)):
        text = (pattern[shift:] + pattern * 5)[:300]
        if smpplib.gsm.gsm_encode(text)[152] == 0x1B:
            return text
    raise AssertionError("no shift of the pattern puts an escape on octet 153")


LONG_GSM_TEXT = _long_gsm_text()
# 150 UCS-2 characters (300 octets: three parts of at most 134 octets).
LONG_UCS2_TEXT = (
    "Длинное входящее сообщение, кириллица. Μεγάλο εισερχόμενο μήνυμα, ελληνικά. " * 2
)[:150]
assert len(LONG_GSM_TEXT) == 300 and len(LONG_UCS2_TEXT) == 150


# --- the gateway and LINK's SMPP endpoint, shared by the module --------------------


@dataclass(frozen=True)
class Stack:
    gateway: GatewayProcess
    link: FakeLinkSmppProcess


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("mo-interop")
    smpp_port, http_port = free_port(), free_port()
    with FakeLinkSmppProcess(directory) as link:
        path = gateway_config(
            directory,
            smpp_port=smpp_port,
            http_port=http_port,
            common_url=None,  # MT is not what is tested: the simulator takes it
            accounts=ACCOUNTS,
            smpp_extra='response_timeout = "1s"',
            connector_extra=link.connector_toml() + '[mo]\nttl = "1h"\n',
        )
        with GatewayProcess(path, smpp_port, http_port) as gateway:
            yield Stack(gateway, link)


def link_up(gateway: GatewayProcess) -> bool:
    return metric_value(gateway.metrics(), "smppgw_upstream_link_up", connector="link") == 1


_mo_ids = itertools.count(1)


def post_mo(gateway: GatewayProcess, source: str, destination: str, text: str) -> None:
    """LINK's Gate posting one SmsMessage (JSON) to the MO callback; must be taken (200)."""
    body = json.dumps(
        {
            "messageId": f"mo-interop-{next(_mo_ids)}",
            "source": source,
            "destination": destination,
            "userData": text,
        }
    ).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{gateway.http_port}/callbacks/mo", data=body, method="POST"
    )
    request.add_header("Content-Type", "application/json")
    token = base64.b64encode(f"{CALLBACK_USER}:{CALLBACK_PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, answer = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, answer = e.code, e.read()
    assert status == 200, f"MO callback answered {status}: {answer!r}"


@dataclass(frozen=True)
class Sender:
    """One MO route: sends texts from a phone to a short code."""

    route: str
    stack: Stack
    phone: str  # as the ESME should see it: digits, no '+'

    def send(self, destination: str, texts: list[tuple[str, str]]) -> None:
        """Each (text, coding) as one MO, in this order; coding 'gsm' or 'ucs2'."""
        if self.route == "rest":
            for text, _ in texts:
                post_mo(self.stack.gateway, f"+{self.phone}", destination, text)
        else:
            specs = [
                {"source": self.phone, "destination": destination, "text": t, "coding": c}
                for t, c in texts
            ]
            self.stack.link.control({"inject_mo": specs})


_phones = itertools.count(1)


@pytest.fixture(params=ROUTES)
def sender(request: pytest.FixtureRequest, stack: Stack) -> Sender:
    route: str = request.param
    if route == "smpp":
        assert wait_for(lambda: link_up(stack.gateway), 15, interval=0.1), (
            "the gateway's LINK SMPP link did not come up"
        )
    # A phone of its own per test: 47 900 0R NNN (R the route).
    phone = f"479000{ROUTES.index(route) + 1}{next(_phones):03d}"
    return Sender(route, stack, phone)


# --- what a client received, in the same terms for both libraries -----------------


@dataclass(frozen=True)
class Mo:
    """One deliver_sm as the client library handed it over."""

    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    esm_class: int
    data_coding: int
    short_message: bytes  # the octets as received, UDH included
    concat: tuple[int, int, int] | None  # (ref, total, seq) of an 8-bit reference UDH
    body: bytes  # short_message after the UDH
    text: str | None  # the library's own decoding of the text (None: smpplib has none)


class Client(Protocol):
    name: str

    def bind(self, account: str, mode: str) -> int: ...

    def wait_until(self, done: Callable[[list[Mo]], bool], timeout: float) -> list[Mo]: ...

    def close(self) -> None: ...


def _text(value: Any) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


class SmpplibClient:
    """python-smpplib: answers each deliver_sm ESME_ROK from its received handler."""

    name = "smpplib"

    def __init__(self, port: int) -> None:
        self.client = smpplib.client.Client(HOST, port, timeout=5, allow_unknown_opt_params=False)
        self.received: list[Any] = []
        self.client.set_message_received_handler(self._received)
        self.client.set_error_pdu_handler(lambda pdu: None)

    def _received(self, pdu: Any) -> int:
        self.received.append(pdu)
        return ROK  # smpplib sends deliver_sm_resp with this status

    def bind(self, account: str, mode: str) -> int:
        self.client.connect()
        response = getattr(self.client, f"bind_{mode}")(system_id=account, password=PASSWORD)
        status: int = response.status
        return status

    def deliveries(self) -> list[Mo]:
        found = []
        for pdu in self.received:
            assert pdu.command == "deliver_sm"
            raw: bytes = pdu.short_message
            concat, body = None, raw
            if pdu.esm_class & UDHI:
                # smpplib has no UDH reader: an application reads the 8-bit
                # reference concatenation header itself.
                assert raw[:3] == b"\x05\x00\x03", f"not an 8-bit concat UDH: {raw[:7].hex()}"
                concat, body = (raw[3], raw[4], raw[5]), raw[6:]
            found.append(
                Mo(
                    source_addr=_text(pdu.source_addr),
                    source_addr_ton=pdu.source_addr_ton,
                    source_addr_npi=pdu.source_addr_npi,
                    destination_addr=_text(pdu.destination_addr),
                    dest_addr_ton=pdu.dest_addr_ton,
                    dest_addr_npi=pdu.dest_addr_npi,
                    esm_class=pdu.esm_class,
                    data_coding=pdu.data_coding,
                    short_message=raw,
                    concat=concat,
                    body=body,
                    text=None,
                )
            )
        return found

    def wait_until(self, done: Callable[[list[Mo]], bool], timeout: float) -> list[Mo]:
        deadline = time.monotonic() + timeout
        while not done(self.deliveries()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select([self.client._socket], [], [], min(left, 0.1))
            if readable:
                self.client.read_once()
        return self.deliveries()

    def close(self) -> None:
        client = self.client
        if client._socket is None:
            return
        try:
            if client.state != smpplib.consts.SMPP_CLIENT_STATE_OPEN:
                client.unbind()
        except (smpplib.exceptions.PDUError, smpplib.exceptions.ConnectionError, OSError):
            pass
        client.disconnect()


class NodeClient:
    """node-smpp through node/driver.js, which answers each deliver_sm with
    `pdu.response()` (ESME_ROK) as an application does."""

    name = "node"

    def __init__(self, port: int) -> None:
        self.esme = NodeEsme(port)

    def bind(self, account: str, mode: str) -> int:
        response = self.esme.bind(account, PASSWORD, mode, interface_version=SMPP_34)
        status: int = response["command_status"]
        return status

    def deliveries(self) -> list[Mo]:
        found = []
        for pdu in self.esme.deliveries():
            message = pdu["short_message"]
            raw = unhex(message["raw"])
            assert raw is not None
            concat, body = None, raw
            if "udh" in message:
                # node-smpp split the UDH into its information elements itself.
                elements = [unhex(e) for e in message["udh"]]
                assert len(elements) == 1, f"UDH elements: {elements}"
                element = elements[0]
                assert element is not None and element[:2] == b"\x00\x03", element
                concat = (element[2], element[3], element[4])
                body = raw[raw[0] + 1 :]
            found.append(
                Mo(
                    source_addr=pdu["source_addr"],
                    source_addr_ton=pdu["source_addr_ton"],
                    source_addr_npi=pdu["source_addr_npi"],
                    destination_addr=pdu["destination_addr"],
                    dest_addr_ton=pdu["dest_addr_ton"],
                    dest_addr_npi=pdu["dest_addr_npi"],
                    esm_class=pdu["esm_class"],
                    data_coding=pdu["data_coding"],
                    short_message=raw,
                    concat=concat,
                    body=body,
                    text=message["message"],
                )
            )
        return found

    def wait_until(self, done: Callable[[list[Mo]], bool], timeout: float) -> list[Mo]:
        found: list[Mo] = []

        def check() -> bool:
            found[:] = self.deliveries()
            return done(found)

        wait_for(check, timeout, interval=0.05)
        return found

    def close(self) -> None:
        self.esme.close()


def new_client(name: str, port: int) -> Client:
    return SmpplibClient(port) if name == "smpplib" else NodeClient(port)


@pytest.fixture(
    params=[
        pytest.param("smpplib"),
        pytest.param("node", marks=NODE_MARKS),
    ]
)
def client_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def connect(stack: Stack, client_name: str) -> Iterator[Callable[[], Client]]:
    """Make clients of the test's library on the gateway; all closed afterwards."""
    made: list[Client] = []

    def make() -> Client:
        client = new_client(client_name, stack.gateway.smpp_port)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# --- checks --------------------------------------------------------------------------

DELIVERY_OUTCOMES = ("ok", "retry", "rejected", "timeout", "lost", "expired")


def delivery_counts(gateway: GatewayProcess) -> dict[str, float]:
    text = gateway.metrics()
    return {
        outcome: metric_value(text, "smppgw_receipt_deliveries_total", outcome=outcome)
        for outcome in DELIVERY_OUTCOMES
    }


def parts_of(text: str, coding: str) -> int:
    """How many deliver_sm the text needs (GSM: 153 septets a part, never
    splitting an escape; UCS-2: 67 characters a part; one when it fits one SMS)."""
    if coding == "ucs2":
        octets = len(text.encode("utf-16-be"))
        return 1 if octets <= 140 else math.ceil(octets / 134)
    encoded = smpplib.gsm.gsm_encode(text)
    if len(encoded) <= 160:
        return 1
    parts, pos = 0, 0
    while pos < len(encoded):
        end = min(pos + 153, len(encoded))
        if end < len(encoded) and encoded[end - 1] == 0x1B:
            end -= 1
        parts, pos = parts + 1, end
    return parts


def expected_octets(text: str, coding: str) -> bytes:
    """The text as the ESME should receive it, by third-party encoders: smpplib's
    GSM 03.38 table (unpacked, extension characters as 0x1B pairs) or UTF-16BE."""
    if text == GSM_TEXT:
        return GSM_TEXT_OCTETS  # written out by hand in conftest
    return smpplib.gsm.gsm_encode(text) if coding == "gsm" else text.encode("utf-16-be")


def receive(
    client: Client,
    texts: list[tuple[str, str]],
    gateway: GatewayProcess,
    before: dict[str, float],
    timeout: float = 10.0,
) -> list[Mo]:
    """Every deliver_sm the texts should make; then listen on for QUIET seconds and
    check that no copy followed and that the gateway counted each as answered OK."""
    count = sum(parts_of(text, coding) for text, coding in texts)
    got = client.wait_until(lambda found: len(found) >= count, timeout)
    assert len(got) == count, f"{client.name} got {len(got)} deliver_sm of {count}"
    later = client.wait_until(lambda found: False, QUIET)
    assert later == got, f"{client.name} got {len(later) - count} more deliver_sm (resent?)"
    after = delivery_counts(gateway)
    delta = {k: after[k] - before[k] for k in DELIVERY_OUTCOMES}
    assert delta == {**dict.fromkeys(DELIVERY_OUTCOMES, 0.0), "ok": float(count)}, (
        f"the gateway's deliver_sm outcomes for {count} parts: {delta}"
    )
    return got


def check_addresses(mo: Mo, sender: Sender, code: str) -> None:
    assert (mo.source_addr, mo.source_addr_ton, mo.source_addr_npi) == (
        sender.phone,
        TON_INTERNATIONAL,
        NPI_ISDN,
    )
    assert (mo.destination_addr, mo.dest_addr_ton, mo.dest_addr_npi) == (
        code,
        TON_NETWORK_SPECIFIC,
        NPI_UNKNOWN,
    )


def check_whole(mo: Mo, text: str, coding: str) -> None:
    """One deliver_sm carrying the whole text, with no UDH."""
    assert mo.esm_class == 0
    assert mo.data_coding == (0 if coding == "gsm" else 8)
    assert mo.concat is None
    assert mo.short_message == expected_octets(text, coding)
    if mo.text is not None:
        assert mo.text == text


def reassemble(parts: list[Mo], text: str, coding: str) -> None:
    """The UDH segments of one text: one reference, seq 1..total, and together
    exactly the text."""
    assert len(parts) >= 2, f"{len(parts)} part(s): a long text comes in segments"
    assert {p.esm_class for p in parts} == {UDHI}
    assert {p.data_coding for p in parts} == {0 if coding == "gsm" else 8}
    assert all(p.concat is not None for p in parts)
    concats = [p.concat for p in parts if p.concat is not None]
    assert len({ref for ref, _, _ in concats}) == 1, f"references: {concats}"
    assert {total for _, total, _ in concats} == {len(parts)}
    ordered = sorted(parts, key=lambda p: p.concat[2] if p.concat else 0)
    assert [p.concat[2] for p in ordered if p.concat] == list(range(1, len(parts) + 1))
    for part in ordered:
        limit = 153 if coding == "gsm" else 134
        assert len(part.body) <= limit, f"a part of {len(part.body)} octets"
        if coding == "gsm":
            assert not part.body.endswith(b"\x1b"), "an escape pair cut between parts"
    assert b"".join(p.body for p in ordered) == expected_octets(text, coding)
    if all(p.text is not None for p in ordered):
        # node-smpp decodes each part on its own: no escape pair or character
        # may be cut between parts for this to give the text back.
        assert "".join(p.text or "" for p in ordered) == text


# --- the tests --------------------------------------------------------------------


def test_mo_gsm_and_ucs2_text_reach_a_receiver(
    stack: Stack, sender: Sender, client_name: str, connect: Callable[[], Client]
) -> None:
    code = short_code(client_name, sender.route, "text")
    texts = [(GSM_TEXT, "gsm"), (UCS2_TEXT, "ucs2")]
    client = connect()
    assert client.bind(system_id(client_name, sender.route, "text"), "receiver") == ROK
    before = delivery_counts(stack.gateway)
    sender.send(code, texts)
    got = receive(client, texts, stack.gateway, before)
    for mo, (text, coding) in zip(got, texts, strict=True):
        check_addresses(mo, sender, code)
        check_whole(mo, text, coding)


def test_long_mo_reaches_a_transceiver_in_udh_segments(
    stack: Stack, sender: Sender, client_name: str, connect: Callable[[], Client]
) -> None:
    code = short_code(client_name, sender.route, "long")
    texts = [(LONG_GSM_TEXT, "gsm"), (LONG_UCS2_TEXT, "ucs2")]
    client = connect()
    assert client.bind(system_id(client_name, sender.route, "long"), "transceiver") == ROK
    before = delivery_counts(stack.gateway)
    sender.send(code, texts)
    got = receive(client, texts, stack.gateway, before)
    for mo in got:
        check_addresses(mo, sender, code)
    gsm = [mo for mo in got if mo.data_coding == 0]
    ucs2 = [mo for mo in got if mo.data_coding == 8]
    assert len(gsm) + len(ucs2) == len(got)
    reassemble(gsm, LONG_GSM_TEXT, "gsm")
    reassemble(ucs2, LONG_UCS2_TEXT, "ucs2")
    refs = {mo.concat[0] for mo in got if mo.concat is not None}
    assert len(refs) == 2, "two long messages in a row share a concatenation reference"


def test_mo_waits_for_an_esme_that_binds_after_it_arrived(
    stack: Stack, sender: Sender, client_name: str, connect: Callable[[], Client]
) -> None:
    code = short_code(client_name, sender.route, "late")
    texts = [(GSM_TEXT, "gsm"), (LONG_UCS2_TEXT, "ucs2")]
    before = delivery_counts(stack.gateway)
    account = system_id(client_name, sender.route, "late")
    sender.send(code, texts)
    # Both MO are in the gateway (stored for the account) before any ESME binds: it
    # counts one MO per POST, and over SMPP one per deliver_sm (each part).
    expected = len(texts) if sender.route == "rest" else sum(parts_of(t, c) for t, c in texts)

    def accepted() -> float:
        text = stack.gateway.metrics()
        return metric_value(text, "smppgw_mo_total", account=account, outcome="accepted")

    assert wait_for(lambda: accepted() >= expected, 10), (
        f"the gateway accepted {accepted()} MO of {expected} for {account}"
    )
    client = connect()
    assert client.bind(account, "receiver") == ROK
    got = receive(client, texts, stack.gateway, before)
    for mo in got:
        check_addresses(mo, sender, code)
    check_whole(got[0], GSM_TEXT, "gsm")
    reassemble(got[1:], LONG_UCS2_TEXT, "ucs2")
