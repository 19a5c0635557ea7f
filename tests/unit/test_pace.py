"""Pace: a connector's request rate after LINK said "too fast" (HTTP 429)."""

from __future__ import annotations

import email.utils

from hypothesis import given
from hypothesis import strategies as st

from gateway.connectors.pace import Pace, parse_retry_after

NOW = 1_800_000_000.0


def test_unlimited_until_told_to_slow_down() -> None:
    pace = Pace()
    for i in range(100):
        assert pace.wait(NOW) == 0.0
        pace.sent(NOW + i * 0.001)
    assert pace.rate is None


def test_the_first_429_halves_the_rate_that_was_sent_and_pauses_for_retry_after() -> None:
    pace = Pace(window=2.0)
    for i in range(40):  # 20 requests a second over the last two seconds
        pace.sent(NOW + i * 0.05)
    pace.throttled(NOW + 2.0, retry_after=3.0)
    assert pace.rate == 10.0
    assert pace.wait(NOW + 2.0) == 3.0
    assert pace.wait(NOW + 5.0) == 0.0
    pace.sent(NOW + 5.0)
    assert abs(pace.wait(NOW + 5.0) - 0.1) < 1e-6  # then one request each 1/rate


def test_answers_to_requests_in_flight_together_halve_once() -> None:
    pace = Pace(hold=1.0)
    pace.rate = 16.0
    for dt in (0.0, 0.01, 0.02, 0.3):
        pace.throttled(NOW + dt)
    assert pace.rate == 8.0
    pace.throttled(NOW + 1.5)
    assert pace.rate == 4.0


def test_the_rate_grows_back_and_the_limit_goes_once_it_is_well_above_demand() -> None:
    pace = Pace(floor=1.0, growth=2.0, recover_every=5.0)
    pace.rate = 2.0
    pace.throttled(NOW)
    assert pace.rate == 1.0
    pace.answered(NOW + 4.9)
    assert pace.rate == 1.0  # too soon after the 429
    for dt in (3.5, 4.0, 4.5, 5.0):  # 2 requests a second
        pace.sent(NOW + dt)
    pace.answered(NOW + 5.0)
    assert pace.rate == 2.0
    pace.answered(NOW + 7.0)
    assert pace.rate == 2.0  # too soon after growing
    pace.answered(NOW + 10.0)
    assert pace.rate is None  # 4/s against a demand of 0 (the floor, 1/s): no longer a limit
    assert pace.wait(NOW + 10.0) == 0.0


@given(
    st.lists(
        st.tuples(
            st.floats(0.0, 3.0),  # time step
            st.sampled_from(["sent", "throttled", "answered"]),
            st.one_of(st.none(), st.floats(-5.0, 500.0)),  # Retry-After
        ),
        max_size=60,
    )
)
def test_never_below_the_floor_nor_sending_inside_a_pause(
    events: list[tuple[float, str, float | None]],
) -> None:
    pace = Pace(floor=0.5, max_pause=60.0)
    now = NOW
    for step, what, retry_after in events:
        now += step
        if what == "sent":
            pace.sent(now)
        elif what == "answered":
            pace.answered(now)
        else:
            pace.throttled(now, retry_after)
            expected = 1.0 if retry_after is None else min(max(retry_after, 0.0), 60.0)
            assert pace.wait(now) >= expected - 1e-6
            assert pace.wait(now) <= 60.0 + 1.0 / pace.floor + 1e-6
        assert pace.rate is None or pace.rate >= pace.floor
        assert pace.wait(now) >= 0.0


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after(b"120", NOW) == 120.0
    assert parse_retry_after(" 7 ", NOW) == 7.0
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after(date.encode(), NOW) == 30.0
    assert parse_retry_after(email.utils.formatdate(NOW - 30, usegmt=True), NOW) == 0.0
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after(b"soon", NOW) is None
    assert parse_retry_after(b"-5", NOW) is None
    assert parse_retry_after(b"9" * 40, NOW) == 1e9


@given(st.one_of(st.binary(max_size=40), st.text(max_size=40)))
def test_retry_after_never_raises_and_is_never_negative(value: bytes | str) -> None:
    seconds = parse_retry_after(value, NOW)
    assert seconds is None or seconds >= 0.0


@given(st.integers(0, 10**9))
def test_retry_after_delay_seconds_round_trip(seconds: int) -> None:
    assert parse_retry_after(str(seconds).encode(), NOW) == float(seconds)
