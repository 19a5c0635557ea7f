"""The store interface: what the gateway keeps, and how it finds it again.

The store is the gateway's memory across restarts: messages from the moment an
ESME's submit_sm is acknowledged until their final state (then kept for the
retention period), LINK's ids for them in every form LINK writes them, the
receipts and MO waiting for an ESME, which MO were seen, and a heartbeat.

The store only keeps. What a report means for its message, which receipt an
ESME gets and when a state is final are decided above it (gateway/intake,
gateway/mt); the store offers the primitives those rules work with, inside one
transaction (`ReportBook`), so that a batch of reports is applied atomically
and in order by any implementation.

What always holds, for every implementation (tests/support/store_contract.py
checks it):
- Every method returns a Deferred that fires only once the change is durable;
  callers answer the ESME or LINK after that and never before.
- Calls made in one reactor turn may share one transaction (group commit), and
  a failure fails every call of that transaction: callers issue calls as they
  come and never serialise them.
- `open` gives back how much is still queued and how many receipts are not
  yet acknowledged (`Backlog`), not the items: a backlog may be millions. The
  dispatcher and the deliverer read them in pages (`queued`, `receipts_after`),
  in the order they were stored, and only what was committed and reported to
  its caller (a Deferred that fired): what a page holds, they were told of.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from gateway.records import Address, Member, Message, Outcome, Receipt, Report, record

if TYPE_CHECKING:
    # Only a type here: the records and the rules above the store load without Twisted.
    from twisted.internet.defer import Deferred


T = TypeVar("T")

QUEUED = 0
SENT = 1
FINAL = 2
# A part of a long message waiting for its siblings (gateway/mt/reassembly.py):
# kept, but in no connector's queue.
HELD = 3


class StoreFull(Exception):
    """The store's disk (or quota) is full: nothing new can be kept until there is
    space again. Temporary: ESMEs get ESME_RMSGQFUL, which they retry, and LINK a
    503; the store heals by itself once space is freed."""


@record
class Finish:
    """A message reached its final state inside the gateway (expired, rejected,
    cancelled), with the receipts its ESME gets: none when none was asked for,
    one per part of a reassembled message."""

    message_id: str
    stat: str
    err: int
    done_at: float
    receipts: tuple[Receipt, ...] = ()


@record
class Tracked:
    """What the store keeps of a message that a report may change.

    `parts` are the outcomes of the parts reported so far (a message LINK
    split); `part` is the part the report's id named, when the store found the
    message by the id of one part (LINK SMPP records each segment's id).
    `billing` is None, "pending" after a DELIVRD for 1007, else the code that
    settled the billing.
    """

    id: str
    reply_id: str | None
    account: str
    registered_delivery: int
    source: Address
    destination: Address
    submitted_at: float
    text_head: str
    state: int
    parts: Mapping[str, Outcome]
    expected_parts: int
    billing: str | None = None
    billing_receipt: bool = False
    part: int | None = None
    members: tuple[Member, ...] = ()


class ReportBook(Protocol):
    """The store's primitives for applying reports, all in one transaction."""

    def close_open(
        self, report: Report, outcome: Outcome, done_at: float, billing: str | None
    ) -> Tracked | None:
        """Make the message the report names final with `outcome` if it is still
        open, and return it as now closed (state FINAL); None when no open message matches. One
        step for the common case, a whole message's final report."""

    def find(self, report: Report) -> Tracked | None:
        """The message the report names: by our id (`ref_id`), else by LINK's id,
        in any of its forms when `report.any_form`."""

    def update(
        self,
        message_id: str,
        *,
        parts: Mapping[str, Outcome] | None = None,
        final: Outcome | None = None,
        done_at: float = 0.0,
        billing: str | None = None,
        upstream_id: str | None = None,
    ) -> None:
        """Record part outcomes, a final state (with its time), a billing result,
        and LINK's id if none was known."""

    def add_receipt(self, receipt: Receipt) -> Receipt:
        """Keep a receipt for delivery; returns it with the store's `seq`."""


ReportRule = Callable[[ReportBook, Report], T]


@dataclass(frozen=True, slots=True)
class MessageStatus:
    """What query_sm tells about one message: its state and, once final, how it ended."""

    state: int  # QUEUED, SENT or FINAL
    stat: str | None
    err: int | None
    done_at: float | None
    connector: str


@dataclass(slots=True)
class Backlog:
    """What waits in the store when it opens, counted: messages by (account,
    connector), receipts and MO by (account, kind)."""

    messages: dict[tuple[str, str], int] = field(default_factory=dict)
    receipts: dict[tuple[str, str], int] = field(default_factory=dict)


# A queued message and its place in its connector's queue (the store's order).
Queued = tuple[int, Message]


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """One queue of one account (and connector, for MT): how many, since when."""

    kind: str
    account: str
    connector: str | None
    count: int
    oldest: float | None  # seconds since the epoch


# The kinds of queue `depths` reports.
MT_QUEUED = "mt_queued"
MT_SENT = "mt_awaiting_report"
MT_BILLING = "mt_billing_pending"
MT_HELD = "mt_reassembling"
RECEIPTS = "receipts"
MO_QUEUE = "mo"
QUEUE_KINDS = (MT_HELD, MT_QUEUED, MT_SENT, MT_BILLING, RECEIPTS, MO_QUEUE)


class Store(Protocol):
    @property
    def refusing(self) -> bool:
        """New work is refused (StoreFull) until the full disk has room again."""
        ...

    def open(self) -> Deferred[Backlog]:
        """Create or migrate the schema; count what was pending at the last stop."""

    def close(self) -> Deferred[None]: ...

    def heartbeat(self, stamp: str) -> Deferred[None]:
        """A tiny durable write, for the readiness probe."""

    # --- MT ---------------------------------------------------------------------

    def add_messages(self, messages: list[Message]) -> Deferred[None]: ...

    # --- parts of long messages (gateway/mt/reassembly.py) ---------------------

    def hold(self, messages: list[Message]) -> Deferred[None]:
        """Store parts waiting for their siblings: kept, in no connector's queue."""

    def held(self) -> Deferred[list[Message]]:
        """Every waiting part, in the order stored."""

    def assemble(self, whole: Message, part_ids: list[str]) -> Deferred[None]:
        """Queue the message complete parts make, in place of the parts; `query`,
        `queued_as` and `finish` find it by any part's id from then on."""

    def release(self, messages: list[Message]) -> Deferred[list[str]]:
        """Queue waiting parts as they are (segments), at the end of the queue;
        fires with the ids released (not those finished meanwhile)."""

    def queued(self, connector: str, after: int, limit: int) -> Deferred[list[Queued]]:
        """Messages queued for `connector` past place `after`, in place order."""

    def queued_due(
        self, connector: str, after: tuple[float, int], upto: float, limit: int
    ) -> Deferred[list[Queued]]:
        """Scheduled messages (not_before > 0) of `connector`, in (not_before,
        place) order, past `after` and not later than `upto`."""

    def queued_expired(self, now: float, limit: int) -> Deferred[list[Message]]:
        """Queued messages whose validity ended by `now`, the oldest first."""

    def queued_as(self, account: str, message_id: str) -> Deferred[list[Message]]:
        """The queued messages `account` knows as `message_id` (submit_multi: several)."""

    def queued_to(self, account: str, destination: str) -> Deferred[list[Message]]:
        """The queued messages of `account` to `destination` (cancel_sm by address)."""

    def mark_sent(self, sent: list[tuple[str, str | None]]) -> Deferred[None]:
        """(our id, LINK's id) for messages LINK accepted."""

    def record_parts(self, sent: list[tuple[str, tuple[str, ...]]]) -> Deferred[None]:
        """(our id, LINK's id of each segment) for messages a connector split itself."""

    def reroute(self, moved: list[tuple[str, str]]) -> Deferred[None]:
        """(our id, connector) for queued messages the router moved to another connector."""

    def replace_message(self, message: Message) -> Deferred[None]:
        """Store a queued message's new content (replace_sm); a no-op once it left."""

    def finish(self, finishes: list[Finish]) -> Deferred[list[Receipt]]:
        """Final states decided by the gateway, for messages still open; returns the
        receipts stored for them, with their seq."""

    def query(self, account: str, message_id: str) -> Deferred[list[MessageStatus]]:
        """The messages `account` knows as `message_id` (several for a submit_multi)."""

    def short_id(self, fmt: str) -> str:
        """A new id of at most 8 characters for SMPP 3.3 ESMEs ("decimal" or "hex").

        Synchronous: it is taken while answering a submit_sm. Unique among the
        stored messages, and never handed out twice across restarts.
        """

    # --- reports -----------------------------------------------------------------

    def apply_reports(self, reports: list[Report], rule: ReportRule[T]) -> Deferred[list[T]]:
        """`rule(book, report)` for each report in order, in one transaction."""

    # --- towards ESMEs -------------------------------------------------------------

    def add_receipts(self, receipts: list[Receipt]) -> Deferred[list[Receipt]]:
        """Keep receipts for delivery; returns them with their seq."""

    def receipts_after(self, account: str, after: int, limit: int) -> Deferred[list[Receipt]]:
        """Receipts and MO of `account` not yet acknowledged, past seq `after`, in order."""

    def receipts_done(self, seqs: list[int]) -> Deferred[None]: ...

    def add_mo(
        self, messages: list[tuple[str, list[Receipt]]]
    ) -> Deferred[list[list[Receipt] | None]]:
        """(LINK's id, deliver_sm items) per MO; None for an MO whose id was seen before."""

    # --- upkeep --------------------------------------------------------------------

    def purge(self, before: float) -> Deferred[int]:
        """Forget messages final (or delivered, billing pending) before `before`,
        and MO ids seen before it."""

    def depths(self) -> Deferred[list[QueueDepth]]:
        """Every non-empty queue, by kind, account and connector."""


__all__ = [
    "FINAL",
    "HELD",
    "MO_QUEUE",
    "MT_BILLING",
    "MT_HELD",
    "MT_QUEUED",
    "MT_SENT",
    "QUEUED",
    "QUEUE_KINDS",
    "RECEIPTS",
    "SENT",
    "Backlog",
    "Finish",
    "MessageStatus",
    "QueueDepth",
    "Queued",
    "ReportBook",
    "ReportRule",
    "Store",
    "StoreFull",
    "Tracked",
]
