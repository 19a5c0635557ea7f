"""Reports -> message state and the receipt an ESME should get: the rules, pure.

`settle(book, report, now)` applies one report through the store's primitives
(gateway.store.base.ReportBook), inside the store's transaction, so each report
is applied exactly once, in order; `decide` is the part logic, on data alone.

Rules (DESIGN section 5):
- A report for a message already final is a duplicate: counted, dropped. The
  one exception is a message delivered with its billing still to come (1007):
  the first final report after it settles the billing (`billed` or
  `billing_failed`), and a failure gets a second receipt only where the account
  asked for one (`billing_receipts`).
- A report for one part (`Report.part`, Common's `id$n`, or a segment's id on
  LINK's SMPP route) is aggregated: the message becomes final when as many
  parts are final as the report's `segments` says (or as the gateway counted
  when it accepted the text). The receipt is DELIVRD only if every part was
  delivered, else the stat and err of the first failed part; `dlvrd` counts
  delivered parts.
- Which receipts reach the ESME follows its registered_delivery
  (gateway/intake/receipts.py); a reassembled message's go to each of its
  parts, by what the segments carrying each part became.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.intake.receipts import combined, done_time, receipts_for
from gateway.records import Outcome, Receipt, Report, ReportResult, record
from gateway.store.base import FINAL, ReportBook, Tracked

BILLING_PENDING = "pending"


@record
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
    are `parts`."""
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
    final, _, delivered = combined([finals[k] for k in sorted(finals)])
    return Decision("final", final, current, total, delivered)


def settle(book: ReportBook, report: Report, now: float) -> ReportResult:
    """What `report` does to its message; changes recorded through `book`."""
    outcome = report.outcome
    if report.part is None and outcome.final:
        billing = BILLING_PENDING if outcome.billing_pending else None
        closed = book.close_open(report, outcome, now, billing)
        if closed is not None:
            kind = "billing_pending" if billing else "final"
            return _reported(book, report, closed, kind, outcome, 1, None, now, None)
    tracked = book.find(report)
    if tracked is None:
        return ReportResult(report, "unknown")
    if tracked.state == FINAL and tracked.billing == BILLING_PENDING:
        return _billing_reported(book, report, tracked, now)
    part = report.part if report.part is not None else tracked.part
    decision = decide(
        already_final=tracked.state == FINAL,
        parts=tracked.parts,
        expected_parts=tracked.expected_parts,
        outcome=outcome,
        part=part,
        segments=report.segments,
    )
    if decision.kind == "duplicate":
        return ReportResult(report, "duplicate", message_id=tracked.id)
    result = decision.outcome
    assert result is not None
    kind = decision.kind
    if kind == "final":
        pending = result.stat == "DELIVRD" and (
            result.billing_pending or any(o.billing_pending for o in decision.parts.values())
        )
        if pending:
            kind = "billing_pending"
        book.update(
            tracked.id,
            parts=decision.parts,
            final=result,
            done_at=now,
            billing=BILLING_PENDING if pending else None,
            upstream_id=report.upstream_id,
        )
    elif decision.parts:
        book.update(tracked.id, parts=decision.parts)
    return _reported(
        book, report, tracked, kind, result, decision.sub, decision.dlvrd, now, decision.parts
    )


def _reported(
    book: ReportBook,
    report: Report,
    tracked: Tracked,
    kind: str,
    outcome: Outcome,
    sub: int,
    dlvrd: int | None,
    now: float,
    parts: Mapping[str, Outcome] | None,
) -> ReportResult:
    """The result of a report that changed its message; keeps the receipts wanted
    (one, or one per part of a reassembled message)."""
    final = kind in ("final", "billing_pending")
    receipts: tuple[Receipt, ...] = ()
    if kind != "partial":
        done = done_time(report.reported_at, tracked.submitted_at, now)
        receipts = receipts_for(tracked, outcome, done, sub=sub, dlvrd=dlvrd, parts=parts)
    if not receipts:
        return ReportResult(
            report,
            kind if kind == "partial" else "silent",
            stat=outcome.stat,
            message_id=tracked.id,
            final=final,
        )
    stored = tuple(book.add_receipt(r) for r in receipts)
    return ReportResult(report, kind, stored, outcome.stat, message_id=tracked.id, final=final)


def _billing_reported(
    book: ReportBook, report: Report, tracked: Tracked, now: float
) -> ReportResult:
    """A report for a message delivered with its billing still to come (1007).

    The first final one settles it: recorded as its code, counted as billed
    (DELIVRD, e.g. 1001) or billing_failed (22xx and any other); the ESME, which
    had its DELIVRD, hears of a failure only when its account has
    billing_receipts and it asked for receipts of failures.
    """
    outcome = report.outcome
    if not outcome.final:
        return ReportResult(report, "intermediate", stat=outcome.stat, message_id=tracked.id)
    book.update(tracked.id, billing=str(report.code if report.code is not None else outcome.stat))
    if outcome.stat == "DELIVRD":
        return ReportResult(report, "billed", stat=outcome.stat, message_id=tracked.id)
    if not tracked.billing_receipt:
        return ReportResult(report, "billing_failed", stat=outcome.stat, message_id=tracked.id)
    result = _reported(book, report, tracked, "final", outcome, 1, 1, now, None)
    return ReportResult(
        report, "billing_failed", result.receipts, outcome.stat, message_id=tracked.id
    )


__all__ = ["BILLING_PENDING", "Decision", "decide", "settle"]
