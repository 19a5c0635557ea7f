"""Messages Common does not take: the Common connector against the fake Common
over HTTP on 127.0.0.1, through /sms/send (one message) and /sms/sendbatch (a
refused message beside an accepted one), one test per row of
results.SEND_REFUSALS and a few codes outside it.

An answer without a messageId is a refusal unless its code says where a taken
message is (1000-1013): temporary ones are retried, final ones become REJECTD
receipts with the report table's err (issue 14, item 1).
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from gateway.config import ConnectorSettings
from gateway.connectors.common.client import SendResult
from gateway.connectors.common.connector import CommonConnector, _match
from gateway.connectors.common.results import SEND_REFUSALS
from gateway.connectors.common.settings import CommonSettings
from gateway.metrics import Metrics
from gateway.records import Message, OutcomeKind, Party, PartyKind, SubmitOutcome
from tests.fakes.fake_common import FakeCommon
from tests.support.records import message

ACCEPTED, TEMPORARY, REJECTED = OutcomeKind.ACCEPTED, OutcomeKind.TEMPORARY, OutcomeKind.REJECTED

REFUSED = "+4700000001"
TAKEN = "+4700000002"

# code -> (kind, stat, err) of the outcome: every SEND_REFUSALS row, and others.
ROWS: dict[int, tuple[OutcomeKind, str | None, int | None]] = {
    0: (TEMPORARY, None, None),
    1: (TEMPORARY, None, None),
    2: (REJECTED, "REJECTD", 108),
    3: (TEMPORARY, None, None),
    4: (TEMPORARY, None, None),
    5: (TEMPORARY, None, None),
    6: (REJECTED, "REJECTD", 108),
    104: (REJECTED, "REJECTD", 236),
    105: (TEMPORARY, None, None),
    106: (REJECTED, "REJECTD", 949),
    2104: (REJECTED, "REJECTD", 101),
    4001: (REJECTED, "REJECTD", 127),
    7: (REJECTED, "REJECTD", 255),  # not a code Common documents: final, unknown
}


def test_the_rows_cover_every_send_refusal() -> None:
    assert set(SEND_REFUSALS) <= set(ROWS)


def _message(destination: str, number: int) -> Message:
    """A text from the short code 2333 to `destination`, valid an hour from now."""
    now = reactor.seconds()
    return message(
        f"m{number}",
        account="shop",
        connector="main",
        sender=Party(PartyKind.SHORT_CODE, "2333"),
        recipient=destination,
        text="hello",
        submitted_at=now,
        expires_at=now + 3600,
        validity_s=3600,
    )


class RefusalTests(TestCase):
    timeout = 20

    def connector(self, code: int) -> tuple[CommonConnector, Metrics]:
        common = FakeCommon(reactor, platform_id="P", platform_partner_id="PP")
        common.permanent_errors[REFUSED] = code
        common.start()
        self.addCleanup(common.stop)
        settings = ConnectorSettings(
            name="main",
            type="common",
            common=CommonSettings(base_url=common.base_url, username="user", password="secret"),
            platform_id="P",
            platform_partner_id="PP",
        )
        metrics = Metrics()
        connector = CommonConnector(reactor, settings, metrics)
        self.addCleanup(connector.stop)
        return connector, metrics

    def check(self, code: int, outcome: SubmitOutcome) -> None:
        kind, stat, err = ROWS[code]
        self.assertEqual(outcome.kind, kind, f"code {code}")
        self.assertIsNone(outcome.upstream_id)
        # Common's code is kept in what the outcome says (logged), and an ESME of an
        # accept = "upstream" account hears a refusal, never ESME_ROK.
        self.assertTrue(outcome.description.startswith(f"{code} "), outcome.description)
        self.assertNotEqual(outcome.esme_status, 0)
        if kind == REJECTED:
            assert outcome.rejection is not None
            self.assertEqual((outcome.rejection.stat, outcome.rejection.err), (stat, err))
            self.assertEqual(outcome.misconfigured, code == 104)

    async def _through_send(self, code: int) -> None:
        connector, metrics = self.connector(code)
        (outcome,) = await connector.submit([_message(REFUSED, 1)])
        self.check(code, outcome)
        self.assertEqual(_misconfigured(metrics), 1.0 if code == 104 else 0.0)

    async def _through_sendbatch(self, code: int) -> None:
        connector, metrics = self.connector(code)
        refused, taken = await connector.submit([_message(REFUSED, 1), _message(TAKEN, 2)])
        self.check(code, refused)
        self.assertEqual(taken.kind, ACCEPTED)
        self.assertIsNotNone(taken.upstream_id)
        self.assertEqual(_misconfigured(metrics), 1.0 if code == 104 else 0.0)


def _misconfigured(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value(
        "smppgw_upstream_misconfiguration_total", {"connector": "main"}
    )
    return value or 0.0


def _add_row_tests() -> None:
    """One test method per code and endpoint, so a failing row names itself."""
    for code in ROWS:
        for endpoint in ("send", "sendbatch"):

            def test(self: RefusalTests, code: int = code, endpoint: str = endpoint) -> Any:
                run = self._through_send if endpoint == "send" else self._through_sendbatch
                return ensureDeferred(run(code))

            name = f"test_code_{code}_through_{endpoint}"
            test.__name__ = name
            setattr(RefusalTests, name, test)


_add_row_tests()


@pytest.mark.parametrize("code", [1000, 1005, 1013, None])
def test_codes_of_a_taken_message_without_an_id_are_accepted(code: int | None) -> None:
    taken = _message(TAKEN, 1)
    (outcome,) = _match([taken], [SendResult(taken.id, None, code, "")])
    assert outcome.kind is ACCEPTED
    assert outcome.message is taken
    assert outcome.upstream_id is None  # refId still correlates its reports
