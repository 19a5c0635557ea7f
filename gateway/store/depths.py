"""How much waits in a store, by queue: `depths` and `smpp-gateway queues`.

Read on the store's own connection and on a read-only one that the CLI opens
on a running gateway's file, whatever that file's schema version.
"""

from __future__ import annotations

import sqlite3

from gateway.store.base import (
    HELD,
    MO_QUEUE,
    MT_BILLING,
    MT_HELD,
    MT_QUEUED,
    MT_SENT,
    QUEUE_KINDS,
    QUEUED,
    RECEIPTS,
    QueueDepth,
)


def read_queue_depths(conn: sqlite3.Connection) -> list[QueueDepth]:
    """Every non-empty queue in the store, in QUEUE_KINDS order, then by name.

    Also read on a read-only connection (`smpp-gateway queues`), whatever the
    schema version: stores made before MO or billing existed have fewer queues.
    """
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"messages", "receipts"} <= tables:
        raise sqlite3.DatabaseError("not a gateway store (no messages or receipts table)")
    depths: list[QueueDepth] = []
    # state < 2 is what the messages_pending index covers.
    for account, connector, state, count, oldest in conn.execute(
        "SELECT account, connector, state, count(*), min(submitted_at) FROM messages"
        " WHERE state < 2 GROUP BY account, connector, state"
    ):
        kind = MT_QUEUED if state == QUEUED else MT_SENT
        depths.append(QueueDepth(kind, account, connector, count, oldest))
    # Parts waiting for their siblings (schema 6; before it, no row has state 3).
    for account, connector, count, oldest in conn.execute(
        "SELECT account, connector, count(*), min(submitted_at) FROM messages"
        f" WHERE state = {HELD} GROUP BY account, connector"
    ):
        depths.append(QueueDepth(MT_HELD, account, connector, count, oldest))
    message_columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
    if "billing" in message_columns:
        # Delivered after a 1007 ("billed delayed"): LINK's billing report is due.
        for account, connector, count, oldest in conn.execute(
            "SELECT account, connector, count(*), min(done_at) FROM messages"
            " WHERE billing = 'pending' GROUP BY account, connector"
        ):
            depths.append(QueueDepth(MT_BILLING, account, connector, count, oldest))
    receipt_columns = {row[1] for row in conn.execute("PRAGMA table_info(receipts)")}
    kind_column = "kind" if "kind" in receipt_columns else "'receipt'"
    for account, kind, count, oldest in conn.execute(
        f"SELECT account, {kind_column}, count(*), min(done_date) FROM receipts GROUP BY 1, 2"
    ):
        depths.append(
            QueueDepth(MO_QUEUE if kind == "mo" else RECEIPTS, account, None, count, oldest)
        )
    order = {kind: index for index, kind in enumerate(QUEUE_KINDS)}
    depths.sort(key=lambda d: (order[d.kind], d.account, d.connector or ""))
    return depths


__all__ = ["read_queue_depths"]
