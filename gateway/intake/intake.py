"""What comes back from LINK: reports become receipts, MO messages find their account.

`Intake` is the gateway's side of gateway.connectors.base.Inbound, for every
route: the Common callbacks (gateway/http/site.py) and the LINK SMPP connector
hand it `Report`s and `IncomingMo`s, already mapped by their own tables. It
applies reports through the store (gateway/intake/reports.py says what a
report does), tells the dispatcher which messages LINK reported final, and
gives the receipts and MO items to the deliverer.

What always holds: the Deferred of `reports` and `mo_received` fires only once
what they carried is durable, so the route answers LINK (HTTP 200,
deliver_sm_resp) after that and never before; it fails only when the store
failed, so LINK sends again. An MO that no account owns, or that no deliver_sm
can carry, is logged, counted and dropped: refusing it would only make LINK
send it again and again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from gateway.config import Config
from gateway.intake.delivery import ReceiptDeliverer
from gateway.intake.mo import MoRouter, Undeliverable, mo_segments
from gateway.intake.reports import settle
from gateway.logs import Repeats
from gateway.metrics import Metrics
from gateway.mt.dispatcher import Dispatcher
from gateway.records import IncomingMo, Receipt, Report, ReportResult
from gateway.smpp.text import TextError, parse_udh
from gateway.store.base import ReportBook, Store

log = Logger()

# Long MO whose first segment decided the account, remembered for the others.
_MO_PARTS_KEPT: Final = 10_000


class Intake:
    def __init__(
        self,
        reactor: Any,
        config: Config,
        store: Store,
        dispatcher: Dispatcher,
        deliverer: ReceiptDeliverer,
        metrics: Metrics,
    ) -> None:
        self._reactor = reactor
        self._store = store
        self._dispatcher = dispatcher
        self._deliverer = deliverer
        self._metrics = metrics
        self._batch: tuple[list[Report], list[Deferred[None]]] | None = None
        self._mo_ref = 0
        self._mo_parts: OrderedDict[tuple[str, str, int], str | None] = OrderedDict()
        # Unknown ids and unroutable MO can come by the thousand: a line a minute.
        self._repeats = Repeats()
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        self._config = config
        self._mo_router = MoRouter.from_config(config)

    # --- reports -------------------------------------------------------------------

    def reports(self, connector: str, reports: list[Report]) -> Deferred[None]:
        """Store reports; fires once they are durable.

        LINK sends one report per request, and pipelined requests arrive together:
        the reports of one reactor turn go to the store, and their receipts to the
        ESMEs, as one batch.
        """
        d: Deferred[None] = Deferred()
        if self._batch is None:
            self._batch = ([], [])
            self._reactor.callLater(0, self._apply_batch)
        batch, waiters = self._batch
        batch.extend(reports)
        waiters.append(d)
        return d

    def _apply_batch(self) -> None:
        assert self._batch is not None
        reports, waiters = self._batch
        self._batch = None
        now = self._reactor.seconds()

        def rule(book: ReportBook, report: Report) -> ReportResult:
            return settle(book, report, now)

        def stored(results: list[ReportResult]) -> None:
            # The 200s first: LINK's next report on each connection waits for them,
            # and the receipts' deliver_sm work need not come before.
            for waiter in waiters:
                waiter.callback(None)
            self._applied(results)

        def failed(failure: Any) -> None:
            for waiter in waiters:
                waiter.errback(failure)

        self._store.apply_reports(reports, rule).addCallbacks(stored, failed)

    def _applied(self, results: list[ReportResult]) -> None:
        m = self._metrics
        receipts: list[Receipt] = []
        finals = []
        unknown = []
        for result in results:
            m.child(m.reports, result.outcome).inc()
            if result.final and result.message_id is not None:
                finals.append(result.message_id)
            if result.outcome == "unknown":
                unknown.append(result)
            receipts.extend(result.receipts)
        if unknown:
            self._unknown(unknown)
        if finals:
            self._dispatcher.discard(finals)
        self.receipts_stored(receipts)

    def _unknown(self, unknown: list[ReportResult]) -> None:
        # One body may carry thousands of made-up ids: one line, a minute at most.
        left_out = self._repeats.note("unknown_report", self._reactor.seconds(), len(unknown))
        if left_out is None:
            return
        first = unknown[0].report
        log.warn(
            "{count} delivery report(s) for unknown messages, the first for {message_id}"
            " (LINK id {upstream_id}); {left_out} more since the last such line",
            count=len(unknown),
            message_id=first.ref_id,
            upstream_id=first.upstream_id,
            left_out=left_out,
        )

    def receipts_stored(self, receipts: list[Receipt]) -> None:
        """Receipts now durable, for their ESMEs: LINK's, and the gateway's own."""
        m = self._metrics
        for receipt in receipts:
            m.child(m.receipts, receipt.stat).inc()
        self._deliverer.add(receipts)

    # --- MO ----------------------------------------------------------------------

    def mo_received(self, messages: list[IncomingMo]) -> Deferred[None]:
        """Route MO messages to their accounts and store them for delivery."""
        m = self._metrics
        batches = []
        for mo in messages:
            account = self._route_mo(mo)
            if account is None:
                self._drop(mo, "unrouted", "matches no account")
                continue
            self._mo_ref = (self._mo_ref + 1) & 0xFF
            settings = self._config.accounts.get(account)
            latin1 = settings is not None and settings.policy.default_alphabet == "latin1"
            try:
                items = mo_segments(
                    mo, account, ttl=self._config.mo.ttl, ref=self._mo_ref, latin1=latin1
                )
            except Undeliverable as e:
                self._drop(mo, "undeliverable", f"cannot be delivered ({e.reason})", account)
                continue
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
                self._deliverer.add(items)

        return self._store.add_mo(
            [(mo.upstream_id, items) for _, mo, items in batches]
        ).addCallback(stored)

    def _drop(self, mo: IncomingMo, outcome: str, why: str, account: str = "") -> None:
        self._metrics.child(self._metrics.mo, account, outcome).inc()
        left_out = self._repeats.note(("mo", outcome), self._reactor.seconds())
        if left_out is None:
            return
        log.warn(
            "MO {upstream_id} from {source} to {destination} {why}; dropped"
            " ({left_out} more such since the last line)",
            upstream_id=mo.upstream_id,
            source=mo.source,
            destination=mo.destination,
            why=why,
            connector=mo.connector,
            left_out=left_out,
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
            return self._mo_router.route(mo)
        key = (mo.source, mo.destination, concat.ref)
        if concat.seq > 1 and key in self._mo_parts:
            return self._mo_parts[key]
        account = self._mo_router.route(mo)
        self._mo_parts[key] = account
        if len(self._mo_parts) > _MO_PARTS_KEPT:
            self._mo_parts.popitem(last=False)
        return account


__all__ = ["Intake"]
