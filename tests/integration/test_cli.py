"""The command line and start-up failures, as an operator meets them."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from gateway.connectors.common.client import CommonClient, CommonError, CommonSettings
from gateway.connectors.common.gates import GateApi, gate_id_from_location, partner_gate
from gateway.passwords import verify_password
from gateway.smpp import pdu as p
from tests.esme import Esme, submit
from tests.fakes.fake_common import FakeCommon
from tests.harness import (
    CALLBACK_PASSWORD,
    CALLBACK_USER,
    PYTHON,
    ROOT,
    TWISTD,
    FakeCommonProcess,
    GatewayProcess,
    _env,
    account_toml,
    cli,
    free_port,
    gateway_config,
    gateway_with_common,
    metric_value,
    wait_for_metric,
)


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=_env(), input=stdin, capture_output=True, text=True, timeout=60
    )


def test_hash_password_reads_stdin_and_verifies() -> None:
    result = run(PYTHON, "-m", "gateway.cli", "hash-password", stdin="s3cret\n")
    assert result.returncode == 0
    assert verify_password(b"s3cret", result.stdout.strip())
    assert not verify_password(b"other", result.stdout.strip())


def test_hash_password_takes_the_octets_the_esme_sends() -> None:
    # UTF-8 by default: an ESME typing "pæss1" in UTF-8 sends c3 a6 for the æ.
    utf8 = run(PYTHON, "-m", "gateway.cli", "hash-password", stdin="pæss1\n")
    assert utf8.returncode == 0, utf8.stderr
    assert verify_password("pæss1".encode(), utf8.stdout.strip())
    assert not verify_password("pæss1".encode("latin-1"), utf8.stdout.strip())
    # --encoding latin-1 for an ESME that sends e6.
    latin1 = run(
        PYTHON, "-m", "gateway.cli", "hash-password", "--encoding", "latin-1", stdin="pæss1\n"
    )
    assert latin1.returncode == 0, latin1.stderr
    assert verify_password("pæss1".encode("latin-1"), latin1.stdout.strip())
    assert not verify_password("pæss1".encode(), latin1.stdout.strip())


@pytest.mark.parametrize(
    ("password", "encoding", "problem"),
    [
        ("a" * 17, "utf-8", "at most 16"),
        ("æ" * 9, "utf-8", "at most 16"),  # 18 octets in UTF-8, 9 in Latin-1
        ("€uro", "latin-1", "cannot encode"),
    ],
)
def test_hash_password_refuses_what_no_bind_can_carry(
    password: str, encoding: str, problem: str
) -> None:
    result = run(
        PYTHON, "-m", "gateway.cli", "hash-password", "--encoding", encoding, stdin=password + "\n"
    )
    assert result.returncode == 1
    assert problem in result.stderr


def test_check_config_accepts_the_shipped_simulator_example() -> None:
    result = run(PYTHON, "-m", "gateway.cli", "check-config", "etc/simulator.toml")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_config_names_file_key_and_problem(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, smpp_port=1, http_port=2, common_url=None)
    config.write_text(config.read_text().replace('connector = "main"', 'connector = "nope"'))
    result = run(PYTHON, "-m", "gateway.cli", "check-config", str(config))
    assert result.returncode == 1
    assert str(config) in result.stderr and "accounts[0].connector" in result.stderr
    assert "no connector named 'nope'" in result.stderr


def test_twistd_refuses_a_bad_config(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, smpp_port=free_port(), http_port=free_port(), common_url=None)
    config.write_text(config.read_text() + "\n[bogus]\nx = 1\n")
    result = run(TWISTD, "--nodaemon", "--pidfile=", "smpp-gateway", "--config", str(config))
    assert result.returncode != 0
    assert "bogus: unknown key" in result.stdout + result.stderr


def test_a_busy_port_makes_the_daemon_exit_with_status_1(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = gateway_config(tmp_path, smpp_port=port, http_port=free_port(), common_url=None)
        result = run(TWISTD, "--nodaemon", "--pidfile=", "smpp-gateway", "--config", str(config))
    assert result.returncode == 1
    assert "could not start" in result.stdout + result.stderr


# -- gate: LINK's Gate API against the fake Common (seed 000) ---------------------------


def common_config(tmp_path: Path, fake: FakeCommonProcess, auth: str, password: str) -> Path:
    """A gateway config on the fake (not started: the gate commands need no daemon)."""
    config = gateway_config(tmp_path, smpp_port=1, http_port=8443, common_url=fake.url)
    text = config.read_text()
    text = text.replace('type = "common"\n', f'type = "common"\nauth = "{auth}"\n')
    text = text.replace('password = "secret"\n', f'password = "{password}"\n')
    text = text.replace('public_url = "http://127.0.0.1:8443"', 'public_url = "https://gw.example"')
    config.write_text(text)
    return config


@pytest.mark.parametrize("auth", ["oauth2", "basic"])
def test_gate_register_list_delete_round_trip(tmp_path: Path, auth: str) -> None:
    with FakeCommonProcess("http://127.0.0.1:1/unused") as fake:
        config = common_config(tmp_path, fake, auth, "secret")

        empty = cli("gate", "list", "--config", str(config))
        assert empty.returncode == 0, empty.stderr
        assert "no gates" in empty.stderr

        dlr = cli("gate", "register", "--config", str(config), "--ref-id", "smppgw-dlr")
        assert dlr.returncode == 0, dlr.stderr
        dlr_id = dlr.stdout.strip()
        assert dlr_id and "\n" not in dlr_id
        assert f'gate_id = "{dlr_id}"' in dlr.stderr and "[connectors.main]" in dlr.stderr
        mo = cli("gate", "register", "--config", str(config), "--kind", "mo")
        assert mo.returncode == 0, mo.stderr
        mo_id = mo.stdout.strip()

        state = fake.control()
        gates = {gate["id"]: gate for gate in state["gates"]}
        assert set(gates) == {dlr_id, mo_id}
        assert gates[dlr_id]["refId"] == "smppgw-dlr"
        for gate_id, path in ((dlr_id, "/callbacks/dlr"), (mo_id, "/callbacks/mo")):
            gate = gates[gate_id]
            assert gate["type"] == "PARTNER_GATE" and gate["gateType"] == "ONE_ORDERED"
            assert (gate["platformId"], gate["platformPartnerId"]) == ("P1", "PP1")
            assert gate["destinations"] == [
                {
                    "url": "https://gw.example" + path,
                    "contentType": "application/json",
                    "username": CALLBACK_USER,
                    "password": CALLBACK_PASSWORD,
                }
            ]
        # OAuth2 fetched a token (one per command: each is a new process); Basic none.
        assert (state["token_requests"] > 0) == (auth == "oauth2")

        listing = cli("gate", "list", "--config", str(config))
        assert listing.returncode == 0, listing.stderr
        lines = listing.stdout.splitlines()
        assert lines[0].split() == ["ID", "REF_ID", "DESTINATIONS", "NOTE"]
        dlr_line = next(line for line in lines if line.startswith(dlr_id))
        assert dlr_line.split()[:3] == [dlr_id, "smppgw-dlr", "https://gw.example/callbacks/dlr"]
        assert "dlr callback" in dlr_line
        assert any(line.startswith(mo_id) and "/callbacks/mo" in line for line in lines)
        assert CALLBACK_PASSWORD not in listing.stdout + listing.stderr

        deleted = cli("gate", "delete", "--config", str(config), dlr_id)
        assert deleted.returncode == 0, deleted.stderr
        assert dlr_id in deleted.stdout
        assert [gate["id"] for gate in fake.control()["gates"]] == [mo_id]

        again = cli("gate", "delete", "--config", str(config), dlr_id)
        assert again.returncode == 1
        assert "HTTP 404" in again.stderr and "103304 GATE_NOT_FOUND" in again.stderr


@pytest.mark.parametrize("auth", ["oauth2", "basic"])
def test_gate_with_wrong_credentials_fails_clearly_without_secrets(
    tmp_path: Path, auth: str
) -> None:
    with FakeCommonProcess("http://127.0.0.1:1/unused") as fake:
        config = common_config(tmp_path, fake, auth, "Wr0ng-pa55word")
        result = cli("gate", "register", "--config", str(config))
        assert result.returncode == 1
        output = result.stdout + result.stderr
        assert "HTTP 401" in result.stderr and "INVALID_AUTHENTICATION" in result.stderr
        assert "[connectors.main]" in result.stderr  # the hint says where to look
        assert "Wr0ng-pa55word" not in output and CALLBACK_PASSWORD not in output
        assert "Bearer" not in output and "Traceback" not in output
        assert fake.control()["gates"] == []


def test_gate_usage_errors_exit_2(tmp_path: Path) -> None:
    simulator = gateway_config(tmp_path, smpp_port=1, http_port=2, common_url=None)
    result = cli("gate", "list", "--config", str(simulator))
    assert result.returncode == 2 and "no connector of type common" in result.stderr
    result = cli("gate", "list", "--config", str(simulator), "--connector", "main")
    assert result.returncode == 2 and "'simulator'" in result.stderr
    result = cli("gate", "delete", "--config", str(simulator))  # no GATE_ID
    assert result.returncode == 2
    result = cli("gate", "list", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 2 and "missing.toml: (file): cannot read" in result.stderr


# -- send: one message through the running gateway ----------------------------------------

SEND_ACCOUNTS = account_toml("esme1", "secret1", "main")


@pytest.fixture(scope="module")
def send_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, FakeCommonProcess]]:
    directory = tmp_path_factory.mktemp("cli-send")
    with gateway_with_common(
        directory, accounts=SEND_ACCOUNTS, smpp_extra="failed_bind_delay = 0.1\n"
    ) as pair:
        yield pair


def send(gateway: GatewayProcess, *args: str, password: str = "secret1") -> Any:
    return cli(
        "send",
        "--config",
        str(gateway.config),
        "--account",
        "esme1",
        "--password-env",
        "SMPP_TEST_PASSWORD",
        *args,
        env={"SMPP_TEST_PASSWORD": password},
    )


def test_send_prints_the_id_and_a_delivered_receipt(
    send_stack: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gateway, fake = send_stack
    fake.control({"keep_messages": True, "clear_messages": True})
    result = send(gateway, "--to", "+4799999999", "--from", "Shop", "Hello from the CLI")
    assert result.returncode == 0, result.stderr
    message_id = result.stdout.splitlines()[0].removeprefix("message id: ")
    assert message_id.isdigit()
    assert "receipt: stat DELIVRD err 000" in result.stdout
    # Long UCS-2 text goes whole in message_payload; Common gets it unchanged.
    long_text = "Привет " * 30
    result = send(gateway, "--to", "4799999998", long_text.strip(), "--timeout", "30")
    assert result.returncode == 0, result.stderr
    sent = fake.get("/_messages")
    assert sent[0]["userData"] == "Hello from the CLI"
    assert (sent[0]["source"], sent[0]["sourceTON"]) == ("Shop", "ALPHANUMERIC")
    assert sent[1]["userData"] == long_text.strip()
    assert sent[1]["destination"] == "+4799999998" and sent[1]["source"] == "SMPPGW"


def test_send_exits_3_on_a_failure_receipt(
    send_stack: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gateway, fake = send_stack
    fake.control({"result_rules": {"+4790000001": 1006}})
    try:
        result = send(gateway, "--to", "+4790000001", "Will not arrive")
    finally:
        fake.control({"result_rules": {}})
    assert result.returncode == 3, result.stdout + result.stderr
    assert "message id: " in result.stdout
    assert "receipt: stat UNDELIV err 222" in result.stdout


def test_send_exits_4_when_no_receipt_comes_in_time(
    send_stack: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gateway, fake = send_stack
    fake.control({"report_delay": 30})
    try:
        result = send(gateway, "--to", "+4790000002", "Slow", "--timeout", "2")
    finally:
        fake.control({"report_delay": 0})
    assert result.returncode == 4, result.stdout + result.stderr
    assert "message id: " in result.stdout and "no receipt within 2s" in result.stderr


def test_send_exits_1_with_the_status_name_when_the_bind_fails(
    send_stack: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gateway, _ = send_stack
    result = send(gateway, "--to", "+4799999999", "x", password="wrong")
    assert result.returncode == 1
    assert "bind refused: ESME_RINVPASWD (0x0000000E)" in result.stderr
    assert "wrong" not in result.stdout


def test_send_usage_errors_exit_2(send_stack: tuple[GatewayProcess, FakeCommonProcess]) -> None:
    gateway, _ = send_stack
    result = cli("send", "--config", str(gateway.config), "--account", "esme1", "--to", "1", "x")
    assert result.returncode == 2  # neither --password-env nor --password-file
    result = send(gateway, "--to", "not-a-number", "x")
    assert result.returncode == 2 and "not a phone number" in result.stderr
    result = cli(
        "send", "--config", str(gateway.config), "--account", "nobody",
        "--password-env", "UNSET_VARIABLE_FOR_TEST", "--to", "+4799999999", "x",
    )  # fmt: skip
    assert result.returncode == 2 and "'nobody'" in result.stderr


# -- queues: the store read while the gateway runs, and after ------------------------------


def test_queues_counts_what_waits_and_since_when(tmp_path: Path) -> None:
    accounts = account_toml("esme1", "secret1", "main") + account_toml("quiet", "pw", "main")
    with gateway_with_common(tmp_path, accounts=accounts) as (gateway, fake):
        # Two receipts nobody takes: "quiet" binds as a transmitter only.
        with Esme(gateway.smpp_port) as esme:
            assert esme.bind("quiet", "pw", p.BindTransmitter).status == 0
            for _ in range(2):
                assert esme.request(submit("+4799999999")).status == 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            totals = json.loads(cli("queues", "--config", str(gateway.config), "--json").stdout)
            if totals["totals"]["receipts"]["count"] == 2:
                break
            time.sleep(0.2)
        # Common down: three messages stay queued for it.
        fake.control({"down": True})
        retried = metric_value(
            gateway.metrics(), "smppgw_upstream_messages_total", connector="main", outcome="retry"
        )
        with Esme(gateway.smpp_port) as esme:
            assert esme.bind("esme1", "secret1", p.BindTransmitter).status == 0
            for _ in range(3):
                assert esme.request(submit("+4799999997")).status == 0
        submitted = time.monotonic()
        # Each was tried and got Common's 503: queued after a try, not awaiting a report.
        wait_for_metric(
            gateway,
            "smppgw_upstream_messages_total",
            retried + 3,
            connector="main",
            outcome="retry",
        )
        # Pacing: the oldest is over a second old.
        time.sleep(max(0.0, submitted + 1.5 - time.monotonic()))

        result = cli("queues", "--config", str(gateway.config), "--json")
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        rows = {(q["queue"], q["account"], q["connector"]): q for q in document["queues"]}
        queued = rows[("mt_queued", "esme1", "main")]
        assert queued["count"] == 3 and 1.0 <= queued["oldest_age_s"] < 60
        assert rows[("receipts", "quiet", None)]["count"] == 2
        assert document["totals"]["mt_queued"]["count"] == 3
        assert document["totals"]["mt_awaiting_report"]["count"] == 0
        assert document["totals"]["mo"] == {"count": 0, "oldest_age_s": None}

        text = cli("queues", "--config", str(gateway.config))
        assert text.returncode == 0, text.stderr
        table = [line.split("  ") for line in text.stdout.splitlines()]
        cells = [[cell.strip() for cell in row if cell.strip()] for row in table]
        assert cells[2][:4] == ["MT queued for LINK", "esme1", "main", "3"]
        assert cells[3][:4] == ["receipts undelivered", "quiet", "-", "2"]

    # Stopped cleanly: read as it was left, and no -wal/-shm of ours left behind.
    store = tmp_path / "gateway.sqlite"
    result = cli("queues", "--config", str(gateway.config), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["mt_queued"]["count"] == 3
    assert not store.with_name("gateway.sqlite-wal").exists()
    assert not store.with_name("gateway.sqlite-shm").exists()


def test_queues_on_a_missing_store_exits_1(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, smpp_port=1, http_port=2, common_url=None)
    result = cli("queues", "--config", str(config))
    assert result.returncode == 1
    assert f"no store at {tmp_path / 'gateway.sqlite'}" in result.stderr
    assert not (tmp_path / "gateway.sqlite").exists()


# -- the Gate API client and the fake, in process -----------------------------------------


class GateApiInProcessTests(TestCase):
    """gateway.connectors.common.gates against the fake in-process, over HTTP on 127.0.0.1."""

    timeout = 20

    def setUp(self) -> None:
        self.fake = FakeCommon(reactor, platform_id="P1", platform_partner_id="PP1")
        self.fake.start()
        self.addCleanup(self.fake.stop)
        self.client = CommonClient(
            reactor,
            CommonSettings(
                base_url=self.fake.base_url, auth="oauth2", username="user", password="secret"
            ),
        )
        self.addCleanup(self.client.close)
        self.api = GateApi(self.client, "/gate", "P1", "PP1")

    def gate(self, **changes: Any) -> dict[str, Any]:
        gate = partner_gate(
            url="https://gw.example/callbacks/dlr",
            platform_id="P1",
            platform_partner_id="PP1",
            username="link",
            password="cb",
            ref_id="r1",
        )
        gate.update(changes)
        return gate

    @inlineCallbacks
    def test_create_get_list_delete(self) -> Any:
        self.assertEqual((yield Deferred.fromCoroutine(self.api.list())), [])
        gate_id = yield Deferred.fromCoroutine(self.api.create(self.gate()))
        stored = yield Deferred.fromCoroutine(self.api.get(gate_id))
        self.assertEqual(stored["id"], gate_id)
        self.assertEqual(stored["destinations"][0]["url"], "https://gw.example/callbacks/dlr")
        self.assertEqual(stored["ttl"], 172_800_000)  # LINK's default filled in
        listed = yield Deferred.fromCoroutine(self.api.list())
        self.assertEqual([g["id"] for g in listed], [gate_id])
        yield Deferred.fromCoroutine(self.api.delete(gate_id))
        self.assertEqual(self.fake.gates, {})
        with self.assertRaises(CommonError) as caught:
            yield Deferred.fromCoroutine(self.api.get(gate_id))
        self.assertEqual((caught.exception.http_status, caught.exception.code), (404, 103304))
        self.assertEqual(self.fake.token_requests, 1)

    @inlineCallbacks
    def test_the_fake_refuses_what_seed_000_does_not_allow(self) -> Any:
        ftp = {"url": "ftp://x", "contentType": "application/json"}
        text = {"url": "https://x", "contentType": "text/plain"}
        cases = [
            (self.gate(type="PLATFORM_GATE"), 400, 103302),
            (self.gate(gateType="SOMETIMES"), 400, 103302),
            (self.gate(destinations=[]), 400, 103302),
            (self.gate(destinations=[ftp]), 400, 103302),
            (self.gate(destinations=[text]), 400, 103302),
            (self.gate(id="mine"), 400, 103302),
            (self.gate(platformId="P2"), 403, 103201),
            (self.gate(platformPartnerId="PP2"), 403, 103202),
            ({"type": "PARTNER_GATE"}, 400, 103300),
        ]  # fmt: skip
        for gate, status, code in cases:
            with self.assertRaises(CommonError) as caught:
                yield Deferred.fromCoroutine(self.api.create(gate))
            error = caught.exception
            self.assertEqual((error.http_status, error.code), (status, code), gate)
        self.assertEqual(self.fake.gates, {})
        yield Deferred.fromCoroutine(self.api.create(self.gate()))
        with self.assertRaises(CommonError) as caught:
            yield Deferred.fromCoroutine(self.api.create(self.gate()))  # the same refId
        self.assertEqual((caught.exception.http_status, caught.exception.code), (409, 103212))

    @inlineCallbacks
    def test_another_partners_gates_are_forbidden(self) -> Any:
        other = GateApi(self.client, "/gate", "P1", "someone-else")
        with self.assertRaises(CommonError) as caught:
            yield Deferred.fromCoroutine(other.list())
        self.assertEqual(caught.exception.http_status, 403)


def test_gate_id_is_the_end_of_the_location() -> None:
    base = "https://n-eu.linkmobility.io/gate/partnergate/platform/P/partner/PP/id/"
    assert gate_id_from_location(base + "abc123E") == "abc123E"
    assert gate_id_from_location(base + "a%2Fb/") == "a/b"
    assert gate_id_from_location("/gate/partnergate") is None
    assert gate_id_from_location(None) is None
