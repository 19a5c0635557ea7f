"""The receipts an ESME gets, built in one place: for LINK's reports and for the
final states the gateway decides itself (expired in its queue, cancelled).

What always holds:
- A receipt travels back: from the message's destination to its source, under
  the id the ESME knows (a submit_multi's, for each of its destinations).
- It exists only when the ESME asked for one in this state (registered_delivery,
  SMPP 3.4 section 5.2.17): bits 1-0 = 1 any final state, 2 failures only; 0x10
  intermediate notifications too.
- A reassembled message (one with `members`) has no receipt of its own: each
  part the ESME sent gets one under its own id, by its own registered_delivery,
  saying what became of the route's segments that carried its text
  (`receipts_for`).
- The done date is LINK's time of the state when it gives one and it is sane
  (`done_time`), else when the gateway learnt it.
- Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Protocol

from gateway.records import Address, Member, Outcome, Receipt
from gateway.smpp.pdu import MessageState

REGISTERED_ANY: Final = 0x01
REGISTERED_FAILURE: Final = 0x02
REGISTERED_INTERMEDIATE: Final = 0x10

# Final states the gateway decides itself (DESIGN 5): the validity ended while
# the message waited here; an ESME's cancel_sm took it back (as LINK's 1003).
EXPIRED_IN_QUEUE: Final = Outcome("EXPIRED", 220, True, MessageState.EXPIRED)
CANCELLED: Final = Outcome("DELETED", 221, True, MessageState.DELETED)

# How far LINK's clock may be from ours, and a minute-precision date before the
# submission, before a reported time is not believed.
_CLOCK_SLACK: Final = 300.0


class Receiptable(Protocol):
    """What a receipt needs to know of its message (a Message, or what the store
    keeps of one, gateway.store.base.Tracked)."""

    @property
    def id(self) -> str: ...
    @property
    def reply_id(self) -> str | None: ...
    @property
    def account(self) -> str: ...
    @property
    def registered_delivery(self) -> int: ...
    @property
    def source(self) -> Address: ...
    @property
    def destination(self) -> Address: ...
    @property
    def submitted_at(self) -> float: ...
    @property
    def text_head(self) -> str: ...
    @property
    def members(self) -> tuple[Member, ...]: ...


def esme_wants(registered_delivery: int, outcome: Outcome) -> bool:
    """Whether the ESME asked for a receipt in this state (SMPP 3.4 section 5.2.17)."""
    if not outcome.final:
        return bool(registered_delivery & REGISTERED_INTERMEDIATE)
    mode = registered_delivery & 0x03
    if mode == REGISTERED_ANY:
        return True
    if mode == REGISTERED_FAILURE:
        return outcome.stat != "DELIVRD"
    return False


def done_time(reported_at: float | None, submitted_at: float, now: float) -> float:
    """The receipt's done date: when LINK (or the operator) says the state was
    reached, if it says and the time is sane, else when we learnt it (`now`).

    Sane is neither after `now` nor before `submitted_at` by more than the slack
    of two clocks; inside the slack it is kept within [submitted_at, now], so a
    receipt never says done before submitted (LINK may give only minutes).
    """
    if reported_at is None:
        return now
    if reported_at > now + _CLOCK_SLACK or reported_at < submitted_at - _CLOCK_SLACK:
        return now
    return max(submitted_at, min(reported_at, now))


def receipt_for(
    message: Receiptable,
    outcome: Outcome,
    done_at: float,
    *,
    sub: int = 1,
    dlvrd: int | None = None,
) -> Receipt | None:
    """The receipt for `message` in `outcome`, or None when its ESME asked for none.

    `dlvrd` defaults to 1 for a delivery, else 0.
    """
    if not esme_wants(message.registered_delivery, outcome):
        return None
    return _receipt(
        message,
        message.reply_id or message.id,
        message.submitted_at,
        message.text_head,
        outcome,
        done_at,
        sub,
        dlvrd,
    )


def receipts_for(
    message: Receiptable,
    outcome: Outcome,
    done_at: float,
    *,
    sub: int = 1,
    dlvrd: int | None = None,
    parts: Mapping[str, Outcome] | None = None,
) -> tuple[Receipt, ...]:
    """The receipts for `message` in `outcome`: its own (`receipt_for`), or one per
    member of a reassembled message.

    A member's receipt says what became of the segments that carried its text
    when `parts` (the route's part outcomes, "0"... as its reports number them)
    covers them all: DELIVRD only if each was, else the first failure, with
    `sub` and `dlvrd` counted over them. Otherwise (a report for the whole
    message, or parts the route numbered differently) it says `outcome`.
    """
    if not message.members:
        receipt = receipt_for(message, outcome, done_at, sub=sub, dlvrd=dlvrd)
        return () if receipt is None else (receipt,)
    out = []
    for member in message.members:
        own, own_sub, own_dlvrd = _member_outcome(member, outcome, parts)
        if esme_wants(member.registered_delivery, own):
            out.append(
                _receipt(
                    message,
                    member.id,
                    member.submitted_at,
                    member.text_head,
                    own,
                    done_at,
                    own_sub,
                    own_dlvrd,
                )
            )
    return tuple(out)


def combined(outcomes: Sequence[Outcome]) -> tuple[Outcome, int, int]:
    """(what a receipt says, sub, dlvrd) for the final outcomes of parts, in part
    order (DESIGN section 5): DELIVRD only if every part was delivered, else the
    first failed part's stat and err; `dlvrd` counts the delivered parts."""
    failed = [o for o in outcomes if o.stat != "DELIVRD"]
    return (failed[0] if failed else outcomes[0]), len(outcomes), len(outcomes) - len(failed)


def _member_outcome(
    member: Member, outcome: Outcome, parts: Mapping[str, Outcome] | None
) -> tuple[Outcome, int, int | None]:
    if outcome.final and parts and member.segments:
        covering = [parts.get(str(n)) for n in member.segments]
        known = [o for o in covering if o is not None and o.final]
        if len(known) == len(covering):
            return combined(known)
    return outcome, 1, None


def _receipt(
    message: Receiptable,
    message_id: str,
    submitted_at: float,
    text_head: str,
    outcome: Outcome,
    done_at: float,
    sub: int,
    dlvrd: int | None,
) -> Receipt:
    source, destination = message.source, message.destination
    return Receipt(
        account=message.account,
        message_id=message_id,
        source_addr=destination.addr,
        source_ton=destination.ton,
        source_npi=destination.npi,
        destination_addr=source.addr,
        dest_ton=source.ton,
        dest_npi=source.npi,
        stat=outcome.stat,
        err=outcome.err,
        sub=sub,
        dlvrd=(1 if outcome.stat == "DELIVRD" else 0) if dlvrd is None else dlvrd,
        submit_date=submitted_at,
        done_date=done_at,
        text=text_head,
    )


__all__ = [
    "CANCELLED",
    "EXPIRED_IN_QUEUE",
    "REGISTERED_ANY",
    "REGISTERED_FAILURE",
    "REGISTERED_INTERMEDIATE",
    "combined",
    "done_time",
    "esme_wants",
    "receipt_for",
    "receipts_for",
]
