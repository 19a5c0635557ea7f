"""Takes stored messages to their connectors; retries, expiry, gateway-made receipts.

The queue lives in memory and mirrors the store: a message enters it only after
it was committed, and leaves it only through a state change that the store
records (sent, or final with a receipt). After a restart the queue is rebuilt
from the store, so nothing accepted is lost and nothing sent is sent again,
short of a crash between LINK's answer and our commit of it.

Retries back off exponentially per message (connector `retry` settings) until
the message's validity ends; then it gets an EXPIRED/220 receipt (DESIGN 5).
A message is never retried after LINK gave a permanent answer: that becomes a
REJECTD receipt.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from gateway.config import RetrySettings
from gateway.connectors.base import Connector
from gateway.intake.receipts import EXPIRED_IN_QUEUE, receipt_for
from gateway.metrics import Metrics
from gateway.mt.router import Router
from gateway.records import Message, OutcomeKind, Receipt, SubmitOutcome
from gateway.store.base import Finish, Store
from gateway.store.unwatched import unwatched

log = Logger()

_WORDS = {
    OutcomeKind.ACCEPTED: "accepted",
    OutcomeKind.TEMPORARY: "retry",
    OutcomeKind.REJECTED: "rejected",
}
_THROTTLED = "throttled"


@dataclass(slots=True, eq=False)
class _Entry:
    """A queued message and what only the queue knows of it: when to try next,
    how often it was tried, and whether it left the queue for good."""

    message: Message
    due: float
    attempts: int = 0
    done: bool = False


class Dispatcher:
    def __init__(
        self,
        reactor: Any,
        store: Store,
        connectors: Mapping[str, Connector],
        retry: Mapping[str, RetrySettings],
        metrics: Metrics,
        on_receipts: Callable[[list[Receipt]], None],
        *,
        batch_delay: float = 0.005,
        tick: float = 0.25,
        router: Router | None = None,
    ) -> None:
        self._reactor = reactor
        self._store = store
        self._connectors = connectors
        self._retry = retry
        self._metrics = metrics
        self._on_receipts = on_receipts
        self._batch_delay = batch_delay
        self._router = router
        self._ready: dict[str, deque[_Entry]] = {name: deque() for name in connectors}
        self._delayed: list[tuple[float, int, _Entry]] = []
        self._order = itertools.count()
        self._pump_call: Any = None
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self._tick_interval = tick
        self.queued_by_account: dict[str, int] = {}
        self._inflight = 0
        self._last_sweep = 0.0
        # Messages waiting to be retried, by id: a report may still make them final.
        self._retrying: dict[str, _Entry] = {}
        # Messages in a request to LINK right now, by id: a report may overtake its answer.
        self._sending: dict[str, _Entry] = {}
        # Every message queued here and not in a request right now, by id: what
        # cancel_sm and replace_sm may still change.
        self._waiting: dict[str, _Entry] = {}
        # A submit_multi's id -> its other destinations' ids, until each is done:
        # cancel_sm and replace_sm by that id reach them without a scan.
        self._groups: dict[str, set[str]] = {}
        # After stop (shutdown) nothing new goes to LINK: what waits stays in the store.
        self._stopped = False

    # --- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        self._loop.start(self._tick_interval, now=False)

    def stop(self) -> None:
        self._stopped = True
        if self._loop.running:
            self._loop.stop()
        if self._pump_call is not None and self._pump_call.active():
            self._pump_call.cancel()

    @property
    def idle(self) -> bool:
        return self._inflight == 0

    # --- intake ------------------------------------------------------------------

    def enqueue(self, messages: Iterable[Message]) -> None:
        """Messages that are durably stored and waiting for their connector."""
        now = self._reactor.seconds()
        for message in messages:
            entry = _Entry(message, message.not_before)
            self.queued_by_account[message.account] = (
                self.queued_by_account.get(message.account, 0) + 1
            )
            self._waiting[message.id] = entry
            if message.reply_id is not None:
                self._groups.setdefault(message.reply_id, set()).add(message.id)
            if entry.due > now:
                self._delay(entry)
            else:
                self._ready[message.connector].append(entry)
        self._schedule(self._batch_delay)

    def submit_now(self, message: Message) -> Deferred[SubmitOutcome]:
        """One attempt, for accounts that want LINK's answer in submit_sm_resp."""
        connector = self._connectors[message.connector]
        self._inflight += 1

        def settle(outcomes: list[SubmitOutcome]) -> SubmitOutcome:
            self._inflight -= 1
            outcome = outcomes[0]
            now = self._reactor.seconds()
            if self._router is not None:
                self._router.record(message.connector, outcome.kind is not OutcomeKind.TEMPORARY)
            if outcome.kind is OutcomeKind.ACCEPTED:
                unwatched(self._store.mark_sent([(message.id, outcome.upstream_id)]), "mark_sent")
                if outcome.upstream_parts:
                    unwatched(
                        self._store.record_parts([(message.id, outcome.upstream_parts)]),
                        "record_parts",
                    )
            else:
                # The ESME gets an error status and will resubmit: this copy is done.
                stat = outcome.rejection.stat if outcome.rejection else "REJECTD"
                err = outcome.rejection.err if outcome.rejection else 0
                unwatched(self._store.finish([Finish(message.id, stat, err, now, None)]), "finish")
            self._count(outcome)
            return outcome

        return connector.submit([message]).addCallback(settle)

    def discard(self, message_ids: list[str]) -> None:
        """LINK reported these final: a retry still waiting for them, or the
        answer of a request still out, would send them twice.

        This happens when a request timed out on our side after LINK had taken
        it, or when LINK's report overtakes its slow answer.
        """
        for message_id in message_ids:
            entry = self._retrying.pop(message_id, None) or self._sending.get(message_id)
            if entry is not None and not entry.done:
                self._waiting.pop(message_id, None)
                self._done(entry)

    # --- what cancel_sm and replace_sm may reach -------------------------------------

    def waiting(self, message_id: str) -> Message | None:
        """The message if it is still queued here and not in a request right now."""
        entry = self._waiting.get(message_id)
        return entry.message if entry is not None else None

    def waiting_with(self, message_id: str) -> list[Message]:
        """The message an ESME knows by `message_id` and, for a submit_multi, its
        other destinations: those still waiting here."""
        ids = [message_id, *self._groups.get(message_id, ())]
        return [e.message for e in map(self._waiting.get, ids) if e is not None]

    def waiting_of(self, account: str) -> list[Message]:
        return [e.message for e in self._waiting.values() if e.message.account == account]

    def replace(self, message: Message) -> None:
        """A waiting message's new content (replace_sm); a new `not_before` moves it."""
        entry = self._waiting.get(message.id)
        if entry is None:
            return
        old, entry.message = entry.message, message
        if message.not_before != old.not_before:
            self._unready(entry)
            entry.due = message.not_before
            self._delay(entry)
            self._schedule(self._batch_delay)

    def withdraw(self, messages: list[Message]) -> None:
        """Take waiting messages out of the queue for good (cancel_sm).

        The caller records their final state; from here on nothing sends them.
        """
        for message in messages:
            entry = self._waiting.pop(message.id, None)
            if entry is None:
                continue
            self._retrying.pop(message.id, None)
            self._done(entry)
            # One in the delayed heap stays there, skipped when it comes due.
            self._unready(entry)

    def depth(self) -> tuple[int, float | None]:
        """(messages waiting, submission time of the oldest)."""
        waiting = len(self._waiting)
        oldest = [q[0].message.submitted_at for q in self._ready.values() if q]
        oldest += [e.message.submitted_at for _, _, e in self._delayed[:1]]
        return waiting, min(oldest) if oldest else None

    # --- the pump --------------------------------------------------------------

    def _delay(self, entry: _Entry) -> None:
        heapq.heappush(self._delayed, (entry.due, next(self._order), entry))

    def _unready(self, entry: _Entry) -> None:
        queue = self._ready.get(entry.message.connector)
        if not queue:
            return
        # Rare (cancel_sm, replace_sm) enough for a linear scan, by identity.
        for index, queued in enumerate(queue):
            if queued is entry:
                del queue[index]
                return

    def _schedule(self, delay: float) -> None:
        if self._stopped:
            return
        if self._pump_call is None or not self._pump_call.active():
            self._pump_call = self._reactor.callLater(delay, self._pump)

    def _tick(self) -> None:
        now = self._reactor.seconds()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, entry = heapq.heappop(self._delayed)
            # An entry whose time is no longer its own was moved (replace_sm).
            if not entry.done and due == entry.due:
                self._ready[entry.message.connector].append(entry)
        if now - self._last_sweep >= 1.0:
            self._last_sweep = now
            self._sweep_stalled(now)
        self._sync_links()
        self._pump()

    def _sweep_stalled(self, now: float) -> None:
        # A connector that takes nothing (all its requests hang) must not keep messages
        # past their validity: their ESMEs are owed an EXPIRED receipt now.
        for name, queue in self._ready.items():
            if not queue or self._connectors[name].capacity > 0:
                continue
            expired = [e for e in queue if e.message.expires_at <= now and not e.done]
            if expired:
                self._ready[name] = deque(e for e in queue if e.message.expires_at > now)
                for entry in expired:
                    self._retrying.pop(entry.message.id, None)
                    self._waiting.pop(entry.message.id, None)
                self._expire(expired, now)

    def _pump(self) -> None:
        if self._stopped:
            return
        now = self._reactor.seconds()
        router = self._router
        for name, queue in self._ready.items():
            if not queue:
                continue
            breaker = router.breaker(name) if router is not None else None
            if breaker is not None and not breaker.usable:
                self._fail_over(name, queue)
                continue
            connector = self._connectors[name]
            while queue and connector.capacity > 0:
                # Half-open, one batch at a time probes whether the connector is back.
                if breaker is not None and not breaker.allow():
                    break
                size = min(connector.capacity, connector.max_batch, len(queue))
                batch: dict[str, _Entry] = {}
                expired: list[_Entry] = []
                for _ in range(size):
                    entry = queue.popleft()
                    message = entry.message
                    self._waiting.pop(message.id, None)
                    if entry.attempts:
                        self._retrying.pop(message.id, None)
                    if entry.done:
                        continue
                    if message.expires_at <= now:
                        expired.append(entry)
                    else:
                        batch[message.id] = entry
                if expired:
                    self._expire(expired, now)
                if batch:
                    self._sending.update(batch)
                    self._inflight += 1
                    messages = [e.message for e in batch.values()]
                    connector.submit(messages).addCallback(self._settle, batch).addErrback(
                        lambda f: log.failure("dispatcher: outcome handling failed", f)
                    )
            if queue:
                paused = connector.paused_for
                if paused > 0:
                    # LINK asked us to wait: pump again when it said, not at the next tick.
                    self._schedule(paused)

    def _fail_over(self, name: str, queue: deque[_Entry]) -> None:
        """Move what waits for a connector whose breaker is open to where the
        router places each message now (its route's other connector, if usable).

        Messages whose route has no usable alternative stay and wait.
        """
        router = self._router
        assert router is not None
        moved: dict[str, list[_Entry]] = {}
        keep: deque[_Entry] = deque()
        for entry in queue:
            message = entry.message
            try:
                choice = router.place(message.account, message.recipient)
            except KeyError:
                choice = None  # an account no longer configured: it waits where it is
            if (
                choice is None
                or not choice.allowed
                or choice.connector == name
                or choice.connector not in self._ready
            ):
                keep.append(entry)
            else:
                moved.setdefault(choice.connector, []).append(entry)
        if not moved:
            return
        queue.clear()
        queue.extend(keep)
        rows = []
        for target, entries in moved.items():
            for entry in entries:
                entry.message = replace(entry.message, connector=target)
                rows.append((entry.message.id, target))
            self._ready[target].extend(entries)
            log.info(
                "{count} messages waiting for {connector} go to {target}: its circuit"
                " breaker is {state}",
                count=len(entries),
                connector=name,
                target=target,
                state=self._breaker_state(name),
            )
        unwatched(self._store.reroute(rows), "reroute")
        self._schedule(0)

    def _breaker_state(self, name: str) -> str:
        breaker = self._router.breaker(name) if self._router is not None else None
        return breaker.state if breaker is not None else "closed"

    def _sync_links(self) -> None:
        """A link that is not bound is down now, not after five failures."""
        router = self._router
        if router is None:
            return
        for name, connector in self._connectors.items():
            link_up = connector.link_up
            breaker = router.breaker(name)
            if link_up is None or breaker is None:
                continue
            if not link_up and not breaker.forced_down:
                breaker.force_down()
                log.warn("{connector}: link down, its routes fail over", connector=name)
            elif link_up and breaker.forced_down:
                breaker.up()
                log.info("{connector}: link up", connector=name)

    def _settle(self, outcomes: list[SubmitOutcome], batch: dict[str, _Entry]) -> None:
        self._inflight -= 1
        now = self._reactor.seconds()
        if outcomes and self._router is not None and not all(o.throttled for o in outcomes):
            # One request, one verdict: LINK answering at all (even refusing a
            # message) is a working connector; only trouble worth a retry counts,
            # and "too fast" (throttled) is not trouble: it slows the connector down.
            ok = any(outcome.kind is not OutcomeKind.TEMPORARY for outcome in outcomes)
            self._router.record(outcomes[0].message.connector, ok)
        throttled: list[_Entry] = []
        sent: list[tuple[str, str | None]] = []
        parts: list[tuple[str, tuple[str, ...]]] = []
        finishes: list[Finish] = []
        for outcome in outcomes:
            message = outcome.message
            entry = batch[message.id]
            self._sending.pop(message.id, None)
            self._count(outcome)
            if entry.done:
                # LINK reported it final while the request was out: it was taken,
                # whatever this answer says, and must not be sent again.
                continue
            if outcome.kind is OutcomeKind.ACCEPTED:
                self._done(entry)
                sent.append((message.id, outcome.upstream_id))
                if outcome.upstream_parts:
                    parts.append((message.id, outcome.upstream_parts))
            elif outcome.kind is OutcomeKind.REJECTED:
                self._done(entry)
                rejection = outcome.rejection
                assert rejection is not None
                log.info(
                    "LINK rejected {message_id} of {account}: {description}",
                    message_id=message.id,
                    account=message.account,
                    connector=message.connector,
                    description=outcome.description,
                )
                receipt = receipt_for(message, rejection, now)
                finishes.append(Finish(message.id, rejection.stat, rejection.err, now, receipt))
            elif outcome.throttled:
                throttled.append(entry)
            else:
                self._retry_later(entry, now)
        if throttled:
            # Back to the front, in their order, no attempt counted: the connector's
            # pace decides when they go, and their validity still ends them.
            ready = self._ready[throttled[0].message.connector]
            for entry in reversed(throttled):
                self._waiting[entry.message.id] = entry
                ready.appendleft(entry)
        if sent:
            unwatched(self._store.mark_sent(sent), "mark_sent")
        if parts:
            unwatched(self._store.record_parts(parts), "record_parts")
        if finishes:
            unwatched(self._store.finish(finishes).addCallback(self._on_receipts), "finish")
        self._schedule(0)

    def _retry_later(self, entry: _Entry, now: float) -> None:
        message = entry.message
        retry = self._retry[message.connector]
        entry.attempts += 1
        delay = min(retry.initial * retry.factor ** (entry.attempts - 1), retry.maximum)
        # Waiting must not outlive the validity: wait only until then, then expire.
        entry.due = min(now + delay, message.expires_at)
        self._retrying[message.id] = entry
        self._waiting[message.id] = entry
        self._delay(entry)

    def _expire(self, entries: list[_Entry], now: float) -> None:
        finishes = []
        for entry in entries:
            message = entry.message
            self._done(entry)
            self._metrics.child(self._metrics.expired, message.account).inc()
            receipt = receipt_for(message, EXPIRED_IN_QUEUE, now)
            finishes.append(
                Finish(message.id, EXPIRED_IN_QUEUE.stat, EXPIRED_IN_QUEUE.err, now, receipt)
            )
        unwatched(self._store.finish(finishes).addCallback(self._on_receipts), "finish")

    def _done(self, entry: _Entry) -> None:
        entry.done = True
        message = entry.message
        count = self.queued_by_account.get(message.account, 1) - 1
        self.queued_by_account[message.account] = count
        if message.reply_id is not None:
            members = self._groups.get(message.reply_id)
            if members is not None:
                members.discard(message.id)
                if not members:
                    del self._groups[message.reply_id]

    def _count(self, outcome: SubmitOutcome) -> None:
        word = _THROTTLED if outcome.throttled else _WORDS[outcome.kind]
        self._metrics.child(self._metrics.upstream_messages, outcome.message.connector, word).inc()
