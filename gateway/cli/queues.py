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
from pathlib import Path
from typing import Final

from gateway.store.base import (
    MO_QUEUE,
    MT_BILLING,
    MT_HELD,
    MT_QUEUED,
    MT_SENT,
    QUEUE_KINDS,
    RECEIPTS,
    QueueDepth,
)
from gateway.store.depths import read_queue_depths

KINDS: Final = QUEUE_KINDS
MO: Final = MO_QUEUE
LABELS: Final = {
    MT_HELD: "MT parts waiting for their siblings",
    MT_QUEUED: "MT queued for LINK",
    MT_SENT: "MT sent, awaiting report",
    MT_BILLING: "MT delivered, billing report awaited",
    RECEIPTS: "receipts undelivered",
    MO: "MO undelivered",
}


class StoreMissing(Exception):
    pass


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
        return read_queue_depths(conn)
    finally:
        conn.close()


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
