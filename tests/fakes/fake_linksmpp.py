"""A fake of LINK's SMPP endpoint (seed 004), for the LINK SMPP connector's tests.

Responsible for behaving like LINK as far as seed 004 describes it, and for
recording what a client did so that tests can check it: TLS with a test CA
made at start (or plain TCP), binds checked against one system_id/password,
at most `max_binds` bound connections, a window of 1 each way, a rate limit,
submit_sm_resp ids in a chosen style, receipts as deliver_sm (esm_class 0x04)
in LINK's default (`YYMMDDhhmmss`) or minute-only date format, an idle timeout.

Built on the gateway's own sans-IO `Session` (Role.SMSC) and `SmppProtocol`.
Used in-process (`FakeLinkSmpp(reactor, ...)`, real reactor, 127.0.0.1) and as
a process: ``python -m tests.fakes.fake_linksmpp --port N [--control-port M]``
prints ``listening on PORT`` then ``control on PORT``; the control port serves
``GET /_control`` (stats as JSON), ``GET /_submits`` (every submit_sm as
received), and ``POST /_control`` with a JSON object of commands (see
`FakeLinkSmpp.control`).

What always holds:
- Every submit_sm gets one answer; one that arrives while another is
  unanswered (a window violation) gets ESME_RTHROTTLED from the session and is
  counted; one over the rate limit gets ESME_RTHROTTLED and is counted. Answers
  go out one reactor turn later (or after `response_delay`), so a client that
  pipelines is caught even when both PDUs arrive in one read.
- Throttles asked for (`throttle_next`) are counted apart from violations.
- Every accepted submit_sm that asked for one (registered_delivery) gets
  exactly one receipt, kept until the client
  acknowledges it with ESME_ROK; on another status it is sent again after
  `redeliver_delay`, on a lost connection after the next bind. deliver_sm go
  out one at a time (window 1 outwards).
- Every connection, bind and close is recorded with its time (the reactor's
  clock), so tests can check the reconnect delay.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from gateway.config import SmppSettings
from gateway.ratelimit import TokenBucket
from gateway.smpp import pdu as p
from gateway.smpp.codec import Framer, PduError
from gateway.smpp.session import (
    BOUND,
    BindState,
    Event,
    ProtocolError,
    Request,
    Response,
    Role,
    Unbound,
)
from gateway.smpp.text import TextError, decode_content, encode_for_esme, segment
from gateway.transport.protocol import LinkLost, LinkTimeout, SmppProtocol
from tests.fakes.fake_common import QuietSite
from tests.tlspki import ServerTls, make_pem

S = p.CommandStatus
C = p.CommandId

ID_STYLES = ("decimal", "hex", "hex_lower", "zeros", "hex_zeros")
RECEIPT_ID_VARIANTS = ("same", "other_base", "other_case", "zeros", "stripped")
RECEIPT_FORMATS = ("seconds", "minutes")
_DATE_FORMATS = {"seconds": "%y%m%d%H%M%S", "minutes": "%y%m%d%H%M"}
_RECEIVES = (BindState.BOUND_TRX, BindState.BOUND_RX)
_ENQUIRE_LINK_ID = int(C.ENQUIRE_LINK).to_bytes(4, "big")
_STATE_OF = {
    "ENROUTE": 1,
    "DELIVRD": 2,
    "EXPIRED": 3,
    "DELETED": 4,
    "UNDELIV": 5,
    "ACCEPTD": 6,
    "UNKNOWN": 7,
    "REJECTD": 8,
}


# --- records -----------------------------------------------------------------------


@dataclass
class ConnectionRecord:
    number: int
    connected_at: float
    closed_at: float | None = None
    bind_mode: str | None = None
    bind_system_id: str | None = None
    bind_status: int | None = None
    bind_answered_at: float | None = None
    bound_at: float | None = None
    enquire_links: int = 0
    unbound_at: float | None = None  # the client unbound before closing
    close_reason: str = ""


@dataclass
class SubmitRecord:
    """One submit_sm as the fake saw it, and what it answered."""

    at: float
    connection: int
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    esm_class: int
    data_coding: int
    priority_flag: int
    registered_delivery: int
    validity_period: str
    schedule_delivery_time: str
    short_message: str  # hex
    udh: str  # hex, "" without one
    text: str | None  # decoded when the data_coding allows
    outcome: str  # accepted, rate, throttled, refused, dropped
    status: int | None = None
    message_id: str | None = None


@dataclass
class Delivery:
    """A deliver_sm the fake sends (receipt or MO) and the client's answers to it."""

    kind: str  # "receipt" or "mo"
    pdu: p.DeliverSm
    created_at: float
    answers: list[tuple[float, int | None]] = field(default_factory=list)
    acked_at: float | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "short_message": self.pdu.short_message.hex(),
            "source_addr": self.pdu.source_addr,
            "destination_addr": self.pdu.destination_addr,
            "created_at": self.created_at,
            "answers": self.answers,
            "acked_at": self.acked_at,
        }


# --- one connection -----------------------------------------------------------------


class _FakeProtocol(SmppProtocol):
    connection: _SmscConnection
    _shadow: Framer | None = None

    def dataReceived(self, data: bytes) -> None:
        # enquire_link is answered inside the session, which reports nothing:
        # count them from a second look at the frames.
        if self._shadow is None:
            self._shadow = Framer(self.settings.max_pdu_length)
        self._shadow.feed(data)
        try:
            while (frame := self._shadow.next_frame()) is not None:
                if frame[4:8] == _ENQUIRE_LINK_ID:
                    self.connection.record.enquire_links += 1
        except PduError:
            pass  # the session sees the same broken framing and answers it
        super().dataReceived(data)

    def connectionMade(self) -> None:
        super().connectionMade()
        self.connection.made()

    def connectionLost(self, reason: Failure = Failure(Exception("closed"))) -> None:  # noqa: B008
        self.connection.record.close_reason = reason.getErrorMessage()
        super().connectionLost(reason)


class _SmscConnection:
    def __init__(self, fake: FakeLinkSmpp, protocol: _FakeProtocol, number: int) -> None:
        self.fake = fake
        self.protocol = protocol
        self.record = ConnectionRecord(number, fake.reactor.seconds())
        self.sending: Delivery | None = None
        self.lost: Deferred[None] = Deferred()

    def made(self) -> None:
        self.record.connected_at = self.fake.reactor.seconds()
        self.fake.connections.append(self.record)
        self.fake.live.add(self)

    @property
    def bound(self) -> bool:
        return self.protocol.session.state in BOUND

    @property
    def receives(self) -> bool:
        return self.protocol.session.state in _RECEIVES

    def event(self, event: Event) -> None:
        fake = self.fake
        if isinstance(event, Request):
            pdu = event.pdu
            if isinstance(pdu, p.BindTransceiver | p.BindTransmitter | p.BindReceiver):
                self._bind(pdu)
            elif isinstance(pdu, p.SubmitSm):
                self._submit(pdu)
            else:
                # Seed 004 lists BIND, UNBIND, GENERIC_NACK, SUBMIT_SM, DELIVER_SM,
                # ENQUIRE_LINK: anything else is not supported.
                response = p.response_class(pdu.command_id)
                if response is not None:
                    self._answer(pdu, response(status=S.ESME_RINVCMDID))
        elif isinstance(event, ProtocolError):
            if event.status == S.ESME_RTHROTTLED and "over the window" in event.reason:
                fake.violations["window"] += 1
            else:
                fake.protocol_errors.append(event.reason)
        elif isinstance(event, Unbound):
            self.record.unbound_at = fake.reactor.seconds()

    def closed(self) -> None:
        fake = self.fake
        self.record.closed_at = fake.reactor.seconds()
        fake.live.discard(self)
        if self.sending is not None:
            # Never acknowledged: LINK keeps it for the next connection.
            fake.outbox.appendleft(self.sending)
            self.sending = None
        self.lost.callback(None)
        fake._pump_outbox()

    def _answer(self, request: p.Pdu, response: p.Pdu) -> None:
        if self.protocol.session.state is BindState.CLOSED:
            return
        self.protocol.respond(request, response)

    def _bind(self, pdu: p.BindTransceiver | p.BindTransmitter | p.BindReceiver) -> None:
        fake = self.fake
        record = self.record
        record.bind_mode = p.BIND_NAMES[pdu.command_id]
        record.bind_system_id = pdu.system_id
        if pdu.system_id != fake.system_id:
            status = S.ESME_RINVSYSID
        elif pdu.password != fake.password:
            status = S.ESME_RINVPASWD
        elif fake.refuse_binds or sum(1 for c in fake.live if c.bound) >= fake.max_binds:
            status = S.ESME_RBINDFAIL
        else:
            status = S.ESME_ROK
        record.bind_status = status
        record.bind_answered_at = fake.reactor.seconds()
        response = p.BIND_RESPONSES[pdu.command_id](status=status, system_id="LINK")
        self._answer(pdu, response)
        if status == S.ESME_ROK:
            record.bound_at = fake.reactor.seconds()
            fake._pump_outbox()

    def _submit(self, pdu: p.SubmitSm) -> None:
        fake = self.fake
        record = _submit_record(pdu, fake.reactor.seconds(), self.record.number)
        fake.submits.append(record)
        if fake.drop_next_submit > 0:
            # A window's worth in flight and the link goes: the client cannot know
            # whether LINK took it.
            fake.drop_next_submit -= 1
            record.outcome = "dropped"
            self.protocol.transport.abortConnection()  # type: ignore[union-attr]
            return
        if fake.script:
            scripted = fake.script.popleft()
            if scripted is not None:
                record.outcome = "scripted"
                self._later(pdu, record, scripted)
                return
        if fake.throttle_next > 0:
            fake.throttle_next -= 1
            record.outcome = "throttled"
            self._later(pdu, record, S.ESME_RTHROTTLED)
            return
        if not fake.bucket.take():
            fake.violations["rate"] += 1
            record.outcome = "rate"
            self._later(pdu, record, S.ESME_RTHROTTLED)
            return
        status = fake.submit_status.get(pdu.destination_addr.lstrip("+"))
        if status is not None:
            record.outcome = "refused"
            self._later(pdu, record, status)
            return
        record.outcome = "accepted"
        number = fake._next_number()
        record.message_id = fake.format_id(number)
        self._later(pdu, record, S.ESME_ROK)
        fake._schedule_receipt(pdu, number, record)

    def _later(self, request: p.SubmitSm, record: SubmitRecord, status: int) -> None:
        record.status = status
        response = p.SubmitSmResp(status=status, message_id=record.message_id or "")
        self.fake._call(self.fake.response_delay, self._answer, request, response)


def _submit_record(pdu: p.SubmitSm, at: float, connection: int) -> SubmitRecord:
    udh = b""
    body = pdu.short_message
    if pdu.esm_class & p.ESM_CLASS_UDHI and body:
        udh, body = body[: body[0] + 1], body[body[0] + 1 :]
    text: str | None
    try:
        text = decode_content(pdu.data_coding, body, udhi=False).text
    except TextError:
        text = None
    return SubmitRecord(
        at=at,
        connection=connection,
        source_addr=pdu.source_addr,
        source_addr_ton=pdu.source_addr_ton,
        source_addr_npi=pdu.source_addr_npi,
        destination_addr=pdu.destination_addr,
        dest_addr_ton=pdu.dest_addr_ton,
        dest_addr_npi=pdu.dest_addr_npi,
        esm_class=pdu.esm_class,
        data_coding=pdu.data_coding,
        priority_flag=pdu.priority_flag,
        registered_delivery=pdu.registered_delivery,
        validity_period=pdu.validity_period,
        schedule_delivery_time=pdu.schedule_delivery_time,
        short_message=pdu.short_message.hex(),
        udh=udh.hex(),
        text=text,
        outcome="",
    )


class _Factory(Factory):
    def __init__(self, fake: FakeLinkSmpp) -> None:
        self.fake = fake

    def buildProtocol(self, addr: Any) -> _FakeProtocol:
        fake = self.fake
        settings = SmppSettings(
            window=fake.window,
            # Over the window: ESME_RTHROTTLED at once, as LINK would, counted.
            window_overrun="throttle",
            bind_timeout=30.0,
            inactivity_timeout=fake.idle_timeout,
            enquire_link_interval=0.0,  # LINK waits for the client's pings
            response_timeout=fake.deliver_timeout,
        )
        tick = min(1.0, max(0.02, min(fake.idle_timeout, fake.deliver_timeout) / 10))
        protocol = _FakeProtocol(fake.reactor, settings, Role.SMSC, 1, tick=tick)
        fake._connection_count += 1
        connection = _SmscConnection(fake, protocol, fake._connection_count)
        protocol.connection = connection
        protocol.handler = connection
        protocol.factory = self
        return protocol


# --- the fake ------------------------------------------------------------------------


class FakeLinkSmpp:
    def __init__(
        self,
        reactor: Any,
        *,
        system_id: str = "link",
        password: str = "secret",
        tls: bool = True,
        hostnames: tuple[str, ...] = ("localhost", "127.0.0.1"),
        ca_path: str | None = None,
        rate: float = 5.0,
        burst: float | None = None,
        window: int = 1,
        max_binds: int = 1,
        id_style: str = "decimal",
        first_id: int = 3_000_000_000,
        receipt_delay: float = 0.0,
        receipt_format: str = "seconds",
        receipt_id_variant: str = "same",
        receipt_tlvs: bool = False,
        rules: dict[str, tuple[str, int]] | None = None,
        submit_status: dict[str, int] | None = None,
        idle_timeout: float = 300.0,
        response_delay: float = 0.0,
        redeliver_delay: float = 1.0,
        deliver_timeout: float = 10.0,
    ) -> None:
        self.reactor = reactor
        self.system_id = system_id
        self.password = password
        self.tls = tls
        self.hostnames = hostnames
        self.ca_path = ca_path
        self.bucket = TokenBucket(rate, rate if burst is None else burst, reactor.seconds)
        self.window = window
        self.max_binds = max_binds
        self.id_style = id_style
        self.receipt_delay = receipt_delay
        self.receipt_format = receipt_format
        self.receipt_id_variant = receipt_id_variant
        self.receipt_tlvs = receipt_tlvs
        self.rules: dict[str, tuple[str, int]] = {
            k.lstrip("+"): v for k, v in (rules or {}).items()
        }
        self.submit_status: dict[str, int] = {
            k.lstrip("+"): v for k, v in (submit_status or {}).items()
        }
        self.idle_timeout = idle_timeout
        self.response_delay = response_delay
        self.redeliver_delay = redeliver_delay
        self.deliver_timeout = deliver_timeout
        self.refuse_binds = False
        self.throttle_next = 0
        self.drop_next_submit = 0
        # Answers for the next submit_sm, one each: a status, or None for the usual.
        self.script: deque[int | None] = deque()
        self._check_choices()
        # records
        self.connections: list[ConnectionRecord] = []
        self.submits: list[SubmitRecord] = []
        self.violations: Counter[str] = Counter()
        self.protocol_errors: list[str] = []
        self.deliveries: list[Delivery] = []
        # state
        self.live: set[_SmscConnection] = set()
        self.outbox: deque[Delivery] = deque()
        self.port = 0
        self._number = first_id
        self._connection_count = 0
        self._mo_ref = 0
        self._listening: Any = None
        self._timers: list[Any] = []
        self._tls_options: Any = None

    def _check_choices(self) -> None:
        for name, value, choices in (
            ("id_style", self.id_style, ID_STYLES),
            ("receipt_format", self.receipt_format, RECEIPT_FORMATS),
            ("receipt_id_variant", self.receipt_id_variant, RECEIPT_ID_VARIANTS),
        ):
            if value not in choices:
                raise ValueError(f"{name} {value!r}: one of {', '.join(choices)}")

    # --- lifecycle ------------------------------------------------------------------

    def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1; with TLS, write the test CA to `ca_path` first."""
        factory = _Factory(self)
        if self.tls:
            ca_pem, key_pem, cert_pem = make_pem(self.hostnames, key="ec")
            if self.ca_path is None:
                handle, self.ca_path = tempfile.mkstemp(prefix="fake-link-ca-", suffix=".pem")
                os.close(handle)
            with open(self.ca_path, "wb") as f:
                f.write(ca_pem)
            self._tls_options = ServerTls(key_pem, cert_pem)
            self._listening = self.reactor.listenSSL(
                port, factory, self._tls_options, interface="127.0.0.1"
            )
        else:
            self._listening = self.reactor.listenTCP(port, factory, interface="127.0.0.1")
        self.port = self._listening.getHost().port
        return self.port

    def stop(self) -> Deferred[None]:
        """Stop listening and drop every connection; fires once they are gone."""
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers.clear()
        waits: list[Deferred[Any]] = [self.drop()]
        if self._listening is not None:
            waits.append(maybeDeferred(self._listening.stopListening))
            self._listening = None
        return DeferredList(waits).addCallback(lambda _: None)

    def drop(self) -> Deferred[None]:
        """Abort every connection now (LINK going away); fires once they are closed."""
        waits = [connection.lost for connection in self.live]
        for connection in list(self.live):
            connection.protocol.transport.abortConnection()  # type: ignore[union-attr]
        if not waits:
            return succeed(None)
        return DeferredList(waits).addCallback(lambda _: None)

    def _call(self, delay: float, fn: Any, *args: Any) -> None:
        self._timers = [t for t in self._timers if t.active()]
        self._timers.append(self.reactor.callLater(delay, fn, *args))

    # --- ids and receipts -------------------------------------------------------------

    def _next_number(self) -> int:
        self._number += 1
        return self._number

    def format_id(self, number: int) -> str:
        """The submit_sm_resp id in the configured style."""
        return {
            "decimal": str(number),
            "hex": f"{number:X}",
            "hex_lower": f"{number:x}",
            "zeros": f"{number:020d}",
            "hex_zeros": f"{number:016X}",
        }[self.id_style]

    def receipt_id(self, number: int) -> str:
        """The id written in the receipt: the resp id, or a variant of it."""
        same = self.format_id(number)
        variant = self.receipt_id_variant
        hexadecimal = self.id_style in ("hex", "hex_lower", "hex_zeros")
        if variant == "other_base":
            return str(number) if hexadecimal else f"{number:X}"
        if variant == "other_case":
            return same.swapcase()
        if variant == "zeros":
            return "000" + same
        if variant == "stripped":
            return same.lstrip("0") or "0"
        return same

    def receipt_text(
        self, receipt_id: str, stat: str, err: int, submitted: float, done: float
    ) -> bytes:
        fmt = _DATE_FORMATS[self.receipt_format]
        return (
            f"id:{receipt_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'}"
            f" submit date:{time.strftime(fmt, time.gmtime(submitted))}"
            f" done date:{time.strftime(fmt, time.gmtime(done))}"
            f" stat:{stat} err:{err:03d} text:"
        ).encode("ascii")

    def _schedule_receipt(self, submit: p.SubmitSm, number: int, record: SubmitRecord) -> None:
        stat, err = self.rules.get(submit.destination_addr.lstrip("+"), ("DELIVRD", 0))
        # registered_delivery bits 1-0: 1 any final state, 2 failures only.
        wanted = submit.registered_delivery & 0x03
        if wanted == 0 or (wanted == 2 and stat == "DELIVRD"):
            return

        def make() -> None:
            now = self.reactor.seconds()
            receipt_id = self.receipt_id(number)
            pdu = p.DeliverSm(
                source_addr_ton=submit.dest_addr_ton,
                source_addr_npi=submit.dest_addr_npi,
                source_addr=submit.destination_addr,
                dest_addr_ton=submit.source_addr_ton,
                dest_addr_npi=submit.source_addr_npi,
                destination_addr=submit.source_addr,
                esm_class=p.ESM_CLASS_RECEIPT,
                data_coding=0,
                short_message=self.receipt_text(receipt_id, stat, err, record.at, now),
            )
            if self.receipt_tlvs:
                pdu.tlvs = [
                    (p.Tag.RECEIPTED_MESSAGE_ID, receipt_id.encode("ascii") + b"\x00"),
                    (p.Tag.MESSAGE_STATE, bytes((_STATE_OF[stat],))),
                    (p.Tag.NETWORK_ERROR_CODE, b"\x03" + err.to_bytes(2, "big")),
                ]
            self._enqueue(Delivery("receipt", pdu, now))

        self._call(self.receipt_delay, make)

    # --- MO --------------------------------------------------------------------------

    def inject_mo(
        self,
        source: str,
        destination: str,
        text: str,
        *,
        coding: str = "auto",
        segments: bool = False,
        source_ton: int = 1,
        source_npi: int = 1,
        dest_ton: int = 3,
        dest_npi: int = 0,
    ) -> list[Delivery]:
        """Queue an MO as deliver_sm: GSM 03.38 or UCS-2 ("auto": GSM when it can),
        as UDH segments when `segments` (or when it does not fit one SMS)."""
        self._mo_ref = (self._mo_ref + 1) & 0xFF
        parts: list[tuple[int, bytes, bytes]]
        if coding == "ucs2":
            parts = _ucs2_parts(text, self._mo_ref, force_udh=segments)
        else:
            data_coding, octets = encode_for_esme(text)
            if coding == "gsm" and data_coding != 0:
                raise ValueError("text is not GSM 03.38")
            parts = segment(text, self._mo_ref)
            if segments and len(parts) == 1:
                parts = [(data_coding, bytes((5, 0, 3, self._mo_ref, 1, 1)), octets)]
        now = self.reactor.seconds()
        deliveries = []
        for data_coding, udh, body in parts:
            pdu = p.DeliverSm(
                source_addr_ton=source_ton,
                source_addr_npi=source_npi,
                source_addr=source,
                dest_addr_ton=dest_ton,
                dest_addr_npi=dest_npi,
                destination_addr=destination,
                esm_class=p.ESM_CLASS_UDHI if udh else 0,
                data_coding=data_coding,
                short_message=udh + body,
            )
            delivery = Delivery("mo", pdu, now)
            deliveries.append(delivery)
            self._enqueue(delivery)
        return deliveries

    def inject_deliver(self, pdu: p.DeliverSm, kind: str = "raw") -> Delivery:
        """Queue any deliver_sm as it is (a malformed receipt, say)."""
        delivery = Delivery(kind, pdu, self.reactor.seconds())
        self._enqueue(delivery)
        return delivery

    # --- sending deliver_sm, one at a time -----------------------------------------------

    def _enqueue(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        self.outbox.append(delivery)
        self._pump_outbox()

    def _pump_outbox(self) -> None:
        if not self.outbox:
            return
        for connection in list(self.live):
            if not connection.receives or connection.sending is not None:
                continue
            if not connection.protocol.session.can_send:
                continue
            delivery = self.outbox.popleft()
            connection.sending = delivery
            # A copy: the session stamps its sequence number on what it sends.
            pdu = dataclasses.replace(delivery.pdu, tlvs=list(delivery.pdu.tlvs))
            sent_at = self.reactor.seconds()
            connection.protocol.request(pdu).addCallbacks(
                self._delivered,
                self._not_delivered,
                callbackArgs=(connection, delivery, sent_at),
                errbackArgs=(connection, delivery, sent_at),
            )
            if not self.outbox:
                return

    def _delivered(
        self, response: Response, connection: _SmscConnection, delivery: Delivery, sent_at: float
    ) -> None:
        connection.sending = None
        now = self.reactor.seconds()
        status = response.pdu.status
        delivery.answers.append((now, status))
        if status == S.ESME_ROK:
            delivery.acked_at = now
        else:
            # LINK keeps what was not taken and tries again a little later.
            self._call(self.redeliver_delay, self._enqueue_again, delivery)
        self._pump_outbox()

    def _enqueue_again(self, delivery: Delivery) -> None:
        self.outbox.appendleft(delivery)
        self._pump_outbox()

    def _not_delivered(
        self, failure: Failure, connection: _SmscConnection, delivery: Delivery, sent_at: float
    ) -> None:
        failure.trap(LinkLost, LinkTimeout)
        delivery.answers.append((self.reactor.seconds(), None))
        if connection.sending is delivery:
            connection.sending = None
            self.outbox.appendleft(delivery)
        if failure.check(LinkTimeout):
            connection.protocol.close()
        self._pump_outbox()

    # --- control ----------------------------------------------------------------------

    def accepted(self) -> list[SubmitRecord]:
        return [s for s in self.submits if s.outcome == "accepted"]

    def stats(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "ca_path": self.ca_path,
            "connections": [asdict(c) for c in self.connections],
            "live": len(self.live),
            "bound": sum(1 for c in self.live if c.bound),
            "submits": len(self.submits),
            "accepted": len(self.accepted()),
            "outcomes": dict(Counter(s.outcome for s in self.submits)),
            "violations": {"window": self.violations["window"], "rate": self.violations["rate"]},
            "rate": self.bucket.rate,
            "burst": self.bucket.burst,
            "protocol_errors": list(self.protocol_errors),
            "deliveries": len(self.deliveries),
            "acknowledged": sum(1 for d in self.deliveries if d.acked_at is not None),
            "outbox": len(self.outbox),
        }

    def control(self, command: dict[str, Any]) -> Deferred[None]:
        """Apply a /_control command object. Keys:

        drop (true: abort every connection now), drop_next_submit (n: drop the
        connection on each of the next n submit_sm, before answering it),
        throttle_next (n), script (a list: the answer to each next submit_sm,
        a command_status or null for the usual), inject_mo ({source, destination, text, coding,
        segments, source_ton, dest_ton} or a list of them), rules ({destination:
        [stat, err]}), submit_status ({destination: command_status}), rate,
        burst, idle_timeout, response_delay, receipt_delay, receipt_format,
        receipt_id_variant, receipt_tlvs, id_style, refuse_binds, max_binds,
        clear (true: forget the records).
        """
        if "rate" in command or "burst" in command:
            rate = float(command.get("rate", self.bucket.rate))
            burst = float(command.get("burst", rate))
            self.bucket = TokenBucket(rate, burst, self.reactor.seconds)
        for name in ("idle_timeout", "response_delay", "receipt_delay"):
            if name in command:
                setattr(self, name, float(command[name]))
        for name in ("receipt_format", "receipt_id_variant", "id_style"):
            if name in command:
                setattr(self, name, str(command[name]))
        self._check_choices()
        for name in ("throttle_next", "drop_next_submit", "max_binds"):
            if name in command:
                setattr(self, name, int(command[name]))
        for name in ("receipt_tlvs", "refuse_binds"):
            if name in command:
                setattr(self, name, bool(command[name]))
        if "script" in command:
            self.script = deque(None if v is None else int(v) for v in command["script"])
        if "rules" in command:
            self.rules = {
                k.lstrip("+"): (str(v[0]), int(v[1])) for k, v in command["rules"].items()
            }
        if "submit_status" in command:
            self.submit_status = {
                k.lstrip("+"): int(v) for k, v in command["submit_status"].items()
            }
        if "inject_mo" in command:
            specs = command["inject_mo"]
            for spec in specs if isinstance(specs, list) else [specs]:
                spec = dict(spec)
                self.inject_mo(
                    spec.pop("source"), spec.pop("destination"), spec.pop("text"), **spec
                )
        if command.get("clear"):
            self.connections.clear()
            self.submits.clear()
            self.violations.clear()
            self.protocol_errors.clear()
            self.deliveries.clear()
        if command.get("drop"):
            return self.drop()
        return succeed(None)


def _ucs2_parts(text: str, ref: int, *, force_udh: bool) -> list[tuple[int, bytes, bytes]]:
    octets = text.encode("utf-16-be", "surrogatepass")
    if len(octets) <= 140 and not force_udh:
        return [(8, b"", octets)]
    chunks = []
    pos = 0
    while pos < len(octets):
        end = min(pos + 134, len(octets))
        if end < len(octets) and 0xD8 <= octets[end - 2] <= 0xDB:
            end -= 2
        chunks.append(octets[pos:end])
        pos = end
    total = len(chunks)
    return [(8, bytes((5, 0, 3, ref, total, n)), c) for n, c in enumerate(chunks, start=1)]


# --- the control endpoint (process mode) -----------------------------------------------


class _ControlResource(Resource):
    isLeaf = True

    def __init__(self, fake: FakeLinkSmpp) -> None:
        super().__init__()
        self._fake = fake

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        if request.path == b"/_submits":
            return json.dumps([asdict(s) for s in self._fake.submits]).encode()
        if request.path == b"/_deliveries":
            return json.dumps([d.summary() for d in self._fake.deliveries]).encode()
        if request.path == b"/_control":
            return json.dumps(self._fake.stats()).encode()
        request.setResponseCode(404)
        return b"{}"

    def render_POST(self, request: Any) -> bytes:
        if request.path != b"/_control":
            request.setResponseCode(404)
            return b""
        try:
            command = json.loads(request.content.read())
            if not isinstance(command, dict):
                raise TypeError("a JSON object is expected")
            self._fake.control(command)
        except (ValueError, TypeError, KeyError) as e:
            request.setResponseCode(400)
            return f"{type(e).__name__}: {e}\n".encode()
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(self._fake.stats()).encode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.fake_linksmpp")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--plain", action="store_true", help="plain TCP instead of TLS")
    parser.add_argument("--ca-out", help="where to write the test CA certificate (PEM)")
    parser.add_argument(
        "--hostname", action="append", help="a name or IP for the certificate (repeatable)"
    )
    parser.add_argument("--system-id", default="link")
    parser.add_argument("--password", default=os.environ.get("FAKE_LINK_PASSWORD", "secret"))
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--burst", type=float)
    parser.add_argument("--max-binds", type=int, default=1)
    parser.add_argument("--id-style", choices=ID_STYLES, default="decimal")
    parser.add_argument("--receipt-delay", type=float, default=0.0)
    parser.add_argument("--receipt-format", choices=RECEIPT_FORMATS, default="seconds")
    parser.add_argument("--receipt-id-variant", choices=RECEIPT_ID_VARIANTS, default="same")
    parser.add_argument("--receipt-tlvs", action="store_true")
    parser.add_argument("--idle-timeout", type=float, default=300.0)
    parser.add_argument("--response-delay", type=float, default=0.0)
    args = parser.parse_args(argv)

    from twisted.internet import reactor as installed

    reactor: Any = installed
    fake = FakeLinkSmpp(
        reactor,
        system_id=args.system_id,
        password=args.password,
        tls=not args.plain,
        hostnames=tuple(args.hostname or ("localhost", "127.0.0.1")),
        ca_path=args.ca_out,
        rate=args.rate,
        burst=args.burst,
        max_binds=args.max_binds,
        id_style=args.id_style,
        receipt_delay=args.receipt_delay,
        receipt_format=args.receipt_format,
        receipt_id_variant=args.receipt_id_variant,
        receipt_tlvs=args.receipt_tlvs,
        idle_timeout=args.idle_timeout,
        response_delay=args.response_delay,
    )
    port = fake.start(args.port)
    control = reactor.listenTCP(
        args.control_port, QuietSite(_ControlResource(fake)), interface="127.0.0.1"
    )
    print(f"listening on {port}", flush=True)
    print(f"control on {control.getHost().port}", flush=True)
    if fake.ca_path:
        print(f"ca {fake.ca_path}", flush=True)
    reactor.run()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
