"""twistd entry point: Options and makeService, and the service that runs it all.

Start-up order matters: the store is opened and what it held is queued again
before any listener opens, so no ESME or callback reaches a half-started
gateway; READY=1 goes to systemd only when every listener is up. A failure at
start (unreadable store, busy port) is logged and the process exits with
status 1, so systemd's Restart=on-failure and an operator both see it.

Shutdown (SIGTERM): STOPPING=1; the SMPP listeners close; every session stops
reading, so nothing new is taken, while what it already read is answered as it
completes; then the sessions are unbound. Nothing new goes to LINK and requests
in flight to it finish. Both waits end at `[smpp] shutdown_timeout`; then the
HTTP listener, the connectors and the store close. Whatever was accepted and not
yet sent stays queued in the store.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, maybeDeferred
from twisted.internet.endpoints import AdoptedStreamServerEndpoint, serverFromString
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python import usage

from gateway import config as config_module
from gateway import health, logs, reload, systemd, tls
from gateway.assembly import Flows
from gateway.connectors.registry import build_connector
from gateway.http.site import HttpSite
from gateway.metrics import Metrics
from gateway.records import MO, RECEIPT
from gateway.store.sqlite import SqliteStore
from gateway.transport.server import SmppServerFactory

log = Logger()
# How often _until (the start and the shutdown drain) looks whether it may go on.
_DRAIN_POLL = 0.02
# Seconds a thread that holds the GIL keeps it from one that waits (see startService).
GIL_SWITCH_INTERVAL = 0.0005


class CannotListen(Exception):
    """A listener could not open; the message names it, as the operator wrote it."""


def check_listener(reactor: Any, description: str) -> None:
    """Raise CannotListen, naming the listener, if its endpoint string cannot work.

    Checked before anything opens, so that a socket systemd did not pass (Twisted
    says only "list index out of range") or one of the wrong kind is named clearly.
    """
    try:
        _check_adopted(serverFromString(reactor, description))
    except (IndexError, KeyError) as e:
        if not description.startswith("systemd:"):
            raise CannotListen(f"cannot listen on {description}: {e}") from e
        raise CannotListen(
            f"cannot listen on {description}: systemd passed no such socket (start the"
            " service through its .socket unit; index=N counts the sockets from 0 in the"
            " order of its ListenStream= lines, name= is its FileDescriptorName=)"
        ) from e
    except Exception as e:
        raise CannotListen(f"cannot listen on {description}: {e}") from e


def _check_adopted(endpoint: Any) -> None:
    """A socket from systemd must be what the endpoint string says, or Twisted would
    misread every peer address (INET for an INET6 socket) or never accept."""
    if not isinstance(endpoint, AdoptedStreamServerEndpoint):
        return
    with socket.socket(fileno=os.dup(endpoint.fileno)) as sock:
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_ACCEPTCONN
        ):
            raise ValueError("the socket from systemd is not a listening stream (ListenStream=)")
        if sock.family != endpoint.addressFamily:
            raise ValueError(
                f"the socket from systemd is {sock.family.name}: write"
                f" domain={sock.family.name.removeprefix('AF_')}"
            )


def describe(port: Any) -> str:
    """Where a listening port really listens (a systemd socket shows its address too)."""
    host = port.getHost() if hasattr(port, "getHost") else None
    address = getattr(host, "host", None)
    number = getattr(host, "port", None)
    if address is None or number is None:
        return str(host)
    return f"[{address}]:{number}" if ":" in address else f"{address}:{number}"


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


class GatewayService(Service):
    def __init__(
        self,
        config: config_module.Config,
        *,
        reactor: Any = None,
        registry: CollectorRegistry | None = None,
        exit_on_failure: bool = True,
        log_level: logs.LevelFilter | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.config = config
        self.metrics = Metrics(registry)
        self.exit_on_failure = exit_on_failure
        # The filter in front of the log observer (makeService), for reload to change.
        self.log_level = log_level or logs.LevelFilter(config.logging.level)
        self.store = SqliteStore(
            reactor,
            config.store.path,
            synchronous=config.store.synchronous,
            wal_limit=config.store.wal_limit_mb * 2**20,
            wal_keep=config.store.wal_keep_mb * 2**20,
            reserve=config.store.reserve_mb * 2**20,
            commit_delay=config.store.commit_delay,
            fsync=config.store.fsync,
        )
        self.flows = Flows(
            reactor,
            config,
            self.metrics,
            self.store,
            lambda inbound: {
                name: build_connector(reactor, settings, config.http, self.metrics, inbound)
                for name, settings in config.connectors.items()
            },
        )
        # The parts the service itself drives (readiness, gauges, shutdown).
        self.connectors = self.flows.connectors
        self.router = self.flows.router
        self.dispatcher = self.flows.dispatcher
        self.deliverer = self.flows.deliverer
        self.intake = self.flows.intake
        self.smpp = self.flows.smpp
        self.ports: list[Any] = []
        self.smpp_ports: list[Any] = []
        self.http_port: Any = None
        self.site: HttpSite | None = None
        self.ready: Deferred[None] = Deferred()
        self._loops: list[LoopingCall] = []
        self._previous_sighup: Any = None
        self._started = False
        self._stopping = False
        self.store_probe = health.StoreProbe(
            reactor.seconds, health.store_write(self.store, reactor.seconds)
        )
        # Worked out at each scrape: cheap, and never stale between probes.
        self.metrics.ready.set_function(lambda: 1.0 if self._readiness()[0] else 0.0)

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
            the_plan = reload.plan(self.config, config_module.load(path))
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
        config = the_plan.config
        self.flows.reconfigure(the_plan)
        if self.site is not None:
            self.site.reconfigure(config)
        self.config = config
        log.info(
            "config reloaded from {path}: accounts added {added}, removed {removed},"
            " changed {changed}",
            path=path,
            added=list(the_plan.added),
            removed=list(the_plan.removed),
            changed=list(the_plan.changed),
        )
        # After that line, so that it is written whatever the new level.
        self.log_level.set(the_plan.config.logging.level)
        systemd.notify("READY=1")

    @inlineCallbacks
    def _start(self) -> Any:
        smpp = self.config.smpp
        for description in (self.config.http.listen, *smpp.listen, *smpp.tls_listen):
            check_listener(self.reactor, description)
        systemd.notify(f"STATUS=Opening the store {self.config.store.path}")
        recovered = yield self.store.open()
        self.flows.recover(recovered)
        # The first readiness write, so /readyz can say 200 as soon as the listeners are up.
        self.store_probe.beat()
        # READY=1 must find /readyz saying 200: wait for that write to commit. A store
        # that takes none in time is /readyz's to report, not a reason to stay down;
        # one refusing for a full disk (store/sqlite.py) says so at once.
        yield self._until(
            lambda: self.store_probe.problem() is None or self.store.refusing,
            self.reactor.seconds() + health.STORE_PROBE_MAX_AGE,
        )
        if not self.running:
            return  # SIGTERM while starting: _stop has run, open nothing now
        self.site = HttpSite(
            self.reactor,
            self.config,
            self.intake,
            self.flows.common_reports,
            self.metrics,
            self._readiness,
        )
        self.http_port = yield serverFromString(self.reactor, self.config.http.listen).listen(
            self.site.factory
        )
        self.ports.append(self.http_port)
        factory = SmppServerFactory(self.reactor, self.smpp)
        for endpoint in tls.smpp_endpoints(self.reactor, self.config.smpp):
            port = yield endpoint.listen(factory)
            self.smpp_ports.append(port)
            self.ports.append(port)
        self._every(5.0, self._update_gauges)
        self._every(3600.0, self._purge)
        self._every(health.STORE_PROBE_INTERVAL, self.store_probe.beat)
        interval = systemd.watchdog_interval()
        if interval:
            self._every(interval, lambda: systemd.notify("WATCHDOG=1"))
        self._started = True
        # Everything built so far (code, config, recovered queues) lives as long as the
        # process: keep the cyclic collector from walking it again on every full pass.
        gc.freeze()
        # An fsync thread needs the GIL for a moment after each fsync to hand the
        # result back; while the reactor runs Python, it gets it only when the
        # switch interval forces a hand-over (5 ms by default). Those milliseconds
        # are every report's 200, and LINK's next report waits for it: at 0.5 ms,
        # K=8 reports ran 6% faster (bench/README); no other thread wants the GIL.
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        # Listeners as configured and where they really are (a systemd: socket's address
        # is in the .socket unit, not in the config).
        smpp_at = ", ".join(describe(port) for port in self.smpp_ports)
        http_at = describe(self.http_port)
        log.info(
            "smpp-gateway ready: SMPP on {smpp} ({smpp_at}), HTTP on {http} ({http_at}),"
            " store {store}",
            smpp=", ".join((*self.config.smpp.listen, *self.config.smpp.tls_listen)),
            smpp_at=smpp_at,
            http=self.config.http.listen,
            http_at=http_at,
            store=self.config.store.path,
        )
        # Only now: every listener accepts connections and /readyz says so.
        systemd.notify("READY=1", f"STATUS=Ready: SMPP on {smpp_at}, HTTP on {http_at}")
        self.ready.callback(None)

    def _update_gauges(self) -> None:
        m = self.metrics
        waiting, oldest = self.dispatcher.depth()
        now = self.reactor.seconds()
        m.child(m.queue_depth, "mt").set(waiting)
        m.child(m.queue_oldest, "mt").set(now - oldest if oldest else 0)
        for queue, kind in (("receipts", RECEIPT), ("mo", MO)):
            count, since = self.deliverer.depth(kind)
            m.child(m.queue_depth, queue).set(count)
            m.child(m.queue_oldest, queue).set(now - since if since else 0)

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
        if self._stopping:
            return False, "stopping"
        if not self._started:
            return False, "starting"
        return health.readiness(
            store=self.store_probe,
            ports=self.ports,
            connectors=self.connectors,
            breaker=self.router.breaker,
        )

    # --- stop ------------------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None
        return self._stop()

    @inlineCallbacks
    def _stop(self) -> Any:
        systemd.notify("STOPPING=1", "STATUS=Stopping: finishing the requests already taken")
        self._stopping = True
        for loop in self._loops:
            if loop.running:
                loop.stop()
        deadline = self.reactor.seconds() + self.config.smpp.shutdown_timeout
        # No new ESME connections. With socket activation they wait in systemd's socket
        # for the next start instead of being refused.
        yield DeferredList(
            [maybeDeferred(port.stopListening) for port in self.smpp_ports], consumeErrors=True
        )
        # Nothing new to LINK from here on: what is queued, or accepted during the drain,
        # waits in the store for the next start. submit_now (accept = "upstream") still
        # runs for requests already read, as their answers depend on it.
        self.dispatcher.stop()
        self.flows.admission.long.stop()
        sessions = list(self.smpp.connections)
        for session in sessions:
            session.drain()
        yield self._until(lambda: not any(s.pending for s in self.smpp.connections), deadline)
        unanswered = sum(s.pending for s in self.smpp.connections)
        yield DeferredList([s.unbind() for s in list(self.smpp.connections)], consumeErrors=True)
        yield self._until(lambda: self.dispatcher.idle, deadline)
        if unanswered or not self.dispatcher.idle:
            log.warn(
                "shutdown_timeout ({timeout}s) reached: {unanswered} ESME requests left"
                " unanswered, requests to LINK still in flight: {busy}; their messages stay"
                " queued and go again after the next start",
                timeout=self.config.smpp.shutdown_timeout,
                unanswered=unanswered,
                busy=not self.dispatcher.idle,
            )
        # The HTTP listener closes last: LINK's reports for the requests that just
        # finished are still taken and stored.
        if self.http_port is not None:
            yield self.http_port.stopListening()
            # Reports still arriving get no answer, so LINK sends them again later.
            assert self.site is not None
            yield self.site.factory.close_connections()
        yield DeferredList([c.stop() for c in self.connectors.values()], consumeErrors=True)
        yield self.store.close()
        log.info("smpp-gateway stopped")

    def _until(self, done: Callable[[], bool], deadline: float) -> Deferred[None]:
        """Fires once `done()` is true or the deadline has passed, whichever is first."""
        result: Deferred[None] = Deferred()

        def check() -> None:
            if done() or self.reactor.seconds() >= deadline:
                result.callback(None)
            else:
                self.reactor.callLater(_DRAIN_POLL, check)

        check()
        return result


def makeService(options: Options) -> MultiService:
    config: config_module.Config = options["parsed"]
    # twistd's own options (--logfile, --nodaemon, --syslog) say where lines go.
    level = logs.LevelFilter(config.logging.level)
    top = logs.TopService(logs.observer_for(config.log_format, options.parent or {}, level))
    GatewayService(config, registry=REGISTRY, log_level=level).setServiceParent(top)
    return top
