"""gateway.mt.dispatcher with a Clock: batches, retries with backoff, expiry, rejections."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest
from twisted.internet.task import Clock

from gateway.config import RetrySettings
from gateway.metrics import Metrics
from gateway.mt.dispatcher import Dispatcher
from gateway.mt.router import CircuitBreaker, Route, Router
from gateway.records import Message, OutcomeKind, Receipt, SubmitOutcome
from tests.support.doubles import RecordingStore
from tests.support.records import message
from tests.support.scripted import ScriptedConnector

ACCEPTED, TEMPORARY, REJECTED = OutcomeKind.ACCEPTED, OutcomeKind.TEMPORARY, OutcomeKind.REJECTED

TICK = 0.05
BATCH_DELAY = 0.005
EPS = 1e-6
STEP = 0.01  # how far Rig.run_until advances the clock at a time


class Rig:
    def __init__(
        self, *, retry: RetrySettings | None = None, start: bool = True, **connector: Any
    ) -> None:
        self.clock = Clock()
        self.store = RecordingStore()
        self.connector = ScriptedConnector(self.clock, **connector)
        self.receipts: list[list[Receipt]] = []
        self.dispatcher = Dispatcher(
            self.clock,
            self.store,
            {"link": self.connector},
            {"link": retry or RetrySettings(initial=1.0, maximum=4.0, factor=2.0)},
            Metrics(),
            self.receipts.append,
            batch_delay=BATCH_DELAY,
            tick=TICK,
        )
        if start:
            self.dispatcher.start()

    def run_until(self, t: float, step: float = STEP) -> None:
        while self.clock.seconds() < t - EPS:
            self.clock.advance(min(step, t - self.clock.seconds()))

    def all_receipts(self) -> list[Receipt]:
        return [r for batch in self.receipts for r in batch]


@pytest.fixture
def rig() -> Rig:
    return Rig()


# --- batching and capacity -------------------------------------------------------


def test_batches_up_to_max_batch_after_batch_delay() -> None:
    rig = Rig(max_batch=3, start=False)
    rig.dispatcher.enqueue([message(f"m{i}") for i in range(7)])
    rig.clock.advance(BATCH_DELAY / 2)
    assert rig.connector.calls == []
    rig.clock.advance(BATCH_DELAY / 2)
    assert rig.connector.calls == [
        (BATCH_DELAY, ["m0", "m1", "m2"]),
        (BATCH_DELAY, ["m3", "m4", "m5"]),
        (BATCH_DELAY, ["m6"]),
    ]
    assert rig.store.sent == [(f"m{i}", f"link-m{i}") for i in range(7)]
    assert rig.store.finished == []
    assert rig.dispatcher.queued_by_account == {"shop1": 0}
    assert rig.dispatcher.idle


def test_capacity_limits_batches_and_refills_when_answers_come() -> None:
    rig = Rig(max_batch=3, limit=5, manual=True, start=False)
    rig.dispatcher.enqueue([message(f"m{i}") for i in range(7)])
    rig.clock.advance(BATCH_DELAY)
    assert rig.connector.sizes() == [3, 2]
    assert not rig.dispatcher.idle
    assert rig.store.sent == []  # nothing is marked sent before LINK answered
    rig.connector.release(0)
    assert rig.store.sent == [("m0", "link-m0"), ("m1", "link-m1"), ("m2", "link-m2")]
    rig.clock.advance(0)
    assert rig.connector.sizes() == [3, 2, 2]
    assert rig.connector.calls[-1][1] == ["m5", "m6"]
    rig.connector.release(0)
    rig.connector.release(0)
    assert rig.dispatcher.idle
    assert [our for our, _ in rig.store.sent] == [f"m{i}" for i in range(7)]


def test_capacity_zero_sends_nothing_until_it_returns() -> None:
    rig = Rig(limit=0)
    rig.dispatcher.enqueue([message("a"), message("b")])
    rig.run_until(3.0)
    assert rig.connector.calls == []
    assert rig.dispatcher.depth() == (2, 0.0)
    rig.connector.limit = 10
    rig.run_until(3.0 + TICK)
    assert rig.connector.sizes() == [2]
    assert rig.connector.calls[0][0] <= 3.0 + TICK + STEP
    assert rig.store.sent == [("a", "link-a"), ("b", "link-b")]
    assert rig.dispatcher.depth() == (0, None)


def test_temporary_is_retried_with_capped_exponential_backoff() -> None:
    rig = Rig(retry=RetrySettings(initial=1.0, maximum=4.0, factor=2.0))
    rig.connector.script["m"] = [TEMPORARY] * 5
    rig.dispatcher.enqueue([message("m")])
    rig.run_until(30.0)
    times = rig.connector.times_of("m")
    assert len(times) == 6  # five temporary failures, then accepted
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, delay in zip(gaps, [1.0, 2.0, 4.0, 4.0, 4.0], strict=True):
        # Never before the back-off; at most one dispatcher tick after it.
        assert delay - EPS <= gap <= delay + TICK + STEP, (gaps, delay)
    assert rig.store.sent == [("m", "link-m")]
    assert rig.store.finished == []
    assert rig.dispatcher.queued_by_account == {"shop1": 0}


def test_message_waits_while_retrying_and_counts_as_queued() -> None:
    rig = Rig(retry=RetrySettings(initial=10.0, maximum=10.0, factor=1.0))
    rig.connector.script["m"] = [TEMPORARY]
    rig.dispatcher.enqueue([message("m")])
    rig.run_until(9.9)
    assert len(rig.connector.calls) == 1
    assert rig.dispatcher.queued_by_account == {"shop1": 1}
    assert rig.dispatcher.depth()[0] == 1
    rig.run_until(10.5)
    assert len(rig.connector.calls) == 2
    assert rig.dispatcher.queued_by_account == {"shop1": 0}


@pytest.mark.parametrize(
    ("registered_delivery", "wants_receipt"), [(1, True), (2, True), (0, False)]
)
def test_validity_ends_while_retrying(registered_delivery: int, wants_receipt: bool) -> None:
    rig = Rig(retry=RetrySettings(initial=1.0, maximum=100.0, factor=2.0))
    rig.connector.script["m"] = [TEMPORARY] * 100
    rig.dispatcher.enqueue([message("m", expires_at=6.0, registered_delivery=registered_delivery)])
    rig.run_until(30.0)
    # Attempts near 0, 1 and 3; the next (near 7) would be after the validity ends.
    times = rig.connector.times_of("m")
    assert len(times) == 3
    assert times[-1] < 6.0
    (finish,) = rig.store.finished
    assert (finish.message_id, finish.stat, finish.err) == ("m", "EXPIRED", 220)
    assert 6.0 - EPS <= finish.done_at <= 6.0 + TICK + STEP
    assert rig.store.sent == []
    assert rig.dispatcher.queued_by_account == {"shop1": 0}
    assert rig.dispatcher.depth() == (0, None)
    if wants_receipt:
        (receipt,) = rig.all_receipts()
        (kept,) = finish.receipts
        assert receipt == replace(kept, seq=1)  # as the store keeps it
        assert (receipt.stat, receipt.err, receipt.dlvrd) == ("EXPIRED", 220, 0)
        assert (receipt.source_addr, receipt.source_ton) == ("4712345678", 1)
        assert (receipt.destination_addr, receipt.dest_ton) == ("SHOP", 5)
        assert receipt.message_id == "m"
        assert receipt.seq == 1
    else:
        assert finish.receipts == ()
        assert rig.all_receipts() == []


def test_expired_before_first_attempt_never_reaches_connector() -> None:
    rig = Rig()
    rig.clock.advance(100.0)
    rig.dispatcher.enqueue([message("old", expires_at=50.0), message("fresh")])
    rig.run_until(101.0)
    assert [ids for _, ids in rig.connector.calls] == [["fresh"]]
    (finish,) = rig.store.finished
    assert (finish.message_id, finish.stat, finish.err) == ("old", "EXPIRED", 220)
    assert [r.message_id for r in rig.all_receipts()] == ["old"]


@pytest.mark.parametrize(
    ("registered_delivery", "wants_receipt"), [(1, True), (2, True), (0, False)]
)
def test_rejected_finishes_with_the_rejection(
    registered_delivery: int, wants_receipt: bool
) -> None:
    rig = Rig()
    rig.connector.script["bad"] = [REJECTED]
    rig.dispatcher.enqueue(
        [message("bad", registered_delivery=registered_delivery), message("good")]
    )
    rig.run_until(20.0)
    assert [ids for _, ids in rig.connector.calls] == [["bad", "good"]]  # never retried
    (finish,) = rig.store.finished
    assert (finish.message_id, finish.stat, finish.err) == ("bad", "REJECTD", 127)
    assert rig.store.sent == [("good", "link-good")]
    receipts = rig.all_receipts()
    if wants_receipt:
        assert [(r.message_id, r.stat, r.err) for r in receipts] == [("bad", "REJECTD", 127)]
    else:
        assert receipts == []
        assert finish.receipts == ()
    assert rig.dispatcher.queued_by_account == {"shop1": 0}


def test_queued_by_account_counts() -> None:
    rig = Rig(manual=True)
    rig.connector.script.update({"b1": [REJECTED], "b2": [TEMPORARY]})
    rig.dispatcher.enqueue([message(f"a{i}", account="A") for i in range(3)])
    rig.dispatcher.enqueue([message("b1", account="B"), message("b2", account="B")])
    assert rig.dispatcher.queued_by_account == {"A": 3, "B": 2}
    rig.clock.advance(BATCH_DELAY)
    # In flight is still queued: the message is not the connector's yet.
    assert rig.dispatcher.queued_by_account == {"A": 3, "B": 2}
    while rig.connector.pending:
        rig.connector.release()
    assert rig.dispatcher.queued_by_account == {"A": 0, "B": 1}
    rig.run_until(2.0)  # b2's retry is accepted
    while rig.connector.pending:
        rig.connector.release()
    assert rig.dispatcher.queued_by_account == {"A": 0, "B": 0}
    assert sorted(our for our, _ in rig.store.sent) == ["a0", "a1", "a2", "b2"]


def test_stop_stops_sending() -> None:
    rig = Rig()
    rig.dispatcher.stop()
    rig.dispatcher.enqueue([message("m")])
    rig.dispatcher.stop()
    rig.run_until(5.0)
    assert rig.connector.calls == []


# --- accept = "upstream" -----------------------------------------------------------


def test_submit_now_accepted_and_rejected() -> None:
    rig = Rig(start=False)
    rig.connector.script["bad"] = [REJECTED]
    good: list[SubmitOutcome] = []
    bad: list[SubmitOutcome] = []
    rig.dispatcher.submit_now(message("good")).addCallback(good.append)
    rig.dispatcher.submit_now(message("bad")).addCallback(bad.append)
    assert good[0].kind == ACCEPTED and bad[0].kind == REJECTED
    assert rig.store.sent == [("good", "link-good")]
    (finish,) = rig.store.finished
    # The ESME hears the rejection in submit_sm_resp: no receipt as well.
    assert (finish.message_id, finish.stat, finish.err, finish.receipts) == (
        "bad",
        "REJECTD",
        127,
        (),
    )
    assert rig.dispatcher.idle


def test_validity_ends_while_connector_has_no_capacity() -> None:
    rig = Rig(limit=0)
    rig.dispatcher.enqueue([message("m", expires_at=2.0)])
    rig.run_until(5.0)
    assert rig.connector.calls == []
    assert [(f.message_id, f.stat, f.err) for f in rig.store.finished] == [("m", "EXPIRED", 220)]
    assert [r.message_id for r in rig.all_receipts()] == ["m"]
    assert rig.dispatcher.queued_by_account == {"shop1": 0}


def test_a_final_report_cancels_a_pending_retry() -> None:
    # The request timed out on our side, but LINK had taken it and reported it final:
    # the retry must not send it a second time.
    rig = Rig(retry=RetrySettings(initial=1.0, maximum=1.0, factor=1.0))
    rig.connector.script["m"] = [TEMPORARY]
    rig.dispatcher.enqueue([message("m")])
    rig.run_until(0.5)
    assert rig.connector.times_of("m") != []
    rig.dispatcher.discard(["m"])
    rig.run_until(5.0)
    assert len(rig.connector.times_of("m")) == 1
    assert rig.store.sent == [] and rig.store.finished == []
    assert rig.dispatcher.queued_by_account == {"shop1": 0}


# --- routes, breakers and failover ---------------------------------------------------


class Routed:
    """Two connectors, "main" and "backup", one route with main first, breakers on both."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.store = RecordingStore()
        self.main = ScriptedConnector(self.clock)
        self.backup = ScriptedConnector(self.clock)
        self.main.name, self.backup.name = "main", "backup"
        self.breakers = {
            "main": CircuitBreaker(self.clock.seconds, failures=2, open_for=30.0),
            "backup": CircuitBreaker(self.clock.seconds, failures=2, open_for=30.0),
        }
        self.router = Router(
            [Route(frozenset(), (), "main", "backup")], {"shop1": "main"}, self.breakers
        )
        retry = RetrySettings(initial=1.0, maximum=1.0, factor=1.0)
        self.dispatcher = Dispatcher(
            self.clock,
            self.store,
            {"main": self.main, "backup": self.backup},
            {"main": retry, "backup": retry},
            Metrics(),
            lambda receipts: None,
            batch_delay=BATCH_DELAY,
            tick=TICK,
            router=self.router,
        )
        self.dispatcher.start()

    def run_until(self, t: float) -> None:
        while self.clock.seconds() < t - EPS:
            self.clock.advance(min(STEP, t - self.clock.seconds()))


def routed_message(id_: str) -> Message:
    return message(id_, connector="main", recipient="+4712345678")


def test_an_open_breaker_sends_waiting_messages_to_the_fallback_and_back() -> None:
    rig = Routed()
    for id_ in ("a", "b"):
        rig.main.script[id_] = [TEMPORARY] * 10
    rig.dispatcher.enqueue([routed_message("a")])
    rig.dispatcher.enqueue([routed_message("b")])
    rig.run_until(3.0)
    # Two failed requests opened main's breaker; the retries went to backup.
    assert rig.breakers["main"].state == "open"
    assert rig.backup.times_of("a") and rig.backup.times_of("b")
    assert {m for m, _ in rig.store.sent} == {"a", "b"}
    assert set(rig.store.rerouted) == {("a", "backup"), ("b", "backup")}
    # While main is open, nothing is tried there; after open_for a probe is.
    rig.dispatcher.enqueue([routed_message("c")])
    rig.run_until(10.0)
    assert not rig.main.times_of("c") and rig.backup.times_of("c")
    rig.run_until(40.0)
    rig.dispatcher.enqueue([routed_message("d")])
    rig.run_until(41.0)
    assert rig.main.times_of("d") and rig.breakers["main"].state == "closed"


def test_a_link_that_is_down_fails_over_at_once() -> None:
    rig = Routed()
    rig.main.link_up = False
    rig.main.limit = 0
    rig.dispatcher.enqueue([routed_message("a")])
    rig.run_until(1.0)
    assert rig.breakers["main"].forced_down
    assert rig.backup.times_of("a") and not rig.main.times_of("a")
    rig.main.link_up = True
    rig.main.limit = 100
    rig.run_until(2.0)
    assert rig.breakers["main"].state == "closed"
    rig.dispatcher.enqueue([routed_message("b")])
    rig.run_until(3.0)
    assert rig.main.times_of("b")


def test_without_a_usable_fallback_messages_wait_for_their_connector() -> None:
    rig = Routed()
    rig.main.link_up = False
    rig.backup.link_up = False
    rig.main.limit = rig.backup.limit = 0
    rig.dispatcher.enqueue([routed_message("a")])
    rig.run_until(2.0)
    assert rig.store.rerouted == [] and rig.dispatcher.depth()[0] == 1
    rig.main.link_up = True
    rig.main.limit = 100
    rig.run_until(3.0)
    assert rig.main.times_of("a") and not rig.backup.times_of("a")
