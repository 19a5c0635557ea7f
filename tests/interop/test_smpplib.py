"""The real gateway driven by python-smpplib, a third-party ESME library.

Each test runs `twistd -n smpp-gateway` and the fake LINK Common as processes on
127.0.0.1 (tests/harness.py). smpplib is used strictly: unknown TLVs make it raise
(allow_unknown_opt_params=False), which is how receipts with extra TLVs would
break real deployments (SMPP-NOTES section 9).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions

from tests.harness import FakeCommonProcess, GatewayProcess
from tests.interop.conftest import PASSWORD, SYSTEM_ID, ReceiptText, parse_receipt, wait_for

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
SOURCE = "LINK"
ROK = smpplib.consts.SMPP_ESME_ROK
GSM = 3  # network_error_code network type


def destination(index: int) -> str:
    return f"4791{index:06d}"


class Esme:
    """One smpplib connection that records what the gateway sends it."""

    def __init__(self, port: int) -> None:
        # The socket timeout only bounds a single PDU read: `pump` waits with select.
        self.client = smpplib.client.Client(HOST, port, timeout=5, allow_unknown_opt_params=False)
        self.responses: dict[int, Any] = {}  # sequence -> submit_sm_resp
        self.receipts: list[Any] = []
        self.other_deliver_sm: list[Any] = []
        self.client.set_message_sent_handler(self._sent)
        self.client.set_message_received_handler(self._received)
        # Error responses are recorded like any other (read_once passes them on).
        self.client.set_error_pdu_handler(lambda pdu: None)

    def _sent(self, pdu: Any) -> None:
        assert pdu.sequence not in self.responses, f"second submit_sm_resp for {pdu.sequence}"
        self.responses[pdu.sequence] = pdu

    def _received(self, pdu: Any) -> int:
        if pdu.esm_class & 0x3C:
            self.receipts.append(pdu)
        else:
            self.other_deliver_sm.append(pdu)
        return ROK  # the deliver_sm_resp status

    def bind(self, mode: str, system_id: str = SYSTEM_ID, password: str = PASSWORD) -> Any:
        self.client.connect()
        return getattr(self.client, f"bind_{mode}")(system_id=system_id, password=password)

    def submit(self, dest: str, text: str, registered_delivery: int = 1) -> int:
        """Send a submit_sm; its sequence number (the key of its response)."""
        pdu = self.client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
            source_addr_npi=smpplib.consts.SMPP_NPI_UNK,
            source_addr=SOURCE,
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            destination_addr=dest,
            short_message=text.encode("ascii"),
            data_coding=0,
            registered_delivery=registered_delivery,
        )
        sequence: int = pdu.sequence
        return sequence

    def pump(self, until: Callable[[], bool], timeout: float) -> bool:
        """Read and handle PDUs until `until()` holds or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([self.client._socket], [], [], min(left, 0.2))
            if readable:
                self.client.read_once()
        return True

    def settle(self, seconds: float = 0.3) -> None:
        """Keep reading for a moment, so duplicates would show up."""
        self.pump(lambda: False, seconds)

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


@contextmanager
def esme(port: int) -> Iterator[Esme]:
    connection = Esme(port)
    try:
        yield connection
    finally:
        connection.close()


def submit_many(sender: Esme, count: int, offset: int = 0) -> dict[str, tuple[str, str]]:
    """Submit `count` messages and wait for their responses (all ESME_ROK);
    message_id -> (destination, text)."""
    sequences = {}
    for i in range(offset, offset + count):
        dest, text = destination(i), f"interop message {i:03d}"
        sequences[sender.submit(dest, text)] = (dest, text)
    assert sender.pump(lambda: set(sequences) <= set(sender.responses), 10), (
        f"{len(set(sequences) - set(sender.responses))} submit_sm_resp missing"
    )
    sent = {}
    for sequence, original in sequences.items():
        response = sender.responses[sequence]
        assert response.status == ROK, f"submit_sm_resp status {response.status:#x}"
        message_id = response.message_id.decode("ascii")
        assert message_id, "empty message_id"
        assert message_id not in sent, f"message_id {message_id} given twice"
        sent[message_id] = original
    return sent


def check_receipts(
    receipts: list[Any],
    sent: dict[str, tuple[str, str]],
    *,
    stat: str = "DELIVRD",
    err: int = 0,
    state: int = 2,
) -> dict[str, ReceiptText]:
    """Exactly one receipt per sent message, every id the submit_sm_resp's, and
    the receipt fields a third-party parser relies on; message_id -> text fields."""
    seen: dict[str, ReceiptText] = {}
    for pdu in receipts:
        assert pdu.esm_class == 0x04
        assert pdu.data_coding == 0
        tlv_id = pdu.receipted_message_id.decode("ascii")
        text = parse_receipt(pdu.short_message.decode("ascii"))
        assert text.id == tlv_id, f"text id {text.id} != receipted_message_id {tlv_id}"
        assert tlv_id in sent, f"receipt for unknown message_id {tlv_id}"
        assert tlv_id not in seen, f"second receipt for {tlv_id}"
        seen[tlv_id] = text
        dest, original = sent[tlv_id]
        # The receipt comes from the handset back to the sender.
        assert pdu.source_addr.decode() == dest
        assert pdu.destination_addr.decode() == SOURCE
        assert (text.sub, text.dlvrd) == ("001", "001" if stat == "DELIVRD" else "000")
        assert text.stat == stat, f"{tlv_id}: stat {text.stat}, wanted {stat}"
        assert text.err == f"{err:03d}", f"{tlv_id}: err {text.err}, wanted {err:03d}"
        assert text.text == original[:20]
        assert pdu.message_state == state
        assert pdu.network_error_code == bytes((GSM,)) + err.to_bytes(2, "big")
    assert set(seen) == set(sent), f"no receipt for {sorted(set(sent) - set(seen))}"
    return seen


def test_transceiver_receipts_match_submit_responses(
    gateway: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gw, fake = gateway
    with esme(gw.smpp_port) as trx:
        response = trx.bind("transceiver")
        assert response.status == ROK
        assert response.system_id  # the SMSC's system_id
        sent = submit_many(trx, 20)
        assert trx.pump(lambda: len(trx.receipts) >= 20, 15), f"{len(trx.receipts)} receipts"
        trx.settle()
        check_receipts(trx.receipts, sent)
        assert trx.other_deliver_sm == []
    stats = fake.control()
    assert stats["accepted"] == 20
    assert stats["unique_ref_ids"] == 20
    assert stats["duplicate_ref_ids"] == 0


def test_receipts_arrive_on_a_separate_receiver(
    gateway: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gw, fake = gateway
    with esme(gw.smpp_port) as rx, esme(gw.smpp_port) as tx:
        assert rx.bind("receiver").status == ROK
        assert tx.bind("transmitter").status == ROK
        sent = submit_many(tx, 10)
        assert rx.pump(lambda: len(rx.receipts) >= 10, 15), f"{len(rx.receipts)} receipts"
        rx.settle()
        tx.settle(0.1)
        check_receipts(rx.receipts, sent)
        assert tx.receipts == []  # a transmitter is never sent deliver_sm
    assert fake.control()["accepted"] == 10


def test_failure_receipts(gateway: tuple[GatewayProcess, FakeCommonProcess]) -> None:
    gw, fake = gateway
    # Common result 1006 maps to UNDELIV err 222, 2104 to UNDELIV err 101.
    fake.control({"result_rules": {"+" + destination(1): 1006, "+" + destination(2): 2104}})
    with esme(gw.smpp_port) as trx:
        assert trx.bind("transceiver").status == ROK
        sent = submit_many(trx, 3)
        assert trx.pump(lambda: len(trx.receipts) >= 3, 15), f"{len(trx.receipts)} receipts"
        trx.settle()
    by_destination: dict[str, list[Any]] = {}
    for pdu in trx.receipts:
        by_destination.setdefault(pdu.source_addr.decode(), []).append(pdu)
    by_id = {dest: message_id for message_id, (dest, _) in sent.items()}

    def only(index: int) -> dict[str, tuple[str, str]]:
        return {by_id[destination(index)]: sent[by_id[destination(index)]]}

    check_receipts(by_destination[destination(0)], only(0))
    check_receipts(by_destination[destination(1)], only(1), stat="UNDELIV", err=222, state=5)
    check_receipts(by_destination[destination(2)], only(2), stat="UNDELIV", err=101, state=5)


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [
        (SYSTEM_ID, "wrong", smpplib.consts.SMPP_ESME_RINVPASWD),  # 0x0E
        # bind_failure_status = "uniform": an unknown system_id looks like a wrong password.
        ("nobody", PASSWORD, smpplib.consts.SMPP_ESME_RINVPASWD),
    ],
    ids=["wrong-password", "unknown-system-id"],
)
@pytest.mark.parametrize("mode", ["transceiver", "transmitter", "receiver"])
def test_bind_refused(
    shared_gateway: tuple[GatewayProcess, FakeCommonProcess],
    mode: str,
    system_id: str,
    password: str,
    status: int,
) -> None:
    gw, _ = shared_gateway
    with esme(gw.smpp_port) as client, pytest.raises(smpplib.exceptions.PDUError) as refused:
        client.bind(mode, system_id=system_id, password=password)
    assert refused.value.args[1] == status
    # The gateway still serves the right credentials afterwards.
    with esme(gw.smpp_port) as client:
        assert client.bind(mode).status == ROK


def test_receipts_kept_until_a_receiver_binds(
    gateway: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gw, fake = gateway
    with esme(gw.smpp_port) as tx:
        assert tx.bind("transmitter").status == ROK
        sent = submit_many(tx, 5)
    # Every report reached the gateway while nobody could take a receipt.
    assert wait_for(lambda: fake.control()["reports_acknowledged"] >= 5, 10)
    with esme(gw.smpp_port) as rx:
        assert rx.bind("receiver").status == ROK
        assert rx.pump(lambda: len(rx.receipts) >= 5, 10), f"{len(rx.receipts)} receipts"
        rx.settle()
        check_receipts(rx.receipts, sent)


def test_store_and_forward_while_common_is_down(
    gateway: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gw, fake = gateway
    fake.control({"down": True})
    with esme(gw.smpp_port) as trx:
        assert trx.bind("transceiver").status == ROK
        sent = submit_many(trx, 10)  # all ESME_ROK: the gateway stores and forwards
        # The gateway tries (and fails) while Common is down.
        assert wait_for(lambda: fake.control()["requests"] > 0, 10)
        trx.settle(0.5)
        assert trx.receipts == []
        assert fake.control()["accepted"] == 0
        fake.control({"down": False})
        assert trx.pump(lambda: len(trx.receipts) >= 10, 15), f"{len(trx.receipts)} receipts"
        trx.settle()
        check_receipts(trx.receipts, sent)
    stats = fake.control()
    assert stats["accepted"] == 10
    assert stats["unique_ref_ids"] == 10
    assert stats["duplicate_ref_ids"] == 0
