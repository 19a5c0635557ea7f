"""Every kind of text and every operation through node-smpp (the `smpp` npm
package), checked at the fake Common byte for byte (userData, dcs,
userDataHeader) and back as receipts.

node-smpp encodes, as in an application: a string short_message with
data_coding 0 becomes unpacked GSM 03.38 (its own table, extension characters
as 0x1B pairs), with data_coding 8 UTF-16BE; `{udh: Buffer, message: string}`
puts a UDH we build in front of the encoded text and sets esm_class 0x40. The
session is driven step by step through node/driver.js (tests/interop/node_esme.py).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.harness import FakeCommonProcess, GatewayProcess
from tests.interop import sar, scenarios
from tests.interop.conftest import (
    EMOJI_TEXT,
    GSM_SEGMENTS,
    GSM_TEXT,
    GSM_TEXT_OCTETS,
    PASSWORD,
    PAYLOAD_GSM_TEXT,
    PAYLOAD_UCS2_TEXT,
    SYSTEM_ID,
    UCS2_SEGMENTS,
    UCS2_TEXT,
    Receipt,
    check_receipt,
    messages_to,
    wait_for_messages,
)
from tests.interop.node_esme import NODE, NODE_SMPP_INSTALLED, NodeEsme, hexed
from tests.interop.scenarios import SOURCE, SOURCE_NPI, SOURCE_TON, QueryAnswer

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(NODE is None, reason="node is not on PATH (CI installs Node 20)"),
    pytest.mark.skipif(
        not NODE_SMPP_INSTALLED,
        reason="tests/interop/node/node_modules is missing (run `make setup`)",
    ),
]

ROK = 0
ESME_RSUBMITFAIL = 0x45
ESME_RINVDCS = 0x104  # SMPP 5.0
# node-smpp binds as SMPP 5.0 (interface_version 0x50) unless told otherwise; these
# are SMPP 3.4 tests, so they bind as 3.4, except where 5.0 is the point.
SMPP_34, SMPP_50 = 0x34, 0x50
BLOCK = "02"  # destinations of this module: 479902NNNN
TON_INTERNATIONAL, NPI_ISDN = 1, 1


def destination() -> str:
    return scenarios.destination(BLOCK)


class NodeClient:
    """A bound node-smpp transceiver; implements scenarios.Client."""

    def __init__(self, esme: NodeEsme) -> None:
        self.esme = esme

    def submit_pdu(self, dest: str, **params: Any) -> dict[str, Any]:
        """submit_sm from SOURCE to `dest` (international); its submit_sm_resp."""
        params.setdefault("registered_delivery", 1)
        return self.esme.send(
            "submit_sm",
            source_addr_ton=SOURCE_TON,
            source_addr_npi=SOURCE_NPI,
            source_addr=SOURCE,
            dest_addr_ton=TON_INTERNATIONAL,
            dest_addr_npi=NPI_ISDN,
            destination_addr=dest,
            **params,
        )

    def submit(self, destination: str, text: str, *, registered_delivery: int = 1) -> str:
        response = self.submit_pdu(
            destination,
            short_message=text,
            data_coding=0,
            registered_delivery=registered_delivery,
        )
        assert response["command_status"] == ROK, f"status {response['command_status']:#x}"
        message_id: str = response["message_id"]
        assert message_id
        return message_id

    def query(self, message_id: str, source: str = SOURCE) -> QueryAnswer:
        response = self.esme.send(
            "query_sm",
            message_id=message_id,
            source_addr_ton=SOURCE_TON,
            source_addr_npi=SOURCE_NPI,
            source_addr=source,
        )
        assert response["command"] == "query_sm_resp"
        final_date = response.get("final_date")
        if final_date:
            # node-smpp itself must be able to read the time it was given.
            assert response["final_date_parsed"]["$date"] != "invalid", final_date
        return QueryAnswer(
            status=response["command_status"],
            message_id=response.get("message_id"),
            final_date=final_date,
            message_state=response.get("message_state"),
            error_code=response.get("error_code"),
        )

    def cancel(self, message_id: str, destination: str = "", source: str = SOURCE) -> int:
        response = self.esme.send(
            "cancel_sm",
            service_type="",
            message_id=message_id,
            source_addr_ton=SOURCE_TON,
            source_addr_npi=SOURCE_NPI,
            source_addr=source,
            dest_addr_ton=TON_INTERNATIONAL if destination else 0,
            dest_addr_npi=NPI_ISDN if destination else 0,
            destination_addr=destination,
        )
        assert response["command"] == "cancel_sm_resp"
        status: int = response["command_status"]
        return status

    def _await_receipts(self, ids: set[str], count: int, timeout: float) -> list[Receipt]:
        """At least `count` receipts for `ids`, or what came of them in `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            mine = [r for r in self.esme.receipts() if r.receipted_message_id in ids]
            if len(mine) >= count or time.monotonic() >= deadline:
                return mine
            time.sleep(0.05)

    def receipts_for(self, ids: set[str], count: int, timeout: float = 10.0) -> list[Receipt]:
        """Wait for `count` receipts whose id is in `ids`, then for a sentinel's; all of them.

        The sentinel is submitted only once those receipts are in, and the gateway
        delivers one session's receipts in order: a second receipt for one of `ids`
        would have come before the sentinel's."""
        self._await_receipts(ids, count, timeout)
        sentinel = self.submit(destination(), "sentinel")
        assert self._await_receipts({sentinel}, 1, timeout), "no receipt for the sentinel"
        return [r for r in self.esme.receipts() if r.receipted_message_id in ids]

    def wait_receipts(self, ids: set[str], timeout: float = 10.0) -> dict[str, Receipt]:
        found: dict[str, Receipt] = {}
        for receipt in self.receipts_for(ids, len(ids), timeout):
            assert receipt.receipted_message_id not in found, (
                f"second receipt for {receipt.receipted_message_id}"
            )
            found[receipt.receipted_message_id] = receipt
        assert set(found) == ids, f"no receipt for {sorted(ids - set(found))}"
        return found


@contextmanager
def bound(
    port: int,
    system_id: str = SYSTEM_ID,
    password: str = PASSWORD,
    interface_version: int = SMPP_34,
) -> Iterator[NodeClient]:
    with NodeEsme(port) as esme:
        response = esme.bind(system_id, password, interface_version=interface_version)
        assert response["command_status"] == ROK
        yield NodeClient(esme)


def open_client(gw: GatewayProcess) -> scenarios.OpenClient:
    return lambda system_id, password: bound(gw.smpp_port, system_id, password)


def check_single(
    fake: FakeCommonProcess, client: NodeClient, dest: str, message_id: str, text: str
) -> None:
    """Exactly one Common message for `dest`, carrying `text` as TEXT, and its receipt."""
    [message] = wait_for_messages(fake, "+" + dest, 1)
    assert message["userData"] == text
    assert message["dcs"] == "TEXT"
    assert "userDataHeader" not in message
    assert message["source"] == SOURCE
    assert message["sourceTON"] == "ALPHANUMERIC"
    receipt = client.wait_receipts({message_id})[message_id]
    check_receipt(receipt, message_id=message_id, destination=dest, source=SOURCE, text=text)


def accepted(response: dict[str, Any]) -> str:
    assert response["command_status"] == ROK, f"status {response['command_status']:#x}"
    message_id: str = response["message_id"]
    assert message_id
    return message_id


# --- 1. GSM 03.38 with extension characters ----------------------------------------


def test_node_gsm_text_with_extension_characters(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gw, fake = ops_gateway
    dest = destination()
    with bound(gw.smpp_port) as client:
        response = client.submit_pdu(dest, short_message=GSM_TEXT, data_coding=0)
        check_single(fake, client, dest, accepted(response), GSM_TEXT)


def test_node_gsm_text_as_a_buffer(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    """The same text as octets the test encoded (unpacked GSM 03.38), in a Buffer."""
    gw, fake = ops_gateway
    dest = destination()
    with bound(gw.smpp_port) as client:
        response = client.submit_pdu(dest, short_message=hexed(GSM_TEXT_OCTETS), data_coding=0)
        check_single(fake, client, dest, accepted(response), GSM_TEXT)


# --- 2. UCS-2 ----------------------------------------------------------------------


def test_node_ucs2_text(ops_gateway: tuple[GatewayProcess, FakeCommonProcess]) -> None:
    gw, fake = ops_gateway
    dest = destination()
    with bound(gw.smpp_port) as client:
        response = client.submit_pdu(dest, short_message=UCS2_TEXT, data_coding=8)
        check_single(fake, client, dest, accepted(response), UCS2_TEXT)


@pytest.mark.parametrize(
    ("interface_version", "status"),
    [(SMPP_34, ESME_RSUBMITFAIL), (SMPP_50, ESME_RINVDCS)],
    ids=["smpp-3.4", "smpp-5.0-node-default"],
)
def test_node_ucs2_outside_the_bmp_is_refused(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess], interface_version: int, status: int
) -> None:
    """Refused with 0x45 (SMPP 3.4); an ESME bound as 5.0, as node-smpp binds by
    default, is told ESME_RINVDCS 0x104, which 5.0 has for exactly this."""
    gw, fake = ops_gateway
    dest = destination()
    with bound(gw.smpp_port, interface_version=interface_version) as client:
        # node-smpp (iconv-lite) writes U+1F600 as the surrogate pair D83D DE00.
        response = client.submit_pdu(dest, short_message=EMOJI_TEXT, data_coding=8)
        assert response["command_status"] == status, f"status {response['command_status']:#x}"
        scenarios.sentinel_arrived(client, fake, BLOCK)
        assert [r for r in client.esme.receipts() if r.source_addr == dest] == []
    assert messages_to(fake, "+" + dest) == []


# --- 3. long text split by the ESME with a UDH ---------------------------------------


def check_segments(
    fake: FakeCommonProcess,
    client: NodeClient,
    dest: str,
    sent: list[tuple[str, bytes, str]],
    dcs: str,
) -> None:
    """One Common message per (message_id, udh, text) segment, and one receipt each."""
    messages = wait_for_messages(fake, "+" + dest, len(sent))
    assert len(messages) == len(sent)
    by_header = {m["userDataHeader"]: m for m in messages}
    assert len(by_header) == len(sent), "two segments with one UDH"
    assert len({message_id for message_id, _, _ in sent}) == len(sent)
    receipts = client.wait_receipts({message_id for message_id, _, _ in sent})
    for message_id, udh, text in sent:
        message = by_header[udh.hex().upper()]
        assert message["userData"] == text
        assert message["dcs"] == dcs
        check_receipt(
            receipts[message_id], message_id=message_id, destination=dest, source=SOURCE, text=text
        )


@pytest.mark.parametrize(
    ("segments", "data_coding", "ref_bits", "dcs"),
    [(GSM_SEGMENTS, 0, 8, "GSM"), (UCS2_SEGMENTS, 8, 16, "UCS2")],
    ids=["gsm-8-bit-reference", "ucs2-16-bit-reference"],
)
def test_node_long_text_split_with_udh(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess],
    segments: tuple[str, ...],
    data_coding: int,
    ref_bits: int,
    dcs: str,
) -> None:
    gw, fake = ops_gateway
    total = len(segments)
    ref = random.randint(0, 0xFF) if ref_bits == 8 else random.randint(0x100, 0xFFFF)
    dest = destination()
    with bound(gw.smpp_port) as client:
        sent = []
        for seq, text in enumerate(segments, start=1):
            if ref_bits == 8:
                udh = bytes((0x05, 0x00, 0x03, ref, total, seq))
            else:
                udh = bytes((0x06, 0x08, 0x04, ref >> 8, ref & 0xFF, total, seq))
            response = client.submit_pdu(
                dest,
                short_message={"udh": hexed(udh), "message": text},
                data_coding=data_coding,
                esm_class=0x40,
            )
            sent.append((accepted(response), udh, text))
        check_segments(fake, client, dest, sent, dcs)


# --- 4. long text in message_payload -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "data_coding"),
    [(PAYLOAD_GSM_TEXT, 0), (PAYLOAD_UCS2_TEXT, 8)],
    ids=["gsm", "ucs2"],
)
def test_node_long_text_in_message_payload(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess], text: str, data_coding: int
) -> None:
    gw, fake = ops_gateway
    dest = destination()
    with bound(gw.smpp_port) as client:
        # short_message stays empty (sm_length 0); node-smpp encodes the TLV's text.
        response = client.submit_pdu(dest, message_payload=text, data_coding=data_coding)
        check_single(fake, client, dest, accepted(response), text)


# --- 5. query_sm and cancel_sm ------------------------------------------------------


@pytest.mark.query_cancel
@pytest.mark.parametrize("scenario", scenarios.QUERY_CANCEL, ids=lambda f: f.__name__)
def test_node_query_and_cancel(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess],
    scenario: Callable[[Any, FakeCommonProcess, str], None],
) -> None:
    gw, fake = ops_gateway
    scenario(open_client(gw), fake, BLOCK)


# --- 6. submit_multi -----------------------------------------------------------------


@pytest.mark.submit_multi
def test_node_submit_multi_two_destinations(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gw, fake = ops_gateway
    first, second = destination(), destination()
    text = "One text, two numbers: €uro [ok]"
    with bound(gw.smpp_port) as client:
        response = client.esme.send(
            "submit_multi",
            source_addr_ton=SOURCE_TON,
            source_addr_npi=SOURCE_NPI,
            source_addr=SOURCE,
            dest_address=[
                {
                    "dest_addr_ton": TON_INTERNATIONAL,
                    "dest_addr_npi": NPI_ISDN,
                    "destination_addr": dest,
                }
                for dest in (first, second)
            ],
            registered_delivery=1,
            data_coding=0,
            short_message=text,
        )
        assert response["command"] == "submit_multi_resp"
        message_id = accepted(response)
        assert response.get("unsuccess_sme", []) == []
        for dest in (first, second):
            [message] = wait_for_messages(fake, "+" + dest, 1)
            assert message["userData"] == text
            assert message["dcs"] == "TEXT"
            assert message["source"] == SOURCE
        # One id for the ESME (gateway/operations.py): both receipts carry it.
        receipts = client.receipts_for({message_id}, 2)
        assert sorted(r.source_addr for r in receipts) == sorted((first, second))
        for receipt in receipts:
            check_receipt(
                receipt,
                message_id=message_id,
                destination=receipt.source_addr,
                source=SOURCE,
                text=text,
            )


# --- 7. long text in parts of 254 octets with sar_* TLVs ------------------------------


@pytest.mark.parametrize("order", [(1, 2, 3), (3, 1, 2)], ids=["in-order", "last-first"])
@pytest.mark.parametrize(
    ("text", "data_coding"),
    [(sar.SAR_GSM_TEXT, 0), (sar.SAR_UCS2_TEXT, 8)],
    ids=["gsm", "ucs2"],
)
def test_node_long_text_in_254_octet_sar_parts(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess],
    text: str,
    data_coding: int,
    order: tuple[int, ...],
) -> None:
    # The application cuts the text where 254 octets end (sar.sar_pieces), gives
    # node-smpp each piece as a string to encode (GSM 03.38 for data_coding 0,
    # UTF-16BE for 8) and numbers the parts with node-smpp's sar_* TLVs; no UDH.
    # "last-first": the last part arrives first (in UCS-2 it fits one SMS, so it
    # waits to learn whether its siblings are too long).
    gw, fake = ops_gateway
    ucs2 = data_coding == 8
    pieces = sar.sar_pieces(text, ucs2)
    assert len(pieces) == len(order) == 3
    ref = random.randint(0, 0xFFFF)
    dest = destination()
    with bound(gw.smpp_port) as client:
        ids: dict[int, str] = {}
        for seq in order:
            response = client.submit_pdu(
                dest,
                short_message=pieces[seq - 1],
                data_coding=data_coding,
                sar_msg_ref_num=ref,
                sar_total_segments=len(pieces),
                sar_segment_seqnum=seq,
            )
            ids[seq] = accepted(response)
        sent = [(ids[seq], piece) for seq, piece in enumerate(pieces, start=1)]
        sar.check_sar_message(fake, client, dest, sent, text, ucs2)
