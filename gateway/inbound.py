"""What connectors hand back to the gateway: LINK's receipts over SMPP and MO messages.

Kept apart from gateway.connectors.base (which needs the config) so that the config
can use the MO routing rules without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred


@dataclass(frozen=True, slots=True)
class LinkReceipt:
    """A receipt LINK sent over SMPP: LINK's id, and LINK's own stat and err."""

    upstream_id: str
    stat: str
    err: int
    done_at: float | None = None


@dataclass(frozen=True, slots=True)
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


class Inbound(Protocol):
    """What a connector hands back to the gateway: receipts and MO from LINK.

    Each Deferred fires once what it carried is durably stored, or fails if it
    could not be: only then may the connector acknowledge to LINK (deliver_sm_resp
    ESME_ROK), and on failure it must answer so that LINK retries.
    """

    def link_receipts(self, connector: str, receipts: list[LinkReceipt]) -> Deferred[None]: ...

    def mo_received(self, messages: list[IncomingMo]) -> Deferred[None]: ...
