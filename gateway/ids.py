"""Our message ids: unique across restarts, in the format each account wants.

An id is a 59-bit number: milliseconds since 2024-01-01 (41 bits, good for 69
years), then a 10-bit node number, then an 8-bit counter within the
millisecond. 2**59 has 18 decimal digits, so the decimal form never has a
leading zero problem beyond what int formatting gives, fits a signed 64-bit
column and Kannel's `msg-id-type` (DESIGN 3.3). When more than 256 ids are
needed in one millisecond the generator borrows from the next millisecond; it
never goes back in time, even if the clock does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
_COUNTER_BITS = 8
_NODE_BITS = 10


class IdGenerator:
    def __init__(self, clock: Callable[[], float], node: int = 0) -> None:
        if not 0 <= node < 1 << _NODE_BITS:
            raise ValueError("node must fit in 10 bits")
        self._clock = clock
        self._node = node
        self._last_ms = 0
        self._counter = 0

    def next_int(self) -> int:
        now_ms = int(self._clock() * 1000) - _EPOCH_MS
        if now_ms > self._last_ms:
            self._last_ms = now_ms
            self._counter = 0
        else:
            self._counter += 1
            if self._counter >> _COUNTER_BITS:
                self._last_ms += 1
                self._counter = 0
        return (
            (self._last_ms << (_NODE_BITS + _COUNTER_BITS))
            | (self._node << _COUNTER_BITS)
            | self._counter
        )

    def next(self, fmt: str) -> str:
        value = self.next_int()
        if fmt == "hex":
            return f"{value:x}"
        if fmt == "uuid":
            # Time-ordered like the others, so ids of one account sort by submission.
            return str(uuid.UUID(int=(value << 64) | (uuid.uuid4().int & ((1 << 64) - 1))))
        return str(value)


_HEX = frozenset("0123456789abcdef")


def upstream_id_forms(link_id: str) -> tuple[str, ...]:
    """The forms under which LINK may write one of its ids back to us.

    LINK's SMPP receipts do not always spell an id as submit_sm_resp did: hex
    against decimal, upper against lower case, with or without leading zeros.
    Both sides are reduced to these forms; any form in common is a match. The
    first form is the id itself, lower-cased and without leading zeros.
    """
    plain = link_id.strip().lower().lstrip("0") or "0"
    forms = [plain]
    # 39 digits hold 128 bits, as 32 hex digits do; longer is no id of LINK's and
    # int() refuses more than 4300 digits, which would fail a whole store batch.
    if plain.isascii() and plain.isdigit() and len(plain) <= 39:
        forms.append(f"{int(plain):x}")
    if set(plain) <= _HEX and len(plain) <= 32:
        forms.append(str(int(plain, 16)))
    return tuple(dict.fromkeys(forms))
