"""SIGHUP reloads accounts, rates, routes and callback credentials with ESMEs bound.

The real daemon on the simulator connector; the test rewrites its config file
and sends SIGHUP, as `systemctl reload` does, while an ESME keeps submitting.
"""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.smpp import pdu as p
from tests.esme import Esme, submit
from tests.harness import (
    CALLBACK_PASSWORD,
    CALLBACK_USER,
    GatewayProcess,
    account_toml,
    free_port,
    gateway_config,
)

S = p.CommandStatus


def write_config(directory: Path, smpp_port: int, http_port: int, accounts: str) -> Path:
    return gateway_config(
        directory,
        smpp_port=smpp_port,
        http_port=http_port,
        common_url=None,
        accounts=accounts,
    )


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[GatewayProcess, Path, int, int]]:
    smpp_port, http_port = free_port(), free_port()
    accounts = account_toml("keep", "old-pw", "main", rate=1000) + account_toml(
        "gone", "pw", "main"
    )
    path = write_config(tmp_path, smpp_port, http_port, accounts)
    with GatewayProcess(path, smpp_port, http_port) as gateway:
        yield gateway, tmp_path, smpp_port, http_port


def sighup_and_wait(gateway: GatewayProcess, marker: str, timeout: float = 10.0) -> None:
    """SIGHUP, then wait until the log says how the reload went."""
    log = Path(gateway.log)
    seen = log.read_text().count(marker)
    assert gateway.proc is not None
    gateway.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while log.read_text().count(marker) == seen:
        assert time.monotonic() < deadline, f"no {marker!r} in the log after SIGHUP"
        time.sleep(0.05)


def post_callback(gateway: GatewayProcess, user: str, password: str) -> int:
    body = json.dumps({"id": "nope", "refId": "1", "resultCode": 1001}).encode()
    request = urllib.request.Request(gateway.callback_url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_reload_under_load_keeps_binds_and_applies_the_new_accounts(
    setup: tuple[GatewayProcess, Path, int, int],
) -> None:
    gateway, directory, smpp_port, http_port = setup
    statuses: list[int] = []
    stop = threading.Event()

    def keep_submitting(esme: Esme) -> None:
        n = 0
        while not stop.is_set():
            statuses.append(esme.request(submit(f"47900{n:05d}", registered_delivery=0)).status)
            n += 1

    def answered(count: int) -> None:
        """Wait until the worker has had `count` answers in all."""
        deadline = time.monotonic() + 10
        while len(statuses) < count:
            assert worker.is_alive(), f"the worker stopped after {len(statuses)} answers"
            assert time.monotonic() < deadline, f"only {len(statuses)} answers of {count}"
            time.sleep(0.01)

    with Esme(smpp_port) as keep, Esme(smpp_port) as gone:
        assert keep.bind("keep", "old-pw").status == S.ESME_ROK
        assert gone.bind("gone", "pw").status == S.ESME_ROK
        worker = threading.Thread(target=keep_submitting, args=(keep,))
        worker.start()
        try:
            answered(20)  # under load before the reload
            # "gone" removed, "keep" gets a new password and a lower rate, "new" added,
            # the callback credentials change.
            text = (
                write_config(
                    directory,
                    smpp_port,
                    http_port,
                    account_toml("keep", "new-pw", "main", rate=1000)
                    + account_toml("new", "pw", "main"),
                )
                .read_text()
                .replace(
                    f'callback_password = "{CALLBACK_PASSWORD}"', 'callback_password = "rotated"'
                )
            )
            (directory / "gateway.toml").write_text(text)
            sighup_and_wait(gateway, "config reloaded")
            # Submits answered after the reload too: none of those was refused either.
            answered(len(statuses) + 20)
        finally:
            stop.set()
            worker.join(10)
        # The removed account's session is unbound by the gateway.
        assert gone.closed_by_peer(timeout=5)
    # Traffic never stopped and nothing was refused while the config changed.
    assert len(statuses) > 10 and set(statuses) == {S.ESME_ROK}
    with Esme(smpp_port) as esme:
        assert esme.bind("keep", "old-pw").status == S.ESME_RINVPASWD
    with Esme(smpp_port) as esme:
        assert esme.bind("keep", "new-pw").status == S.ESME_ROK
    with Esme(smpp_port) as esme:
        assert esme.bind("new", "pw").status == S.ESME_ROK
    with Esme(smpp_port) as esme:
        # Unknown now, answered as uniform refusals are (bind_failure_status).
        assert esme.bind("gone", "pw").status == S.ESME_RINVPASWD
    assert post_callback(gateway, CALLBACK_USER, CALLBACK_PASSWORD) == 401
    assert post_callback(gateway, CALLBACK_USER, "rotated") == 200


def test_a_bad_config_is_refused_and_the_old_one_stays(
    setup: tuple[GatewayProcess, Path, int, int],
) -> None:
    gateway, directory, smpp_port, _ = setup
    path = directory / "gateway.toml"
    good = path.read_text()
    path.write_text(good + "\n[[accounts]]\nsystem_id = 'broken'\n")  # no password, no connector
    sighup_and_wait(gateway, "config reload refused")
    path.write_text(good.replace("[smpp]\n", "[smpp]\nwindow = 7\n", 1))
    sighup_and_wait(gateway, "config reloaded")
    log = Path(gateway.log).read_text()
    assert "accounts[2]" in log  # the refusal names the key
    assert "[smpp] changed" in log and "needs a restart" in log
    with Esme(smpp_port) as esme:
        assert esme.bind("keep", "old-pw").status == S.ESME_ROK
        assert esme.request(submit("4790000001")).status == S.ESME_ROK


def test_callback_allow_list_follows_a_reload(
    setup: tuple[GatewayProcess, Path, int, int],
) -> None:
    gateway, directory, _, _ = setup
    path = directory / "gateway.toml"
    open_config = path.read_text()
    assert post_callback(gateway, CALLBACK_USER, CALLBACK_PASSWORD) == 200
    path.write_text(
        open_config.replace("[http]\n", '[http]\ncallback_sources = ["10.0.0.0/8"]\n', 1)
    )
    sighup_and_wait(gateway, "config reloaded")
    assert post_callback(gateway, CALLBACK_USER, CALLBACK_PASSWORD) == 403
    path.write_text(open_config)
    sighup_and_wait(gateway, "config reloaded")
    assert post_callback(gateway, CALLBACK_USER, CALLBACK_PASSWORD) == 200
