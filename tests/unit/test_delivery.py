"""gateway.intake.delivery with a Clock: round robin, acknowledgements, back-off, lost sessions."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock

from gateway.intake.delivery import LOST, TIMEOUT, ReceiptDeliverer
from gateway.metrics import Metrics
from gateway.records import MO, Receipt
from gateway.smpp.pdu import CommandStatus
from tests.support import records
from tests.support.doubles import RecordingStore
from tests.support.receivers import FakeReceiver

S = CommandStatus


def receipt(n: int, account: str = "shop1", **overrides: Any) -> Receipt:
    """Receipt m<n> as stored: seq n, made (done_date) at 200 + n."""
    values: dict[str, Any] = dict(
        account=account, submit_date=100.0 + n, done_date=200.0 + n, text="hello", seq=n
    )
    values.update(overrides)
    return records.receipt(f"m{n}", **values)


class Rig:
    def __init__(self) -> None:
        self.clock = Clock()
        self.store = RecordingStore()
        self.deliverer = ReceiptDeliverer(self.clock, self.store, Metrics())

    def receiver(self, name: str, window: int = 10, account: str = "shop1") -> FakeReceiver:
        r = FakeReceiver(name, self.clock, window)
        self.deliverer.attach(account, r)
        return r


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_round_robin_over_two_receivers(rig: Rig) -> None:
    a, b = rig.receiver("a"), rig.receiver("b")
    rig.deliverer.add([receipt(n) for n in range(1, 5)])
    assert a.ids() == ["m1", "m3"]
    assert b.ids() == ["m2", "m4"]
    # The turn carries over to the next receipts.
    rig.deliverer.add([receipt(5)])
    rig.deliverer.add([receipt(6)])
    assert a.ids() == ["m1", "m3", "m5"]
    assert b.ids() == ["m2", "m4", "m6"]


def test_receiver_that_cannot_deliver_is_skipped(rig: Rig) -> None:
    a, b = rig.receiver("a"), rig.receiver("b", window=2)
    a.connected = False
    rig.deliverer.add([receipt(n) for n in range(1, 5)])
    assert a.ids() == []
    assert b.ids() == ["m1", "m2"]
    assert rig.deliverer.depth() == (2, 203.0)
    # A free slot in b's window takes the next waiting receipt, in order.
    b.answer(S.ESME_ROK)
    assert b.ids() == ["m1", "m2", "m3"]
    assert rig.deliverer.depth() == (1, 204.0)


def test_full_windows_hold_receipts_back(rig: Rig) -> None:
    a, b = rig.receiver("a", window=1), rig.receiver("b", window=1)
    rig.deliverer.add([receipt(n) for n in range(1, 6)])
    assert (a.ids(), b.ids()) == (["m1"], ["m2"])
    assert rig.deliverer.depth()[0] == 3
    a.answer(S.ESME_ROK)
    assert a.ids() == ["m1", "m3"]
    assert rig.store.done == [1]


def test_rok_removes_receipt_from_store(rig: Rig) -> None:
    a = rig.receiver("a")
    rig.deliverer.add([receipt(1), receipt(2)])
    assert rig.store.done == []  # nothing leaves the store before the ESME answered
    a.answer(S.ESME_ROK, "m2")
    a.answer(S.ESME_ROK, "m1")
    assert rig.store.done == [2, 1]
    rig.clock.advance(120)
    assert a.ids() == ["m1", "m2"]  # nothing delivered twice


@pytest.mark.parametrize("status", [S.ESME_RX_T_APPN, TIMEOUT, S.ESME_RSYSERR])
def test_temporary_failure_redelivers_after_backoff(rig: Rig, status: int) -> None:
    a = rig.receiver("a")
    rig.deliverer.add([receipt(1)])
    a.answer(status)
    assert rig.store.done == []
    rig.clock.advance(1.99)
    assert a.ids() == ["m1"]  # not before the back-off
    rig.clock.advance(0.01)
    assert a.got == [(0.0, "m1"), (pytest.approx(2.0), "m1")]
    # A second failure waits longer.
    a.answer(status)
    rig.clock.advance(3.99)
    assert len(a.got) == 2
    rig.clock.advance(0.01)
    assert a.got[-1] == (pytest.approx(6.0), "m1")
    a.answer(S.ESME_ROK)
    assert rig.store.done == [1]


def test_backoff_is_capped(rig: Rig) -> None:
    a = rig.receiver("a")
    rig.deliverer.add([receipt(1)])
    waits = []
    for _ in range(8):
        answered_at = rig.clock.seconds()
        a.answer(TIMEOUT)
        while len(a.got) == len(waits) + 1:
            rig.clock.advance(1.0)
        waits.append(a.got[-1][0] - answered_at)
    assert waits == pytest.approx([2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0])


def test_redelivered_receipt_goes_before_newer_ones(rig: Rig) -> None:
    a = rig.receiver("a", window=1)
    rig.deliverer.add([receipt(1), receipt(2)])
    a.answer(S.ESME_RX_T_APPN)  # m1 waits for its back-off; m2 takes the free slot
    assert a.ids() == ["m1", "m2"]
    rig.deliverer.add([receipt(3)])
    rig.clock.advance(2.0)
    a.answer(S.ESME_ROK)
    assert a.ids() == ["m1", "m2", "m1"]


def test_lost_requeues_at_once_to_another_receiver(rig: Rig) -> None:
    a, b = rig.receiver("a"), rig.receiver("b")
    rig.deliverer.add([receipt(1)])
    assert (a.ids(), b.ids()) == (["m1"], [])
    # a's connection drops: the session detaches and reports its outstanding receipts lost.
    a.connected = False
    rig.deliverer.detach("shop1", a)
    a.answer(LOST)
    assert b.got == [(0.0, "m1")]  # no back-off
    assert rig.store.done == []
    b.answer(S.ESME_ROK)
    assert rig.store.done == [1]


def test_lost_with_no_other_receiver_waits_for_the_next_bind(rig: Rig) -> None:
    a = rig.receiver("a")
    rig.deliverer.add([receipt(1), receipt(2)])
    a.connected = False
    rig.deliverer.detach("shop1", a)
    a.answer(LOST, "m2")
    a.answer(LOST, "m1")
    rig.clock.advance(100)
    assert rig.deliverer.depth()[0] == 2
    c = rig.receiver("c")
    assert c.ids() == ["m1", "m2"]


@pytest.mark.parametrize("status", [S.ESME_RX_P_APPN, S.ESME_RX_R_APPN])
def test_final_refusal_drops_receipt(rig: Rig, status: int) -> None:
    a = rig.receiver("a")
    rig.deliverer.add([receipt(1)])
    a.answer(status)
    assert rig.store.done == [1]
    rig.clock.advance(300)
    assert a.ids() == ["m1"]
    assert rig.deliverer.depth() == (0, None)


def test_receipts_wait_for_attach(rig: Rig) -> None:
    rig.deliverer.add([receipt(1), receipt(2)])
    rig.deliverer.add([receipt(3, account="other")])
    rig.clock.advance(60)
    assert rig.deliverer.depth() == (3, 201.0)
    a = rig.receiver("a")
    assert a.ids() == ["m1", "m2"]
    assert rig.deliverer.depth() == (1, 203.0)  # the other account's receipt still waits
    o = rig.receiver("o", account="other")
    assert o.ids() == ["m3"]


def test_receipts_go_only_to_their_own_account(rig: Rig) -> None:
    a = rig.receiver("a", account="shop1")
    b = rig.receiver("b", account="shop2")
    rig.deliverer.add([receipt(1, "shop2"), receipt(2, "shop1"), receipt(3, "shop2")])
    assert a.ids() == ["m2"]
    assert b.ids() == ["m1", "m3"]


def test_detached_receiver_gets_nothing_more(rig: Rig) -> None:
    a, b = rig.receiver("a"), rig.receiver("b")
    rig.deliverer.detach("shop1", a)
    rig.deliverer.detach("shop1", a)  # twice is harmless
    rig.deliverer.add([receipt(n) for n in range(1, 4)])
    assert a.ids() == []
    assert b.ids() == ["m1", "m2", "m3"]


def test_expired_mo_is_dropped_not_delivered() -> None:
    clock = Clock()
    store = RecordingStore()
    metrics = Metrics()
    deliverer = ReceiptDeliverer(clock, store, metrics)  # type: ignore[arg-type]
    stale = receipt(1, kind=MO, expires_at=10.0)
    fresh = receipt(2, kind=MO, expires_at=100.0)
    deliverer.add([stale, fresh, receipt(3)])
    assert deliverer.depth(MO) == (2, 201.0) and deliverer.depth()[0] == 1
    clock.advance(50)
    receiver = FakeReceiver("rx", clock)
    deliverer.attach("shop1", receiver)
    assert receiver.ids() == ["m2", "m3"]
    assert store.done == [1]
    expired = metrics.child(metrics.receipt_deliveries, "expired")
    assert expired._value.get() == 1
