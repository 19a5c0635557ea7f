"""What waits in a gateway's store, read without disturbing the gateway.

Responsible for `smpp-gateway queues`: MT messages queued for LINK, sent but
not yet reported, and delivered with a billing report still due (1007), per
account and connector; receipts and MO not yet taken by an ESME, per account;
each with its count and the time of its oldest item.

What always holds:

* The store is opened read-only (``mode=ro``): no migration, no write lock. In
  WAL mode readers never block the gateway's writer, so this is safe while the
  daemon runs.
* No file is left behind: a read-only reader of a WAL database whose ``-wal``
  file is gone (the daemon stopped cleanly) would create ``-wal`` and ``-shm``
  files owned by whoever runs this, which the daemon's user may then be unable
  to write. Then everything is in the main file, and it is read as immutable.
* A missing store is :class:`StoreMissing`; a file that is not a gateway store
  (no tables, or a newer schema than these queries know) is
  :class:`sqlite3.DatabaseError` with a readable message.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# The store's message states (gateway/store/base.py) and receipt kinds.
_QUEUED, _SENT = 0, 1
MT_QUEUED: Final = "mt_queued"
MT_SENT: Final = "mt_awaiting_report"
MT_BILLING: Final = "mt_billing_pending"
RECEIPTS: Final = "receipts"
MO: Final = "mo"
KINDS: Final = (MT_QUEUED, MT_SENT, MT_BILLING, RECEIPTS, MO)
LABELS: Final = {
    MT_QUEUED: "MT queued for LINK",
    MT_SENT: "MT sent, awaiting report",
    MT_BILLING: "MT delivered, billing report awaited",
    RECEIPTS: "receipts undelivered",
    MO: "MO undelivered",
}


class StoreMissing(Exception):
    pass


@dataclass(frozen=True)
class QueueDepth:
    """One queue of one account (and connector, for MT): how many, since when."""

    kind: str
    account: str
    connector: str | None
    count: int
    oldest: float | None  # seconds since the epoch, the store's own clock


def read_depths(path: str | Path) -> list[QueueDepth]:
    """Every non-empty queue in the store at ``path``, in KINDS order, then by name."""
    file = Path(path)
    if not file.is_file():
        raise StoreMissing(f"no store at {file}")
    wal = file.with_name(file.name + "-wal")
    mode = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    conn = sqlite3.connect(f"{file.resolve().as_uri()}?{mode}", uri=True, timeout=5.0)
    try:
        conn.execute("PRAGMA query_only = 1")
        return _read(conn)
    finally:
        conn.close()


def _read(conn: sqlite3.Connection) -> list[QueueDepth]:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"messages", "receipts"} <= tables:
        raise sqlite3.DatabaseError("not a gateway store (no messages or receipts table)")
    depths: list[QueueDepth] = []
    # state < 2 is what the messages_pending index covers.
    for account, connector, state, count, oldest in conn.execute(
        "SELECT account, connector, state, count(*), min(submitted_at) FROM messages"
        " WHERE state < 2 GROUP BY account, connector, state"
    ):
        kind = MT_QUEUED if state == _QUEUED else MT_SENT
        depths.append(QueueDepth(kind, account, connector, count, oldest))
    message_columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
    if "billing" in message_columns:
        # Delivered after a 1007 ("billed delayed"): LINK's billing report is due.
        for account, connector, count, oldest in conn.execute(
            "SELECT account, connector, count(*), min(done_at) FROM messages"
            " WHERE billing = 'pending' GROUP BY account, connector"
        ):
            depths.append(QueueDepth(MT_BILLING, account, connector, count, oldest))
    receipt_columns = {row[1] for row in conn.execute("PRAGMA table_info(receipts)")}
    # Stores made before MO existed have no kind column: everything is a receipt.
    kind_column = "kind" if "kind" in receipt_columns else "'receipt'"
    for account, kind, count, oldest in conn.execute(
        f"SELECT account, {kind_column}, count(*), min(done_date) FROM receipts GROUP BY 1, 2"
    ):
        depths.append(QueueDepth(MO if kind == "mo" else RECEIPTS, account, None, count, oldest))
    order = {kind: index for index, kind in enumerate(KINDS)}
    depths.sort(key=lambda d: (order[d.kind], d.account, d.connector or ""))
    return depths


def totals(depths: list[QueueDepth]) -> dict[str, tuple[int, float | None]]:
    """(count, oldest) per kind, every kind present."""
    result: dict[str, tuple[int, float | None]] = dict.fromkeys(KINDS, (0, None))
    for depth in depths:
        count, oldest = result[depth.kind]
        if depth.oldest is not None and (oldest is None or depth.oldest < oldest):
            oldest = depth.oldest
        result[depth.kind] = (count + depth.count, oldest)
    return result


def format_age(seconds: float | None) -> str:
    """45s, 3m12s, 2h05m, 3d04h: short enough for a table column."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


__all__ = [
    "KINDS",
    "LABELS",
    "MO",
    "MT_BILLING",
    "MT_QUEUED",
    "MT_SENT",
    "RECEIPTS",
    "QueueDepth",
    "StoreMissing",
    "format_age",
    "read_depths",
    "totals",
]
