"""Delivery reports -> message state and the receipt an ESME should get.

Pure functions (no I/O, no clock): the store calls `decide` inside the
transaction that updates the message, so a report is applied exactly once.

Rules (DESIGN section 5):
- A report for a message already final is a duplicate: counted, dropped.
- A report `id$n` is one part of a message Common split. The message becomes
  final when as many parts are final as the report's `segments` says (or as the
  gateway counted when it accepted the text). The receipt is DELIVRD only if
  every part was delivered, else the stat and err of the first failed part;
  `dlvrd` counts delivered parts.
- Which receipts reach the ESME follows its registered_delivery: bits 1-0 = 1
  any final state, 2 failures only; 0x10 intermediate notifications too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.mapping import Outcome

REGISTERED_ANY = 0x01
REGISTERED_FAILURE = 0x02
REGISTERED_INTERMEDIATE = 0x10


def split_part(report_id: str) -> tuple[str, int | None]:
    """`abc$3` -> ("abc", 3); ids without a valid part suffix are whole."""
    base, sep, suffix = report_id.rpartition("$")
    if sep and suffix.isascii() and suffix.isdigit() and len(suffix) <= 9:
        return base, int(suffix)
    return report_id, None


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str  # "final", "intermediate", "partial", "duplicate"
    outcome: Outcome | None
    parts: dict[str, Outcome]
    sub: int = 1
    dlvrd: int = 0


def decide(
    *,
    already_final: bool,
    parts: Mapping[str, Outcome],
    expected_parts: int,
    outcome: Outcome,
    part: int | None,
    segments: int | None,
) -> Decision:
    """Apply one report, saying `outcome`, to a message whose part outcomes so far
    are `parts`. The caller turns what LINK said into the outcome: a Common
    resultCode through the result-code table, or LINK SMPP's stat and err as given.
    """
    current = dict(parts)
    if already_final:
        return Decision("duplicate", None, current)
    if part is None:
        if not outcome.final:
            return Decision("intermediate", outcome, current)
        return Decision("final", outcome, current, 1, 1 if outcome.stat == "DELIVRD" else 0)

    key = str(part)
    previous = current.get(key)
    if previous is not None and previous.final:
        return Decision("duplicate", None, current)
    current[key] = outcome
    if not outcome.final:
        return Decision("intermediate", outcome, current)
    total = segments if segments and segments > 0 else max(expected_parts, 1)
    finals = {int(k): o for k, o in current.items() if o.final}
    if len(finals) < total:
        return Decision("partial", outcome, current)
    delivered = sum(1 for o in finals.values() if o.stat == "DELIVRD")
    failed = [finals[k] for k in sorted(finals) if finals[k].stat != "DELIVRD"]
    final = failed[0] if failed else finals[min(finals)]
    return Decision("final", final, current, total, delivered)


# How far LINK's clock may be from ours, and a minute-precision date before the
# submission, before a reported time is not believed.
_CLOCK_SLACK = 300.0


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
