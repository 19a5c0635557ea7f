"""Test doubles shared by unit tests: a settable clock and a store that records.

Only for tests of the objects above the store (dispatcher, deliverer); the
store itself is always tested on a real SQLite file (tests/support/store_contract.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred, succeed

from gateway.records import Receipt
from gateway.store.base import Finish


class FakeClock:
    """A `() -> float` clock the test moves by setting `now`."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingStore:
    """The store methods the dispatcher and the deliverer call, in memory,
    answering at once, remembering every call."""

    refusing = False

    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None]] = []
        self.finished: list[Finish] = []
        self.parts: list[tuple[str, tuple[str, ...]]] = []
        self.rerouted: list[tuple[str, str]] = []
        self.done: list[int] = []
        self._seq = 0

    def mark_sent(self, sent: list[tuple[str, str | None]]) -> Deferred[None]:
        self.sent.extend(sent)
        return succeed(None)

    def record_parts(self, sent: list[tuple[str, tuple[str, ...]]]) -> Deferred[None]:
        self.parts.extend(sent)
        return succeed(None)

    def reroute(self, moved: list[tuple[str, str]]) -> Deferred[None]:
        self.rerouted.extend(moved)
        return succeed(None)

    def finish(self, finishes: list[Finish]) -> Deferred[list[Receipt]]:
        self.finished.extend(finishes)
        stored = []
        for f in finishes:
            for receipt in f.receipts:
                self._seq += 1
                stored.append(replace(receipt, seq=self._seq))
        return succeed(stored)

    # Nothing is on its disk: what the tests hand the dispatcher or the
    # deliverer stays in their memory (tests of the backlog use SQLite).
    def queued(self, connector: str, after: int, limit: int) -> Deferred[list[Any]]:
        return succeed([])

    def queued_due(
        self, connector: str, after: tuple[float, int], upto: float, limit: int
    ) -> Deferred[list[Any]]:
        return succeed([])

    def queued_expired(self, now: float, limit: int) -> Deferred[list[Any]]:
        return succeed([])

    def receipts_after(self, account: str, after: int, limit: int) -> Deferred[list[Receipt]]:
        return succeed([])

    def receipts_done(self, seqs: list[int]) -> Deferred[None]:
        self.done.extend(seqs)
        return succeed(None)
