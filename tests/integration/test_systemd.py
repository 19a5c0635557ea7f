"""The daemon as systemd runs it: sd_notify, the watchdog, socket activation, the unit.

systemd is played by the test: NOTIFY_SOCKET names a datagram socket the test
reads, and a listening socket of the test is handed over as fd 3 with
LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES set the way systemd sets them (LISTEN_PID
and WATCHDOG_PID by a tiny exec wrapper, since only the daemon's own pid counts).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import systemd
from gateway.smpp import pdu as p
from gateway.smpp.receipts import parse_receipt_text
from tests.esme import Esme, submit
from tests.harness import PYTHON, ROOT, TWISTD, _env, free_port, gateway_config

# Sets the named variables to the pid that then becomes twistd's (exec keeps the pid),
# moves the inherited socket to fd 3 (systemd's SD_LISTEN_FDS_START) and execs argv.
_AS_SYSTEMD = """
import os, sys
names, fd, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
for name in filter(None, names.split(",")):
    os.environ[name] = str(os.getpid())
if fd >= 0 and fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.execv(argv[0], argv)
"""


class Notifications:
    """The test's end of NOTIFY_SOCKET: one AF_UNIX datagram socket, read in order."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.log: list[tuple[float, list[str]]] = []

    def next(self, timeout: float) -> list[str]:
        """The assignments of the next datagram (TimeoutError if none comes)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            raise TimeoutError(f"no notification within {timeout}s; got {self.log}") from None
        lines = data.decode().split("\n")
        self.log.append((time.monotonic(), lines))
        return lines

    def until(self, state: str, timeout: float) -> list[list[str]]:
        """Datagrams up to and including the first holding `state`."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            lines = self.next(max(0.01, deadline - time.monotonic()))
            seen.append(lines)
            if state in lines:
                return seen

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notifications() -> Iterator[Notifications]:
    # A path, not tmp_path: AF_UNIX addresses are limited to 107 bytes.
    directory = tempfile.mkdtemp(prefix="sd-", dir="/tmp")
    listener = Notifications(os.path.join(directory, "notify"))
    try:
        yield listener
    finally:
        listener.close()
        shutil.rmtree(directory, ignore_errors=True)


# What systemd would set: never inherited from whatever runs the tests.
_SYSTEMD_VARIABLES = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in _env().items() if k not in _SYSTEMD_VARIABLES}


class Daemon:
    """twistd -n smpp-gateway started the way systemd would; always killed at the end."""

    def __init__(
        self,
        config: Path,
        *,
        env: dict[str, str],
        set_pid: tuple[str, ...] = (),
        listen_fd: int | None = None,
    ) -> None:
        self.log = config.with_suffix(".log")
        command = [TWISTD, "--nodaemon", "--pidfile=", "smpp-gateway", "--config", str(config)]
        fd = -1 if listen_fd is None else listen_fd
        command = [PYTHON, "-c", _AS_SYSTEMD, ",".join(set_pid), str(fd), *command]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**_clean_env(), **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=() if listen_fd is None else (listen_fd,),
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def text(self) -> str:
        return self.log.read_text()


def readyz(http_port: int) -> tuple[int, str]:
    """(status, body) of GET /readyz."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=5) as answer:
            status: int = answer.status
            return status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def bind_and_submit(port: int) -> str:
    """Bind as transceiver, submit one message, wait for its receipt; our message id."""
    with Esme(port) as esme:
        assert esme.bind("esme1", "secret1").status == p.CommandStatus.ESME_ROK
        answer = esme.request(submit("4790000001", b"via systemd"))
        assert answer.status == p.CommandStatus.ESME_ROK
        message_id: str = answer.message_id  # type: ignore[attr-defined]
        (receipt,) = esme.receipts(1, timeout=15)
        assert parse_receipt_text(receipt.short_message).message_id == message_id
        return message_id


# --- sd_notify ------------------------------------------------------------------------


def test_ready_only_once_every_listener_accepts_then_stopping_on_sigterm(
    tmp_path: Path, notifications: Notifications
) -> None:
    smpp_ports = [free_port(), free_port()]
    http_port = free_port()
    config = gateway_config(tmp_path, smpp_port=smpp_ports[0], http_port=http_port, common_url=None)
    listen = ", ".join(f'"tcp:{port}:interface=127.0.0.1"' for port in smpp_ports)
    text = re.sub(r"(?m)^listen = \[.*\]$", f"listen = [{listen}]", config.read_text(), count=1)
    # Receipts 1.1 s after the submit, on the gateway's clock: over two watchdog intervals.
    simulator = 'type = "simulator"\ndelay = '
    assert simulator + "0.2\n" in text
    text = text.replace(simulator + "0.2\n", simulator + "1.1\n", 1)
    config.write_text(text)
    # The watchdog is someone else's (WATCHDOG_PID): no pings from this process.
    env = {"NOTIFY_SOCKET": notifications.address, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    daemon = Daemon(config, env=env)
    try:
        before = notifications.until("READY=1", timeout=30)
        # The very moment READY=1 arrives, every listener takes connections: no retry.
        for port in smpp_ports:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert readyz(http_port)[0] == 200, readyz(http_port)
        for lines in before[:-1]:
            assert all(line.startswith("STATUS=") for line in lines), before
        ready = before[-1]
        assert [line for line in ready if not line.startswith("STATUS=")] == ["READY=1"]
        assert any(f"127.0.0.1:{smpp_ports[1]}" in line for line in ready), ready

        # The simulator's receipt is a timer of the gateway's reactor that falls due
        # after two watchdog intervals (0.5 s each) since READY=1: pings, had they
        # been ours, were due before it and were sent by the time the receipt came.
        bind_and_submit(smpp_ports[0])
        daemon.proc.send_signal(signal.SIGTERM)
        after = notifications.until("STOPPING=1", timeout=10)
        code = daemon.stop()
    finally:
        daemon.kill()
    # twistd re-raises SIGTERM after a clean shutdown; systemd counts that as success.
    assert code in (0, -signal.SIGTERM)
    assert "smpp-gateway stopped" in daemon.text()
    everything = [line for _, lines in notifications.log for line in lines]
    assert "WATCHDOG=1" not in everything
    assert everything.count("READY=1") == 1
    assert all(line.startswith("STATUS=") for lines in after[:-1] for line in lines)


def test_watchdog_pings_every_half_watchdog_sec(tmp_path: Path) -> None:
    smpp_port, http_port = free_port(), free_port()
    config = gateway_config(tmp_path, smpp_port=smpp_port, http_port=http_port, common_url=None)
    # An abstract socket this time: systemd may name one with a leading '@'.
    notifications = Notifications(f"@smpp-gateway-test-{uuid.uuid4().hex}")
    env = {"NOTIFY_SOCKET": notifications.address, "WATCHDOG_USEC": "1000000"}
    daemon = Daemon(config, env=env, set_pid=("WATCHDOG_PID",))
    try:
        notifications.until("READY=1", timeout=30)
        pings = []
        deadline = time.monotonic() + 2.3
        while time.monotonic() < deadline:
            if "WATCHDOG=1" in notifications.next(timeout=2.0):
                pings.append(time.monotonic())
        code = daemon.stop()
    finally:
        daemon.kill()
        notifications.close()
    assert code in (0, -signal.SIGTERM)
    # WatchdogSec=1s: a ping every 0.5 s, well inside the second systemd waits.
    assert len(pings) >= 3, pings
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert all(0.25 < gap < 0.9 for gap in gaps), gaps


def test_notify_sends_one_datagram_and_watchdog_interval_reads_only_its_own(
    notifications: Notifications,
) -> None:
    """gateway.systemd in-process: no daemon needed for its two small decisions."""
    env = {"NOTIFY_SOCKET": notifications.address}
    assert systemd.notify("READY=1", "STATUS=two\nlines", environ=env)
    assert notifications.next(timeout=2) == ["READY=1", "STATUS=two lines"]
    assert not systemd.notify("READY=1", environ={})
    assert not systemd.notify("READY=1", environ={"NOTIFY_SOCKET": "/nonexistent/socket"})

    mine = str(os.getpid())
    assert systemd.watchdog_interval(environ={"WATCHDOG_USEC": "60000000"}) == 30.0
    assert (
        systemd.watchdog_interval(environ={"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": mine}) == 1.0
    )
    for bad in (
        {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"},
        {"WATCHDOG_USEC": "x"},
        {"WATCHDOG_USEC": "0"},
        {},
    ):
        assert systemd.watchdog_interval(environ=bad) is None, bad


# --- socket activation ---------------------------------------------------------------


def _systemd_config(
    tmp_path: Path, http_port: int, listen: str = "systemd:domain=INET:index=0"
) -> Path:
    config = gateway_config(tmp_path, smpp_port=1, http_port=http_port, common_url=None)
    text = re.sub(r"(?m)^listen = \[.*\]$", f'listen = ["{listen}"]', config.read_text(), count=1)
    config.write_text(text)
    return config


def _activated(config: Path, listening: socket.socket, notify: str) -> Daemon:
    env = {"NOTIFY_SOCKET": notify, "LISTEN_FDS": "1", "LISTEN_FDNAMES": "smpp"}
    return Daemon(config, env=env, set_pid=("LISTEN_PID",), listen_fd=listening.fileno())


def test_socket_activation_serves_esmes_and_keeps_them_waiting_across_a_restart(
    tmp_path: Path, notifications: Notifications
) -> None:
    http_port = free_port()
    config = _systemd_config(tmp_path, http_port)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(64)
        port = listening.getsockname()[1]

        first = _activated(config, listening, notifications.address)
        try:
            ready = notifications.until("READY=1", timeout=30)[-1]
            assert any(f"127.0.0.1:{port}" in line for line in ready), ready
            bind_and_submit(port)
            assert first.stop() in (0, -signal.SIGTERM)
        finally:
            first.kill()
        log = first.text()
        assert "systemd:domain=INET:index=0" in log and f"127.0.0.1:{port}" in log
        assert "smpp-gateway stopped" in log

        # Between two runs the socket stays with "systemd": an ESME connecting now waits
        # in its backlog instead of being refused, and is served by the next run.
        with Esme(port, timeout=30) as waiting:
            second = _activated(config, listening, notifications.address)
            try:
                assert waiting.bind("esme1", "secret1").status == p.CommandStatus.ESME_ROK
                answer = waiting.request(submit("4790000002", b"after the restart"))
                assert answer.status == p.CommandStatus.ESME_ROK
                assert second.stop() in (0, -signal.SIGTERM)
            finally:
                second.kill()


@pytest.mark.parametrize(
    ("listen", "passed", "message"),
    [
        ("systemd:domain=INET:index=0", False, "systemd passed no such socket"),
        ("systemd:domain=INET6:index=0", True, "is AF_INET: write domain=INET"),
    ],
    ids=["no-socket", "wrong-domain"],
)
def test_a_systemd_listener_that_cannot_work_is_named_at_start(
    tmp_path: Path, listen: str, passed: bool, message: str
) -> None:
    config = _systemd_config(tmp_path, free_port(), listen)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        daemon = _activated(config, listening, "") if passed else Daemon(config, env={})
        try:
            code = daemon.proc.wait(30)
        finally:
            daemon.kill()
    assert code == 1
    assert f"cannot listen on {listen}: " in daemon.text()
    assert message in daemon.text()


# --- the unit files --------------------------------------------------------------------

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    """`systemd-analyze verify` on the units as shipped, drop-in included.

    verify insists that ExecStart= programs exist, and /opt/smpp-gateway is not
    installed here: the copy points them at this checkout's virtualenv instead,
    which is the only change. Any output at all fails the test, warnings included
    (verify exits 0 on an unknown key, which would be a silently ignored setting).
    """
    assert SYSTEMD_ANALYZE is not None
    units = tmp_path / "units"
    shutil.copytree(ROOT / "systemd", units)
    service = units / "smpp-gateway.service"
    text = service.read_text()
    assert "/opt/smpp-gateway/bin/" in text
    service.write_text(text.replace("/opt/smpp-gateway/bin/", str(Path(TWISTD).parent) + "/"))
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(service), str(units / "smpp-gateway.socket")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""
