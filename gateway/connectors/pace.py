"""How fast a connector may send after its upstream asked it to slow down.

A 429 (or Common's result code 3, "maximum throttling exceeded") is LINK
saying "too fast", not "down": counting it as a failure would open the circuit
breaker and fail a working route over. Instead the connector's request rate is
cut in half (additive-increase/multiplicative-decrease, as TCP does with its
window) and nothing is sent before the answer's Retry-After has passed. After
`recover_every` seconds without another such answer the rate grows by `growth`;
once it is well above what the connector is asked to send, the limit is gone.

Sans-IO: the caller passes the time; `wait` says how long until the next
request may start.

What always holds:

* Never below `floor` requests a second, however often LINK says "slow down".
* Answers to requests that were in flight together halve the rate once, not
  once each (`hold`): they all said the same thing about the same moment.
* Nothing starts before a Retry-After given with a throttling answer has passed
  (at most `max_pause` seconds; `default_pause` when none was given).
"""

from __future__ import annotations

import email.utils
from collections import deque
from typing import Final

# A request rate this many times above the demand no longer limits anything.
_HEADROOM: Final = 2.0


class Pace:
    __slots__ = (
        "_cut_at",
        "_grown_at",
        "_next_at",
        "_paused_until",
        "_sent",
        "_throttled_at",
        "default_pause",
        "floor",
        "growth",
        "hold",
        "max_pause",
        "rate",
        "recover_every",
        "window",
    )

    def __init__(
        self,
        *,
        floor: float = 1.0,
        growth: float = 1.5,
        recover_every: float = 5.0,
        hold: float = 1.0,
        window: float = 2.0,
        default_pause: float = 1.0,
        max_pause: float = 60.0,
    ) -> None:
        self.floor = floor
        self.growth = growth
        self.recover_every = recover_every
        self.hold = hold
        self.window = window
        self.default_pause = default_pause
        self.max_pause = max_pause
        self.rate: float | None = None  # requests a second; None: no limit
        self._sent: deque[float] = deque()  # request starts within `window`
        self._next_at = 0.0
        self._paused_until = 0.0
        self._cut_at = float("-inf")
        self._throttled_at = float("-inf")
        self._grown_at = float("-inf")

    def wait(self, now: float) -> float:
        """Seconds until the next request may start; 0 when it may now."""
        return max(self._paused_until - now, self._next_at - now, 0.0)

    def sent(self, now: float) -> None:
        """A request starts now."""
        sent = self._sent
        sent.append(now)
        while sent[0] < now - self.window:
            sent.popleft()
        if self.rate is not None:
            self._next_at = max(now, self._next_at) + 1.0 / self.rate

    def demand(self, now: float) -> float:
        """Requests a second started over the last `window` seconds."""
        return sum(1 for t in self._sent if t >= now - self.window) / self.window

    def throttled(self, now: float, retry_after: float | None = None) -> None:
        """LINK answered "too fast" (HTTP 429, throttling result code)."""
        self._throttled_at = now
        pause = self.default_pause if retry_after is None else retry_after
        self._paused_until = max(self._paused_until, now + min(max(pause, 0.0), self.max_pause))
        if now - self._cut_at < self.hold:
            return
        self._cut_at = now
        base = self.rate if self.rate is not None else max(self.demand(now), self.floor)
        self.rate = max(base / 2.0, self.floor)

    def answered(self, now: float) -> None:
        """A request was answered without "too fast": the rate may grow back."""
        if self.rate is None:
            return
        if now - max(self._throttled_at, self._grown_at) < self.recover_every:
            return
        self._grown_at = now
        self.rate *= self.growth
        if self.rate >= _HEADROOM * max(self.demand(now), self.floor):
            self.rate = None
            self._next_at = 0.0


def parse_retry_after(value: bytes | str | None, now: float) -> float | None:
    """Seconds a Retry-After field value asks to wait (RFC 9110 section 10.2.3):
    delay-seconds or an HTTP-date, `now` being the wall-clock time. None when
    absent or unreadable; never negative."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text.isascii() and text.isdigit():
        return float(int(text)) if len(text) <= 9 else 1e9
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None  # an HTTP-date is always GMT; one without a zone is not one
    return max(when.timestamp() - now, 0.0)


__all__ = ["Pace", "parse_retry_after"]
