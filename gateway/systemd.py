"""sd_notify in a few lines: READY=1, STOPPING=1, STATUS= and WATCHDOG=1 to $NOTIFY_SOCKET.

No dependency: a datagram to the socket systemd names in NOTIFY_SOCKET (an
abstract socket when it starts with '@'). Without the variable every call is a
no-op, so the daemon runs the same outside systemd.

What the gateway sends, and when (the unit is Type=notify):
- `STATUS=...` while starting, so `systemctl status` shows which step hangs;
- `READY=1` once the store is open and every listener accepts connections;
- `WATCHDOG=1` every half WatchdogSec from the reactor, so a blocked reactor
  (not only a dead process) makes systemd restart the service;
- `STOPPING=1` as soon as SIGTERM starts the drain.
"""

from __future__ import annotations

import os
import socket


def notify(*states: str, environ: dict[str, str] | None = None) -> bool:
    """Send `states` (e.g. "READY=1", "STATUS=...") in one datagram; True if it went out.

    One datagram, so that systemd sees READY=1 and the STATUS describing it at once.
    """
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address or not states:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    # A newline would start another assignment: a status text must stay one line.
    message = "\n".join(state.replace("\n", " ") for state in states)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(message.encode())
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
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value / 2_000_000
