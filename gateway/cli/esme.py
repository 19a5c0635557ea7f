"""A blocking SMPP client for `smpp-gateway send`: one message and its receipt.

Responsible for: binding as a transceiver over a plain socket, submitting one
text (GSM 03.38 when every character allows it, else UCS-2; in
``message_payload`` when it does not fit one SMS, so that the gateway and LINK
split it), and waiting for the delivery receipt of that message.

The protocol is the project's own sans-IO session (gateway/smpp/session.py) in
the ESME role: it numbers requests, matches responses and answers the
gateway's enquire_link by itself; this module only moves bytes and decides
what to answer deliver_sm with.

What always holds:

* Every deliver_sm is answered. The receipt for our message gets ESME_ROK;
  anything else (another message's receipt, an MO for the account) gets
  ESME_RX_T_APPN, a temporary refusal, so the gateway keeps it for the
  account's own ESMEs instead of handing it to this short-lived bind.
* Nothing here waits past the caller's deadline: every read uses the time left.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from gateway.smpp import pdu as p
from gateway.smpp.receipts import ReceiptError, parse_receipt_text
from gateway.smpp.session import ProtocolError, Request, Response, Role, Session, Unbound
from gateway.smpp.text import encode_for_esme

# One SMS without a UDH: 160 GSM septets (sent unpacked, one octet each) or 140 octets.
_GSM_SINGLE: Final = 160
_UCS2_SINGLE: Final = 140
_ESM_CLASS_TYPE: Final = 0x3C
# Receipt stats that say "not yet": the wait goes on after them. The gateway
# sends ENROUTE for every intermediate state; ACCEPTD is final (SMPP 3.4, and
# LINK's SMPP route sends it so).
INTERMEDIATE_STATS: Final = frozenset({"ENROUTE"})
_TON_INTERNATIONAL, _TON_NETWORK, _TON_ALPHANUMERIC = 1, 3, 5
_NPI_ISDN = 1


class SmppFailure(Exception):
    """The gateway refused or did not answer a request, or the connection failed."""

    def __init__(self, what: str, status: int | None = None) -> None:
        if status is not None:
            what = f"{what}: {status_name(status)}"
        super().__init__(what)
        self.status = status


def status_name(status: int) -> str:
    try:
        name = p.CommandStatus(status).name
    except ValueError:
        name = "unknown status"
    return f"{name} (0x{status:08X})"


@dataclass(frozen=True)
class ReceiptInfo:
    message_id: str
    stat: str
    err: str
    done_date: str
    text: str

    @property
    def final(self) -> bool:
        return self.stat not in INTERMEDIATE_STATS


def source_address(source: str) -> tuple[str, int, int]:
    """(addr, ton, npi) the way a careful ESME sends a sender.

    ``+digits`` international, up to 8 digits a short code, more digits an
    MSISDN, anything else alphanumeric.
    """
    digits = source[1:] if source.startswith("+") else source
    if digits.isdigit() and digits.isascii():
        if source.startswith("+") or len(digits) > 8:
            return digits, _TON_INTERNATIONAL, _NPI_ISDN
        return digits, _TON_NETWORK, 0
    return source, _TON_ALPHANUMERIC, 0


def destination_address(destination: str) -> tuple[str, int, int]:
    """``+digits`` international; bare digits TON 0, so the gateway's rules (and the
    account's default_country_code) decide as for any ESME. ValueError otherwise."""
    digits = destination[1:] if destination.startswith("+") else destination
    if not (digits.isdigit() and digits.isascii()) or len(digits) > 20:
        raise ValueError(f"{destination!r} is not a phone number (digits, optionally with '+')")
    if destination.startswith("+"):
        return digits, _TON_INTERNATIONAL, _NPI_ISDN
    return digits, 0, _NPI_ISDN


def submit_for(
    text: str, source: str, destination: str, registered_delivery: int = 1
) -> p.SubmitSm:
    """A submit_sm carrying ``text`` whole: short_message or message_payload."""
    data_coding, octets = encode_for_esme(text)
    single = _GSM_SINGLE if data_coding == 0 else _UCS2_SINGLE
    if len(octets) > 0xFFFF:
        raise ValueError("text too long for one message_payload")
    source_addr, source_ton, source_npi = source_address(source)
    dest_addr, dest_ton, dest_npi = destination_address(destination)
    submit = p.SubmitSm(
        source_addr_ton=source_ton,
        source_addr_npi=source_npi,
        source_addr=source_addr,
        dest_addr_ton=dest_ton,
        dest_addr_npi=dest_npi,
        destination_addr=dest_addr,
        registered_delivery=registered_delivery,
        data_coding=data_coding,
    )
    if len(octets) <= single:
        submit.short_message = octets
    else:
        submit.tlvs.append((p.Tag.MESSAGE_PAYLOAD, octets))
    return submit


def receipt_for(pdu: p.DeliverSm) -> ReceiptInfo | None:
    """The receipt in a deliver_sm, or None when it carries an MO."""
    if pdu.esm_class & _ESM_CLASS_TYPE != p.ESM_CLASS_RECEIPT:
        return None
    try:
        parsed = parse_receipt_text(pdu.short_message)
    except ReceiptError:
        return None
    receipted = pdu.tlv(p.Tag.RECEIPTED_MESSAGE_ID)
    message_id = (
        receipted.rstrip(b"\0").decode("latin-1") if receipted is not None else parsed.message_id
    )
    return ReceiptInfo(message_id, parsed.stat, parsed.err, parsed.done_date, parsed.text)


class BlockingEsme:
    """One transceiver connection; every call takes an absolute ``time.monotonic`` deadline."""

    def __init__(self, host: str, port: int, deadline: float) -> None:
        try:
            self._sock = socket.create_connection((host, port), timeout=_left(deadline))
        except OSError as e:
            raise SmppFailure(f"cannot connect to {host}:{port}: {e.strerror or e}") from None
        self._session = Session(Role.ESME, window=10, send_window=1, max_pdu_length=1 << 20)
        # What to answer a deliver_sm with; the default keeps everything for others.
        self.on_deliver: Callable[[p.DeliverSm], int] = lambda _: p.CommandStatus.ESME_RX_T_APPN

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> BlockingEsme:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def bind(self, system_id: str, password: str, deadline: float) -> None:
        bind = p.BindTransceiver(system_id=system_id, password=password)
        response = self.request(bind, deadline, "bind_transceiver")
        if response.status != p.CommandStatus.ESME_ROK:
            raise SmppFailure("bind refused", response.status)

    def submit(self, submit: p.SubmitSm, deadline: float) -> str:
        response = self.request(submit, deadline, "submit_sm")
        if response.status != p.CommandStatus.ESME_ROK:
            raise SmppFailure("submit_sm refused", response.status)
        assert isinstance(response, p.SubmitSmResp)
        return response.message_id

    def unbind(self, deadline: float) -> None:
        """Unbind politely; a gateway that does not answer in time is left as it is."""
        with contextlib.suppress(SmppFailure, TimeoutError):
            self.request(p.Unbind(), deadline, "unbind")

    def request(self, pdu: p.Pdu, deadline: float, what: str) -> p.Pdu:
        sequence = self._session.send_request(pdu, time.monotonic())
        answer: list[p.Pdu] = []

        def answered(response: p.Pdu) -> bool:
            if response.sequence != sequence:
                return False
            answer.append(response)
            return True

        try:
            self.run_until(lambda: bool(answer), deadline, answered)
        except TimeoutError:
            raise SmppFailure(f"no answer to {what} in time") from None
        return answer[0]

    def run_until(
        self,
        done: Callable[[], bool],
        deadline: float,
        on_response: Callable[[p.Pdu], bool] = lambda _: False,
    ) -> None:
        """Read and handle PDUs until ``done()``; TimeoutError at the deadline."""
        session = self._session
        while True:
            # Stop at once when done: a PDU right behind the awaited one (a receipt
            # behind its submit_sm_resp) must wait for the caller's next step.
            while not done() and (event := session.next_event()) is not None:
                if isinstance(event, Response):
                    on_response(event.pdu)
                elif isinstance(event, Request):
                    self._answer(event.pdu)
                elif isinstance(event, ProtocolError) and event.fatal:
                    self._flush()
                    raise SmppFailure(f"protocol error from the gateway: {event.reason}")
                elif isinstance(event, Unbound):
                    self._flush()
                    if not done():
                        raise SmppFailure("the gateway ended the session")
            self._flush()
            if done():
                return
            self._sock.settimeout(_left(deadline))
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                raise TimeoutError("deadline reached") from None
            except OSError as e:
                raise SmppFailure(f"connection failed: {e.strerror or e}") from None
            if not data:
                raise SmppFailure("the gateway closed the connection")
            session.receive_data(data)

    def _answer(self, request: p.Pdu) -> None:
        response_class = p.response_class(request.command_id)
        if response_class is None:
            return  # alert_notification: nothing to answer
        if isinstance(request, p.DeliverSm):
            status = self.on_deliver(request)
        else:
            status = p.CommandStatus.ESME_RX_T_APPN
        self._session.respond(request, response_class(status=status))

    def _flush(self) -> None:
        data = self._session.data_to_send()
        if data:
            try:
                self._sock.sendall(data)
            except OSError as e:
                raise SmppFailure(f"connection failed: {e.strerror or e}") from None


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline reached")
    return left


def send_and_wait(
    host: str,
    port: int,
    *,
    system_id: str,
    password: str,
    submit: p.SubmitSm,
    timeout: float,
    submitted: Callable[[str], None],
    intermediate: Callable[[ReceiptInfo], None] = lambda _: None,
) -> ReceiptInfo | None:
    """Bind, submit, wait for the final receipt; None when ``timeout`` runs out first.

    ``submitted`` is told our message id as soon as the gateway answers. Bind
    and submit problems (and a timeout before the submit_sm_resp) raise
    SmppFailure.
    """
    deadline = time.monotonic() + timeout
    final: list[ReceiptInfo] = []
    message_id: list[str] = []

    def on_deliver(pdu: p.DeliverSm) -> int:
        receipt = receipt_for(pdu)
        if receipt is None or not message_id or receipt.message_id != message_id[0]:
            return p.CommandStatus.ESME_RX_T_APPN
        if receipt.final:
            final.append(receipt)
        else:
            intermediate(receipt)
        return p.CommandStatus.ESME_ROK

    with BlockingEsme(host, port, deadline) as esme:
        esme.on_deliver = on_deliver
        esme.bind(system_id, password, deadline)
        message_id.append(esme.submit(submit, deadline))
        submitted(message_id[0])
        with contextlib.suppress(TimeoutError):
            esme.run_until(lambda: bool(final), deadline)
        esme.unbind(time.monotonic() + 2.0)
    return final[0] if final else None


__all__ = [
    "INTERMEDIATE_STATS",
    "BlockingEsme",
    "ReceiptInfo",
    "SmppFailure",
    "destination_address",
    "receipt_for",
    "send_and_wait",
    "source_address",
    "status_name",
    "submit_for",
]
