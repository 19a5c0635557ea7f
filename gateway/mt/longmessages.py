"""Long messages that arrive in parts: the reassembler (gateway/mt/reassembly.py) at work.

Responsible for carrying out what the sans-IO reassembler decides: storing a
waiting part before its submit_sm_resp, queueing the whole message once the
last part is stored, sending on or refusing what stopped coming once its time
is up, taking the waiting parts back in at a start, and cancel_sm on a part
that waits. It knows no sockets; admission hands it the parts.

What always holds:
- A part is answered ESME_ROK once it is durable, as any message is, and
  never waits for its siblings; accounts with accept = "upstream" too, since
  LINK has nothing to say about a part it will never see alone.
- The whole message is queued only once every part is durable, in one
  transaction that also retires the parts (a crash in between leaves the
  parts waiting, merged again at the next start).
- Every part ends in exactly one of: a member of the whole message, a segment
  of its own, or a REJECTD receipt (err 998 when its siblings did not come in
  time, 924 when the parts cannot make one message).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from gateway.intake.receipts import receipts_for
from gateway.metrics import Metrics
from gateway.mt.dispatcher import Dispatcher
from gateway.mt.reassembly import (
    ERR_INCOMPLETE,
    Group,
    Reassembler,
    Unmergeable,
    fate,
    merge,
)
from gateway.records import Message, Outcome, Receipt
from gateway.smpp.pdu import CommandStatus, MessageState
from gateway.smpp.text import Concat
from gateway.store.base import Finish, Store, StoreFull

log = Logger()
S = CommandStatus


def rejected(err: int) -> Outcome:
    return Outcome("REJECTD", err, True, MessageState.REJECTED)


class LongMessages:
    def __init__(
        self,
        reactor: Any,
        store: Store,
        dispatcher: Dispatcher,
        metrics: Metrics,
        on_receipts: Callable[[list[Receipt]], None],
        new_id: Callable[[str], str],
        *,
        timeout: float = 60.0,
    ) -> None:
        self._reactor = reactor
        self._store = store
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._on_receipts = on_receipts
        self._new_id = new_id
        self.reassembler = Reassembler(timeout)
        self._timer: Any = None

    @property
    def timeout(self) -> float:
        return self.reassembler.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self.reassembler.timeout = seconds
        self._schedule()

    def held(self, account: str) -> int:
        return self.reassembler.held(account)

    def _count(self, account: str, outcome: str, n: int = 1) -> None:
        if n:
            self._metrics.child(self._metrics.parts, account, outcome).inc(n)

    def _gauge(self) -> None:
        self._metrics.parts_waiting.set(self.reassembler.waiting())

    # --- a part arrives --------------------------------------------------------------

    def take(
        self, message: Message, concat: Concat, fits: bool, policy: str, limit: int
    ) -> Deferred[tuple[int, str]] | None:
        """Hold a part for its siblings: fires with the status to answer once it is
        stored, and the outcome `smppgw_submits_total` counts it as. None when it
        goes on as a segment, as without reassembly.

        Each waiting part is in memory until its message is whole, so an account
        may have `limit` of them: beyond, a part that would start a message or
        repeat a number is refused with ESME_RMSGQFUL, which ESMEs retry, and one
        that brings a missing number is taken up to twice `limit`, so that the
        messages already waiting can still complete. A client that never sends
        its last parts cannot take the memory other accounts need.
        """
        now = self._reactor.seconds()
        held = self.reassembler.held(message.account)
        room = 2 * limit if self.reassembler.adds_to(message, concat) else limit
        arrival = self.reassembler.arrive(message, concat, fits, policy, now)
        over = arrival.hold and held >= room
        if over:
            group = self.reassembler.dropped(message.id)
            if group is not None:
                self._merge(group)
            self._count(message.account, "refused")
            arrival = replace(arrival, hold=False, refuse="too many parts waiting")
            refusal = (S.ESME_RMSGQFUL, "queue_full")
        else:
            refusal = (S.ESME_RINVMSGLEN, "refused")
        for group in arrival.closed:
            self._end(group, ERR_INCOMPLETE, "its reference was used again")
        if arrival.release:
            self._release(list(arrival.release))
        if arrival.refuse is not None:
            if not over:
                self._count(message.account, "refused")
            return succeed(refusal)
        if not arrival.hold:
            return None

        def stored(_: None) -> tuple[int, str]:
            self._count(message.account, "held")
            group = self.reassembler.stored(message.id)
            if group is not None:
                self._merge(group)
            else:
                self._schedule()
            self._gauge()
            return S.ESME_ROK, "accepted"

        def failed(failure: Any) -> tuple[int, str]:
            group = self.reassembler.dropped(message.id)
            if group is not None:
                self._merge(group)  # the part was a copy: its siblings are all kept
            if failure.check(StoreFull):
                return S.ESME_RMSGQFUL, "store_full"
            log.failure("could not store a part of {account}", failure, account=message.account)
            return S.ESME_RSYSERR, "error"

        return self._store.hold([message]).addCallbacks(stored, failed)

    # --- what a message becomes ---------------------------------------------------------

    def _merge(self, group: Group) -> None:
        account = group.key[0]
        first = group.parts[min(group.parts)].message
        try:
            whole = merge(group, self._new_id(account))
        except Unmergeable as exc:
            self._end(group, exc.err, str(exc))
            return
        ids = [p.message.id for p in group.members()]

        def assembled(_: None) -> None:
            self._count(account, "merged", len(ids))
            self._dispatcher.enqueue([whole])

        def failed(failure: Any) -> None:
            # The parts are still stored as waiting: the next start merges them.
            log.failure(
                "could not queue the long message {message_id} of {account}",
                failure,
                message_id=first.id,
                account=account,
            )

        self._store.assemble(whole, ids).addCallbacks(assembled, failed)

    def _end(self, group: Group, err: int, why: str) -> None:
        """A message whose parts will not all come: on as segments, or refused."""
        release, refuse = fate(group)
        account = group.key[0]
        if release:
            self._release(release)
        if refuse:
            log.info(
                "refused {count} parts of a long message of {account} to {destination}"
                " (err {err}): {why}",
                count=len(refuse),
                account=account,
                destination=group.key[2],
                err=err,
                why=why,
            )
            self._refuse(refuse, err)
        self._gauge()

    def _release(self, parts: list[Message]) -> None:
        account = parts[0].account

        def released(ids: list[str]) -> None:
            self._count(account, "segments", len(ids))
            kept = set(ids)
            self._dispatcher.enqueue([m for m in parts if m.id in kept])

        self._store.release(parts).addCallbacks(released, self._failed, errbackArgs=(account,))

    def finish(self, parts: list[Message], outcome: Outcome) -> Deferred[list[Receipt]]:
        """Waiting parts made final in `outcome` (refused here, cancelled by the
        ESME), each with the receipt it asked for, handed on for delivery."""
        now = self._reactor.seconds()
        finishes = [
            Finish(m.id, outcome.stat, outcome.err, now, receipts_for(m, outcome, now))
            for m in parts
        ]

        def finished(receipts: list[Receipt]) -> list[Receipt]:
            self._on_receipts(receipts)
            return receipts

        return self._store.finish(finishes).addCallback(finished)

    def _refuse(self, parts: list[Message], err: int) -> None:
        account = parts[0].account
        done = self.finish(parts, rejected(err))
        done.addCallbacks(
            lambda _: self._count(account, "rejected", len(parts)),
            self._failed,
            errbackArgs=(account,),
        )

    def _failed(self, failure: Any, account: str) -> None:
        # What was not written stays waiting in the store; the next start decides again.
        log.failure(
            "could not settle the parts of a long message of {account}", failure, account=account
        )

    # --- time -------------------------------------------------------------------------

    def _schedule(self) -> None:
        due = self.reassembler.next_due()
        if due is None:
            return
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= due:
                return
            self._timer.cancel()
        # A tenth of a second late at most, so that messages due together share a tick.
        self._timer = self._reactor.callLater(
            max(due - self._reactor.seconds(), 0.0) + 0.1, self._tick
        )

    def _tick(self) -> None:
        self._timer = None
        for group in self.reassembler.due(self._reactor.seconds()):
            self._end(group, ERR_INCOMPLETE, "its other parts did not come in time")
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # --- start, cancel -------------------------------------------------------------------

    def restore(self, policy_of: dict[str, str]) -> Deferred[None]:
        """Take the parts that waited at the last stop back in."""

        def restored(messages: list[Message]) -> None:
            complete, closed = self.reassembler.restore(messages, policy_of)
            for group in closed:
                self._end(group, ERR_INCOMPLETE, "its reference was used again")
            for group in complete:
                self._merge(group)
            if messages:
                log.info(
                    "{count} parts of long messages wait for their siblings",
                    count=len(messages),
                )
            self._gauge()
            self._schedule()

        return self._store.held().addCallback(restored)

    def cancel(self, account: str, message_id: str, source: str, destination: str) -> list[Message]:
        """The waiting parts cancel_sm reaches, forgotten here (the caller finishes
        them as cancelled): by the id of any part (from `source`, when given), or
        every message from `source` to `destination`."""
        if message_id:
            group = self.reassembler.take(account, message_id, source)
            groups = [] if group is None else [group]
        elif source and destination:
            groups = self.reassembler.take_to(account, source, destination)
        else:
            groups = []
        self._gauge()
        return [p.message for g in groups for p in g.members()]


__all__ = ["LongMessages", "rejected"]
