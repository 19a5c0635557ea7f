"""A connector whose answers a test scripts per message, on a twisted Clock."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from gateway.records import Message, OutcomeKind, SubmitOutcome
from tests.support.records import REJECTED as REJECTION

ACCEPTED, TEMPORARY, REJECTED = OutcomeKind.ACCEPTED, OutcomeKind.TEMPORARY, OutcomeKind.REJECTED


class ScriptedConnector:
    """Answers each message with the next kind from its script (ACCEPTED when it runs out).

    With `manual`, answers wait in `pending` until the test releases them, and
    capacity shrinks by the messages in flight. `link_up` is None (no standing
    link) until a test sets it.
    """

    name = "link"

    def __init__(
        self, clock: Clock, *, limit: int = 100, max_batch: int = 1000, manual: bool = False
    ) -> None:
        self.clock = clock
        self.limit = limit
        self._max_batch = max_batch
        self.manual = manual
        self.script: dict[str, list[OutcomeKind]] = {}
        self.calls: list[tuple[float, list[str]]] = []
        self.pending: list[tuple[Deferred[list[SubmitOutcome]], list[SubmitOutcome]]] = []
        self.inflight = 0
        self.link_up: bool | None = None
        self.paused_for = 0.0

    @property
    def capacity(self) -> int:
        return max(0, self.limit - self.inflight)

    @property
    def max_batch(self) -> int:
        return self._max_batch

    def _outcome(self, m: Message) -> SubmitOutcome:
        steps = self.script.get(m.id)
        kind = steps.pop(0) if steps else ACCEPTED
        if kind is ACCEPTED:
            return SubmitOutcome(m, ACCEPTED, upstream_id=f"link-{m.id}")
        if kind is REJECTED:
            return SubmitOutcome(m, REJECTED, rejection=REJECTION, description="106001 parse")
        return SubmitOutcome(m, TEMPORARY, description="HTTP 503")

    def submit(self, messages: list[Message]) -> Deferred[list[SubmitOutcome]]:
        self.calls.append((self.clock.seconds(), [m.id for m in messages]))
        outcomes = [self._outcome(m) for m in messages]
        if not self.manual:
            return succeed(outcomes)
        d: Deferred[list[SubmitOutcome]] = Deferred()
        self.inflight += len(messages)
        self.pending.append((d, outcomes))
        return d

    def release(self, index: int = 0) -> None:
        d, outcomes = self.pending.pop(index)
        self.inflight -= len(outcomes)
        d.callback(outcomes)

    def sizes(self) -> list[int]:
        return [len(ids) for _, ids in self.calls]

    def times_of(self, id_: str) -> list[float]:
        return [t for t, ids in self.calls if id_ in ids]
