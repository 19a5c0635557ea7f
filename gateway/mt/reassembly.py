"""Parts of a long message put back together: which parts wait, when a message is whole.

An ESME cuts a long message into parts numbered by a concatenation UDH (8- or
16-bit reference) or by sar_* TLVs, which gateway/mt/submission.py turns into
the same UDH. SMPP 3.4 (5.3.2.22-24) leaves the size of a part open: some
clients cut at 153/67 characters, one SMS each, others at 254 octets, a legal
short_message but longer than an SMS. Common splits a whole text itself, so the
parts are put back together and the message goes on whole: one request, one
encoding and split chosen by Common, premium fields once.

Responsible for deciding, part by part and with no I/O:
- whether a part waits for its siblings (`Reassembler.arrive`), by the
  account's policy: "always"; "oversized" only for messages that have a part
  too long for one SMS, so that well-formed segments keep going one by one at
  once; "never" does not come here;
- when a message is complete (`stored`: every number 1..total stored), and
  what one it makes (`merge`): a `Message` whose `members` are the parts;
- what becomes of a message whose parts stop coming (`due`, `fate`): sent as
  the segments that arrived when each fits one SMS, else refused.

What always holds:
- A part counts only once the store has it (`stored`); the ESME was answered
  ESME_ROK for it then, before any sibling arrived.
- Parts are keyed by account, source, destination, reference width and
  reference. A part whose number is already there with the same content is a
  duplicate: it is kept as a member (its id gets the receipt its original
  gets) and adds nothing. Different content under the same number, or a
  different total, is a new message reusing the reference (8-bit references
  wrap after 256 messages): the old one is closed as if its time ran out.
- Under "oversized" a part that fits one SMS is taken for a well-formed
  segment and goes on at once, unless its message already has parts
  waiting. The one exception is the last part arriving first: whether its
  siblings are too long is not known yet, so it waits until the next sibling
  says (a segment that fits: it goes on; one that does not: it is merged), or
  until its time runs out (it goes on as the segment it is).
- A part too long for one SMS whose siblings already went on as segments
  cannot be carried: `arrive` says so (ESME_RINVMSGLEN), and it is not stored.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from gateway.records import Body, Member, Message, record
from gateway.smpp.text import Concat, TextError, parse_udh, spans

# (account, source_addr, destination_addr, reference width, reference)
Key = tuple[str, str, str, int, int]

WHOLE: Final = "whole"
UNDECIDED: Final = "undecided"

# LINK's SMPP error codes (seed 004) for what a reassembled message may end as.
ERR_INCOMPLETE: Final = 998  # "Timeout on waiting for concat parts"
ERR_BAD_LENGTH: Final = 924  # "Message length invalid"


@dataclass(slots=True)
class Part:
    """A part as the reassembler keeps it: its stored message and its numbers."""

    message: Message
    seq: int
    fits: bool
    stored: bool = False


@dataclass(slots=True)
class Group:
    """The parts of one long message seen so far."""

    key: Key
    total: int
    mode: str
    first_at: float
    parts: dict[int, Part] = field(default_factory=dict)
    # Copies of a number already there: members without content.
    extras: list[Part] = field(default_factory=list)

    def members(self) -> list[Part]:
        return [*self.parts.values(), *self.extras]

    def complete(self) -> bool:
        return (
            self.mode == WHOLE
            and len(self.parts) == self.total
            and all(p.stored for p in self.members())
        )


@record
class Arrival:
    """What to do with a part that just arrived.

    `hold`: store it as waiting (else it goes on as a segment, as without
    reassembly). `refuse`: an ESME_RINVMSGLEN reason, the part is not taken.
    `release`: waiting parts that go on as segments now. `closed`: messages
    closed by this part reusing their reference, for `fate`.
    """

    hold: bool
    refuse: str | None = None
    release: tuple[Message, ...] = ()
    closed: tuple[Group, ...] = ()


def numbers(message: Message) -> Concat | None:
    """The concatenation numbers of a stored part (its UDH, SAR's included)."""
    udh = message.body.udh
    if udh is None:
        return None
    try:
        return parse_udh(udh).concat
    except TextError:
        return None


def key_of(message: Message, concat: Concat) -> Key:
    return (
        message.account,
        message.source.addr,
        message.destination.addr,
        concat.ref_bits,
        concat.ref,
    )


def _same_content(a: Message, b: Message) -> bool:
    return a.body.text == b.body.text and a.body.data == b.body.data


class Reassembler:
    """The parts waiting for their siblings, in memory; the store has each of them.

    `timeout` is how long a message may wait for its parts, from its first.
    """

    def __init__(self, timeout: float, *, max_segment_marks: int = 100_000) -> None:
        self.timeout = timeout
        self._groups: dict[Key, Group] = {}
        self._where: dict[str, Key] = {}
        # Messages whose parts went on as segments, so that their last part does
        # not wait: key -> when noted. Bounded, the oldest forgotten first.
        self._segments: OrderedDict[Key, float] = OrderedDict()
        self._max_marks = max_segment_marks
        self._held: dict[str, int] = {}

    def __len__(self) -> int:
        """Messages waiting for parts."""
        return len(self._groups)

    def held(self, account: str) -> int:
        """Parts of `account` waiting, stored or not yet."""
        return self._held.get(account, 0)

    def groups(self) -> list[Group]:
        return list(self._groups.values())

    def adds_to(self, message: Message, concat: Concat) -> bool:
        """Whether the part brings a number its waiting message still lacks."""
        group = self._groups.get(key_of(message, concat))
        return group is not None and group.total == concat.total and concat.seq not in group.parts

    # --- a part arrives ---------------------------------------------------------

    def arrive(
        self, message: Message, concat: Concat, fits: bool, policy: str, now: float
    ) -> Arrival:
        key = key_of(message, concat)
        group = self._groups.get(key)
        closed: tuple[Group, ...] = ()
        if group is not None and self._collides(group, concat, message):
            closed = (self._close(group),)
            group = None
        if policy != "always" and group is None:
            marked = self._segment_mark(key, now)
            if fits and (marked or concat.seq < concat.total or concat.total == 1):
                # A well-formed segment: on at once, as without reassembly.
                self._mark(key, now)
                return Arrival(False, closed=closed)
            if not fits and marked:
                return Arrival(
                    False,
                    refuse="part longer than one SMS, and its siblings went on as segments",
                    closed=closed,
                )
        release: tuple[Message, ...] = ()
        if group is not None and group.mode == UNDECIDED:
            if fits and concat.seq < concat.total:
                # The sibling says: segments. The waiting last part goes on too.
                release = tuple(p.message for p in self._drop(group))
                self._mark(key, now)
                return Arrival(False, release=release, closed=closed)
            if not fits:
                group.mode = WHOLE
        if group is None:
            mode = WHOLE if policy == "always" or not fits else UNDECIDED
            group = self._groups[key] = Group(key, concat.total, mode, now)
        part = Part(message, concat.seq, fits)
        if concat.seq in group.parts:
            group.extras.append(part)
        else:
            group.parts[concat.seq] = part
        self._where[message.id] = key
        self._held[message.account] = self._held.get(message.account, 0) + 1
        return Arrival(True, release=release, closed=closed)

    def _collides(self, group: Group, concat: Concat, message: Message) -> bool:
        if group.total != concat.total:
            return True
        there = group.parts.get(concat.seq)
        return there is not None and not _same_content(there.message, message)

    def _segment_mark(self, key: Key, now: float) -> bool:
        noted = self._segments.get(key)
        return noted is not None and now - noted <= self.timeout

    def _mark(self, key: Key, now: float) -> None:
        self._segments[key] = now
        self._segments.move_to_end(key)
        while len(self._segments) > self._max_marks:
            self._segments.popitem(last=False)
        while self._segments:
            oldest_key, noted = next(iter(self._segments.items()))
            if now - noted <= self.timeout:
                break
            del self._segments[oldest_key]

    # --- the store answered -----------------------------------------------------

    def stored(self, message_id: str) -> Group | None:
        """The part is durable; its message if that made it complete (then forgotten)."""
        key = self._where.get(message_id)
        if key is None:
            return None
        group = self._groups[key]
        for part in group.members():
            if part.message.id == message_id:
                part.stored = True
        if not group.complete():
            return None
        self._drop(group)
        return group

    def dropped(self, message_id: str) -> Group | None:
        """The store could not keep the part: it never arrived. A stored copy of its
        number takes its place; the message if that made it complete (then forgotten)."""
        key = self._where.pop(message_id, None)
        if key is None:
            return None
        group = self._groups[key]
        group.extras = [p for p in group.extras if p.message.id != message_id]
        for seq, part in list(group.parts.items()):
            if part.message.id == message_id:
                del group.parts[seq]
                copy = next((p for p in group.extras if p.seq == seq), None)
                if copy is not None:
                    group.extras.remove(copy)
                    group.parts[seq] = copy
        self._count(group.key[0], -1)
        if not group.parts and not group.extras:
            del self._groups[key]
            return None
        if not group.complete():
            return None
        self._drop(group)
        return group

    # --- time, cancel, restart ----------------------------------------------------

    def waiting(self) -> int:
        """Parts waiting, of every account."""
        return sum(self._held.values())

    def next_due(self) -> float | None:
        # Groups are kept in the order they began (dicts keep insertion order), so
        # the first is the oldest: no scan of every waiting message per tick.
        for group in self._groups.values():
            return group.first_at + self.timeout
        return None

    def due(self, now: float) -> list[Group]:
        """Messages whose parts stopped coming, forgotten; `fate` says what they become.

        Only stored parts count: one whose write is still on its way waits for
        the next round, so that nothing is decided about a part not yet kept.
        """
        out = []
        for group in list(self._groups.values()):
            if now - group.first_at < self.timeout:
                break
            if all(p.stored for p in group.members()):
                out.append(self._close(group))
        return out

    def take(self, account: str, message_id: str, source: str = "") -> Group | None:
        """The waiting message of `account` a part belongs to, forgotten (cancel_sm);
        from `source` only, when given."""
        key = self._where.get(message_id)
        if key is None or key[0] != account or (source and key[1] != source):
            return None
        return self._close(self._groups[key])

    def take_to(self, account: str, source: str, destination: str) -> list[Group]:
        """Every waiting message of `account` from `source` to `destination`, forgotten."""
        keys = [k for k in self._groups if k[:3] == (account, source, destination)]
        return [self._close(self._groups[k]) for k in keys]

    def restore(
        self, messages: Iterable[Message], policy_of: dict[str, str]
    ) -> tuple[list[Group], list[Group]]:
        """The parts the store kept waiting at the last stop, in the order stored:
        (the messages they complete, those closed by a reused reference).

        They were decided when they arrived, so they wait again as they were:
        the group is merged when complete, unless every part is a last part that
        fits (it was waiting to learn its siblings). A part's time runs from its
        submission.
        """
        closed: list[Group] = []
        for message in messages:
            concat = numbers(message)
            if concat is None:
                continue
            key = key_of(message, concat)
            group = self._groups.get(key)
            if group is not None and self._collides(group, concat, message):
                closed.append(self._close(group))
                group = None
            if group is None:
                group = self._groups[key] = Group(
                    key, concat.total, UNDECIDED, message.submitted_at
                )
            fits = message.body.alphabet is not None
            always = policy_of.get(message.account) == "always"
            if always or not fits or concat.seq < concat.total:
                group.mode = WHOLE
            part = Part(message, concat.seq, fits, stored=True)
            if concat.seq in group.parts:
                group.extras.append(part)
            else:
                group.parts[concat.seq] = part
            self._where[message.id] = key
            self._count(message.account, 1)
        complete = [g for g in self._groups.values() if g.complete()]
        for group in complete:
            self._drop(group)
        return complete, closed

    # --- bookkeeping ------------------------------------------------------------------

    def _close(self, group: Group) -> Group:
        self._drop(group)
        return group

    def _drop(self, group: Group) -> list[Part]:
        members = group.members()
        for part in members:
            self._where.pop(part.message.id, None)
        self._count(group.key[0], -len(members))
        self._groups.pop(group.key, None)
        return members

    def _count(self, account: str, delta: int) -> None:
        left = self._held.get(account, 0) + delta
        if left > 0:
            self._held[account] = left
        else:
            self._held.pop(account, None)


# --- what a group becomes ----------------------------------------------------------


class Unmergeable(ValueError):
    """Parts that cannot make one message: refused with `err`."""

    def __init__(self, reason: str, err: int = ERR_BAD_LENGTH) -> None:
        super().__init__(reason)
        self.err = err


def merge(group: Group, whole_id: str) -> Message:
    """The one message a complete group makes, its parts its members.

    The content is the parts' in number order; what the message is (route,
    addresses, premium fields, validity, schedule) is the first part's: SMPP
    gives those per part, and an ESME sets them alike or sets the tariff on
    the first only (Common's own advice). A receipt is asked for when any part
    asked.
    """
    ordered = [group.parts[n] for n in range(1, group.total + 1)]
    first = ordered[0].message
    texts = [p.message.body.text for p in ordered]
    if all(t is not None for t in texts):
        body = Body(text="".join(t or "" for t in texts), flash=first.body.flash)
        sizes = [len(t or "") for t in texts]
    elif all(t is None for t in texts):
        datas = [p.message.body.data or b"" for p in ordered]
        body = Body(data=b"".join(datas), flash=first.body.flash)
        sizes = [len(d) for d in datas]
    else:
        raise Unmergeable("parts mix text and binary data")
    try:
        cut = spans(body.text, body.data)
    except TextError as exc:
        raise Unmergeable(str(exc)) from None
    ranges = []
    start = 0
    for size in sizes:
        ranges.append((start, start + size))
        start += size
    by_seq = dict(zip(range(1, group.total + 1), ranges, strict=True))
    members = []
    for part in sorted(group.members(), key=lambda p: p.seq):
        low, high = by_seq[part.seq]
        carried = tuple(n for n, (a, b) in enumerate(cut) if a < high and b > low)
        m = part.message
        members.append(
            Member(m.id, part.seq, m.registered_delivery, m.submitted_at, m.text_head, carried)
        )
    asked = 0
    for part in group.members():
        asked |= part.message.registered_delivery
    return replace(
        first,
        id=whole_id,
        body=body,
        submitted_at=min(p.message.submitted_at for p in group.members()),
        priority=max(p.message.priority for p in ordered),
        registered_delivery=asked,
        esm_class=first.esm_class & ~0x40,
        text_head=(body.text or "")[:20],
        parts=len(cut),
        reply_id=None,
        members=tuple(members),
    )


def fate(group: Group) -> tuple[list[Message], list[Message]]:
    """(go on as segments, refuse) for a message whose parts stopped coming.

    The parts that arrived go on when every one fits one SMS, else all are
    refused: a handset would show a message with holes either way, and a part
    too long for one SMS cannot go alone. A copy of a part that goes on is
    refused, so that the handset does not get that part twice.
    """
    unique = [group.parts[n].message for n in sorted(group.parts)]
    copies = [p.message for p in group.extras]
    if all(p.fits for p in group.members()):
        return unique, copies
    return [], unique + copies


__all__ = [
    "ERR_BAD_LENGTH",
    "ERR_INCOMPLETE",
    "Arrival",
    "Group",
    "Key",
    "Part",
    "Reassembler",
    "Unmergeable",
    "fate",
    "key_of",
    "merge",
    "numbers",
]
