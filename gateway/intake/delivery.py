"""Receipts -> the account's bound receivers, acknowledged one by one.

Receipts wait per account, in the order they were stored, until a receiver or
transceiver of that account is bound; they go to the bound sessions round
robin, each within its own window. A receipt leaves the store only after the
ESME answered its deliver_sm with ESME_ROK. ESME_RX_P_APPN and ESME_RX_R_APPN
are final refusals (SMPP-NOTES section 8) and drop the receipt, counted; any
other error, a timeout or a lost connection puts it back at the front of the
queue after a back-off, so a crashed or slow ESME loses nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from gateway.metrics import Metrics
from gateway.records import RECEIPT, Receipt
from gateway.smpp.pdu import CommandStatus
from gateway.store.base import Store
from gateway.store.unwatched import unwatched

log = Logger()

_FINAL_REFUSALS = frozenset({CommandStatus.ESME_RX_P_APPN, CommandStatus.ESME_RX_R_APPN})
TIMEOUT = -1
LOST = -2


class Receiver(Protocol):
    """A bound RX/TRX session as the deliverer sees it."""

    @property
    def can_deliver(self) -> bool: ...

    def deliver(self, receipt: Receipt) -> Deferred[int]:
        """Send the receipt; fires with the deliver_sm_resp status, TIMEOUT or LOST."""


class ReceiptDeliverer:
    def __init__(self, reactor: Any, store: Store, metrics: Metrics) -> None:
        self._reactor = reactor
        self._store = store
        self._metrics = metrics
        self._queues: dict[str, deque[Receipt]] = {}
        self._receivers: dict[str, list[Receiver]] = {}
        self._turn: dict[str, int] = {}

    def add(self, receipts: list[Receipt]) -> None:
        touched = set()
        for receipt in receipts:
            self._queues.setdefault(receipt.account, deque()).append(receipt)
            touched.add(receipt.account)
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
        """(items of `kind` waiting, when the oldest of them was made)."""
        waiting = 0
        oldest: float | None = None
        for queue in self._queues.values():
            for item in queue:
                if item.kind == kind:
                    waiting += 1
                    if oldest is None or item.done_date < oldest:
                        oldest = item.done_date
        return waiting, oldest

    def pump(self, account: str) -> None:
        queue = self._queues.get(account)
        receivers = self._receivers.get(account)
        if not queue or not receivers:
            return
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
            receiver.deliver(receipt).addCallback(self._answered, receipt)
        self._turn[account] = index % count

    def _answered(self, status: int, receipt: Receipt) -> None:
        m = self._metrics
        if status == CommandStatus.ESME_ROK:
            m.child(m.receipt_deliveries, "ok").inc()
            unwatched(self._store.receipts_done([receipt.seq]), "receipts_done")
        elif status in _FINAL_REFUSALS:
            m.child(m.receipt_deliveries, "rejected").inc()
            log.warn(
                "{account} refused receipt {message_id} for good (status {status:#x})",
                account=receipt.account,
                message_id=receipt.message_id,
                status=status,
            )
            unwatched(self._store.receipts_done([receipt.seq]), "receipts_done")
        else:
            outcome = "timeout" if status == TIMEOUT else "lost" if status == LOST else "retry"
            m.child(m.receipt_deliveries, outcome).inc()
            receipt = replace(receipt, attempts=receipt.attempts + 1)
            if status == LOST:
                # Another bound session (or the next bind) may take it at once.
                self._queues.setdefault(receipt.account, deque()).appendleft(receipt)
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
        unwatched(self._store.receipts_done([item.seq]), "receipts_done")

    def _requeue(self, receipt: Receipt) -> None:
        self._queues.setdefault(receipt.account, deque()).appendleft(receipt)
        self.pump(receipt.account)
