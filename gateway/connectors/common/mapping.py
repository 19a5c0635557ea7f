"""The Common route's wire as data: a Message -> a send request's fields, a
delivery report -> a Report (seed 001).

What always holds:
- A message's fields are seed 001's `sendRequestMessage`: source and sourceTON
  from the sender, destination (always MSISDN), the content as `dcs` TEXT (a
  whole text, which Common encodes and splits) or, for a segment the ESME made,
  GSM / UCS2 / BINARY with its `userDataHeader`; premium fields; and
  `customParameters`: the account's, `flash.sms` for flash, `scheduledTime`
  (RFC 3339) while the schedule is still ahead when the message is sent.
- `relativeValidityTime` is what the message has left, rounded up to a minute
  and kept within Common's 15 minutes to 48 hours.
- A report's resultCode becomes its receipt outcome by the result-code table in
  force (`CommonReports`, which a reload reconfigures); `id$n` names part n.
- Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from gateway.connectors.common.payloads import DeliveryReport
from gateway.connectors.common.results import RESULT_CODES, outcome_for
from gateway.records import Alphabet, Message, Outcome, PartyKind, Report
from gateway.smpp.times import parse_rfc3339, rfc3339

# Common's TON names (seed 001, "TON").
COMMON_TON: Final[Mapping[PartyKind, str]] = MappingProxyType(
    {
        PartyKind.MSISDN: "MSISDN",
        PartyKind.SHORT_CODE: "SHORTNUMBER",
        PartyKind.ALPHANUMERIC: "ALPHANUMERIC",
    }
)
_SEGMENT_DCS: Final[Mapping[Alphabet, str]] = MappingProxyType(
    {Alphabet.GSM: "GSM", Alphabet.UCS2: "UCS2", Alphabet.BINARY: "BINARY"}
)
# Seed 001: relativeValidityTime between 15 minutes and 48 hours.
MIN_VALIDITY_S: Final = 15 * 60
MAX_VALIDITY_S: Final = 48 * 3600


def message_fields(message: Message, now: float) -> dict[str, Any]:
    """The message's own fields of a send request (the envelope is the connector's)."""
    body = message.body
    fields: dict[str, Any] = {
        "source": message.sender.value,
        "sourceTON": COMMON_TON[message.sender.kind],
        "destination": message.recipient,
        "destinationTON": "MSISDN",
    }
    if body.udh is not None:
        fields["dcs"] = _SEGMENT_DCS[body.alphabet or Alphabet.BINARY]
        fields["userDataHeader"] = body.udh.hex().upper()
    else:
        fields["dcs"] = "BINARY" if body.data is not None else "TEXT"
    fields["userData"] = body.text if body.text is not None else (body.data or b"").hex().upper()
    if message.premium:
        fields.update(message.premium)
    custom = dict(message.custom)
    if body.flash:
        custom["flash.sms"] = "true"
    if message.scheduled_at is not None and message.scheduled_at > now:
        custom["scheduledTime"] = rfc3339(message.scheduled_at)
    if custom:
        fields["customParameters"] = custom
    return fields


def relative_validity_ms(message: Message, now: float) -> int:
    """What is left of the message's validity, rounded up to a minute, clamped per Common.

    Common counts relativeValidityTime from when it sends the message, which for
    one scheduled through it (scheduledTime) is the scheduled time: then the
    whole validity is left, however far ahead the schedule is.
    """
    minutes = math.ceil(message.validity_left(now) / 60.0)
    return int(min(max(minutes * 60, MIN_VALIDITY_S), MAX_VALIDITY_S) * 1000)


def priority(message: Message) -> str | None:
    """Common's priority: HIGH for priority_flag 1-3, else left out (NORMAL)."""
    return "HIGH" if message.priority >= 1 else None


def split_part(report_id: str) -> tuple[str, int | None]:
    """`abc$3` -> ("abc", 3); ids without a valid part suffix are whole."""
    base, sep, suffix = report_id.rpartition("$")
    if sep and suffix.isascii() and suffix.isdigit() and len(suffix) <= 9:
        return base, int(suffix)
    return report_id, None


class CommonReports:
    """Common's delivery reports as Reports, by the result-code table in force."""

    def __init__(self, table: Mapping[int, Outcome] = RESULT_CODES) -> None:
        self._table = table

    def reconfigure(self, table: Mapping[int, Outcome]) -> None:
        self._table = table

    def report(self, report: DeliveryReport) -> Report:
        upstream_id, part = split_part(report.id)
        return Report(
            upstream_id=upstream_id,
            outcome=outcome_for(report.result_code, self._table),
            ref_id=report.ref_id,
            part=part,
            segments=report.segments,
            code=report.result_code,
            reported_at=parse_rfc3339(report.timestamp) if report.timestamp else None,
        )


__all__ = [
    "COMMON_TON",
    "MAX_VALIDITY_S",
    "MIN_VALIDITY_S",
    "CommonReports",
    "message_fields",
    "priority",
    "relative_validity_ms",
    "split_part",
]
