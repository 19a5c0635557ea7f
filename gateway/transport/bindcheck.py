"""Password checks for binds: bounded, shared between equal binds, remembered.

A check is scrypt (gateway/passwords.py): about 60 ms of CPU and 16 MiB of
memory, on purpose. Run once per bind without limits, a storm of binds (an
attacker's, or a good ESME reconnecting in a loop) takes the CPU from every
other session and the memory with it. So:

* At most `concurrency` checks run at once, in threads off the reactor; at
  most `queue` more wait their turn. A bind beyond both is answered at once
  (`check` returns None) and costs no scrypt.
* Binds that present the same password octets for the same stored hash from
  the same address while a check for them runs or waits share that check.
* A password verified from an address is remembered there for `cache_for`
  seconds: the next bind from that address with the same octets for the same
  stored hash is accepted without scrypt. What is kept is an HMAC of the
  octets under a key made at start, never the password. A changed hash (a
  reload with a new password) matches nothing remembered.
* A waiting check runs no scrypt if, when its turn comes, none of the binds
  sharing it is still wanted (the client left, or its address was locked out
  in the meantime); those binds get None.

Nothing here knows SMPP: the server decides what each outcome answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from gateway.passwords import verify_password

# Runs verify_password(octets, stored) somewhere that is not the reactor thread.
Runner = Callable[[Callable[[bytes, str], bool], bytes, str], "Deferred[bool]"]
Wanted = Callable[[], bool]

_MAX_REMEMBERED = 10_000


def decoy_hash() -> str:
    """A stored hash that no password matches, with the real cost parameters.

    Checking an unknown system_id's bind against it costs what checking a known
    one costs, so the answer's timing does not tell which system_ids exist.
    Made from random octets without running scrypt.
    """
    salt = base64.b64encode(os.urandom(16)).decode()
    digest = base64.b64encode(os.urandom(32)).decode()
    return f"scrypt$14$8$1${salt}${digest}"


class _Job:
    __slots__ = ("octets", "stored", "waiters")

    def __init__(self, octets: bytes, stored: str) -> None:
        self.octets = octets
        self.stored = stored
        self.waiters: list[tuple[Deferred[bool | None], Wanted]] = []


class PasswordChecks:
    def __init__(
        self,
        clock: Any,
        run: Runner,
        *,
        concurrency: int,
        queue: int,
        cache_for: float,
        on_outcome: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        """`on_outcome` hears of each bind: checked, shared, cached, busy, skipped."""
        self._clock = clock
        self._on_outcome = on_outcome
        self._run = run
        self.concurrency = concurrency
        self.queue = queue
        self.cache_for = cache_for
        self.decoy = decoy_hash()
        self._key = os.urandom(32)
        self._running = 0
        self._waiting: deque[tuple[tuple[str, str, bytes], _Job]] = deque()
        self._jobs: dict[tuple[str, str, bytes], _Job] = {}
        # (address, stored hash) -> (HMAC of the octets, valid until)
        self._verified: dict[tuple[str, str], tuple[bytes, float]] = {}

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def check(
        self, address: str, octets: bytes, stored: str, wanted: Wanted
    ) -> Deferred[bool | None] | None:
        """Whether `octets` match `stored`: fires True or False, or None for a bind
        no longer wanted when its turn came; None at once when too busy to check."""
        mac = hmac.new(self._key, octets, hashlib.sha256).digest()
        now = self._clock.seconds()
        remembered = self._verified.get((address, stored))
        if remembered is not None:
            if remembered[1] > now and hmac.compare_digest(remembered[0], mac):
                self._on_outcome("cached")
                return succeed(True)
            if remembered[1] <= now:
                del self._verified[(address, stored)]
        key = (address, stored, mac)
        d: Deferred[bool | None] = Deferred()
        job = self._jobs.get(key)
        if job is not None:
            job.waiters.append((d, wanted))
            self._on_outcome("shared")
            return d
        if self._running >= self.concurrency and len(self._waiting) >= self.queue:
            self._on_outcome("busy")
            return None
        job = self._jobs[key] = _Job(octets, stored)
        job.waiters.append((d, wanted))
        if self._running < self.concurrency:
            self._start(key, job)
        else:
            self._waiting.append((key, job))
        return d

    def _start(self, key: tuple[str, str, bytes], job: _Job) -> None:
        if not any(wanted() for _, wanted in job.waiters):
            del self._jobs[key]
            for d, _ in job.waiters:
                d.callback(None)
            self._on_outcome("skipped")
            return
        self._on_outcome("checked")
        self._running += 1
        self._run(verify_password, job.octets, job.stored).addBoth(self._done, key, job)

    def _done(self, result: bool | Failure, key: tuple[str, str, bytes], job: _Job) -> None:
        self._running -= 1
        del self._jobs[key]
        if result is True and self.cache_for > 0:
            self._remember(key, self._clock.seconds())
        for d, _ in job.waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(bool(result))
        self._next()

    def _next(self) -> None:
        while self._waiting and self._running < self.concurrency:
            key, job = self._waiting.popleft()
            self._start(key, job)

    def _remember(self, key: tuple[str, str, bytes], now: float) -> None:
        address, stored, mac = key
        verified = self._verified
        verified.pop((address, stored), None)
        verified[(address, stored)] = (mac, now + self.cache_for)
        if len(verified) > _MAX_REMEMBERED:
            for old in [k for k, (_, until) in verified.items() if until <= now]:
                del verified[old]
            while len(verified) > _MAX_REMEMBERED:
                del verified[next(iter(verified))]


__all__ = ["PasswordChecks", "Runner", "decoy_hash"]
