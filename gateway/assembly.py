"""The gateway's objects, wired once: what `GatewayService` runs and tests build in memory.

`Flows` takes a store and a way to build the connectors, and wires the rest
the one way it is wired everywhere: router, dispatcher, receipt deliverer,
intake, admission, operations and the ESME-facing SMPP server. The service
(gateway/tap.py) adds the listeners, probes, signals and the shutdown order;
tests/support/inprocess.py runs the same flows on a memory reactor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from gateway.config import Config
from gateway.connectors.base import Connector, Inbound
from gateway.connectors.common.mapping import CommonReports
from gateway.intake.delivery import ReceiptDeliverer
from gateway.intake.intake import Intake
from gateway.metrics import Metrics
from gateway.mt.admission import Admission
from gateway.mt.dispatcher import Dispatcher
from gateway.mt.operations import Operations
from gateway.mt.router import Router
from gateway.records import IncomingMo, Report
from gateway.reload import Plan
from gateway.store.base import Backlog, Store
from gateway.transport.bindcheck import Runner
from gateway.transport.server import SmppServer

log = Logger()


class _Inbound:
    """Reports and MO from connectors, for the intake that is built after them
    (the intake needs the dispatcher, the dispatcher its connectors, and a
    connector its way back in)."""

    intake: Intake

    def reports(self, connector: str, reports: list[Report]) -> Deferred[None]:
        return self.intake.reports(connector, reports)

    def mo_received(self, messages: list[IncomingMo]) -> Deferred[None]:
        return self.intake.mo_received(messages)


class Flows:
    def __init__(
        self,
        reactor: Any,
        config: Config,
        metrics: Metrics,
        store: Store,
        connectors: Callable[[Inbound], Mapping[str, Connector]],
        *,
        run_check: Runner | None = None,
    ) -> None:
        self.reactor = reactor
        self.store = store
        inbound = _Inbound()
        self.connectors = dict(connectors(inbound))
        self.router = Router.from_config(config, reactor.seconds)
        window = config.store.memory_window
        self.deliverer = ReceiptDeliverer(reactor, store, metrics, window=window)
        self.dispatcher = Dispatcher(
            reactor,
            store,
            self.connectors,
            {name: c.retry for name, c in config.connectors.items()},
            metrics,
            lambda receipts: self.intake.receipts_stored(receipts),
            batch_delay=min((c.batch_delay for c in config.connectors.values()), default=0.005),
            router=self.router,
            window=window,
        )
        self.intake = inbound.intake = Intake(
            reactor, config, store, self.dispatcher, self.deliverer, metrics
        )
        self.admission = Admission(
            reactor,
            config,
            store,
            self.dispatcher,
            self.router,
            metrics,
            self.intake.receipts_stored,
        )
        self.common_reports = CommonReports(config.result_codes)
        self.smpp = SmppServer(
            reactor,
            config,
            self.admission,
            Operations(self.admission),
            self.deliverer,
            run_check=run_check,
        )

    def recover(self, backlog: Backlog) -> None:
        """Take up what the store held at the last stop, and start sending.

        Only counts are read now; the dispatcher and the deliverer bring the
        messages and receipts in from the store page by page.
        """
        for connector in self.connectors.values():
            connector.start()
        for (account, name), count in backlog.messages.items():
            if name not in self.connectors:
                log.error(
                    "{count} messages of {account} wait for connector {connector}, which is"
                    " no longer configured; they stay queued",
                    count=count,
                    account=account,
                    connector=name,
                )
        self.dispatcher.resume(backlog.messages)
        self.deliverer.resume(backlog.receipts)
        self.dispatcher.start()
        accounts = self.admission.config.accounts.values()
        self.admission.long.restore({a.system_id: a.policy.reassemble for a in accounts})
        messages, receipts = sum(backlog.messages.values()), sum(backlog.receipts.values())
        if messages or receipts:
            log.info(
                "recovered {messages} queued messages and {receipts} undelivered receipts",
                messages=messages,
                receipts=receipts,
            )

    def reconfigure(self, plan: Plan) -> None:
        """What a reload changes live, each part through its own method."""
        config = plan.config
        self.router.reconfigure(config)
        self.admission.reconfigure(config)
        self.intake.reconfigure(config)
        self.common_reports.reconfigure(config.result_codes)
        self.smpp.reconfigure(plan)


__all__ = ["Flows"]
