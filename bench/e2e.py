"""End-to-end benchmark: ESME load -> gateway -> fake Common -> reports -> receipts -> ESME.

    python -m bench.e2e [--quick] [--rate R] [--callback-connections K] [--messages N]
                        [--callback-pipeline P] [--callback-close SHARE] [--json]

The gateway (`twistd -n smpp-gateway`) and the fake LINK Common server run as
separate processes through tests/harness.py, on 127.0.0.1, with the store in a
temporary directory; the load generator runs in this process on the Twisted
reactor, speaking SMPP through our own codec. Each row gets a fresh gateway
and fake, so its CPU and memory figures are its own.

The fake posts each message's delivery report as LINK's HTTP client pool does:
K keep-alive connections, one request in flight on each (its answer awaited
before the next). By default one table: K = 1, 4, 8, 16, 64 unpaced (as fast
as B binds x W outstanding submit_sm allow, 20,000 messages), then paced at
500, 1,000 and 2,000 messages/s with K = 8 (10 s each). `--rate` or
`--callback-connections` runs one row; `--quick` is the smoke run CI uses.
Details of each row go to stderr, the table to stdout. Figures are printed,
never judged: the exit status is 1 only when work was lost (a submit_sm without
an answer or refused, or an accepted message without its receipt), 2 when the
benchmark could not run at all. bench/README.md explains every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet import reactor as _reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from gateway.smpp import codec
from gateway.smpp import pdu as p
from tests import harness

reactor: Any = _reactor

_HEADER = struct.Struct(">IIII")
_SUBMIT_SM = p.CommandId.SUBMIT_SM
_SUBMIT_SM_RESP = p.CommandId.SUBMIT_SM_RESP
_DELIVER_SM = p.CommandId.DELIVER_SM
_DELIVER_SM_RESP = p.CommandId.DELIVER_SM_RESP
_ENQUIRE_LINK = p.CommandId.ENQUIRE_LINK
_ENQUIRE_LINK_RESP = p.CommandId.ENQUIRE_LINK_RESP
_BIND_TRANSCEIVER_RESP = p.CommandId.BIND_TRANSCEIVER_RESP
_UNBIND = p.CommandId.UNBIND
_UNBIND_RESP = p.CommandId.UNBIND_RESP
_GENERIC_NACK = p.CommandId.GENERIC_NACK
_RECEIPTED_MESSAGE_ID = p.Tag.RECEIPTED_MESSAGE_ID
_RSYSERR = p.CommandStatus.ESME_RSYSERR

SYSTEM_ID = "bench"
PASSWORD = "benchpw"

# The default table: unpaced rows over K report connections, then paced rows
# at K = PACED_K, each paced row PACED_SECONDS long.
TABLE_CONNECTIONS = (1, 4, 8, 16, 64)
TABLE_MESSAGES = 20_000
TABLE_RATES = (500.0, 1000.0, 2000.0)
PACED_K = 8
PACED_SECONDS = 10.0
QUICK_MESSAGES = 1_000
QUICK_RATE = 500.0
# No progress (answers or receipts) for this long ends a phase; what is
# missing then is reported as lost.
STALL_SECONDS = 20.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEBUG = bool(os.environ.get("BENCH_DEBUG"))


# --- process figures from /proc ---------------------------------------------


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name may hold spaces; fields after it are fixed.
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of a process split by where they went: the reactor (main)
    thread and the others (store commits, the thread pool), each user and
    system. A cost that moves off the reactor shows here and not in the total."""
    split = dict.fromkeys(("main_user", "main_system", "other_user", "other_system"), 0.0)
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return split
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue  # a thread that ended meanwhile
        where = "main" if int(tid) == pid else "other"
        split[f"{where}_user"] += int(fields[11]) / CLK_TCK
        split[f"{where}_system"] += int(fields[12]) / CLK_TCK
    return split


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in KiB."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, value = line.split(":", 1)
                    found[name] = int(value.split()[0])
    except OSError:
        pass
    return found


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


# --- the gateway and the fake, optionally profiled ---------------------------


class BenchGateway(harness.GatewayProcess):
    """The harness's gateway process, optionally run under cProfile."""

    def __init__(self, config: Path, smpp_port: int, http_port: int, profile: str | None) -> None:
        super().__init__(config, smpp_port, http_port)
        self.profile = profile

    def start(self) -> BenchGateway:
        if self.profile is None:
            super().start()
            return self
        command = [
            harness.PYTHON,
            "-m",
            "bench.profiled_twistd",
            self.profile,
            "--nodaemon",
            "--pidfile=",
            "smpp-gateway",
            "--config",
            str(self.config),
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=harness.ROOT, env=harness._env(), stdout=log, stderr=subprocess.STDOUT
            )
        try:
            harness.wait_for_port(self.smpp_port, timeout=30, proc=self.proc)
        except Exception:
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"gateway did not start:\n{self.log.read_text()[-3000:]}") from None
        return self


class Processes:
    """Everything started for one phase; `stop` reaps it all, safe to call twice."""

    def __init__(self, directory: Path, binds: int, profile: str | None, phase: Phase) -> None:
        self.directory = directory
        self.binds = binds
        self.phase = phase
        self.profile = profile
        self.fake: harness.FakeCommonProcess | None = None
        self.gateway: BenchGateway | None = None

    def start(self) -> None:
        smpp_port, http_port = harness.free_port(), harness.free_port()
        callback = f"http://127.0.0.1:{http_port}/callbacks/dlr"
        self.fake = harness.FakeCommonProcess(
            callback,
            callback_connections=self.phase.callback_connections,
            callback_pipeline=self.phase.callback_pipeline,
            callback_close=self.phase.callback_close,
        ).start()
        accounts = harness.account_toml(
            SYSTEM_ID, PASSWORD, "main", rate=0, max_binds=max(16, self.binds), accept="stored"
        )
        config = harness.gateway_config(
            self.directory,
            smpp_port=smpp_port,
            http_port=http_port,
            common_url=self.fake.url,
            accounts=accounts,
        )
        self.gateway = BenchGateway(config, smpp_port, http_port, self.profile).start()

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        if self.fake is not None:
            self.fake.stop()

    def fake_stats(self) -> dict[str, Any]:
        assert self.fake is not None
        try:
            return self.fake.control()
        except OSError:
            return {}

    def gateway_log_tail(self) -> str:
        if self.gateway is None or not self.gateway.log.exists():
            return ""
        return self.gateway.log.read_text(errors="replace")[-3000:]


# --- the load generator ------------------------------------------------------


def submit_bodies(count: int, sar_parts: int = 1) -> list[bytes]:
    """Pre-encoded submit_sm bodies (header excluded), one per PDU.

    With `sar_parts` N > 1 every N PDUs are one long message to one destination,
    cut as some client libraries cut: parts of 254 octets numbered by sar_* TLVs,
    which the gateway puts back together (each part still gets its receipt).
    """
    bodies = []
    for j in range(count):
        i, seq = divmod(j, sar_parts)
        tlvs: list[tuple[int, bytes]] = []
        text = b"bench message %d" % i
        if sar_parts > 1:
            text = (b"part %d of bench message %d " % (seq + 1, i)).ljust(SAR_PART, b"x")
            tlvs = [
                (p.Tag.SAR_MSG_REF_NUM, (i & 0xFFFF).to_bytes(2, "big")),
                (p.Tag.SAR_TOTAL_SEGMENTS, bytes([sar_parts])),
                (p.Tag.SAR_SEGMENT_SEQNUM, bytes([seq + 1])),
            ]
        pdu = p.SubmitSm(
            source_addr_ton=5,
            source_addr_npi=0,
            source_addr="BENCH",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=f"46700{i % 1_000_000:06d}",
            registered_delivery=1,
            data_coding=0,
            short_message=text,
            tlvs=tlvs,
        )
        bodies.append(codec.encode(pdu)[16:])
    return bodies


SAR_PART = 254  # octets: the most short_message holds


@dataclass
class Phase:
    name: str
    messages: int
    rate: float  # 0: unpaced
    # How the fake Common posts reports: connections, requests in flight on each
    # (1 as LINK's client pool), and the share of requests sent with Connection: close.
    callback_connections: int = 4
    callback_pipeline: int = 1
    callback_close: float = 0.0
    # PDUs per long message (254-octet sar_* parts); 1: each PDU a message.
    sar_parts: int = 1


@dataclass
class Result:
    """Everything measured in one phase."""

    phase: Phase
    binds: int
    window: int
    submitted: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    nacks: int = 0
    resp_latencies: list[float] = field(default_factory=list)
    receipt_latencies: list[float] = field(default_factory=list)
    receipts: int = 0
    receipts_matched: int = 0
    receipts_unmatched: int = 0
    duplicates: int = 0
    first_submit: float = 0.0
    last_submit: float = 0.0
    last_resp: float = 0.0
    last_receipt: float = 0.0
    pacing_lag_max: float = 0.0
    window_full_waits: int = 0
    stalled: bool = False
    gateway_cpu: float = 0.0
    gateway_threads: dict[str, float] = field(default_factory=dict)
    gateway_rss_kib: int = 0
    gateway_hwm_kib: int = 0
    fake_cpu: float = 0.0
    bench_cpu: float = 0.0
    fake_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def rok(self) -> int:
        return self.statuses.get(0, 0)

    @property
    def answered(self) -> int:
        return sum(self.statuses.values()) + self.nacks

    @property
    def lost(self) -> int:
        """Messages of the phase that did not come back as a matching receipt
        (never sent because the gateway stalled, unanswered, refused, or answered
        ESME_ROK without a receipt)."""
        return self.phase.messages - self.receipts_matched


class LoadRun:
    """Shared state of the B connections of one phase."""

    def __init__(self, phase: Phase, binds: int, window: int) -> None:
        self.phase = phase
        self.window = window
        self.bodies = submit_bodies(phase.messages, phase.sar_parts)
        self.next_index = 0
        self.sequence = 0
        self.sent_at: dict[int, float] = {}  # sequence -> write time
        self.id_sent_at: dict[str, float] = {}  # message_id -> submit time
        self.received: set[str] = set()
        self.early: dict[str, float] = {}  # receipts seen before their submit_sm_resp
        self.result = Result(phase, binds, window)
        self.connections: list[EsmeClient] = []
        self.done: defer.Deferred[None] = defer.Deferred()
        self._turn = 0
        self._tick: Any = None
        self._start = 0.0
        self._finishing = False

    # -- sending --------------------------------------------------------------

    def start(self) -> None:
        self._start = time.perf_counter()
        self.result.first_submit = self._start
        if self.phase.rate > 0:
            self._pace()
        else:
            for connection in self.connections:
                connection.fill()
                connection.flush()

    def take(self) -> tuple[int, bytes] | None:
        """The next message to send, with a fresh sequence number, or None."""
        index = self.next_index
        if index >= len(self.bodies):
            return None
        self.next_index = index + 1
        self.sequence += 1
        return self.sequence, self.bodies[index]

    def _pace(self) -> None:
        """Token bucket: send whatever is due by now, then sleep until the next token."""
        self._tick = None
        rate = self.phase.rate
        total = len(self.bodies)
        now = time.perf_counter()
        due = min(total, int((now - self._start) * rate) + 1)
        connections = self.connections
        count = len(connections)
        touched = set()
        while self.next_index < due:
            # The time this message should have left, for the lag figure.
            scheduled = self._start + self.next_index / rate
            for _ in range(count):
                connection = connections[self._turn % count]
                self._turn += 1
                if connection.can_send:
                    break
            else:
                self.result.window_full_waits += 1
                break  # every window full: responses will call us again
            connection.send_one()
            touched.add(connection)
            lag = now - scheduled
            if lag > self.result.pacing_lag_max:
                self.result.pacing_lag_max = lag
        for connection in touched:
            connection.flush()
        if self.next_index < total and self._tick is None:
            wait = self._start + self.next_index / rate - time.perf_counter()
            self._tick = reactor.callLater(max(wait, 0.0), self._pace)

    def window_opened(self, connection: EsmeClient) -> None:
        if self.phase.rate > 0:
            # Catch up on tokens that accumulated while windows were full.
            if self._tick is None and self.next_index < len(self.bodies):
                self._pace()
        else:
            connection.fill()

    # -- answers ----------------------------------------------------------------

    def submit_answered(self, sequence: int, status: int, message_id: str, now: float) -> None:
        sent = self.sent_at.pop(sequence, None)
        if sent is None:
            return
        r = self.result
        r.statuses[status] += 1
        r.resp_latencies.append(now - sent)
        r.last_resp = now
        if status == 0:
            self.id_sent_at[message_id] = sent
            early = self.early.pop(message_id, None)
            if early is not None:
                self._matched(message_id, sent, early)
        self.check_done()

    def submit_nacked(self, sequence: int, now: float) -> None:
        if self.sent_at.pop(sequence, None) is not None:
            self.result.nacks += 1
            self.result.last_resp = now
            self.check_done()

    def receipt(self, message_id: str | None, now: float) -> None:
        r = self.result
        r.receipts += 1
        if message_id is None:
            r.receipts_unmatched += 1
            return
        if message_id in self.received or message_id in self.early:
            r.duplicates += 1
            if DEBUG:
                log(f"duplicate receipt for {message_id}")
            return
        sent = self.id_sent_at.get(message_id)
        if sent is None:
            self.early[message_id] = now
            return
        self._matched(message_id, sent, now)
        self.check_done()

    def _matched(self, message_id: str, sent: float, now: float) -> None:
        r = self.result
        self.received.add(message_id)
        r.receipts_matched += 1
        r.receipt_latencies.append(now - sent)
        if now > r.last_receipt:
            r.last_receipt = now

    def check_done(self) -> None:
        r = self.result
        if (
            r.submitted == self.phase.messages
            and r.answered == r.submitted
            and r.receipts_matched >= r.rok
            and not self.done.called
            and not self._finishing
        ):
            # Fire on the next reactor turn: called from dataReceived, the
            # deliver_sm_resp just queued must go out before the unbind.
            self._finishing = True
            reactor.callLater(0, self.done.callback, None)

    def finish(self) -> None:
        """Stop sending (also when stalled) and count receipts that never matched."""
        if self._tick is not None and self._tick.active():
            self._tick.cancel()
        self._tick = None
        self.result.receipts_unmatched += len(self.early)
        self.early.clear()

    def progress(self) -> int:
        r = self.result
        return r.submitted + r.answered + r.receipts


class EsmeClient(Protocol):
    """One transceiver bind: submit_sm out, submit_sm_resp and deliver_sm in."""

    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.framer = codec.Framer()
        self.outstanding = 0
        self.bound: defer.Deferred[int] = defer.Deferred()
        self.closed: defer.Deferred[None] = defer.Deferred()
        self.unbound = False
        self.out: list[bytes] = []
        self.sent_at = run.sent_at

    def connectionMade(self) -> None:
        # Like a latency-minded ESME: no Nagle delay on our small PDUs.
        self.transport.setTcpNoDelay(True)  # type: ignore[union-attr]
        bind = p.BindTransceiver(
            sequence=1, system_id=SYSTEM_ID, password=PASSWORD, system_type="bench"
        )
        self.transport.write(codec.encode(bind))  # type: ignore[union-attr]

    @property
    def can_send(self) -> bool:
        return self.outstanding < self.run.window

    def send_one(self) -> bool:
        item = self.run.take()
        if item is None:
            return False
        sequence, body = item
        self.out.append(_HEADER.pack(16 + len(body), _SUBMIT_SM, 0, sequence))
        self.out.append(body)
        self.outstanding += 1
        now = time.perf_counter()
        self.sent_at[sequence] = now
        r = self.run.result
        r.submitted += 1
        r.last_submit = now
        return True

    def fill(self) -> None:
        while self.outstanding < self.run.window and self.send_one():
            pass

    def flush(self) -> None:
        if self.out:
            self.transport.writeSequence(self.out)  # type: ignore[union-attr]
            self.out = []

    def dataReceived(self, data: bytes) -> None:
        framer = self.framer
        framer.feed(data)
        run = self.run
        out = self.out
        answered = False
        now = time.perf_counter()
        while True:
            try:
                frame = framer.next_frame()
            except codec.PduError as error:
                print(f"bench: broken stream from the gateway: {error}", file=sys.stderr)
                self.transport.abortConnection()  # type: ignore[union-attr]
                return
            if frame is None:
                break
            _, command_id, status, sequence = _HEADER.unpack_from(frame)
            if command_id == _SUBMIT_SM_RESP:
                self.outstanding -= 1
                answered = True
                message_id = ""
                if status == 0:
                    nul = frame.find(0, 16)
                    message_id = frame[16 : nul if nul >= 0 else len(frame)].decode("latin-1")
                run.submit_answered(sequence, status, message_id, now)
            elif command_id == _DELIVER_SM:
                try:
                    deliver = codec.decode(frame)
                except codec.PduError:
                    out.append(_HEADER.pack(16, _DELIVER_SM_RESP, _RSYSERR, sequence))
                    continue
                out.append(_HEADER.pack(17, _DELIVER_SM_RESP, 0, sequence) + b"\x00")
                raw = deliver.tlv(_RECEIPTED_MESSAGE_ID)
                if DEBUG:
                    log(f"deliver_sm {sequence} on {id(self):x}: {deliver.short_message!r}")
                if isinstance(deliver, p.DeliverSm) and deliver.esm_class & p.ESM_CLASS_RECEIPT:
                    run.receipt(raw.rstrip(b"\x00").decode("latin-1") if raw else None, now)
            elif command_id == _ENQUIRE_LINK:
                out.append(_HEADER.pack(16, _ENQUIRE_LINK_RESP, 0, sequence))
            elif command_id == _BIND_TRANSCEIVER_RESP:
                self.bound.callback(status)
            elif command_id == _GENERIC_NACK:
                if sequence in self.sent_at:
                    self.outstanding -= 1
                    answered = True
                    run.submit_nacked(sequence, now)
            elif command_id == _UNBIND_RESP:
                self.unbound = True
                self.transport.loseConnection()  # type: ignore[union-attr]
            elif command_id == _UNBIND:
                out.append(_HEADER.pack(16, _UNBIND_RESP, 0, sequence))
        if answered:
            run.window_opened(self)
        self.flush()

    def unbind(self) -> None:
        self.transport.write(_HEADER.pack(16, _UNBIND, 0, 0x7FFFFFFF))  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        if not self.bound.called:
            self.bound.errback(reason)
        self.closed.callback(None)


def sleep(seconds: float) -> defer.Deferred[None]:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@defer.inlineCallbacks
def run_phase(phase: Phase, args: argparse.Namespace, processes: Processes) -> Any:
    assert processes.gateway is not None and processes.gateway.proc is not None
    assert processes.fake is not None and processes.fake.proc is not None
    gateway_pid = processes.gateway.proc.pid
    fake_pid = processes.fake.proc.pid
    run = LoadRun(phase, args.binds, args.window)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", processes.gateway.smpp_port)
    for _ in range(args.binds):
        client = EsmeClient(run)
        yield connectProtocol(endpoint, client)
        status = yield client.bound
        if status != 0:
            raise RuntimeError(f"bind_transceiver refused with status {status:#x}")
        run.connections.append(client)

    log(
        f"[{phase.name}] {phase.messages} messages, "
        f"{'unpaced' if phase.rate <= 0 else f'{phase.rate:g}/s'}, "
        f"{args.binds} binds x window {args.window}; gateway pid {gateway_pid}"
    )
    cpu0 = proc_cpu(gateway_pid), proc_cpu(fake_pid), self_cpu()
    threads0 = thread_cpu(gateway_pid)
    run.start()

    stalled_for = 0.0
    last_progress = -1
    last_report = time.perf_counter()
    while not run.done.called:
        yield defer.DeferredList([run.done, sleep(0.5)], fireOnOneCallback=True)
        progress = run.progress()
        if progress != last_progress:
            last_progress, stalled_for = progress, 0.0
        else:
            stalled_for += 0.5
            if stalled_for >= args.stall:
                run.result.stalled = True
                break
        if time.perf_counter() - last_report >= 5:
            last_report = time.perf_counter()
            r = run.result
            log(
                f"[{phase.name}]   submitted {r.submitted}, answered {r.answered}, "
                f"receipts {r.receipts_matched}"
            )

    run.finish()
    r = run.result
    r.gateway_cpu = proc_cpu(gateway_pid) - cpu0[0]
    # Threads that ended during the phase are missing from both samples, so the
    # split can sum to a little less than the total.
    r.gateway_threads = {k: v - threads0[k] for k, v in thread_cpu(gateway_pid).items()}
    r.fake_cpu = proc_cpu(fake_pid) - cpu0[1]
    r.bench_cpu = self_cpu() - cpu0[2]
    memory = proc_memory(gateway_pid)
    r.gateway_rss_kib = memory.get("VmRSS", 0)
    r.gateway_hwm_kib = memory.get("VmHWM", 0)
    r.fake_stats = processes.fake_stats()

    # Leave politely, so the gateway sees an unbind rather than a reset.
    for client in run.connections:
        client.unbind()
    closed = defer.DeferredList([c.closed for c in run.connections])
    yield defer.DeferredList([closed, sleep(2.0)], fireOnOneCallback=True)
    for client in run.connections:
        if client.transport is not None and not client.closed.called:
            client.transport.abortConnection()  # type: ignore[union-attr]
    return r


# --- figures -----------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def figures(r: Result) -> dict[str, Any]:
    resp = sorted(r.resp_latencies)
    receipt = sorted(r.receipt_latencies)
    submit_span = max(r.last_resp - r.first_submit, 1e-9)
    end_span = max(max(r.last_receipt, r.last_resp) - r.first_submit, 1e-9)
    other = {_status_name(status): count for status, count in sorted(r.statuses.items()) if status}
    if r.nacks:
        other["generic_nack"] = r.nacks
    ms = 1000.0
    return {
        "phase": r.phase.name,
        "messages": r.phase.messages,
        "rate": r.phase.rate,
        "binds": r.binds,
        "window": r.window,
        "submit": {
            "seconds": round(submit_span, 3),
            "throughput": round(r.answered / submit_span, 1),
            "offered_rate": round(r.submitted / max(r.last_submit - r.first_submit, 1e-9), 1),
            "latency_ms": {
                "p50": round(percentile(resp, 50) * ms, 2),
                "p90": round(percentile(resp, 90) * ms, 2),
                "p99": round(percentile(resp, 99) * ms, 2),
                "max": round((resp[-1] if resp else 0.0) * ms, 2),
            },
            "pacing_lag_max_ms": round(r.pacing_lag_max * ms, 2),
        },
        "end_to_end": {
            "seconds_to_last_receipt": round(end_span, 3),
            "receipts_per_second": round(r.receipts_matched / end_span, 1),
            "receipt_latency_ms": {
                "p50": round(percentile(receipt, 50) * ms, 1),
                "p99": round(percentile(receipt, 99) * ms, 1),
                "max": round((receipt[-1] if receipt else 0.0) * ms, 1),
            },
        },
        "counts": {
            "submitted": r.submitted,
            "answered": r.answered,
            "rok": r.rok,
            "other_statuses": other,
            "receipts": r.receipts,
            "receipts_matched": r.receipts_matched,
            "receipts_unmatched": r.receipts_unmatched,
            "duplicates": r.duplicates,
            "lost": r.lost,
            "stalled": r.stalled,
        },
        "cpu_seconds": {
            "gateway": round(r.gateway_cpu, 2),
            "fake_common": round(r.fake_cpu, 2),
            "load_generator": round(r.bench_cpu, 2),
            "gateway_us_per_message": round(r.gateway_cpu / max(r.receipts_matched, 1) * 1e6, 1),
            "gateway_threads": {k: round(v, 2) for k, v in r.gateway_threads.items()},
        },
        "gateway_memory_mib": {
            "rss_at_end": round(r.gateway_rss_kib / 1024, 1),
            "max_rss": round(r.gateway_hwm_kib / 1024, 1),
        },
        "fake_common": r.fake_stats,
    }


def _status_name(status: int) -> str:
    try:
        return p.CommandStatus(status).name
    except ValueError:
        return f"{status:#x}"


def render(f: dict[str, Any]) -> str:
    s, e, c = f["submit"], f["end_to_end"], f["counts"]
    cpu, mem, fake = f["cpu_seconds"], f["gateway_memory_mib"], f["fake_common"]
    lat, rl = s["latency_ms"], e["receipt_latency_ms"]
    mode = "unpaced" if f["rate"] <= 0 else f"paced at {f['rate']:g}/s"
    other = ", ".join(f"{k} {v}" for k, v in c["other_statuses"].items()) or "none"
    pad = " " * 25
    lines = [
        f"== {f['phase']}: {f['messages']} messages, {mode},"
        f" {f['binds']} binds x window {f['window']}",
        f"  submit throughput      {s['throughput']:.1f} msg/s ({s['seconds']:.2f} s from the"
        f" first submit_sm to the last submit_sm_resp; offered {s['offered_rate']:.1f}/s)",
        f"  submit_sm_resp latency p50 {lat['p50']:.2f} ms  p90 {lat['p90']:.2f} ms"
        f"  p99 {lat['p99']:.2f} ms  max {lat['max']:.2f} ms",
    ]
    if f["rate"] > 0:
        lines.append(f"  pacing lag (max)       {s['pacing_lag_max_ms']:.2f} ms behind schedule")
    lines += [
        f"  end to end             {e['seconds_to_last_receipt']:.2f} s to the last receipt,"
        f" {e['receipts_per_second']:.1f} receipts/s",
        f"  receipt latency        p50 {rl['p50']:.1f} ms  p99 {rl['p99']:.1f} ms"
        f"  max {rl['max']:.1f} ms  (submit_sm -> deliver_sm)",
        f"  counts                 submitted {c['submitted']}, ESME_ROK {c['rok']}, other: {other}",
        f"{pad}receipts {c['receipts']}, matching a submit_sm_resp id {c['receipts_matched']},"
        f" unmatched {c['receipts_unmatched']}",
        f"{pad}duplicates {c['duplicates']}, lost {c['lost']}"
        + ("  (STALLED)" if c["stalled"] else ""),
        f"  CPU seconds            gateway {cpu['gateway']:.2f}"
        f" ({cpu['gateway_us_per_message']:.0f} us/message), fake Common"
        f" {cpu['fake_common']:.2f}, load generator {cpu['load_generator']:.2f}",
        f"{pad}gateway reactor thread user {cpu['gateway_threads']['main_user']:.2f}"
        f" system {cpu['gateway_threads']['main_system']:.2f}, other threads user"
        f" {cpu['gateway_threads']['other_user']:.2f}"
        f" system {cpu['gateway_threads']['other_system']:.2f}",
        f"  gateway memory         max RSS {mem['max_rss']:.1f} MiB,"
        f" RSS at end {mem['rss_at_end']:.1f} MiB",
    ]
    if fake:
        lines.append(
            f"  fake Common            {fake.get('requests', 0)} requests for"
            f" {fake.get('accepted', 0)} messages, reports posted {fake.get('reports_posted', 0)},"
            f" failed {fake.get('reports_failed', 0)}"
        )
    return "\n".join(lines)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- main --------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.e2e",
        description="End-to-end benchmark: ESME -> gateway -> fake Common -> receipts -> ESME.",
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=None,
        help=f"messages per row (default {TABLE_MESSAGES} unpaced, {PACED_SECONDS:g} s worth"
        f" paced; --quick: {QUICK_MESSAGES})",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="one row only: 0 unpaced, R > 0 paced at R messages/s (default: the whole table)",
    )
    parser.add_argument("--binds", type=int, default=4, help="transceiver binds (default 4)")
    parser.add_argument(
        "--window", type=int, default=50, help="outstanding submit_sm per bind (default 50)"
    )
    parser.add_argument(
        "--callback-connections",
        type=int,
        default=None,
        metavar="K",
        help="one row only: connections the fake Common posts reports over"
        f" (default: the table's {', '.join(map(str, TABLE_CONNECTIONS))})",
    )
    parser.add_argument(
        "--callback-pipeline",
        type=int,
        default=1,
        help="reports in flight per report connection (default 1, as an HTTP client pool"
        " such as LINK's posts; more pipelines, which real senders do not: rows say so)",
    )
    parser.add_argument(
        "--callback-close",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of report requests sent with Connection: close (0-1, default 0)",
    )
    parser.add_argument(
        "--sar-parts",
        type=int,
        default=1,
        metavar="N",
        help="send long messages in N parts of 254 octets with sar_* TLVs, which the"
        " gateway reassembles; each part counts as a message (default 1: none)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="a ~10 s smoke run")
    parser.add_argument(
        "--stall",
        type=float,
        default=STALL_SECONDS,
        help=f"end a phase after this many seconds without progress (default {STALL_SECONDS:g})",
    )
    parser.add_argument(
        "--profile-gateway",
        metavar="FILE",
        default=None,
        help="profile the gateway, writing FILE: sampled if it ends in .json (see"
        " bench/profiled_twistd.py), else cProfile (use with a single row)",
    )
    args = parser.parse_args(argv)
    if args.binds < 1 or args.window < 1 or args.callback_pipeline < 1:
        parser.error("--binds, --window and --callback-pipeline must be at least 1")
    if args.messages is not None and args.messages < 1:
        parser.error("--messages must be at least 1")
    if not 0.0 <= args.callback_close <= 1.0:
        parser.error("--callback-close is a share between 0 and 1")
    if not 1 <= args.sar_parts <= 255:
        parser.error("--sar-parts must be 1-255")
    return args


def _row(args: argparse.Namespace, connections: int, rate: float, messages: int) -> Phase:
    name = f"K={connections} unpaced" if rate <= 0 else f"K={connections} paced {rate:g}/s"
    if args.callback_pipeline > 1:
        name += f", PIPELINED x{args.callback_pipeline}"
    if args.callback_close:
        name += f", {args.callback_close:.0%} Connection: close"
    if args.sar_parts > 1:
        name += f", {args.sar_parts} x {SAR_PART}-octet SAR parts"
    count = args.messages or messages
    return Phase(
        name,
        count - count % args.sar_parts if count >= args.sar_parts else args.sar_parts,
        rate,
        callback_connections=connections,
        callback_pipeline=args.callback_pipeline,
        callback_close=args.callback_close,
        sar_parts=args.sar_parts,
    )


def phases(args: argparse.Namespace) -> list[Phase]:
    if args.quick:
        k = args.callback_connections or 4
        return [_row(args, k, 0.0, QUICK_MESSAGES), _row(args, k, QUICK_RATE, QUICK_MESSAGES)]
    if args.rate is None and args.callback_connections is None:
        rows = [_row(args, k, 0.0, TABLE_MESSAGES) for k in TABLE_CONNECTIONS]
        return rows + [_row(args, PACED_K, r, int(r * PACED_SECONDS)) for r in TABLE_RATES]
    rate = args.rate or 0.0
    messages = TABLE_MESSAGES if rate <= 0 else int(rate * PACED_SECONDS)
    return [_row(args, args.callback_connections or PACED_K, rate, messages)]


def table(rows: list[dict[str, Any]]) -> str:
    """One line per row: the figures issue 12 asks for, side by side."""
    head = (
        "| row | messages | end to end msg/s | submit_sm_resp p50 / p99 ms"
        " | receipt p50 / p99 ms | report 200 p50 / p99 ms | gateway CPU us/msg"
        " | max RSS MiB | lost / dup |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for f in rows:
        s, e, c = f["submit"]["latency_ms"], f["end_to_end"], f["counts"]
        r = e["receipt_latency_ms"]
        answer = f.get("fake_common", {}).get("report_answer_ms") or {"p50": 0.0, "p99": 0.0}
        lines.append(
            f"| {f['phase']} | {f['messages']} | {e['receipts_per_second']:.0f}"
            f" | {s['p50']:.2f} / {s['p99']:.2f} | {r['p50']:.1f} / {r['p99']:.1f}"
            f" | {answer['p50']:.2f} / {answer['p99']:.2f}"
            f" | {f['cpu_seconds']['gateway_us_per_message']:.0f}"
            f" | {f['gateway_memory_mib']['max_rss']:.1f}"
            f" | {c['lost']} / {c['duplicates']}" + (" STALLED" if c["stalled"] else "") + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: list[Result] = []
    started: list[Processes] = []
    failure: list[Failure] = []

    @defer.inlineCallbacks
    def run_all() -> Any:
        try:
            for phase in phases(args):
                with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
                    processes = Processes(Path(tmp), args.binds, args.profile_gateway, phase)
                    started.append(processes)
                    log(f"[{phase.name}] starting fake Common and gateway")
                    processes.start()
                    try:
                        result = yield run_phase(phase, args, processes)
                    except Exception:
                        tail = processes.gateway_log_tail()
                        if tail:
                            log(f"gateway log (tail):\n{tail}")
                        raise
                    finally:
                        processes.stop()
                    results.append(result)
                    if result.stalled or result.lost:
                        tail = processes.gateway_log_tail()
                        if tail:
                            log(f"gateway log (tail):\n{tail}")
                    if not args.json:
                        log(render(figures(result)))
        except BaseException as error:  # reported after the reactor stops
            failure.append(Failure(error))  # type: ignore[no-untyped-call]
        finally:
            if reactor.running:
                reactor.stop()

    reactor.callWhenRunning(run_all)
    try:
        reactor.run()
    finally:
        # Ctrl-C or SIGTERM stop the reactor mid-phase: reap whatever runs.
        for processes in started:
            processes.stop()

    if failure:
        log(f"bench: {failure[0].getErrorMessage()}")
        failure[0].printTraceback(file=sys.stderr)
        return 2
    if len(results) < len(phases(args)):
        log("bench: interrupted")
        return 2
    if args.json:
        print(json.dumps({"phases": [figures(r) for r in results]}, indent=2))
    else:
        print(table([figures(r) for r in results]), flush=True)
    lost = sum(r.lost for r in results)
    if lost:
        log(f"bench: {lost} messages did not come back as a receipt")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
