"""LINK's Gate API (seed 000): the PartnerGates that post delivery reports and MO to us.

Responsible for: building the PartnerGate object for one of our callbacks, and
creating, listing, reading and deleting PartnerGates of one platform partner.

What always holds:

* Requests go through :class:`gateway.connectors.common.client.CommonClient`: the Gate API
  lives on the Common host under ``gate_path`` and takes the same account, so the
  Basic or OAuth 2.0 authentication, the token handling, the timeout and the TLS
  checks are the client's, not repeated here.
* Every failure is a :class:`CommonError`: an HTTP status other than 2xx with
  LINK's ErrorResponse code and description, or a transport problem.
* Path parameters are percent-encoded, so an id can never reach another resource.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from gateway.connectors.common.client import CommonClient, CommonError

PARTNER_GATE = "PARTNER_GATE"
ONE_ORDERED = "ONE_ORDERED"
CONTENT_TYPE = "application/json"
# Seed 000 "Error Codes"; the client fills in 101100/101101 (seed 001) for a
# 401/403 whose body has no code.
ERROR_NAMES = {
    103000: "UNKNOWN_ERROR",
    103050: "STORAGE_ERROR",
    103100: "INVALID_AUTHENTICATION",
    103101: "ACCESS_DENIED",
    103201: "INVALID_PLATFORM_ID",
    103202: "INVALID_PARTNER_ID",
    103211: "INVALID_REF_ID",
    103212: "DUPLICATE_REF_ID",
    103290: "INVALID_FORWARDING_OBJECT",
    103300: "MISSING_PARAMETERS",
    103301: "INVALID_ID",
    103302: "INVALID_GATE",
    103303: "NO_GATES_FOUND",
    103304: "GATE_NOT_FOUND",
    103400: "ILLEGAL_RETURN_TYPE",
    101100: "INVALID_AUTHENTICATION",
    101101: "ACCESS_DENIED",
}
# What a list with nothing in it may be answered with.
NO_GATES_FOUND = 103303


def partner_gate(
    *,
    url: str,
    platform_id: str,
    platform_partner_id: str,
    username: str | None = None,
    password: str | None = None,
    ref_id: str | None = None,
) -> dict[str, Any]:
    """A PartnerGate (without its id) posting JSON to one URL, Basic credentials optional."""
    destination: dict[str, Any] = {"url": url, "contentType": CONTENT_TYPE}
    if username is not None:
        destination["username"] = username
        destination["password"] = password or ""
    gate: dict[str, Any] = {
        "type": PARTNER_GATE,
        "gateType": ONE_ORDERED,
        "platformId": platform_id,
        "platformPartnerId": platform_partner_id,
        "destinations": [destination],
    }
    if ref_id:
        gate["refId"] = ref_id
    return gate


class GateApi:
    """The PartnerGates of one platform partner."""

    def __init__(
        self, client: CommonClient, gate_path: str, platform_id: str, platform_partner_id: str
    ) -> None:
        self._client = client
        self._root = gate_path.rstrip("/") + "/partnergate"
        self._partner = (
            f"{self._root}/platform/{_segment(platform_id)}/partner/{_segment(platform_partner_id)}"
        )

    async def create(self, gate: dict[str, Any]) -> str:
        """POST a PartnerGate; returns the id LINK gave it (the end of the Location)."""
        answer = await self._client.request("POST", self._root, gate)
        gate_id = gate_id_from_location(answer.location)
        if gate_id is None:
            raise CommonError(
                f"HTTP {answer.status} without a gate id in its Location header"
                f" ({answer.location!r})",
                temporary=False,
                http_status=answer.status,
            )
        return gate_id

    async def list(self) -> list[dict[str, Any]]:
        try:
            answer = await self._client.request("GET", self._partner)
        except CommonError as e:
            # An empty list may come as "no gates found" rather than [].
            if e.http_status == 404 and e.code == NO_GATES_FOUND:
                return []
            raise
        gates = _json(answer.body)
        if not isinstance(gates, list) or not all(isinstance(g, dict) for g in gates):
            raise CommonError("the gate list is not a JSON array of objects", temporary=False)
        return gates

    async def get(self, gate_id: str) -> dict[str, Any]:
        answer = await self._client.request("GET", f"{self._partner}/id/{_segment(gate_id)}")
        gate = _json(answer.body)
        if not isinstance(gate, dict):
            raise CommonError("the gate is not a JSON object", temporary=False)
        return gate

    async def delete(self, gate_id: str) -> None:
        await self._client.request("DELETE", f"{self._partner}/id/{_segment(gate_id)}")


def gate_id_from_location(location: str | None) -> str | None:
    """The gate id in a Location such as ``.../partnergate/platform/P/partner/PP/id/ID``."""
    if not location:
        return None
    path = urlsplit(location).path.rstrip("/")
    head, _, last = path.rpartition("/")
    if not last or not head.endswith("/id"):
        return None
    return unquote(last)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise CommonError("unreadable JSON in the answer", temporary=False) from None


__all__ = ["ERROR_NAMES", "GateApi", "gate_id_from_location", "partner_gate"]
