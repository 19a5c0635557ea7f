"""gateway.mt.reassembly: which parts wait, when a message is whole, what it becomes.

Properties over arrival orders, copies and losses, for 8- and 16-bit references
and for the UDH that gateway.mt.submission makes of sar_* TLVs; examples for
the "oversized" policy, reused references, a restart, cancel_sm and merge().
`spans` (gateway.smpp.text) is here too: merge() numbers members' segments by it.
Receipts per member are tests/unit/test_reassembly_receipts.py.

Expected values are worked out here from the parts themselves (their texts,
their numbers, one SMS being 160 septets or 140 octets), never read from the
module's own tables.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mt.reassembly import (
    ERR_BAD_LENGTH,
    Arrival,
    Group,
    Reassembler,
    Unmergeable,
    fate,
    key_of,
    merge,
    numbers,
)
from gateway.mt.submission import AccountPolicy, map_submit
from gateway.records import Address, Alphabet, Body, Message
from gateway.smpp import pdu as p
from gateway.smpp.text import Concat, encode_for_esme, gsm_septets, is_gsm, spans, split_octets
from tests.support.pdus import submit
from tests.support.records import message

TIMEOUT = 60.0
T0 = 1_760_000_000.0
SETTINGS = settings(max_examples=60, deadline=None)
ALWAYS = "always"
OVERSIZED = "oversized"

# --- content ------------------------------------------------------------------------

_BMP = [chr(c) for c in range(0x3000)]
GSM_BASIC = tuple(c for c in _BMP if is_gsm(c) and gsm_septets(c) == 1)
GSM_EXTENSION = tuple(c for c in _BMP if is_gsm(c) and gsm_septets(c) == 2)
GSM_CHAR = st.sampled_from(GSM_BASIC) | st.sampled_from(GSM_EXTENSION)
# UCS-2: the Basic Multilingual Plane without surrogates (Common takes nothing else).
ANY_CHAR = GSM_CHAR | st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"])


def udh_of(ref: int, total: int, seq: int, bits: int) -> bytes:
    if bits == 8:
        return bytes((0x05, 0x00, 0x03, ref, total, seq))
    return bytes((0x06, 0x08, 0x04, ref >> 8, ref & 0xFF, total, seq))


def alphabet_of(udh: bytes, text: str | None, data: bytes | None) -> Alphabet | None:
    """The alphabet a part goes in when it fits one SMS with its UDH, else None."""
    if data is not None:
        return Alphabet.BINARY if len(udh) + len(data) <= 140 else None
    assert text is not None
    if is_gsm(text):
        # The UDH is padded to whole septets before GSM text.
        return Alphabet.GSM if (len(udh) * 8 + 6) // 7 + gsm_septets(text) <= 160 else None
    return Alphabet.UCS2 if len(udh) + 2 * len(text) <= 140 else None


def sar_body(ref: int, total: int, seq: int, text: str | None, data: bytes | None) -> Body:
    """What gateway.mt.submission makes of a part numbered by sar_* TLVs."""
    if data is None:
        assert text is not None
        data_coding, octets = encode_for_esme(text)
    else:
        data_coding, octets = 4, data
    pdu = submit(
        data_coding=data_coding,
        short_message=b"",
        tlvs=[
            (p.Tag.SAR_MSG_REF_NUM, ref.to_bytes(2, "big")),
            (p.Tag.SAR_TOTAL_SEGMENTS, bytes([total])),
            (p.Tag.SAR_SEGMENT_SEQNUM, bytes([seq])),
            (p.Tag.MESSAGE_PAYLOAD, octets),
        ],
    )
    taken = map_submit(pdu, AccountPolicy(default_country_code="47", reassemble=ALWAYS), now=T0)
    assert taken.concat is not None and taken.fits == (taken.body.alphabet is not None)
    return taken.body


@dataclass(frozen=True)
class Spec:
    """One long message: its parts' contents by number, and how they are numbered
    ("udh8", "udh16": the ESME's UDH; "sar": sar_* TLVs made into one)."""

    contents: tuple[str | bytes, ...]
    ref: int = 7
    how: str = "udh8"

    @property
    def total(self) -> int:
        return len(self.contents)

    @property
    def bits(self) -> int:
        return 8 if self.how == "udh8" or (self.how == "sar" and self.ref <= 0xFF) else 16

    def part(self, id_: str, seq: int, *, at: float = T0, **overrides: object) -> Message:
        content = self.contents[seq - 1]
        text = content if isinstance(content, str) else None
        data = content if isinstance(content, bytes) else None
        if self.how == "sar":
            body = sar_body(self.ref, self.total, seq, text, data)
        else:
            udh = udh_of(self.ref, self.total, seq, self.bits)
            body = Body(text=text, data=data, udh=udh, alphabet=alphabet_of(udh, text, data))
        values: dict[str, object] = {"text_head": (text or "")[:20], "submitted_at": at}
        values.update(overrides)
        return message(id_, body=body, **values)

    def fits(self, seq: int) -> bool:
        return self.part("probe", seq).body.alphabet is not None


def content_strategy(kind: str, fitting: bool) -> st.SearchStrategy[str | bytes]:
    # Sizes that fit one SMS whatever the UDH (7 octets at most) when `fitting`.
    if kind == "binary":
        return st.binary(min_size=1, max_size=133 if fitting else 200)
    if kind == "gsm":
        return st.text(GSM_CHAR, min_size=1, max_size=76 if fitting else 200)
    return st.text(ANY_CHAR, min_size=1, max_size=66 if fitting else 200)


@st.composite
def long_messages(
    draw: st.DrawFn,
    min_parts: int = 1,
    max_parts: int = 10,
    kinds: tuple[str, ...] = ("gsm", "ucs2", "binary"),
    fitting: bool = False,
) -> Spec:
    kind = draw(st.sampled_from(kinds))
    n = draw(st.integers(min_parts, max_parts))
    item = content_strategy(kind, fitting)
    contents = tuple(draw(st.lists(item, min_size=n, max_size=n)))
    how = draw(st.sampled_from(("udh8", "udh16", "sar")))
    ref = draw(st.integers(0, 0xFF if how == "udh8" else 0xFFFF))
    return Spec(contents, ref, how)


def arrivals(total: int, numbers_: list[int] | None = None) -> st.SearchStrategy[list[int]]:
    """Every number of `numbers_` (all of 1..total by default) in any order, some twice."""
    present = list(range(1, total + 1)) if numbers_ is None else numbers_
    copies = st.lists(st.sampled_from(present), max_size=4)
    return copies.flatmap(lambda more: st.permutations([*present, *more]))


def arrive(r: Reassembler, m: Message, policy: str = ALWAYS, now: float | None = None) -> Arrival:
    concat = numbers(m)
    assert concat is not None
    fits = m.body.alphabet is not None
    return r.arrive(m, concat, fits, policy, m.submitted_at if now is None else now)


def parts_of(
    spec: Spec, order: list[int], *, start: float = T0, step: float = 1.0
) -> list[Message]:
    return [
        spec.part(f"p{i}", seq, at=start + i * step, registered_delivery=i % 3)
        for i, seq in enumerate(order)
    ]


def seq_of(m: Message) -> int:
    concat = numbers(m)
    assert concat is not None
    return concat.seq


def ids(messages: list[Message] | tuple[Message, ...]) -> list[str]:
    return [m.id for m in messages]


def check_whole(whole: Message, spec: Spec, parts: list[Message]) -> None:
    """The merged message: the content in number order, one member per part sent,
    each carried by the route's segments that hold some of its characters."""
    ordered = [spec.contents[n] for n in range(spec.total)]
    if isinstance(ordered[0], str):
        text = "".join(str(c) for c in ordered)
        assert (whole.body.text, whole.body.data) == (text, None)
        cut = spans(text, None)
    else:
        data = b"".join(c for c in ordered if isinstance(c, bytes))
        assert (whole.body.text, whole.body.data) == (None, data)
        cut = spans(None, data)
    assert whole.body.udh is None and whole.body.alphabet is None
    assert whole.parts == len(cut)
    # Which route segment holds each character (or octet).
    owner = [n for n, (a, b) in enumerate(cut) for _ in range(a, b)]
    starts = [sum(len(c) for c in ordered[:n]) for n in range(spec.total + 1)]
    by_id = {m.id: m for m in parts}
    assert sorted(m.id for m in whole.members) == sorted(by_id)
    for member in whole.members:
        sent = by_id[member.id]
        concat = numbers(sent)
        assert concat is not None and member.seq == concat.seq
        low, high = starts[member.seq - 1], starts[member.seq]
        assert member.segments == tuple(sorted(set(owner[low:high])))
        assert member.registered_delivery == sent.registered_delivery
        assert (member.submitted_at, member.text_head) == (sent.submitted_at, sent.text_head)
    assert [m.seq for m in whole.members] == sorted(m.seq for m in whole.members)


# --- the parts' numbers -----------------------------------------------------------


@SETTINGS
@given(spec=long_messages(max_parts=3))
def test_numbers_read_both_reference_widths_and_sar_made_udhs(spec: Spec) -> None:
    for seq in range(1, spec.total + 1):
        m = spec.part("p", seq)
        concat = numbers(m)
        assert concat == Concat(spec.ref, spec.total, seq, spec.bits)
        assert key_of(m, concat) == ("shop1", "SHOP", "4712345678", spec.bits, spec.ref)
        content = spec.contents[seq - 1]
        assert (m.body.text or m.body.data) == content
        # The alphabet the part goes in is what gateway.mt.submission decides.
        text = content if isinstance(content, str) else None
        data = content if isinstance(content, bytes) else None
        assert m.body.alphabet == alphabet_of(m.body.udh or b"", text, data)


def test_numbers_of_a_message_without_concatenation() -> None:
    assert numbers(message("m")) is None
    bad = message("m", body=Body(text="x", udh=bytes((0x05, 0x00, 0x03, 1, 2, 3))))
    assert numbers(bad) is None


# --- policy "always": any order, copies -------------------------------------------


@SETTINGS
@given(spec=long_messages(), data=st.data())
def test_always_the_parts_make_one_message_once_every_copy_is_stored(
    spec: Spec, data: st.DataObject
) -> None:
    order = data.draw(arrivals(spec.total))
    parts = parts_of(spec, order)
    r = Reassembler(TIMEOUT)
    for m in parts:
        assert arrive(r, m) == Arrival(True)
    assert r.held("shop1") == len(parts) and len(r) == 1
    answers = [r.stored(m.id) for m in parts]
    assert answers[:-1] == [None] * (len(parts) - 1)
    group = answers[-1]
    assert group is not None
    assert (r.held("shop1"), len(r), r.due(T0 + 10 * TIMEOUT)) == (0, 0, [])
    assert r.stored(parts[-1].id) is None
    check_whole(merge(group, "whole-1"), spec, parts)


@SETTINGS
@given(spec=long_messages(max_parts=5), data=st.data())
def test_always_a_message_is_whole_at_the_first_moment_all_it_has_is_stored(
    spec: Spec, data: st.DataObject
) -> None:
    """Arrivals and the store's answers interleaved: a copy arriving after its
    message was whole starts a message of its own."""
    order = data.draw(arrivals(spec.total))
    parts = parts_of(spec, order)
    r = Reassembler(TIMEOUT)
    arrived: list[Message] = []
    pending: list[Message] = []
    waiting: list[Message] = []  # the parts of the message being put together
    stored_ids: set[str] = set()
    for step in range(2 * len(parts)):
        choices = ["arrive"] * (len(arrived) < len(parts)) + ["store"] * bool(pending)
        if data.draw(st.sampled_from(choices), label=f"step {step}") == "arrive":
            m = parts[len(arrived)]
            arrived.append(m)
            pending.append(m)
            waiting.append(m)
            assert arrive(r, m).hold
            continue
        m = pending.pop(data.draw(st.integers(0, len(pending) - 1)))
        stored_ids.add(m.id)
        group = r.stored(m.id)
        numbers_there = {seq_of(w) for w in waiting}
        whole = len(numbers_there) == spec.total and all(w.id in stored_ids for w in waiting)
        if not whole:
            assert group is None
            continue
        assert group is not None
        assert sorted(x.message.id for x in group.members()) == sorted(ids(waiting))
        check_whole(merge(group, "whole"), spec, waiting)
        waiting = []
    assert r.held("shop1") == len(waiting)


# --- losses -----------------------------------------------------------------------


@SETTINGS
@given(spec=long_messages(min_parts=2), data=st.data())
def test_always_a_message_missing_parts_waits_its_time_then_meets_its_fate(
    spec: Spec, data: st.DataObject
) -> None:
    present = data.draw(
        st.lists(st.integers(1, spec.total), min_size=1, max_size=spec.total - 1, unique=True)
    )
    order = data.draw(arrivals(spec.total, sorted(present)))
    parts = parts_of(spec, order, step=TIMEOUT / 20)
    late = data.draw(st.sampled_from(parts))  # its write is the last to be answered
    r = Reassembler(TIMEOUT)
    for m in parts:
        assert arrive(r, m) == Arrival(True)
    for m in parts:
        if m is not late:
            assert r.stored(m.id) is None
    assert r.next_due() == T0 + TIMEOUT
    assert r.due(T0 + TIMEOUT - 0.001) == []
    # Nothing is decided about a part the store has not kept yet.
    assert r.due(T0 + 2 * TIMEOUT) == []
    assert r.stored(late.id) is None
    assert r.due(T0 + TIMEOUT - 0.001) == []
    [group] = r.due(T0 + TIMEOUT)
    assert (r.due(T0 + 10 * TIMEOUT), len(r), r.held("shop1"), r.next_due()) == ([], 0, 0, None)
    assert sorted(x.message.id for x in group.members()) == sorted(ids(parts))

    release, refuse = fate(group)
    first_of: dict[int, str] = {}
    for m, seq in zip(parts, order, strict=True):
        first_of.setdefault(seq, m.id)
    unique = [first_of[seq] for seq in sorted(first_of)]
    copies = [m.id for m in parts if m.id not in unique]
    if all(spec.fits(seq) for seq in present):
        assert (ids(release), ids(refuse)) == (unique, copies)
    else:
        assert release == []
        assert sorted(ids(refuse)) == sorted(ids(parts))


# --- policy "oversized" -----------------------------------------------------------


@SETTINGS
@given(spec=long_messages(fitting=True), data=st.data())
def test_oversized_well_formed_segments_in_order_are_never_held(
    spec: Spec, data: st.DataObject
) -> None:
    assert all(spec.fits(seq) for seq in range(1, spec.total + 1))
    r = Reassembler(TIMEOUT)
    parts = parts_of(spec, list(range(1, spec.total + 1)))
    for m in parts:
        assert arrive(r, m, OVERSIZED) == Arrival(False)
    # Later arrivals of the same message, in any order, go on too.
    again = parts_of(spec, data.draw(arrivals(spec.total)), start=parts[-1].submitted_at + 1)
    for m in again:
        assert arrive(r, m, OVERSIZED) == Arrival(False)
    assert (len(r), r.held("shop1")) == (0, 0)


def expected_oversized(spec: Spec, order: list[int]) -> list[str]:
    """What each arrival becomes under "oversized", all within the time, the
    store answering at the end: "segment", "refused" or "merged"."""
    fits = [spec.fits(seq) for seq in order]
    first, total = order[0], spec.total
    if not fits[0]:
        return ["merged"] * len(order)
    if first < total or total == 1:
        return ["segment" if f else "refused" for f in fits]
    k = next(i for i, seq in enumerate(order) if seq != total)
    if not fits[k]:
        return ["merged"] * len(order)
    return ["segment"] * k + ["segment" if f else "refused" for f in fits[k:]]


@SETTINGS
@given(spec=long_messages(max_parts=6), data=st.data())
def test_oversized_every_part_ends_once_as_its_siblings_say(
    spec: Spec, data: st.DataObject
) -> None:
    order = data.draw(arrivals(spec.total))
    parts = parts_of(spec, order)
    r = Reassembler(TIMEOUT)
    ended: dict[str, str] = {}

    def end(messages: list[Message] | tuple[Message, ...], how: str) -> None:
        for m in messages:
            assert m.id not in ended, f"{m.id} ended twice"
            ended[m.id] = how

    held = []
    for m in parts:
        arrival = arrive(r, m, OVERSIZED)
        assert arrival.closed == ()
        end(arrival.release, "segment")
        if arrival.refuse is not None:
            assert not arrival.hold
            end([m], "refused")
        elif not arrival.hold:
            end([m], "segment")
        else:
            held.append(m)
    for m in held:
        group = r.stored(m.id)
        if group is not None:
            whole = merge(group, "whole")
            check_whole(whole, spec, [x.message for x in group.members()])
            end([x.message for x in group.members()], "merged")
    assert r.due(T0 + 10 * TIMEOUT) == []
    assert [ended[m.id] for m in parts] == expected_oversized(spec, order)
    assert (len(r), r.held("shop1")) == (0, 0)


def test_oversized_a_part_too_long_is_held_and_its_fitting_siblings_with_it() -> None:
    spec = Spec(("a" * 10, "b" * 200, "c" * 10))
    r = Reassembler(TIMEOUT)
    parts = [spec.part("p2", 2), spec.part("p1", 1), spec.part("p3", 3)]
    assert [arrive(r, m, OVERSIZED) for m in parts] == [Arrival(True)] * 3
    assert [r.stored(m.id) for m in parts[:2]] == [None, None]
    group = r.stored("p3")
    assert group is not None
    assert merge(group, "w").body.text == "a" * 10 + "b" * 200 + "c" * 10


def test_oversized_a_fitting_last_part_first_waits_for_the_next_sibling() -> None:
    spec = Spec(("a" * 10, "b" * 10, "c" * 10))
    r = Reassembler(TIMEOUT)
    last = spec.part("p3", 3)
    assert arrive(r, last, OVERSIZED) == Arrival(True)
    assert r.stored("p3") is None
    # A sibling that fits says: segments. The last part goes on with it.
    assert arrive(r, spec.part("p1", 1, at=T0 + 1), OVERSIZED) == Arrival(False, release=(last,))
    assert (len(r), r.held("shop1")) == (0, 0)
    assert arrive(r, spec.part("p2", 2, at=T0 + 2), OVERSIZED) == Arrival(False)
    # A retransmitted last part goes on at once now.
    assert arrive(r, spec.part("p3b", 3, at=T0 + 3), OVERSIZED) == Arrival(False)


def test_oversized_a_fitting_last_part_then_a_long_sibling_makes_one_message() -> None:
    spec = Spec(("a" * 200, "c" * 10))
    r = Reassembler(TIMEOUT)
    last, first = spec.part("p2", 2), spec.part("p1", 1, at=T0 + 1)
    assert arrive(r, last, OVERSIZED) == Arrival(True)
    assert arrive(r, first, OVERSIZED) == Arrival(True)
    assert r.stored("p2") is None
    group = r.stored("p1")
    assert group is not None and merge(group, "w").body.text == "a" * 200 + "c" * 10


def test_oversized_a_fitting_last_part_alone_goes_on_when_its_time_is_up() -> None:
    spec = Spec(("a" * 10, "c" * 10))
    r = Reassembler(TIMEOUT)
    last = spec.part("p2", 2)
    assert arrive(r, last, OVERSIZED) == Arrival(True)
    assert r.stored("p2") is None
    assert r.due(T0 + TIMEOUT - 1) == []
    [group] = r.due(T0 + TIMEOUT)
    assert fate(group) == ([last], [])


def test_oversized_a_long_part_after_its_siblings_went_on_is_refused() -> None:
    spec = Spec(("a" * 10, "b" * 200, "c" * 10))
    r = Reassembler(TIMEOUT)
    assert arrive(r, spec.part("p1", 1), OVERSIZED) == Arrival(False)
    refused = arrive(r, spec.part("p2", 2, at=T0 + 1), OVERSIZED)
    assert not refused.hold and refused.refuse
    assert (len(r), r.held("shop1")) == (0, 0)
    assert arrive(r, spec.part("p3", 3, at=T0 + 2), OVERSIZED) == Arrival(False)
    # Once the segments' time is over the reference is free again: a long part waits.
    assert arrive(r, spec.part("p2b", 2, at=T0 + 3 + TIMEOUT), OVERSIZED) == Arrival(True)


def test_oversized_a_message_of_one_part() -> None:
    r = Reassembler(TIMEOUT)
    assert arrive(r, Spec(("a" * 10,)).part("short", 1), OVERSIZED) == Arrival(False)
    assert arrive(r, Spec(("a" * 200,), ref=8).part("long", 1), OVERSIZED) == Arrival(True)
    group = r.stored("long")
    assert group is not None and merge(group, "w").body.text == "a" * 200


# --- a reference used again ---------------------------------------------------------


def test_a_number_again_with_other_content_closes_the_message_and_starts_one() -> None:
    old = Spec(("a" * 10, "b" * 10, "c" * 10))
    new = Spec(("x" * 10, "y" * 10, "z" * 10))
    r = Reassembler(TIMEOUT)
    for m in (old.part("o1", 1), old.part("o2", 2), old.part("o1b", 1)):
        assert arrive(r, m) == Arrival(True)
        r.stored(m.id)
    arrival = arrive(r, new.part("n1", 1, at=T0 + 5))
    assert arrival.hold and len(arrival.closed) == 1
    [closed] = arrival.closed
    assert sorted(x.message.id for x in closed.members()) == ["o1", "o1b", "o2"]
    assert fate(closed) == ([old.part("o1", 1), old.part("o2", 2)], [old.part("o1b", 1)])
    assert (len(r), r.held("shop1"), r.next_due()) == (1, 1, T0 + 5 + TIMEOUT)
    for m in (new.part("n2", 2), new.part("n3", 3)):
        assert arrive(r, m) == Arrival(True)
    assert [r.stored(i) for i in ("n1", "n2")] == [None, None]
    group = r.stored("n3")
    assert group is not None and merge(group, "w").body.text == "x" * 10 + "y" * 10 + "z" * 10


def test_another_total_under_the_same_reference_is_another_message() -> None:
    r = Reassembler(TIMEOUT)
    assert arrive(r, Spec(("a", "b", "c")).part("o1", 1)) == Arrival(True)
    arrival = arrive(r, Spec(("a", "b")).part("n2", 2))
    assert arrival.hold
    assert [member_ids(g) for g in arrival.closed] == [["o1"]]
    assert r.held("shop1") == 1


def test_keys_keep_messages_apart() -> None:
    """Same numbers, other content: another width, account, source or destination
    is another message, never a reused reference."""
    r = Reassembler(TIMEOUT)
    first = Spec(("a", "b"), ref=5, how="udh8")
    others = [
        Spec(("x", "y"), ref=5, how="udh16").part("wide", 1),
        first.part("acct", 1, account="shop2"),
        first.part("src", 1, source=Address("OTHER", 5, 0)),
        first.part("dst", 1, destination=Address("4700000000", 1, 1)),
    ]
    assert arrive(r, first.part("p1", 1)) == Arrival(True)
    for m in others:
        assert arrive(r, replace_text(m, "other")) == Arrival(True)
    assert len(r) == 5


def replace_text(m: Message, text: str) -> Message:
    return replace(m, body=replace(m.body, text=text))


# --- the store could not keep a part ---------------------------------------------------


def test_a_part_the_store_could_not_keep_never_arrived() -> None:
    spec = Spec(("a", "b"))
    r = Reassembler(TIMEOUT)
    for m in (spec.part("p1", 1), spec.part("p2", 2)):
        arrive(r, m)
    r.dropped("p2")
    assert (len(r), r.held("shop1")) == (1, 1)
    assert r.stored("p1") is None
    r.dropped("unknown")
    r.dropped("p1")
    assert (len(r), r.held("shop1"), r.due(T0 + 10 * TIMEOUT)) == (0, 0, [])
    # Sent again, they make the message.
    for m in (spec.part("p1", 1), spec.part("p2", 2)):
        arrive(r, m)
    assert r.stored("p1") is None and r.stored("p2") is not None


def test_a_stored_copy_stands_for_its_number_when_the_first_was_not_kept() -> None:
    """The ESME sent part 2 twice; the store failed the first (the ESME got an
    error for it) and kept the copy (the ESME got ESME_ROK): part 2 is there."""
    spec = Spec(("a" * 10, "b" * 200))
    r = Reassembler(TIMEOUT)
    for m in (spec.part("p1", 1), spec.part("p2", 2), spec.part("p2b", 2)):
        assert arrive(r, m) == Arrival(True)
    r.dropped("p2")
    assert r.stored("p1") is None
    group = r.stored("p2b")
    assert group is not None
    whole = merge(group, "w")
    assert whole.body.text == "a" * 10 + "b" * 200
    assert [(m.id, m.seq) for m in whole.members] == [("p1", 1), ("p2b", 2)]


def test_a_copy_the_store_could_not_keep_does_not_leave_the_message_to_time_out() -> None:
    """Part 1 twice, the copy's write failed: every part the message has is
    stored, so it is whole, not one whose parts stopped coming (`due`, `fate`:
    refused with err 998 as soon as one part is longer than one SMS)."""
    spec = Spec(("a" * 10, "b" * 200))
    r = Reassembler(TIMEOUT)
    for m in (spec.part("p1", 1), spec.part("p2", 2), spec.part("p1b", 1)):
        assert arrive(r, m) == Arrival(True)
    assert r.stored("p1") is None
    assert r.stored("p2") is None  # the copy's write is still on its way
    r.dropped("p1b")
    assert [g for g in r.due(T0 + TIMEOUT) if g.complete()] == []


# --- a restart ------------------------------------------------------------------------


@SETTINGS
@given(spec=long_messages(max_parts=6), data=st.data())
def test_restore_rebuilds_what_waited(spec: Spec, data: st.DataObject) -> None:
    missing = data.draw(st.booleans()) and spec.total > 1
    present = list(range(1, spec.total + 1))
    if missing:
        present.remove(data.draw(st.sampled_from(present)))
    order = data.draw(arrivals(spec.total, present))
    kept = parts_of(spec, order)
    # Another account's part, stored (and submitted) after the first of these.
    other = Spec(("x" * 10, "y" * 10), ref=3).part("q1", 1, account="shop2", at=T0 + 0.5)
    r = Reassembler(TIMEOUT)
    complete, closed = r.restore([*kept[:1], other, *kept[1:]], {"shop1": ALWAYS})
    assert closed == []
    assert r.held("shop2") == 1
    if missing:
        assert (complete, r.held("shop1")) == ([], len(kept))
        assert r.next_due() == T0 + TIMEOUT
        assert r.due(T0 + TIMEOUT - 0.001) == []
        [due] = r.due(T0 + TIMEOUT)
        assert sorted(x.message.id for x in due.members()) == sorted(ids(kept))
    else:
        [group] = complete
        check_whole(merge(group, "w"), spec, kept)
        assert r.held("shop1") == 0
    assert r.due(T0 + TIMEOUT + 0.499) == []
    [due] = r.due(T0 + TIMEOUT + 0.5)
    assert ids([x.message for x in due.members()]) == ["q1"]
    assert (len(r), r.held("shop1"), r.held("shop2")) == (0, 0, 0)


def test_restore_keeps_a_fitting_last_part_undecided_and_closes_reused_references() -> None:
    r = Reassembler(TIMEOUT)
    waiting = Spec(("a" * 10, "b" * 10), ref=1)
    reused_old, reused_new = Spec(("o", "p", "q"), ref=2), Spec(("x", "y", "z"), ref=2)
    stored = [
        waiting.part("w2", 2),
        reused_old.part("o1", 1),
        reused_new.part("n1", 1, at=T0 + 1),
    ]
    complete, closed = r.restore(stored, {"shop1": OVERSIZED})
    assert complete == []
    assert [ids([x.message for x in g.members()]) for g in closed] == [["o1"]]
    assert r.held("shop1") == 2
    # The last part still waits to learn its siblings: one that fits releases it.
    arrival = arrive(r, waiting.part("w1", 1, at=T0 + 2), OVERSIZED)
    assert arrival == Arrival(False, release=(waiting.part("w2", 2),))
    assert r.held("shop1") == 1


def test_restore_under_oversized_merges_a_message_with_a_long_part() -> None:
    spec = Spec(("a" * 200, "b" * 10))
    complete, closed = Reassembler(TIMEOUT).restore(
        [spec.part("p2", 2), spec.part("p1", 1)], {"shop1": OVERSIZED}
    )
    assert closed == [] and len(complete) == 1
    assert merge(complete[0], "w").body.text == "a" * 200 + "b" * 10


# --- cancel_sm -----------------------------------------------------------------------------


def member_ids(group: Group | None) -> list[str]:
    assert group is not None
    return sorted(x.message.id for x in group.members())


def test_take_forgets_the_message_of_a_part_of_that_account_only() -> None:
    r = Reassembler(TIMEOUT)
    a, b = Spec(("a", "b", "c"), ref=1), Spec(("a", "b", "c"), ref=2)
    for m in (
        a.part("a1", 1),
        a.part("a2", 2),
        b.part("b1", 1),
        a.part("s1", 1, account="shop2"),
    ):
        arrive(r, m)
    assert r.take("shop2", "a1") is None
    assert r.take("shop1", "s1") is None
    assert r.take("shop1", "a1", "OTHER") is None
    assert r.take("shop1", "nothing") is None
    assert (len(r), r.held("shop1"), r.held("shop2")) == (3, 3, 1)
    assert member_ids(r.take("shop1", "a2", "SHOP")) == ["a1", "a2"]
    assert (len(r), r.held("shop1"), r.held("shop2")) == (2, 1, 1)
    assert r.take("shop1", "a1") is None and r.stored("a1") is None
    assert member_ids(r.take("shop1", "b1")) == ["b1"]
    assert member_ids(r.take("shop2", "s1", "SHOP")) == ["s1"]
    assert (len(r), r.held("shop1"), r.held("shop2")) == (0, 0, 0)


ACCOUNTS, SOURCES, DESTINATIONS = ("shop1", "shop2"), ("SHOP", "MALL"), ("4711", "4722")


@SETTINGS
@given(
    placed=st.lists(
        st.tuples(
            st.sampled_from(ACCOUNTS),
            st.sampled_from(SOURCES),
            st.sampled_from(DESTINATIONS),
            st.integers(0, 2),
        ),
        max_size=12,
    ),
    wanted=st.tuples(
        st.sampled_from(ACCOUNTS), st.sampled_from(SOURCES), st.sampled_from(DESTINATIONS)
    ),
)
def test_take_to_forgets_exactly_the_messages_between_the_two(
    placed: list[tuple[str, str, str, int]], wanted: tuple[str, str, str]
) -> None:
    r = Reassembler(TIMEOUT)
    for i, (account, source, destination, ref) in enumerate(placed):
        m = Spec(("a", "b"), ref=ref).part(
            f"m{i}",
            1 + i % 2,
            account=account,
            source=Address(source, 5, 0),
            destination=Address(destination, 1, 1),
        )
        arrive(r, m)
    taken = r.take_to(*wanted)
    expected = {f"m{i}" for i, place in enumerate(placed) if place[:3] == wanted}
    assert {x.message.id for g in taken for x in g.members()} == expected
    assert all(g.key[:3] == wanted for g in taken)
    left = {x.message.id for g in r.groups() for x in g.members()}
    assert left == {f"m{i}" for i in range(len(placed))} - expected
    assert sum(r.held(a) for a in ACCOUNTS) == r.waiting() == len(left)
    assert r.take_to(*wanted) == []


# --- merge ------------------------------------------------------------------------------


def whole_of(spec: Spec) -> Group:
    r = Reassembler(TIMEOUT)
    group = None
    for seq in range(1, spec.total + 1):
        m = spec.part(f"p{seq}", seq)
        arrive(r, m)
        group = r.stored(m.id)
    assert group is not None
    return group


@SETTINGS
@given(spec=long_messages(kinds=("binary",)))
def test_merge_binary_parts_byte_for_byte(spec: Spec) -> None:
    whole = merge(whole_of(spec), "w")
    assert whole.body.data == b"".join(c for c in spec.contents if isinstance(c, bytes))
    assert whole.body.text is None and whole.text_head == ""
    parts = [spec.part(f"p{seq}", seq) for seq in range(1, spec.total + 1)]
    check_whole(whole, spec, parts)


def test_merge_refuses_text_and_binary_parts_together() -> None:
    with pytest.raises(Unmergeable) as refused:
        merge(whole_of(Spec(("text", b"\x00\x01"))), "w")
    assert refused.value.err == ERR_BAD_LENGTH


@pytest.mark.parametrize(
    "contents",
    [
        # 255 SMS of 153 septets hold 39015; of 67 UCS-2 characters, 17085.
        tuple("a" * 3902 for _ in range(10)),
        tuple("Ж" * 1709 for _ in range(10)),
        tuple(bytes(3418) for _ in range(10)),
    ],
    ids=["gsm", "ucs2", "binary"],
)
def test_merge_refuses_a_content_too_long_for_255_sms(contents: tuple[str | bytes, ...]) -> None:
    with pytest.raises(Unmergeable) as refused:
        merge(whole_of(Spec(contents)), "w")
    assert refused.value.err == ERR_BAD_LENGTH
    # One character, octet less per part and it is 255 SMS or fewer.
    merge(whole_of(Spec(tuple(c[:-1] for c in contents))), "w")


def test_merge_takes_the_first_parts_route_and_every_parts_receipt_request() -> None:
    spec = Spec(("Hello, this is a long ", "message in two parts"))
    r = Reassembler(TIMEOUT)
    first = spec.part(
        "p1",
        1,
        at=T0 + 5,
        registered_delivery=0x10,
        priority=1,
        premium={"tariff": 100},
        esm_class=0x40,
        reply_id="r1",
    )
    second = spec.part("p2", 2, at=T0 + 2, registered_delivery=0x01, priority=2, connector="x")
    for m in (first, second):
        arrive(r, m)
        group = r.stored(m.id)
    assert group is not None
    whole = merge(group, "whole-9")
    assert whole.id == "whole-9" and whole.reply_id is None
    assert whole.body == Body(text="Hello, this is a long message in two parts")
    assert (whole.connector, whole.premium, whole.esm_class) == ("link", {"tariff": 100}, 0)
    assert (whole.submitted_at, whole.priority, whole.registered_delivery) == (T0 + 2, 2, 0x11)
    assert whole.text_head == "Hello, this is a lon" and whole.parts == 1
    assert [(m.id, m.segments) for m in whole.members] == [("p1", (0,)), ("p2", (0,))]


# --- gateway.smpp.text.spans --------------------------------------------------------------


def _check_spans(cut: list[tuple[int, int]], length: int, chunks: list[bytes]) -> None:
    assert cut[0][0] == 0 and cut[-1][1] == length
    assert all(a <= b for a, b in cut)
    assert all(cut[i][1] == cut[i + 1][0] for i in range(len(cut) - 1))
    assert len(cut) == len(chunks)


@settings(max_examples=150, deadline=None)
@given(text=st.text(GSM_CHAR, max_size=1200) | st.text(ANY_CHAR, max_size=700))
def test_spans_of_a_text_cut_it_where_the_route_cuts_its_octets(text: str) -> None:
    cut = spans(text, None)
    data_coding, octets = encode_for_esme(text)
    chunks = [body for _, body in split_octets(octets, "gsm" if data_coding == 0 else "ucs2", 0)]
    _check_spans(cut, len(text), chunks)
    # Each span is exactly the text its segment carries.
    for (a, b), chunk in zip(cut, chunks, strict=True):
        piece = text[a:b]
        encoded = encode_for_esme(piece)[1] if data_coding == 0 else piece.encode("utf-16-be")
        assert encoded == chunk


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=1500))
def test_spans_of_octets_cut_them_where_the_route_does(data: bytes) -> None:
    cut = spans(None, data)
    chunks = [body for _, body in split_octets(data, "binary", 0)]
    _check_spans(cut, len(data), chunks)
    assert [data[a:b] for a, b in cut] == chunks
