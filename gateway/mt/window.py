"""What of the MT queue is in memory, and how the rest comes in from the store.

Per connector, at most `window` messages live in memory (about to go, in a
request, or waiting for a retry); the rest of a backlog stays in the store,
which gives it back in pages in the order it took the messages
(`Store.queued`). A connector's window fills from its new messages while the
store holds none of its queue beyond it; once a message finds the window full,
the connector "spills": new messages stay on disk and the window refills from
the store, a page at a time, until a short page says the disk part is drained.

Scheduled messages come into memory only LOOKAHEAD before their time
(`Store.queued_due`), so a million messages for tomorrow hold no memory and do
not stand in front of today's. Two marks say what came in: `cursor`, the place
the last page of the queue ended at, and `due`, the (not_before, place) up to
which every scheduled message was read. A page of the queue passes over
scheduled messages past `due`; the due reads bring them in their time.

A message that left memory (sent, or final) is still queued in the store
until the write saying so is committed: `left` keeps a page read meanwhile
from bringing it back. The store's pages hold only what it already reported
to its caller (base.py), so whatever a page brings was, or is being, offered
to the window by `Dispatcher.enqueue` too; each id comes in once.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from gateway.records import Message
from gateway.store.base import Queued, Store
from gateway.store.gone import Gone

log = Logger()

# Messages per connector in memory, and how many a read of the store brings.
WINDOW = 4096
PAGE = 512
# Scheduled messages come into memory this long before their time.
LOOKAHEAD = 2.0
# Past every place the store gives: (t, _LAST) is after every message due at t.
_LAST = 2**62
_NEVER = float("-inf")


@dataclass(slots=True, eq=False)
class Entry:
    """A message in memory and what only the queue knows of it: when to try next,
    how often it was tried, and whether it left the queue for good."""

    message: Message
    due: float
    attempts: int = 0
    done: bool = False


@dataclass(slots=True, eq=False)
class ConnectorQueue:
    """One connector's window, and where its reads of the store stand."""

    ready: deque[Entry] = field(default_factory=deque)
    held: int = 0  # its messages in memory: ready, delayed, retrying, in a request
    spilled: bool = False  # some of its queue waits in the store past `cursor`
    cursor: int = 0
    due: tuple[float, int] = (_NEVER, 0)


class Window:
    def __init__(
        self, store: Store, connectors: Iterable[str], *, window: int = WINDOW, page: int = PAGE
    ) -> None:
        self._store = store
        self.size = window
        self.page = min(page, window)
        self.queues: dict[str, ConnectorQueue] = {name: ConnectorQueue() for name in connectors}
        # Every message in memory, by id (in a request or not).
        self.held: dict[str, Entry] = {}
        # (due, order, entry) of those waiting for a time: a schedule or a retry.
        self.delayed: list[tuple[float, int, Entry]] = []
        self._order = itertools.count()
        # Messages that left memory while the store still has them queued.
        self._left: Gone[str] = Gone()

    def left(self, message_id: str) -> None:
        """Stored as queued but never to be sent from the queue (accept=upstream)."""
        self._left.add(message_id)

    def knows(self, message_id: str) -> bool:
        return message_id in self.held or message_id in self._left

    # --- in and out of memory ------------------------------------------------------

    def offer(self, message: Message, now: float) -> None:
        """A message just stored: into memory, or left in the store for a read."""
        queue = self.queues[message.connector]
        if self.knows(message.id):
            return  # a page of the store brought it already
        if message.not_before > 0 and message.not_before > queue.due[0]:
            return  # in the store until shortly before its time
        if queue.spilled or queue.held >= self.size:
            queue.spilled = True
            return
        self.hold(queue, Entry(message, message.not_before), now)

    def hold(self, queue: ConnectorQueue, entry: Entry, now: float) -> None:
        queue.held += 1
        self.held[entry.message.id] = entry
        if entry.due > now:
            self.delay(entry)
        else:
            queue.ready.append(entry)

    def delay(self, entry: Entry) -> None:
        heapq.heappush(self.delayed, (entry.due, next(self._order), entry))

    def come_due(self, now: float) -> None:
        while self.delayed and self.delayed[0][0] <= now:
            due, _, entry = heapq.heappop(self.delayed)
            # An entry whose time is no longer its own was moved (replace_sm).
            if not entry.done and due == entry.due:
                self.queues[entry.message.connector].ready.append(entry)

    def unready(self, entry: Entry) -> None:
        queue = self.queues.get(entry.message.connector)
        if queue is None or not queue.ready:
            return
        # Rare (cancel_sm, replace_sm) enough for a linear scan, by identity.
        for index, queued in enumerate(queue.ready):
            if queued is entry:
                del queue.ready[index]
                return

    def release(self, entry: Entry) -> None:
        """The entry leaves memory for good."""
        entry.done = True
        if self.held.pop(entry.message.id, None) is not None:
            queue = self.queues.get(entry.message.connector)
            if queue is not None:
                queue.held -= 1

    def recorded(self, ids: list[str], write: Deferred[Any]) -> None:
        """`ids` left memory; `write` records it in the store. Until it is
        committed, a page of the store still shows them queued; if it fails, they
        stay out of the queue until a restart, as they would without the window."""
        self._left.until(ids, write)

    def oldest(self) -> float | None:
        """Submission time of the oldest message in memory."""
        oldest = [q.ready[0].message.submitted_at for q in self.queues.values() if q.ready]
        oldest += [e.message.submitted_at for _, _, e in self.delayed[:1]]
        return min(oldest) if oldest else None

    # --- reads of the store ----------------------------------------------------------

    def _reading(self, read: Deferred[Any], queue: ConnectorQueue | None) -> Deferred[Any]:
        def failed(failure: Any) -> None:
            log.failure("dispatcher: reading the queue from the store failed", failure)
            if queue is not None:
                queue.spilled = True  # tried again at the next pump

        return self._left.reading(read.addErrback(failed))

    def _take(self, name: str, queue: ConnectorQueue, found: list[Queued], now: float) -> None:
        for _, message in found:
            # A failover may have moved it since the read began.
            if not self.knows(message.id) and message.connector == name:
                self.hold(queue, Entry(message, message.not_before), now)

    def refill(self, name: str, now: Callable[[], float], then: Callable[[], None]) -> None:
        """The next page of the connector's queue, while it spilled and its window
        has room for a page; `then` once it is in."""
        queue = self.queues[name]
        if not queue.spilled or queue.held > self.size - self.page:
            return

        def got(found: list[Queued]) -> None:
            if len(found) < self.page:
                queue.spilled = False  # drained: new messages come straight in again
            if found:
                queue.cursor = found[-1][0]
            due = queue.due
            # A scheduled message past the due reads' mark is theirs to bring.
            kept = [q for q in found if not q[1].not_before or (q[1].not_before, q[0]) <= due]
            self._take(name, queue, kept, now())
            then()

        read = self._store.queued(name, queue.cursor, self.page)
        self._reading(read.addCallback(got), queue)

    def read_due(self, name: str, now: float) -> None:
        """Scheduled messages whose time comes within LOOKAHEAD, in their order."""
        queue = self.queues[name]
        room = min(self.page, self.size - queue.held)
        if room <= 0:
            return
        upto = now + LOOKAHEAD

        def got(found: list[Queued]) -> None:
            if len(found) < room:
                queue.due = max(queue.due, (upto, _LAST))
            else:
                queue.due = (found[-1][1].not_before, found[-1][0])
            self._take(name, queue, found, now)

        self._reading(self._store.queued_due(name, queue.due, upto, room).addCallback(got), None)

    def read_expired(self, now: float) -> Deferred[list[Message]]:
        """Messages in the store (not in memory) whose validity ended by `now`."""

        def stale(found: list[Message]) -> list[Message]:
            return [m for m in found if not self.knows(m.id)]

        read = self._store.queued_expired(now, self.page).addCallback(stale)
        return self._reading(read, None).addCallback(lambda found: found or [])

    def changeable(
        self, read: Deferred[list[Message]], sending: Container[str]
    ) -> Deferred[list[Message]]:
        """What of a read of queued messages is not in a request right now, with
        memory's content where memory has the message (it may be newer)."""

        def changeable(found: list[Message]) -> list[Message]:
            result = []
            for message in found:
                entry = self.held.get(message.id)
                if entry is not None:
                    if message.id not in sending:
                        result.append(entry.message)
                elif message.id not in self._left:
                    result.append(message)
            return result

        return self._reading(read.addCallback(changeable), None)


__all__ = ["LOOKAHEAD", "PAGE", "WINDOW", "ConnectorQueue", "Entry", "Window"]
