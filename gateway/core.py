"""The gateway's business: accept MT from ESMEs, take LINK's reports, route receipts.

`Gateway` ties the store, the dispatcher, the receipt deliverer and the
connectors together and is what the SMPP server and the HTTP callbacks call.
It decides SMPP statuses (DESIGN sections 3 and 7) but knows nothing of
sockets: the transport layer hands it decoded PDUs and gets PDUs back.

What always holds: a submit_sm is answered ESME_ROK only after its message is
committed (accept = "stored") or after LINK accepted it (accept = "upstream");
a callback is answered 200 only after its reports are committed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from gateway.config import AccountSettings, Config
from gateway.connectors.base import ACCEPTED, Connector, SubmitOutcome
from gateway.connectors.common.callbacks import CallbackEndpoint, DeliveryReport
from gateway.http.sources import source_policies
from gateway.ids import IdGenerator
from gateway.inbound import IncomingMo, LinkReceipt
from gateway.intake.delivery import ReceiptDeliverer
from gateway.intake.mo import MoRouter, mo_segments
from gateway.logs import Repeats
from gateway.mapping import MappedSubmit, SubmitRefused, map_submit, upstream_status
from gateway.metrics import Metrics
from gateway.mt.dispatcher import Dispatcher
from gateway.mt.router import Router
from gateway.ratelimit import TokenBucket
from gateway.smpp import pdu as p
from gateway.smpp.escapes import EscapeCarry
from gateway.smpp.text import TextError, gsm_septets, is_gsm, is_gsm_coding, parse_udh
from gateway.store.base import MO, RECEIPT, Message, Receipt, Recovered, ReportResult, Store

log = Logger()
S = p.CommandStatus

# Long MO whose first segment decided the account, remembered for the others.
_MO_PARTS_KEPT = 10_000

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def count_parts(fields: Mapping[str, Any]) -> int:
    """How many SMS Common will make of a TEXT message (its `$n` reports count them)."""
    if fields.get("dcs") != "TEXT" or fields.get("userDataHeader"):
        return 1
    text = str(fields.get("userData", ""))
    if len(text) <= UCS2_SINGLE:
        return 1
    if is_gsm(text):
        units, single, part = gsm_septets(text), GSM_SINGLE, GSM_PART
    else:
        units, single, part = len(text), UCS2_SINGLE, UCS2_PART
    return 1 if units <= single else -(-units // part)


def hold_scheduled(
    mapped: MappedSubmit, hold: float, now: float
) -> tuple[dict[str, object], float]:
    """(Common fields, time to send) for a message, scheduled or not.

    A message due within `hold` seconds waits in the gateway and goes to LINK
    when due, without scheduledTime: until then cancel_sm and replace_sm can
    still reach it. One due later goes to LINK now, which schedules it (and
    from then on only LINK could cancel it).
    """
    fields = dict(mapped.fields)
    due = mapped.scheduled_at
    if due is None or due <= now or due - now > hold:
        return fields, 0.0
    raw = fields.get("customParameters")
    custom = dict(raw) if isinstance(raw, dict) else {}
    custom.pop("scheduledTime", None)
    if custom:
        fields["customParameters"] = custom
    else:
        fields.pop("customParameters", None)
    return fields, due


class Gateway:
    def __init__(
        self,
        reactor: Any,
        config: Config,
        store: Store,
        connectors: Mapping[str, Connector],
        metrics: Metrics,
        *,
        node: int = 0,
    ) -> None:
        self.reactor = reactor
        self.config = config
        self.store = store
        self.connectors = connectors
        self.metrics = metrics
        self.ids = IdGenerator(reactor.seconds, node)
        self.deliverer = ReceiptDeliverer(reactor, store, metrics)
        self.router = Router.from_config(config, reactor.seconds)
        self.dispatcher = Dispatcher(
            reactor,
            store,
            connectors,
            {name: c.retry for name, c in config.connectors.items()},
            metrics,
            self.receipts_stored,
            batch_delay=min((c.batch_delay for c in config.connectors.values()), default=0.005),
            router=self.router,
        )
        self.escapes = EscapeCarry(reactor.seconds)
        # The HTTP site's callback paths, whose credentials a reload may change.
        self.callback_endpoints: list[CallbackEndpoint[Any]] = []
        # The HTTP site's source allow-lists (gateway/web.SourceGuard), for the same reason.
        self.callback_guards: list[Any] = []
        self.metrics_guards: list[Any] = []
        self.mo_router = MoRouter.from_config(config)
        self._mo_ref = 0
        self._mo_parts: OrderedDict[tuple[str, str, int], str | None] = OrderedDict()
        self._buckets: dict[str, TokenBucket] = {}
        self._report_batch: tuple[list[DeliveryReport], list[Deferred[None]]] | None = None
        self.binds: dict[str, int] = {}
        # Refusals an ESME or a caller can repeat at will: a line a minute per kind.
        self._refusals = Repeats()
        self._configure_buckets()

    def _configure_buckets(self) -> None:
        buckets = {}
        for account in self.config.accounts.values():
            bucket = self._buckets.get(account.system_id)
            if bucket is None or (bucket.rate, bucket.burst) != (account.rate, account.burst):
                bucket = TokenBucket(account.rate, account.burst, self.reactor.seconds)
            buckets[account.system_id] = bucket
        # Removed accounts' buckets go; an unchanged one keeps its tokens.
        self._buckets = buckets

    def reconfigure(self, config: Config) -> None:
        """Run with a reloaded config (gateway/reload.py says which parts change)."""
        self.config = config
        self._configure_buckets()
        self.router = self.router.reconfigured(config)
        self.dispatcher.set_router(self.router)
        self.mo_router = MoRouter.from_config(config)
        self.store.result_codes = config.result_codes
        for endpoint in self.callback_endpoints:
            endpoint.set_credentials(config.http.callback_username, config.http.callback_password)
        http = config.http
        callers, scrapers = source_policies(
            http.callback_sources, http.metrics_sources, http.trusted_proxies
        )
        for guard in self.callback_guards:
            guard.policy = callers
        for guard in self.metrics_guards:
            guard.policy = scrapers

    def start(self, recovered: Recovered) -> None:
        for connector in self.connectors.values():
            connector.start()
        known = [m for m in recovered.messages if m.connector in self.connectors]
        for orphan in recovered.messages:
            if orphan.connector not in self.connectors:
                log.error(
                    "message {message_id} waits for connector {connector}, which is no longer"
                    " configured; it stays queued",
                    message_id=orphan.id,
                    connector=orphan.connector,
                )
        self.dispatcher.enqueue(known)
        self.deliverer.add(recovered.receipts)
        self.dispatcher.start()
        if known or recovered.receipts:
            log.info(
                "recovered {messages} queued messages and {receipts} undelivered receipts",
                messages=len(known),
                receipts=len(recovered.receipts),
            )

    # --- MT ------------------------------------------------------------------

    def submit(
        self, account: AccountSettings, pdu: p.SubmitSm, interface_version: int
    ) -> Deferred[p.SubmitSmResp]:
        refused = self.admit(account, 1)
        if refused is not None:
            return succeed(p.SubmitSmResp(status=refused))
        now = self.reactor.seconds()
        mapped = self.map(account, pdu, interface_version, now)
        if not isinstance(mapped, MappedSubmit):
            return succeed(p.SubmitSmResp(status=mapped))
        message = self.new_message(account, pdu, mapped, now, interface_version)
        if account.accept == "upstream":
            stored = self.store.add_messages([message])
            return stored.addCallback(lambda _: self._submit_upstream(account, message))

        def answer(status: int) -> p.SubmitSmResp:
            if status:
                return p.SubmitSmResp(status=status)
            return p.SubmitSmResp(message_id=message.id)

        return self.accept_stored(account, [message]).addCallback(answer)

    def admit(self, account: AccountSettings, count: int) -> int | None:
        """The status refusing `count` new messages at once, or None to go on."""
        m = self.metrics
        name = account.system_id
        if not self._buckets[name].take(count):
            m.child(m.submits, name, "throttled").inc(count)
            return S.ESME_RTHROTTLED
        if self.dispatcher.queued_by_account.get(name, 0) + count > account.max_queue:
            m.child(m.submits, name, "queue_full").inc(count)
            return S.ESME_RMSGQFUL
        return None

    def map(
        self, account: AccountSettings, pdu: p.SubmitSm, interface_version: int, now: float
    ) -> MappedSubmit | int:
        """DESIGN section 4 for one message, or the status refusing it (counted)."""
        name = account.system_id
        # Segments only (a cheap test first: most messages have neither).
        policy = account.policy
        if (pdu.esm_class & p.ESM_CLASS_UDHI or pdu.tlvs) and is_gsm_coding(
            pdu.data_coding, policy.default_alphabet, policy.ia5_alphabet
        ):
            pdu = self.escapes.repair(name, pdu)
        try:
            return map_submit(pdu, account.policy, now=now)
        except SubmitRefused as e:
            status, reason = e.status, e.reason
        except TextError as e:
            status, reason = e.status, str(e)
        left_out = self._refusals.note((name, status), now)
        if left_out is not None:
            log.info(
                "refused a submit_sm of {account} with {status:#04x}: {reason}"
                " ({left_out} more such refusals since the last line)",
                account=name,
                status=status,
                reason=reason,
                left_out=left_out,
            )
        self.metrics.child(self.metrics.submits, name, "refused").inc()
        if status == S.ESME_RSUBMITFAIL and interface_version >= 0x50:
            # No 3.4 status says "bad data_coding"; 5.0 binds get the one that does.
            status = S.ESME_RINVDCS
        return status

    def accept_stored(self, account: AccountSettings, messages: list[Message]) -> Deferred[int]:
        """Store messages and queue them; fires with ESME_ROK once they are durable."""
        m = self.metrics
        name = account.system_id

        def accepted(_: None) -> int:
            self.dispatcher.enqueue(messages)
            m.child(m.submits, name, "accepted").inc(len(messages))
            return S.ESME_ROK

        def failed(failure: Any) -> int:
            log.failure("could not store a message of {account}", failure, account=name)
            m.child(m.submits, name, "error").inc(len(messages))
            # 0x08 is one of the statuses ESMEs such as Kannel retry (SMPP-NOTES section 3).
            return S.ESME_RSYSERR

        return self.store.add_messages(messages).addCallbacks(accepted, failed)

    def _submit_upstream(
        self, account: AccountSettings, message: Message
    ) -> Deferred[p.SubmitSmResp]:
        m = self.metrics

        def answered(outcome: SubmitOutcome) -> p.SubmitSmResp:
            if outcome.kind == ACCEPTED:
                m.child(m.submits, account.system_id, "accepted").inc()
                return p.SubmitSmResp(message_id=message.id)
            m.child(m.submits, account.system_id, "refused").inc()
            status = upstream_status(
                http_status=outcome.http_status,
                common_code=outcome.code,
                temporary=outcome.kind != "rejected",
            )
            return p.SubmitSmResp(status=status)

        return self.dispatcher.submit_now(message).addCallback(answered)

    def connector_for(self, account: str, destination: str) -> str:
        """The route's connector, or its fallback while the first one's breaker is open."""
        _, primary, fallback = self.router.route_for(account, destination)
        if fallback is not None and not self._usable(primary) and self._usable(fallback):
            return fallback
        return primary

    def _usable(self, connector: str) -> bool:
        breaker = self.router.breaker(connector)
        return breaker is None or breaker.usable

    def new_message(
        self,
        account: AccountSettings,
        pdu: p.SubmitSm,
        mapped: MappedSubmit,
        now: float,
        interface_version: int,
        reply_id: str | None = None,
    ) -> Message:
        start = mapped.scheduled_at if mapped.scheduled_at and mapped.scheduled_at > now else now
        if interface_version <= p.SMPP_33 and account.short_message_id != "none":
            message_id = self.store.short_id(account.short_message_id)
        else:
            message_id = self.ids.next(account.message_id_format)
        fields, not_before = hold_scheduled(mapped, account.hold_scheduled, now)
        return Message(
            id=message_id,
            account=account.system_id,
            connector=self.connector_for(account.system_id, str(mapped.fields["destination"])),
            fields=fields,
            next_attempt_at=not_before,
            submitted_at=now,
            expires_at=start + mapped.validity_s,
            validity_s=mapped.validity_s,
            priority=mapped.priority,
            registered_delivery=pdu.registered_delivery,
            source_addr=pdu.source_addr,
            source_ton=pdu.source_addr_ton,
            source_npi=pdu.source_addr_npi,
            dest_addr=pdu.destination_addr,
            dest_ton=pdu.dest_addr_ton,
            dest_npi=pdu.dest_addr_npi,
            text_head=mapped.text_head,
            parts=count_parts(mapped.fields),
            service_type=pdu.service_type,
            data_coding=pdu.data_coding,
            esm_class=pdu.esm_class,
            reply_id=reply_id,
            billing_receipt=account.billing_receipts,
        )

    # --- delivery reports ----------------------------------------------------

    def on_reports(self, reports: list[DeliveryReport]) -> Deferred[None]:
        """Store reports; fires once they are durable (then the callback answers 200).

        LINK sends one report per request, and pipelined requests arrive together:
        the reports of one reactor turn go to the store, and their receipts to the
        ESMEs, as one batch.
        """
        d: Deferred[None] = Deferred()
        if self._report_batch is None:
            self._report_batch = ([], [])
            self.reactor.callLater(0, self._apply_report_batch)
        batch_reports, waiters = self._report_batch
        batch_reports.extend(reports)
        waiters.append(d)
        return d

    def _apply_report_batch(self) -> None:
        assert self._report_batch is not None
        reports, waiters = self._report_batch
        self._report_batch = None

        def stored(results: list[ReportResult]) -> None:
            self._reports_applied(results)
            for waiter in waiters:
                waiter.callback(None)

        def failed(failure: Any) -> None:
            for waiter in waiters:
                waiter.errback(failure)

        self.store.apply_reports(reports).addCallbacks(stored, failed)

    def _reports_applied(self, results: list[ReportResult]) -> None:
        m = self.metrics
        receipts = []
        finals = []
        unknown = []
        for result in results:
            m.child(m.reports, result.outcome).inc()
            if result.final and result.message_id is not None:
                finals.append(result.message_id)
            if result.outcome == "unknown":
                unknown.append(result)
            if result.receipt is not None:
                receipts.append(result.receipt)
        if unknown:
            self._unknown_reports(unknown)
        if finals:
            self.dispatcher.discard(finals)
        self.receipts_stored(receipts)

    def _unknown_reports(self, unknown: list[ReportResult]) -> None:
        # One body may carry thousands of made-up ids: one line, a minute at most.
        left_out = self._refusals.note("unknown_report", self.reactor.seconds(), len(unknown))
        if left_out is None:
            return
        first = unknown[0].report
        log.warn(
            "{count} delivery report(s) for unknown messages, the first for {message_id}"
            " (LINK id {upstream_id}); {left_out} more since the last such line",
            count=len(unknown),
            message_id=first.ref_id,
            upstream_id=first.id,
            left_out=left_out,
        )

    def receipts_stored(self, receipts: list[Receipt]) -> None:
        m = self.metrics
        for receipt in receipts:
            m.child(m.receipts, receipt.stat).inc()
        self.deliverer.add(receipts)

    # --- from LINK over SMPP, and MO from either route (connectors.Inbound) ----

    def link_receipts(self, connector: str, receipts: list[LinkReceipt]) -> Deferred[None]:
        """LINK SMPP receipts; fires once stored, then LINK gets its deliver_sm_resp."""
        return self.store.apply_link_receipts(receipts).addCallback(self._reports_applied)

    def mo_received(self, messages: list[IncomingMo]) -> Deferred[None]:
        """Route MO messages to their accounts and store them for delivery.

        Fires once stored, then LINK gets its 200 or deliver_sm_resp. An MO no
        account owns is logged, counted and dropped: refusing it would only make
        LINK send it again and again.
        """
        m = self.metrics
        batches = []
        for mo in messages:
            account = self._route_mo(mo)
            if account is None:
                m.child(m.mo, "", "unrouted").inc()
                log.warn(
                    "MO {upstream_id} from {source} to {destination} matches no account; dropped",
                    upstream_id=mo.upstream_id,
                    source=mo.source,
                    destination=mo.destination,
                    connector=mo.connector,
                )
                continue
            self._mo_ref = (self._mo_ref + 1) & 0xFF
            settings = self.config.accounts.get(account)
            latin1 = settings is not None and settings.policy.default_alphabet == "latin1"
            items = mo_segments(
                mo, account, ttl=self.config.mo.ttl, ref=self._mo_ref, latin1=latin1
            )
            batches.append((account, mo, items))
        if not batches:
            return succeed(None)

        def stored(results: list[list[Receipt] | None]) -> None:
            for (account, mo, _), items in zip(batches, results, strict=True):
                if items is None:
                    m.child(m.mo, account, "duplicate").inc()
                    continue
                m.child(m.mo, account, "accepted").inc()
                log.info(
                    "MO {upstream_id} from {source} to {destination} for {account}"
                    " ({segments} deliver_sm)",
                    upstream_id=mo.upstream_id,
                    source=mo.source,
                    destination=mo.destination,
                    account=account,
                    segments=len(items),
                    connector=mo.connector,
                )
                self.deliverer.add(items)

        return self.store.add_mo([(mo.upstream_id, items) for _, mo, items in batches]).addCallback(
            stored
        )

    def _route_mo(self, mo: IncomingMo) -> str | None:
        """The owning account; later segments of a long MO follow the first one.

        Only the first segment starts with the keyword: routed on their own, the
        others would go to the number's catch-all account.
        """
        concat = None
        if mo.udh:
            try:
                concat = parse_udh(mo.udh).concat
            except TextError:
                concat = None
        if concat is None:
            return self.mo_router.route(mo)
        key = (mo.source, mo.destination, concat.ref)
        if concat.seq > 1 and key in self._mo_parts:
            return self._mo_parts[key]
        account = self.mo_router.route(mo)
        self._mo_parts[key] = account
        if len(self._mo_parts) > _MO_PARTS_KEPT:
            self._mo_parts.popitem(last=False)
        return account

    # --- binds ---------------------------------------------------------------

    def bind_allowed(self, account: AccountSettings) -> bool:
        return self.binds.get(account.system_id, 0) < account.max_binds

    def bound(self, account: str) -> None:
        self.binds[account] = self.binds.get(account, 0) + 1

    def unbound(self, account: str) -> None:
        self.binds[account] = max(self.binds.get(account, 1) - 1, 0)

    def update_gauges(self) -> None:
        m = self.metrics
        waiting, oldest = self.dispatcher.depth()
        now = self.reactor.seconds()
        m.child(m.queue_depth, "mt").set(waiting)
        m.child(m.queue_oldest, "mt").set(now - oldest if oldest else 0)
        for queue, kind in (("receipts", RECEIPT), ("mo", MO)):
            count, since = self.deliverer.depth(kind)
            m.child(m.queue_depth, queue).set(count)
            m.child(m.queue_oldest, queue).set(now - since if since else 0)
