"""One bind to LINK's SMPP endpoint, kept up by a ClientService (seed 004).

A `Link` is a transceiver, or one of a transmitter/receiver pair. Its
`ClientService` reconnects never sooner than `reconnect_delay` after losing the
connection (LINK asks for 30 s), also when the connection was refused, the TLS
handshake failed or LINK refused the bind, and waits longer after failures in a
row.

Why the bind is not ClientService's `prepareConnection`: with Twisted 26.10, a
connection that `prepareConnection` rejects reaches the service's state machine
again when it closes, and that input has no transition in the state it is in
(an unhandled automat error, whichever of closing and failing comes first). So
the bind runs from the protocol's `connectionMade`, under a bind timer, and the
failures before a bind are counted here: ClientService counts a connection
that was made but never bound as a success.

The owner (the connector) is told of a bind, of a lost link and of every
deliver_sm; `Connection.respond` answers LINK's requests.
"""

from __future__ import annotations

import contextlib
import functools
import re
from typing import Any, Protocol

from twisted.application.internet import ClientService
from twisted.internet.defer import Deferred, succeed
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

from gateway.config import SmppSettings
from gateway.connectors.linksmpp.settings import LinkSmppSettings
from gateway.smpp import pdu as p
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
# How long an unbind waits for LINK's unbind_resp before closing anyway.
_UNBIND_WAIT = 2.0
# Repeated failures to connect or bind wait longer, doubling up to 2**this times the delay.
_MAX_RECONNECT_DOUBLINGS = 4
_MAX_RECONNECT_S = 300.0
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def status_name(status: int) -> str:
    try:
        return f"{S(status).name} (0x{status:02X})"
    except ValueError:
        return f"0x{status:08X}"


class Owner(Protocol):
    """What a link needs of the connector that keeps it."""

    name: str
    reactor: Any
    link_settings: LinkSmppSettings
    smpp_settings: SmppSettings
    tick: float

    @property
    def stopping(self) -> bool: ...

    def observe(self, endpoint: str, outcome: str, started: float) -> None: ...

    def link_bound(self, link: Link) -> None: ...

    def link_closed(self, link: Link, was_bound: bool) -> None: ...

    def deliver(self, connection: Connection, pdu: p.DeliverSm) -> None: ...


class _ClientProtocol(SmppProtocol):
    """SmppProtocol that tells its connection when it is made and why it was lost."""

    connection: Connection
    lost_reason: Failure | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self.connection.made()

    def connectionLost(self, reason: Failure = Failure(Exception("closed"))) -> None:  # noqa: B008
        self.lost_reason = reason
        super().connectionLost(reason)


class Link:
    """One bind kept up by one ClientService: transceiver, or one of a pair."""

    def __init__(self, owner: Owner, mode: str) -> None:
        self.owner = owner
        self.mode = mode
        self.service: ClientService | None = None
        self.connection: Connection | None = None
        self.bound = False
        self.setup_failures = 0  # connections in a row that ended before a bind

    @property
    def sends(self) -> bool:
        return self.mode != RECEIVER

    def start(self) -> None:
        o = self.owner
        s = o.link_settings
        endpoint: Any = HostnameEndpoint(o.reactor, s.host, s.port, timeout=s.bind_timeout)
        if s.tls:
            endpoint = wrapClientTLS(
                optionsForClientTLS(s.host, trustRoot=trust_root(s.ca_file)), endpoint
            )
        factory: Any = _Factory(self)
        self.service = ClientService(
            endpoint,
            factory,
            retryPolicy=functools.partial(reconnect_delay, s.reconnect_delay, self),
            clock=o.reactor,
        )
        self.service.startService()

    def stop(self) -> Deferred[None]:
        """Stop reconnecting and close what is open (after `unbind`, for a clean end)."""
        if self.service is None:
            return succeed(None)
        return self.service.stopService()

    def unbind(self) -> Deferred[None]:
        """Unbind and close, waiting briefly for LINK's unbind_resp."""
        connection = self.connection
        if connection is None:
            return succeed(None)
        protocol = connection.protocol
        if protocol.session.state not in BOUND:
            protocol.close()
            return succeed(None)
        request = protocol.request(p.Unbind())
        timeout = self.owner.reactor.callLater(_UNBIND_WAIT, request.cancel)
        done: Deferred[None] = Deferred()

        def finish(_: object) -> None:
            if timeout.active():
                timeout.cancel()
            protocol.close()
            done.callback(None)

        request.addBoth(finish)
        return done

    def break_(self, connection: Connection) -> None:
        """Stop using the link now and close it: it is down from this moment, not
        from when the close completes."""
        if self.connection is connection:
            self.bound = False
        connection.protocol.close()

    def sending_connection(self) -> Connection | None:
        connection = self.connection
        if connection is None or not connection.bound or not self.bound:
            return None
        if connection.protocol.session.state not in BOUND:
            return None
        return connection

    # --- from the connection -----------------------------------------------------------

    def _bound(self, connection: Connection) -> None:
        self.bound = True
        self.setup_failures = 0
        log.info(
            "{connector}: bound to LINK as {mode} ({system_id!r})",
            connector=self.owner.name,
            mode=self.mode,
            system_id=self.owner.link_settings.system_id,
        )
        self.owner.link_bound(self)

    def _closed(self, connection: Connection, reason: Failure | None) -> None:
        if self.connection is connection:
            self.connection = None
        why = reason.getErrorMessage() if reason is not None else "closed"
        stopping = self.owner.stopping
        if connection.bound:
            self.bound = False
            if not stopping:
                log.warn(
                    "{connector}: the {mode} link to LINK was lost: {why}",
                    connector=self.owner.name,
                    mode=self.mode,
                    why=why,
                )
        else:
            self.setup_failures += 1
            if not stopping:
                log.warn(
                    "{connector}: the connection to LINK ended before a bind: {why}",
                    connector=self.owner.name,
                    why=why,
                )
        self.owner.link_closed(self, connection.bound)


class Connection:
    """The handler of one connection to LINK: binds, then passes events on."""

    def __init__(self, link: Link, protocol: _ClientProtocol) -> None:
        self.link = link
        self.owner = link.owner
        self.protocol = protocol
        self.bound = False
        self._bind_timer: Any = None

    def made(self) -> None:
        o = self.owner
        if o.stopping:
            self.protocol.close()
            return
        self.link.connection = self
        s = o.link_settings
        bind = _BIND_PDUS[self.link.mode](
            system_id=s.system_id,
            password=s.password,
            system_type=s.system_type,
            interface_version=p.SMPP_34,
        )
        started = o.reactor.seconds()
        self._bind_timer = o.reactor.callLater(s.bind_timeout, self._bind_timed_out)
        self.protocol.request(bind).addCallbacks(
            self._bind_answered, self._bind_failed, callbackArgs=(started,)
        )

    def _bind_timed_out(self) -> None:
        log.warn(
            "{connector}: no bind_resp from LINK within {timeout}s; closing",
            connector=self.owner.name,
            timeout=self.owner.link_settings.bind_timeout,
        )
        self.protocol.close()

    def _stop_bind_timer(self) -> None:
        if self._bind_timer is not None and self._bind_timer.active():
            self._bind_timer.cancel()
        self._bind_timer = None

    def _bind_answered(self, response: Response, started: float) -> None:
        self._stop_bind_timer()
        o = self.owner
        status = response.pdu.status
        if status == S.ESME_ROK and response.pdu.command_id != p.CommandId.GENERIC_NACK:
            o.observe("bind", "ok", started)
            self.bound = True
            self.link._bound(self)
            return
        o.observe("bind", "refused", started)
        log.warn(
            "{connector}: LINK refused the {mode} bind of {system_id!r}: {status};"
            " retrying after the reconnect delay",
            connector=o.name,
            mode=self.link.mode,
            system_id=o.link_settings.system_id,
            status=status_name(status),
        )
        self.protocol.close()

    def _bind_failed(self, failure: Failure) -> None:
        self._stop_bind_timer()
        if not failure.check(LinkLost, LinkTimeout):
            log.failure("{connector}: binding failed", failure, connector=self.owner.name)
        self.protocol.close()

    # --- SmppProtocol's Handler ----------------------------------------------------

    def event(self, event: Event) -> None:
        if isinstance(event, Request):
            pdu = event.pdu
            if isinstance(pdu, p.DeliverSm):
                self.owner.deliver(self, pdu)
                return
            # The session lets through only what an SMSC may send to a receiver;
            # LINK documents deliver_sm alone, anything else is not for us.
            response = p.response_class(pdu.command_id)
            if response is not None:
                self.respond(pdu, response(status=S.ESME_RINVCMDID))
        elif isinstance(event, ProtocolError):
            log.debug(
                "{connector}: {reason} (status {status:#x})",
                connector=self.owner.name,
                reason=event.reason,
                status=event.status,
            )
        elif isinstance(event, Unbound):
            log.info("{connector}: unbound from LINK", connector=self.owner.name)

    def closed(self) -> None:
        self._stop_bind_timer()
        self.link._closed(self, self.protocol.lost_reason)

    def respond(self, request: p.Pdu, response: p.Pdu) -> None:
        session = self.protocol.session
        if session.state is BindState.CLOSED:
            return  # gone while the answer was being prepared: LINK sends it again
        with contextlib.suppress(NotAllowed):
            self.protocol.respond(request, response)


class _Factory(Factory):
    def __init__(self, link: Link) -> None:
        self.link = link

    def buildProtocol(self, addr: Any) -> _ClientProtocol:
        o = self.link.owner
        protocol = _ClientProtocol(
            o.reactor,
            o.smpp_settings,
            Role.ESME,
            o.link_settings.window,
            tick=o.tick,
        )
        connection = Connection(self.link, protocol)
        protocol.connection = connection
        protocol.handler = connection
        protocol.factory = self
        return protocol


def trust_root(ca_file: str | None) -> Any:
    if not ca_file:
        return platformTrust()
    with open(ca_file, "rb") as f:
        pem = f.read()
    certificates = [Certificate.loadPEM(block) for block in _PEM_CERT.findall(pem)]
    if not certificates:
        raise ValueError(f"{ca_file}: no PEM certificate in it")
    return trustRootFromCertificates(certificates)


def reconnect_delay(delay: float, link: Link, attempt: int) -> float:
    """Never sooner than reconnect_delay (seed 004: wait 30 s), longer after failures."""
    failures = max(attempt, link.setup_failures, 1)
    longer = delay * (1 << min(failures - 1, _MAX_RECONNECT_DOUBLINGS))
    return max(delay, min(longer, max(delay, _MAX_RECONNECT_S)))


__all__ = ["RECEIVER", "TRANSCEIVER", "TRANSMITTER", "Connection", "Link", "Owner", "status_name"]
