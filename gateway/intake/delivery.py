"""Receipts -> the account's bound receivers, acknowledged one by one.

Receipts wait per account, in the order they were stored, until a receiver or
transceiver of that account is bound; they go to the bound sessions round
robin, each within its own window. A receipt leaves the store only after the
ESME answered its deliver_sm with ESME_ROK. ESME_RX_P_APPN and ESME_RX_R_APPN
are final refusals (SMPP-NOTES section 8) and drop the receipt, counted; any
other error, a timeout or a lost connection puts it back at the front of the
queue after a back-off, so a crashed or slow ESME loses nothing.

Memory holds at most `window` receipts per account; an account nobody binds
for an hour keeps its receipts in the store, not here. Once one finds the
window full, the account "spills" and its receipts are read back from the
store a page at a time (`Store.receipts_after`), while a receiver is bound,
until a short page says none is left there (as the dispatcher does for
messages, gateway/mt/dispatcher.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from gateway.metrics import Metrics
from gateway.records import RECEIPT, Receipt
from gateway.smpp.pdu import CommandStatus
from gateway.store.base import Store
from gateway.store.gone import Gone
from gateway.store.unwatched import unwatched

log = Logger()

_FINAL_REFUSALS = frozenset({CommandStatus.ESME_RX_P_APPN, CommandStatus.ESME_RX_R_APPN})
TIMEOUT = -1
LOST = -2
# Receipts per account in memory, and how many a read of the store brings.
WINDOW = 4096
PAGE = 512


@dataclass(slots=True, eq=False)
class _Box:
    """One account's receipts in memory, and where its reads of the store stand."""

    queue: deque[Receipt] = field(default_factory=deque)
    held: set[int] = field(default_factory=set)  # seqs in memory: queued, out, retrying
    spilled: bool = False  # some wait in the store past `cursor`
    cursor: int = 0
    reading: bool = False


class Receiver(Protocol):
    """A bound RX/TRX session as the deliverer sees it."""

    @property
    def can_deliver(self) -> bool: ...

    def deliver(self, receipt: Receipt) -> Deferred[int]:
        """Send the receipt; fires with the deliver_sm_resp status, TIMEOUT or LOST."""


class ReceiptDeliverer:
    def __init__(
        self,
        reactor: Any,
        store: Store,
        metrics: Metrics,
        *,
        window: int = WINDOW,
        page: int = PAGE,
    ) -> None:
        self._reactor = reactor
        self._store = store
        self._metrics = metrics
        self._window = window
        self._page = min(page, window)
        self._boxes: dict[str, _Box] = {}
        self._receivers: dict[str, list[Receiver]] = {}
        self._turn: dict[str, int] = {}
        # Everything not yet acknowledged, in memory or in the store, by kind, and
        # what of it is out to an ESME right now.
        self._counts: dict[str, int] = {}
        self._out: dict[str, int] = {}
        # Seqs delivered (or dropped) whose removal from the store is not committed:
        # a page read meanwhile still has them.
        self._gone: Gone[int] = Gone()

    def _box(self, account: str) -> _Box:
        box = self._boxes.get(account)
        if box is None:
            box = self._boxes[account] = _Box()
        return box

    def resume(self, backlog: Mapping[tuple[str, str], int]) -> None:
        """What the store held at the last stop, counted by (account, kind)."""
        for (account, kind), count in backlog.items():
            self._counts[kind] = self._counts.get(kind, 0) + count
            self._box(account).spilled = True

    def add(self, receipts: list[Receipt]) -> None:
        """Receipts just stored (with their seq)."""
        touched = set()
        for receipt in receipts:
            self._counts[receipt.kind] = self._counts.get(receipt.kind, 0) + 1
            box = self._box(receipt.account)
            touched.add(receipt.account)
            if receipt.seq in box.held or receipt.seq in self._gone:
                continue  # a page of the store brought it already
            if box.spilled or len(box.held) >= self._window:
                box.spilled = True
                continue
            box.held.add(receipt.seq)
            box.queue.append(receipt)
        for account in touched:
            self.pump(account)

    def attach(self, account: str, receiver: Receiver) -> None:
        self._receivers.setdefault(account, []).append(receiver)
        self.pump(account)

    def detach(self, account: str, receiver: Receiver) -> None:
        receivers = self._receivers.get(account, [])
        if receiver in receivers:
            receivers.remove(receiver)

    def depth(self, kind: str = RECEIPT) -> tuple[int, float | None]:
        """(items of `kind` waiting, when the oldest of them in memory was made)."""
        waiting = self._counts.get(kind, 0) - self._out.get(kind, 0)
        oldest: float | None = None
        for box in self._boxes.values():
            for item in box.queue:
                if item.kind == kind:
                    if oldest is None or item.done_date < oldest:
                        oldest = item.done_date
                    break  # the queue is in store order: its first is its oldest
        return waiting, oldest

    def pump(self, account: str) -> None:
        box = self._boxes.get(account)
        receivers = self._receivers.get(account)
        if box is None or not receivers:
            return
        if box.spilled and not box.reading and len(box.held) <= self._window - self._page:
            self._refill(account, box)
        queue = box.queue
        count = len(receivers)
        start = self._turn.get(account, 0)
        idle = 0
        index = start
        # Round robin: one receipt per receiver per pass, until all are full or the queue is empty.
        while queue and idle < count:
            receiver = receivers[index % count]
            index += 1
            if not receiver.can_deliver:
                idle += 1
                continue
            idle = 0
            receipt = queue.popleft()
            if receipt.expires_at is not None and receipt.expires_at <= self._reactor.seconds():
                self._expired(receipt)
                continue
            self._out[receipt.kind] = self._out.get(receipt.kind, 0) + 1
            receiver.deliver(receipt).addCallback(self._answered, receipt)
        self._turn[account] = index % count

    def _refill(self, account: str, box: _Box) -> None:
        box.reading = True

        def got(found: list[Receipt]) -> None:
            if len(found) < self._page:
                box.spilled = False
            if found:
                box.cursor = found[-1].seq
            for receipt in found:
                if receipt.seq not in box.held and receipt.seq not in self._gone:
                    box.held.add(receipt.seq)
                    box.queue.append(receipt)

        def failed(failure: Any) -> None:
            log.failure("deliverer: reading receipts from the store failed", failure)

        def ended(_: object) -> None:
            box.reading = False
            if box.queue:
                self._reactor.callLater(0, self.pump, account)

        read = self._store.receipts_after(account, box.cursor, self._page)
        self._gone.reading(read.addCallbacks(got, failed)).addBoth(ended)

    def _done(self, receipt: Receipt) -> None:
        """The receipt leaves memory and the store, its ESME's answer counted."""
        self._counts[receipt.kind] = self._counts.get(receipt.kind, 1) - 1
        box = self._box(receipt.account)
        box.held.discard(receipt.seq)
        done = self._store.receipts_done([receipt.seq])
        self._gone.until([receipt.seq], done)
        unwatched(done, "receipts_done")

    def _answered(self, status: int, receipt: Receipt) -> None:
        m = self._metrics
        self._out[receipt.kind] -= 1
        if status == CommandStatus.ESME_ROK:
            m.child(m.receipt_deliveries, "ok").inc()
            self._done(receipt)
        elif status in _FINAL_REFUSALS:
            m.child(m.receipt_deliveries, "rejected").inc()
            log.warn(
                "{account} refused receipt {message_id} for good (status {status:#x})",
                account=receipt.account,
                message_id=receipt.message_id,
                status=status,
            )
            self._done(receipt)
        else:
            outcome = "timeout" if status == TIMEOUT else "lost" if status == LOST else "retry"
            m.child(m.receipt_deliveries, outcome).inc()
            receipt = replace(receipt, attempts=receipt.attempts + 1)
            if status == LOST:
                # Another bound session (or the next bind) may take it at once.
                self._box(receipt.account).queue.appendleft(receipt)
            else:
                delay = min(2.0**receipt.attempts, 60.0)
                self._reactor.callLater(delay, self._requeue, receipt)
        self.pump(receipt.account)

    def _expired(self, item: Receipt) -> None:
        # An MO nobody took within its ttl: the sender's moment has passed.
        self._metrics.child(self._metrics.receipt_deliveries, "expired").inc()
        log.warn(
            "{kind} {message_id} for {account} expired undelivered",
            kind=item.kind,
            message_id=item.message_id,
            account=item.account,
        )
        self._done(item)

    def _requeue(self, receipt: Receipt) -> None:
        self._box(receipt.account).queue.appendleft(receipt)
        self.pump(receipt.account)
