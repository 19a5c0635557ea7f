"""Takes stored messages to their connectors; retries, expiry, gateway-made receipts.

Only a window of the queue is in memory (gateway/mt/window.py): the rest of a
backlog stays in the store and comes in a page at a time, so a restart loads
nothing at once and memory does not grow with the backlog. A message enters
memory only after it was committed, and leaves it only through a state change
that the store records (sent, or final with a receipt). Nothing accepted is
lost and nothing sent is sent again, short of a crash between LINK's answer
and our commit of it.

Retries back off exponentially per message (connector `retry` settings) until
the message's validity ends; then it gets an EXPIRED/220 receipt (DESIGN 5), in
memory or in the store alike. A message is never retried after LINK gave a
permanent answer: that becomes a REJECTD receipt.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from gateway.config import RetrySettings
from gateway.connectors.base import Connector
from gateway.intake.receipts import EXPIRED_IN_QUEUE, receipts_for
from gateway.metrics import Metrics
from gateway.mt.router import Router
from gateway.mt.window import PAGE, WINDOW, ConnectorQueue, Entry, Window
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
        window: int = WINDOW,
        page: int = PAGE,
    ) -> None:
        self._reactor = reactor
        self._store = store
        self._connectors = connectors
        self._retry = retry
        self._metrics = metrics
        self._on_receipts = on_receipts
        self._batch_delay = batch_delay
        self._router = router
        self._memory = Window(store, connectors, window=window, page=page)
        self._queues = self._memory.queues
        self._pump_call: Any = None
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self._tick_interval = tick
        # Every queued message, in memory or in the store (what max_queue bounds).
        self.queued_by_account: dict[str, int] = {}
        self._inflight = 0
        self._last_sweep = 0.0
        # Messages waiting to be retried, by id: a report may still make them final.
        self._retrying: dict[str, Entry] = {}
        # Messages in a request to LINK right now, by id: a report may overtake its answer.
        self._sending: dict[str, Entry] = {}
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

    def resume(self, backlog: Mapping[tuple[str, str], int]) -> None:
        """What the store held at the last stop, counted by (account, connector):
        it comes into memory page by page, as the connectors take it."""
        for (account, connector), count in backlog.items():
            self.queued_by_account[account] = self.queued_by_account.get(account, 0) + count
            queue = self._queues.get(connector)
            if queue is not None:
                queue.spilled = True

    def enqueue(self, messages: Iterable[Message]) -> None:
        """Messages that are durably stored and waiting for their connector."""
        now = self._reactor.seconds()
        for message in messages:
            self.queued_by_account[message.account] = (
                self.queued_by_account.get(message.account, 0) + 1
            )
            self._memory.offer(message, now)
        self._schedule(self._batch_delay)

    def submit_now(self, message: Message) -> Deferred[SubmitOutcome]:
        """One attempt, for accounts that want LINK's answer in submit_sm_resp."""
        connector = self._connectors[message.connector]
        self._inflight += 1
        # Stored as queued, but never to be sent from the queue: a page must pass over it.
        self._memory.left(message.id)

        def settle(outcomes: list[SubmitOutcome]) -> SubmitOutcome:
            self._inflight -= 1
            outcome = outcomes[0]
            now = self._reactor.seconds()
            if self._router is not None:
                self._router.record(message.connector, outcome.kind is not OutcomeKind.TEMPORARY)
            if outcome.kind is OutcomeKind.ACCEPTED:
                sent = self._store.mark_sent([(message.id, outcome.upstream_id)])
                self._memory.recorded([message.id], sent)
                unwatched(sent, "mark_sent")
                if outcome.upstream_parts:
                    unwatched(
                        self._store.record_parts([(message.id, outcome.upstream_parts)]),
                        "record_parts",
                    )
            else:
                # The ESME gets an error status and will resubmit: this copy is done.
                stat = outcome.rejection.stat if outcome.rejection else "REJECTD"
                err = outcome.rejection.err if outcome.rejection else 0
                finished = self._store.finish([Finish(message.id, stat, err, now)])
                self._memory.recorded([message.id], finished)
                unwatched(finished, "finish")
            self._count(outcome)
            return outcome

        def failed(failure: Any) -> Any:
            # The ESME gets an error; the stored copy stays out of the queue
            # until a restart, as it would without the window.
            self._inflight -= 1
            return failure

        return connector.submit([message]).addCallbacks(settle, failed)

    def discard(self, message_ids: list[str]) -> None:
        """LINK reported these final: a retry still waiting for them, or the
        answer of a request still out, would send them twice.

        This happens when a request timed out on our side after LINK had taken
        it, or when LINK's report overtakes its slow answer.
        """
        for message_id in message_ids:
            entry = self._retrying.pop(message_id, None) or self._sending.get(message_id)
            if entry is not None and not entry.done:
                # The report's transaction made it final: nothing left to record.
                self._done(entry)

    # --- what cancel_sm and replace_sm may reach -------------------------------------

    def find(self, account: str, message_id: str) -> Deferred[list[Message]]:
        """The queued messages `account` knows as `message_id` (for a submit_multi,
        each destination) that are not in a request right now."""
        return self._changeable(self._store.queued_as(account, message_id))

    def find_to(self, account: str, destination: str) -> Deferred[list[Message]]:
        """The queued messages of `account` to `destination`, not in a request now."""
        return self._changeable(self._store.queued_to(account, destination))

    def _changeable(self, read: Deferred[list[Message]]) -> Deferred[list[Message]]:
        return self._memory.changeable(read, self._sending)

    def replace(self, message: Message, before: Message) -> None:
        """A queued message's new content (replace_sm); a new `not_before` moves it."""
        entry = self._memory.held.get(message.id)
        if entry is None:
            if message.not_before < before.not_before:
                # Earlier than the store's reads may look for it now: take it in.
                queue = self._queues.get(message.connector)
                if queue is not None:
                    entry = Entry(message, message.not_before)
                    self._memory.hold(queue, entry, self._reactor.seconds())
                    self._schedule(self._batch_delay)
            return
        old, entry.message = entry.message, message
        if message.not_before != old.not_before:
            self._memory.unready(entry)
            entry.due = message.not_before
            self._memory.delay(entry)
            self._schedule(self._batch_delay)

    def cancel(self, messages: list[Message], finishes: list[Finish]) -> Deferred[list[Receipt]]:
        """Take queued messages out for good (cancel_sm) and record their final state.

        From here on nothing sends them; the Deferred fires once the store has
        the final states, with the receipts it kept.
        """
        for message in messages:
            entry = self._memory.held.get(message.id)
            if entry is not None:
                self._retrying.pop(message.id, None)
                self._done(entry)
                # One in the delayed heap stays there, skipped when it comes due.
                self._memory.unready(entry)
            else:
                self._uncount(message.account)
        write = self._store.finish(finishes)
        self._memory.recorded([m.id for m in messages], write)
        return write

    def depth(self) -> tuple[int, float | None]:
        """(messages queued, submission time of the oldest in memory)."""
        waiting = sum(self.queued_by_account.values())
        return waiting, self._memory.oldest()

    # --- the pump --------------------------------------------------------------

    def _schedule(self, delay: float) -> None:
        if self._stopped:
            return
        if self._pump_call is None or not self._pump_call.active():
            self._pump_call = self._reactor.callLater(delay, self._pump)

    def _tick(self) -> None:
        now = self._reactor.seconds()
        self._memory.come_due(now)
        if not self._stopped:
            for name in self._queues:
                self._memory.read_due(name, now)
        if now - self._last_sweep >= 1.0:
            self._last_sweep = now
            self._sweep_expired(now)
        self._sync_links()
        self._pump()

    def _sweep_expired(self, now: float) -> None:
        """Messages whose validity ended while they waited get their EXPIRED receipt
        now: in memory for a connector that takes nothing (all its requests hang, its
        breaker is open), and in the store wherever they are in the backlog."""
        for name, queue in self._queues.items():
            connector = self._connectors[name]
            if not queue.ready or (connector.capacity > 0 and self._usable(name)):
                continue
            expired = [e for e in queue.ready if e.message.expires_at <= now and not e.done]
            if expired:
                queue.ready = deque(e for e in queue.ready if e.message.expires_at > now)
                for entry in expired:
                    self._retrying.pop(entry.message.id, None)
                self._expire(expired, now)
        if not self._stopped:
            self._memory.read_expired(now).addCallback(self._expire_stored)

    def _expire_stored(self, stale: list[Message]) -> None:
        for message in stale:
            self._uncount(message.account)
            self._metrics.child(self._metrics.expired, message.account).inc()
        if stale:
            self._finish([(m, EXPIRED_IN_QUEUE) for m in stale], self._reactor.seconds())

    def _usable(self, name: str) -> bool:
        breaker = self._router.breaker(name) if self._router is not None else None
        return breaker is None or breaker.usable

    # --- sending ------------------------------------------------------------------

    def _pump(self) -> None:
        # A store refusing for a full disk keeps its last room for the answers of
        # requests already out: a new request's answer might find none.
        if self._stopped or self._store.refusing:
            return
        now = self._reactor.seconds()
        router = self._router
        for name, queue in self._queues.items():
            self._memory.refill(name, self._reactor.seconds, lambda: self._schedule(0))
            ready = queue.ready
            if not ready:
                continue
            breaker = router.breaker(name) if router is not None else None
            if breaker is not None and not breaker.usable:
                self._fail_over(name, queue)
                continue
            connector = self._connectors[name]
            while ready and connector.capacity > 0:
                # Half-open, one batch at a time probes whether the connector is back.
                if breaker is not None and not breaker.allow():
                    break
                size = min(connector.capacity, connector.max_batch, len(ready))
                batch: dict[str, Entry] = {}
                expired: list[Entry] = []
                for _ in range(size):
                    entry = ready.popleft()
                    message = entry.message
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
            if ready:
                paused = connector.paused_for
                if paused > 0:
                    # LINK asked us to wait: pump again when it said, not at the next tick.
                    self._schedule(paused)

    def _fail_over(self, name: str, queue: ConnectorQueue) -> None:
        """Move what waits for a connector whose breaker is open to where the
        router places each message now (its route's other connector, if usable),
        as far as the other connector's window has room.

        Messages whose route has no usable alternative stay and wait.
        """
        router = self._router
        assert router is not None
        moved: dict[str, list[Entry]] = {}
        keep: deque[Entry] = deque()
        for entry in queue.ready:
            message = entry.message
            try:
                choice = router.place(message.account, message.recipient)
            except KeyError:
                choice = None  # an account no longer configured: it waits where it is
            target = self._queues.get(choice.connector) if choice is not None else None
            if (
                choice is None
                or target is None
                or not choice.allowed
                or choice.connector == name
                or target.held + len(moved.get(choice.connector, ())) >= self._memory.size
            ):
                keep.append(entry)
            else:
                moved.setdefault(choice.connector, []).append(entry)
        if not moved:
            return
        queue.ready = keep
        rows = []
        for target_name, entries in moved.items():
            target = self._queues[target_name]
            for entry in entries:
                entry.message = replace(entry.message, connector=target_name)
                rows.append((entry.message.id, target_name))
            target.ready.extend(entries)
            target.held += len(entries)
            queue.held -= len(entries)
            log.info(
                "{count} messages waiting for {connector} go to {target}: its circuit"
                " breaker is {state}",
                count=len(entries),
                connector=name,
                target=target_name,
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

    def _settle(self, outcomes: list[SubmitOutcome], batch: dict[str, Entry]) -> None:
        self._inflight -= 1
        now = self._reactor.seconds()
        if outcomes and self._router is not None and not all(o.throttled for o in outcomes):
            # One request, one verdict: LINK answering at all (even refusing a
            # message) is a working connector; only trouble worth a retry counts,
            # and "too fast" (throttled) is not trouble: it slows the connector down.
            ok = any(outcome.kind is not OutcomeKind.TEMPORARY for outcome in outcomes)
            self._router.record(outcomes[0].message.connector, ok)
        throttled: list[Entry] = []
        sent: list[tuple[str, str | None]] = []
        parts: list[tuple[str, tuple[str, ...]]] = []
        rejected: list[tuple[Message, Any]] = []
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
                assert outcome.rejection is not None
                log.info(
                    "LINK rejected {message_id} of {account}: {description}",
                    message_id=message.id,
                    account=message.account,
                    connector=message.connector,
                    description=outcome.description,
                )
                rejected.append((message, outcome.rejection))
            elif outcome.throttled:
                throttled.append(entry)
            else:
                self._retry_later(entry, now)
        if throttled:
            # Back to the front, in their order, no attempt counted: the connector's
            # pace decides when they go, and their validity still ends them.
            ready = self._queues[throttled[0].message.connector].ready
            for entry in reversed(throttled):
                ready.appendleft(entry)
        if sent:
            written = self._store.mark_sent(sent)
            self._memory.recorded([message_id for message_id, _ in sent], written)
            unwatched(written, "mark_sent")
        if parts:
            unwatched(self._store.record_parts(parts), "record_parts")
        if rejected:
            self._finish(rejected, now)
        self._schedule(0)

    def _retry_later(self, entry: Entry, now: float) -> None:
        message = entry.message
        retry = self._retry[message.connector]
        entry.attempts += 1
        delay = min(retry.initial * retry.factor ** (entry.attempts - 1), retry.maximum)
        # Waiting must not outlive the validity: wait only until then, then expire.
        entry.due = min(now + delay, message.expires_at)
        self._retrying[message.id] = entry
        self._memory.delay(entry)

    def _expire(self, entries: list[Entry], now: float) -> None:
        for entry in entries:
            self._done(entry)
            self._metrics.child(self._metrics.expired, entry.message.account).inc()
        self._finish([(e.message, EXPIRED_IN_QUEUE) for e in entries], now)

    def _finish(self, ends: list[tuple[Message, Any]], now: float) -> None:
        """Record final states the gateway decided, with the receipts they make."""
        finishes = [
            Finish(m.id, end.stat, end.err, now, receipts_for(m, end, now)) for m, end in ends
        ]
        written = self._store.finish(finishes)
        self._memory.recorded([m.id for m, _ in ends], written)
        unwatched(written.addCallback(self._on_receipts), "finish")

    def _done(self, entry: Entry) -> None:
        """The entry leaves memory (the caller records why in the store)."""
        self._memory.release(entry)
        self._uncount(entry.message.account)

    def _uncount(self, account: str) -> None:
        self.queued_by_account[account] = self.queued_by_account.get(account, 1) - 1

    def _count(self, outcome: SubmitOutcome) -> None:
        word = _THROTTLED if outcome.throttled else _WORDS[outcome.kind]
        self._metrics.child(self._metrics.upstream_messages, outcome.message.connector, word).inc()
