"""One gateway, one well-behaved ESME, and every attack of issue 9 at once.

A side ESME (its own process, tests/stress/side_esme.py) submits 20 messages a
second through the gateway to the fake Common and takes its receipts, while
this process, in threads, runs against the same gateway:

- a 300-PDU burst of submit_sm that are all refused, in one write;
- three bound clients that flood enquire_link and never read;
- 2,000 pipelined GET /metrics in one write;
- 1,000 connections that never bind;
- 200 binds at once: 100 with the right password, 100 guessing;
- 3,000 first parts of long messages whose other parts never come (issue 13),
  against an account that may keep 2,000 waiting.

What must hold: every submit_sm_resp of the side ESME arrives within an ESME's
response timer (RESPONSE_TIMER_MS, SMPP 3.4 section 7.2: past it a real client
gives up on the request; before issue 9 the worst took 7.1 s) and it gets a
receipt for every message; the gateway's resident memory stays under RSS_LIMIT
throughout (sampled every 100 ms); every refused PDU of the burst is answered.
Its latency percentiles are printed (pytest -s shows them), not asserted:
timing is the benchmark's business, and a shared CI machine makes a p99 bound
fail for reasons that are not the gateway's. To find which attack costs what,
STRESS_ONLY=burst,reading,metrics,unbound,binds,parts (any subset)
runs only those; the assertions about the others then fail, the figures stay.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.smpp import pdu as p
from gateway.smpp.codec import Framer, decode, encode
from tests.esme import Esme, submit
from tests.harness import (
    PYTHON,
    ROOT,
    FakeCommonProcess,
    GatewayProcess,
    _env,
    account_toml,
    gateway_with_common,
)
from tests.hostile import (
    HOST,
    bind_pdu,
    enquire_links,
    flood,
    http_get,
    rss_bytes,
    stingy_socket,
)

pytestmark = pytest.mark.slow

S = p.CommandStatus
RSS_LIMIT = 200 * 1024 * 1024
RESPONSE_TIMER_MS = 5000.0
SIDE_SECONDS = 15.0
SIDE_RATE = 20.0
ORPHANS = 3000
ORPHANS_KEPT = 2000

ACCOUNTS = (
    account_toml("side", "pw", "main")
    + account_toml("burst", "pw", "main")
    + account_toml("reader", "pw", "main", max_binds=10)
    + account_toml("storm", "pw", "main", max_binds=4)
    + account_toml("orphans", "pw", "main", max_waiting_parts=ORPHANS_KEPT)
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Any]]:
    directory = tmp_path_factory.mktemp("stress")
    smpp_extra = "\n".join(
        [
            "bind_timeout = 5",
            "write_timeout = 5",
            "failed_bind_delay = 0.1",
            "window = 500",
        ]
    )
    with gateway_with_common(
        directory,
        accounts=ACCOUNTS,
        smpp_extra=smpp_extra,
        fake_options={"report_delay": 0.05},
    ) as (gateway, fake):
        # The production default: a cached page, not the tests' metrics_cache = 0.
        gateway.stop()
        config = gateway.config
        config.write_text(config.read_text().replace("metrics_cache = 0\n", ""))
        gateway.start()
        yield gateway, fake


class Sampler(threading.Thread):
    """The gateway's RSS every 100 ms until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.1)


def _in_thread(fn: Callable[[], Any], results: dict[str, Any], name: str) -> threading.Thread:
    def run() -> None:
        try:
            results[name] = fn()
        except Exception as e:  # reported by the test, not lost in the thread
            results[name] = e

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def refused_burst(port: int) -> int:
    with Esme(port, timeout=20) as esme:
        assert esme.bind("burst", "pw").status == S.ESME_ROK
        data = b""
        for n in range(300):
            data += encode(submit(data_coding=0xA1, sequence=n + 1))  # type: ignore[arg-type]
        esme.send_raw(data)
        answers = [esme.receive(lambda r: r.is_response) for _ in range(300)]
        return sum(1 for a in answers if a.status == S.ESME_RSUBMITFAIL)


def never_reading(port: int, seconds: float) -> int:
    sock = stingy_socket(port)
    sock.setblocking(True)
    sock.sendall(bind_pdu("reader", "pw"))
    time.sleep(0.2)
    sock.setblocking(False)
    try:
        return flood(sock, enquire_links(4096), seconds=seconds, stuck_for=seconds)
    finally:
        sock.close()


def pipelined_metrics(port: int) -> int:
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sock.sendall(http_get("/metrics") * 2000)
        received = b""
        answers = 0
        while answers < 2000:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            received += chunk
            answers = received.count(b"HTTP/1.1 200 ")
        return answers


def unbound_connections(port: int, count: int, hold: float) -> int:
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.connect((HOST, port))
        sock.send(b"\x00\x00")  # half a command_length, and nothing more
        socks.append(sock)
    time.sleep(hold)
    for sock in socks:
        sock.close()
    return len(socks)


def bind_storm(port: int) -> dict[str, int]:
    statuses: dict[str, int] = {}
    lock = threading.Lock()

    def one(password: str) -> None:
        try:
            with socket.create_connection((HOST, port), timeout=20) as sock:
                sock.sendall(bind_pdu("storm", password))
                framer = Framer(4096)
                while (frame := framer.next_frame()) is None:
                    data = sock.recv(4096)
                    if not data:
                        raise ConnectionError("closed")
                    framer.feed(data)
                word = f"{decode(frame).status:#x}"
        except OSError as e:
            word = type(e).__name__
        with lock:
            statuses[word] = statuses.get(word, 0) + 1

    passwords = ["pw"] * 100 + [f"guess{n}" for n in range(100)]
    threads = [threading.Thread(target=one, args=(pw,)) for pw in passwords]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return statuses


def orphan_parts(port: int) -> dict[int, int]:
    """First parts of 254 octets (sar_* TLVs) whose second parts never come:
    {status: how many}, sent in pipelined rounds within the window."""
    statuses: dict[int, int] = {}
    with Esme(port, timeout=30) as esme:
        assert esme.bind("orphans", "pw").status == S.ESME_ROK
        for start in range(0, ORPHANS, 250):
            data = b""
            for n in range(start, min(start + 250, ORPHANS)):
                tlvs = [
                    (p.Tag.SAR_MSG_REF_NUM, (n & 0xFFFF).to_bytes(2, "big")),
                    (p.Tag.SAR_TOTAL_SEGMENTS, b"\x02"),
                    (p.Tag.SAR_SEGMENT_SEQNUM, b"\x01"),
                ]
                pdu = submit(f"4790{n:06d}", b"o" * 254, tlvs=tlvs, sequence=n + 1)
                data += encode(pdu)
            esme.send_raw(data)
            for _ in range(min(250, ORPHANS - start)):
                answer = esme.receive(lambda r: r.is_response)
                statuses[answer.status] = statuses.get(answer.status, 0) + 1
    return statuses


def test_a_side_esme_is_served_while_everything_else_attacks(
    stack: tuple[GatewayProcess, FakeCommonProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    gateway, _ = stack
    assert gateway.proc is not None
    sampler = Sampler(gateway.proc.pid)
    sampler.start()
    side = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "tests.stress.side_esme",
            "--port",
            str(gateway.smpp_port),
            "--rate",
            str(SIDE_RATE),
            "--seconds",
            str(SIDE_SECONDS),
        ],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    results: dict[str, Any] = {}
    threads = []
    try:
        time.sleep(1.0)  # the side ESME is bound and sending
        port, http = gateway.smpp_port, gateway.http_port
        every = "burst,reading,metrics,unbound,binds,parts"
        only = os.environ.get("STRESS_ONLY", every).split(",")
        if "burst" in only:
            threads.append(_in_thread(lambda: refused_burst(port), results, "burst"))
        for n in range(3 if "reading" in only else 0):
            threads.append(
                _in_thread(lambda: never_reading(port, 10.0), results, f"never_reading_{n}")
            )
        if "metrics" in only:
            threads.append(_in_thread(lambda: pipelined_metrics(http), results, "metrics"))
        if "parts" in only:
            threads.append(_in_thread(lambda: orphan_parts(port), results, "parts"))
        if "unbound" in only:
            threads.append(
                _in_thread(lambda: unbound_connections(port, 1000, 6.0), results, "unbound")
            )
        time.sleep(1.0)
        if "binds" in only:
            threads.append(_in_thread(lambda: bind_storm(port), results, "binds"))
        for thread in threads:
            thread.join(60)
        out, _ = side.communicate(timeout=90)
    finally:
        if side.poll() is None:
            side.kill()
        sampler.stopped.set()
        sampler.join()
    figures = json.loads(out.strip().splitlines()[-1])
    with capsys.disabled():
        print(
            f"\nside ESME: {figures}\nattacks: { {k: v for k, v in results.items()} }"
            f"\ngateway peak RSS: {sampler.peak / 1e6:.1f} MB"
        )
    for name, value in results.items():
        assert not isinstance(value, Exception), f"{name}: {value!r}"
    assert results["burst"] == 300
    assert results["metrics"] == 2000
    assert results["unbound"] == 1000
    # The account keeps what it may; the rest is told to come back later.
    assert results["parts"] == {S.ESME_ROK: ORPHANS_KEPT, S.ESME_RMSGQFUL: ORPHANS - ORPHANS_KEPT}
    binds = results["binds"]
    assert sum(binds.values()) == 200
    # Each closes once answered, so more than max_binds succeed over the storm; the
    # point is that every bind got an answer (no reset, no timeout) and some passed.
    assert binds.get("0x0", 0) >= 4 and set(binds) <= {"0x0", "0xd", "0xe"}
    assert figures["accepted"] == figures["submitted"] > SIDE_RATE * SIDE_SECONDS * 0.9
    assert figures["receipts_matched"] == figures["accepted"]
    assert figures["max_ms"] < RESPONSE_TIMER_MS
    assert sampler.peak < RSS_LIMIT
    assert "Traceback" not in Path(gateway.log).read_text(errors="replace")
