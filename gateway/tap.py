"""twistd entry point: Options and makeService, and the service that runs it all.

Start-up order matters: the store is opened and what it held is queued again
before any listener opens, so no ESME or callback reaches a half-started
gateway; READY=1 goes to systemd only when every listener is up. A failure at
start (unreadable store, busy port) is logged and the process exits with
status 1, so systemd's Restart=on-failure and an operator both see it.

Shutdown (SIGTERM): listeners close, bound ESMEs are unbound, in-flight
requests to LINK get up to `SHUTDOWN_GRACE` seconds, then the store is closed.
Whatever was accepted and not yet sent stays queued in the store.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python import usage

from gateway import config as config_module
from gateway import reload, systemd
from gateway.connectors import build_connector
from gateway.core import Gateway
from gateway.inbound import IncomingMo, LinkReceipt
from gateway.metrics import Metrics
from gateway.store.sqlite import SqliteStore
from gateway.transport.server import SmppServer, SmppServerFactory
from gateway.web import build_http_factory

log = Logger()
SHUTDOWN_GRACE = 10.0


class Options(usage.Options):
    optParameters = [
        ["config", "c", None, "Path to the TOML configuration file."],
    ]

    def postOptions(self) -> None:
        if not self["config"]:
            raise usage.UsageError("--config FILE is required")
        try:
            self["parsed"] = config_module.load(self["config"])
        except config_module.ConfigError as e:
            raise usage.UsageError(str(e)) from e


class _Inbound:
    """Receipts and MO from connectors, for the gateway that is built after them
    (the gateway needs its connectors, a connector its way back in)."""

    gateway: Gateway

    def link_receipts(self, connector: str, receipts: list[LinkReceipt]) -> Deferred[None]:
        return self.gateway.link_receipts(connector, receipts)

    def mo_received(self, messages: list[IncomingMo]) -> Deferred[None]:
        return self.gateway.mo_received(messages)


class GatewayService(Service):
    def __init__(
        self,
        config: config_module.Config,
        *,
        reactor: Any = None,
        registry: CollectorRegistry | None = None,
        exit_on_failure: bool = True,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.config = config
        self.metrics = Metrics(registry)
        self.exit_on_failure = exit_on_failure
        self.store = SqliteStore(
            reactor,
            config.store.path,
            synchronous=config.store.synchronous,
            result_codes=config.result_codes,
        )
        inbound = _Inbound()
        self.connectors = {
            name: build_connector(reactor, settings, config.http, self.metrics, inbound)
            for name, settings in config.connectors.items()
        }
        self.gateway = inbound.gateway = Gateway(
            reactor, config, self.store, self.connectors, self.metrics
        )
        self.smpp = SmppServer(reactor, self.gateway)
        self.ports: list[Any] = []
        self.smpp_ports: list[Any] = []
        self.http_port: Any = None
        self.http_factory: Any = None
        self.ready: Deferred[None] = Deferred()
        self._loops: list[LoopingCall] = []
        self._previous_sighup: Any = None
        self._started = False

    # --- start --------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._start().addErrback(self._start_failed)
        if hasattr(signal, "SIGHUP"):
            # systemctl reload sends SIGHUP; the handler only schedules the work.
            self._previous_sighup = signal.signal(
                signal.SIGHUP, lambda signum, frame: self.reactor.callFromThread(self.reload)
            )

    def reload(self) -> None:
        """Read the config file again and apply what can change live (gateway/reload.py)."""
        path = self.config.source
        systemd.notify("RELOADING=1")
        try:
            the_plan = reload.plan(self.gateway.config, config_module.load(path))
        except (config_module.ConfigError, reload.ReloadRefused, OSError) as e:
            log.error(
                "config reload refused, still running the previous config: {error}", error=str(e)
            )
            systemd.notify("READY=1")
            return
        for part in the_plan.restart_needed:
            log.warn(
                "{part} changed in {path} but needs a restart; running with the old values",
                part=part,
                path=path,
            )
        self.gateway.reconfigure(the_plan.config)
        self.smpp.reconfigure(the_plan)
        self.config = the_plan.config
        log.info(
            "config reloaded from {path}: accounts added {added}, removed {removed},"
            " changed {changed}",
            path=path,
            added=list(the_plan.added),
            removed=list(the_plan.removed),
            changed=list(the_plan.changed),
        )
        systemd.notify("READY=1")

    @inlineCallbacks
    def _start(self) -> Any:
        recovered = yield self.store.open()
        self.gateway.start(recovered)
        self.http_factory = build_http_factory(self.gateway, self._readiness)
        self.http_port = yield serverFromString(self.reactor, self.config.http.listen).listen(
            self.http_factory
        )
        self.ports.append(self.http_port)
        factory = SmppServerFactory(self.reactor, self.smpp)
        for description in self.config.smpp.listen:
            port = yield serverFromString(self.reactor, description).listen(factory)
            self.smpp_ports.append(port)
            self.ports.append(port)
        self._every(5.0, self.gateway.update_gauges)
        self._every(3600.0, self._purge)
        interval = systemd.watchdog_interval()
        if interval:
            self._every(interval, lambda: systemd.notify("WATCHDOG=1"))
        self._started = True
        # Everything built so far (code, config, recovered queues) lives as long as the
        # process: keep the cyclic collector from walking it again on every full pass.
        gc.freeze()
        log.info(
            "smpp-gateway ready: SMPP on {smpp}, HTTP on {http}, store {store}",
            smpp=", ".join(self.config.smpp.listen),
            http=self.config.http.listen,
            store=self.config.store.path,
        )
        systemd.notify("READY=1")
        self.ready.callback(None)

    def _every(self, interval: float, fn: Any) -> None:
        loop = LoopingCall(fn)
        loop.clock = self.reactor
        loop.start(interval, now=False).addErrback(lambda f: log.failure("periodic task failed", f))
        self._loops.append(loop)

    def _purge(self) -> Deferred[int]:
        before = self.reactor.seconds() - self.config.store.retention
        return self.store.purge(before)

    def _start_failed(self, failure: Any) -> None:
        log.failure("smpp-gateway could not start", failure)
        if not self.ready.called:
            self.ready.errback(failure)
        if self.exit_on_failure:
            # twistd has no way to set its exit status from a callback; systemd must see it.
            sys.stderr.write(f"smpp-gateway: could not start: {failure.getErrorMessage()}\n")
            os._exit(1)

    def _readiness(self) -> tuple[bool, str]:
        if not self._started:
            return False, "starting"
        return True, "ready"

    # --- stop ------------------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None
        return self._stop()

    @inlineCallbacks
    def _stop(self) -> Any:
        systemd.notify("STOPPING=1")
        for loop in self._loops:
            if loop.running:
                loop.stop()
        for port in self.smpp_ports:
            yield port.stopListening()
        yield DeferredList([c.unbind() for c in list(self.smpp.connections)], consumeErrors=True)
        self.gateway.dispatcher.stop()
        deadline = self.reactor.seconds() + SHUTDOWN_GRACE
        while not self.gateway.dispatcher.idle and self.reactor.seconds() < deadline:
            yield deferLater(self.reactor, 0.05, lambda: None)
        if self.http_port is not None:
            yield self.http_port.stopListening()
            # Reports still arriving get no answer, so LINK sends them again later.
            yield self.http_factory.close_connections()
        yield DeferredList([c.stop() for c in self.connectors.values()], consumeErrors=True)
        yield self.store.close()
        log.info("smpp-gateway stopped")


def makeService(options: Options) -> MultiService:
    config: config_module.Config = options["parsed"]
    top = MultiService()
    GatewayService(config, registry=REGISTRY).setServiceParent(top)
    return top
