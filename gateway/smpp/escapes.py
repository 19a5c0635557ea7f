"""GSM escape pairs split across segments: carried over to the segment that completes them.

Clients such as smpplib cut long GSM text into segments by octets, so a
two-septet character (0x1B and its code, such as the euro sign 1B 65) can end
one segment with the 0x1B and begin the next with the code. Each segment goes
to Common as text of its own, and text cannot hold half a character; GSM
03.40 wants escape pairs kept whole anyway. So a dangling 0x1B is taken off
the end of its segment, and put in front of the next segment of the same
message (same account, source, destination and reference) when that arrives
(SMPP-NOTES section 6: reassemble bytes before decoding).

What always holds:
- Only the octets move; the caller maps the repaired PDU like any other, so a
  continuation that no longer fits one SMS once it carries the escape is
  refused (ESME_RINVMSGLEN), never sent garbled.
- The state is small and bounded: an entry lives until its continuation
  arrives, for at most `ttl` seconds, and at most `max_entries` are kept.
- A continuation that arrives before the segment it continues cannot be
  repaired (its first character was already decoded from the basic table).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from gateway.smpp.pdu import ESM_CLASS_UDHI, SubmitSm, Tag, sar_numbers
from gateway.smpp.text import TextError, parse_udh

_ESC = 0x1B
_Key = tuple[str, str, str, int]


def dangling_escape(body: bytes) -> bool:
    """True if the last octet opens an escape pair: 0x1B after an even run of 0x1B."""
    run = len(body) - len(body.rstrip(b"\x1b"))
    return run % 2 == 1


class EscapeCarry:
    def __init__(
        self, clock: Callable[[], float], *, ttl: float = 600.0, max_entries: int = 10_000
    ) -> None:
        self._clock = clock
        self._ttl = ttl
        self._max = max_entries
        # key -> (the sequence number that should receive the escape, when noted)
        self._pending: OrderedDict[_Key, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def repair(self, account: str, pdu: SubmitSm) -> SubmitSm:
        """The PDU with a carried escape put in front and a dangling one taken off.

        Call only for GSM-coded segments. Anything that is not a concatenated
        segment comes back unchanged, as does one whose UDH does not parse
        (mapping refuses that with its own status).
        """
        split = _segment(pdu)
        if split is None:
            return pdu
        udh, body, ref, total, seq, in_payload = split
        now = self._clock()
        key = (account, pdu.source_addr, pdu.destination_addr, ref)
        carried = self._pending.pop(key, None)
        changed = False
        if carried is not None and carried[0] == seq and now - carried[1] <= self._ttl:
            body = b"\x1b" + body
            changed = True
        if seq < total and dangling_escape(body):
            body = body[:-1]
            changed = True
            self._note(key, seq + 1, now)
        if not changed:
            return pdu
        content = udh + body
        if in_payload:
            tlvs = [(t, content if t == Tag.MESSAGE_PAYLOAD else v) for t, v in pdu.tlvs]
            return replace(pdu, tlvs=tlvs)
        return replace(pdu, short_message=content)

    def _note(self, key: _Key, seq: int, now: float) -> None:
        self._pending[key] = (seq, now)
        while len(self._pending) > self._max:
            self._pending.popitem(last=False)
        # Entries are in the order noted: the oldest expire first.
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if now - oldest[1] <= self._ttl:
                break
            self._pending.popitem(last=False)


def _content(pdu: SubmitSm) -> tuple[bytes, bool]:
    """(the octets, whether they are in message_payload)."""
    payload = pdu.tlv(Tag.MESSAGE_PAYLOAD) if pdu.tlvs else None
    if payload is not None and not pdu.short_message:
        return payload, True
    return pdu.short_message, False


def _segment(pdu: SubmitSm) -> tuple[bytes, bytes, int, int, int, bool] | None:
    """(udh, body, ref, total, seq, in_payload) of a concatenated segment, else None.

    `udh` is empty for segments numbered by sar_* TLVs.
    """
    content, in_payload = _content(pdu)
    if pdu.esm_class & ESM_CLASS_UDHI:
        if not content or content[0] + 1 > len(content):
            return None
        udh = content[: content[0] + 1]
        try:
            concat = parse_udh(udh).concat
        except TextError:
            return None
        if concat is None:
            return None
        return udh, content[len(udh) :], concat.ref, concat.total, concat.seq, in_payload
    sar = sar_numbers(pdu)
    if sar is None:
        return None
    return b"", content, *sar, in_payload
