"""Token buckets: a rate with a burst, so a normal burst is not refused (DESIGN 3.6)."""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    """`rate` tokens per second, holding at most `burst`; rate 0 means unlimited."""

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0) if rate else 0.0
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()

    def take(self, n: float = 1.0) -> bool:
        if not self.rate:
            return True
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def delay(self, n: float = 1.0) -> float:
        """Seconds until `n` tokens are available (0 when they are now)."""
        if not self.rate:
            return 0.0
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        return max(0.0, (n - tokens) / self.rate)
