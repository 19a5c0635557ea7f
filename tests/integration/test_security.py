"""Security of the running daemon: SMPP over TLS, bind lockout, the callback
allow-list behind a proxy, HTTP request timeouts, and secrets kept out of the log.

One gateway (and fake Common) serves the module, everything on 127.0.0.1: a
plain and a TLS SMPP listener sharing one server, a test CA made here, and an
allow-list that lets 127.0.0.1 call directly but, with 127.0.0.1 also a trusted
proxy, refuses the other clients that proxy forwards for.
"""

from __future__ import annotations

import base64
import http.client
import json
import select
import socket
import ssl
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import smpplib.client
import smpplib.consts

from gateway.smpp import pdu as p
from tests.esme import Esme
from tests.harness import (
    CALLBACK_PASSWORD,
    CALLBACK_USER,
    ROOT,
    FakeCommonProcess,
    GatewayProcess,
    free_port,
    gateway_config,
    metric_value,
    wait_for_port,
)
from tests.tlspki import Pki, make_pki

S = p.CommandStatus
HOST = "127.0.0.1"
SYSTEM_ID, PASSWORD = "esme1", "secret1"
GUESSES = ("guess-Wq81", "guess-Zr44", "guess-Kp09")
REQUEST_TIMEOUT, KEEPALIVE_TIMEOUT = 1.0, 3.0
LOCKOUT_TIME = 2.0
# An address outside every allow-list, as the trusted proxy (127.0.0.1) forwards it.
OUTSIDER = "192.0.2.7"


class Stack:
    def __init__(self, gateway: GatewayProcess, fake: FakeCommonProcess, tls_port: int, pki: Pki):
        self.gateway = gateway
        self.fake = fake
        self.tls_port = tls_port
        self.pki = pki

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        return context

    def metrics(self) -> str:
        return self.gateway.metrics()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("security")
    pki = make_pki(directory)
    smpp_port, http_port, tls_port = free_port(), free_port(), free_port()
    smpp_extra = "\n".join(
        [
            f'tls_listen = ["tcp:{tls_port}:interface={HOST}"]',
            f'tls_certificate = "{pki.certificate}"',
            f'tls_private_key = "{pki.private_key}"',
            "bind_timeout = 3",
            "failed_bind_delay = 0.05",
            "lockout_failures = 3",
            'lockout_window = "1m"',
            f"lockout_time = {LOCKOUT_TIME}",
        ]
    )
    http_extra = "\n".join(
        [
            f'callback_sources = ["{HOST}/32"]',
            f'callback_sources_file = "{ROOT / "etc" / "link-callback-sources.txt"}"',
            f'metrics_sources = ["{HOST}"]',
            f'trusted_proxies = ["{HOST}"]',
            f"request_timeout = {REQUEST_TIMEOUT}",
            f"keepalive_timeout = {KEEPALIVE_TIMEOUT}",
            "max_body = 2048",
        ]
    )
    callback = f"http://{HOST}:{http_port}/callbacks/dlr"
    with FakeCommonProcess(callback) as fake:
        path = gateway_config(
            directory,
            smpp_port=smpp_port,
            http_port=http_port,
            common_url=fake.url,
            smpp_extra=smpp_extra,
        )
        # gateway_config writes [http] itself; the allow-list keys go into it.
        path.write_text(path.read_text().replace("[http]\n", f"[http]\n{http_extra}\n", 1))
        with GatewayProcess(path, smpp_port, http_port) as gateway:
            wait_for_port(tls_port, proc=gateway.proc)
            yield Stack(gateway, fake, tls_port, pki)


# --- SMPP over TLS -------------------------------------------------------------------


class _Verified:
    """smpplib wraps its socket without a server name; this supplies one, so the
    certificate's IP address is checked as well as its chain."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context

    def wrap_socket(self, sock: socket.socket) -> ssl.SSLSocket:
        return self.context.wrap_socket(sock, server_hostname=HOST)


def _pump(client: smpplib.client.Client, until: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not until():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock = client._socket
        # Decrypted bytes may wait inside the TLS layer where select cannot see them.
        if sock.pending() or select.select([sock], [], [], min(left, 0.2))[0]:
            client.read_once()
    return True


def test_smpplib_over_tls_binds_submits_and_gets_a_receipt(stack: Stack) -> None:
    client = smpplib.client.Client(
        HOST,
        stack.tls_port,
        timeout=5,
        ssl_context=_Verified(stack.client_context()),
        allow_unknown_opt_params=False,  # strict: a stray TLV in a receipt would raise
    )
    responses: list[Any] = []
    receipts: list[Any] = []

    def received(pdu: Any) -> int:
        receipts.append(pdu)
        return int(smpplib.consts.SMPP_ESME_ROK)

    client.set_message_sent_handler(lambda pdu: responses.append(pdu))
    client.set_message_received_handler(received)
    client.connect()
    try:
        assert client._socket.version() in ("TLSv1.2", "TLSv1.3")
        bound = client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        assert bound.status == smpplib.consts.SMPP_ESME_ROK
        client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
            source_addr="LINK",
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            destination_addr="4791000001",
            short_message=b"over TLS",
            registered_delivery=1,
        )
        assert _pump(client, lambda: bool(receipts) and bool(responses), timeout=30)
        message_id = responses[0].message_id.decode()
        text = receipts[0].short_message.decode()
        assert text.startswith(f"id:{message_id} ") and "stat:DELIVRD" in text
        client.unbind()
    finally:
        client.disconnect()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_12_and_13_with_links_suites_are_taken(stack: Stack, version: ssl.TLSVersion) -> None:
    context = stack.client_context()
    context.minimum_version = context.maximum_version = version
    with (
        socket.create_connection((HOST, stack.tls_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        assert tls.version() == version.name.replace("v1_", "v1.")
        cipher = tls.cipher()
        assert cipher is not None
        if version is ssl.TLSVersion.TLSv1_2:
            assert cipher[0] == "ECDHE-RSA-AES128-GCM-SHA256"


def _refused_handshake(context: ssl.SSLContext, port: int) -> str:
    with (
        socket.create_connection((HOST, port), timeout=5) as raw,
        pytest.raises(ssl.SSLError) as info,
    ):
        context.wrap_socket(raw, server_hostname=HOST)
    return str(info.value.reason)


def test_a_tls_11_client_is_refused(stack: Stack) -> None:
    context = stack.client_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 itself is deprecated
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    # The client's own OpenSSL would not offer TLS 1.1 at its default level.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    reason = _refused_handshake(context, stack.tls_port)
    # The server said no; the client did offer TLS 1.1 (else NO_PROTOCOLS_AVAILABLE).
    assert reason in ("TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL"), reason


def test_a_tls_12_suite_link_removed_is_refused(stack: Stack) -> None:
    context = stack.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES128-SHA")  # CBC, dropped 2025-10-15
    assert "HANDSHAKE_FAILURE" in _refused_handshake(context, stack.tls_port)


def test_plain_smpp_on_the_tls_port_fails_the_handshake(stack: Stack) -> None:
    bind = p.BindTransceiver(system_id=SYSTEM_ID, password=PASSWORD, interface_version=0x34)
    with Esme(stack.tls_port, timeout=5) as esme:
        esme.send(bind)
        received = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                data = esme.sock.recv(4096)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
        else:
            pytest.fail("the TLS listener kept a plain connection open")
    # Nothing SMPP came back: at most a TLS alert record (content type 21).
    assert received == b"" or received[0] == 21, received[:16]


# --- bind lockout -----------------------------------------------------------------------


def test_failed_binds_lock_the_address_out_then_it_may_bind_again(stack: Stack) -> None:
    before = stack.metrics()
    for guess in GUESSES:
        with Esme(stack.gateway.smpp_port) as esme:
            assert esme.bind(SYSTEM_ID, guess).status == S.ESME_RINVPASWD
    locked_at = time.monotonic()
    with Esme(stack.gateway.smpp_port) as esme:
        assert esme.bind(SYSTEM_ID, PASSWORD).status == S.ESME_RBINDFAIL
    # The TLS listener is the same server: locked there too.
    with Esme(stack.tls_port) as esme:
        esme.sock = stack.client_context().wrap_socket(esme.sock, server_hostname=HOST)
        assert esme.bind(SYSTEM_ID, PASSWORD).status == S.ESME_RBINDFAIL
    after = stack.metrics()
    locked = metric_value(after, "smppgw_bind_failures_total", reason="locked_out")
    assert locked - metric_value(before, "smppgw_bind_failures_total", reason="locked_out") == 2
    bad = metric_value(after, "smppgw_bind_failures_total", reason="bad_password")
    assert bad - metric_value(before, "smppgw_bind_failures_total", reason="bad_password") == 3
    # After lockout_time the right password binds again.
    time.sleep(max(0.0, locked_at + LOCKOUT_TIME + 0.3 - time.monotonic()))
    with Esme(stack.gateway.smpp_port) as esme:
        assert esme.bind(SYSTEM_ID, PASSWORD).status == S.ESME_ROK
    lines = [line for line in stack.gateway.log.read_text().splitlines() if "locking out" in line]
    assert len(lines) == 1
    assert f"locking out {HOST} " in lines[0] and f"system_id {SYSTEM_ID!r}" in lines[0]


# --- the callback allow-list ---------------------------------------------------------------


def _request(
    stack: Stack,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    auth: bool = True,
) -> int:
    connection = http.client.HTTPConnection(HOST, stack.gateway.http_port, timeout=10)
    try:
        all_headers = dict(headers or {})
        if auth:
            token = f"{CALLBACK_USER}:{CALLBACK_PASSWORD}".encode()
            all_headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


REPORT = json.dumps({"id": "nobody-knows", "refId": "1", "resultCode": 1001}).encode()


def test_callbacks_from_outside_the_allow_list_get_403_and_are_counted(stack: Stack) -> None:
    before = stack.metrics()
    forwarded = [
        OUTSIDER,
        f"{HOST}, {OUTSIDER}",  # the client's own claim, then the address the proxy saw
        "not-an-address",
    ]
    for header in forwarded:
        for path in ("/callbacks/dlr", "/callbacks/mo"):
            status = _request(stack, "POST", path, REPORT, {"X-Forwarded-For": header})
            assert status == 403, (path, header)
    # Refused before the credentials are looked at: 403, not 401.
    assert (
        _request(stack, "POST", "/callbacks/dlr", REPORT, {"X-Forwarded-For": OUTSIDER}, auth=False)
        == 403
    )
    # LINK calling directly (127.0.0.1 is in callback_sources) is let through.
    assert _request(stack, "POST", "/callbacks/dlr", REPORT) == 200
    assert _request(stack, "POST", "/callbacks/dlr", REPORT, auth=False) == 401
    after = stack.metrics()

    def delta(kind: str, outcome: str) -> float:
        return metric_value(
            after, "smppgw_callbacks_total", kind=kind, outcome=outcome
        ) - metric_value(before, "smppgw_callbacks_total", kind=kind, outcome=outcome)

    assert delta("dlr", "forbidden") == 4
    assert delta("mo", "forbidden") == 3
    assert delta("dlr", "unauthorized") == 1


def test_metrics_and_probes_follow_metrics_sources_and_are_not_callbacks(stack: Stack) -> None:
    before = stack.metrics()
    for path in ("/metrics", "/healthz", "/readyz"):
        assert _request(stack, "GET", path, auth=False) == 200
        assert _request(stack, "GET", path, headers={"X-Forwarded-For": OUTSIDER}) == 403
    # Unknown paths are 404 to everyone.
    assert _request(stack, "GET", "/nothing", headers={"X-Forwarded-For": OUTSIDER}) == 404
    after = stack.metrics()
    for outcome in ("forbidden", "unauthorized"):
        assert metric_value(
            after, "smppgw_callbacks_total", kind="dlr", outcome=outcome
        ) == metric_value(before, "smppgw_callbacks_total", kind="dlr", outcome=outcome)


# --- HTTP request timeouts -------------------------------------------------------------------


def _until_closed(sock: socket.socket, limit: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed."""
    received = b""
    sock.settimeout(limit)
    while True:
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            data = b""
        if not data:
            return received, time.monotonic()
        received += data


def _connect(stack: Stack) -> socket.socket:
    return socket.create_connection((HOST, stack.gateway.http_port), timeout=5)


def test_a_connection_that_sends_nothing_is_closed_after_request_timeout(stack: Stack) -> None:
    with _connect(stack) as sock:
        opened = time.monotonic()
        data, closed = _until_closed(sock)
    assert data == b""
    assert REQUEST_TIMEOUT - 0.2 <= closed - opened < KEEPALIVE_TIMEOUT


def test_headers_dribbled_a_byte_at_a_time_get_408(stack: Stack) -> None:
    head = b"POST /callbacks/dlr HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
    with _connect(stack) as sock:
        opened = time.monotonic()
        try:
            for byte in head:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        except OSError:
            pass  # closed on us mid-header, as it should be
        data, closed = _until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert closed - opened < REQUEST_TIMEOUT + 1.5


def test_a_body_shorter_than_its_content_length_gets_408(stack: Stack) -> None:
    with _connect(stack) as sock:
        sock.sendall(
            b"POST /callbacks/dlr HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n" + b"{" * 10
        )
        sent = time.monotonic()
        data, closed = _until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert closed - sent < REQUEST_TIMEOUT + 1.5


def test_an_idle_keep_alive_connection_closes_after_keepalive_timeout(stack: Stack) -> None:
    with _connect(stack) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        sock.settimeout(5)
        answer = sock.recv(4096)
        answered = time.monotonic()
        assert answer.startswith(b"HTTP/1.1 200 ")
        data, closed = _until_closed(sock)
    assert data == b""
    assert KEEPALIVE_TIMEOUT - 0.3 <= closed - answered < KEEPALIVE_TIMEOUT + 2


def test_a_body_over_max_body_gets_413(stack: Stack) -> None:
    before = stack.metrics()
    with _connect(stack) as sock:
        sock.sendall(b"POST /callbacks/dlr HTTP/1.1\r\nHost: gw\r\nContent-Length: 5000\r\n\r\n")
        data, _ = _until_closed(sock)
    assert data.startswith(b"HTTP/1.1 413 ")
    too_large = metric_value(
        stack.metrics(), "smppgw_callbacks_total", kind="dlr", outcome="too_large"
    )
    assert (
        too_large - metric_value(before, "smppgw_callbacks_total", kind="dlr", outcome="too_large")
        == 1
    )


# --- the log -------------------------------------------------------------------------------


def test_gateway_log_has_no_secrets(stack: Stack) -> None:
    """Last in the module: by now binds failed, an address was locked out, callbacks
    were refused and TLS was set up, so every new log line has had its chance."""
    text = Path(stack.gateway.log).read_text()
    key_lines = [
        line
        for line in stack.pki.private_key.read_text().splitlines()
        if line and not line.startswith("-----")
    ]
    for secret in (PASSWORD, CALLBACK_PASSWORD, *GUESSES, *key_lines):
        assert secret not in text
    assert "SMPP over TLS" in text and "locking out" in text and "refused /callbacks" in text
