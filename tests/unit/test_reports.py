"""The report rules: multipart aggregation and duplicates (gateway.intake.reports),
what an ESME asked for and a receipt's done date (gateway.intake.receipts), and
Common's part ids (gateway.connectors.common.mapping.split_part) (DESIGN 5).

Expected stat/err values are written out here, not read from the module's tables.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.connectors.common.mapping import split_part
from gateway.connectors.common.results import outcome_for
from gateway.intake.receipts import done_time, esme_wants
from gateway.intake.reports import Decision, decide
from gateway.records import Outcome
from gateway.smpp.pdu import MessageState

# --- split_part ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("report_id", "expected"),
    [
        ("abc", ("abc", None)),
        ("abc$0", ("abc", 0)),
        ("abc$1", ("abc", 1)),
        ("abc$12", ("abc", 12)),
        ("a$b$2", ("a$b", 2)),  # only the last `$` separates the part
        ("abc$", ("abc$", None)),
        ("abc$x", ("abc$x", None)),
        ("abc$-1", ("abc$-1", None)),
        ("abc$1.5", ("abc$1.5", None)),
        ("$3", ("", 3)),
        ("123456789", ("123456789", None)),
        # Unicode digits that int() cannot read, or a suffix too long to be a part
        # number, must not raise inside the store's transaction: the id is whole.
        ("abc$\u00b2", ("abc$\u00b2", None)),
        ("abc$\u0661", ("abc$\u0661", None)),
        ("abc$" + "9" * 5000, ("abc$" + "9" * 5000, None)),
    ],
    ids=lambda v: repr(v)[:30] if isinstance(v, str) else None,
)
def test_split_part(report_id: str, expected: tuple[str, int | None]) -> None:
    assert split_part(report_id) == expected


# --- decide --------------------------------------------------------------------

DELIVERED = 1001
EXPIRED = 1002
NOT_DELIVERED = 1006
UNKNOWN_SUBSCRIBER = 2104
SENT = 1000
QUEUED = 1005


def _decide(
    result_code: int,
    *,
    part: int | None = None,
    parts: dict[str, int] | None = None,
    segments: int | None = None,
    expected_parts: int = 1,
    already_final: bool = False,
) -> Decision:
    """decide() for a report of Common's `result_code`, parts reported as codes so far."""
    return decide(
        already_final=already_final,
        parts={k: outcome_for(v) for k, v in (parts or {}).items()},
        expected_parts=expected_parts,
        outcome=outcome_for(result_code),
        part=part,
        segments=segments,
    )


# (case, kwargs, kind, stat, err, sub, dlvrd)
DECIDE_CASES = [
    ("whole delivered", dict(result_code=DELIVERED), "final", "DELIVRD", 0, 1, 1),
    ("whole undeliverable", dict(result_code=NOT_DELIVERED), "final", "UNDELIV", 222, 1, 0),
    (
        "whole unknown subscriber",
        dict(result_code=UNKNOWN_SUBSCRIBER),
        "final",
        "UNDELIV",
        101,
        1,
        0,
    ),
    ("whole expired", dict(result_code=EXPIRED), "final", "EXPIRED", 220, 1, 0),
    ("whole unmapped code", dict(result_code=987654), "final", "UNKNOWN", 255, 1, 0),
    ("whole sent", dict(result_code=SENT), "intermediate", "ENROUTE", 0, None, None),
    ("whole queued", dict(result_code=QUEUED), "intermediate", "ENROUTE", 0, None, None),
    (
        "first of two parts",
        dict(result_code=DELIVERED, part=0, segments=2),
        "partial",
        "DELIVRD",
        0,
        None,
        None,
    ),
    (
        "second of two, both delivered",
        dict(result_code=DELIVERED, part=1, segments=2, parts={"0": DELIVERED}),
        "final",
        "DELIVRD",
        0,
        2,
        2,
    ),
    (
        "second of two fails",
        dict(result_code=NOT_DELIVERED, part=1, segments=2, parts={"0": DELIVERED}),
        "final",
        "UNDELIV",
        222,
        2,
        1,
    ),
    (
        "first failed part wins",
        dict(result_code=DELIVERED, part=1, segments=2, parts={"0": UNKNOWN_SUBSCRIBER}),
        "final",
        "UNDELIV",
        101,
        2,
        1,
    ),
    (
        "first failed by part number, not arrival",
        dict(result_code=UNKNOWN_SUBSCRIBER, part=0, segments=2, parts={"1": NOT_DELIVERED}),
        "final",
        "UNDELIV",
        101,
        2,
        0,
    ),
    (
        "two failures, part 0 decides",
        dict(result_code=NOT_DELIVERED, part=1, segments=2, parts={"0": EXPIRED}),
        "final",
        "EXPIRED",
        220,
        2,
        0,
    ),
    (
        "segments missing: the gateway's count decides",
        dict(result_code=DELIVERED, part=1, expected_parts=3, parts={"0": DELIVERED}),
        "partial",
        "DELIVRD",
        0,
        None,
        None,
    ),
    (
        "segments missing: third of three",
        dict(
            result_code=DELIVERED,
            part=2,
            expected_parts=3,
            parts={"0": DELIVERED, "1": DELIVERED},
        ),
        "final",
        "DELIVRD",
        0,
        3,
        3,
    ),
    (
        "segments 0 is no count",
        dict(result_code=DELIVERED, part=0, segments=0, expected_parts=2),
        "partial",
        "DELIVRD",
        0,
        None,
        None,
    ),
    (
        "intermediate part report",
        dict(result_code=SENT, part=0, segments=2),
        "intermediate",
        "ENROUTE",
        0,
        None,
        None,
    ),
    (
        "final after an intermediate for the same part",
        dict(result_code=DELIVERED, part=0, segments=2, parts={"0": SENT}),
        "partial",
        "DELIVRD",
        0,
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "kind", "stat", "err", "sub", "dlvrd"),
    [case[1:] for case in DECIDE_CASES],
    ids=[case[0] for case in DECIDE_CASES],
)
def test_decide(
    kwargs: dict[str, Any], kind: str, stat: str, err: int, sub: int | None, dlvrd: int | None
) -> None:
    decision = _decide(**kwargs)
    assert decision.kind == kind
    assert decision.outcome is not None
    assert (decision.outcome.stat, decision.outcome.err) == (stat, err)
    if sub is not None:
        assert (decision.sub, decision.dlvrd) == (sub, dlvrd)


def test_decide_records_the_part_result() -> None:
    decision = _decide(NOT_DELIVERED, part=1, segments=3, parts={"0": DELIVERED})
    assert decision.parts == {"0": outcome_for(DELIVERED), "1": outcome_for(NOT_DELIVERED)}


def test_decide_does_not_mutate_its_input() -> None:
    parts = {"0": outcome_for(DELIVERED)}
    decision = decide(
        already_final=False,
        parts=parts,
        expected_parts=1,
        outcome=outcome_for(NOT_DELIVERED),
        part=1,
        segments=2,
    )
    assert parts == {"0": outcome_for(DELIVERED)}
    assert decision.parts == {"0": outcome_for(DELIVERED), "1": outcome_for(NOT_DELIVERED)}
    assert decision.parts is not parts


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(result_code=DELIVERED, already_final=True),
        dict(result_code=SENT, already_final=True),
        dict(result_code=DELIVERED, part=1, segments=2, already_final=True),
        # The same part reported final twice (message not yet final).
        dict(result_code=DELIVERED, part=0, segments=3, parts={"0": DELIVERED}),
        dict(result_code=NOT_DELIVERED, part=0, segments=3, parts={"0": DELIVERED}),
    ],
)
def test_decide_duplicates(kwargs: dict[str, Any]) -> None:
    decision = _decide(**kwargs)
    assert decision.kind == "duplicate"
    assert decision.outcome is None


def test_decide_takes_the_outcome_it_is_given() -> None:
    # LINK SMPP's stat and err pass through as they are, whatever the Common table says.
    given = Outcome("DELETED", 221, True, MessageState.DELETED)
    decision = decide(
        already_final=False,
        parts={},
        expected_parts=1,
        outcome=given,
        part=None,
        segments=None,
    )
    assert decision.outcome is given


# --- esme_wants ------------------------------------------------------------------

_OUT = {
    "DELIVRD": Outcome("DELIVRD", 0, True, MessageState.DELIVERED),
    "UNDELIV": Outcome("UNDELIV", 222, True, MessageState.UNDELIVERABLE),
    "EXPIRED": Outcome("EXPIRED", 220, True, MessageState.EXPIRED),
    "REJECTD": Outcome("REJECTD", 127, True, MessageState.REJECTED),
    "ENROUTE": Outcome("ENROUTE", 0, False, MessageState.ENROUTE),
}


@pytest.mark.parametrize(
    ("registered_delivery", "stat", "wanted"),
    [
        (0x00, "DELIVRD", False),
        (0x00, "UNDELIV", False),
        (0x00, "ENROUTE", False),
        (0x01, "DELIVRD", True),
        (0x01, "UNDELIV", True),
        (0x01, "EXPIRED", True),
        (0x01, "ENROUTE", False),
        (0x02, "DELIVRD", False),
        (0x02, "UNDELIV", True),
        (0x02, "EXPIRED", True),
        (0x02, "REJECTD", True),
        (0x03, "DELIVRD", False),  # reserved value: no receipt
        (0x03, "UNDELIV", False),
        (0x10, "ENROUTE", True),
        (0x10, "DELIVRD", False),
        (0x11, "ENROUTE", True),
        (0x11, "DELIVRD", True),
        (0x12, "DELIVRD", False),
        (0x12, "UNDELIV", True),
        (0x04, "DELIVRD", False),  # SME acknowledgement bits alone ask for no receipt
        (0x05, "DELIVRD", True),
    ],
)
def test_esme_wants(registered_delivery: int, stat: str, wanted: bool) -> None:
    assert esme_wants(registered_delivery, _OUT[stat]) is wanted


@pytest.mark.parametrize(
    ("reported", "done"),
    [
        (None, 1000.0),  # no time given: when the report arrived
        (900.0, 900.0),  # LINK's time of the status
        (500.0, 500.0),  # the submission itself
        (450.0, 500.0),  # a minute-precision date a little before it: kept at it
        (100.0, 1000.0),  # far before the submission: not believed
        (1200.0, 1000.0),  # a little in our future: kept at now
        (5000.0, 1000.0),  # far in our future: not believed
    ],
)
def test_the_done_date_is_links_time_when_sane(reported: float | None, done: float) -> None:
    assert done_time(reported, submitted_at=500.0, now=1000.0) == done
