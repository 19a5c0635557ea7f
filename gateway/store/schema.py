"""The SQLite store's schema, versioned in `meta`, and how each version becomes the next.

`MIGRATIONS[n]` brings version n to n+1, in one transaction: SQL text, or a
function for a change SQL alone cannot make. Version 4 made the message
route-neutral: what an ESME sent, in SMPP's terms, instead of the fields of
Common's send request (the old rows are read the way the code that wrote them
meant them, and rewritten).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any, Final

from gateway.connectors.common.results import RESULT_CODES
from gateway.mt.vendor import PREMIUM_FIELDS
from gateway.smpp.times import parse_rfc3339

_SQL_MIGRATIONS = [
    """
    CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        connector TEXT NOT NULL,
        state INTEGER NOT NULL,
        submitted_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        validity_s INTEGER NOT NULL,
        priority TEXT,
        registered_delivery INTEGER NOT NULL,
        source_addr TEXT NOT NULL,
        source_ton INTEGER NOT NULL,
        source_npi INTEGER NOT NULL,
        dest_addr TEXT NOT NULL,
        dest_ton INTEGER NOT NULL,
        dest_npi INTEGER NOT NULL,
        text_head TEXT NOT NULL,
        parts INTEGER NOT NULL,
        source TEXT,
        source_type TEXT,
        destination TEXT,
        destination_type TEXT,
        dcs TEXT,
        user_data TEXT,
        user_data_header TEXT,
        extra_fields TEXT,
        upstream_id TEXT,
        part_results TEXT,
        stat TEXT,
        err INTEGER,
        done_at REAL
    );
    CREATE INDEX messages_pending ON messages (state) WHERE state < 2;
    CREATE INDEX messages_upstream ON messages (upstream_id) WHERE upstream_id IS NOT NULL;
    CREATE INDEX messages_done ON messages (done_at) WHERE state = 2;
    CREATE TABLE receipts (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        account TEXT NOT NULL,
        message_id TEXT NOT NULL,
        source_addr TEXT NOT NULL,
        source_ton INTEGER NOT NULL,
        source_npi INTEGER NOT NULL,
        destination_addr TEXT NOT NULL,
        dest_ton INTEGER NOT NULL,
        dest_npi INTEGER NOT NULL,
        stat TEXT NOT NULL,
        err INTEGER NOT NULL,
        sub INTEGER NOT NULL,
        dlvrd INTEGER NOT NULL,
        submit_date REAL NOT NULL,
        done_date REAL NOT NULL,
        text TEXT NOT NULL,
        attempts INTEGER NOT NULL
    );
    """,
    # 2: what query_sm, cancel_sm, replace_sm and submit_multi need.
    """
    ALTER TABLE messages ADD COLUMN service_type TEXT NOT NULL DEFAULT '';
    ALTER TABLE messages ADD COLUMN data_coding INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN esm_class INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN reply_id TEXT;
    ALTER TABLE messages ADD COLUMN next_attempt_at REAL NOT NULL DEFAULT 0;
    CREATE INDEX messages_reply ON messages (reply_id) WHERE reply_id IS NOT NULL;
    ALTER TABLE receipts ADD COLUMN kind TEXT NOT NULL DEFAULT 'receipt';
    ALTER TABLE receipts ADD COLUMN data_coding INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE receipts ADD COLUMN esm_class INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE receipts ADD COLUMN payload BLOB NOT NULL DEFAULT x'';
    ALTER TABLE receipts ADD COLUMN expires_at REAL;
    CREATE TABLE upstream_ids (
        form TEXT PRIMARY KEY,
        message_id TEXT NOT NULL,
        part INTEGER
    );
    CREATE TABLE mo_seen (
        upstream_id TEXT PRIMARY KEY,
        received_at REAL NOT NULL
    );
    CREATE INDEX mo_seen_age ON mo_seen (received_at);
    """,
    # 3: billing reported after a DELIVRD for 1007 ("delivered, billed delayed").
    """
    ALTER TABLE messages ADD COLUMN billing TEXT;
    ALTER TABLE messages ADD COLUMN billing_receipt INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_billing ON messages (billing) WHERE billing = 'pending';
    """,
]


# Version 3 -> 4: Common's send-request fields -> the route-neutral message.
_ADD_V4: Final = (
    "scheduled_at REAL",
    "not_before REAL NOT NULL DEFAULT 0",
    "priority_flag INTEGER NOT NULL DEFAULT 0",
    "sender_kind TEXT NOT NULL DEFAULT 'alphanumeric'",
    "sender TEXT NOT NULL DEFAULT ''",
    "recipient TEXT NOT NULL DEFAULT ''",
    "body_text TEXT",
    "body_data BLOB",
    "udh BLOB",
    "alphabet TEXT",
    "flash INTEGER NOT NULL DEFAULT 0",
    "premium TEXT",
    "custom TEXT",
)
_DROP_V4: Final = (
    "priority",
    "next_attempt_at",
    "source",
    "source_type",
    "destination",
    "destination_type",
    "dcs",
    "user_data",
    "user_data_header",
    "extra_fields",
)
_KINDS_V3: Final[Mapping[str | None, str]] = {
    "MSISDN": "msisdn",
    "SHORTNUMBER": "short_code",
    "ALPHANUMERIC": "alphanumeric",
}
_SEGMENT_ALPHABETS_V3: Final[Mapping[str | None, str]] = {
    "GSM": "gsm",
    "UCS2": "ucs2",
    "BINARY": "binary",
}


def _route_neutral(conn: sqlite3.Connection) -> None:
    for column in _ADD_V4:
        conn.execute(f"ALTER TABLE messages ADD COLUMN {column}")
    rows = conn.execute(
        "SELECT id, priority, next_attempt_at, source, source_type, destination, dcs,"
        " user_data, user_data_header, extra_fields, part_results FROM messages"
    ).fetchall()
    for row in rows:
        conn.execute(
            "UPDATE messages SET scheduled_at = ?, not_before = ?, priority_flag = ?,"
            " sender_kind = ?, sender = ?, recipient = ?, body_text = ?, body_data = ?,"
            " udh = ?, alphabet = ?, flash = ?, premium = ?, custom = ?, part_results = ?"
            " WHERE id = ?",
            (*_v4_values(*row[1:]), row[0]),
        )
    for column in _DROP_V4:
        conn.execute(f"ALTER TABLE messages DROP COLUMN {column}")
    conn.execute("ALTER TABLE messages RENAME COLUMN priority_flag TO priority")


def _v4_values(
    priority: str | None,
    next_attempt_at: float,
    source: str | None,
    source_type: str | None,
    destination: str | None,
    dcs: str | None,
    user_data: str | None,
    user_data_header: str | None,
    extra_fields: str | None,
    part_results: str | None,
) -> tuple[Any, ...]:
    extra: dict[str, Any] = json.loads(extra_fields) if extra_fields else {}
    raw_custom = extra.pop("customParameters", None)
    custom = {str(k): str(v) for k, v in (raw_custom or {}).items()}
    flash = str(custom.pop("flash.sms", "")).lower() == "true"
    scheduled = custom.pop("scheduledTime", None)
    premium = {k: v for k, v in extra.items() if k in PREMIUM_FIELDS}
    udh = bytes.fromhex(user_data_header) if user_data_header else None
    if dcs == "BINARY":
        text, data = None, bytes.fromhex(user_data or "")
    else:
        text, data = user_data or "", None
    return (
        parse_rfc3339(scheduled) if scheduled else None,
        next_attempt_at or 0.0,
        1 if priority == "HIGH" else 0,
        _KINDS_V3.get(source_type, "alphanumeric"),
        source or "",
        destination or "",
        text,
        data,
        udh,
        _SEGMENT_ALPHABETS_V3.get(dcs) if udh else None,
        int(flash),
        json.dumps(premium) if premium else None,
        json.dumps(custom) if custom else None,
        _named_parts(part_results),
    )


def _named_parts(text: str | None) -> str | None:
    """Part outcomes as [stat, err, final]; schema 1 stored Common resultCodes."""
    if not text:
        return text
    parts = json.loads(text)
    for key, value in parts.items():
        if isinstance(value, int):
            outcome = RESULT_CODES.get(value)
            parts[key] = (
                [outcome.stat, outcome.err, outcome.final] if outcome else ["UNKNOWN", 255, True]
            )
    return json.dumps(parts)


# Version 4 -> 5: the backlog stays on disk, read in pages (gateway/mt/dispatcher.py,
# gateway/intake/delivery.py). Each read has an index of its own that holds only
# queued rows, so a page costs the same with ten or ten million waiting. A
# message's place in its queue is its rowid: the store gives rowids in the order
# it accepts messages, and the table has no INTEGER PRIMARY KEY that VACUUM would
# keep while renumbering the rest (the gateway never runs VACUUM).
_QUEUES_V5: Final = """
    CREATE INDEX messages_queue ON messages (connector) WHERE state = 0;
    CREATE INDEX messages_due ON messages (connector, not_before)
        WHERE state = 0 AND not_before > 0;
    CREATE INDEX messages_expiry ON messages (expires_at) WHERE state = 0;
    CREATE INDEX messages_queued_to ON messages (account, dest_addr) WHERE state = 0;
    CREATE INDEX receipts_account ON receipts (account, seq);
"""

# Version 5 -> 6: long messages put back together (gateway/mt/reassembly.py).
# A part waiting for its siblings is a message in state 3, in no queue; a
# message made of parts lists them in `members`, and `member_ids` finds it by
# the id of any part (query_sm, cancel_sm).
_REASSEMBLY_V6: Final = """
    ALTER TABLE messages ADD COLUMN members TEXT;
    CREATE INDEX messages_held ON messages (account) WHERE state = 3;
    CREATE TABLE member_ids (
        id TEXT NOT NULL,
        account TEXT NOT NULL,
        message_id TEXT NOT NULL,
        PRIMARY KEY (account, id)
    );
    CREATE INDEX member_ids_message ON member_ids (message_id);
"""

Migration = str | Callable[[sqlite3.Connection], None]
MIGRATIONS: Final[tuple[Migration, ...]] = (
    *_SQL_MIGRATIONS,
    _route_neutral,
    _QUEUES_V5,
    _REASSEMBLY_V6,
)


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema to the newest version, one transaction per step."""
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise RuntimeError(f"{path}: schema version {version} is newer than this gateway knows")
    for number in range(version, len(MIGRATIONS)):
        step = MIGRATIONS[number]
        conn.execute("BEGIN IMMEDIATE")
        try:
            if callable(step):
                step(conn)
            else:
                for statement in step.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(number + 1),)
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


__all__ = ["MIGRATIONS", "migrate"]
