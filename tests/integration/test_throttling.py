"""LINK saying "too fast" (HTTP 429) slows the Common connector down; it is not
an outage. The real daemon, the fake Common (429 with Retry-After) and a socket
ESME on 127.0.0.1.

Before issue 11 a run of 429s opened the circuit breaker: /readyz said 503 for
`open_for`, and routes failed over, while LINK was only asking for a slower rate.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gateway.smpp import pdu as p
from tests.esme import Esme, submit
from tests.harness import (
    FakeCommonProcess,
    GatewayProcess,
    account_toml,
    gateway_with_common,
    metric_value,
)

S = p.CommandStatus
THROTTLES = 7  # more than the breaker's default failures (5)


@pytest.fixture
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, FakeCommonProcess]]:
    directory = tmp_path_factory.mktemp("throttling")
    with gateway_with_common(directory, accounts=account_toml("shop", "pw", "main")) as pair:
        yield pair


def test_429s_in_a_row_pace_the_connector_and_never_open_its_breaker(
    stack: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gateway, fake = stack
    fake.control({"retry_after": 1, "fail_next": {"n": THROTTLES, "status": 429}})
    with Esme(gateway.smpp_port, timeout=10.0) as esme:
        assert esme.bind("shop", "pw").status == S.ESME_ROK
        response = esme.request(submit(destination="4790000001"))
        assert response.status == S.ESME_ROK
        readiness = []
        deadline = time.monotonic() + 40.0
        receipt = None
        while receipt is None and time.monotonic() < deadline:
            readiness.append(gateway.readiness())
            try:
                (receipt,) = esme.receipts(1, timeout=0.5)
            except TimeoutError:
                continue
        assert receipt is not None, "no receipt after the 429s"
        assert isinstance(receipt, p.DeliverSm)
    # Ready throughout: the breaker never saw the 429s as failures.
    assert readiness and all(status == 200 for status, _ in readiness), readiness
    metrics = gateway.metrics()
    throttled = metric_value(
        metrics,
        "smppgw_upstream_requests_total",
        connector="main",
        endpoint="send",
        outcome="throttled",
    )
    assert throttled == THROTTLES
    assert (
        metric_value(metrics, "smppgw_upstream_messages_total", connector="main", outcome="retry")
        == 0
    )
    # One request each Retry-After (1 s) at most: THROTTLES answers took that long.
    stats = fake.get("/_control")
    assert stats["requests"] == THROTTLES + 1
