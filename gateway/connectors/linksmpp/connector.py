"""The LINK SMPP route: an SMPP 3.4 client to LINK's own endpoint (seed 004, DESIGN 6).

`LinkSmppConnector` is the `Connector` the dispatcher sees. It keeps one bind
to LINK (two with bind = "pair": a transmitter and a receiver) through `link`,
over TLS checked against the host name, sends through the queue in `sending`
(window, rate, throttling, segments), and hands what LINK delivers to the
intake. Everything SMPP goes through the same sans-IO `Session` and
`SmppProtocol` as the ESME-facing server; the decisions about content and
statuses are in `gateway.connectors.linksmpp.mapping`.

What always holds (see `sending` for what holds of messages):
- `capacity` is 0 while the sending link is down, so that the dispatcher keeps
  messages and a router can fail over.
- Losing the link, or `stop()`, makes every message not yet accepted TEMPORARY,
  so the dispatcher retries it. `stop()` unbinds first, waiting briefly for
  LINK's answer; a message whose submit_sm_resp comes before LINK's
  unbind_resp is still reported as LINK answered it.
- deliver_sm from LINK (a receipt or an MO) is acknowledged with ESME_ROK only
  once what it carried is stored (`Inbound`'s Deferred fired); if storing
  failed, with ESME_RX_T_APPN so that LINK sends it again. A receipt that
  cannot be read is acknowledged with ESME_ROK (LINK would resend it forever),
  logged and counted; an MO that cannot be decoded gets ESME_RX_P_APPN.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.config import ConnectorSettings, SmppSettings
from gateway.connectors.base import Inbound
from gateway.connectors.linksmpp.link import (
    RECEIVER,
    TRANSCEIVER,
    TRANSMITTER,
    Connection,
    Link,
)
from gateway.connectors.linksmpp.mapping import (
    MappingError,
    is_receipt,
    mo_from_deliver_sm,
    report_from_deliver_sm,
)
from gateway.connectors.linksmpp.sending import Held, SendQueue
from gateway.connectors.linksmpp.settings import LinkSmppSettings
from gateway.metrics import Metrics
from gateway.records import Message, Report, SubmitOutcome
from gateway.smpp import pdu as p
from gateway.smpp.receipts import ReceiptError

log = Logger()
S = p.CommandStatus

# LINK sends with a window of 1; a few more unanswered deliver_sm do no harm.
_INBOUND_WINDOW = 10


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
        self._links = [Link(self, mode) for mode in modes]
        self._sender = self._links[0]
        self._queue = SendQueue(
            reactor,
            self.name,
            s,
            connection=self._sender.sending_connection,
            observe=self.observe,
            break_link=self._break,
            release=self._release,
        )
        self._stopping = False
        self._stopped: Deferred[None] | None = None
        self._gauge = metrics.child(metrics.upstream_link, self.name)
        self._gauge.set(0)

    # --- the Connector interface -------------------------------------------------------

    @property
    def capacity(self) -> int:
        if self._stopping or self._sender.sending_connection() is None:
            return 0
        return self._queue.room

    @property
    def max_batch(self) -> int:
        return max(1, self.link_settings.window)

    @property
    def paused_for(self) -> float:
        return 0.0  # throttling is paced inside (sending.py), capacity stays honest

    @property
    def link_up(self) -> bool:
        """True while every bind this connector keeps is bound."""
        return all(link.bound for link in self._links)

    def start(self) -> None:
        s = self.link_settings
        for link in self._links:
            link.start()
        log.info(
            "{connector}: connecting to LINK at {host}:{port} ({tls}, {bind})",
            connector=self.name,
            host=s.host,
            port=s.port,
            tls="TLS" if s.tls else "plain TCP",
            bind=s.bind,
        )

    def stop(self) -> Deferred[None]:
        """Unbind (waiting briefly for LINK's answer), close, stop reconnecting."""
        if self._stopped is not None:
            return self._stopped
        self._stopping = True
        self._queue.stop()
        unbinds = [link.unbind() for link in self._links]

        def stop_services(_: object) -> Deferred[Any]:
            return DeferredList([link.stop() for link in self._links], consumeErrors=True)

        def finished(_: object) -> None:
            self._queue.fail_all("the connector stopped")
            self._gauge.set(0)

        stopped: Deferred[None] = Deferred()
        unbound = DeferredList(unbinds, consumeErrors=True)
        unbound.addCallback(stop_services).addCallback(finished).chainDeferred(stopped)
        self._stopped = stopped
        return stopped

    def submit(self, messages: list[Message]) -> Deferred[list[SubmitOutcome]]:
        ready = not self._stopping and self._sender.sending_connection() is not None
        return self._queue.submit(messages, ready=ready)

    # --- what the links need of us (link.Owner) -----------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    def link_bound(self, link: Link) -> None:
        self._update_gauge()
        if link.sends:
            self._queue.pump()

    def link_closed(self, link: Link, was_bound: bool) -> None:
        self._update_gauge()
        if link.sends:
            self._queue.fail_unsent("the link to LINK was lost")

    def observe(self, endpoint: str, outcome: str, started: float) -> None:
        m = self._metrics
        m.child(m.upstream_requests, self.name, endpoint, outcome).inc()
        if outcome not in ("lost", "timeout"):
            m.child(m.upstream_latency, self.name, endpoint).observe(
                self.reactor.seconds() - started
            )

    def _break(self, connection: Connection) -> None:
        connection.link.break_(connection)
        self._update_gauge()

    def _update_gauge(self) -> None:
        self._gauge.set(1 if self.link_up else 0)

    # --- from LINK ---------------------------------------------------------------------

    def deliver(self, connection: Connection, pdu: p.DeliverSm) -> None:
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
            batch = self._queue.unreported_batch(report.upstream_id)
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

    def _release(self, held: list[Held]) -> None:
        for connection, pdu, report in held:
            self._store_report(connection, pdu, report)

    def _store_report(self, connection: Connection, pdu: p.DeliverSm, report: Report) -> None:
        stored = maybeDeferred(self._inbound.reports, self.name, [report])
        self._acknowledge_when(stored, connection, pdu, "receipt")

    def _acknowledge_when(
        self, stored: Deferred[None], connection: Connection, pdu: p.DeliverSm, kind: str
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

    def _count_inbound(self, outcome: str) -> None:
        m = self._metrics
        m.child(m.upstream_requests, self.name, "deliver_sm", outcome).inc()
