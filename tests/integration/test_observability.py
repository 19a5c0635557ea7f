"""What an operator sees: /metrics after a scripted session, JSON logs, /readyz.

The real daemon (twistd) with `log_format = "json"` in front of the fake Common;
for readiness also gateways whose only connector is LINK's SMPP endpoint, one
pointing at a port where nothing listens and one at the fake of that endpoint.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.smpp import pdu as p
from tests.esme import Esme, submit
from tests.harness import (
    CALLBACK_PASSWORD,
    FakeCommonProcess,
    FakeLinkSmppProcess,
    GatewayProcess,
    account_toml,
    free_port,
    gateway_config,
    metric_value,
    post_callback,
)

S = p.CommandStatus
ACCOUNTS = account_toml("esme1", "secret1", "main") + account_toml(
    "slow", "pw", "main", rate=1, burst=1
)
REJECTED_DESTINATION = "4790000001"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, FakeCommonProcess]]:
    directory = tmp_path_factory.mktemp("observability")
    smpp_port, http_port = free_port(), free_port()
    with FakeCommonProcess(f"http://127.0.0.1:{http_port}/callbacks/dlr") as fake:
        path = gateway_config(
            directory,
            smpp_port=smpp_port,
            http_port=http_port,
            common_url=fake.url,
            accounts=ACCOUNTS,
        )
        # A top-level key goes before the first table.
        path.write_text('log_format = "json"\n' + path.read_text())
        with GatewayProcess(path, smpp_port, http_port) as gateway:
            yield gateway, fake


@pytest.fixture
def gateway(stack: tuple[GatewayProcess, FakeCommonProcess]) -> GatewayProcess:
    return stack[0]


@pytest.fixture
def fake(stack: tuple[GatewayProcess, FakeCommonProcess]) -> Iterator[FakeCommonProcess]:
    yield stack[1]
    stack[1].control({"permanent_errors": {}})


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """The first truthy result of `check`, polled until `timeout`; the last one otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def _log_records(log: Path) -> list[dict[str, Any]]:
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, or this fails
    assert all(isinstance(r, dict) for r in records)
    return records


# --- metrics ---------------------------------------------------------------------


def test_counters_follow_a_scripted_session(gateway: GatewayProcess) -> None:
    before = gateway.metrics()
    with Esme(gateway.smpp_port) as esme, Esme(gateway.smpp_port) as slow:
        assert esme.bind("esme1", "secret1").status == S.ESME_ROK
        accepted = [esme.request(submit(f"47123450{i:02d}")) for i in range(3)]
        assert all(r.status == S.ESME_ROK for r in accepted)
        refused = esme.request(submit("not-a-number"))
        assert refused.status not in (S.ESME_ROK, S.ESME_RTHROTTLED)
        assert slow.bind("slow", "pw").status == S.ESME_ROK
        # rate 1, burst 1: the first is taken, the next ones in the same second are not.
        statuses = [slow.request(submit("4712345100")).status for _ in range(3)]
        assert statuses[0] == S.ESME_ROK and S.ESME_RTHROTTLED in statuses[1:]
        throttled = statuses.count(S.ESME_RTHROTTLED)
        delivered = 3 + 3 - throttled  # each accepted message gets its DELIVRD receipt
        esme.receipts(3)
        slow.receipts(3 - throttled)
        while_bound = gateway.metrics()
    with Esme(gateway.smpp_port) as intruder:
        assert intruder.bind("esme1", "wrong").status == S.ESME_RINVPASWD
    assert post_callback(gateway, b"not json")[0] == 400
    acked = metric_value(before, "smppgw_receipt_deliveries_total", outcome="ok") + delivered

    def settled() -> str:
        # The last deliver_sm_resp may still be on its way when the ESME closes.
        text = gateway.metrics()
        return (
            text
            if metric_value(text, "smppgw_receipt_deliveries_total", outcome="ok") >= acked
            else ""
        )

    after = _eventually(settled)
    assert after

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("smppgw_submits_total", account="esme1", outcome="accepted") == 3
    assert delta("smppgw_submits_total", account="esme1", outcome="refused") == 1
    assert delta("smppgw_submits_total", account="slow", outcome="accepted") == 3 - throttled
    assert delta("smppgw_submits_total", account="slow", outcome="throttled") == throttled
    assert delta("smppgw_pdus_in_total", command="submit_sm") == 7
    assert delta("smppgw_pdus_out_total", command="submit_sm_resp", status="0x00") == delivered
    assert delta("smppgw_pdus_out_total", command="submit_sm_resp", status="0x58") == throttled
    assert delta("smppgw_submit_response_seconds_count") == 7
    assert delta("smppgw_receipts_total", stat="DELIVRD") == delivered
    assert delta("smppgw_receipt_deliveries_total", outcome="ok") == delivered
    assert delta("smppgw_bind_failures_total", reason="bad_password") == 1
    assert delta("smppgw_callbacks_total", kind="dlr", outcome="bad_request") == 1
    assert delta("smppgw_callbacks_total", kind="dlr", outcome="ok") >= delivered
    upstream = sum(
        delta("smppgw_upstream_requests_total", connector="main", endpoint=e, outcome="ok")
        for e in ("send", "sendbatch")
    )
    assert upstream >= 1
    assert delta("smppgw_upstream_messages_total", connector="main", outcome="accepted") == (
        delivered
    )
    assert metric_value(while_bound, "smppgw_sessions", account="esme1", bind="transceiver") == 1
    assert metric_value(after, "smppgw_sessions", account="esme1", bind="transceiver") == 0
    assert metric_value(after, "smppgw_ready") == 1


# --- logs --------------------------------------------------------------------------


def test_json_log_lines_carry_the_structured_fields(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    fake.control({"permanent_errors": {"+" + REJECTED_DESTINATION: 106001}})
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("esme1", "secret1").status == S.ESME_ROK
        rejected = esme.request(submit(REJECTED_DESTINATION))
        assert rejected.status == S.ESME_ROK
        esme.receipts(1)
    unknown = json.dumps({"id": "link-77", "refId": "9999999", "resultCode": 1001}).encode()
    assert post_callback(gateway, unknown)[0] == 200
    message_id = rejected.message_id  # type: ignore[attr-defined]

    def find(**fields: Any) -> dict[str, Any] | None:
        for record in _log_records(gateway.log):
            if all(record.get(k) == v for k, v in fields.items()):
                return record
        return None

    bound = _eventually(lambda: find(account="esme1", bind="transceiver"))
    assert bound is not None and bound["namespace"] == "gateway.transport.server"
    assert bound["level"] == "info" and "esme1 bound as transceiver" in bound["message"]
    assert bound["time"].endswith("Z")
    rejection = _eventually(lambda: find(message_id=message_id))
    assert rejection is not None
    assert (rejection["account"], rejection["connector"]) == ("esme1", "main")
    assert rejection["namespace"] == "gateway.mt.dispatcher"
    report = _eventually(lambda: find(upstream_id="link-77"))
    assert report is not None and report["message_id"] == "9999999"
    assert report["level"] == "warning"
    records = _log_records(gateway.log)
    assert any(r["namespace"] == "gateway.tap" and "ready" in r["message"] for r in records)
    text = gateway.log.read_text()
    for secret in ("secret1", CALLBACK_PASSWORD):
        assert secret not in text
    assert not any("password" in key for record in records for key in record)


# --- readiness -------------------------------------------------------------------


def test_probes_when_everything_is_fine(gateway: GatewayProcess) -> None:
    assert _eventually(lambda: _get(gateway.http_port, "/readyz") == (200, "ready\n"))
    assert _get(gateway.http_port, "/healthz")[0] == 200


def _linksmpp_gateway(directory: Path, connector: str) -> GatewayProcess:
    smpp_port, http_port = free_port(), free_port()
    path = directory / "gateway.toml"
    path.write_text(
        "[smpp]\n"
        f'listen = ["tcp:{smpp_port}:interface=127.0.0.1"]\n'
        "[http]\n"
        f'listen = "tcp:{http_port}:interface=127.0.0.1"\n'
        "[store]\n"
        f'path = "{directory / "gateway.sqlite"}"\n'
        + account_toml("esme1", "secret1", "link")
        + connector
    )
    return GatewayProcess(path, smpp_port, http_port)


def test_readyz_is_503_while_the_only_connector_cannot_send(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    connector = (
        "[connectors.link]\n"
        'type = "linksmpp"\n'
        f'endpoint = "tcp:127.0.0.1:{closed}"\n'
        'system_id = "link"\n'
        'password = "secret"\n'
        "reconnect_delay = 0.5\n"
    )
    with _linksmpp_gateway(tmp_path, connector) as gateway:
        expected = (503, "no usable connector (link: link down)\n")
        assert _eventually(lambda: _get(gateway.http_port, "/readyz") == expected)
        assert _get(gateway.http_port, "/healthz")[0] == 200
        assert _eventually(lambda: metric_value(gateway.metrics(), "smppgw_ready") == 0)
        # The gateway still takes messages: they wait in the store for the link.
        with Esme(gateway.smpp_port) as esme:
            assert esme.bind("esme1", "secret1").status == S.ESME_ROK
            assert esme.request(submit()).status == S.ESME_ROK


def test_readyz_follows_the_smpp_link(tmp_path: Path) -> None:
    link = FakeLinkSmppProcess(tmp_path).start()
    try:
        with _linksmpp_gateway(tmp_path, link.connector_toml()) as gateway:
            assert _eventually(lambda: _get(gateway.http_port, "/readyz")[0] == 200)
            link.stop()
            assert _eventually(
                lambda: (
                    _get(gateway.http_port, "/readyz")
                    == (503, "no usable connector (link: link down)\n")
                )
            )
    finally:
        link.stop()
