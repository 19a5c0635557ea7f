"""Where the gateway used to disagree with LINK's documents, end to end: the real
daemon, the fake Common (seed 001) and a socket ESME on 127.0.0.1.

- A message Common answers without a messageId is refused: a final code gives
  a REJECTD receipt with its err, a temporary one a retry (item 1), through
  /sms/send and /sms/sendbatch.
- 1007 "delivered, billed delayed" gives the ESME its DELIVRD; the billing
  report after it is recorded, and a failure gets a second receipt only for an
  account with billing_receipts (item 6).
- An 8-digit national source in Norway is an MSISDN, an all-digit "alphanumeric"
  one a number (items 2 and 4).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gateway.smpp import pdu as p
from gateway.smpp.codec import encode
from gateway.smpp.receipts import parse_receipt_text
from tests.esme import Esme, submit
from tests.harness import (
    FakeCommonProcess,
    GatewayProcess,
    account_toml,
    gateway_with_common,
    metric_value,
)

S = p.CommandStatus
REFUSED_FINAL = "4790000001"  # 106 quota exceeded: final
REFUSED_TEMPORARY = "4790000002"  # 3 throttling: retried
BILLED_LATE = "4790000003"  # 1007, then 2200 (charging error)
FINE = "4790000009"

ACCOUNTS = account_toml("shop", "pw", "main", default_country_code="47") + account_toml(
    "premium", "pw", "main", default_country_code="47", billing_receipts=True
)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, FakeCommonProcess]]:
    directory = tmp_path_factory.mktemp("documents")
    with gateway_with_common(
        directory, accounts=ACCOUNTS, fake_options={"keep_messages": True}
    ) as (gateway, fake):
        fake.control(
            {
                "permanent_errors": {"+" + REFUSED_FINAL: 106, "+" + REFUSED_TEMPORARY: 3},
                "result_rules": {"+" + BILLED_LATE: [1007, 2200]},
            }
        )
        yield gateway, fake


def _receipt(pdu: p.DeliverSm) -> tuple[str, str, str]:
    parsed = parse_receipt_text(pdu.short_message)
    return parsed.message_id, parsed.stat, parsed.err


def _submit_all(esme: Esme, destinations: list[str]) -> list[str]:
    """submit_sm to each destination in one write (so they share a sendbatch)."""
    data = b""
    sequences = []
    for destination in destinations:
        esme.sequence += 1
        pdu = submit(destination=destination)
        pdu.sequence = esme.sequence
        sequences.append(esme.sequence)
        data += encode(pdu)
    esme.send_raw(data)
    ids = []
    for sequence in sequences:
        response = esme.receive(lambda r, s=sequence: r.is_response and r.sequence == s)
        assert response.status == S.ESME_ROK and isinstance(response, p.SubmitSmResp)
        ids.append(response.message_id)
    return ids


def test_a_final_refusal_in_a_batch_is_a_rejectd_receipt_with_its_err(
    stack: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gateway, _ = stack
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("shop", "pw").status == S.ESME_ROK
        refused, fine = _submit_all(esme, [REFUSED_FINAL, FINE])
        receipts = {_receipt(r)[0]: _receipt(r) for r in esme.receipts(2)}
    assert receipts[refused][1:] == ("REJECTD", "949")
    assert receipts[fine][1:] == ("DELIVRD", "000")


def test_a_final_refusal_of_a_single_send_is_a_rejectd_receipt(
    stack: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gateway, _ = stack
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("shop", "pw").status == S.ESME_ROK
        (refused,) = _submit_all(esme, [REFUSED_FINAL])
        (receipt,) = esme.receipts(1)
    assert _receipt(receipt) == (refused, "REJECTD", "949")


def test_a_temporary_refusal_is_retried_until_common_takes_it(
    stack: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gateway, fake = stack
    before = metric_value(
        gateway.metrics(), "smppgw_upstream_messages_total", connector="main", outcome="throttled"
    )
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("shop", "pw").status == S.ESME_ROK
        (throttled,) = _submit_all(esme, [REFUSED_TEMPORARY])
        deadline = time.monotonic() + 10
        while (
            metric_value(
                gateway.metrics(),
                "smppgw_upstream_messages_total",
                connector="main",
                outcome="throttled",
            )
            < before + 2
        ):
            assert time.monotonic() < deadline, "the refusal was not retried"
            time.sleep(0.1)
        assert not [m for m in fake.get("/_messages") if m.get("refId") == throttled]
        # LINK stops throttling: the next attempt goes through.
        fake.control({"permanent_errors": {"+" + REFUSED_FINAL: 106}})
        (receipt,) = esme.receipts(1)
    assert _receipt(receipt) == (throttled, "DELIVRD", "000")


def test_1007_gives_one_delivrd_and_records_the_billing_failure_after_it(
    stack: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gateway, _ = stack
    before = metric_value(gateway.metrics(), "smppgw_reports_total", outcome="billing_failed")
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("shop", "pw").status == S.ESME_ROK
        (message_id,) = _submit_all(esme, [BILLED_LATE])
        (receipt,) = esme.receipts(1)
        assert _receipt(receipt) == (message_id, "DELIVRD", "000")
        deadline = time.monotonic() + 10
        while (
            metric_value(gateway.metrics(), "smppgw_reports_total", outcome="billing_failed")
            < before + 1
        ):
            assert time.monotonic() < deadline, "the billing report was not recorded"
            time.sleep(0.1)
        # No second receipt for this account.
        with pytest.raises(TimeoutError):
            esme.receipts(1, timeout=1.0)


def test_billing_receipts_give_the_billing_failure_a_receipt_of_its_own(
    stack: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gateway, _ = stack
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("premium", "pw").status == S.ESME_ROK
        (message_id,) = _submit_all(esme, [BILLED_LATE])
        first, second = esme.receipts(2)
    assert _receipt(first) == (message_id, "DELIVRD", "000")
    assert _receipt(second) == (message_id, "UNDELIV", "235")


@pytest.mark.parametrize(
    ("source", "ton", "sent", "sent_ton"),
    [
        ("41560067", 2, "+4741560067", "MSISDN"),  # a Norwegian mobile, national
        ("41560067", 0, "+4741560067", "MSISDN"),  # 8 digits: no short code in Norway
        ("2233", 0, "2233", "SHORTNUMBER"),
        ("12345", 5, "12345", "SHORTNUMBER"),  # digits are no alphanumeric sender
        ("0712345678", 0, "+47712345678", "MSISDN"),  # a trunk 0 dropped
    ],
)
def test_sources_reach_common_as_seed_001_wants_them(
    stack: tuple[GatewayProcess, FakeCommonProcess], source: str, ton: int, sent: str, sent_ton: str
) -> None:
    gateway, fake = stack
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("shop", "pw").status == S.ESME_ROK
        response = esme.request(submit(destination=FINE, source_addr=source, source_addr_ton=ton))
        assert response.status == S.ESME_ROK and isinstance(response, p.SubmitSmResp)
        esme.receipts(1)
    (message,) = [m for m in fake.get("/_messages") if m.get("refId") == response.message_id]
    assert (message["source"], message["sourceTON"]) == (sent, sent_ton)


def test_an_international_source_starting_with_0_is_refused(
    stack: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gateway, _ = stack
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("shop", "pw").status == S.ESME_ROK
        response = esme.request(
            submit(destination=FINE, source_addr="0712345678", source_addr_ton=1)
        )
        assert response.status == S.ESME_RINVSRCADR
        response = esme.request(submit(destination="0712345678", dest_addr_ton=1))
        assert response.status == S.ESME_RINVDSTADR
