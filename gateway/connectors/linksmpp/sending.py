"""The LINK SMPP route's send queue: window, rate, throttling, segments, outcomes.

Messages wait in a small queue of the connector's own; submit_sm goes out with
at most `window` outstanding and at most `rate` a second (token bucket with
`burst`). A message is one or more segments; it is ACCEPTED once LINK accepted
every segment, reported with the first segment's id as `upstream_id` and all of
them (one for a message of one segment) as `upstream_parts`.

What always holds:
- Every message given to `submit` gets exactly one outcome, and the Deferred
  `submit` returns never fails.
- ESME_RTHROTTLED / ESME_RMSGQFUL fail nothing: the segment goes back to the
  front of the queue and sending pauses for `throttle_backoff`, doubling on
  each further refusal up to `throttle_backoff_max`, back to the start after
  the next acceptance.
- A segment LINK accepted is never sent again by this process: when a later
  segment of the same message meets trouble, the message is TEMPORARY and the
  ids of the accepted segments are kept for the retry, which sends only the
  rest. (A restart forgets them; LINK then gets those segments twice.)
- A permanent refusal of any segment makes the whole message REJECTED.
- A response timeout fails the request TEMPORARY and breaks the link (LINK may
  have taken the message: a possible duplicate towards LINK, never an outcome
  reported twice towards the ESME).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.connectors.linksmpp.link import Connection, status_name
from gateway.connectors.linksmpp.mapping import (
    THROTTLE_STATUSES,
    MappingError,
    esme_status,
    outcome_for_status,
    submit_pdus,
)
from gateway.connectors.linksmpp.settings import LinkSmppSettings
from gateway.ids import upstream_id_forms
from gateway.ratelimit import TokenBucket
from gateway.records import Message, OutcomeKind, Report, SubmitOutcome
from gateway.smpp import pdu as p
from gateway.smpp.session import BOUND, NotAllowed, Response, WindowFull
from gateway.transport.protocol import LinkLost, LinkTimeout

log = Logger()
S = p.CommandStatus

# Progress of half-sent messages is forgotten after this many entries (oldest first).
_MAX_REMEMBERED = 10_000

# A receipt LINK sent for a segment of a batch not yet reported, with what
# answers it: (connection, deliver_sm, report).
Held = tuple[Connection, p.DeliverSm, Report]


def temporary(message: Message, description: str) -> SubmitOutcome:
    """Trouble on our side of the link: worth a retry. An ESME waiting for the
    answer gets RMSGQFUL, which ESMEs retry (and Kannel after a pause)."""
    return SubmitOutcome(
        message, OutcomeKind.TEMPORARY, esme_status=S.ESME_RMSGQFUL, description=description
    )


def rejected(message: Message, status: int, description: str) -> SubmitOutcome:
    kind, rejection = outcome_for_status(status)
    return SubmitOutcome(
        message, kind, rejection=rejection, esme_status=esme_status(status), description=description
    )


@dataclass(eq=False)
class Batch:
    outcomes: list[SubmitOutcome | None]
    left: int
    done: Deferred[list[SubmitOutcome]] = field(default_factory=Deferred)
    # Forms of LINK's ids accepted for this batch, and receipts for them held
    # back until the batch is reported (see LinkSmppConnector.deliver).
    forms: list[str] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)


@dataclass(eq=False)
class _Progress:
    """One message's segments (built with `ref`) and LINK's id of each accepted one."""

    ref: int
    ids: list[str | None]
    expires_at: float


@dataclass(eq=False)
class _Job:
    message: Message
    pdus: list[p.SubmitSm]
    progress: _Progress
    batch: Batch
    position: int
    pending: deque[int]
    inflight: int = 0
    failure: SubmitOutcome | None = None
    settled: bool = False


class SendQueue:
    """Sends messages over whatever connection `connection()` gives, one at a time."""

    def __init__(
        self,
        reactor: Any,
        name: str,
        settings: LinkSmppSettings,
        *,
        connection: Callable[[], Connection | None],
        observe: Callable[[str, str, float], None],
        break_link: Callable[[Connection], None],
        release: Callable[[list[Held]], None],
    ) -> None:
        self._reactor = reactor
        self._name = name
        self._settings = settings
        self._connection = connection
        self._observe = observe
        self._break_link = break_link
        self._release = release
        self._bucket = TokenBucket(settings.rate, settings.burst, reactor.seconds)
        self._limit = max(1, settings.window) + max(1, math.ceil(settings.burst))
        self._queue: deque[_Job] = deque()
        self._progress: dict[str, _Progress] = {}
        # Every form of every id LINK gave for a batch not yet reported -> the batch.
        self._unreported: dict[str, Batch] = {}
        self._ref = 0
        self._backoff = settings.throttle_backoff
        self._paused_until = 0.0
        self._wake: Any = None
        self.stopped = False

    @property
    def room(self) -> int:
        return max(self._limit - len(self._queue), 0)

    def submit(self, messages: list[Message], *, ready: bool) -> Deferred[list[SubmitOutcome]]:
        batch = Batch([None] * len(messages), len(messages))
        if not messages:
            batch.done.callback([])
            return batch.done
        now = self._reactor.seconds()
        for position, message in enumerate(messages):
            if not ready:
                self._record(batch, position, temporary(message, "not bound to LINK"))
                continue
            try:
                pdus, progress = self._segments(message, now)
            except MappingError as exc:
                # MappingError statuses are all permanent ones: a REJECTD receipt.
                log.info(
                    "{connector}: {message_id} cannot go over SMPP: {error}",
                    connector=self._name,
                    message_id=message.id,
                    account=message.account,
                    error=str(exc),
                )
                self._record(batch, position, rejected(message, exc.status, str(exc)))
                continue
            pending = deque(i for i, link_id in enumerate(progress.ids) if link_id is None)
            self._queue.append(_Job(message, pdus, progress, batch, position, pending))
        self.pump()
        return batch.done

    def unreported_batch(self, link_id: str) -> Batch | None:
        """The batch LINK's id belongs to while that batch is not reported yet."""
        for form in upstream_id_forms(link_id):
            batch = self._unreported.get(form)
            if batch is not None:
                return batch
        return None

    def stop(self) -> None:
        """Send nothing more; what is not in flight is TEMPORARY now."""
        self.stopped = True
        if self._wake is not None and self._wake.active():
            self._wake.cancel()
        for job in list(self._queue):
            job.pending.clear()
            self._settle_if_done(job)

    def fail_unsent(self, description: str) -> None:
        """The link is gone: requests in flight already failed (LinkLost); what
        is left was never sent."""
        for job in list(self._queue):
            if not job.inflight:
                self._fail(job, description)

    def fail_all(self, description: str) -> None:
        """Report every message now, whatever is in flight (the connector stopped;
        an answer that still comes is logged, not reported)."""
        for job in list(self._queue):
            self._fail(job, description, force=True)

    # --- sending ----------------------------------------------------------------------

    def _segments(self, message: Message, now: float) -> tuple[list[p.SubmitSm], _Progress]:
        progress = self._progress.pop(message.id, None)
        if progress is not None:
            pdus = submit_pdus(message, progress.ref, now=now)
            if len(pdus) == len(progress.ids):
                return pdus, progress
            # The content changed (replace_sm) since the first attempt: start over.
        self._ref = (self._ref + 1) & 0xFF
        pdus = submit_pdus(message, self._ref, now=now)
        return pdus, _Progress(self._ref, [None] * len(pdus), message.expires_at)

    def pump(self) -> None:
        if self.stopped:
            return
        connection = self._connection()
        if connection is None:
            return
        session = connection.protocol.session
        now = self._reactor.seconds()
        if now < self._paused_until:
            self._wake_at(self._paused_until)
            return
        while session.state in BOUND and session.can_send:
            job = next((j for j in self._queue if j.pending and j.failure is None), None)
            if job is None:
                return
            if not self._bucket.take():
                self._wake_at(now + self._bucket.delay())
                return
            index = job.pending.popleft()
            if not self._send(connection, job, index, now):
                job.pending.appendleft(index)
                return

    def _send(self, connection: Connection, job: _Job, index: int, now: float) -> bool:
        # A copy: the session stamps the sequence number on what it sends.
        pdu = dataclasses.replace(job.pdus[index], tlvs=list(job.pdus[index].tlvs))
        try:
            d = connection.protocol.request(pdu)
        except (WindowFull, NotAllowed):
            return False
        except ValueError as exc:  # not encodable; submit_pdus checks, so never expected
            log.failure(
                "{connector}: cannot send {message_id}",
                connector=self._name,
                message_id=job.message.id,
                account=job.message.account,
            )
            job.failure = rejected(job.message, S.ESME_RSUBMITFAIL, str(exc))
            job.pending.clear()
            self._settle_if_done(job)
            return True
        job.inflight += 1
        d.addCallbacks(
            self._answered,
            self._not_answered,
            callbackArgs=(connection, job, index, now),
            errbackArgs=(connection, job, index, now),
        )
        d.addErrback(
            lambda f: log.failure("{connector}: handling a submit_sm_resp", f, connector=self._name)
        )
        return True

    def _wake_at(self, when: float) -> None:
        if self._wake is not None and self._wake.active():
            if self._wake.getTime() <= when:
                return
            self._wake.cancel()
        self._wake = self._reactor.callLater(max(when - self._reactor.seconds(), 0.0), self.pump)

    def _answered(
        self, response: Response, connection: Connection, job: _Job, index: int, started: float
    ) -> None:
        job.inflight -= 1
        pdu = response.pdu
        status = pdu.status
        if job.settled:
            log.warn(
                "{connector}: LINK answered {status} for {message_id} after it was reported;"
                " it may reach the handset twice",
                connector=self._name,
                status=status_name(status),
                message_id=job.message.id,
                account=job.message.account,
            )
            return
        if isinstance(pdu, p.GenericNack) and status == S.ESME_ROK:
            status = S.ESME_RSYSERR  # a nack that says "fine" is no acceptance
        if status == S.ESME_ROK:
            assert isinstance(pdu, p.SubmitSmResp)
            self._observe("submit_sm", "ok", started)
            job.progress.ids[index] = pdu.message_id
            for form in upstream_id_forms(pdu.message_id):
                self._unreported[form] = job.batch
                job.batch.forms.append(form)
            self._backoff = self._settings.throttle_backoff
        elif status in THROTTLE_STATUSES:
            self._observe("submit_sm", "throttled", started)
            if job.failure is None:
                job.pending.appendleft(index)
                # Back to the front: LINK's order is the order we were given.
                self._queue.remove(job)
                self._queue.appendleft(job)
            self._throttled(status)
        else:
            outcome = rejected(
                job.message, status, f"LINK answered submit_sm with {status_name(status)}"
            )
            is_temporary = outcome.kind is OutcomeKind.TEMPORARY
            self._observe("submit_sm", "temporary" if is_temporary else "rejected", started)
            job.pending.clear()
            # A permanent answer outweighs a temporary one for the same message.
            if job.failure is None or not is_temporary:
                job.failure = outcome
        self._settle_if_done(job)
        self.pump()

    def _not_answered(
        self, failure: Failure, connection: Connection, job: _Job, index: int, started: float
    ) -> None:
        job.inflight -= 1
        if job.settled:
            return
        if failure.check(LinkTimeout):
            self._observe("submit_sm", "timeout", started)
            log.warn(
                "{connector}: no submit_sm_resp from LINK within {timeout}s; closing the link"
                " (LINK may have taken {message_id}: it will be sent again)",
                connector=self._name,
                timeout=self._settings.response_timeout,
                message_id=job.message.id,
                account=job.message.account,
            )
            description = "no submit_sm_resp from LINK"
            self._break_link(connection)
        elif failure.check(LinkLost):
            self._observe("submit_sm", "lost", started)
            description = "the link to LINK was lost"
        else:
            log.failure("{connector}: submit_sm failed", failure, connector=self._name)
            description = failure.getErrorMessage()
        job.pending.clear()
        if job.failure is None:
            job.failure = temporary(job.message, description)
        self._settle_if_done(job)
        self.pump()

    def _throttled(self, status: int) -> None:
        now = self._reactor.seconds()
        pause = self._backoff
        self._paused_until = max(self._paused_until, now + pause)
        self._backoff = min(self._backoff * 2, self._settings.throttle_backoff_max)
        log.info(
            "{connector}: LINK answered {status}; pausing {pause}s",
            connector=self._name,
            status=status_name(status),
            pause=pause,
        )

    # --- outcomes ------------------------------------------------------------------------

    def _settle_if_done(self, job: _Job, *, force: bool = False) -> None:
        """Report the job's outcome once nothing of it is in flight or left to send.

        `force` reports it now whatever is in flight.
        """
        if job.settled:
            return
        if not force and (job.inflight or (job.pending and job.failure is None)):
            return
        job.settled = True
        self._queue.remove(job)
        message, progress = job.message, job.progress
        outcome = job.failure
        if outcome is None and None in progress.ids:
            outcome = temporary(message, "the connector stopped")
        if outcome is None:
            ids = [link_id or "" for link_id in progress.ids]
            if not ids[0]:
                log.warn(
                    "{connector}: LINK accepted {message_id} without an id;"
                    " its receipt cannot be matched",
                    connector=self._name,
                    message_id=message.id,
                    account=message.account,
                )
            # Every id, even a lone one: receipts may spell it otherwise (hex for
            # decimal, other case, leading zeros), and the store matches them by
            # the forms it records for these.
            parts = tuple(ids) if all(ids) else ()
            outcome = SubmitOutcome(
                message, OutcomeKind.ACCEPTED, upstream_id=ids[0] or None, upstream_parts=parts
            )
        elif outcome.kind is OutcomeKind.TEMPORARY and any(
            link_id is not None for link_id in progress.ids
        ):
            self._remember(message.id, progress)
        self._record(job.batch, job.position, outcome)

    def _fail(self, job: _Job, description: str, *, force: bool = False) -> None:
        job.pending.clear()
        if job.failure is None:
            job.failure = temporary(job.message, description)
        self._settle_if_done(job, force=force)

    def _remember(self, message_id: str, progress: _Progress) -> None:
        now = self._reactor.seconds()
        remembered = self._progress
        remembered[message_id] = progress
        if len(remembered) > _MAX_REMEMBERED:
            # Messages past their validity are never retried: forget those first.
            for key in [k for k, v in remembered.items() if v.expires_at <= now]:
                del remembered[key]
            while len(remembered) > _MAX_REMEMBERED:
                del remembered[next(iter(remembered))]

    def _record(self, batch: Batch, position: int, outcome: SubmitOutcome) -> None:
        batch.outcomes[position] = outcome
        batch.left -= 1
        if batch.left == 0:
            outcomes = [o for o in batch.outcomes if o is not None]
            # The dispatcher records LINK's ids as this fires, so receipts held
            # for them can go to the store after it and find their messages.
            batch.done.callback(outcomes)
            for form in batch.forms:
                if self._unreported.get(form) is batch:
                    del self._unreported[form]
            held, batch.held = batch.held, []
            if held:
                self._release(held)


__all__ = ["Batch", "Held", "SendQueue", "rejected", "temporary"]
