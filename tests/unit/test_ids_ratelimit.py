"""gateway.ids (our message ids, DESIGN 3.3) and gateway.ratelimit (token buckets, 3.6)."""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.ids import IdGenerator, upstream_id_forms
from gateway.ratelimit import TokenBucket
from tests.support.doubles import FakeClock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


# --- ids -------------------------------------------------------------------------


def test_unique_and_increasing_with_a_frozen_clock() -> None:
    ids = IdGenerator(FakeClock(T0))
    values = [ids.next_int() for _ in range(100_000)]
    assert len(set(values)) == len(values)
    assert all(a < b for a, b in itertools.pairwise(values))


def test_borrowing_from_the_next_millisecond_is_paid_back() -> None:
    clock = FakeClock(T0)
    ids = IdGenerator(clock)
    for _ in range(1000):  # ~4 ms worth of ids in one millisecond
        last = ids.next_int()
    clock.now += 0.001  # real time is still behind the borrowed milliseconds
    assert ids.next_int() > last
    clock.now += 1.0
    fresh = ids.next_int()
    # Once the clock is ahead again, ids follow it (counter restarts at 0).
    assert fresh & 0xFF == 0
    assert fresh >> 18 == int(clock.now * 1000) - 1_704_067_200_000


def test_never_decreasing_when_the_clock_goes_back() -> None:
    clock = FakeClock(T0)
    ids = IdGenerator(clock)
    values = []
    for now in [T0, T0 + 0.002, T0 - 5.0, T0 - 5.0, T0 - 3600, T0 + 0.001, T0 + 0.003, T0 + 1]:
        clock.now = now
        values.extend(ids.next_int() for _ in range(300))
    assert all(a < b for a, b in itertools.pairwise(values))


def test_nodes_never_collide() -> None:
    clock = FakeClock(T0)
    a, b = IdGenerator(clock, node=1), IdGenerator(clock, node=2)
    first = {a.next_int() for _ in range(2000)}
    second = {b.next_int() for _ in range(2000)}
    assert not first & second


@pytest.mark.parametrize("node", [-1, 1024])
def test_node_must_fit(node: int) -> None:
    with pytest.raises(ValueError):
        IdGenerator(FakeClock(T0), node=node)


@pytest.mark.parametrize(
    "when",
    [
        datetime(2024, 1, 1, tzinfo=UTC),  # the epoch itself
        datetime(2024, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2093, 1, 1, tzinfo=UTC),  # near the end of the 41-bit millisecond range
        datetime(2020, 1, 1, tzinfo=UTC),  # a clock set before the epoch
    ],
    ids=lambda d: d.isoformat()[:10],
)
@pytest.mark.parametrize("node", [0, 1023])
def test_decimal_form(when: datetime, node: int) -> None:
    ids = IdGenerator(FakeClock(when.timestamp()), node=node)
    for _ in range(600):
        text = ids.next("decimal")
        assert re.fullmatch(r"[1-9][0-9]{0,17}", text), text
        assert int(text) < 2**63  # fits a signed 64-bit column


def test_formats_share_the_sequence() -> None:
    ids = IdGenerator(FakeClock(T0), node=7)
    decimal = int(ids.next("decimal"))
    hex_text = ids.next("hex")
    assert re.fullmatch(r"[1-9a-f][0-9a-f]{0,15}", hex_text), hex_text
    assert int(hex_text, 16) == decimal + 1  # same clock, next counter value
    unknown = ids.next("something-else")  # falls back to decimal
    assert int(unknown) == decimal + 2


def test_hex_form_is_increasing() -> None:
    ids = IdGenerator(FakeClock(T0))
    values = [int(ids.next("hex"), 16) for _ in range(1000)]
    assert all(a < b for a, b in itertools.pairwise(values))


def test_uuid_form() -> None:
    ids = IdGenerator(FakeClock(T0))
    texts = [ids.next("uuid") for _ in range(1000)]
    for text in texts:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text)
        assert str(uuid.UUID(text)) == text
    assert len(set(texts)) == len(texts)
    assert texts == sorted(texts)  # time-ordered, so an account's ids sort by submission


# --- ratelimit -------------------------------------------------------------------


def test_burst_then_refusal() -> None:
    clock = FakeClock(T0)
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    assert bucket.take() is False  # refusing costs nothing and gains nothing
    assert bucket.delay() == pytest.approx(0.1)


def test_refill_over_time() -> None:
    clock = FakeClock(T0)
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    for _ in range(5):
        assert bucket.take()
    clock.now += 0.05
    assert not bucket.take()
    assert bucket.delay() == pytest.approx(0.05)
    clock.now += 0.051  # (a hair over, for float time stamps near 1.7e9)
    assert bucket.take()
    assert not bucket.take()
    clock.now += 0.35  # 3.5 tokens
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_refill_is_capped_at_burst() -> None:
    clock = FakeClock(T0)
    bucket = TokenBucket(rate=100, burst=20, clock=clock)
    clock.now += 3600
    assert sum(bucket.take() for _ in range(100)) == 20


def test_sustained_rate() -> None:
    clock = FakeClock(T0)
    bucket = TokenBucket(rate=50, burst=10, clock=clock)
    accepted = 0
    for _ in range(10_000):  # 10 s in 1 ms steps, trying every millisecond
        clock.now += 0.001
        accepted += bucket.take()
    assert 500 <= accepted <= 510  # rate * seconds, plus at most the burst


def test_take_many_and_delay() -> None:
    clock = FakeClock(T0)
    bucket = TokenBucket(rate=2, burst=4, clock=clock)
    assert bucket.delay(4) == 0.0
    assert bucket.take(3)
    assert not bucket.take(2)
    assert bucket.delay(2) == pytest.approx(0.5)
    clock.now += 0.4
    assert not bucket.take(2)
    clock.now += 0.11
    assert bucket.take(2)


def test_burst_below_one_still_allows_one() -> None:
    clock = FakeClock(T0)
    bucket = TokenBucket(rate=0.5, burst=0, clock=clock)
    assert bucket.take()
    assert not bucket.take()
    clock.now += 2.0
    assert bucket.take()


def test_rate_zero_is_unlimited() -> None:
    clock = FakeClock(T0)
    bucket = TokenBucket(rate=0, burst=0, clock=clock)
    assert all(bucket.take() for _ in range(100_000))
    assert bucket.take(1e9)
    assert bucket.delay(1e9) == 0.0


# --- LINK's ids, however LINK spells them back -------------------------------------


@given(st.integers(min_value=0, max_value=2**64), st.integers(min_value=0, max_value=3))
def test_decimal_and_hex_spellings_of_one_id_share_a_form(n: int, zeros: int) -> None:
    decimal, hexadecimal = str(n), f"{n:x}"
    for one, other in (
        (decimal, "0" * zeros + hexadecimal.upper()),
        (hexadecimal, "0" * zeros + decimal),
        ("0" * zeros + hexadecimal, hexadecimal.upper()),
    ):
        assert set(upstream_id_forms(one)) & set(upstream_id_forms(other))


def test_id_forms() -> None:
    assert upstream_id_forms("00A1B2") == ("a1b2", "41394")
    assert upstream_id_forms("4096") == ("4096", "1000", "16534")
    assert upstream_id_forms("000") == ("0",)
    assert upstream_id_forms("msg-1") == ("msg-1",)
