"""A bound RX/TRX session as the receipt deliverer sees it, answered by the test."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from gateway.records import Receipt


class FakeReceiver:
    """A bound RX/TRX session: a window of outstanding deliver_sm the test answers."""

    def __init__(self, name: str, clock: Clock, window: int = 10) -> None:
        self.name = name
        self.clock = clock
        self.window = window
        self.connected = True
        self.pending: list[tuple[Receipt, Deferred[int]]] = []
        self.got: list[tuple[float, str]] = []

    def __repr__(self) -> str:
        return f"<FakeReceiver {self.name}>"

    @property
    def can_deliver(self) -> bool:
        return self.connected and len(self.pending) < self.window

    def deliver(self, receipt: Receipt) -> Deferred[int]:
        assert self.can_deliver, "deliver() called on a receiver that cannot deliver"
        d: Deferred[int] = Deferred()
        self.pending.append((receipt, d))
        self.got.append((self.clock.seconds(), receipt.message_id))
        return d

    def ids(self) -> list[str]:
        return [id_ for _, id_ in self.got]

    def answer(self, status: int, message_id: str | None = None) -> None:
        index = 0
        if message_id is not None:
            index = [r.message_id for r, _ in self.pending].index(message_id)
        _, d = self.pending.pop(index)
        d.callback(status)
