"""Every record that passes between the gateway's parts, frozen, in one place.

Modelled on h11's `_events.py`: the parts of the gateway talk in these records
and nothing else, so a new route, a new store or a second node is new code
around them, not a change of them.

What always holds:

* A `Message` is what an ESME submitted, in SMPP's own terms: its addresses as
  sent (ton and npi included), the decoded text or the octets, the UDH of a
  message the ESME segmented itself, validity and schedule as times, the
  priority flag, the receipt request and the account's vendor fields. Next to
  that, what the account's address rules made of the addresses (`sender`,
  `recipient`), which every route sends. No upstream's wire format (Common's
  JSON keys, LINK's submit_sm) appears in it: each connector maps a message to
  its own wire and its answers back (gateway/connectors).
* A `Report` is what LINK said about a message, whatever route said it: the
  receipt's stat and err already chosen by that route's own table.
* Times are UTC epoch seconds. Records never change: a changed message (a
  replace_sm, a failover) is a new record (`dataclasses.replace`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from types import MappingProxyType
from typing import Any, Final, TypeVar, dataclass_transform

from gateway.smpp.pdu import MessageState

_EMPTY: Final[Mapping[str, object]] = MappingProxyType({})
_NO_STRINGS: Final[Mapping[str, str]] = MappingProxyType({})

_R = TypeVar("_R")


@dataclass_transform(frozen_default=True)
def record(cls: type[_R]) -> type[_R]:
    """`@dataclass(frozen=True, slots=True)` whose constructor costs half as much.

    A frozen dataclass sets each field through `object.__setattr__`, looked up
    per field: about 0.2 us a field, 5 us for a Message, and every message makes
    a dozen records on its way through. This constructor sets the slots through
    their descriptors instead; what it accepts, its defaults, `__post_init__`
    and the frozenness are the dataclass's own (tests/unit/test_records.py).
    """
    made: Any = dataclass(frozen=True, slots=True)(cls)
    env: dict[str, Any] = {"_MISSING": MISSING}
    params, lines = ["self"], []
    for f in fields(made):
        name = f.name
        env[f"_set_{name}"] = getattr(made, name).__set__
        if f.default is not MISSING:
            env[f"_default_{name}"] = f.default
            value = name if f.init else f"_default_{name}"
            if f.init:
                params.append(f"{name}=_default_{name}")
        elif f.default_factory is not MISSING:
            env[f"_factory_{name}"] = f.default_factory
            if f.init:
                params.append(f"{name}=_MISSING")
                lines.append(f" if {name} is _MISSING: {name} = _factory_{name}()")
            value = name if f.init else f"_factory_{name}()"
        else:
            params.append(name)
            value = name
        lines.append(f" _set_{name}(self, {value})")
    if hasattr(made, "__post_init__"):
        lines.append(" self.__post_init__()")
    exec(f"def __init__({', '.join(params)}):\n" + "\n".join(lines or [" pass"]), env)
    init = env["__init__"]
    init.__qualname__ = f"{made.__qualname__}.__init__"
    made.__init__ = init
    return made  # type: ignore[no-any-return]


# --- addresses ----------------------------------------------------------------------


@record
class Address:
    """An SMPP address as it travels in a PDU (SMPP 3.4 sections 5.2.5-5.2.8)."""

    addr: str
    ton: int = 0
    npi: int = 0


class PartyKind(enum.Enum):
    """What an address is, whatever the wire calls it."""

    MSISDN = "msisdn"  # a phone number, E.164 "+digits"
    SHORT_CODE = "short_code"  # digits, national
    ALPHANUMERIC = "alphanumeric"  # a sender name


@record
class Party:
    """An address the account's rules have read (gateway/addresses.py)."""

    kind: PartyKind
    value: str


# --- content ------------------------------------------------------------------------


class Alphabet(enum.Enum):
    """How a segment the ESME made must go: the route may not re-encode it."""

    GSM = "gsm"
    UCS2 = "ucs2"
    BINARY = "binary"


@record
class Body:
    """A message's content: `text` (decoded) or `data` (8-bit octets), one of them.

    `udh` is set when the ESME segmented the message itself: the body is that one
    segment and goes as it is, in `alphabet`. Without a UDH, `alphabet` is None
    and a route chooses the encoding and splits as it must.
    """

    text: str | None = None
    data: bytes | None = None
    udh: bytes | None = None
    alphabet: Alphabet | None = None
    flash: bool = False

    def __post_init__(self) -> None:
        if (self.text is None) == (self.data is None):
            raise ValueError("a body is text or data, one of them")


# --- MT -----------------------------------------------------------------------------


@record
class Member:
    """One part an ESME sent of a message the gateway reassembled (gateway/mt/reassembly.py).

    The ESME knows the part by `id` and asked for its receipt by its own
    `registered_delivery`; `segments` are the route's parts (numbered from 0,
    as Common's `id$n` and LINK SMPP's segment ids are) that carry this part's
    content, so that the part's receipt says what became of its own text.
    """

    id: str
    seq: int
    registered_delivery: int
    submitted_at: float
    text_head: str
    segments: tuple[int, ...] = ()


@record
class Message:
    """An MT message the gateway owns, from its submit_sm to its final state.

    `connector` is the route it waits for; `not_before` is when the gateway
    sends it (a schedule held here, `hold_scheduled`), 0 for at once.
    `scheduled_at` is the ESME's schedule; a route that can schedule is given it
    when it is still ahead at sending time. `parts` is how many SMS the text
    makes, for reports per part. `reply_id` is the id the ESME knows when it is
    not `id` (each destination of a submit_multi is its own message).
    """

    id: str
    account: str
    connector: str
    source: Address
    destination: Address
    sender: Party
    recipient: str
    body: Body
    submitted_at: float
    expires_at: float
    validity_s: int
    scheduled_at: float | None = None
    not_before: float = 0.0
    priority: int = 0
    registered_delivery: int = 0
    # Vendor fields: Common's premium fields and customParameters, from the
    # account and its vendor TLVs. Routes without such fields leave them out.
    premium: Mapping[str, object] = field(default_factory=lambda: _EMPTY)
    custom: Mapping[str, str] = field(default_factory=lambda: _NO_STRINGS)
    # What replace_sm and cancel_sm need of the original submit_sm.
    service_type: str = ""
    data_coding: int = 0
    esm_class: int = 0
    text_head: str = ""
    parts: int = 1
    reply_id: str | None = None
    # A billing failure after a DELIVRD for 1007 gets a receipt of its own.
    billing_receipt: bool = False
    # The parts a reassembled message was made of: receipts go to each of
    # them, never to `id`, which no ESME was told.
    members: tuple[Member, ...] = ()

    def validity_left(self, now: float) -> float:
        """Seconds of validity still to come once the message is sent now: what is
        left of it, and never more than `validity_s` (a message scheduled far ahead
        through its route has all of it still, counted from the schedule)."""
        return max(min(self.expires_at - now, float(self.validity_s)), 0.0)


# --- outcomes -----------------------------------------------------------------------


@record
class Outcome:
    """What a receipt says: stat word, err (LINK's SMPP codes), final or not, state.

    `billing_pending`: final for the ESME, but LINK will report the billing
    (1007 "delivered, billed delayed"): the message stays open for that report.
    """

    stat: str
    err: int
    final: bool
    state: MessageState
    billing_pending: bool = False


class OutcomeKind(enum.Enum):
    """What a route did with a message it was given."""

    ACCEPTED = "accepted"  # LINK took it
    TEMPORARY = "temporary"  # worth another attempt later
    REJECTED = "rejected"  # refused for good: a REJECTD receipt


@record
class SubmitOutcome:
    """One message's outcome from a connector.

    `esme_status` is what an ESME of an `accept = "upstream"` account gets in
    its submit_sm_resp when the message was not accepted, by the connector's own
    table. `rejection` is the receipt for REJECTED. `upstream_parts` lists LINK's
    id of every segment when the route split the message itself. `throttled`
    marks a TEMPORARY outcome that is LINK asking us to send slower (HTTP 429,
    a throttling code): not a fault of the route, so no circuit breaker counts it.
    """

    message: Message
    kind: OutcomeKind
    upstream_id: str | None = None
    rejection: Outcome | None = None
    esme_status: int = 0
    misconfigured: bool = False
    description: str = ""
    upstream_parts: tuple[str, ...] = ()
    throttled: bool = False


# --- from LINK ----------------------------------------------------------------------


@record
class Report:
    """What LINK said about one message (or one part of it), from any route.

    `upstream_id` is LINK's id of the message; `any_form` asks for it to be
    matched in every spelling LINK uses (gateway.ids.upstream_id_forms, LINK
    SMPP). `ref_id` is our own id when the route mirrors it (Common's refId).
    `part` names the part of a message LINK split (Common's `id$n`) and
    `segments` how many parts LINK made, when it says. `code` is the route's own
    status code, kept with a billing result; `reported_at` LINK's time of it.
    """

    upstream_id: str
    outcome: Outcome
    ref_id: str | None = None
    part: int | None = None
    segments: int | None = None
    code: int | None = None
    reported_at: float | None = None
    any_form: bool = False


@record
class IncomingMo:
    """An MO message as LINK handed it over, before it is routed to an account.

    `text` for text, `binary` for 8-bit data (one of the two is set); `udh` when
    LINK passed on one segment of a long message with its header.
    """

    upstream_id: str
    source: str
    destination: str
    text: str | None
    binary: bytes | None = None
    udh: bytes | None = None
    source_ton: int | None = None
    dest_ton: int | None = None
    connector: str = ""
    received_at: float = 0.0


# --- towards ESMEs ------------------------------------------------------------------

RECEIPT = "receipt"
MO = "mo"


@record
class Receipt:
    """A deliver_sm for an ESME: a delivery receipt or (kind MO) one segment of an
    incoming message. `seq` is the store's, 0 until stored.

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


@record
class ReportResult:
    """What one report did: the receipt to deliver, or why there is none.

    `outcome`: "final", "intermediate", "partial", "duplicate", "unknown",
    "silent"; "billing_pending" (final for the ESME, its billing still to be
    reported), "billed" and "billing_failed" (that later report).
    """

    report: Report
    outcome: str
    # One receipt, or one per part of a reassembled message; none when not asked.
    receipts: tuple[Receipt, ...] = ()
    stat: str | None = None
    message_id: str | None = None
    final: bool = False

    @property
    def receipt(self) -> Receipt | None:
        return self.receipts[0] if self.receipts else None


__all__ = [
    "MO",
    "RECEIPT",
    "Address",
    "Alphabet",
    "Body",
    "IncomingMo",
    "Member",
    "Message",
    "Outcome",
    "OutcomeKind",
    "Party",
    "PartyKind",
    "Receipt",
    "Report",
    "ReportResult",
    "SubmitOutcome",
]
