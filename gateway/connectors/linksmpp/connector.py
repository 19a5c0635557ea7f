"""The LINK SMPP route: an SMPP 3.4 client to LINK's own endpoint (seed 004, DESIGN 6).

A `ClientService` keeps one connection to LINK (two with bind = "pair": a
transmitter and a receiver), over TLS checked against the host name, and
reconnects never sooner than `reconnect_delay` after losing it (LINK asks for
30 s), also when the connection was refused, the TLS handshake failed or LINK
refused the bind. Everything SMPP goes through the same sans-IO `Session` and
`SmppProtocol` as the ESME-facing server; the decisions about content and
statuses are in `gateway.connectors.linksmpp.mapping`.

Sending. Messages wait in a small queue of the connector's own (`capacity`
says how much room is left, 0 while the link is down so that the dispatcher
keeps them and a router can fail over). submit_sm goes out with at most
`window` outstanding and at most `rate` a second (token bucket with `burst`).
A message is one or more segments; it is ACCEPTED once LINK accepted every
segment, reported with the first segment's id as `upstream_id` and all of them
(one for a message of one segment) as `upstream_parts`.

What always holds:
- Every message given to `submit` gets exactly one outcome, and the Deferred
  `submit` returns never fails.
- ESME_RTHROTTLED / ESME_RMSGQFUL fail nothing: the segment goes back to the
  front of the queue and sending pauses for `throttle_backoff`, doubling on
  each further refusal up to `throttle_backoff_max`, back to the start after
  the next acceptance.
- A segment LINK accepted is never sent again by this process: when a later
  segment of the same message meets trouble, the message is TEMPORARY and the
  ids of the accepted segments are kept for the retry, which sends only the
  rest. (A restart forgets them; LINK then gets those segments twice.)
- A permanent refusal of any segment makes the whole message REJECTED.
- A response timeout fails the request TEMPORARY and closes the link (LINK may
  have taken the message: a possible duplicate towards LINK, never an outcome
  reported twice towards the ESME). Losing the link, or `stop()`, makes every
  message not yet accepted TEMPORARY, so the dispatcher retries it.
- deliver_sm from LINK (a receipt or an MO) is acknowledged with ESME_ROK only
  once what it carried is stored (`Inbound`'s Deferred fired); if storing
  failed, with ESME_RX_T_APPN so that LINK sends it again. A receipt that
  cannot be read is acknowledged with ESME_ROK (LINK would resend it forever),
  logged and counted; an MO that cannot be decoded gets ESME_RX_P_APPN.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from twisted.application.internet import ClientService
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory
from twisted.internet.ssl import (
    Certificate,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.config import ConnectorSettings, SmppSettings
from gateway.connectors.base import Inbound
from gateway.connectors.linksmpp.mapping import (
    THROTTLE_STATUSES,
    MappingError,
    esme_status,
    is_receipt,
    mo_from_deliver_sm,
    outcome_for_status,
    report_from_deliver_sm,
    submit_pdus,
)
from gateway.connectors.linksmpp.settings import LinkSmppSettings
from gateway.ids import upstream_id_forms
from gateway.metrics import Metrics
from gateway.ratelimit import TokenBucket
from gateway.records import Message, OutcomeKind, Report, SubmitOutcome
from gateway.smpp import pdu as p
from gateway.smpp.receipts import ReceiptError
from gateway.smpp.session import (
    BOUND,
    BindState,
    Event,
    NotAllowed,
    ProtocolError,
    Request,
    Response,
    Role,
    Unbound,
    WindowFull,
)
from gateway.transport.protocol import LinkLost, LinkTimeout, SmppProtocol

log = Logger()
S = p.CommandStatus

TRANSCEIVER = "transceiver"
TRANSMITTER = "transmitter"
RECEIVER = "receiver"
_BIND_PDUS: dict[str, type[p.BindTransceiver | p.BindTransmitter | p.BindReceiver]] = {
    TRANSCEIVER: p.BindTransceiver,
    TRANSMITTER: p.BindTransmitter,
    RECEIVER: p.BindReceiver,
}
# LINK sends with a window of 1; a few more unanswered deliver_sm do no harm.
_INBOUND_WINDOW = 10
# How long stop() waits for LINK's unbind_resp before closing anyway.
_UNBIND_WAIT = 2.0
# Repeated failures to connect or bind wait longer, doubling up to 2**this times the delay.
_MAX_RECONNECT_DOUBLINGS = 4
_MAX_RECONNECT_S = 300.0
# Progress of half-sent messages is forgotten after this many entries (oldest first).
_MAX_REMEMBERED = 10_000
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def _temporary(message: Message, description: str) -> SubmitOutcome:
    """Trouble on our side of the link: worth a retry. An ESME waiting for the
    answer gets RMSGQFUL, which ESMEs retry (and Kannel after a pause)."""
    return SubmitOutcome(
        message, OutcomeKind.TEMPORARY, esme_status=S.ESME_RMSGQFUL, description=description
    )


def _rejected(message: Message, status: int, description: str) -> SubmitOutcome:
    kind, rejection = outcome_for_status(status)
    return SubmitOutcome(
        message, kind, rejection=rejection, esme_status=esme_status(status), description=description
    )


def _status_name(status: int) -> str:
    try:
        return f"{S(status).name} (0x{status:02X})"
    except ValueError:
        return f"0x{status:08X}"


@dataclass(eq=False)
class _Batch:
    outcomes: list[SubmitOutcome | None]
    left: int
    done: Deferred[list[SubmitOutcome]] = field(default_factory=Deferred)
    # Forms of LINK's ids accepted for this batch, and receipts for them held
    # back until the batch is reported (see LinkSmppConnector._deliver).
    forms: list[str] = field(default_factory=list)
    held: list[tuple[_Connection, p.DeliverSm, Report]] = field(default_factory=list)


@dataclass(eq=False)
class _Progress:
    """One message's segments (built with `ref`) and LINK's id of each accepted one."""

    ref: int
    ids: list[str | None]
    expires_at: float


@dataclass(eq=False)
class _Job:
    message: Message
    pdus: list[p.SubmitSm]
    progress: _Progress
    batch: _Batch
    position: int
    pending: deque[int]
    inflight: int = 0
    failure: SubmitOutcome | None = None
    settled: bool = False


class _ClientProtocol(SmppProtocol):
    """SmppProtocol that tells its connection when it is made and why it was lost."""

    connection: _Connection
    lost_reason: Failure | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self.connection.made()

    def connectionLost(self, reason: Failure = Failure(Exception("closed"))) -> None:  # noqa: B008
        self.lost_reason = reason
        super().connectionLost(reason)


class _Link:
    """One bind kept up by one ClientService: transceiver, or one of a pair."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.service: ClientService | None = None
        self.connection: _Connection | None = None
        self.bound = False
        self.setup_failures = 0  # connections in a row that ended before a bind

    @property
    def sends(self) -> bool:
        return self.mode != RECEIVER


class _Connection:
    """The handler of one connection to LINK: binds, then passes events on."""

    def __init__(
        self, connector: LinkSmppConnector, link: _Link, protocol: _ClientProtocol
    ) -> None:
        self.connector = connector
        self.link = link
        self.protocol = protocol
        self.bound = False
        self._bind_timer: Any = None

    def made(self) -> None:
        c = self.connector
        if c._stopping:
            self.protocol.close()
            return
        self.link.connection = self
        s = c.link_settings
        bind = _BIND_PDUS[self.link.mode](
            system_id=s.system_id,
            password=s.password,
            system_type=s.system_type,
            interface_version=p.SMPP_34,
        )
        started = c.reactor.seconds()
        self._bind_timer = c.reactor.callLater(s.bind_timeout, self._bind_timed_out)
        self.protocol.request(bind).addCallbacks(
            self._bind_answered, self._bind_failed, callbackArgs=(started,)
        )

    def _bind_timed_out(self) -> None:
        log.warn(
            "{connector}: no bind_resp from LINK within {timeout}s; closing",
            connector=self.connector.name,
            timeout=self.connector.link_settings.bind_timeout,
        )
        self.protocol.close()

    def _stop_bind_timer(self) -> None:
        if self._bind_timer is not None and self._bind_timer.active():
            self._bind_timer.cancel()
        self._bind_timer = None

    def _bind_answered(self, response: Response, started: float) -> None:
        self._stop_bind_timer()
        c = self.connector
        status = response.pdu.status
        if status == S.ESME_ROK and response.pdu.command_id != p.CommandId.GENERIC_NACK:
            c._observe("bind", "ok", started)
            self.bound = True
            c._bound(self)
            return
        c._observe("bind", "refused", started)
        log.warn(
            "{connector}: LINK refused the {mode} bind of {system_id!r}: {status};"
            " retrying after the reconnect delay",
            connector=c.name,
            mode=self.link.mode,
            system_id=c.link_settings.system_id,
            status=_status_name(status),
        )
        self.protocol.close()

    def _bind_failed(self, failure: Failure) -> None:
        self._stop_bind_timer()
        if not failure.check(LinkLost, LinkTimeout):
            log.failure("{connector}: binding failed", failure, connector=self.connector.name)
        self.protocol.close()

    # --- SmppProtocol's Handler ----------------------------------------------------

    def event(self, event: Event) -> None:
        if isinstance(event, Request):
            pdu = event.pdu
            if isinstance(pdu, p.DeliverSm):
                self.connector._deliver(self, pdu)
                return
            # The session lets through only what an SMSC may send to a receiver;
            # LINK documents deliver_sm alone, anything else is not for us.
            response = p.response_class(pdu.command_id)
            if response is not None:
                self.respond(pdu, response(status=S.ESME_RINVCMDID))
        elif isinstance(event, ProtocolError):
            log.debug(
                "{connector}: {reason} (status {status:#x})",
                connector=self.connector.name,
                reason=event.reason,
                status=event.status,
            )
        elif isinstance(event, Unbound):
            log.info("{connector}: unbound from LINK", connector=self.connector.name)

    def closed(self) -> None:
        self._stop_bind_timer()
        self.connector._closed(self, self.protocol.lost_reason)

    def respond(self, request: p.Pdu, response: p.Pdu) -> None:
        session = self.protocol.session
        if session.state is BindState.CLOSED:
            return  # gone while the answer was being prepared: LINK sends it again
        with contextlib.suppress(NotAllowed):
            self.protocol.respond(request, response)


class _Factory(Factory):
    def __init__(self, connector: LinkSmppConnector, link: _Link) -> None:
        self.connector = connector
        self.link = link

    def buildProtocol(self, addr: Any) -> _ClientProtocol:
        c = self.connector
        protocol = _ClientProtocol(
            c.reactor,
            c.smpp_settings,
            Role.ESME,
            c.link_settings.window,
            tick=c.tick,
        )
        connection = _Connection(c, self.link, protocol)
        protocol.connection = connection
        protocol.handler = connection
        protocol.factory = self
        return protocol


class LinkSmppConnector:
    def __init__(
        self, reactor: Any, settings: ConnectorSettings, metrics: Metrics, inbound: Inbound
    ) -> None:
        assert settings.linksmpp is not None, "a linksmpp connector has its LINK SMPP settings"
        self.name = settings.name
        self.reactor = reactor
        self.link_settings: LinkSmppSettings = settings.linksmpp
        self._metrics = metrics
        self._inbound = inbound
        s = self.link_settings
        self.smpp_settings = SmppSettings(
            window=_INBOUND_WINDOW,
            bind_timeout=s.bind_timeout,
            # No answer even to enquire_link within the response timeout: dead.
            inactivity_timeout=(
                s.enquire_link_interval + s.response_timeout if s.enquire_link_interval else 0.0
            ),
            enquire_link_interval=s.enquire_link_interval,
            response_timeout=s.response_timeout,
        )
        shortest = min(t for t in (s.enquire_link_interval, s.response_timeout, 4.0) if t > 0)
        self.tick = min(1.0, max(0.05, shortest / 4))
        modes = (TRANSMITTER, RECEIVER) if s.bind == "pair" else (TRANSCEIVER,)
        self._links = [_Link(mode) for mode in modes]
        self._sender = self._links[0]
        self._bucket = TokenBucket(s.rate, s.burst, reactor.seconds)
        self._queue_limit = max(1, s.window) + max(1, math.ceil(s.burst))
        self._queue: deque[_Job] = deque()
        self._progress: dict[str, _Progress] = {}
        # Every form of every id LINK gave for a batch not yet reported -> the batch.
        self._unreported: dict[str, _Batch] = {}
        self._ref = 0
        self._backoff = s.throttle_backoff
        self._paused_until = 0.0
        self._wake: Any = None
        self._stopping = False
        self._stopped: Deferred[None] | None = None
        self._gauge = metrics.child(metrics.upstream_link, self.name)
        self._gauge.set(0)

    # --- the Connector interface -------------------------------------------------------

    @property
    def capacity(self) -> int:
        if self._stopping or self._sending_connection() is None:
            return 0
        return max(self._queue_limit - len(self._queue), 0)

    @property
    def max_batch(self) -> int:
        return max(1, self.link_settings.window)

    @property
    def link_up(self) -> bool:
        """True while every bind this connector keeps is bound."""
        return all(link.bound for link in self._links)

    def start(self) -> None:
        s = self.link_settings
        for link in self._links:
            endpoint: Any = HostnameEndpoint(self.reactor, s.host, s.port, timeout=s.bind_timeout)
            if s.tls:
                endpoint = wrapClientTLS(
                    optionsForClientTLS(s.host, trustRoot=self._trust_root()), endpoint
                )
            factory: Any = _Factory(self, link)
            link.service = ClientService(
                endpoint,
                factory,
                retryPolicy=functools.partial(self._reconnect_delay, link),
                clock=self.reactor,
            )
            link.service.startService()
        log.info(
            "{connector}: connecting to LINK at {host}:{port} ({tls}, {bind})",
            connector=self.name,
            host=s.host,
            port=s.port,
            tls="TLS" if s.tls else "plain TCP",
            bind=s.bind,
        )

    def stop(self) -> Deferred[None]:
        """Unbind (waiting briefly for LINK's answer), close, stop reconnecting.

        Messages not yet accepted get TEMPORARY; one whose submit_sm_resp comes
        before LINK's unbind_resp is still reported as LINK answered it.
        """
        if self._stopped is not None:
            return self._stopped
        self._stopping = True
        if self._wake is not None and self._wake.active():
            self._wake.cancel()
        for job in list(self._queue):
            job.pending.clear()
            self._settle_if_done(job)
        unbinds = [self._unbind(link.connection) for link in self._links if link.connection]

        def stop_services(_: object) -> Deferred[Any]:
            return DeferredList(
                [link.service.stopService() for link in self._links if link.service],
                consumeErrors=True,
            )

        def finished(_: object) -> None:
            for job in list(self._queue):
                self._fail(job, "the connector stopped", force=True)
            self._gauge.set(0)

        stopped: Deferred[None] = Deferred()
        unbound = DeferredList(unbinds, consumeErrors=True)
        unbound.addCallback(stop_services).addCallback(finished).chainDeferred(stopped)
        self._stopped = stopped
        return stopped

    def submit(self, messages: list[Message]) -> Deferred[list[SubmitOutcome]]:
        batch = _Batch([None] * len(messages), len(messages))
        if not messages:
            batch.done.callback([])
            return batch.done
        ready = not self._stopping and self._sending_connection() is not None
        now = self.reactor.seconds()
        for position, message in enumerate(messages):
            if not ready:
                self._record(
                    batch,
                    position,
                    _temporary(message, "not bound to LINK"),
                )
                continue
            try:
                pdus, progress = self._segments(message, now)
            except MappingError as exc:
                # MappingError statuses are all permanent ones: a REJECTD receipt.
                log.info(
                    "{connector}: {message_id} cannot go over SMPP: {error}",
                    connector=self.name,
                    message_id=message.id,
                    account=message.account,
                    error=str(exc),
                )
                self._record(batch, position, _rejected(message, exc.status, str(exc)))
                continue
            pending = deque(i for i, link_id in enumerate(progress.ids) if link_id is None)
            self._queue.append(_Job(message, pdus, progress, batch, position, pending))
        self._pump()
        return batch.done

    # --- sending ----------------------------------------------------------------------

    def _segments(self, message: Message, now: float) -> tuple[list[p.SubmitSm], _Progress]:
        progress = self._progress.pop(message.id, None)
        if progress is not None:
            pdus = submit_pdus(message, progress.ref, now=now)
            if len(pdus) == len(progress.ids):
                return pdus, progress
            # The content changed (replace_sm) since the first attempt: start over.
        self._ref = (self._ref + 1) & 0xFF
        pdus = submit_pdus(message, self._ref, now=now)
        return pdus, _Progress(self._ref, [None] * len(pdus), message.expires_at)

    def _sending_connection(self) -> _Connection | None:
        connection = self._sender.connection
        if connection is None or not connection.bound or not self._sender.bound:
            return None
        if connection.protocol.session.state not in BOUND:
            return None
        return connection

    def _pump(self) -> None:
        if self._stopping:
            return
        connection = self._sending_connection()
        if connection is None:
            return
        session = connection.protocol.session
        now = self.reactor.seconds()
        if now < self._paused_until:
            self._wake_at(self._paused_until)
            return
        while session.state in BOUND and session.can_send:
            job = next((j for j in self._queue if j.pending and j.failure is None), None)
            if job is None:
                return
            if not self._bucket.take():
                self._wake_at(now + self._bucket.delay())
                return
            index = job.pending.popleft()
            if not self._send(connection, job, index, now):
                job.pending.appendleft(index)
                return

    def _send(self, connection: _Connection, job: _Job, index: int, now: float) -> bool:
        # A copy: the session stamps the sequence number on what it sends.
        pdu = dataclasses.replace(job.pdus[index], tlvs=list(job.pdus[index].tlvs))
        try:
            d = connection.protocol.request(pdu)
        except (WindowFull, NotAllowed):
            return False
        except ValueError as exc:  # not encodable; submit_pdus checks, so never expected
            log.failure(
                "{connector}: cannot send {message_id}",
                connector=self.name,
                message_id=job.message.id,
                account=job.message.account,
            )
            job.failure = _rejected(job.message, S.ESME_RSUBMITFAIL, str(exc))
            job.pending.clear()
            self._settle_if_done(job)
            return True
        job.inflight += 1
        d.addCallbacks(
            self._answered,
            self._not_answered,
            callbackArgs=(connection, job, index, now),
            errbackArgs=(connection, job, index, now),
        )
        d.addErrback(
            lambda f: log.failure("{connector}: handling a submit_sm_resp", f, connector=self.name)
        )
        return True

    def _wake_at(self, when: float) -> None:
        if self._wake is not None and self._wake.active():
            if self._wake.getTime() <= when:
                return
            self._wake.cancel()
        self._wake = self.reactor.callLater(max(when - self.reactor.seconds(), 0.0), self._pump)

    def _answered(
        self, response: Response, connection: _Connection, job: _Job, index: int, started: float
    ) -> None:
        job.inflight -= 1
        pdu = response.pdu
        status = pdu.status
        if job.settled:
            log.warn(
                "{connector}: LINK answered {status} for {message_id} after it was reported;"
                " it may reach the handset twice",
                connector=self.name,
                status=_status_name(status),
                message_id=job.message.id,
                account=job.message.account,
            )
            return
        if isinstance(pdu, p.GenericNack) and status == S.ESME_ROK:
            status = S.ESME_RSYSERR  # a nack that says "fine" is no acceptance
        if status == S.ESME_ROK:
            assert isinstance(pdu, p.SubmitSmResp)
            self._observe("submit_sm", "ok", started)
            job.progress.ids[index] = pdu.message_id
            for form in upstream_id_forms(pdu.message_id):
                self._unreported[form] = job.batch
                job.batch.forms.append(form)
            self._backoff = self.link_settings.throttle_backoff
        elif status in THROTTLE_STATUSES:
            self._observe("submit_sm", "throttled", started)
            if job.failure is None:
                job.pending.appendleft(index)
                # Back to the front: LINK's order is the order we were given.
                self._queue.remove(job)
                self._queue.appendleft(job)
            self._throttled(status)
        else:
            outcome = _rejected(
                job.message, status, f"LINK answered submit_sm with {_status_name(status)}"
            )
            temporary = outcome.kind is OutcomeKind.TEMPORARY
            self._observe("submit_sm", "temporary" if temporary else "rejected", started)
            job.pending.clear()
            # A permanent answer outweighs a temporary one for the same message.
            if job.failure is None or not temporary:
                job.failure = outcome
        self._settle_if_done(job)
        self._pump()

    def _not_answered(
        self, failure: Failure, connection: _Connection, job: _Job, index: int, started: float
    ) -> None:
        job.inflight -= 1
        if job.settled:
            return
        if failure.check(LinkTimeout):
            self._observe("submit_sm", "timeout", started)
            log.warn(
                "{connector}: no submit_sm_resp from LINK within {timeout}s; closing the link"
                " (LINK may have taken {message_id}: it will be sent again)",
                connector=self.name,
                timeout=self.link_settings.response_timeout,
                message_id=job.message.id,
                account=job.message.account,
            )
            description = "no submit_sm_resp from LINK"
            self._break(connection)
        elif failure.check(LinkLost):
            self._observe("submit_sm", "lost", started)
            description = "the link to LINK was lost"
        else:
            log.failure("{connector}: submit_sm failed", failure, connector=self.name)
            description = failure.getErrorMessage()
        job.pending.clear()
        if job.failure is None:
            job.failure = _temporary(job.message, description)
        self._settle_if_done(job)
        self._pump()

    def _throttled(self, status: int) -> None:
        now = self.reactor.seconds()
        pause = self._backoff
        self._paused_until = max(self._paused_until, now + pause)
        self._backoff = min(self._backoff * 2, self.link_settings.throttle_backoff_max)
        log.info(
            "{connector}: LINK answered {status}; pausing {pause}s",
            connector=self.name,
            status=_status_name(status),
            pause=pause,
        )

    def _settle_if_done(self, job: _Job, *, force: bool = False) -> None:
        """Report the job's outcome once nothing of it is in flight or left to send.

        `force` reports it now whatever is in flight (the connector has stopped;
        an answer that still comes is logged, not reported).
        """
        if job.settled:
            return
        if not force and (job.inflight or (job.pending and job.failure is None)):
            return
        job.settled = True
        self._queue.remove(job)
        message, progress = job.message, job.progress
        outcome = job.failure
        if outcome is None and None in progress.ids:
            outcome = _temporary(message, "the connector stopped")
        if outcome is None:
            ids = [link_id or "" for link_id in progress.ids]
            if not ids[0]:
                log.warn(
                    "{connector}: LINK accepted {message_id} without an id;"
                    " its receipt cannot be matched",
                    connector=self.name,
                    message_id=message.id,
                    account=message.account,
                )
            # Every id, even a lone one: receipts may spell it otherwise (hex for
            # decimal, other case, leading zeros), and the store matches them by
            # the forms it records for these.
            parts = tuple(ids) if all(ids) else ()
            outcome = SubmitOutcome(
                message, OutcomeKind.ACCEPTED, upstream_id=ids[0] or None, upstream_parts=parts
            )
        elif outcome.kind is OutcomeKind.TEMPORARY and any(
            link_id is not None for link_id in progress.ids
        ):
            self._remember(message.id, progress)
        self._record(job.batch, job.position, outcome)

    def _fail(self, job: _Job, description: str, *, force: bool = False) -> None:
        job.pending.clear()
        if job.failure is None:
            job.failure = _temporary(job.message, description)
        self._settle_if_done(job, force=force)

    def _remember(self, message_id: str, progress: _Progress) -> None:
        now = self.reactor.seconds()
        remembered = self._progress
        remembered[message_id] = progress
        if len(remembered) > _MAX_REMEMBERED:
            # Messages past their validity are never retried: forget those first.
            for key in [k for k, v in remembered.items() if v.expires_at <= now]:
                del remembered[key]
            while len(remembered) > _MAX_REMEMBERED:
                del remembered[next(iter(remembered))]

    def _record(self, batch: _Batch, position: int, outcome: SubmitOutcome) -> None:
        batch.outcomes[position] = outcome
        batch.left -= 1
        if batch.left == 0:
            outcomes = [o for o in batch.outcomes if o is not None]
            # The dispatcher records LINK's ids as this fires, so receipts held
            # for them can go to the store after it and find their messages.
            batch.done.callback(outcomes)
            for form in batch.forms:
                if self._unreported.get(form) is batch:
                    del self._unreported[form]
            held, batch.held = batch.held, []
            for connection, pdu, report in held:
                self._store_report(connection, pdu, report)

    # --- the link ------------------------------------------------------------------------

    def _trust_root(self) -> Any:
        ca_file = self.link_settings.ca_file
        if not ca_file:
            return platformTrust()
        with open(ca_file, "rb") as f:
            pem = f.read()
        certificates = [Certificate.loadPEM(block) for block in _PEM_CERT.findall(pem)]
        if not certificates:
            raise ValueError(f"{ca_file}: no PEM certificate in it")
        return trustRootFromCertificates(certificates)

    def _reconnect_delay(self, link: _Link, attempt: int) -> float:
        """Never sooner than reconnect_delay (seed 004: wait 30 s), longer after failures."""
        delay = self.link_settings.reconnect_delay
        failures = max(attempt, link.setup_failures, 1)
        longer = delay * (1 << min(failures - 1, _MAX_RECONNECT_DOUBLINGS))
        return max(delay, min(longer, max(delay, _MAX_RECONNECT_S)))

    def _bound(self, connection: _Connection) -> None:
        link = connection.link
        link.bound = True
        link.setup_failures = 0
        self._update_gauge()
        log.info(
            "{connector}: bound to LINK as {mode} ({system_id!r})",
            connector=self.name,
            mode=link.mode,
            system_id=self.link_settings.system_id,
        )
        if link.sends:
            self._pump()

    def _closed(self, connection: _Connection, reason: Failure | None) -> None:
        link = connection.link
        if link.connection is connection:
            link.connection = None
        why = reason.getErrorMessage() if reason is not None else "closed"
        if connection.bound:
            link.bound = False
            if not self._stopping:
                log.warn(
                    "{connector}: the {mode} link to LINK was lost: {why}",
                    connector=self.name,
                    mode=link.mode,
                    why=why,
                )
        else:
            link.setup_failures += 1
            if not self._stopping:
                log.warn(
                    "{connector}: the connection to LINK ended before a bind: {why}",
                    connector=self.name,
                    why=why,
                )
        self._update_gauge()
        if link.sends:
            # Requests in flight already failed (LinkLost); what is left was never sent.
            for job in list(self._queue):
                if not job.inflight:
                    self._fail(job, "the link to LINK was lost")

    def _break(self, connection: _Connection) -> None:
        """Stop using a link now and close it; it is down from this moment, not from
        when the close completes."""
        link = connection.link
        if link.connection is connection:
            link.bound = False
            self._update_gauge()
        connection.protocol.close()

    def _update_gauge(self) -> None:
        self._gauge.set(1 if self.link_up else 0)

    def _unbind(self, connection: _Connection) -> Deferred[None]:
        protocol = connection.protocol
        if protocol.session.state not in BOUND:
            protocol.close()
            return succeed(None)
        request = protocol.request(p.Unbind())
        timeout = self.reactor.callLater(_UNBIND_WAIT, request.cancel)
        done: Deferred[None] = Deferred()

        def finish(_: object) -> None:
            if timeout.active():
                timeout.cancel()
            protocol.close()
            done.callback(None)

        request.addBoth(finish)
        return done

    # --- from LINK ---------------------------------------------------------------------

    def _deliver(self, connection: _Connection, pdu: p.DeliverSm) -> None:
        if is_receipt(pdu.esm_class):
            try:
                report = report_from_deliver_sm(pdu)
            except ReceiptError as exc:
                # Refusing it would only make LINK send it again and again.
                self._count_inbound("unparseable")
                log.warn(
                    "{connector}: unreadable receipt from LINK ({error}): {text!r}",
                    connector=self.name,
                    error=str(exc),
                    text=pdu.short_message[:200],
                )
                connection.respond(pdu, p.DeliverSmResp())
                return
            assert report is not None
            batch = self._unreported_batch(report.upstream_id)
            if batch is not None:
                # LINK reported a segment before we reported its whole message:
                # the store does not know the id yet. LINK waits for our answer.
                batch.held.append((connection, pdu, report))
                return
            self._store_report(connection, pdu, report)
            return
        try:
            mo = mo_from_deliver_sm(pdu, self.name, self.reactor.seconds())
        except MappingError as exc:
            self._count_inbound("undecodable")
            log.warn(
                "{connector}: MO from LINK that cannot be decoded ({error});"
                " answered ESME_RX_P_APPN",
                connector=self.name,
                error=str(exc),
            )
            connection.respond(pdu, p.DeliverSmResp(status=S.ESME_RX_P_APPN))
            return
        stored = maybeDeferred(self._inbound.mo_received, [mo])
        self._acknowledge_when(stored, connection, pdu, "mo")

    def _acknowledge_when(
        self, stored: Deferred[None], connection: _Connection, pdu: p.DeliverSm, kind: str
    ) -> None:
        """deliver_sm_resp once what the deliver_sm carried is stored; on failure
        ESME_RX_T_APPN, so that LINK sends it again."""

        def acknowledge(_: object) -> None:
            self._count_inbound(kind)
            connection.respond(pdu, p.DeliverSmResp())

        def retry_later(failure: Failure) -> None:
            self._count_inbound("retry")
            log.failure(
                "{connector}: storing a {kind} from LINK failed; asking LINK to retry",
                failure,
                connector=self.name,
                kind=kind,
            )
            connection.respond(pdu, p.DeliverSmResp(status=S.ESME_RX_T_APPN))

        stored.addCallbacks(acknowledge, retry_later)

    def _unreported_batch(self, link_id: str) -> _Batch | None:
        for form in upstream_id_forms(link_id):
            batch = self._unreported.get(form)
            if batch is not None:
                return batch
        return None

    def _store_report(self, connection: _Connection, pdu: p.DeliverSm, report: Report) -> None:
        stored = maybeDeferred(self._inbound.reports, self.name, [report])
        self._acknowledge_when(stored, connection, pdu, "receipt")

    # --- metrics ------------------------------------------------------------------------

    def _observe(self, endpoint: str, outcome: str, started: float) -> None:
        m = self._metrics
        m.child(m.upstream_requests, self.name, endpoint, outcome).inc()
        if outcome not in ("lost", "timeout"):
            m.child(m.upstream_latency, self.name, endpoint).observe(
                self.reactor.seconds() - started
            )

    def _count_inbound(self, outcome: str) -> None:
        m = self._metrics
        m.child(m.upstream_requests, self.name, "deliver_sm", outcome).inc()
