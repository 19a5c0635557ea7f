"""The receipts of a reassembled message (gateway.intake.receipts.receipts_for): one
per part the ESME sent, under its own id, by its own registered_delivery, saying
what became of the route's segments that carried its text.

The messages are made by gateway.mt.reassembly as the gateway makes them
(tests/unit/test_reassembly.py); the receipts' fields are worked out here from
the members and the outcomes.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.intake.receipts import receipts_for
from gateway.mt.reassembly import Reassembler, merge
from gateway.records import Member, Message, Outcome, Receipt
from gateway.smpp.pdu import MessageState
from tests.support.records import DELIVERED, ENROUTE, REJECTED, UNDELIVERED, receipt
from tests.unit.test_reassembly import SETTINGS, T0, TIMEOUT, Spec, arrive, long_messages

DONE = T0 + 500
EXPIRED = Outcome("EXPIRED", 3, True, MessageState.EXPIRED)
FINAL = (DELIVERED, UNDELIVERED, REJECTED, EXPIRED)
# registered_delivery: bits 1-0 (0 none, 1 any final, 2 failures only, 3 reserved)
# and 0x10 for intermediate notifications.
REQUESTS = (0x00, 0x01, 0x02, 0x03, 0x10, 0x11, 0x12)


def whole_of(spec: Spec, requests: list[int], order: list[int] | None = None) -> Message:
    """The message the parts make, part i (in `order`, 1..N by default) asking
    for receipts by requests[i] and submitted at T0 + i."""
    r = Reassembler(TIMEOUT)
    sent = [
        spec.part(f"p{i}", seq, at=T0 + i, registered_delivery=requests[i])
        for i, seq in enumerate(order or range(1, spec.total + 1))
    ]
    for m in sent:
        arrive(r, m)
    answers = [r.stored(m.id) for m in sent]
    group = answers[-1]
    assert group is not None
    return merge(group, "whole-1")


def asks(registered_delivery: int, outcome: Outcome) -> bool:
    """SMPP 3.4 section 5.2.17, as an ESME reads it."""
    if not outcome.final:
        return bool(registered_delivery & 0x10)
    mode = registered_delivery & 0x03
    return mode == 1 or (mode == 2 and outcome.stat != "DELIVRD")


def own_outcome(
    member: Member, outcome: Outcome, parts: dict[str, Outcome] | None
) -> tuple[Outcome, int, int]:
    """(what the member's receipt says, sub, dlvrd)."""
    if parts is not None and outcome.final and member.segments:
        carried = [parts.get(str(n)) for n in member.segments]
        if all(o is not None for o in carried):
            known = [o for o in carried if o is not None]
            failed = [o for o in known if o.stat != "DELIVRD"]
            said = failed[0] if failed else DELIVERED
            return said, len(known), len(known) - len(failed)
    return outcome, 1, int(outcome.stat == "DELIVRD")


def expected_receipts(
    whole: Message, outcome: Outcome, parts: dict[str, Outcome] | None
) -> list[Receipt]:
    out = []
    for member in whole.members:
        said, sub, dlvrd = own_outcome(member, outcome, parts)
        if asks(member.registered_delivery, said):
            out.append(
                receipt(
                    member.id,
                    stat=said.stat,
                    err=said.err,
                    sub=sub,
                    dlvrd=dlvrd,
                    submit_date=member.submitted_at,
                    done_date=DONE,
                    text=member.text_head,
                )
            )
    return out


@SETTINGS
@given(
    spec=long_messages(max_parts=6),
    data=st.data(),
    outcome=st.sampled_from((*FINAL, ENROUTE)),
    coverage=st.sampled_from(("every segment", "some segments", "none")),
)
def test_every_member_gets_the_receipt_it_asked_for_about_its_own_segments(
    spec: Spec, data: st.DataObject, outcome: Outcome, coverage: str
) -> None:
    requests = data.draw(st.lists(st.sampled_from(REQUESTS), min_size=6, max_size=6))
    whole = whole_of(spec, requests)
    segment_outcomes = data.draw(
        st.lists(st.sampled_from(FINAL), min_size=whole.parts, max_size=whole.parts)
    )
    parts: dict[str, Outcome] | None = {str(n): o for n, o in enumerate(segment_outcomes)}
    if coverage == "some segments":
        gone = data.draw(st.sets(st.integers(0, whole.parts - 1), min_size=1))
        parts = {n: o for n, o in (parts or {}).items() if int(n) not in gone}
    elif coverage == "none":
        parts = None
    receipts = receipts_for(whole, outcome, DONE, parts=parts)
    assert list(receipts) == expected_receipts(whole, outcome, parts)
    # The whole message's id was never told to the ESME.
    assert all(r.message_id != whole.id for r in receipts)


def test_a_part_across_two_segments_is_delivered_only_if_both_were() -> None:
    # 300 GSM characters are two SMS: 153 and 147. Part 2 lies across both.
    whole = whole_of(Spec(("a" * 100, "b" * 100, "c" * 100)), [0x01, 0x01, 0x01])
    assert [(m.id, m.seq, m.segments) for m in whole.members] == [
        ("p0", 1, (0,)),
        ("p1", 2, (0, 1)),
        ("p2", 3, (1,)),
    ]
    parts = {"0": DELIVERED, "1": UNDELIVERED}
    receipts = receipts_for(whole, UNDELIVERED, DONE, parts=parts)
    assert [(r.message_id, r.stat, r.err, r.sub, r.dlvrd) for r in receipts] == [
        ("p0", "DELIVRD", 0, 1, 1),
        ("p1", "UNDELIV", 1, 2, 1),
        ("p2", "UNDELIV", 1, 1, 0),
    ]
    assert [(r.submit_date, r.text) for r in receipts] == [
        (T0, "a" * 20),
        (T0 + 1, "b" * 20),
        (T0 + 2, "c" * 20),
    ]
    # The first failure of its segments is what a part says.
    receipts = receipts_for(whole, REJECTED, DONE, parts={"0": REJECTED, "1": UNDELIVERED})
    assert [(r.stat, r.err, r.sub, r.dlvrd) for r in receipts][1] == ("REJECTD", 127, 2, 0)


def test_each_member_by_its_own_request() -> None:
    whole = whole_of(Spec(("a" * 100, "b" * 100, "c" * 100, "d" * 100)), [0x00, 0x01, 0x02, 0x12])
    # 400 characters, three SMS: [0, 153), [153, 306), [306, 400).
    assert [m.segments for m in whole.members] == [(0,), (0, 1), (1,), (1, 2)]
    parts = {"0": DELIVERED, "1": DELIVERED, "2": UNDELIVERED}
    # Part 1 asked for none; part 3 for failures only, and its segment was delivered;
    # part 4 for failures only, and one of its segments failed.
    receipts = receipts_for(whole, UNDELIVERED, DONE, parts=parts)
    assert [(r.message_id, r.stat) for r in receipts] == [("p1", "DELIVRD"), ("p3", "UNDELIV")]
    # An intermediate state only for the part that asked for them, about the whole.
    receipts = receipts_for(whole, ENROUTE, DONE, parts=parts)
    assert [(r.message_id, r.stat, r.sub, r.dlvrd) for r in receipts] == [("p3", "ENROUTE", 1, 0)]


def test_without_the_segments_outcomes_every_member_says_the_whole_outcome() -> None:
    whole = whole_of(Spec(("a" * 100, "b" * 100, "c" * 100)), [0x01, 0x01, 0x02])
    receipts = receipts_for(whole, DELIVERED, DONE)
    assert [(r.message_id, r.stat, r.sub, r.dlvrd) for r in receipts] == [
        ("p0", "DELIVRD", 1, 1),
        ("p1", "DELIVRD", 1, 1),
    ]
    receipts = receipts_for(whole, UNDELIVERED, DONE, parts=None)
    assert [(r.message_id, r.stat, r.err) for r in receipts] == [
        ("p0", "UNDELIV", 1),
        ("p1", "UNDELIV", 1),
        ("p2", "UNDELIV", 1),
    ]
    # Parts the route numbered otherwise (segment 1 missing): the whole outcome,
    # except for the part whose segments are all known.
    receipts = receipts_for(whole, UNDELIVERED, DONE, parts={"0": DELIVERED})
    assert [(r.message_id, r.stat) for r in receipts] == [
        ("p0", "DELIVRD"),
        ("p1", "UNDELIV"),
        ("p2", "UNDELIV"),
    ]


def test_copies_get_the_receipt_their_original_gets() -> None:
    spec = Spec(("a" * 100, "b" * 100))
    whole = whole_of(spec, [0x01, 0x01, 0x02], order=[2, 1, 2])
    assert [(m.id, m.seq, m.segments) for m in whole.members] == [
        ("p1", 1, (0,)),
        ("p0", 2, (0, 1)),
        ("p2", 2, (0, 1)),
    ]
    receipts = receipts_for(whole, UNDELIVERED, DONE, parts={"0": DELIVERED, "1": EXPIRED})
    assert [(r.message_id, r.stat, r.sub, r.dlvrd) for r in receipts] == [
        ("p1", "DELIVRD", 1, 1),
        ("p0", "EXPIRED", 2, 1),
        ("p2", "EXPIRED", 2, 1),
    ]
    assert {r.source_addr for r in receipts} == {"4712345678"}
    assert {r.destination_addr for r in receipts} == {"SHOP"}
