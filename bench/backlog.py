"""Backlog benchmark: a million messages queued with LINK down, then drained.

    python -m bench.backlog [--messages N] [--binds B] [--window W] [--json]

What it shows (issue 11): the gateway's memory does not grow with what waits in
its store, a restart with a backlog is ready within seconds, and a backlog
drains at the gateway's normal rate once LINK is back. Steps, each on the same
gateway store (a temporary directory), every figure printed, none judged:

1. `queue`: B transmitter binds submit N messages while nothing listens on the
   Common connector's port (LINK unreachable: connections refused). Every
   ESME_ROK is stored; max RSS of the gateway is sampled throughout.
2. `restart with messages queued`: SIGTERM, start again; the time from the
   start of the process to the first bind answered ESME_ROK.
3. `drain`: the fake Common starts on that port; the connector's breaker lets a
   probe through and the backlog goes to LINK. Drain rate = messages the fake
   accepted / the seconds from its first to its last acceptance. The fake posts
   each message's report; no receiver is bound, so N receipts queue in the store.
4. `restart with receipts queued`: as step 2, with N receipts waiting.
5. `receipts`: one receiver bind takes the N receipts; their rate and max RSS.

The exit status is 1 when a message or receipt went missing or came twice.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet import reactor as _reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from bench.e2e import PASSWORD, SYSTEM_ID, log, proc_memory, sleep
from gateway.smpp import codec
from gateway.smpp import pdu as p
from tests import harness

reactor: Any = _reactor

DEFAULT_MESSAGES = 1_000_000
# The fake posts reports as a client pool does: one request in flight on each.
REPORT_CONNECTIONS = 16
_DEPTH = re.compile(r'^smppgw_queue_depth\{queue="(\w+)"\} (\S+)$', re.M)


class Esme(Protocol):
    """One bind: submit_sm out with at most `window` outstanding, or deliver_sm in."""

    def __init__(self, bind: type[p.Pdu], window: int = 0) -> None:
        self.bind_pdu = bind
        self.window = window
        self.framer = codec.Framer()
        self.bound: defer.Deferred[int] = defer.Deferred()
        self.todo = 0
        self.outstanding = 0
        self.sequence = 1
        self.rok = 0
        self.refused = 0
        self.receipts: set[str] = set()
        self.duplicates = 0
        self.idle: defer.Deferred[None] | None = None

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)  # type: ignore[union-attr]
        bind = self.bind_pdu(sequence=1, system_id=SYSTEM_ID, password=PASSWORD)  # type: ignore[call-arg]
        self.transport.write(codec.encode(bind))  # type: ignore[union-attr]

    def submit(self, count: int, first: int) -> defer.Deferred[None]:
        self.todo, self.next = count, first
        self.idle = defer.Deferred()
        self._fill()
        return self.idle

    def _fill(self) -> None:
        out = []
        while self.todo and self.outstanding < self.window:
            self.sequence += 1
            i = self.next
            self.next += 1
            self.todo -= 1
            self.outstanding += 1
            out.append(
                codec.encode(
                    p.SubmitSm(
                        sequence=self.sequence,
                        source_addr_ton=5,
                        source_addr="BENCH",
                        dest_addr_ton=1,
                        dest_addr_npi=1,
                        destination_addr=f"4670{i:07d}",
                        registered_delivery=1,
                        short_message=b"backlog message %d" % i,
                    )
                )
            )
        if out:
            self.transport.writeSequence(out)  # type: ignore[union-attr]
        if not self.todo and not self.outstanding and self.idle and not self.idle.called:
            self.idle.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.framer.feed(data)
        out = []
        while (frame := self.framer.next_frame()) is not None:
            pdu = codec.decode(frame)
            if isinstance(pdu, p.SubmitSmResp):
                self.outstanding -= 1
                if pdu.status == 0:
                    self.rok += 1
                else:
                    self.refused += 1
            elif isinstance(pdu, p.DeliverSm):
                out.append(codec.encode(p.DeliverSmResp(sequence=pdu.sequence)))
                raw = pdu.tlv(p.Tag.RECEIPTED_MESSAGE_ID)
                key = raw.rstrip(b"\x00").decode() if raw else repr(pdu.short_message)
                if key in self.receipts:
                    self.duplicates += 1
                self.receipts.add(key)
            elif isinstance(pdu, p.EnquireLink):
                out.append(codec.encode(p.EnquireLinkResp(sequence=pdu.sequence)))
            elif not self.bound.called and pdu.command_id & 0x80000000:
                self.bound.callback(pdu.status)
        if out:
            self.transport.writeSequence(out)  # type: ignore[union-attr]
        if self.window:
            self._fill()


@dataclass
class Figures:
    messages: int
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


class Sampler:
    """The gateway's peak RSS (VmHWM of the current process) across restarts."""

    def __init__(self) -> None:
        self.pid = 0

    def mib(self) -> tuple[float, float]:
        memory = proc_memory(self.pid)
        return memory.get("VmHWM", 0) / 1024, memory.get("VmRSS", 0) / 1024


def depths(gateway: harness.GatewayProcess) -> dict[str, float]:
    return {name: float(value) for name, value in _DEPTH.findall(gateway.metrics())}


@defer.inlineCallbacks
def gauge(gateway: harness.GatewayProcess, queue: str, expected: int) -> Any:
    """The queue's depth gauge once it shows `expected` (it is refreshed every 5 s),
    or what it shows after 12 s."""
    deadline = time.monotonic() + 12.0
    while (value := depths(gateway).get(queue, 0)) != expected and time.monotonic() < deadline:
        yield sleep(0.5)
    return value


@defer.inlineCallbacks
def bind(port: int, kind: type[p.Pdu], window: int = 0) -> Any:
    esme = Esme(kind, window)
    yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), esme)
    status = yield esme.bound
    if status != 0:
        raise RuntimeError(f"bind refused with status {status:#x}")
    return esme


@defer.inlineCallbacks
def wait_until(test: Any, what: str, timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what} after {timeout:g} s")
        yield sleep(every)


@defer.inlineCallbacks
def restart(gateway: harness.GatewayProcess, sampler: Sampler) -> Any:
    """Stop and start the gateway; seconds until a bind is answered ESME_ROK."""
    gateway.stop()
    started = time.monotonic()
    gateway.start()
    assert gateway.proc is not None
    sampler.pid = gateway.proc.pid
    esme = yield bind(gateway.smpp_port, p.BindTransmitter)
    ready = time.monotonic() - started
    esme.transport.loseConnection()
    return ready


@defer.inlineCallbacks
def run(args: argparse.Namespace, directory: Path, figures: Figures) -> Any:
    n = args.messages
    smpp_port, http_port, common_port = (harness.free_port() for _ in range(3))
    accounts = harness.account_toml(
        SYSTEM_ID, PASSWORD, "main", rate=0, max_queue=2 * n, accept="stored", max_binds=16
    )
    config = harness.gateway_config(
        directory,
        smpp_port=smpp_port,
        http_port=http_port,
        common_url=f"http://127.0.0.1:{common_port}",
        accounts=accounts,
    )
    gateway = harness.GatewayProcess(config, smpp_port, http_port).start()
    fake: harness.FakeCommonProcess | None = None
    sampler = Sampler()
    assert gateway.proc is not None
    sampler.pid = gateway.proc.pid
    try:
        # 1. queue with LINK unreachable.
        esmes = []
        for _ in range(args.binds):
            esmes.append((yield bind(smpp_port, p.BindTransmitter, args.window)))
        started = time.monotonic()
        share = -(-n // args.binds)
        submits = [
            esme.submit(min(share, n - i * share), i * share) for i, esme in enumerate(esmes)
        ]
        done = defer.DeferredList(submits)
        while not done.called:
            yield defer.DeferredList([done, sleep(5.0)], fireOnOneCallback=True)
            log(f"[queue] {sum(e.rok for e in esmes)} stored, max RSS {sampler.mib()[0]:.1f} MiB")
        seconds = time.monotonic() - started
        rok = sum(e.rok for e in esmes)
        queued = yield gauge(gateway, "mt", rok)
        figures.steps["queue"] = {
            "esme_rok": rok,
            "refused": sum(e.refused for e in esmes),
            "seconds": round(seconds, 1),
            "submit_per_second": round(rok / seconds, 1),
            "queued": int(queued),
            "max_rss_mib": round(sampler.mib()[0], 1),
        }
        for esme in esmes:
            esme.transport.loseConnection()
        if rok != n or queued != n:
            figures.failures.append(f"{rok} of {n} answered ESME_ROK, {queued:g} queued")

        # 2. restart with the messages queued.
        ready = yield restart(gateway, sampler)
        queued = yield gauge(gateway, "mt", rok)
        figures.steps["restart with messages queued"] = {
            "seconds_to_bind": round(ready, 2),
            "queued": int(queued),
            "rss_mib": round(sampler.mib()[1], 1),
        }

        # 3. LINK comes back; receipts queue with no receiver bound.
        fake = harness.FakeCommonProcess(
            gateway.callback_url,
            port=common_port,
            callback_connections=REPORT_CONNECTIONS,
            callback_pipeline=1,
        ).start()
        up = time.monotonic()
        marks: list[tuple[float, int]] = []

        def accepted() -> bool:
            assert fake is not None
            count = int(fake.control().get("accepted", 0))
            marks.append((time.monotonic(), count))
            if len(marks) % 10 == 0:
                log(f"[drain] LINK accepted {count}, max RSS {sampler.mib()[0]:.1f} MiB")
            return count >= rok

        yield wait_until(
            accepted, "the backlog to reach LINK", timeout=max(600.0, n / 200), every=0.5
        )
        # From the last poll that found nothing accepted: a lower bound on the rate.
        first = max((t for t, count in marks if count == 0), default=up)
        last = marks[-1][0]

        def receipts_queued() -> bool:
            return depths(gateway).get("receipts", 0) >= rok

        yield wait_until(receipts_queued, "the receipts to queue", timeout=max(600.0, n / 200))
        figures.steps["drain"] = {
            "seconds_until_link_took_the_first": round(first - up, 1),
            "drain_per_second": round(rok / max(last - first, 1e-9), 1),
            "receipts_queued": int(depths(gateway).get("receipts", 0)),
            "seconds_until_all_receipts_queued": round(time.monotonic() - up, 1),
            "max_rss_mib": round(sampler.mib()[0], 1),
        }

        # 4. restart with the receipts queued.
        ready = yield restart(gateway, sampler)
        queued = yield gauge(gateway, "receipts", rok)
        figures.steps["restart with receipts queued"] = {
            "seconds_to_bind": round(ready, 2),
            "queued": int(queued),
            "rss_mib": round(sampler.mib()[1], 1),
        }

        # 5. a receiver takes them.
        started = time.monotonic()
        receiver = yield bind(smpp_port, p.BindReceiver)

        def all_in() -> bool:
            return len(receiver.receipts) >= rok

        yield wait_until(all_in, "the receipts to arrive", timeout=max(600.0, n / 200))
        seconds = time.monotonic() - started
        yield sleep(2.0)  # a repeat would come now
        figures.steps["receipts"] = {
            "received": len(receiver.receipts),
            "duplicates": receiver.duplicates,
            "receipts_per_second": round(len(receiver.receipts) / seconds, 1),
            "max_rss_mib": round(sampler.mib()[0], 1),
        }
        if receiver.duplicates or len(receiver.receipts) != rok:
            figures.failures.append(
                f"{len(receiver.receipts)} receipts for {rok} messages,"
                f" {receiver.duplicates} repeated"
            )
        receiver.transport.loseConnection()
    finally:
        gateway.stop()
        if fake is not None:
            fake.stop()


def render(figures: Figures) -> str:
    lines = [f"== backlog: {figures.messages} messages"]
    for step, values in figures.steps.items():
        text = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in values.items())
        lines.append(f"  {step:<30} {text}")
    lines += [f"  FAILED: {failure}" for failure in figures.failures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backlog", description=__doc__)
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--binds", type=int, default=2)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = Figures(args.messages)
    failure: list[Failure] = []

    @defer.inlineCallbacks
    def go() -> Any:
        try:
            with tempfile.TemporaryDirectory(prefix="bench-backlog-") as tmp:
                yield run(args, Path(tmp), figures)
        except BaseException as error:
            failure.append(Failure(error))  # type: ignore[no-untyped-call]
        finally:
            reactor.stop()

    reactor.callWhenRunning(go)
    reactor.run()
    print(json.dumps(figures.steps, indent=2) if args.json else render(figures), flush=True)
    if failure:
        log(f"bench: {failure[0].getErrorMessage()}")
        return 2
    return 1 if figures.failures else 0


if __name__ == "__main__":
    sys.exit(main())
