"""The one connector interface (DESIGN 3.5), both ways.

Towards LINK a connector takes a batch of stored messages and reports, per
message, one of three outcomes (gateway.records.OutcomeKind): LINK accepted it
(with LINK's id when known), trouble that is worth retrying (network, 5xx,
timeouts; 429 too, marked `throttled`: LINK asks for a slower rate, the route
is not failing), or a permanent rejection with the receipt outcome the ESME
should see. From LINK it hands the gateway `Report`s and `IncomingMo`s through
`Inbound`, already mapped by its own tables.

Connectors never touch the store; the dispatcher and the intake do, so every
route behaves the same across restarts.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred

from gateway.records import IncomingMo, Message, Report, SubmitOutcome


class Connector(Protocol):
    name: str

    @property
    def capacity(self) -> int:
        """How many more messages `submit` should be given now (0 = busy)."""

    @property
    def paused_for(self) -> float:
        """Seconds until `capacity` may come back by itself, without an answer
        freeing it: LINK asked us to wait (Retry-After). 0 when not paused."""

    @property
    def max_batch(self) -> int: ...

    @property
    def link_up(self) -> bool | None:
        """For a route over a standing link (LINK SMPP): whether it is bound now.

        None for routes without one (HTTP): their health is what their answers
        say, which the router's circuit breaker counts.
        """

    def submit(self, messages: list[Message]) -> Deferred[list[SubmitOutcome]]:
        """Hand messages to LINK; never fails, every message gets an outcome."""

    def start(self) -> None: ...

    def stop(self) -> Deferred[None]: ...


class Inbound(Protocol):
    """What a connector hands back to the gateway: reports and MO from LINK.

    Each Deferred fires once what it carried is durably stored, or fails if it
    could not be: only then may the connector acknowledge to LINK (HTTP 200,
    deliver_sm_resp ESME_ROK), and on failure it must answer so that LINK retries.
    """

    def reports(self, connector: str, reports: list[Report]) -> Deferred[None]: ...

    def mo_received(self, messages: list[IncomingMo]) -> Deferred[None]: ...


__all__ = ["Connector", "Inbound"]
