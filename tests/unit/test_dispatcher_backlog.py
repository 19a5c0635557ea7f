"""The dispatcher and the receipt deliverer over a real SQLite store: only a window in memory.

The dispatcher runs on a twisted Clock; the store writes on its own thread and
answers on the real reactor, so a test waits for the store with `settled`.
Windows here are small (8 messages, pages of 4) so that a few dozen messages
make a backlog.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from gateway.config import RetrySettings
from gateway.intake.delivery import ReceiptDeliverer
from gateway.metrics import Metrics
from gateway.mt.dispatcher import Dispatcher
from gateway.records import Address, Message, Receipt
from gateway.smpp.pdu import CommandStatus
from gateway.store.base import Backlog, Finish
from gateway.store.sqlite import SqliteStore
from tests.support.receivers import FakeReceiver
from tests.support.records import message, receipt
from tests.support.scripted import TEMPORARY, ScriptedConnector
from tests.support.store_contract import Steps

WINDOW, PAGE = 8, 4
TICK = 0.05


class Rig:
    def __init__(self, path: Path, *, limit: int = 0, manual: bool = False) -> None:
        self.path = path
        self.clock = Clock()
        self.connector = ScriptedConnector(self.clock, limit=limit, manual=manual)
        self.receipts: list[Receipt] = []
        self.store = self._store()
        self.dispatcher = self._dispatcher()
        self.most_held = 0

    def _store(self) -> SqliteStore:
        return SqliteStore(reactor, str(self.path), synchronous="normal", clock=self.clock.seconds)

    def _dispatcher(self) -> Dispatcher:
        return Dispatcher(
            self.clock,
            self.store,
            {"link": self.connector},
            {"link": RetrySettings(initial=1.0, maximum=1.0, factor=1.0)},
            Metrics(),
            self.receipts.extend,
            batch_delay=0.005,
            tick=TICK,
            window=WINDOW,
            page=PAGE,
        )

    def open(self) -> Deferred[Backlog]:
        def opened(backlog: Backlog) -> Backlog:
            self.dispatcher.resume(backlog.messages)
            self.dispatcher.start()
            return backlog

        return self.store.open().addCallback(opened)

    @inlineCallbacks
    def restart(self) -> Steps:
        """A new store and dispatcher over the same file, as after a stop."""
        self.dispatcher.stop()
        yield self.store.close()
        self.store = self._store()
        self.dispatcher = self._dispatcher()
        yield self.open()

    @inlineCallbacks
    def add(self, messages: list[Message]) -> Steps:
        """As the intake does: stored first, then the dispatcher's."""
        yield self.store.add_messages(messages)
        self.dispatcher.enqueue(messages)

    def held(self) -> int:
        return len(self.dispatcher._memory.held)

    def run(self, seconds: float) -> None:
        end = self.clock.seconds() + seconds
        while self.clock.seconds() < end - 1e-9:
            self.clock.advance(min(TICK, end - self.clock.seconds()))
            self.most_held = max(self.most_held, self.held())

    @inlineCallbacks
    def settled(self) -> Steps:
        """Every write handed to the store so far is committed (it fires in order)."""
        yield self.store.heartbeat("settled")

    @inlineCallbacks
    def drain(self, rounds: int = 200) -> Steps:
        """Run until nothing is queued, letting the store's writes land between turns."""
        for _ in range(rounds):
            self.run(TICK)
            yield self.settled()
            if self.dispatcher.depth()[0] == 0:
                return

    def sent_ids(self) -> list[str]:
        return [id_ for _, ids in self.connector.calls for id_ in ids]


def batch(prefix: str, count: int, **overrides: Any) -> list[Message]:
    return [message(f"{prefix}{i:03}", **overrides) for i in range(count)]


class RigTests(TestCase):
    """Each test with a fresh Rig over its own store."""

    timeout = 60

    def setUp(self) -> None:
        self.rig = Rig(Path(self.mktemp()) / "gateway.sqlite")
        return self.rig.open()

    def tearDown(self) -> Deferred[None]:
        self.rig.dispatcher.stop()
        return self.rig.store.close()


class BacklogTests(RigTests):
    @inlineCallbacks
    def test_a_backlog_stays_on_disk_and_drains_in_the_order_it_came(self) -> Steps:
        rig = self.rig
        for start in range(0, 60, 6):
            yield rig.add(batch("m", 60)[start : start + 6])
        rig.run(1.0)
        assert rig.held() == WINDOW and rig.dispatcher.depth()[0] == 60
        rig.connector.limit = 3  # a few at a time, so the window refills many times
        yield rig.drain()
        assert rig.sent_ids() == [m.id for m in batch("m", 60)]
        assert rig.most_held <= WINDOW
        assert rig.dispatcher.depth() == (0, None)
        # Drained: new messages come straight into memory again.
        yield rig.add([message("late")])
        assert rig.held() == 1

    @inlineCallbacks
    def test_after_a_restart_the_backlog_comes_in_page_by_page(self) -> Steps:
        rig = self.rig
        yield rig.add(batch("m", 30))
        yield rig.restart()
        assert rig.held() == 0 and rig.dispatcher.depth()[0] == 30
        rig.connector.limit = 5
        yield rig.drain()
        assert rig.sent_ids() == [m.id for m in batch("m", 30)]
        assert rig.most_held <= WINDOW

    @inlineCallbacks
    def test_new_messages_wait_behind_the_backlog(self) -> Steps:
        rig = self.rig
        yield rig.add(batch("old", 20))
        rig.connector.limit = 2
        rig.run(TICK)
        yield rig.add(batch("new", 5))
        yield rig.drain()
        assert rig.sent_ids() == [m.id for m in batch("old", 20) + batch("new", 5)]

    @inlineCallbacks
    def test_scheduled_messages_hold_no_room_until_their_time(self) -> Steps:
        rig = self.rig
        yield rig.add(batch("later", 20, not_before=100.0))
        yield rig.add(batch("now", 3))
        assert rig.held() == 3
        rig.connector.limit = 100
        yield rig.drain(rounds=10)
        assert rig.sent_ids() == [m.id for m in batch("now", 3)]
        assert rig.held() == 0 and rig.dispatcher.depth()[0] == 20
        rig.run(97.0)
        assert rig.held() == 0
        for _ in range(200):
            rig.run(TICK)
            yield rig.settled()
        sent = rig.sent_ids()[3:]
        assert sent == [m.id for m in batch("later", 20)]
        assert min(t for t, ids in rig.connector.calls[1:]) >= 100.0
        assert rig.most_held <= WINDOW

    @inlineCallbacks
    def test_messages_expire_in_the_store_too(self) -> Steps:
        rig = self.rig
        yield rig.add(batch("m", 20, expires_at=5.0))
        rig.run(1.0)
        assert rig.held() == WINDOW
        rig.run(6.0)
        yield rig.settled()
        # The connector never had room: everything expired, in memory or on disk.
        for _ in range(5):
            rig.run(1.0)
            yield rig.settled()
        assert sorted(r.message_id for r in rig.receipts) == [m.id for m in batch("m", 20)]
        assert {(r.stat, r.err) for r in rig.receipts} == {("EXPIRED", 220)}
        assert rig.dispatcher.depth()[0] == 0 and rig.connector.calls == []
        statuses = yield rig.store.query("shop1", "m019")
        assert [s.stat for s in statuses] == ["EXPIRED"]

    @inlineCallbacks
    def test_retries_and_schedules_keep_their_times(self) -> Steps:
        rig = self.rig
        rig.connector.limit = 10
        rig.connector.script["m"] = [TEMPORARY]
        yield rig.add([message("m"), message("n", not_before=2.0)])
        rig.run(0.5)
        assert rig.sent_ids() == ["m"]
        rig.run(1.0)
        assert rig.sent_ids() == ["m", "m"]
        rig.run(1.0)
        assert rig.connector.times_of("n")[0] >= 2.0


class FindTests(RigTests):
    """cancel_sm and replace_sm reach queued messages wherever they are."""

    @inlineCallbacks
    def cancel(self, messages: list[Message]) -> Steps:
        finishes = [Finish(m.id, "DELETED", 0, self.rig.clock.seconds()) for m in messages]
        yield self.rig.dispatcher.cancel(messages, finishes)

    @inlineCallbacks
    def test_cancelled_messages_in_memory_or_on_disk_are_never_sent(self) -> Steps:
        rig = self.rig
        yield rig.add(batch("m", 20))
        in_memory = yield rig.dispatcher.find("shop1", "m001")
        on_disk = yield rig.dispatcher.find("shop1", "m015")
        assert [m.id for m in in_memory] == ["m001"] and [m.id for m in on_disk] == ["m015"]
        assert "m015" not in rig.dispatcher._memory.held
        yield self.cancel(in_memory + on_disk)
        again = yield rig.dispatcher.find("shop1", "m015")
        assert again == [] and rig.dispatcher.depth()[0] == 18
        rig.connector.limit = 4
        yield rig.drain()
        assert "m001" not in rig.sent_ids() and "m015" not in rig.sent_ids()
        assert len(rig.sent_ids()) == 18
        assert rig.dispatcher.queued_by_account == {"shop1": 0}

    @inlineCallbacks
    def test_find_to_a_destination(self) -> Steps:
        rig = self.rig
        yield rig.add(batch("a", 12) + batch("b", 3, destination=Address("4799999999", 1, 1)))
        found = yield rig.dispatcher.find_to("shop1", "4712345678")
        assert [m.id for m in found] == [m.id for m in batch("a", 12)]
        assert (yield rig.dispatcher.find_to("shop1", "nobody")) == []
        assert (yield rig.dispatcher.find_to("shop2", "4712345678")) == []

    @inlineCallbacks
    def test_a_message_in_a_request_is_not_changeable(self) -> Steps:
        rig = self.rig
        rig.connector.limit = 10
        rig.connector.manual = True
        rig.connector.script["m"] = [TEMPORARY]
        yield rig.add([message("m")])
        rig.run(0.01)
        assert (yield rig.dispatcher.find("shop1", "m")) == []  # LINK may be taking it now
        rig.connector.release()
        # Back from a temporary failure, it waits for its retry and may be cancelled.
        waiting = yield rig.dispatcher.find("shop1", "m")
        assert [m.id for m in waiting] == ["m"]
        yield self.cancel(waiting)
        rig.run(5.0)
        assert len(rig.connector.times_of("m")) == 1
        assert rig.dispatcher.queued_by_account == {"shop1": 0}

    @inlineCallbacks
    def test_a_submit_multi_is_found_by_its_one_id_until_each_destination_is_done(
        self,
    ) -> Steps:
        rig = self.rig
        head, other = message("m1"), message("m2", reply_id="m1")
        yield rig.add([head, other, message("m3")])
        assert [m.id for m in (yield rig.dispatcher.find("shop1", "m1"))] == ["m1", "m2"]
        assert [m.id for m in (yield rig.dispatcher.find("shop1", "m2"))] == ["m2"]
        yield self.cancel([other])
        assert [m.id for m in (yield rig.dispatcher.find("shop1", "m1"))] == ["m1"]

    @inlineCallbacks
    def test_replace_on_disk_moving_earlier_brings_the_message_in(self) -> Steps:
        rig = self.rig
        rig.connector.limit = 10
        yield rig.add([message("m", not_before=500.0)])
        rig.run(1.0)
        (before,) = yield rig.dispatcher.find("shop1", "m")
        after = replace(before, not_before=3.0, body=replace(before.body, text="new"))
        yield rig.store.replace_message(after)
        rig.dispatcher.replace(after, before)
        rig.run(1.0)
        assert rig.sent_ids() == []
        rig.run(2.5)
        assert rig.sent_ids() == ["m"] and 3.0 <= rig.connector.times_of("m")[0] < 3.5
        assert rig.connector.calls and rig.dispatcher._memory.held == {}

    @inlineCallbacks
    def test_replace_in_memory_moving_later_holds_it_back(self) -> Steps:
        rig = self.rig
        yield rig.add([message("m")])
        (before,) = yield rig.dispatcher.find("shop1", "m")
        after = replace(before, not_before=4.0)
        yield rig.store.replace_message(after)
        rig.dispatcher.replace(after, before)
        rig.connector.limit = 10
        rig.run(3.5)
        assert rig.sent_ids() == []
        rig.run(1.0)
        assert rig.sent_ids() == ["m"]


class DelivererTests(TestCase):
    """Receipts nobody is bound for stay in the store, not in memory."""

    timeout = 60

    def setUp(self) -> None:
        self.clock = Clock()
        self.path = str(Path(self.mktemp()) / "gateway.sqlite")
        return self._open()

    @inlineCallbacks
    def _open(self) -> Steps:
        self.store = SqliteStore(reactor, self.path, synchronous="normal", clock=self.clock.seconds)
        backlog = yield self.store.open()
        self.deliverer = ReceiptDeliverer(
            self.clock, self.store, Metrics(), window=WINDOW, page=PAGE
        )
        self.deliverer.resume(backlog.receipts)

    def tearDown(self) -> Deferred[None]:
        return self.store.close()

    def held(self) -> int:
        return sum(len(box.held) for box in self.deliverer._boxes.values())

    @inlineCallbacks
    def store_receipts(self, count: int) -> Steps:
        for start in range(0, count, 5):
            stored = yield self.store.add_receipts(
                [receipt(f"m{n:03}") for n in range(start, min(count, start + 5))]
            )
            self.deliverer.add(stored)

    @inlineCallbacks
    def take_all(self, receiver: FakeReceiver) -> Steps:
        """Acknowledge what comes until nothing does, letting reads and writes land."""
        for _ in range(100):
            while receiver.pending:
                assert self.held() <= WINDOW
                receiver.answer(CommandStatus.ESME_ROK)
            self.clock.advance(0)
            yield deferLater(reactor, 0.005, lambda: None)
            if not receiver.pending and self.deliverer.depth()[0] == 0:
                break

    @inlineCallbacks
    def test_receipts_wait_on_disk_and_come_in_store_order(self) -> Steps:
        yield self.store_receipts(30)
        assert self.held() == WINDOW and self.deliverer.depth()[0] == 30
        receiver = FakeReceiver("rx", self.clock, window=3)
        self.deliverer.attach("shop1", receiver)
        yield self.take_all(receiver)
        assert receiver.ids() == [f"m{n:03}" for n in range(30)]
        assert self.deliverer.depth() == (0, None)

    @inlineCallbacks
    def test_after_a_restart_nothing_is_loaded_until_a_receiver_binds(self) -> Steps:
        yield self.store_receipts(20)
        yield self.store.close()
        yield self._open()
        assert self.held() == 0 and self.deliverer.depth()[0] == 20
        receiver = FakeReceiver("rx", self.clock, window=4)
        self.deliverer.attach("shop1", receiver)
        self.deliverer.pump("shop1")
        yield self.take_all(receiver)
        assert receiver.ids() == [f"m{n:03}" for n in range(20)]
        yield self.store.close()
        yield self._open()
        assert self.deliverer.depth()[0] == 0  # each removal was committed
