"""Real processes for integration, interop, restart tests and the benchmark.

`GatewayProcess` runs `twistd -n smpp-gateway` on a config written for the test
(real TCP on 127.0.0.1, a real SQLite file in a temporary directory);
`FakeCommonProcess` runs the fake LINK Common server from tests/fakes. Both are
stopped and reaped by `stop()`; use them as context managers so a failing test
never leaves a process behind.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from gateway.passwords import hash_password

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TWISTD = str(Path(PYTHON).with_name("twistd"))
CALLBACK_USER = "link"
CALLBACK_PASSWORD = "cb-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(
    port: int, timeout: float = 15.0, proc: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@cache
def password_hash(password: str) -> str:
    return hash_password(password, salt=b"test-salt-16byte")


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m gateway.cli ARGS` as an operator runs it; its output captured."""
    full_env = _env()
    full_env.update(env or {})
    return subprocess.run(
        [PYTHON, "-m", "gateway.cli", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class _FakeProcess:
    """A fake of LINK run as a process: started, asked through /_control, stopped."""

    module = ""
    args: list[str]
    url: str

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.banner: list[str] = []

    def start(self, banner_lines: int = 1) -> Any:
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert self.proc.stdout is not None
        self.banner = [self.proc.stdout.readline().decode() for _ in range(banner_lines)]
        if "listening on" not in self.banner[0]:
            self.stop()
            raise RuntimeError(f"{self.module} did not start: {self.banner!r}")
        # Keep draining its output so a chatty fake never blocks on a full pipe.
        self._drain = subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=subprocess.DEVNULL)
        return self

    def control(self, command: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if command is None else json.dumps(command).encode()
        request = urllib.request.Request(f"{self.url}/_control", data=data)
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            return json.loads(response.read())

    def messages_to(self, destination: str) -> list[dict[str, Any]]:
        """What a fake Common that keeps messages accepted for `destination`
        (`+digits`), as it received each, in order of acceptance."""
        return [m for m in self.get("/_messages") if m.get("destination") == destination]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_drain", None) is not None:
            self._drain.wait(5)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeCommonProcess(_FakeProcess):
    module = "tests.fakes.fake_common"

    def __init__(self, callback_url: str, *, port: int | None = None, **options: Any) -> None:
        super().__init__()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            PYTHON,
            "-m",
            self.module,
            "--port",
            str(self.port),
            "--callback",
            callback_url,
            "--callback-user",
            CALLBACK_USER,
            "--callback-password",
            CALLBACK_PASSWORD,
            "--username",
            "user",
            "--password",
            "secret",
            "--platform-id",
            "P1",
            "--platform-partner-id",
            "PP1",
        ]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        self.args = args

    def start(self, banner_lines: int = 1) -> FakeCommonProcess:
        super().start(banner_lines)
        return self

    def __enter__(self) -> FakeCommonProcess:
        return self.start()


class FakeLinkSmppProcess(_FakeProcess):
    """LINK's SMPP endpoint (tests/fakes/fake_linksmpp.py) over TLS with a test CA.

    Options become its command-line flags (`rate=20` -> `--rate 20`; True -> a bare
    flag). `ca_file` is the CA a client must trust; `smpp_port` where it listens.
    """

    module = "tests.fakes.fake_linksmpp"

    def __init__(self, directory: Path, **options: Any) -> None:
        super().__init__()
        self.smpp_port = free_port()
        self.control_port = free_port()
        self.url = f"http://127.0.0.1:{self.control_port}"
        self.ca_file = directory / "fake-link-ca.pem"
        args = [
            PYTHON,
            "-m",
            self.module,
            "--port",
            str(self.smpp_port),
            "--control-port",
            str(self.control_port),
            "--ca-out",
            str(self.ca_file),
            "--system-id",
            "link",
            "--password",
            "secret",
        ]
        for key, value in options.items():
            flag = f"--{key.replace('_', '-')}"
            args += [flag] if value is True else [flag, str(value)]
        self.args = args

    def start(self, banner_lines: int = 3) -> FakeLinkSmppProcess:
        super().start(banner_lines)
        return self

    def __enter__(self) -> FakeLinkSmppProcess:
        return self.start()

    def connector_toml(self, name: str = "link", **extra: Any) -> str:
        """A `[connectors.NAME]` table for the gateway to reach this fake."""
        lines = [
            f"[connectors.{name}]",
            'type = "linksmpp"',
            'host = "127.0.0.1"',
            f"port = {self.smpp_port}",
            f'ca_file = "{self.ca_file}"',
            'system_id = "link"',
            'password = "secret"',
            "reconnect_delay = 0.5",
        ]
        lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
        lines.append(f"[connectors.{name}.retry]\ninitial = 0.2\nmaximum = 1.0")
        return "\n".join(lines) + "\n"


def account_toml(system_id: str, password: str, connector: str, **extra: Any) -> str:
    lines = [
        "[[accounts]]",
        f'system_id = "{system_id}"',
        f'password = "{password_hash(password)}"',
        f'connector = "{connector}"',
    ]
    for key, value in extra.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def gateway_config(
    directory: Path,
    *,
    smpp_port: int,
    http_port: int,
    common_url: str | None,
    accounts: str | None = None,
    connector_extra: str = "",
    smpp_extra: str = "",
    store_path: Path | None = None,
    store_extra: str = "",
) -> Path:
    """Write a config for one test; `common_url` None selects the simulator."""
    if common_url is None:
        connector = '[connectors.main]\ntype = "simulator"\ndelay = 0.2\n'
    else:
        connector = (
            "[connectors.main]\n"
            'type = "common"\n'
            f'base_url = "{common_url}"\n'
            'username = "user"\n'
            'password = "secret"\n'
            'platform_id = "P1"\n'
            'platform_partner_id = "PP1"\n'
            'gate_id = "GATE1"\n'
            "[connectors.main.retry]\n"
            "initial = 0.2\n"
            "maximum = 1.0\n"
        )
    text = (
        "[smpp]\n"
        f'listen = ["tcp:{smpp_port}:interface=127.0.0.1"]\n'
        f"{smpp_extra}\n"
        "[http]\n"
        f'listen = "tcp:{http_port}:interface=127.0.0.1"\n'
        f'public_url = "http://127.0.0.1:{http_port}"\n'
        f'callback_username = "{CALLBACK_USER}"\n'
        f'callback_password = "{CALLBACK_PASSWORD}"\n'
        # Tests read a counter right after what they count: no cached /metrics page.
        "metrics_cache = 0\n"
        "[store]\n"
        f'path = "{store_path or directory / "gateway.sqlite"}"\n'
        f"{store_extra}\n"
        + (accounts or account_toml("esme1", "secret1", "main"))
        + connector
        + connector_extra
    )
    path = directory / "gateway.toml"
    path.write_text(text)
    return path


class GatewayProcess:
    def __init__(self, config: Path, smpp_port: int, http_port: int) -> None:
        self.config = config
        self.smpp_port = smpp_port
        self.http_port = http_port
        self.log = config.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def callback_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/callbacks/dlr"

    def start(self) -> GatewayProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [TWISTD, "--nodaemon", "--pidfile=", "smpp-gateway", "--config", str(self.config)],
                cwd=ROOT,
                env=_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(self.smpp_port, proc=self.proc)
        except Exception:
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"gateway did not start:\n{self.log.read_text()[-3000:]}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text: str = response.read().decode()
            return text

    def readiness(self) -> tuple[int, str]:
        """/readyz: (status, body)."""
        url = f"http://127.0.0.1:{self.http_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def gateway_with_common(
    directory: Path, *, fake_options: dict[str, Any] | None = None, **config: Any
) -> Iterator[tuple[GatewayProcess, FakeCommonProcess]]:
    """A gateway on the Common connector and the fake Common it talks to."""
    smpp_port, http_port = free_port(), free_port()
    callback = f"http://127.0.0.1:{http_port}/callbacks/dlr"
    with FakeCommonProcess(callback, **(fake_options or {})) as fake:
        path = gateway_config(
            directory, smpp_port=smpp_port, http_port=http_port, common_url=fake.url, **config
        )
        with GatewayProcess(path, smpp_port, http_port) as gateway:
            yield gateway, fake


def post_callback(gateway: GatewayProcess, body: bytes, *, auth: bool = True) -> tuple[int, bytes]:
    """POST a body to the gateway's callback URL as LINK would; (status, body)."""
    request = urllib.request.Request(gateway.callback_url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    if auth:
        token = base64.b64encode(f"{CALLBACK_USER}:{CALLBACK_PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text output (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if "{" in head:
            metric, _, label_text = head.partition("{")
            found = dict(
                part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part
            )
            found = {k: v.strip('"') for k, v in found.items()}
        else:
            metric, found = head, {}
        if metric == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


def wait_for_metric(
    gateway: GatewayProcess, name: str, at_least: float, *, timeout: float = 10.0, **labels: str
) -> float:
    """Poll /metrics until the sample `name` (with `labels`) is at least `at_least`;
    its value then. AssertionError after `timeout` seconds.

    For checks that something did not happen: a counter the gateway moves once it
    has handled the step that would have caused it, so that the absence means
    something however slow the machine."""
    deadline = time.monotonic() + timeout
    while True:
        value = metric_value(gateway.metrics(), name, **labels)
        if value >= at_least:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{name} {labels} is {value} after {timeout} s, not {at_least}")
        time.sleep(0.05)


def wait_for_link_up(gateway: GatewayProcess, timeout: float = 15.0) -> None:
    """Until the gateway's LINK SMPP connector "link" is bound."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric_value(gateway.metrics(), "smppgw_upstream_link_up", connector="link") == 1:
            return
        time.sleep(0.1)
    raise AssertionError("the LINK SMPP link did not come up")
