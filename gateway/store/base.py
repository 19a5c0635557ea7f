"""The store interface and the records it keeps.

The store is the gateway's memory across restarts: messages from the moment an
ESME's submit_sm is acknowledged until their final state (then kept for the
retention period), the mapping from LINK's message ids to ours, and receipts
until an ESME has acknowledged them.

Every method returns a Deferred that fires only once the change is durable;
callers answer the ESME or LINK after that and never before. Implementations
may batch the calls of one reactor turn into one transaction (group commit),
so callers should issue them as they come and not serialise them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.defer import Deferred

from gateway.connectors.common.callbacks import DeliveryReport
from gateway.mapping import Outcome

if TYPE_CHECKING:
    from gateway.inbound import LinkReceipt

QUEUED = 0
SENT = 1
FINAL = 2


@dataclass(slots=True)
class Message:
    """An MT message the gateway owns: what to send, and what its receipt needs."""

    id: str
    account: str
    connector: str
    fields: dict[str, Any]
    submitted_at: float
    expires_at: float
    validity_s: int
    priority: str | None = None
    registered_delivery: int = 0
    source_addr: str = ""
    source_ton: int = 0
    source_npi: int = 0
    dest_addr: str = ""
    dest_ton: int = 0
    dest_npi: int = 0
    text_head: str = ""
    parts: int = 1
    # What replace_sm and cancel_sm need of the original submit_sm.
    service_type: str = ""
    data_coding: int = 0
    esm_class: int = 0
    # The id the ESME knows when it is not `id`: every destination of a
    # submit_multi is its own message, all answered and reported under one id.
    reply_id: str | None = None
    state: int = QUEUED
    attempts: int = 0
    next_attempt_at: float = 0.0
    upstream_id: str | None = None
    # Whether a billing failure reported after a DELIVRD for 1007 gets a receipt
    # (the account's billing_receipts when the message was taken).
    billing_receipt: bool = False


RECEIPT = "receipt"
MO = "mo"


@dataclass(slots=True)
class Receipt:
    """A deliver_sm waiting for an ESME's deliver_sm_resp: a delivery receipt, or
    (kind MO) one segment of an incoming message. `seq` is assigned by the store.

    For a receipt, `message_id` is our id and the text is built from stat, err
    and the dates. For an MO segment, `message_id` is LINK's id of the message,
    `payload` the short_message octets (UDH first when esm_class has 0x40), and
    the segment is dropped once `expires_at` has passed undelivered.
    """

    account: str
    message_id: str
    source_addr: str
    source_ton: int
    source_npi: int
    destination_addr: str
    dest_ton: int
    dest_npi: int
    stat: str
    err: int
    sub: int
    dlvrd: int
    submit_date: float
    done_date: float
    text: str
    seq: int = 0
    attempts: int = 0
    kind: str = RECEIPT
    data_coding: int = 0
    esm_class: int = 0
    payload: bytes = b""
    expires_at: float | None = None


@dataclass(slots=True)
class Finish:
    """A message reached its final state inside the gateway (expired, rejected)."""

    message_id: str
    stat: str
    err: int
    done_at: float
    receipt: Receipt | None


@dataclass(slots=True)
class ReportResult:
    """What one delivery report did: the receipt to deliver, or why there is none."""

    report: DeliveryReport
    # "final", "intermediate", "partial", "duplicate", "unknown", "silent";
    # "billing_pending" (final for the ESME, its billing still to be reported),
    # "billed" and "billing_failed" (that later report).
    outcome: str
    receipt: Receipt | None = None
    stat: str | None = None
    message_id: str | None = None
    final: bool = False


@dataclass(frozen=True, slots=True)
class MessageStatus:
    """What query_sm tells about one message: its state and, once final, how it ended."""

    state: int  # QUEUED, SENT or FINAL
    stat: str | None
    err: int | None
    done_at: float | None
    connector: str


@dataclass(slots=True)
class Recovered:
    messages: list[Message] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)


@dataclass(slots=True)
class Depths:
    queued: int
    sent: int
    receipts: int
    oldest_queued: float | None
    oldest_receipt: float | None


class Store(Protocol):
    # Common resultCode -> receipt; a config reload replaces it.
    result_codes: Mapping[int, Outcome]

    def open(self) -> Deferred[Recovered]:
        """Create or migrate the schema; return what was pending at the last stop."""

    def close(self) -> Deferred[None]: ...

    def add_messages(self, messages: list[Message]) -> Deferred[None]: ...

    def mark_sent(self, sent: list[tuple[str, str | None]]) -> Deferred[None]:
        """(our id, LINK's id) for messages LINK accepted."""

    def finish(self, finishes: list[Finish]) -> Deferred[list[Receipt]]:
        """Final states decided by the gateway; returns the stored receipts with their seq."""

    def apply_reports(self, reports: list[DeliveryReport]) -> Deferred[list[ReportResult]]:
        """Correlate LINK's reports with messages, update them, store their receipts."""

    def receipts_done(self, seqs: list[int]) -> Deferred[None]: ...

    def purge(self, before: float) -> Deferred[int]: ...

    def depths(self) -> Deferred[Depths]: ...

    def add_mo(
        self, messages: list[tuple[str, list[Receipt]]]
    ) -> Deferred[list[list[Receipt] | None]]:
        """(LINK's id, deliver_sm items) per MO; None for an MO whose id was seen before."""

    def reroute(self, moved: list[tuple[str, str]]) -> Deferred[None]:
        """(our id, connector) for queued messages the router moved to another connector."""

    def record_parts(self, sent: list[tuple[str, tuple[str, ...]]]) -> Deferred[None]:
        """(our id, LINK's id of each segment) for messages a connector split itself."""

    def apply_link_receipts(self, receipts: list[LinkReceipt]) -> Deferred[list[ReportResult]]:
        """LINK SMPP receipts, carrying LINK's own stat and err, matched by LINK's id."""

    def replace_message(self, message: Message) -> Deferred[None]:
        """Store a queued message's new content (replace_sm); a no-op once it left."""

    def query(self, account: str, message_id: str) -> Deferred[list[MessageStatus]]:
        """The messages `account` knows as `message_id` (several for a submit_multi)."""

    def short_id(self, fmt: str) -> str:
        """A new id of at most 8 characters for SMPP 3.3 ESMEs ("decimal" or "hex").

        Synchronous: it is taken while answering a submit_sm. Unique among the
        stored messages, and never handed out twice across restarts.
        """
