"""What the platform costs before the gateway does anything: python -m bench.floor

Issue 12 asks for at most 200 us of gateway CPU per message in every row of
bench/e2e.py, paced rows included. At 500 or 1,000 msg/s nothing batches: each
message is its own submit_sm and submit_sm_resp, its own report POST and 200,
its own deliver_sm and deliver_sm_resp, and the submit and the report each wait
for a durable commit. This measures the floor under those exchanges: a bare
Twisted server (no SMPP, no HTTP, no logic) that answers each 64-byte frame
with 32 bytes, and the same server committing one SQLite row per frame and
answering after the fsync, the way gateway/store/commit.py does it (BEGIN,
INSERT, COMMIT on the reactor thread; fdatasync of the WAL in a thread;
callFromThread back).

The client (this process) paces frames over a few connections, one frame in
flight on each, as the ESMEs and LINK's client pool do. Printed: the server's
CPU (all threads) per exchange at each rate. A message at low rates needs
three exchanges, two of them durable, so three times the bare figure plus the
durable surcharge twice is what no code of ours can go below on this runtime.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from typing import Any

FRAME = 64
ANSWER = 32


def _server(mode: str, directory: str) -> None:
    import queue
    import sqlite3
    import threading

    from twisted.internet import protocol
    from twisted.internet import reactor as default_reactor

    reactor: Any = default_reactor
    conn: sqlite3.Connection | None = None
    jobs: queue.SimpleQueue[object] = queue.SimpleQueue()
    if mode == "durable":
        path = os.path.join(directory, "floor.sqlite")
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (v BLOB)")
        wal = os.open(path + "-wal", os.O_RDONLY)

        def fsyncs() -> None:
            while True:
                done = jobs.get()
                os.fdatasync(wal)
                reactor.callFromThread(done)

        threading.Thread(target=fsyncs, daemon=True).start()

    class Answer(protocol.Protocol):
        buffer = b""

        def dataReceived(self, data: bytes) -> None:
            self.buffer += data
            while len(self.buffer) >= FRAME:
                frame, self.buffer = self.buffer[:FRAME], self.buffer[FRAME:]
                if conn is None:
                    self.transport.write(b"a" * ANSWER)
                    continue
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t VALUES (?)", (frame,))
                conn.execute("COMMIT")
                jobs.put(lambda: self.transport.write(b"a" * ANSWER))

    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Answer), interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    reactor.run()


def _cpu(pid: int) -> float:
    """CPU seconds of every thread of `pid`, from schedstat: nanoseconds, where
    /proc/PID/stat counts in 10 ms ticks."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return total / 1e9


def measure(mode: str, rate: float, connections: int, seconds: float, directory: str) -> float:
    """Server CPU microseconds per exchange at `rate` exchanges/s."""
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.floor", "--serve", mode, "--directory", directory],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
        for s in sockets:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        time.sleep(0.5)
        cpu0, start, done = _cpu(server.pid), time.perf_counter(), 0
        frame = b"f" * FRAME
        while time.perf_counter() - start < seconds:
            for s in sockets:
                s.sendall(frame)
            for s in sockets:
                got = 0
                while got < ANSWER:
                    got += len(s.recv(ANSWER - got))
            done += connections
            wait = start + done / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        return (_cpu(server.pid) - cpu0) / done * 1e6
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=("bare", "durable"), help=argparse.SUPPRESS)
    parser.add_argument("--directory", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--rates", default="500,1000,2000,4000", help="exchanges/s, comma-separated"
    )
    args = parser.parse_args()
    if args.serve:
        _server(args.serve, args.directory)
        return
    import tempfile

    print("| exchanges/s | bare exchange us CPU | durable exchange us CPU |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as directory:
        for rate in (float(r) for r in args.rates.split(",")):
            bare = measure("bare", rate, args.connections, args.seconds, directory)
            durable = measure("durable", rate, args.connections, args.seconds, directory)
            print(f"| {rate:g} | {bare:.0f} | {durable:.0f} |", flush=True)


if __name__ == "__main__":
    main()
