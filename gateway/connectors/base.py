"""The one connector interface (DESIGN 3.5) and the registry that builds them.

A connector takes a batch of stored messages and reports, per message, one of
three outcomes: LINK accepted it (with LINK's id when known), trouble that is
worth retrying (network, 5xx, 429, timeouts), or a permanent rejection with the
receipt outcome the ESME should see. Connectors never touch the store; the
dispatcher does, so every route behaves the same across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred

from gateway.inbound import Inbound as Inbound
from gateway.inbound import IncomingMo as IncomingMo
from gateway.inbound import LinkReceipt as LinkReceipt
from gateway.mapping import Outcome
from gateway.store.base import Message

ACCEPTED = "accepted"
TEMPORARY = "temporary"
REJECTED = "rejected"


@dataclass(slots=True)
class SubmitOutcome:
    message: Message
    kind: str  # ACCEPTED, TEMPORARY or REJECTED
    upstream_id: str | None = None
    rejection: Outcome | None = None
    misconfigured: bool = False
    http_status: int | None = None
    code: int | None = None
    description: str = ""
    # LINK's id of every segment, in order (LINK SMPP, which splits messages itself
    # and whose receipts may spell an id otherwise); each segment gets a receipt.
    upstream_parts: tuple[str, ...] = ()


class Connector(Protocol):
    name: str

    @property
    def capacity(self) -> int:
        """How many more messages `submit` should be given now (0 = busy)."""

    @property
    def max_batch(self) -> int: ...

    def submit(self, messages: list[Message]) -> Deferred[list[SubmitOutcome]]:
        """Hand messages to LINK; never fails, every message gets an outcome."""

    def start(self) -> None: ...

    def stop(self) -> Deferred[None]: ...
