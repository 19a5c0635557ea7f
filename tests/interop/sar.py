"""Long texts sent in parts of 254 octets with sar_* TLVs, for every third-party client.

Some clients cut a long message at the most short_message holds (254 octets)
and number the parts with sar_msg_ref_num / sar_total_segments /
sar_segment_seqnum (SMPP 3.4 sections 5.3.2.22-24). Such a part is longer
than one SMS, so under the default policy (reassemble = "oversized") the
gateway puts the parts back together (gateway/mt/reassembly.py): each part is
answered ESME_ROK with a message_id of its own, Common gets ONE request whose
userData is the whole text (no userDataHeader, Common splits it), and every
part gets its own receipt (id: its message_id), counting in sub/dlvrd the SMS
of Common's split that carried some of it.

test_smpplib_operations.py and test_node_operations.py cut the texts below
with their library and call `check_sar_message`.
"""

from __future__ import annotations

from tests.harness import FakeCommonProcess
from tests.interop.conftest import check_receipt, wait_for_messages
from tests.interop.scenarios import SOURCE, Client

SAR_PART = 254  # octets a part: the most short_message holds

GSM_EXTENSION = "^{}\\[~]|€\f"

# 600 GSM 03.38 characters, extension characters among them: 663 unpacked
# octets, so parts of 254, 254 and 155 octets. Neither cut (after octet 254 or
# 508) falls inside an escape pair, nor does Common's split into 153-septet
# SMS (5 of them) move a pair: `sar_pieces` and `common_spans` check both.
SAR_GSM_TEXT = (
    "Long message in parts of 254 octets, with sar_* TLVs: €uro [x] {y} ~^|\\ ÆØÅ æøå. " * 8
)[:600]
# 300 UCS-2 characters (all in the BMP): parts of 127, 127 and 46 characters.
# (Non-Latin letters on purpose, hence the noqa.)
SAR_UCS2_TEXT = (
    "Длинное сообщение частями по 254 октета, с TLV sar_*. "  # noqa: RUF001
    "Μεγάλο μήνυμα σε μέρη. 长消息分段发送。"
) * 4
SAR_UCS2_TEXT = SAR_UCS2_TEXT[:300]


def septets(ch: str) -> int:
    return 2 if ch in GSM_EXTENSION else 1


def _cut(text: str, width: list[int], room: int) -> list[tuple[int, int]]:
    """(start, end) character ranges of at most `room` units each, filled greedily;
    a character is never split."""
    out = []
    start = 0
    while start < len(text):
        end, left = start, room
        while end < len(text) and left >= width[end]:
            left -= width[end]
            end += 1
        out.append((start, end))
        start = end
    return out


def sar_pieces(text: str, ucs2: bool) -> list[str]:
    """The text cut where a client cutting at 254 octets cuts it, as characters:
    every piece but the last exactly 254 octets (so no cut splits a character)."""
    width = [2] * len(text) if ucs2 else [septets(c) for c in text]
    pieces = [text[a:b] for a, b in _cut(text, width, SAR_PART)]
    for piece in pieces[:-1]:
        octets = 2 * len(piece) if ucs2 else sum(septets(c) for c in piece)
        assert octets == SAR_PART, "a cut at 254 octets would split a character"
    return pieces


def common_spans(text: str, ucs2: bool) -> list[tuple[int, int]]:
    """The SMS Common makes of the whole text (153 septets or 67 characters each),
    as character ranges; checked against the count the fake Common reports."""
    if ucs2:
        width, room, size = [1] * len(text), 67, len(text)
    else:
        width = [septets(c) for c in text]
        room, size = 153, sum(width)
    spans = _cut(text, width, room)
    assert len(spans) == -(-size // room), "an escape pair moved at Common's split"
    return spans


def carried(pieces: list[str], spans: list[tuple[int, int]]) -> list[int]:
    """For each piece, how many of Common's SMS carry some of it."""
    counts = []
    start = 0
    for piece in pieces:
        end = start + len(piece)
        counts.append(sum(1 for a, b in spans if a < end and b > start))
        start = end
    return counts


def check_sar_message(
    fake: FakeCommonProcess,
    client: Client,
    dest: str,
    sent: list[tuple[str, str]],
    text: str,
    ucs2: bool,
) -> None:
    """`sent` is (message_id from submit_sm_resp, the part's text) per part, in
    part order: one receipt each, then exactly one Common message carrying `text`."""
    ids = [message_id for message_id, _ in sent]
    assert all(ids) and len(set(ids)) == len(ids), f"message ids {ids}"
    assert "".join(piece for _, piece in sent) == text
    receipts = client.wait_receipts(set(ids), timeout=12.0)
    counts = carried([piece for _, piece in sent], common_spans(text, ucs2))
    for (message_id, piece), count in zip(sent, counts, strict=True):
        fields = check_receipt(
            receipts[message_id], message_id=message_id, destination=dest, source=SOURCE, text=piece
        )
        assert (int(fields.sub), int(fields.dlvrd)) == (count, count), (
            f"{message_id}: sub {fields.sub} dlvrd {fields.dlvrd}, wanted {count} SMS"
        )
    # Every receipt is in, so Common already had everything it will get.
    messages = wait_for_messages(fake, "+" + dest, 1)
    assert len(messages) == 1, (
        f"{len(messages)} Common messages: {[m.get('userDataHeader') for m in messages]}"
    )
    [message] = messages
    assert message["userData"] == text
    assert message["dcs"] == "TEXT"
    assert "userDataHeader" not in message
    assert message["source"] == SOURCE
    assert message["sourceTON"] == "ALPHANUMERIC"


__all__ = [
    "SAR_GSM_TEXT",
    "SAR_PART",
    "SAR_UCS2_TEXT",
    "carried",
    "check_sar_message",
    "common_spans",
    "sar_pieces",
]
