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
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from gateway.config import RetrySettings
from gateway.connectors.base import ACCEPTED, REJECTED, TEMPORARY, Connector, SubmitOutcome
from gateway.intake import reports as rp
from gateway.mapping import EXPIRED_IN_QUEUE, Outcome
from gateway.metrics import Metrics
from gateway.mt.router import Router
from gateway.store.base import FINAL, QUEUED, Finish, Message, Receipt, Store

log = Logger()


def receipt_for(message: Message, outcome: Outcome, done_at: float) -> Receipt | None:
    """The receipt an ESME asked for, for a final state the gateway decided itself."""
    if not rp.esme_wants(message.registered_delivery, outcome):
        return None
    return Receipt(
        account=message.account,
        message_id=message.reply_id or message.id,
        source_addr=message.dest_addr,
        source_ton=message.dest_ton,
        source_npi=message.dest_npi,
        destination_addr=message.source_addr,
        dest_ton=message.source_ton,
        dest_npi=message.source_npi,
        stat=outcome.stat,
        err=outcome.err,
        sub=1,
        dlvrd=0,
        submit_date=message.submitted_at,
        done_date=done_at,
        text=message.text_head,
    )


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
        self._ready: dict[str, deque[Message]] = {name: deque() for name in connectors}
        self._delayed: list[tuple[float, int, Message]] = []
        self._order = itertools.count()
        self._pump_call: Any = None
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self._tick_interval = tick
        self.queued_by_account: dict[str, int] = {}
        self._inflight = 0
        self._last_sweep = 0.0
        # Messages waiting to be retried, by id: a report may still make them final.
        self._retrying: dict[str, Message] = {}
        # Every message queued here and not in a request right now, by id: what
        # cancel_sm and replace_sm may still change.
        self._waiting: dict[str, Message] = {}
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

    def enqueue(self, messages: list[Message]) -> None:
        """Messages that are durably stored and waiting for their connector."""
        now = self._reactor.seconds()
        for message in messages:
            self.queued_by_account[message.account] = (
                self.queued_by_account.get(message.account, 0) + 1
            )
            self._waiting[message.id] = message
            if message.reply_id is not None:
                self._groups.setdefault(message.reply_id, set()).add(message.id)
            if message.next_attempt_at > now:
                heapq.heappush(self._delayed, (message.next_attempt_at, next(self._order), message))
            else:
                self._ready[message.connector].append(message)
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
                self._router.record(message.connector, outcome.kind != TEMPORARY)
            if outcome.kind == ACCEPTED:
                self._store.mark_sent([(message.id, outcome.upstream_id)])
                if outcome.upstream_parts:
                    self._store.record_parts([(message.id, outcome.upstream_parts)])
            else:
                # The ESME gets an error status and will resubmit: this copy is done.
                stat = outcome.rejection.stat if outcome.rejection else "REJECTD"
                err = outcome.rejection.err if outcome.rejection else 0
                self._store.finish([Finish(message.id, stat, err, now, None)])
            self._count(outcome)
            return outcome

        return connector.submit([message]).addCallback(settle)

    def discard(self, message_ids: list[str]) -> None:
        """LINK reported these final: a retry still waiting for them would send them twice.

        This happens when a request timed out on our side after LINK had taken it.
        """
        for message_id in message_ids:
            message = self._retrying.pop(message_id, None)
            if message is not None and message.state == QUEUED:
                message.state = FINAL
                self._waiting.pop(message_id, None)
                self._done(message)

    def set_router(self, router: Router) -> None:
        """A reload's routes apply from the next pump on."""
        self._router = router

    def reschedule(self, message: Message) -> None:
        """A waiting message's `next_attempt_at` changed (replace_sm): wait for the new one."""
        if message.id not in self._waiting:
            return
        queue = self._ready[message.connector]
        for index, queued in enumerate(queue):
            if queued is message:
                del queue[index]
                break
        heapq.heappush(self._delayed, (message.next_attempt_at, next(self._order), message))
        self._schedule(self._batch_delay)

    def waiting(self, message_id: str) -> Message | None:
        """The message if it is still queued here and not in a request right now."""
        return self._waiting.get(message_id)

    def waiting_with(self, message_id: str) -> list[Message]:
        """The message an ESME knows by `message_id` and, for a submit_multi, its
        other destinations: those still waiting here."""
        ids = [message_id, *self._groups.get(message_id, ())]
        return [m for m in map(self._waiting.get, ids) if m is not None]

    def waiting_of(self, account: str) -> list[Message]:
        return [m for m in self._waiting.values() if m.account == account]

    def withdraw(self, messages: list[Message]) -> None:
        """Take waiting messages out of the queue for good (cancel_sm).

        The caller records their final state; from here on nothing sends them.
        """
        for message in messages:
            if self._waiting.pop(message.id, None) is None:
                continue
            self._retrying.pop(message.id, None)
            message.state = FINAL
            self._done(message)
            queue = self._ready[message.connector]
            # Rare enough for a linear scan; by identity, as dataclass equality
            # would compare every field.
            for index, queued in enumerate(queue):
                if queued is message:
                    del queue[index]
                    break
            # One in the delayed heap stays there, skipped when it comes due.

    def depth(self) -> tuple[int, float | None]:
        """(messages waiting, submission time of the oldest)."""
        waiting = len(self._waiting)
        oldest = [q[0].submitted_at for q in self._ready.values() if q]
        oldest += [m.submitted_at for _, _, m in self._delayed[:1]]
        return waiting, min(oldest) if oldest else None

    # --- the pump --------------------------------------------------------------

    def _schedule(self, delay: float) -> None:
        if self._stopped:
            return
        if self._pump_call is None or not self._pump_call.active():
            self._pump_call = self._reactor.callLater(delay, self._pump)

    def _tick(self) -> None:
        now = self._reactor.seconds()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, message = heapq.heappop(self._delayed)
            # An entry whose time is no longer the message's was replaced by a
            # later one (replace_sm moved the schedule).
            if message.state != FINAL and due == message.next_attempt_at:
                self._ready[message.connector].append(message)
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
            expired = [m for m in queue if m.expires_at <= now and m.state == QUEUED]
            if expired:
                self._ready[name] = deque(m for m in queue if m.expires_at > now)
                for message in expired:
                    self._retrying.pop(message.id, None)
                    self._waiting.pop(message.id, None)
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
                batch: list[Message] = []
                expired: list[Message] = []
                for _ in range(size):
                    message = queue.popleft()
                    self._waiting.pop(message.id, None)
                    if message.attempts:
                        self._retrying.pop(message.id, None)
                    if message.state == FINAL:
                        continue
                    (expired if message.expires_at <= now else batch).append(message)
                if expired:
                    self._expire(expired, now)
                if batch:
                    self._inflight += 1
                    connector.submit(batch).addCallback(self._settle).addErrback(
                        lambda f: log.failure("dispatcher: outcome handling failed", f)
                    )

    def _fail_over(self, name: str, queue: deque[Message]) -> None:
        """Move what waits for a connector whose breaker is open to the other
        connector of each message's route, where that one is usable.

        Messages whose route has no usable alternative stay and wait.
        """
        router = self._router
        assert router is not None
        moved: dict[str, list[Message]] = {}
        keep: deque[Message] = deque()
        for message in queue:
            target = self._alternative(name, message)
            if target is None:
                keep.append(message)
            else:
                moved.setdefault(target, []).append(message)
        if not moved:
            return
        queue.clear()
        queue.extend(keep)
        rows = []
        for target, messages in moved.items():
            for message in messages:
                message.connector = target
                rows.append((message.id, target))
            self._ready[target].extend(messages)
            log.info(
                "{count} messages waiting for {connector} go to {target}: its circuit"
                " breaker is {state}",
                count=len(messages),
                connector=name,
                target=target,
                state=self._breaker_state(name),
            )
        self._store.reroute(rows)
        self._schedule(0)

    def _alternative(self, name: str, message: Message) -> str | None:
        router = self._router
        assert router is not None
        try:
            _, primary, fallback = router.route_for(
                message.account, str(message.fields.get("destination", ""))
            )
        except KeyError:
            return None  # an account no longer configured: it waits where it is
        for candidate in (primary, fallback):
            if candidate is None or candidate == name or candidate not in self._ready:
                continue
            breaker = router.breaker(candidate)
            if breaker is None or breaker.usable:
                return candidate
        return None

    def _breaker_state(self, name: str) -> str:
        breaker = self._router.breaker(name) if self._router is not None else None
        return breaker.state if breaker is not None else "closed"

    def _sync_links(self) -> None:
        """An SMPP link that is not bound is down now, not after five failures."""
        router = self._router
        if router is None:
            return
        for name, connector in self._connectors.items():
            link_up = getattr(connector, "link_up", None)
            breaker = router.breaker(name)
            if link_up is None or breaker is None:
                continue
            if not link_up and not breaker.forced_down:
                breaker.force_down()
                log.warn("{connector}: link down, its routes fail over", connector=name)
            elif link_up and breaker.forced_down:
                breaker.up()
                log.info("{connector}: link up", connector=name)

    def _settle(self, outcomes: list[SubmitOutcome]) -> None:
        self._inflight -= 1
        now = self._reactor.seconds()
        if outcomes and self._router is not None:
            # One request, one verdict: LINK answering at all (even refusing a
            # message) is a working connector; only trouble worth a retry counts.
            ok = any(outcome.kind != TEMPORARY for outcome in outcomes)
            self._router.record(outcomes[0].message.connector, ok)
        sent: list[tuple[str, str | None]] = []
        parts: list[tuple[str, tuple[str, ...]]] = []
        finishes: list[Finish] = []
        for outcome in outcomes:
            message = outcome.message
            self._count(outcome)
            if outcome.kind == ACCEPTED:
                self._done(message)
                sent.append((message.id, outcome.upstream_id))
                if outcome.upstream_parts:
                    parts.append((message.id, outcome.upstream_parts))
            elif outcome.kind == REJECTED:
                self._done(message)
                rejection = outcome.rejection
                assert rejection is not None
                log.info(
                    "LINK rejected {message_id} of {account}: {code} {description}",
                    message_id=message.id,
                    account=message.account,
                    connector=message.connector,
                    code=outcome.code,
                    description=outcome.description,
                )
                finishes.append(
                    Finish(
                        message.id,
                        rejection.stat,
                        rejection.err,
                        now,
                        receipt_for(message, rejection, now),
                    )
                )
            else:
                self._retry_later(message, now, finishes)
        if sent:
            self._store.mark_sent(sent)
        if parts:
            self._store.record_parts(parts)
        if finishes:
            self._store.finish(finishes).addCallback(self._on_receipts)
        self._schedule(0)

    def _retry_later(self, message: Message, now: float, finishes: list[Finish]) -> None:
        retry = self._retry[message.connector]
        message.attempts += 1
        delay = min(retry.initial * retry.factor ** (message.attempts - 1), retry.maximum)
        message.next_attempt_at = now + delay
        if message.next_attempt_at >= message.expires_at:
            # Waiting would outlive the validity: wait only until then, then expire.
            message.next_attempt_at = message.expires_at
        self._retrying[message.id] = message
        self._waiting[message.id] = message
        heapq.heappush(self._delayed, (message.next_attempt_at, next(self._order), message))

    def _expire(self, messages: list[Message], now: float) -> None:
        finishes = []
        for message in messages:
            self._done(message)
            self._metrics.child(self._metrics.expired, message.account).inc()
            finishes.append(
                Finish(
                    message.id,
                    EXPIRED_IN_QUEUE.stat,
                    EXPIRED_IN_QUEUE.err,
                    now,
                    receipt_for(message, EXPIRED_IN_QUEUE, now),
                )
            )
        self._store.finish(finishes).addCallback(self._on_receipts)

    def _done(self, message: Message) -> None:
        count = self.queued_by_account.get(message.account, 1) - 1
        self.queued_by_account[message.account] = count
        if message.reply_id is not None:
            members = self._groups.get(message.reply_id)
            if members is not None:
                members.discard(message.id)
                if not members:
                    del self._groups[message.reply_id]

    def _count(self, outcome: SubmitOutcome) -> None:
        word = {ACCEPTED: "accepted", TEMPORARY: "retry", REJECTED: "rejected"}[outcome.kind]
        self._metrics.child(self._metrics.upstream_messages, outcome.message.connector, word).inc()
