"""Clients that misbehave, for the hostile-client and stress tests: floods that
never read, dribbles, pipelined HTTP, and the gateway's memory seen from outside.

Each helper works on a plain blocking or non-blocking socket to 127.0.0.1 and
stops by itself (a byte budget or a deadline); nothing here starts a process.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from pathlib import Path

from gateway.smpp import pdu as p
from gateway.smpp.codec import encode

HOST = "127.0.0.1"
# Small socket buffers on our side: the gateway's output backs up after a few KiB
# instead of after the several MiB Linux gives loopback sockets by default.
SMALL_BUFFER = 16384


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def stingy_socket(port: int) -> socket.socket:
    """A connected socket with small buffers, non-blocking."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    sock.connect((HOST, port))
    sock.setblocking(False)
    return sock


def flood(sock: socket.socket, chunk: bytes, *, seconds: float, stuck_for: float = 1.0) -> int:
    """Write `chunk` again and again without reading; stop after `seconds`, or once
    the peer has taken nothing for `stuck_for` seconds. Returns the bytes it took."""
    sent = 0
    pending = memoryview(chunk)
    deadline = time.monotonic() + seconds
    last_progress = time.monotonic()
    while time.monotonic() < deadline:
        try:
            n = sock.send(pending)
        except BlockingIOError:
            if time.monotonic() - last_progress >= stuck_for:
                break
            select.select([], [sock], [], 0.05)
            continue
        except OSError:
            break  # the gateway closed it
        sent += n
        last_progress = time.monotonic()
        pending = pending[n:] if n < len(pending) else memoryview(chunk)
    return sent


def closed_by_peer(sock: socket.socket, *, within: float) -> bool:
    """Read (and drop) until the peer closes or resets; False if it is still open
    after `within` seconds."""
    deadline = time.monotonic() + within
    sock.setblocking(False)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.05)
        if not ready:
            continue
        try:
            if not sock.recv(1 << 20):
                return True
        except BlockingIOError:
            continue
        except OSError as e:
            if e.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
                return True
            raise
    return False


def is_open(sock: socket.socket) -> bool:
    """Whether the peer has not closed the socket, read without taking anything
    (taking would let a stalled peer go on): a reset shows as a socket error, a
    close as an end of file right at the head of the unread data."""
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
        return False
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return bool(data)


def closed_unread(sock: socket.socket, *, within: float) -> bool:
    """True once the peer closed or reset the socket, reading none of what it sent;
    False if it is still open after `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not is_open(sock):
            return True
        time.sleep(0.05)
    return False


def enquire_links(count: int) -> bytes:
    return b"".join(encode(p.EnquireLink(sequence=n + 1)) for n in range(count))


def bind_pdu(system_id: str, password: str, sequence: int = 1) -> bytes:
    return encode(p.BindTransceiver(system_id=system_id, password=password, sequence=sequence))


def http_get(path: str, *, host: str = "gw") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
