"""sd_notify in a few lines: READY=1, STOPPING=1 and WATCHDOG=1 to $NOTIFY_SOCKET.

No dependency: a datagram to the socket systemd names in NOTIFY_SOCKET (an
abstract socket when it starts with '@'). Without the variable every call is a
no-op, so the daemon runs the same outside systemd.
"""

from __future__ import annotations

import os
import socket


def notify(state: str, *, environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(state.encode())
        except OSError:
            return False
    return True


def watchdog_interval(*, environ: dict[str, str] | None = None) -> float | None:
    """Half of WatchdogSec, as systemd recommends, when the watchdog is on for us."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
