"""The LINK SMPP connector against the fake LINK SMSC: real reactor, TCP/TLS on 127.0.0.1.

Timing is checked only where it is a correctness property (the reconnect delay,
the throttle pause); everything else checks counts and contents. The last tests
run the whole path (an ESME, the gateway, the fake LINK as processes) for what
only the gateway around the connector decides.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from gateway.config import ConnectorSettings
from gateway.connectors.linksmpp.connector import LinkSmppConnector
from gateway.connectors.linksmpp.mapping import id_forms
from gateway.connectors.linksmpp.settings import LinkSmppSettings
from gateway.metrics import Metrics
from gateway.records import (
    Body,
    IncomingMo,
    Message,
    OutcomeKind,
    Party,
    PartyKind,
    Report,
    SubmitOutcome,
)
from gateway.smpp import pdu as p
from gateway.smpp.codec import Framer, decode, encode
from tests.esme import Esme, submit
from tests.fakes.fake_linksmpp import FakeLinkSmpp
from tests.harness import (
    ROOT,
    FakeLinkSmppProcess,
    GatewayProcess,
    account_toml,
    free_port,
    gateway_config,
    metric_value,
    wait_for_link_up,
    wait_for_metric,
)
from tests.support import records

S = p.CommandStatus
CLOCK: Any = reactor
ACCEPTED = OutcomeKind.ACCEPTED
TEMPORARY = OutcomeKind.TEMPORARY
REJECTED = OutcomeKind.REJECTED


class Inbound:
    """Records what the connector hands back; can hold or fail MO storage."""

    def __init__(self) -> None:
        self.receipts: list[Report] = []
        self.mos: list[IncomingMo] = []
        self.hold = False
        self.held: list[Deferred[None]] = []
        self.fail_mo = 0

    def reports(self, connector: str, reports: list[Report]) -> Deferred[None]:
        assert connector == "link"
        self.receipts.extend(reports)
        return succeed(None)

    def mo_received(self, messages: list[IncomingMo]) -> Deferred[None]:
        if self.fail_mo:
            self.fail_mo -= 1
            return fail(RuntimeError("the store is down"))
        self.mos.extend(messages)
        if self.hold:
            d: Deferred[None] = Deferred()
            self.held.append(d)
            return d
        return succeed(None)


_COUNT = [0]


def message(text: str = "Hello", destination: str = "+4799999999", **overrides: Any) -> Message:
    """A message of account acc from "Shop", valid for an hour from now."""
    _COUNT[0] += 1
    now = CLOCK.seconds()
    values: dict[str, Any] = {
        "account": "acc",
        "sender": Party(PartyKind.ALPHANUMERIC, "Shop"),
        "recipient": destination,
        "body": Body(text=text),
        "text_head": text[:20],
        "submitted_at": now,
        "expires_at": now + 3600,
        "validity_s": 3600,
    }
    values.update(overrides)
    return records.message(f"m{_COUNT[0]}", **values)


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


@inlineCallbacks
def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> Any:
    deadline = CLOCK.seconds() + timeout
    while not predicate():
        if CLOCK.seconds() > deadline:
            raise AssertionError("condition not met in time")
        yield sleep(0.01)


@inlineCallbacks
def drive(connector: LinkSmppConnector, messages: list[Message], timeout: float = 15.0) -> Any:
    """A small dispatcher: respects capacity and max_batch, resubmits TEMPORARY ones.

    Returns every outcome each message got, by message id.
    """
    outcomes: dict[str, list[Any]] = {m.id: [] for m in messages}
    todo = deque(messages)
    inflight = [0]

    def settle(results: list[Any]) -> None:
        inflight[0] -= 1
        for outcome in results:
            outcomes[outcome.message.id].append(outcome)
            if outcome.kind is TEMPORARY:
                todo.append(outcome.message)

    deadline = CLOCK.seconds() + timeout
    while todo or inflight[0]:
        if CLOCK.seconds() > deadline:
            raise AssertionError(f"{len(todo)} messages never sent")
        while todo and connector.capacity > 0:
            batch = [todo.popleft() for _ in range(min(connector.max_batch, len(todo)))]
            inflight[0] += 1
            connector.submit(batch).addCallback(settle)
        yield sleep(0.01)
    return outcomes


class LinkTestCase(TestCase):
    timeout = 20

    def make_fake(self, **options: Any) -> FakeLinkSmpp:
        options.setdefault("tls", False)
        options.setdefault("rate", 1000.0)
        if options["tls"]:
            options.setdefault("ca_path", self.mktemp())
        fake = FakeLinkSmpp(reactor, **options)
        fake.start()
        self.addCleanup(fake.stop)
        return fake

    def make_connector(
        self, fake: FakeLinkSmpp, start: bool = True, **options: Any
    ) -> tuple[LinkSmppConnector, Inbound, Metrics]:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": fake.port,
            "tls": fake.tls,
            "ca_file": fake.ca_path,
            "system_id": "link",
            "password": "secret",
            "reconnect_delay": 0.5,
            "rate": 1000.0,
            "burst": 10.0,
            "response_timeout": 5.0,
            "bind_timeout": 5.0,
        }
        settings.update(options)
        inbound = Inbound()
        metrics = Metrics()
        connector = LinkSmppConnector(
            reactor,
            ConnectorSettings(name="link", type="linksmpp", linksmpp=LinkSmppSettings(**settings)),
            metrics,
            inbound,
        )
        if start:
            connector.start()
        self.addCleanup(connector.stop)
        return connector, inbound, metrics

    @inlineCallbacks
    def bound(self, fake: FakeLinkSmpp, **options: Any) -> Any:
        connector, inbound, metrics = self.make_connector(fake, **options)
        yield wait_for(lambda: connector.link_up)
        return connector, inbound, metrics


def link_gauge(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("smppgw_upstream_link_up", {"connector": "link"})


def same_id(a: str, b: str) -> bool:
    return bool(set(id_forms(a)) & set(id_forms(b)))


class BindTests(LinkTestCase):
    @inlineCallbacks
    def test_tls_bind_submit_and_receipt(self) -> Any:
        fake = self.make_fake(tls=True)
        connector, inbound, metrics = self.make_connector(fake)
        self.assertEqual(connector.capacity, 0)
        self.assertEqual(link_gauge(metrics), 0.0)
        yield wait_for(lambda: connector.link_up)
        self.assertEqual(link_gauge(metrics), 1.0)
        self.assertGreater(connector.capacity, 0)
        record = fake.connections[0]
        self.assertEqual((record.bind_mode, record.bind_system_id), ("transceiver", "link"))

        sent = message("Hello €", priority=1)
        outcomes = yield connector.submit([sent])
        self.assertEqual([o.kind for o in outcomes], [ACCEPTED])
        submitted = fake.submits[0]
        self.assertEqual(outcomes[0].upstream_id, submitted.message_id)
        self.assertEqual(outcomes[0].upstream_parts, (submitted.message_id,))
        self.assertEqual(
            (submitted.source_addr, submitted.source_addr_ton, submitted.source_addr_npi),
            ("Shop", 5, 0),
        )
        self.assertEqual(
            (submitted.destination_addr, submitted.dest_addr_ton, submitted.dest_addr_npi),
            ("4799999999", 1, 1),
        )
        self.assertEqual((submitted.text, submitted.data_coding), ("Hello €", 0))
        self.assertEqual((submitted.registered_delivery, submitted.priority_flag), (1, 1))
        self.assertTrue(submitted.validity_period.endswith("R"))

        yield wait_for(lambda: inbound.receipts)
        receipt = inbound.receipts[0]
        self.assertEqual(
            (receipt.upstream_id, receipt.outcome.stat, receipt.outcome.err),
            (submitted.message_id, "DELIVRD", 0),
        )
        self.assertEqual(
            (receipt.outcome.final, receipt.outcome.state, receipt.any_form),
            (True, p.MessageState.DELIVERED, True),
        )
        assert receipt.reported_at is not None
        self.assertLess(abs(receipt.reported_at - CLOCK.seconds()), 5)
        yield wait_for(lambda: fake.deliveries[0].acked_at is not None)

    @inlineCallbacks
    def test_a_certificate_for_another_host_is_refused(self) -> Any:
        fake = self.make_fake(tls=True, hostnames=("wrong.example",))
        connector, _, metrics = self.make_connector(fake)
        yield wait_for(lambda: len(fake.connections) >= 1)
        yield sleep(0.3)
        self.assertFalse(connector.link_up)
        self.assertEqual(connector.capacity, 0)
        self.assertEqual(link_gauge(metrics), 0.0)
        self.assertEqual([c.bind_mode for c in fake.connections], [None] * len(fake.connections))
        outcomes = yield connector.submit([message()])
        self.assertEqual([o.kind for o in outcomes], [TEMPORARY])
        self.assertEqual(fake.submits, [])

    @inlineCallbacks
    def test_a_refused_bind_is_retried_after_the_delay(self) -> Any:
        fake = self.make_fake()
        connector, _, _ = self.make_connector(fake, password="wrong")
        yield wait_for(lambda: len(fake.connections) >= 2, timeout=5)
        first, second = fake.connections[:2]
        self.assertEqual(first.bind_status, S.ESME_RINVPASWD)
        # The refusal went out before the client can have seen the link end.
        assert first.bind_answered_at is not None
        self.assertGreaterEqual(second.connected_at - first.bind_answered_at, 0.5)
        self.assertFalse(connector.link_up)

    @inlineCallbacks
    def test_pair_of_binds(self) -> Any:
        fake = self.make_fake(max_binds=2)
        connector, inbound, _ = yield self.bound(fake, bind="pair")
        self.assertEqual(
            sorted(c.bind_mode or "" for c in fake.connections), ["receiver", "transmitter"]
        )
        outcomes = yield connector.submit([message()])
        self.assertEqual(outcomes[0].kind, ACCEPTED)
        yield wait_for(lambda: inbound.receipts)
        self.assertEqual(inbound.receipts[0].upstream_id, outcomes[0].upstream_id)


class ReceiptTests(LinkTestCase):
    @inlineCallbacks
    def test_id_styles_formats_and_stat_err(self) -> Any:
        fake = self.make_fake(receipt_tlvs=False)
        connector, inbound, _ = yield self.bound(fake)
        cases = [
            ("decimal", "same", "seconds", ("DELIVRD", 0)),
            ("decimal", "other_base", "minutes", ("UNDELIV", 222)),
            ("hex", "other_case", "seconds", ("EXPIRED", 220)),
            ("hex_lower", "other_base", "minutes", ("REJECTD", 945)),
            ("zeros", "stripped", "seconds", ("DELETED", 221)),
            ("hex_zeros", "other_base", "minutes", ("ACCEPTD", 223)),
            ("hex", "zeros", "seconds", ("UNKNOWN", 255)),
        ]
        for n, (style, variant, date_format, (stat, err)) in enumerate(cases):
            destination = f"+47900000{n:02d}"
            fake.id_style = style
            fake.receipt_id_variant = variant
            fake.receipt_format = date_format
            fake.rules[destination[1:]] = (stat, err)
            before = len(inbound.receipts)
            outcomes = yield connector.submit([message(destination=destination)])
            self.assertEqual(outcomes[0].kind, ACCEPTED)
            yield wait_for(lambda before=before: len(inbound.receipts) > before)
            receipt = inbound.receipts[-1]
            upstream_id = outcomes[0].upstream_id
            assert upstream_id is not None
            self.assertTrue(same_id(receipt.upstream_id, upstream_id), (style, variant))
            self.assertEqual((receipt.outcome.stat, receipt.outcome.err), (stat, err))
            self.assertTrue(receipt.outcome.final)
            assert receipt.reported_at is not None
            if date_format == "minutes":
                self.assertEqual(receipt.reported_at % 60, 0)
            self.assertLess(abs(receipt.reported_at - CLOCK.seconds()), 120)
        # The variants really differed from the resp ids.
        self.assertNotEqual(fake.deliveries[1].pdu.short_message[3:13], b"3000000002")

    @inlineCallbacks
    def test_an_unreadable_receipt_is_acknowledged_and_counted(self) -> Any:
        fake = self.make_fake()
        _, inbound, metrics = yield self.bound(fake)
        delivery = fake.inject_deliver(p.DeliverSm(esm_class=0x04, short_message=b"garbage"))
        yield wait_for(lambda: delivery.acked_at is not None)
        self.assertEqual(inbound.receipts, [])
        self.assertEqual(
            metrics.registry.get_sample_value(
                "smppgw_upstream_requests_total",
                {"connector": "link", "endpoint": "deliver_sm", "outcome": "unparseable"},
            ),
            1.0,
        )


class FlowTests(LinkTestCase):
    @inlineCallbacks
    def test_a_burst_keeps_to_the_window_and_the_rate(self) -> Any:
        # The fake allows one token more than the connector uses: arrival times
        # jitter by a few milliseconds against send times.
        fake = self.make_fake(rate=25.0, burst=3.0)
        connector, _, _ = yield self.bound(fake, rate=25.0, burst=2.0, window=1)
        messages = [message(f"burst {n}") for n in range(100)]
        outcomes = yield drive(connector, messages)
        self.assertEqual([[o.kind for o in outcomes[m.id]] for m in messages], [[ACCEPTED]] * 100)
        self.assertEqual(fake.violations["window"], 0)
        self.assertEqual(fake.violations["rate"], 0)
        self.assertEqual(len(fake.accepted()), 100)
        self.assertEqual(len({s.message_id for s in fake.accepted()}), 100)
        # In order, as given.
        self.assertEqual([s.text for s in fake.accepted()], [f"burst {n}" for n in range(100)])

    @inlineCallbacks
    def test_throttled_messages_wait_and_nothing_fails(self) -> Any:
        fake = self.make_fake()
        connector, _, _ = yield self.bound(fake, throttle_backoff=0.1, throttle_backoff_max=0.3)
        fake.throttle_next = 3
        messages = [message(f"t{n}") for n in range(5)]
        outcomes = yield drive(connector, messages)
        self.assertEqual([[o.kind for o in outcomes[m.id]] for m in messages], [[ACCEPTED]] * 5)
        self.assertEqual([s.outcome for s in fake.submits][:4], ["throttled"] * 3 + ["accepted"])
        self.assertEqual([s.text for s in fake.accepted()], [f"t{n}" for n in range(5)])
        # The pause after each refusal: 0.1, then doubled, then capped at 0.3.
        times = [s.at for s in fake.submits[:4]]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        for gap, pause in zip(gaps, (0.1, 0.2, 0.3), strict=True):
            self.assertGreaterEqual(gap, pause * 0.95)
        self.assertEqual(fake.violations["window"] + fake.violations["rate"], 0)

    @inlineCallbacks
    def test_a_dropped_link_fails_the_message_in_flight_and_reconnects_after_the_delay(
        self,
    ) -> Any:
        fake = self.make_fake()
        connector, _, metrics = yield self.bound(fake, reconnect_delay=0.5)
        fake.drop_next_submit = 1
        messages = [message(f"d{n}") for n in range(5)]
        outcomes = yield drive(connector, messages)
        kinds = {m.id: [o.kind for o in outcomes[m.id]] for m in messages}
        self.assertEqual(kinds[messages[0].id], [TEMPORARY, ACCEPTED])
        for m in messages:
            self.assertEqual(kinds[m.id].count(ACCEPTED), 1)
            self.assertEqual(kinds[m.id][-1], ACCEPTED)
        self.assertEqual(len(fake.connections), 2)
        first, second = fake.connections
        assert first.closed_at is not None
        self.assertGreaterEqual(second.connected_at - first.closed_at, 0.5)
        self.assertEqual(
            sorted(s.text or "" for s in fake.accepted()), sorted(f"d{n}" for n in range(5))
        )
        self.assertEqual([s.outcome for s in fake.submits].count("dropped"), 1)
        self.assertTrue(connector.link_up)
        self.assertEqual(link_gauge(metrics), 1.0)

    @inlineCallbacks
    def test_no_answer_in_time_closes_the_link(self) -> Any:
        fake = self.make_fake(response_delay=2.0)
        connector, _, _ = yield self.bound(fake, response_timeout=0.3, reconnect_delay=0.5)
        outcomes = yield connector.submit([message()])
        self.assertEqual([o.kind for o in outcomes], [TEMPORARY])
        self.assertFalse(connector.link_up)
        self.assertEqual(connector.capacity, 0)
        fake.response_delay = 0.0
        yield wait_for(lambda: connector.link_up, timeout=5)
        self.assertEqual(len(fake.connections), 2)

    @inlineCallbacks
    def test_enquire_link_keeps_an_idle_link_open(self) -> Any:
        pinged = self.make_fake(idle_timeout=1.0)
        silent = self.make_fake(idle_timeout=1.0)
        connector, _, _ = yield self.bound(pinged, enquire_link_interval=0.3)
        yield self.bound(silent, enquire_link_interval=0.0)
        yield sleep(2.5)
        self.assertTrue(connector.link_up)
        self.assertEqual(len(pinged.connections), 1)
        self.assertIsNone(pinged.connections[0].closed_at)
        self.assertGreaterEqual(pinged.connections[0].enquire_links, 3)
        self.assertEqual(silent.connections[0].enquire_links, 0)
        # Without pings, the fake closes the link as LINK would.
        self.assertIsNotNone(silent.connections[0].closed_at)
        self.assertGreaterEqual(
            (silent.connections[0].closed_at or 0) - silent.connections[0].connected_at, 1.0
        )
        outcomes = yield connector.submit([message()])
        self.assertEqual(outcomes[0].kind, ACCEPTED)


class SegmentTests(LinkTestCase):
    @inlineCallbacks
    def test_a_long_message_goes_in_segments(self) -> Any:
        fake = self.make_fake()
        connector, inbound, _ = yield self.bound(fake)
        text = "".join(f"word{n} " for n in range(60))  # 410 GSM characters: 3 segments
        outcomes = yield connector.submit([message(text)])
        outcome = outcomes[0]
        self.assertEqual(outcome.kind, ACCEPTED)
        ids = [s.message_id for s in fake.accepted()]
        self.assertEqual(len(ids), 3)
        self.assertEqual(outcome.upstream_parts, tuple(ids))
        self.assertEqual(outcome.upstream_id, ids[0])
        udhs = [s.udh for s in fake.accepted()]
        self.assertEqual([u[-4:] for u in udhs], ["0301", "0302", "0303"])
        self.assertEqual(len({u[:8] for u in udhs}), 1)  # one reference
        self.assertTrue(all(s.esm_class == 0x40 for s in fake.accepted()))
        self.assertEqual("".join(s.text or "" for s in fake.accepted()), text)
        yield wait_for(lambda: len(inbound.receipts) == 3)
        self.assertEqual([r.upstream_id for r in inbound.receipts], ids)

    @inlineCallbacks
    def test_a_temporary_error_on_a_later_segment_resends_only_the_rest(self) -> Any:
        fake = self.make_fake()
        connector, _, _ = yield self.bound(fake)
        fake.script.extend([None, S.ESME_RSYSERR])
        sent = message("x" * 400)  # 3 segments
        first = yield connector.submit([sent])
        self.assertEqual(first[0].kind, TEMPORARY)
        self.assertEqual([s.outcome for s in fake.submits], ["accepted", "scripted"])
        second = yield connector.submit([sent])
        self.assertEqual(second[0].kind, ACCEPTED)
        accepted = fake.accepted()
        self.assertEqual([s.udh[-4:] for s in accepted], ["0301", "0302", "0303"])
        self.assertEqual(second[0].upstream_parts, tuple(s.message_id for s in accepted))
        # The first segment went out once; the retry kept its reference.
        self.assertEqual(len({s.udh for s in fake.submits}), 3)

    @inlineCallbacks
    def test_a_permanent_error_on_any_segment_rejects_the_message(self) -> Any:
        fake = self.make_fake()
        connector, _, _ = yield self.bound(fake)
        fake.script.extend([None, S.ESME_RINVDSTADR])
        outcomes = yield connector.submit([message("y" * 400)])
        outcome = outcomes[0]
        self.assertEqual(outcome.kind, REJECTED)
        assert outcome.rejection is not None
        self.assertEqual((outcome.rejection.stat, outcome.rejection.err), ("REJECTD", 206))
        self.assertEqual(len(fake.submits), 2)  # the third segment is not sent

    @inlineCallbacks
    def test_link_refusals_of_single_messages(self) -> Any:
        fake = self.make_fake(submit_status={"+4790000001": S.ESME_RINVDSTADR})
        connector, _, _ = yield self.bound(fake)
        outcomes = yield connector.submit(
            [message(destination="+4790000001"), message(), message(destination="+12")]
        )
        self.assertEqual([o.kind for o in outcomes], [REJECTED, ACCEPTED, ACCEPTED])
        assert outcomes[0].rejection is not None
        self.assertEqual(outcomes[0].rejection.err, 206)


class UpstreamStatusTests(LinkTestCase):
    """What an accept = "upstream" ESME will get for LINK's refusal (SubmitOutcome.esme_status)."""

    @inlineCallbacks
    def test_links_own_status_is_kept_for_the_esme(self) -> Any:
        fake = self.make_fake(
            submit_status={
                "+4790000011": S.ESME_RINVDSTADR,
                "+4790000012": 3,
                "+4790000013": S.ESME_RINVBNDSTS,
            }
        )
        connector, _, _ = yield self.bound(fake)
        outcomes: list[SubmitOutcome] = yield connector.submit(
            [
                message(destination="+4790000011"),
                message(destination="+4790000012"),
                message(destination="+4790000013"),
                message(destination="+4790000014"),
            ]
        )
        seen = [(o.kind, o.esme_status, o.rejection.err if o.rejection else None) for o in outcomes]
        self.assertEqual(
            seen,
            [
                (REJECTED, S.ESME_RINVDSTADR, 206),
                # 3 is LINK's ESME_RINVCMDID, not a throttle (Common's result code 3).
                (REJECTED, S.ESME_RINVCMDID, 903),
                # A bind state LINK and we disagree about is not the ESME's business.
                (TEMPORARY, S.ESME_RSYSERR, None),
                (ACCEPTED, 0, None),
            ],
        )
        self.assertNotIn(S.ESME_RTHROTTLED, [o.esme_status for o in outcomes])
        self.assertEqual(
            [s.status for s in fake.submits],
            [S.ESME_RINVDSTADR, 3, S.ESME_RINVBNDSTS, S.ESME_ROK],
        )

    @inlineCallbacks
    def test_a_permanent_refusal_of_a_later_segment_is_the_messages_status(self) -> Any:
        fake = self.make_fake()
        connector, _, _ = yield self.bound(fake)
        fake.script.extend([None, S.ESME_RINVDSTADR])
        (outcome,) = yield connector.submit([message("z" * 400)])
        self.assertEqual((outcome.kind, outcome.esme_status), (REJECTED, S.ESME_RINVDSTADR))

    @inlineCallbacks
    def test_trouble_on_our_side_is_a_status_esmes_retry(self) -> Any:
        fake = self.make_fake(response_delay=2.0)
        connector, _, _ = yield self.bound(fake, response_timeout=0.3)
        (outcome,) = yield connector.submit([message()])
        self.assertEqual((outcome.kind, outcome.esme_status), (TEMPORARY, S.ESME_RMSGQFUL))


class MoTests(LinkTestCase):
    @inlineCallbacks
    def test_mo_is_acknowledged_only_once_stored(self) -> Any:
        fake = self.make_fake()
        _, inbound, _ = yield self.bound(fake)
        inbound.hold = True
        (delivery,) = fake.inject_mo("4712345678", "2233", "Hello {there}")
        yield wait_for(lambda: inbound.mos)
        yield sleep(0.2)
        self.assertEqual(delivery.answers, [])
        mo = inbound.mos[0]
        self.assertEqual(
            (mo.source, mo.source_ton, mo.destination, mo.dest_ton), ("4712345678", 1, "2233", 3)
        )
        self.assertEqual((mo.text, mo.udh, mo.connector), ("Hello {there}", None, "link"))
        inbound.held[0].callback(None)
        yield wait_for(lambda: delivery.acked_at is not None)
        self.assertEqual([status for _, status in delivery.answers], [S.ESME_ROK])

    @inlineCallbacks
    def test_ucs2_and_segmented_mo(self) -> Any:
        fake = self.make_fake()
        _, inbound, _ = yield self.bound(fake)
        fake.inject_mo("4712345678", "2233", "Привет", coding="ucs2")
        long_text = "Ciao " * 50
        parts = fake.inject_mo("4712345678", "2233", long_text, segments=True)
        self.assertEqual(len(parts), 2)
        yield wait_for(lambda: len(inbound.mos) == 3)
        self.assertEqual(inbound.mos[0].text, "Привет")
        self.assertEqual("".join(m.text or "" for m in inbound.mos[1:]), long_text)
        self.assertEqual(
            [m.udh[-2:] if m.udh else b"" for m in inbound.mos[1:]], [b"\x02\x01", b"\x02\x02"]
        )

    @inlineCallbacks
    def test_mo_not_stored_is_sent_again(self) -> Any:
        fake = self.make_fake(redeliver_delay=0.1)
        _, inbound, _ = yield self.bound(fake)
        inbound.fail_mo = 1
        (delivery,) = fake.inject_mo("4712345678", "2233", "again")
        yield wait_for(lambda: delivery.acked_at is not None)
        self.assertEqual([status for _, status in delivery.answers], [S.ESME_RX_T_APPN, S.ESME_ROK])
        self.assertEqual([m.text for m in inbound.mos], ["again"])
        self.flushLoggedErrors(RuntimeError)


class StopTests(LinkTestCase):
    @inlineCallbacks
    def test_stop_unbinds_and_fails_what_is_waiting(self) -> Any:
        fake = self.make_fake(rate=1000.0)
        connector, _, metrics = yield self.bound(fake, rate=2.0, burst=1.0)
        pending = connector.submit([message(f"s{n}") for n in range(3)])
        yield sleep(0.05)
        yield connector.stop()
        outcomes = yield pending
        kinds = [o.kind for o in outcomes]
        self.assertEqual(kinds[0], ACCEPTED)
        self.assertEqual(kinds[1:], [TEMPORARY, TEMPORARY])
        yield wait_for(lambda: fake.connections[0].closed_at is not None)
        self.assertIsNotNone(fake.connections[0].unbound_at)
        self.assertFalse(connector.link_up)
        self.assertEqual(connector.capacity, 0)
        self.assertEqual(link_gauge(metrics), 0.0)
        late = yield connector.submit([message()])
        self.assertEqual([o.kind for o in late], [TEMPORARY])
        yield sleep(0.7)  # longer than the reconnect delay: no new connection
        self.assertEqual(len(fake.connections), 1)


class _RawClient(Protocol):
    """Writes PDUs as given, however badly behaved; collects what comes back."""

    transport: Any

    def __init__(self) -> None:
        self.received = bytearray()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def responses(self) -> list[p.Pdu]:
        framer = Framer(16384)
        framer.feed(bytes(self.received))
        pdus = []
        while (frame := framer.next_frame()) is not None:
            pdu = decode(frame)
            if pdu.is_response:
                pdus.append(pdu)
        return pdus


class FakeSelfTests(LinkTestCase):
    """The fake really catches what the connector tests say did not happen."""

    @inlineCallbacks
    def raw_client(self, fake: FakeLinkSmpp) -> Any:
        client = _RawClient()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", fake.port)
        yield connectProtocol(endpoint, client)
        self.addCleanup(lambda: client.transport.loseConnection())
        bind = p.BindTransceiver(system_id="link", password="secret", sequence=1)
        client.transport.write(encode(bind))
        yield wait_for(lambda: client.responses())
        return client

    @inlineCallbacks
    def test_a_second_outstanding_submit_is_a_window_violation(self) -> Any:
        fake = self.make_fake()
        client = yield self.raw_client(fake)
        pipelined = b"".join(
            encode(p.SubmitSm(source_addr="A", destination_addr="4790000000", sequence=n))
            for n in (2, 3)
        )
        client.transport.write(pipelined)
        yield wait_for(lambda: len(client.responses()) == 3)
        statuses = {r.sequence: r.status for r in client.responses()}
        self.assertEqual((statuses[2], statuses[3]), (S.ESME_ROK, S.ESME_RTHROTTLED))
        self.assertEqual(fake.violations["window"], 1)

    @inlineCallbacks
    def test_submits_over_the_rate_are_throttled_and_counted(self) -> Any:
        fake = self.make_fake(rate=5.0, burst=2.0)
        client = yield self.raw_client(fake)
        for n in range(2, 6):
            submit = p.SubmitSm(source_addr="A", destination_addr="4790000000", sequence=n)
            client.transport.write(encode(submit))
            yield wait_for(lambda n=n: len(client.responses()) == n)
        statuses = [r.status for r in client.responses()[1:]]
        self.assertEqual(statuses, [S.ESME_ROK, S.ESME_ROK, S.ESME_RTHROTTLED, S.ESME_RTHROTTLED])
        self.assertEqual(fake.violations["rate"], 2)


def test_the_fake_runs_as_a_process(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_linksmpp", "--ca-out", str(ca), "--rate", "7"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().decode().split()[-1])
        control = int(proc.stdout.readline().decode().split()[-1])
        assert port > 0
        assert ca.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        url = f"http://127.0.0.1:{control}/_control"
        with urllib.request.urlopen(url, timeout=5) as response:
            stats = json.loads(response.read())
        assert (stats["port"], stats["rate"], stats["submits"]) == (port, 7.0, 0)
        command = json.dumps({"rate": 20, "throttle_next": 2, "rules": {"+4790": ["UNDELIV", 1]}})
        request = urllib.request.Request(url, data=command.encode())
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["rate"] == 20.0
        bad = urllib.request.Request(url, data=b'{"id_style": "roman"}')
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(bad, timeout=5)
        assert info.value.code == 400
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- the whole path: ESME -> gateway -> fake LINK, as processes --------------------------

UPSTREAM_ACCOUNTS = account_toml(
    "upstream", "pw", "link", accept="upstream", mo_numbers=["2233"]
) + account_toml("stored", "pw", "link", mo_numbers=["2234"])


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, FakeLinkSmppProcess]]:
    directory = tmp_path_factory.mktemp("linksmpp-upstream")
    smpp_port, http_port = free_port(), free_port()
    with FakeLinkSmppProcess(directory) as link:
        path = gateway_config(
            directory,
            smpp_port=smpp_port,
            http_port=http_port,
            common_url=None,
            accounts=UPSTREAM_ACCOUNTS,
            connector_extra=link.connector_toml(),
        )
        with GatewayProcess(path, smpp_port, http_port) as gateway:
            wait_for_link_up(gateway)
            yield gateway, link


def mo_answers(link: FakeLinkSmppProcess, destination: str, timeout: float = 10.0) -> list[int]:
    """The statuses the gateway answered the MO deliver_sm to `destination` with,
    once it has taken it (or the first answers, at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        mine = [
            d
            for d in link.get("/_deliveries")
            if d["kind"] == "mo" and d["destination_addr"] == destination
        ]
        if (mine and all(d["acked_at"] is not None for d in mine)) or time.monotonic() > deadline:
            return [status for d in mine for _, status in d["answers"]]
        time.sleep(0.05)


def test_link_refusals_reach_an_upstream_esme_as_links_own_status(
    stack: tuple[GatewayProcess, FakeLinkSmppProcess],
) -> None:
    gateway, link = stack
    refusals = {
        "4790000101": S.ESME_RINVDSTADR,
        "4790000102": 3,  # ESME_RINVCMDID; Common's result code 3 would be a throttle
        "4790000103": S.ESME_RINVBNDSTS,
    }
    link.control({"submit_status": refusals})
    try:
        with Esme(gateway.smpp_port) as esme:
            assert esme.bind("upstream", "pw").status == S.ESME_ROK
            answers = {
                destination: esme.request(submit(destination))
                for destination in ("4790000100", *refusals)
            }
    finally:
        link.control({"submit_status": {}})
    assert {d: r.status for d, r in answers.items()} == {
        "4790000100": S.ESME_ROK,
        "4790000101": S.ESME_RINVDSTADR,
        "4790000102": S.ESME_RINVCMDID,
        "4790000103": S.ESME_RSYSERR,
    }
    accepted = answers["4790000100"]
    assert isinstance(accepted, p.SubmitSmResp) and accepted.message_id
    # Each went to LINK once, and LINK's answer is what the ESME got.
    sent = [s for s in link.get("/_submits") if s["destination_addr"] in answers]
    assert sorted((s["destination_addr"], s["status"]) for s in sent) == [
        ("4790000100", S.ESME_ROK),
        ("4790000101", S.ESME_RINVDSTADR),
        ("4790000102", 3),
        ("4790000103", S.ESME_RINVBNDSTS),
    ]


def test_an_mo_no_account_owns_is_answered_as_taken_never_temporarily(
    stack: tuple[GatewayProcess, FakeLinkSmppProcess],
) -> None:
    gateway, link = stack
    unrouted = {"account": "", "outcome": "unrouted"}
    before = metric_value(gateway.metrics(), "smppgw_mo_total", **unrouted)
    link.control({"inject_mo": {"source": "4790000199", "destination": "9999", "text": "nobody"}})
    wait_for_metric(gateway, "smppgw_mo_total", before + 1, account="", outcome="unrouted")
    # One answer, permanent: ESME_RX_T_APPN would make LINK send it again and again.
    assert mo_answers(link, "9999") == [S.ESME_ROK]
    assert metric_value(gateway.metrics(), "smppgw_mo_total", **unrouted) == before + 1


def test_an_mo_an_account_owns_is_stored_then_taken(
    stack: tuple[GatewayProcess, FakeLinkSmppProcess],
) -> None:
    """The counterpart: the same path for a number that is owned."""
    gateway, link = stack
    accepted = {"account": "stored", "outcome": "accepted"}
    before = metric_value(gateway.metrics(), "smppgw_mo_total", **accepted)
    link.control({"inject_mo": {"source": "4790000199", "destination": "2234", "text": "mine"}})
    wait_for_metric(gateway, "smppgw_mo_total", before + 1, account="stored", outcome="accepted")
    assert mo_answers(link, "2234") == [S.ESME_ROK]
    with Esme(gateway.smpp_port) as esme:
        assert esme.bind("stored", "pw", p.BindReceiver).status == S.ESME_ROK
        (mo,) = esme.receipts(1, timeout=10)
    assert (mo.short_message, mo.destination_addr, mo.esm_class) == (b"mine", "2234", 0)
