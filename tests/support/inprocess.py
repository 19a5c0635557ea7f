"""The whole gateway in one process, on a fake clock, without sockets or threads to wait for.

`InProcessGateway` wires the parts the way gateway/tap.py's GatewayService does
(store, router, deliverer, dispatcher, intake, admission, operations, SMPP
server, Common reports), with three differences that keep it in memory:

* the reactor is a `MemoryReactorClock`: time moves only when a test says so;
* the Common connector's client talks to `CommonStub`, a twisted.web resource
  answering like LINK Common's /sms/send and /sms/sendbatch (seed 001), through
  treq's `StubTreq` (tests/support/stubhttp.py puts it behind CommonClient's seam);
* binds check passwords inline (`run_check`), and the store runs with
  `synchronous = "normal"` and no checkpoints, so nothing waits for a thread.

An ESME is an `Esme`: the server's own protocol (built by SmppServerFactory) on a
`StringTransport`, fed with encoded PDUs; what the gateway wrote is decoded back.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from gateway.assembly import Flows
from gateway.config import Config, parse
from gateway.connectors.common.client import CommonClient
from gateway.connectors.common.connector import CommonConnector
from gateway.connectors.common.payloads import parse_delivery_reports
from gateway.metrics import Metrics
from gateway.records import IncomingMo
from gateway.smpp import pdu as p
from gateway.smpp.codec import Framer, decode, encode
from gateway.store.sqlite import SqliteStore
from gateway.transport.protocol import SmppProtocol
from gateway.transport.server import SmppServerFactory
from tests.support.stubhttp import StubOrigin

T = TypeVar("T")

# Mid-2025: receipts and ids carry sane dates, not 1970's.
START = 1_750_000_000.0
PASSWORD = "secret"
COMMON_USER = "link-user"
COMMON_PASSWORD = "link-pw"
PLATFORM_ID = "PID"
PLATFORM_PARTNER_ID = "PPID"
GATE_ID = "GATE1"


def cheap_hash(password: str, salt: bytes = b"0123456789abcdef") -> str:
    """A hash in `hash-password`'s format at the smallest scrypt cost the config
    accepts (n = 2): a bind's check costs microseconds instead of 60 ms."""
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2, r=8, p=1, dklen=32)
    encoded = (base64.b64encode(salt).decode(), base64.b64encode(digest).decode())
    return "$".join(("scrypt", "1", "8", "1", *encoded))


def config_tree(store_path: str, *accounts: dict[str, Any], **connector: Any) -> dict[str, Any]:
    """One Common connector "main" and the given accounts (default: "shop1", stored,
    owning MO to 2270), every account with password PASSWORD."""
    if not accounts:
        accounts = ({"system_id": "shop1", "mo_numbers": ["2270"]},)
    return {
        "smpp": {"failed_bind_delay": 0},
        "store": {"path": store_path, "synchronous": "normal"},
        "connectors": {
            "main": {
                "type": "common",
                "base_url": "https://common.test",
                "username": COMMON_USER,
                "password": COMMON_PASSWORD,
                "platform_id": PLATFORM_ID,
                "platform_partner_id": PLATFORM_PARTNER_ID,
                "gate_id": GATE_ID,
                "timeout": "5s",
                "retry": {"initial": "1s", "factor": 2.0, "maximum": "60s"},
                **connector,
            }
        },
        "accounts": [
            {"password": cheap_hash(PASSWORD), "connector": "main", **account}
            for account in accounts
        ],
    }


# --- LINK Common, as a resource ------------------------------------------------------


@dataclass(frozen=True)
class CommonRequest:
    """One request the stub received: its path, Authorization header and JSON body."""

    path: str
    authorization: str | None
    body: Any


@dataclass(frozen=True)
class Answer:
    """A scripted answer: HTTP status, JSON body (None: no body), header fields."""

    status: int
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()


class CommonStub(Resource):
    """/sms/send and /sms/sendbatch as seed 001 describes them.

    Basic authentication with COMMON_USER / COMMON_PASSWORD (else 401 with code
    101100). A single send is answered 200 `{"messageId", "resultCode": 1005,
    "description": "Queued"}`; a batch 200 with one such item per message (with
    its refId, "message" instead of "description") when it asked for the
    response (`ignoreResponse: false`), else 204. `refusals` maps a destination
    to the resultCode its message gets instead, without a messageId (a message
    Common did not take). `script` holds answers that replace the next requests'
    own; `hold` leaves requests unanswered (`held`) until the client gives up.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[CommonRequest] = []
        self.script: deque[Answer] = deque()
        self.refusals: dict[str, int] = {}
        self.hold = False
        self.held: list[Request] = []
        # Every messageId handed out, in order.
        self.message_ids: list[str] = []
        self._basic = (
            "Basic " + base64.b64encode(f"{COMMON_USER}:{COMMON_PASSWORD}".encode()).decode()
        )

    def answer_next(
        self,
        status: int,
        body: Any = None,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.script.extend([Answer(status, body, tuple((headers or {}).items()))] * times)

    def new_message_id(self) -> str:
        message_id = f"QC5BGwiuYk0AAAFi{len(self.message_ids) + 1:08d}"
        self.message_ids.append(message_id)
        return message_id

    def render_POST(self, request: Request) -> bytes | int:
        raw = request.getHeader(b"authorization")
        authorization = raw.decode() if isinstance(raw, bytes) else raw
        assert request.content is not None
        body = json.loads(request.content.read())
        path = request.path.decode()
        self.requests.append(CommonRequest(path, authorization, body))
        if self.hold:
            self.held.append(request)
            return NOT_DONE_YET
        answer = self.script.popleft() if self.script else self._answer(path, authorization, body)
        request.setResponseCode(answer.status)
        for name, value in answer.headers:
            request.setHeader(name.encode(), value.encode())
        if answer.body is None:
            return b""
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(answer.body).encode()

    def _answer(self, path: str, authorization: str | None, body: Any) -> Answer:
        if authorization != self._basic:
            return Answer(401, {"resultCode": 101100, "description": "Invalid authentication"})
        if path == "/sms/send":
            result = self._result(body)
            result["description"] = result.pop("message")
            return Answer(200, result)
        if path == "/sms/sendbatch":
            items = [
                {"refId": item.get("refId"), **self._result(item)}
                for item in body["sendRequestMessages"]
            ]
            return Answer(204) if body.get("ignoreResponse", True) else Answer(200, items)
        return Answer(404, {"resultCode": 106000, "description": "Not found"})

    def _result(self, message: dict[str, Any]) -> dict[str, Any]:
        """One message's result: queued with a new messageId, or its refusal."""
        code = self.refusals.get(message["destination"])
        if code is not None:
            return {"resultCode": code, "message": "Refused"}
        return {"messageId": self.new_message_id(), "resultCode": 1005, "message": "Queued"}


def delivery_report_body(
    message_id: str,
    ref_id: str,
    result_code: int,
    *,
    timestamp: str,
    source: str,
    destination: str,
    segments: int = 1,
) -> bytes:
    """A delivery report callback as seed 001's "Delivery Report Example" writes it."""
    return json.dumps(
        {
            "refId": ref_id,
            "id": message_id,
            "operator": "no.telenor",
            "sentTimestamp": timestamp,
            "timestamp": timestamp,
            "resultCode": result_code,
            "operatorResultCode": "2",
            "segments": segments,
            "gateCustomParameters": {},
            "customParameters": {
                "received": timestamp.replace("T", " ").rstrip("Z"),
                "source": source,
                "destination": destination,
            },
        }
    ).encode()


# --- the ESME ------------------------------------------------------------------------


class Esme:
    """One ESME connection into the gateway's SmppServer, over a StringTransport."""

    def __init__(self, gateway: InProcessGateway, host: str = "192.0.2.7") -> None:
        self.gateway = gateway
        factory = SmppServerFactory(gateway.reactor, gateway.smpp)
        address = IPv4Address("TCP", host, 40000)
        self.protocol: SmppProtocol = factory.buildProtocol(address)
        self.transport = StringTransport(peerAddress=address)
        self.protocol.makeConnection(self.transport)
        self._framer = Framer(1 << 20)
        self._sequence = 0
        # What the gateway sent and no `response`/`take` took yet.
        self.inbox: list[p.Pdu] = []

    def send(self, pdu: p.Pdu) -> int:
        """Write a request (numbered here) or a response (its sequence kept)."""
        if not pdu.is_response:
            self._sequence += 1
            pdu.sequence = self._sequence
        self.protocol.dataReceived(encode(pdu))
        return pdu.sequence

    def read(self) -> list[p.Pdu]:
        """Decode what the gateway wrote since the last read into the inbox; its
        enquire_link (sent when a test lets 30 s pass in silence) is answered here."""
        self._framer.feed(self.transport.value())
        self.transport.clear()
        while (frame := self._framer.next_frame()) is not None:
            pdu = decode(frame)
            if isinstance(pdu, p.EnquireLink):
                self.send(p.EnquireLinkResp(sequence=pdu.sequence))
            else:
                self.inbox.append(pdu)
        return self.inbox

    def request(self, pdu: p.Pdu, *, within: float = 1.0) -> p.Pdu:
        """Send a request and run the gateway until its response comes."""
        sequence = self.send(pdu)

        def answered() -> p.Pdu | None:
            for item in self.read():
                if item.is_response and item.sequence == sequence:
                    self.inbox.remove(item)
                    return item
            return None

        response = self.gateway.run_until(answered, within=within)
        if response is None:
            raise AssertionError(f"no answer to {pdu.command_id.name} within {within}s")
        return response

    def bind(self, system_id: str = "shop1", password: str = PASSWORD) -> p.Pdu:
        return self.request(p.BindTransceiver(system_id=system_id, password=password))

    def take(self, kind: type[p.Pdu]) -> list[p.Pdu]:
        """The gateway's requests of one kind received so far, out of the inbox."""
        taken = [item for item in self.read() if isinstance(item, kind)]
        self.inbox = [item for item in self.inbox if not isinstance(item, kind)]
        return taken

    def acknowledge(self, pdu: p.Pdu, status: int = 0) -> None:
        """Answer one of the gateway's deliver_sm."""
        self.send(p.DeliverSmResp(sequence=pdu.sequence, status=status))


# --- the gateway ---------------------------------------------------------------------


def _inline(fn: Callable[..., bool], *args: Any) -> Deferred[bool]:
    return succeed(fn(*args))


@dataclass
class InProcessGateway:
    """The gateway's flows (gateway/assembly.py) on a memory reactor, Common through StubTreq."""

    config: Config
    reactor: MemoryReactorClock = field(default_factory=MemoryReactorClock)
    common: CommonStub = field(default_factory=CommonStub)

    def __post_init__(self) -> None:
        reactor, config = self.reactor, self.config
        if reactor.seconds() < START:
            reactor.advance(START - reactor.seconds())
        self.metrics = Metrics()
        self.http = StubTreq(self.common)
        self.store = SqliteStore(
            reactor,
            config.store.path,
            synchronous=config.store.synchronous,
            # Checkpoints run in a thread that calls back through callFromThread,
            # which the memory reactor lacks; a test never lives this long.
            checkpoint_interval=10.0**9,
        )
        connectors: dict[str, CommonConnector] = {}
        for name, settings in config.connectors.items():
            assert settings.common is not None, "in-process flows run Common connectors only"
            origin = StubOrigin(self.http, settings.common.base_url)
            client = CommonClient(reactor, settings.common, http=origin)
            connectors[name] = CommonConnector(reactor, settings, self.metrics, client=client)
        # The gateway's own wiring, as GatewayService runs it.
        self.flows = Flows(
            reactor, config, self.metrics, self.store, lambda inbound: connectors, run_check=_inline
        )
        self.connectors = connectors
        self.router = self.flows.router
        self.deliverer = self.flows.deliverer
        self.dispatcher = self.flows.dispatcher
        self.intake = self.flows.intake
        self.admission = self.flows.admission
        self.common_reports = self.flows.common_reports
        self.smpp = self.flows.smpp

    @classmethod
    def build(cls, tmp_path: Path, *accounts: dict[str, Any], **connector: Any) -> InProcessGateway:
        store = str(tmp_path / "gateway.sqlite")
        return cls(parse(config_tree(store, *accounts, **connector)))

    # --- lifecycle (GatewayService._start's store part and Flows.recover) -------------

    def start(self) -> None:
        self.flows.recover(self.result(self.store.open()))

    def stop(self) -> None:
        self.dispatcher.stop()
        self.flows.admission.long.stop()
        self.result(self.store.close(), within=5.0)

    # --- time --------------------------------------------------------------------------

    def run(self, seconds: float = 0.0) -> None:
        """Let `seconds` pass: every timer due meanwhile fires at its time, and
        whatever the Common stub has to say is delivered in between."""
        self.run_until(lambda: None, within=seconds)

    def run_until(self, done: Callable[[], T | None], *, within: float) -> T | None:
        """Run timers and the stub until `done()` gives something (returned), or
        `within` seconds have passed (None)."""
        clock = self.reactor
        end = clock.seconds() + within
        for _ in range(100_000):
            self.http.flush()
            result = done()
            if result is not None:
                return result
            now = clock.seconds()
            calls: Sequence[Any] = clock.getDelayedCalls()
            due = min((call.getTime() for call in calls if call.active()), default=end)
            if due > now and now >= end:
                return None
            # Timers due now fire at once; otherwise time jumps to the next one.
            clock.advance(max(min(due, end) - now, 0.0))
        raise AssertionError("the gateway's timers never settled")

    def result(self, d: Deferred[T], *, within: float = 1.0) -> T:
        """Run until `d` fires; its result (its failure raised)."""
        box: list[Any] = []
        d.addBoth(box.append)
        self.run_until(lambda: True if box else None, within=within)
        if not box:
            raise AssertionError(f"not fired within {within}s")
        if isinstance(box[0], Failure):
            box[0].raiseException()
        value: T = box[0]
        return value

    # --- LINK's side -------------------------------------------------------------------

    def report(self, body: bytes, connector: str = "main") -> None:
        """A delivery-report callback from Common, as the HTTP site takes it:
        parsed (gateway/connectors/common/payloads.py), mapped by the result-code
        table (CommonReports), handed to the intake; returns once durable."""
        reports = parse_delivery_reports(b"POST", "application/json", body, {})
        self.result(
            self.intake.reports(connector, [self.common_reports.report(r) for r in reports])
        )

    def mo(self, messages: Iterable[IncomingMo]) -> None:
        """MO from LINK; returns once the intake stored (or dropped) it."""
        self.result(self.intake.mo_received(list(messages)))

    # --- observation -------------------------------------------------------------------

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return value or 0.0
