"""Every kind of text and every operation through python-smpplib, checked at the
fake Common byte for byte (userData, dcs, userDataHeader) and back as receipts.

The ESME encodes, as an application would: GSM 03.38 with smpplib's own
`smpplib.gsm` helpers (data_coding 0, unpacked), UCS-2 as UTF-16BE (data_coding 8),
long texts split by `smpplib.gsm.make_parts` (8-bit reference UDH, esm_class 0x40)
or by hand (16-bit reference UDH), or sent whole in message_payload.

smpplib 2.2.4 has query_sm but no cancel_sm command class (its command factory
does not know cancel_sm or cancel_sm_resp, so even reading a cancel_sm_resp
fails); the `CancelSM`/`CancelSMResp` classes below add them the way an
application using smpplib would. It has no submit_multi at all (see
test_submit_multi_not_in_smpplib). Its COMMAND_STATES also only allow query_sm
and cancel_sm when bound as receiver or transceiver, so these tests bind as
transceiver.
"""

from __future__ import annotations

import random
import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import smpplib.client
import smpplib.command
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp
from smpplib.command import Param

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
from tests.interop.scenarios import SOURCE, SOURCE_NPI, SOURCE_TON, QueryAnswer

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
ROK = smpplib.consts.SMPP_ESME_ROK
ESME_RSUBMITFAIL = 0x45
BLOCK = "01"  # destinations of this module: 479901NNNN


def destination() -> str:
    return scenarios.destination(BLOCK)


# --- cancel_sm for smpplib --------------------------------------------------------


class CancelSM(smpplib.command.Command):
    """cancel_sm (SMPP 3.4 section 4.9.1), which smpplib lacks."""

    params = {
        "service_type": Param(type=str, max=6),
        "message_id": Param(type=str, max=65),
        "source_addr_ton": Param(type=int, size=1),
        "source_addr_npi": Param(type=int, size=1),
        "source_addr": Param(type=str, max=21),
        "dest_addr_ton": Param(type=int, size=1),
        "dest_addr_npi": Param(type=int, size=1),
        "destination_addr": Param(type=str, max=21),
    }
    params_order = (
        "service_type",
        "message_id",
        "source_addr_ton",
        "source_addr_npi",
        "source_addr",
        "dest_addr_ton",
        "dest_addr_npi",
        "destination_addr",
    )

    def __init__(self, command: str, **kwargs: Any) -> None:
        super().__init__(command, **kwargs)
        self._set_vars(**dict.fromkeys(self.params))


class CancelSMResp(smpplib.command.Command):
    params: dict[str, Param] = {}
    params_order = ()

    def __init__(self, command: str, **kwargs: Any) -> None:
        super().__init__(command, need_sequence=False, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def smpplib_knows_cancel_sm() -> Iterator[None]:
    original = smpplib.command.factory

    def factory(command_name: str, **kwargs: Any) -> Any:
        if command_name == "cancel_sm":
            return CancelSM(command_name, **kwargs)
        if command_name == "cancel_sm_resp":
            return CancelSMResp(command_name, **kwargs)
        return original(command_name, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(smpplib.command, "factory", factory)
        yield


# --- the client -------------------------------------------------------------------


class Esme:
    """A bound smpplib transceiver that keeps every response (by sequence) and
    every deliver_sm; implements scenarios.Client."""

    def __init__(self, port: int) -> None:
        self.client = smpplib.client.Client(HOST, port, timeout=5, allow_unknown_opt_params=False)
        self.responses: dict[int, Any] = {}
        self.deliveries: list[Any] = []

    def bind(self, system_id: str, password: str) -> None:
        self.client.connect()
        response = self.client.bind_transceiver(system_id=system_id, password=password)
        assert response.status == ROK

    # PDUs in and out

    def request(self, command: str, timeout: float = 10.0, **fields: Any) -> Any:
        """Send one request PDU; its response."""
        pdu = smpplib.smpp.make_pdu(command, client=self.client, **fields)
        self.client.send_pdu(pdu)
        sequence = pdu.sequence
        assert self.pump(lambda: sequence in self.responses, timeout), f"no {command}_resp"
        return self.responses.pop(sequence)

    def pump(self, until: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([self.client._socket], [], [], min(left, 0.2))
            if readable:
                self._read_one()
        return True

    def _read_one(self) -> None:
        pdu = self.client.read_pdu()
        if pdu.is_response():
            assert pdu.sequence not in self.responses, f"second response to {pdu.sequence}"
            self.responses[pdu.sequence] = pdu
        elif pdu.command == "deliver_sm":
            self.deliveries.append(pdu)
            answer = smpplib.smpp.make_pdu("deliver_sm_resp", client=self.client)
            answer.sequence = pdu.sequence
            self.client.send_pdu(answer)
        elif pdu.command == "enquire_link":
            answer = smpplib.smpp.make_pdu("enquire_link_resp", client=self.client)
            answer.sequence = pdu.sequence
            self.client.send_pdu(answer)
        else:
            raise AssertionError(f"unexpected {pdu.command} from the gateway")

    def submit_pdu(self, dest: str, **fields: Any) -> Any:
        """submit_sm from SOURCE to `dest` (international); its submit_sm_resp."""
        fields.setdefault("registered_delivery", 1)
        return self.request(
            "submit_sm",
            source_addr_ton=SOURCE_TON,
            source_addr_npi=SOURCE_NPI,
            source_addr=SOURCE,
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            destination_addr=dest,
            **fields,
        )

    # scenarios.Client

    def submit(self, destination: str, text: str, *, registered_delivery: int = 1) -> str:
        response = self.submit_pdu(
            destination,
            short_message=text.encode("ascii"),
            data_coding=0,
            registered_delivery=registered_delivery,
        )
        assert response.status == ROK, f"submit_sm_resp status {response.status:#x}"
        message_id: str = response.message_id.decode("ascii")
        assert message_id
        return message_id

    def query(self, message_id: str, source: str = SOURCE) -> QueryAnswer:
        response = self.request(
            "query_sm",
            message_id=message_id,
            source_addr_ton=SOURCE_TON,
            source_addr_npi=SOURCE_NPI,
            source_addr=source,
        )
        assert response.command == "query_sm_resp"
        return QueryAnswer(
            status=response.status,
            message_id=_text(response.message_id),
            final_date=_text(response.final_date),
            message_state=response.message_state,
            error_code=response.error_code,
        )

    def cancel(self, message_id: str, destination: str = "", source: str = SOURCE) -> int:
        response = self.request(
            "cancel_sm",
            service_type="",
            message_id=message_id,
            source_addr_ton=SOURCE_TON,
            source_addr_npi=SOURCE_NPI,
            source_addr=source,
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL if destination else 0,
            dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN if destination else 0,
            destination_addr=destination,
        )
        assert response.command == "cancel_sm_resp"
        status: int = response.status
        return status

    def receipts(self) -> list[Receipt]:
        found = []
        for pdu in self.deliveries:
            if not pdu.esm_class & 0x3C:
                continue
            found.append(
                Receipt(
                    receipted_message_id=pdu.receipted_message_id.decode("ascii"),
                    text=pdu.short_message.decode("ascii"),
                    esm_class=pdu.esm_class,
                    data_coding=pdu.data_coding,
                    message_state=pdu.message_state,
                    network_error_code=pdu.network_error_code,
                    source_addr=pdu.source_addr.decode("ascii"),
                    destination_addr=pdu.destination_addr.decode("ascii"),
                )
            )
        return found

    def wait_receipts(self, ids: set[str], timeout: float = 10.0) -> dict[str, Receipt]:
        def mine() -> list[Receipt]:
            return [r for r in self.receipts() if r.receipted_message_id in ids]

        self.pump(lambda: {r.receipted_message_id for r in mine()} >= ids, timeout)
        self.pump(lambda: False, 0.3)  # a second receipt for one of them would show
        found: dict[str, Receipt] = {}
        for receipt in mine():
            assert receipt.receipted_message_id not in found, (
                f"second receipt for {receipt.receipted_message_id}"
            )
            found[receipt.receipted_message_id] = receipt
        assert set(found) == ids, f"no receipt for {sorted(ids - set(found))}"
        return found

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


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("ascii")


@contextmanager
def bound(port: int, system_id: str = SYSTEM_ID, password: str = PASSWORD) -> Iterator[Esme]:
    esme = Esme(port)
    try:
        esme.bind(system_id, password)
        yield esme
    finally:
        esme.close()


def open_client(gw: GatewayProcess) -> scenarios.OpenClient:
    return lambda system_id, password: bound(gw.smpp_port, system_id, password)


def check_single(
    fake: FakeCommonProcess, esme: Esme, dest: str, message_id: str, text: str
) -> dict[str, Any]:
    """Exactly one Common message for `dest`, carrying `text` as TEXT, and its receipt."""
    [message] = wait_for_messages(fake, "+" + dest, 1)
    assert message["userData"] == text
    assert message["dcs"] == "TEXT"
    assert "userDataHeader" not in message
    assert message["source"] == SOURCE
    assert message["sourceTON"] == "ALPHANUMERIC"
    receipt = esme.wait_receipts({message_id})[message_id]
    check_receipt(receipt, message_id=message_id, destination=dest, source=SOURCE, text=text)
    return message


# --- 1. GSM 03.38 with extension characters ----------------------------------------


def test_gsm_text_with_extension_characters(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gw, fake = ops_gateway
    octets = smpplib.gsm.gsm_encode(GSM_TEXT)
    assert octets == GSM_TEXT_OCTETS  # smpplib encodes as GSM 03.38 says
    dest = destination()
    with bound(gw.smpp_port) as esme:
        response = esme.submit_pdu(dest, short_message=octets, data_coding=0)
        assert response.status == ROK
        check_single(fake, esme, dest, response.message_id.decode(), GSM_TEXT)


# --- 2. UCS-2 ----------------------------------------------------------------------


def test_ucs2_text(ops_gateway: tuple[GatewayProcess, FakeCommonProcess]) -> None:
    gw, fake = ops_gateway
    dest = destination()
    with bound(gw.smpp_port) as esme:
        response = esme.submit_pdu(dest, short_message=UCS2_TEXT.encode("utf-16-be"), data_coding=8)
        assert response.status == ROK
        check_single(fake, esme, dest, response.message_id.decode(), UCS2_TEXT)


def test_ucs2_outside_the_bmp_is_refused(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gw, fake = ops_gateway
    dest = destination()
    octets = EMOJI_TEXT.encode("utf-16-be")
    assert b"\xd8\x3d\xde\x00" in octets  # the surrogate pair of U+1F600
    with bound(gw.smpp_port) as esme:
        response = esme.submit_pdu(dest, short_message=octets, data_coding=8)
        assert response.status == ESME_RSUBMITFAIL, f"status {response.status:#x}"
        scenarios.sentinel_arrived(esme, fake, BLOCK)
        assert [r for r in esme.receipts() if r.source_addr == dest] == []
    assert messages_to(fake, "+" + dest) == []


# --- 3. long text split by the ESME with a UDH ---------------------------------------


def check_segments(
    fake: FakeCommonProcess,
    esme: Esme,
    dest: str,
    sent: list[tuple[str, bytes, str]],
    dcs: str,
) -> None:
    """One Common message per (message_id, udh, text) segment, and one receipt each."""
    messages = wait_for_messages(fake, "+" + dest, len(sent))
    assert len(messages) == len(sent)
    by_header = {m["userDataHeader"]: m for m in messages}
    assert len(by_header) == len(sent), "two segments with one UDH"
    receipts = esme.wait_receipts({message_id for message_id, _, _ in sent})
    for message_id, udh, text in sent:
        message = by_header[udh.hex().upper()]
        assert message["userData"] == text
        assert message["dcs"] == dcs
        check_receipt(
            receipts[message_id], message_id=message_id, destination=dest, source=SOURCE, text=text
        )


def test_long_gsm_text_split_by_make_parts(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gw, fake = ops_gateway
    parts, encoding, esm_class = smpplib.gsm.make_parts("".join(GSM_SEGMENTS))
    assert (encoding, esm_class) == (smpplib.consts.SMPP_ENCODING_DEFAULT, 0x40)
    assert len(parts) == len(GSM_SEGMENTS)
    for seq, (part, text) in enumerate(zip(parts, GSM_SEGMENTS, strict=True), start=1):
        assert part[:3] == b"\x05\x00\x03" and part[4:6] == bytes((len(parts), seq))
        assert part[6:] == smpplib.gsm.gsm_encode(text)  # the split falls where we expect
    dest = destination()
    with bound(gw.smpp_port) as esme:
        sent = []
        for part, text in zip(parts, GSM_SEGMENTS, strict=True):
            response = esme.submit_pdu(
                dest, short_message=part, data_coding=encoding, esm_class=esm_class
            )
            assert response.status == ROK, f"submit_sm_resp status {response.status:#x}"
            sent.append((response.message_id.decode(), part[:6], text))
        assert len({message_id for message_id, _, _ in sent}) == len(sent)
        check_segments(fake, esme, dest, sent, "GSM")


def test_escape_pair_split_by_make_parts_is_made_whole(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    # make_parts cuts by octets: here between the 1B and the 65 of the euro sign.
    # SMPP-NOTES section 6: the gateway puts the pair back together, in the second part.
    gw, fake = ops_gateway
    tail = "€ tail, and long enough to need a second part"
    parts, encoding, esm_class = smpplib.gsm.make_parts("x" * 152 + tail)
    assert parts[0][-1:] == b"\x1b" and parts[1][6:7] == b"\x65"
    dest = destination()
    with bound(gw.smpp_port) as esme:
        sent = []
        for part, expected in zip(parts, ("x" * 152, tail), strict=True):
            response = esme.submit_pdu(
                dest, short_message=part, data_coding=encoding, esm_class=esm_class
            )
            assert response.status == ROK, f"submit_sm_resp status {response.status:#x}"
            sent.append((response.message_id.decode(), part[:6], expected))
        check_segments(fake, esme, dest, sent, "GSM")


def test_long_ucs2_text_with_16_bit_reference(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gw, fake = ops_gateway
    ref = random.randint(0x100, 0xFFFF)
    total = len(UCS2_SEGMENTS)
    dest = destination()
    with bound(gw.smpp_port) as esme:
        sent = []
        for seq, text in enumerate(UCS2_SEGMENTS, start=1):
            udh = bytes((0x06, 0x08, 0x04, ref >> 8, ref & 0xFF, total, seq))
            response = esme.submit_pdu(
                dest, short_message=udh + text.encode("utf-16-be"), data_coding=8, esm_class=0x40
            )
            assert response.status == ROK, f"submit_sm_resp status {response.status:#x}"
            sent.append((response.message_id.decode(), udh, text))
        check_segments(fake, esme, dest, sent, "UCS2")


# --- 4. long text in message_payload -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "data_coding"),
    [(PAYLOAD_GSM_TEXT, 0), (PAYLOAD_UCS2_TEXT, 8)],
    ids=["gsm", "ucs2"],
)
def test_long_text_in_message_payload(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess], text: str, data_coding: int
) -> None:
    gw, fake = ops_gateway
    octets = smpplib.gsm.gsm_encode(text) if data_coding == 0 else text.encode("utf-16-be")
    assert len(octets) > 254  # more than short_message can hold
    dest = destination()
    with bound(gw.smpp_port) as esme:
        response = esme.submit_pdu(dest, message_payload=octets, data_coding=data_coding)
        assert response.status == ROK, f"submit_sm_resp status {response.status:#x}"
        check_single(fake, esme, dest, response.message_id.decode(), text)


# --- 5. query_sm and cancel_sm ------------------------------------------------------


@pytest.mark.query_cancel
@pytest.mark.parametrize("scenario", scenarios.QUERY_CANCEL, ids=lambda f: f.__name__)
def test_query_and_cancel(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess],
    scenario: Callable[[Any, FakeCommonProcess, str], None],
) -> None:
    gw, fake = ops_gateway
    scenario(open_client(gw), fake, BLOCK)


# --- 6. submit_multi -----------------------------------------------------------------


@pytest.mark.submit_multi
def test_submit_multi_not_in_smpplib() -> None:
    # Not a silent skip: smpplib 2.2.4 cannot send submit_multi. Its command
    # factory has no submit_multi class, and its Param types cannot express the
    # dest_address list (number_of_dests, then per destination a dest_flag and
    # either ton/npi/address or a distribution list name). node-smpp can:
    # test_node_operations.py::test_submit_multi_two_destinations covers it.
    with pytest.raises(smpplib.exceptions.UnknownCommandError):
        smpplib.smpp.make_pdu("submit_multi")
    pytest.skip("smpplib 2.2.4 has no submit_multi; covered by the node-smpp test")


# --- 7. long text in parts of 254 octets with sar_* TLVs ------------------------------


def send_sar_parts(
    esme: Any, dest: str, parts: list[bytes], pieces: list[str], data_coding: int
) -> list[tuple[str, str]]:
    """Each part with smpplib's sar_* optional parameters (one random reference);
    (message_id, the text of the part) for each, every one answered ESME_ROK."""
    ref = random.randint(0, 0xFFFF)
    sent = []
    for seq, (part, piece) in enumerate(zip(parts, pieces, strict=True), start=1):
        response = esme.submit_pdu(
            dest,
            short_message=part,
            data_coding=data_coding,
            sar_msg_ref_num=ref,
            sar_total_segments=len(parts),
            sar_segment_seqnum=seq,
        )
        assert response.status == ROK, f"part {seq}: submit_sm_resp {response.status:#x}"
        sent.append((response.message_id.decode("ascii"), piece))
    return sent


@pytest.mark.parametrize(
    ("text", "data_coding"),
    [(sar.SAR_GSM_TEXT, 0), (sar.SAR_UCS2_TEXT, 8)],
    ids=["gsm", "ucs2"],
)
def test_long_text_in_254_octet_sar_parts(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess], text: str, data_coding: int
) -> None:
    # The application encodes, cuts with smpplib's own splitter at the size it
    # chooses (254 octets, the most short_message holds) and numbers the parts
    # with smpplib's sar_* optional parameters; no UDH, esm_class 0.
    gw, fake = ops_gateway
    ucs2 = data_coding == 8
    octets = text.encode("utf-16-be") if ucs2 else smpplib.gsm.gsm_encode(text)
    parts = smpplib.gsm.split_sequence(octets, sar.SAR_PART)
    pieces = sar.sar_pieces(text, ucs2)
    assert [len(part) for part in parts[:-1]] == [254, 254] and len(parts) == 3
    encode = smpplib.gsm.gsm_encode if not ucs2 else (lambda t: t.encode("utf-16-be"))
    assert parts == [encode(piece) for piece in pieces]  # no cut inside a character
    dest = destination()
    with bound(gw.smpp_port) as esme:
        sent = send_sar_parts(esme, dest, parts, pieces, data_coding)
        sar.check_sar_message(fake, esme, dest, sent, text, ucs2)


def test_escape_pair_split_at_254_octets_is_made_whole(
    ops_gateway: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    # split_sequence cuts by octets: here between the 1B and the 65 of the euro
    # sign, so the second part is 254 octets starting with a lone 65. The gateway
    # carries the 1B over (gateway/smpp/escapes.py); the whole text reaches Common
    # and the euro sign counts as the second part's.
    gw, fake = ops_gateway
    text = "x" * 253 + "€" + "y" * 253 + " and the tail"
    parts = smpplib.gsm.split_sequence(smpplib.gsm.gsm_encode(text), sar.SAR_PART)
    assert [len(part) for part in parts] == [254, 254, 13]
    assert parts[0][-1:] == b"\x1b" and parts[1][:1] == b"\x65"
    pieces = ["x" * 253, "€" + "y" * 253, " and the tail"]
    dest = destination()
    with bound(gw.smpp_port) as esme:
        sent = send_sar_parts(esme, dest, parts, pieces, 0)
        sar.check_sar_message(fake, esme, dest, sent, text, ucs2=False)
