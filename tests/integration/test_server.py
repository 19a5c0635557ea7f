"""The SMPP server end to end: the real daemon, the fake Common, a socket ESME.

One gateway process serves the whole module; tests that change state use
accounts of their own.
"""

from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.smpp import pdu as p
from gateway.smpp.codec import encode
from gateway.smpp.receipts import parse_receipt_text
from tests.esme import Esme, submit
from tests.harness import (
    CALLBACK_PASSWORD,
    FakeCommonProcess,
    GatewayProcess,
    account_toml,
    gateway_with_common,
    metric_value,
    post_callback,
    wait_for_metric,
)

S = p.CommandStatus

ACCOUNTS = (
    account_toml("esme1", "secret1", "main")
    + account_toml("single", "pw", "main", max_binds=1)
    + account_toml("walled", "pw", "main", allowed_networks=["10.0.0.0/8"])
    + account_toml("slow", "pw", "main", rate=5, burst=5)
    + account_toml("upstream", "pw", "main", accept="upstream")
    + account_toml("hexid", "pw", "main", message_id_format="hex")
)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, FakeCommonProcess]]:
    directory = tmp_path_factory.mktemp("server")
    with gateway_with_common(
        directory,
        accounts=ACCOUNTS,
        smpp_extra="bind_timeout = 1\nwindow = 4\nfailed_bind_delay = 0.1\n",
    ) as pair:
        yield pair


@pytest.fixture
def gateway(stack: tuple[GatewayProcess, FakeCommonProcess]) -> GatewayProcess:
    return stack[0]


@pytest.fixture
def fake(stack: tuple[GatewayProcess, FakeCommonProcess]) -> Iterator[FakeCommonProcess]:
    yield stack[1]
    stack[1].control({"down": False, "result_rules": {}, "permanent_errors": {}})


def test_bind_timeout_closes_a_silent_connection(gateway: GatewayProcess) -> None:
    with Esme(gateway.smpp_port) as esme:
        assert esme.closed_by_peer(timeout=5)


def test_enquire_link_is_answered_before_bind(gateway: GatewayProcess) -> None:
    with Esme(gateway.smpp_port) as esme:
        response = esme.request(p.EnquireLink())
        assert isinstance(response, p.EnquireLinkResp) and response.status == S.ESME_ROK


def test_submit_before_bind_is_refused_with_invbndsts(gateway: GatewayProcess) -> None:
    with Esme(gateway.smpp_port) as esme:
        response = esme.request(submit())
        assert isinstance(response, p.SubmitSmResp)
        assert response.status == S.ESME_RINVBNDSTS


def test_unknown_command_gets_generic_nack_with_its_sequence(gateway: GatewayProcess) -> None:
    with Esme(gateway.smpp_port) as esme:
        esme.send_raw(struct.pack(">IIII", 16, 0x00000042, 0, 777))
        nack = esme.receive(lambda r: isinstance(r, p.GenericNack))
        assert nack.status == S.ESME_RINVCMDID and nack.sequence == 777
        # The session survives: framing was intact.
        assert esme.request(p.EnquireLink()).status == S.ESME_ROK


def test_impossible_command_length_nacks_and_closes(gateway: GatewayProcess) -> None:
    with Esme(gateway.smpp_port) as esme:
        esme.send_raw(struct.pack(">IIII", 8, 0x15, 0, 5))
        nack = esme.receive(lambda r: isinstance(r, p.GenericNack))
        assert nack.status == S.ESME_RINVCMDLEN
        assert esme.closed_by_peer()


def test_bind_failures_have_their_statuses(gateway: GatewayProcess) -> None:
    before = gateway.metrics()
    with Esme(gateway.smpp_port) as esme:
        # bind_failure_status = "uniform": like a wrong password, after a check.
        assert esme.bind("nobody", "x").status == S.ESME_RINVPASWD
        assert esme.closed_by_peer()
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("esme1", "wrong").status == S.ESME_RINVPASWD
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("walled", "pw").status == S.ESME_RBINDFAIL
    after = gateway.metrics()
    for reason in ("unknown_system_id", "bad_password", "address_not_allowed"):
        name = "smppgw_bind_failures_total"
        assert (
            metric_value(after, name, reason=reason)
            == metric_value(before, name, reason=reason) + 1
        )


def test_max_binds_and_already_bound(gateway: GatewayProcess) -> None:
    with Esme(gateway.smpp_port) as first:
        response = first.bind("single", "pw")
        assert response.status == S.ESME_ROK
        assert isinstance(response, p.BindTransceiverResp)
        assert response.tlv(p.Tag.SC_INTERFACE_VERSION) == b"\x34"
        assert first.bind("single", "pw").status == S.ESME_RALYBND
        with Esme(gateway.smpp_port) as second:
            assert second.bind("single", "pw").status == S.ESME_RBINDFAIL


def test_bind_resp_to_a_33_esme_has_no_tlvs(gateway: GatewayProcess) -> None:
    with Esme(gateway.smpp_port) as esme:
        response = esme.bind("esme1", "secret1", interface_version=0x33)
        assert response.status == S.ESME_ROK and response.tlvs == []


def test_submit_and_receipt_text_and_tlvs(gateway: GatewayProcess, fake: FakeCommonProcess) -> None:
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("esme1", "secret1").status == S.ESME_ROK
        response = esme.request(submit("4712345678", b"Receipt please"))
        assert isinstance(response, p.SubmitSmResp) and response.status == S.ESME_ROK
        message_id = response.message_id
        assert message_id.isdigit() and not message_id.startswith("0") and len(message_id) <= 18
        (receipt,) = esme.receipts(1)
    assert receipt.esm_class == 0x04 and receipt.data_coding == 0
    # A receipt travels back: source and destination swapped.
    assert receipt.source_addr == "4712345678" and receipt.destination_addr == "LINK"
    parsed = parse_receipt_text(receipt.short_message)
    assert parsed.message_id == message_id and parsed.stat == "DELIVRD" and parsed.err == "000"
    assert receipt.tlv(p.Tag.RECEIPTED_MESSAGE_ID) == message_id.encode() + b"\0"
    assert receipt.tlv_int(p.Tag.MESSAGE_STATE) == p.MessageState.DELIVERED
    assert receipt.tlv(p.Tag.NETWORK_ERROR_CODE) == b"\x03\x00\x00"
    assert [tag for tag, _ in receipt.tlvs] == [
        p.Tag.RECEIPTED_MESSAGE_ID,
        p.Tag.MESSAGE_STATE,
        p.Tag.NETWORK_ERROR_CODE,
    ]


def test_receipt_to_a_33_esme_is_text_only(gateway: GatewayProcess) -> None:
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("esme1", "secret1", interface_version=0x33).status == S.ESME_ROK
        response = esme.request(submit("4712345679"))
        (receipt,) = esme.receipts(1)
    assert receipt.tlvs == []
    assert parse_receipt_text(receipt.short_message).message_id == response.message_id  # type: ignore[attr-defined]


def test_hex_message_ids(gateway: GatewayProcess) -> None:
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("hexid", "pw").status == S.ESME_ROK
        response = esme.request(submit())
        assert isinstance(response, p.SubmitSmResp)
        int(response.message_id, 16)
        (receipt,) = esme.receipts(1)
        assert parse_receipt_text(receipt.short_message).message_id == response.message_id


def test_bad_addresses_are_refused(gateway: GatewayProcess) -> None:
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("esme1", "secret1", p.BindTransmitter).status == S.ESME_ROK
        assert esme.request(submit("47abc")).status == S.ESME_RINVDSTADR
        too_long_alpha = submit(source_addr="TwelveLetter")
        assert esme.request(too_long_alpha).status == S.ESME_RINVSRCADR


def test_rate_limit_answers_throttled(gateway: GatewayProcess) -> None:
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("slow", "pw", p.BindTransmitter).status == S.ESME_ROK
        sequences = [esme.send(submit(registered_delivery=0)) for _ in range(20)]
        statuses = [
            esme.receive(lambda r, s=s: r.is_response and r.sequence == s).status for s in sequences
        ]
    assert statuses.count(S.ESME_ROK) >= 5
    assert statuses.count(S.ESME_RTHROTTLED) >= 10
    assert set(statuses) <= {S.ESME_ROK, S.ESME_RTHROTTLED}
    text = gateway.metrics()
    assert metric_value(text, "smppgw_submits_total", account="slow", outcome="throttled") == (
        statuses.count(S.ESME_RTHROTTLED)
    )


def test_window_is_backpressure_not_loss(gateway: GatewayProcess) -> None:
    # window = 4 in this module's config: 50 submits sent without reading any answer.
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("esme1", "secret1", p.BindTransmitter).status == S.ESME_ROK
        payload = b"".join(
            encode(submit(registered_delivery=0, sequence=1000 + i)) for i in range(50)
        )
        esme.send_raw(payload)
        answers = [esme.receive(lambda r: isinstance(r, p.SubmitSmResp)) for _ in range(50)]
    assert sorted(a.sequence for a in answers) == list(range(1000, 1050))
    assert all(a.status == S.ESME_ROK for a in answers)


def test_unbind_is_answered_then_closed(gateway: GatewayProcess) -> None:
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("esme1", "secret1").status == S.ESME_ROK
        response = esme.request(p.Unbind())
        assert isinstance(response, p.UnbindResp) and response.status == S.ESME_ROK
        assert esme.closed_by_peer()


def test_permanent_upstream_error_becomes_rejectd_receipt(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    fake.control({"permanent_errors": {"+4790000001": 106001}})
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("esme1", "secret1").status == S.ESME_ROK
        response = esme.request(submit("4790000001"))
        assert response.status == S.ESME_ROK
        (receipt,) = esme.receipts(1)
    parsed = parse_receipt_text(receipt.short_message)
    assert (parsed.stat, parsed.err) == ("REJECTD", "127")
    assert receipt.tlv_int(p.Tag.MESSAGE_STATE) == p.MessageState.REJECTED


def test_upstream_accounts_get_link_errors_as_statuses(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("upstream", "pw").status == S.ESME_ROK
        ok = esme.request(submit("4712340000"))
        assert ok.status == S.ESME_ROK
        esme.receipts(1)
        fake.control({"permanent_errors": {"+4790000002": 106001}})
        assert esme.request(submit("4790000002")).status == S.ESME_RSUBMITFAIL
        fake.control({"down": True})
        # Temporary trouble must be one of the statuses ESMEs retry (SMPP-NOTES section 3).
        status = esme.request(submit("4712340001")).status
        assert status in (S.ESME_RSYSERR, S.ESME_RMSGQFUL, S.ESME_RTHROTTLED)


def test_callback_errors_are_answered_and_counted(gateway: GatewayProcess) -> None:
    before = gateway.metrics()
    assert post_callback(gateway, b"{}", auth=False)[0] == 401
    status, reason = post_callback(gateway, b'{"id": "x"}')
    assert status == 400 and b"resultCode" in reason
    assert post_callback(gateway, b"not json")[0] == 400
    unknown = json.dumps({"id": "nope", "refId": "123", "resultCode": 1001}).encode()
    # Unknown ids are answered 200 so that LINK does not retry them forever.
    assert post_callback(gateway, unknown)[0] == 200
    after = gateway.metrics()

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("smppgw_callbacks_total", kind="dlr", outcome="unauthorized") == 1
    assert delta("smppgw_callbacks_total", kind="dlr", outcome="bad_request") == 2
    assert delta("smppgw_reports_total", outcome="unknown") == 1


def test_probes(gateway: GatewayProcess) -> None:
    for path in ("healthz", "readyz"):
        url = f"http://127.0.0.1:{gateway.http_port}/{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200


def test_upstream_outage_then_recovery_delivers_everything(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    retried = metric_value(
        gateway.metrics(), "smppgw_upstream_messages_total", connector="main", outcome="retry"
    )
    fake.control({"down": True})
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("esme1", "secret1").status == S.ESME_ROK
        ids = {esme.request(submit(f"47555000{i:02d}")).message_id for i in range(10)}  # type: ignore[attr-defined]
        # Common refused the gateway's first try: the outage is not over before it is
        # seen. (Not all ten: five failed requests open the breaker for 30 s.)
        wait_for_metric(
            gateway,
            "smppgw_upstream_messages_total",
            retried + 1,
            connector="main",
            outcome="retry",
        )
        fake.control({"down": False})
        receipts = esme.receipts(10, timeout=30)
    assert {parse_receipt_text(r.short_message).message_id for r in receipts} == ids


def test_gateway_log_has_no_secrets(gateway: GatewayProcess) -> None:
    text = Path(gateway.log).read_text()
    for secret in ("secret1", CALLBACK_PASSWORD, "password = "):
        assert secret not in text


def test_long_payload_split_by_common_gets_one_aggregated_receipt(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    # 400 GSM characters in message_payload: Common splits them into 3 parts and
    # reports `id$0`..`id$2`; the ESME gets one receipt for its one message.
    text = b"0123456789" * 40
    pdu = submit("4712398765", b"", tlvs=[(p.Tag.MESSAGE_PAYLOAD, text)])
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("esme1", "secret1").status == S.ESME_ROK
        response = esme.request(pdu)
        assert response.status == S.ESME_ROK
        (receipt,) = esme.receipts(1)
        with pytest.raises(TimeoutError):
            esme.receipts(1, timeout=1.5)
    parsed = parse_receipt_text(receipt.short_message)
    assert parsed.message_id == response.message_id  # type: ignore[attr-defined]
    assert (parsed.stat, parsed.sub, parsed.dlvrd) == ("DELIVRD", 3, 3)


def test_one_failed_part_makes_the_aggregated_receipt_undeliv(
    gateway: GatewayProcess, fake: FakeCommonProcess
) -> None:
    fake.control({"result_rules": {"+4712398766": 1006}})
    pdu = submit("4712398766", b"", tlvs=[(p.Tag.MESSAGE_PAYLOAD, b"x" * 200)])
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("esme1", "secret1").status == S.ESME_ROK
        assert esme.request(pdu).status == S.ESME_ROK
        (receipt,) = esme.receipts(1)
    parsed = parse_receipt_text(receipt.short_message)
    assert (parsed.stat, parsed.err, parsed.sub, parsed.dlvrd) == ("UNDELIV", "222", 2, 0)
