"""The ESME-facing SMPP server: binds, submits, receipts out.

`EsmeConnection` is the application end of one connection: it authenticates
binds against the configured accounts, hands submit_sm to MT admission and
answers with what it decides, and, once bound as receiver or transceiver,
takes receipts from the deliverer.

Bind failures follow SMPP-NOTES section 3: wrong password ESME_RINVPASWD, a
disallowed address or too many binds ESME_RBINDFAIL (never ESME_RALYBND,
which Kannel reads as success). An unknown system_id gets ESME_RINVPASWD too,
after a check that costs what a real one costs, unless `bind_failure_status
= "distinct"` asks for ESME_RINVSYSID at once (which tells a guesser which
system_ids exist). Password checks are bounded and shared
(gateway/bindcheck.py); a bind that finds them all busy is refused with
ESME_RBINDFAIL at once, counted as `busy`.

Guessing is slowed and then stopped per address: each failure delays the next
bind answer to that address a little more, and `lockout_failures` failures
within `lockout_window` lock the address out for `lockout_time`, during which
its binds are refused with ESME_RBINDFAIL before any account or password is
looked at. Only failures that guess count (a wrong password, an unknown
system_id, a disallowed address); a bind refused for too many binds or a busy
checker has the right password or none checked, and counts for neither. A
check already running when the lockout starts is answered as locked out too:
parallel connections must not be a way around it.

Refusals that a client can repeat at will are logged through `Repeats`: the
first, then one line a minute per session (or per address for binds) with a
count.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.config import AccountSettings, Config
from gateway.intake.delivery import LOST, TIMEOUT, ReceiptDeliverer
from gateway.logs import Repeats
from gateway.mt.admission import Admission
from gateway.mt.operations import Operations
from gateway.records import MO, Receipt
from gateway.reload import Plan
from gateway.smpp import layout
from gateway.smpp import pdu as p
from gateway.smpp.receipts import build_receipt
from gateway.smpp.session import (
    BOUND,
    BindState,
    Event,
    ProtocolError,
    Request,
    Response,
    Role,
)
from gateway.transport.bindcheck import PasswordChecks, Runner
from gateway.transport.protocol import LinkLost, LinkTimeout, SmppProtocol

log = Logger()
S = p.CommandStatus
C = p.CommandId

_MAX_BIND_DELAY = 10.0
_MAX_REMEMBERED_HOSTS = 10_000
# How long the delay remembers an address's failures.
_DELAY_MEMORY = 300.0
LOCKED_OUT = "locked_out"
BUSY = "busy"
# Refusals that are guesses: they slow the address down and count towards its lockout.
_GUESSES = frozenset({"bad_password", "unknown_system_id", "address_not_allowed"})


class SmppServer:
    """Shared by every ESME connection: the gateway's parts, bind counts, password
    checks, failed-bind memory."""

    def __init__(
        self,
        reactor: Any,
        config: Config,
        admission: Admission,
        operations: Operations,
        deliverer: ReceiptDeliverer,
        *,
        run_check: Runner | None = None,
    ) -> None:
        self.reactor = reactor
        self.config = config
        self.admission = admission
        self.operations = operations
        self.deliverer = deliverer
        self.metrics = metrics = admission.metrics
        # Sessions bound per account, against its max_binds.
        self.binds: dict[str, int] = {}
        smpp = config.smpp
        self.checks = PasswordChecks(
            reactor,
            run_check or self._in_thread,
            concurrency=smpp.bind_checks,
            queue=smpp.bind_check_queue,
            cache_for=smpp.bind_cache,
            on_outcome=lambda outcome: metrics.child(metrics.bind_checks, outcome).inc(),
        )
        # (address, reason) of refused binds, and the sessions' closing reasons.
        self.bind_log = Repeats()
        self.close_log = Repeats()
        # host -> (failures, time of the last): the growing answer delay.
        self._failures: dict[str, tuple[int, float]] = {}
        # host -> times of its failures within lockout_window (at most lockout_failures).
        self._recent: dict[str, deque[float]] = {}
        # host -> when its lockout ends.
        self._locked_until: dict[str, float] = {}
        self.connections: set[EsmeConnection] = set()

    def failure_delay(self, host: str) -> float:
        count, last = self._failures.get(host, (0, 0.0))
        if not count or self.reactor.seconds() - last > _DELAY_MEMORY:
            return 0.0
        delay: float = self.config.smpp.failed_bind_delay * count
        return min(delay, _MAX_BIND_DELAY)

    def locked_out(self, host: str) -> bool:
        until = self._locked_until.get(host)
        if until is None:
            return False
        if self.reactor.seconds() < until:
            return True
        # Served its time: a clean slate, not one failure away from the next lockout.
        del self._locked_until[host]
        self._recent.pop(host, None)
        self._failures.pop(host, None)
        return False

    def _in_thread(self, fn: Any, *args: Any) -> Deferred[bool]:
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), fn, *args)

    def bind_failed(self, host: str, reason: str, system_id: str = "") -> None:
        self.metrics.child(self.metrics.bind_failures, reason).inc()
        if reason not in _GUESSES:
            # A lockout's refusals neither lengthen it nor count towards the next; a
            # bind over max_binds or refused unchecked guessed nothing.
            return
        now = self.reactor.seconds()
        count, _ = self._failures.get(host, (0, 0.0))
        self._failures[host] = (count + 1, now)
        if len(self._failures) > _MAX_REMEMBERED_HOSTS:
            # Many addresses failing (a scan): forget those quiet for five minutes.
            self._failures = {
                h: v for h, v in self._failures.items() if now - v[1] <= _DELAY_MEMORY
            }
        self._count_towards_lockout(host, system_id, now)

    def _count_towards_lockout(self, host: str, system_id: str, now: float) -> None:
        smpp = self.config.smpp
        if smpp.lockout_failures <= 0:
            return
        recent = self._recent.get(host)
        if recent is None:
            if len(self._recent) >= _MAX_REMEMBERED_HOSTS:
                self._forget_quiet(now)
            recent = self._recent[host] = deque(maxlen=smpp.lockout_failures)
        recent.append(now)
        # The deque holds the last lockout_failures failures: full and all within
        # the window means that many failures inside it.
        if len(recent) < smpp.lockout_failures or now - recent[0] > smpp.lockout_window:
            return
        if host in self._locked_until:
            return
        self._locked_until[host] = now + smpp.lockout_time
        log.warn(
            "locking out {peer} for {seconds:g} s: {count} failed binds within {window:g} s"
            " (the last for system_id {system_id!r})",
            peer=host,
            seconds=smpp.lockout_time,
            count=len(recent),
            window=smpp.lockout_window,
            system_id=system_id,
        )

    def _forget_quiet(self, now: float) -> None:
        window = self.config.smpp.lockout_window
        self._recent = {
            h: times
            for h, times in self._recent.items()
            if h in self._locked_until or (times and now - times[-1] <= window)
        }
        self._locked_until = {h: t for h, t in self._locked_until.items() if t > now}
        if len(self._recent) >= _MAX_REMEMBERED_HOSTS:
            # Still full: a scan from more addresses than that within the window.
            # Forget the oldest half of those not locked; they were one failure each.
            for h in list(self._recent)[: len(self._recent) // 2]:
                if h not in self._locked_until:
                    del self._recent[h]

    def reconfigure(self, plan: Plan) -> None:
        """After a reload: removed accounts' sessions are unbound; changed ones go on
        bound, with the new settings from their next PDU."""
        self.config = plan.config
        for connection in list(self.connections):
            account = connection.account
            if account is None:
                continue
            if account.system_id in plan.removed:
                log.info(
                    "{account} is no longer configured: unbinding its session from {peer}",
                    account=account.system_id,
                    peer=connection.link.peer_host,
                )
                connection.unbind()
            elif account.system_id in plan.changed:
                connection.account = plan.config.accounts[account.system_id]

    def bind_allowed(self, account: AccountSettings) -> bool:
        return self.binds.get(account.system_id, 0) < account.max_binds

    def bound(self, account: str) -> None:
        self.binds[account] = self.binds.get(account, 0) + 1

    def unbound(self, account: str) -> None:
        self.binds[account] = max(self.binds.get(account, 1) - 1, 0)

    def bind_succeeded(self, host: str) -> None:
        if self.locked_out(host):
            return
        self._failures.pop(host, None)
        self._recent.pop(host, None)


class EsmeConnection:
    def __init__(self, link: SmppProtocol, server: SmppServer) -> None:
        self.link = link
        self.server = server
        self.account: AccountSettings | None = None
        self.bind_name = ""
        self._receiver = False
        # Refusals of this session's PDUs, by status: a line a minute each.
        self._refusals = Repeats()
        self._handlers: dict[int, Callable[[p.Pdu], None]] = {
            C.BIND_TRANSMITTER: self._bind,
            C.BIND_RECEIVER: self._bind,
            C.BIND_TRANSCEIVER: self._bind,
            C.SUBMIT_SM: self._submit,
            C.SUBMIT_MULTI: self._submit_multi,
            C.DATA_SM: self._data_sm,
            C.QUERY_SM: self._query,
            C.CANCEL_SM: self._cancel,
            C.REPLACE_SM: self._replace,
        }
        server.connections.add(self)
        self.server.metrics.connections.inc()

    # --- events -------------------------------------------------------------------

    def event(self, event: Event) -> None:
        m = self.server.metrics
        if isinstance(event, Request):
            pdu = event.pdu
            m.child(m.pdus_in, pdu.command_id.name.lower()).inc()
            if pdu.tlvs:
                self._count_unknown_tlvs(pdu)
            handler = self._handlers.get(pdu.command_id)
            if handler is not None:
                handler(pdu)
                return
            # The session lets through only what an ESME may send; anything else
            # still gets an answer, never silence.
            response = p.response_class(pdu.command_id)
            if response is not None:
                self._answer(pdu, response(status=S.ESME_RINVCMDID))
        elif isinstance(event, ProtocolError):
            m.child(m.protocol_errors, f"{event.status:#04x}").inc()
            left_out = self._refusals.note(event.status, self.server.reactor.seconds())
            if left_out is not None:
                log.info(
                    "{peer} ({account}): answered {status:#04x}: {reason}"
                    " ({left_out} more with this status since the last line)",
                    peer=self.link.peer_host,
                    account=self.account.system_id if self.account is not None else None,
                    status=event.status,
                    reason=event.reason,
                    left_out=left_out,
                )

    def closed(self) -> None:
        self.server.connections.discard(self)
        self.server.metrics.connections.dec()
        left_out = sum(self._refusals.left_out().values())
        if left_out:
            log.info(
                "{peer}: {left_out} refusals of its PDUs were not logged one by one",
                peer=self.link.peer_host,
                left_out=left_out,
            )
        if self.account is not None:
            name = self.account.system_id
            self.server.unbound(name)
            self.server.metrics.child(self.server.metrics.sessions, name, self.bind_name).dec()
            if self._receiver:
                self.server.deliverer.detach(name, self)
            log.info(
                "{account} ({bind}) from {peer} disconnected",
                account=name,
                bind=self.bind_name,
                peer=self.link.peer_host,
            )
            self.account = None

    def _count_unknown_tlvs(self, pdu: p.Pdu) -> None:
        vendor = self.account.policy.vendor_tags if self.account is not None else frozenset()
        unknown = sum(1 for tag in layout.unknown_tlv_tags(pdu) if tag not in vendor)
        if unknown:
            m = self.server.metrics
            m.child(m.unknown_tlvs, pdu.command_id.name.lower()).inc(unknown)

    def _answer(self, request: p.Pdu, response: p.Pdu) -> None:
        m = self.server.metrics
        m.child(m.pdus_out, response.command_id.name.lower(), f"{response.status:#04x}").inc()
        self.link.respond(request, response)

    def unbind(self) -> Deferred[None]:
        """Server-initiated unbind (shutdown): ask, then close whatever the answer."""
        d: Deferred[None] = Deferred()
        if self.link.session.state not in BOUND:
            self.link.close()
            d.callback(None)
            return d

        def done(_: object) -> None:
            self.link.close()
            d.callback(None)

        # Many clients never answer a server's unbind (SMPP-NOTES section 7): don't wait long.
        request = self.link.request(p.Unbind())
        # After a drain the socket is unread: the unbind_resp must get through, and what
        # the ESME sent meanwhile is now refused (ESME_RINVBNDSTS), so it knows.
        self.link.resume_reading()
        timeout = self.server.reactor.callLater(2.0, request.cancel)
        request.addBoth(lambda result: timeout.cancel() if timeout.active() else None)
        request.addBoth(done)
        return d

    def drain(self) -> None:
        """Shutdown, before `unbind`: take no new request and start no new delivery;
        requests already read are answered as they complete (`pending` counts them)."""
        self.link.stop_reading()
        if self._receiver and self.account is not None:
            self.server.deliverer.detach(self.account.system_id, self)

    @property
    def pending(self) -> int:
        """The ESME's requests read and not yet answered."""
        return self.link.session.peer_outstanding

    # --- bind --------------------------------------------------------------------

    def _bind(self, pdu: p.Pdu) -> None:
        assert isinstance(pdu, p.BindTransmitter | p.BindReceiver | p.BindTransceiver)
        server = self.server
        host = self.link.peer_host
        account = self.server.config.accounts.get(pdu.system_id)
        uniform = self.server.config.smpp.bind_failure_status == "uniform"
        delay = server.failure_delay(host)

        def refuse(status: S, reason: str) -> None:
            server.bind_failed(host, reason, pdu.system_id)
            # A locked-out address was logged once when locked; not per bind.
            if reason != LOCKED_OUT:
                left_out = server.bind_log.note((host, reason), server.reactor.seconds())
                if left_out is not None:
                    log.info(
                        "refused bind of {system_id!r} from {peer}: {reason}"
                        " ({left_out} more such refusals from there since the last line)",
                        system_id=pdu.system_id,
                        peer=host,
                        reason=reason,
                        left_out=left_out,
                    )
            response = p.BIND_RESPONSES[pdu.command_id](status=status)
            server.reactor.callLater(delay, self._answer, pdu, response)

        if server.locked_out(host):
            refuse(S.ESME_RBINDFAIL, LOCKED_OUT)
            return
        if account is None and not uniform:
            refuse(S.ESME_RINVSYSID, "unknown_system_id")
            return
        if account is not None and not uniform and not account.allows(host):
            refuse(S.ESME_RBINDFAIL, "address_not_allowed")
            return

        def wanted() -> bool:
            return self.link.session.state is not BindState.CLOSED and not server.locked_out(host)

        stored = account.password_hash if account is not None else server.checks.decoy
        # The octets the ESME sent (the codec reads C-Octet Strings as Latin-1).
        octets = pdu.password.encode("latin-1")
        checking = server.checks.check(host, octets, stored, wanted)
        if checking is None:
            refuse(S.ESME_RBINDFAIL, BUSY)
            return

        def checked(ok: bool | None) -> None:
            if self.link.session.state is BindState.CLOSED:
                return
            if server.locked_out(host):
                refuse(S.ESME_RBINDFAIL, LOCKED_OUT)
            elif ok is None:
                refuse(S.ESME_RBINDFAIL, BUSY)
            elif account is None:
                refuse(S.ESME_RINVPASWD, "unknown_system_id")
            elif not ok:
                refuse(S.ESME_RINVPASWD, "bad_password")
            elif not account.allows(host):
                # Uniform mode checks the password first: only its owner learns this.
                refuse(S.ESME_RBINDFAIL, "address_not_allowed")
            elif not self.server.bind_allowed(account):
                refuse(S.ESME_RBINDFAIL, "too_many_binds")
            else:
                self._bound(pdu, account)

        checking.addCallback(checked).addErrback(self._internal_error, pdu)

    def _bound(
        self, pdu: p.BindTransmitter | p.BindReceiver | p.BindTransceiver, account: AccountSettings
    ) -> None:
        self.server.bind_succeeded(self.link.peer_host)
        self.account = account
        self.bind_name = p.BIND_NAMES[pdu.command_id]
        self.server.bound(account.system_id)
        response = p.BIND_RESPONSES[pdu.command_id](system_id=self.server.config.smpp.system_id)
        if pdu.interface_version >= p.SMPP_34:
            # Only to 3.4+ binds; some 3.3 parsers choke on any TLV (SMPP-NOTES section 9).
            response.tlvs.append((p.Tag.SC_INTERFACE_VERSION, bytes([p.SMPP_34])))
        self._answer(pdu, response)
        m = self.server.metrics
        m.child(m.sessions, account.system_id, self.bind_name).inc()
        log.info(
            "{account} bound as {bind} from {peer} (interface {version:#x})",
            account=account.system_id,
            bind=self.bind_name,
            peer=self.link.peer_host,
            version=pdu.interface_version,
        )
        if pdu.command_id in (C.BIND_RECEIVER, C.BIND_TRANSCEIVER):
            self._receiver = True
            self.server.deliverer.attach(account.system_id, self)

    def _internal_error(self, failure: Failure, pdu: p.Pdu) -> None:
        log.failure(
            "internal error handling {command} from {account}",
            failure,
            command=pdu.command_id.name,
            account=self.account.system_id if self.account is not None else None,
        )
        response = p.response_class(pdu.command_id)
        if response is not None and self.link.session.state is not BindState.CLOSED:
            self._answer(pdu, response(status=S.ESME_RSYSERR))

    # --- submit ------------------------------------------------------------------

    def _submit(self, pdu: p.Pdu) -> None:
        assert isinstance(pdu, p.SubmitSm) and self.account is not None
        started = self.server.reactor.seconds()
        d = self.server.admission.submit(self.account, pdu, self.link.session.interface_version)

        def answer(response: p.SubmitSmResp) -> None:
            self.server.metrics.submit_latency.observe(self.server.reactor.seconds() - started)
            self._answer(pdu, response)

        d.addCallback(answer).addErrback(self._internal_error, pdu)

    def _reply(self, pdu: p.Pdu, d: Deferred[Any]) -> None:
        d.addCallback(lambda response: self._answer(pdu, response))
        d.addErrback(self._internal_error, pdu)

    def _submit_multi(self, pdu: p.Pdu) -> None:
        assert isinstance(pdu, p.SubmitMulti) and self.account is not None
        version = self.link.session.interface_version
        self._reply(pdu, self.server.admission.submit_multi(self.account, pdu, version))

    def _data_sm(self, pdu: p.Pdu) -> None:
        assert isinstance(pdu, p.DataSm) and self.account is not None
        version = self.link.session.interface_version
        self._reply(pdu, self.server.admission.data_sm(self.account, pdu, version))

    def _query(self, pdu: p.Pdu) -> None:
        assert isinstance(pdu, p.QuerySm) and self.account is not None
        self._reply(pdu, self.server.operations.query_sm(self.account, pdu))

    def _cancel(self, pdu: p.Pdu) -> None:
        assert isinstance(pdu, p.CancelSm) and self.account is not None
        self._reply(pdu, self.server.operations.cancel_sm(self.account, pdu))

    def _replace(self, pdu: p.Pdu) -> None:
        assert isinstance(pdu, p.ReplaceSm) and self.account is not None
        version = self.link.session.interface_version
        self._reply(pdu, self.server.operations.replace_sm(self.account, pdu, version))

    # --- receipts (the deliverer's Receiver) ----------------------------------------

    @property
    def can_deliver(self) -> bool:
        session = self.link.session
        return session.state in (BindState.BOUND_RX, BindState.BOUND_TRX) and session.can_send

    def deliver(self, receipt: Receipt) -> Deferred[int]:
        pdu: p.DeliverSm
        if receipt.kind == MO:
            # An incoming message: esm_class 0 (0x40 for a segment), its own coding.
            pdu = p.DeliverSm(
                source_addr_ton=receipt.source_ton,
                source_addr_npi=receipt.source_npi,
                source_addr=receipt.source_addr,
                dest_addr_ton=receipt.dest_ton,
                dest_addr_npi=receipt.dest_npi,
                destination_addr=receipt.destination_addr,
                esm_class=receipt.esm_class,
                data_coding=receipt.data_coding,
                short_message=receipt.payload,
            )
            return self.link.request(pdu).addCallbacks(_status_of, _failure_status)
        pdu = build_receipt(
            message_id=receipt.message_id,
            source_addr=receipt.source_addr,
            source_addr_ton=receipt.source_ton,
            source_addr_npi=receipt.source_npi,
            destination_addr=receipt.destination_addr,
            dest_addr_ton=receipt.dest_ton,
            dest_addr_npi=receipt.dest_npi,
            stat=receipt.stat,
            err=receipt.err,
            sub=receipt.sub,
            dlvrd=receipt.dlvrd,
            submit_date=receipt.submit_date,
            done_date=receipt.done_date,
            text=receipt.text,
            interface_version=self.link.session.interface_version,
        )

        return self.link.request(pdu).addCallbacks(_status_of, _failure_status)


def _status_of(response: Response) -> int:
    status: int = response.pdu.status
    return status


def _failure_status(failure: Failure) -> int:
    if failure.check(LinkTimeout):
        return TIMEOUT
    if failure.check(LinkLost):
        return LOST
    log.failure("sending a deliver_sm failed", failure)
    return LOST


class SmppServerFactory(Factory):
    def __init__(self, reactor: Any, server: SmppServer) -> None:
        self.reactor = reactor
        self.server = server

    def _disconnected(self, reason: str) -> None:
        metrics = self.server.metrics
        metrics.child(metrics.disconnects, "smpp", reason).inc()

    def buildProtocol(self, addr: Any) -> SmppProtocol:
        settings = self.server.config.smpp
        link = SmppProtocol(
            self.reactor,
            settings,
            Role.SMSC,
            settings.receipt_window,
            close_log=self.server.close_log,
            on_disconnect=self._disconnected,
        )
        link.handler = EsmeConnection(link, self.server)
        link.factory = self
        return link
