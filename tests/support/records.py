"""One factory per record, each with everyday values that a test overrides.

Tests say only what matters to them: `message("m1", registered_delivery=0)`.
"""

from __future__ import annotations

from typing import Any

from gateway.records import (
    Address,
    Body,
    IncomingMo,
    Message,
    Outcome,
    Party,
    PartyKind,
    Receipt,
    Report,
)
from gateway.smpp.pdu import MessageState

DELIVERED = Outcome("DELIVRD", 0, True, MessageState.DELIVERED)
UNDELIVERED = Outcome("UNDELIV", 1, True, MessageState.UNDELIVERABLE)
REJECTED = Outcome("REJECTD", 127, True, MessageState.REJECTED)
ENROUTE = Outcome("ENROUTE", 0, False, MessageState.ENROUTE)


def message(id_: str = "m1", **overrides: Any) -> Message:
    """A queued MT message of account shop1 from "SHOP" to +4712345678 via "link"."""
    values: dict[str, Any] = dict(
        id=id_,
        account="shop1",
        connector="link",
        source=Address("SHOP", 5, 0),
        destination=Address("4712345678", 1, 1),
        sender=Party(PartyKind.ALPHANUMERIC, "SHOP"),
        recipient="+4712345678",
        body=Body(text="hi"),
        submitted_at=0.0,
        expires_at=10_000.0,
        validity_s=10_000,
        registered_delivery=1,
        text_head="hi",
    )
    if "text" in overrides:
        text = overrides.pop("text")
        values["body"] = Body(text=text)
        values["text_head"] = text[:20]
    values.update(overrides)
    return Message(**values)


def report(upstream_id: str = "link-1", outcome: Outcome = DELIVERED, **overrides: Any) -> Report:
    return Report(upstream_id=upstream_id, outcome=outcome, **overrides)


def receipt(message_id: str = "m1", **overrides: Any) -> Receipt:
    """A DELIVRD receipt for shop1, from the handset back to "SHOP"."""
    values: dict[str, Any] = dict(
        account="shop1",
        message_id=message_id,
        source_addr="4712345678",
        source_ton=1,
        source_npi=1,
        destination_addr="SHOP",
        dest_ton=5,
        dest_npi=0,
        stat="DELIVRD",
        err=0,
        sub=1,
        dlvrd=1,
        submit_date=0.0,
        done_date=1.0,
        text="hi",
    )
    values.update(overrides)
    return Receipt(**values)


def incoming_mo(upstream_id: str = "mo-1", **overrides: Any) -> IncomingMo:
    """An MO from +4798765432 to the short code 2270 saying "HELLO"."""
    values: dict[str, Any] = dict(
        upstream_id=upstream_id, source="+4798765432", destination="2270", text="HELLO"
    )
    values.update(overrides)
    return IncomingMo(**values)


__all__ = [
    "DELIVERED",
    "ENROUTE",
    "REJECTED",
    "UNDELIVERED",
    "incoming_mo",
    "message",
    "receipt",
    "report",
]
