"""The embedded store: one SQLite file in WAL mode.

Tables are plain columns (a delivery report reads its message's columns on the
hot path, and decoding a JSON blob per report cost more than the query).
Writes go through `GroupCommitter` (gateway/store/commit.py): calls of one
reactor turn share one transaction, and a durable call's Deferred fires only
once its transaction is on disk.

The schema is versioned in `meta`; `_MIGRATIONS[n]` brings version n to n+1.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

from twisted.internet.defer import Deferred, succeed

from gateway.connectors.common.callbacks import DeliveryReport
from gateway.ids import upstream_id_forms
from gateway.inbound import LinkReceipt
from gateway.intake import reports as rp
from gateway.mapping import Outcome, outcome_for
from gateway.smpp.receipts import STAT_STATE
from gateway.store.base import (
    FINAL,
    QUEUED,
    SENT,
    Depths,
    Finish,
    Message,
    MessageStatus,
    Receipt,
    Recovered,
    ReportResult,
)
from gateway.store.commit import GroupCommitter

T = TypeVar("T")

_MIGRATIONS = [
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
# messages.billing: NULL when no billing report is due, BILLING_PENDING after a
# DELIVRD for 1007, then the resultCode of the report that settled the billing.
BILLING_PENDING: Final = "pending"

# Columns, not JSON: a delivery report reads these for every message, and
# decoding a JSON blob per report cost more than the query.
_MESSAGE_COLUMNS = (
    "id",
    "account",
    "connector",
    "state",
    "submitted_at",
    "expires_at",
    "validity_s",
    "priority",
    "registered_delivery",
    "source_addr",
    "source_ton",
    "source_npi",
    "dest_addr",
    "dest_ton",
    "dest_npi",
    "text_head",
    "parts",
    "source",
    "source_type",
    "destination",
    "destination_type",
    "dcs",
    "user_data",
    "user_data_header",
    "extra_fields",
    "upstream_id",
    "service_type",
    "data_coding",
    "esm_class",
    "reply_id",
    "next_attempt_at",
    "billing_receipt",
)
# The Common fields every message has get columns (encoding them as JSON per
# message cost 5% of the gateway's CPU); the rare rest (customParameters,
# premium fields) goes to extra_fields as JSON.
_FIELD_COLUMNS = (
    ("source", "source"),
    ("sourceTON", "source_type"),
    ("destination", "destination"),
    ("destinationTON", "destination_type"),
    ("dcs", "dcs"),
    ("userData", "user_data"),
    ("userDataHeader", "user_data_header"),
)
_COLUMN_FIELDS = frozenset(field for field, _ in _FIELD_COLUMNS)
_INSERT_MESSAGE = (
    f"INSERT INTO messages ({', '.join(_MESSAGE_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(_MESSAGE_COLUMNS))})"
)
_SELECT_MESSAGE = f"SELECT {', '.join(_MESSAGE_COLUMNS)} FROM messages"
_RECEIPT_COLUMNS = tuple(f.name for f in fields(Receipt) if f.name != "seq")
_INSERT_RECEIPT = (
    f"INSERT INTO receipts ({', '.join(_RECEIPT_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(_RECEIPT_COLUMNS))})"
)
_SELECT_RECEIPT = f"SELECT seq, {', '.join(_RECEIPT_COLUMNS)} FROM receipts"
_MARK_SENT = "UPDATE messages SET upstream_id = ?, state = ? WHERE id = ? AND state < 2"
_DELETE_RECEIPT = "DELETE FROM receipts WHERE seq = ?"
# What a delivery report needs of its message.
# What a receipt needs of its message, in the order `_reported` takes it.
_RECEIPT_CONTEXT = (
    "id, reply_id, submitted_at, account, registered_delivery, source_addr, source_ton,"
    " source_npi, dest_addr, dest_ton, dest_npi, text_head"
)
_REPORT_COLUMNS = (
    f"SELECT state, part_results, parts, billing, billing_receipt, {_RECEIPT_CONTEXT} FROM messages"
)
_REPORT_BY_ID = f"{_REPORT_COLUMNS} WHERE id = ?"
_REPORT_BY_UPSTREAM = f"{_REPORT_COLUMNS} WHERE upstream_id = ?"
# The common case in one statement: a whole-message final report for a message
# not yet final. Anything else (parts, duplicates, unknown ids) takes the long way.
_FINISH_RETURNING = (
    "UPDATE messages SET state = 2, stat = ?, err = ?, done_at = ?, billing = ?,"
    " upstream_id = coalesce(upstream_id, ?) WHERE {key} = ? AND state < 2"
    " RETURNING " + _RECEIPT_CONTEXT
)
_FINISH_BY_ID = _FINISH_RETURNING.format(key="id")
_INSERT_FORM = "INSERT OR REPLACE INTO upstream_ids (form, message_id, part) VALUES (?, ?, ?)"
_FIND_FORM = "SELECT message_id, part FROM upstream_ids WHERE form = ?"
_SET_PARTS = "UPDATE messages SET parts = ? WHERE id = ?"
_SET_CONNECTOR = "UPDATE messages SET connector = ? WHERE id = ? AND state = 0"
_REPLACE_MESSAGE = (
    "UPDATE messages SET next_attempt_at = ?, expires_at = ?, validity_s = ?,"
    " registered_delivery = ?,"
    " text_head = ?, parts = ?, source = ?, source_type = ?, destination = ?,"
    " destination_type = ?, dcs = ?, user_data = ?, user_data_header = ?, extra_fields = ?"
    " WHERE id = ? AND state = ?"
)
_QUERY = (
    "SELECT state, stat, err, done_at, connector FROM messages"
    " WHERE account = ? AND (id = ? OR reply_id = ?) ORDER BY id"
)
# Short ids (SMPP 3.3): (first value, how many), so that none has a leading zero.
_SHORT_ID_RANGES: Final[Mapping[str, tuple[int, int]]] = {
    "decimal": (10_000_000, 90_000_000),
    "hex": (0x10000000, 0xF0000000),
}
# Short ids reserved on disk ahead of use; a restart skips what was not used.
_SHORT_ID_BLOCK: Final = 10_000
_FINISH_BY_UPSTREAM = _FINISH_RETURNING.format(key="upstream_id")


# One encoder for the process: json.dumps with arguments builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class SqliteStore:
    def __init__(
        self,
        reactor: Any,
        path: str,
        *,
        synchronous: str = "full",
        result_codes: Mapping[int, Outcome],
        clock: Callable[[], float] | None = None,
        checkpoint_interval: float = 1.0,
    ) -> None:
        self._reactor = reactor
        self.path = path
        self._durable = synchronous.lower() == "full"
        self.result_codes = result_codes
        self._now = clock or reactor.seconds
        self._checkpoint_interval = checkpoint_interval
        self._commit: GroupCommitter | None = None

    @property
    def batches(self) -> int:
        """Transactions so far (group commit: fewer than the calls)."""
        return self._commit.batches if self._commit else 0

    @property
    def jobs(self) -> int:
        return self._commit.jobs if self._commit else 0

    def _submit(
        self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = True
    ) -> Deferred[T]:
        if self._commit is None:
            raise RuntimeError("the store is not open")
        return self._commit.submit(fn, durable=durable)

    def _batched(
        self, statement: str, rows: list[tuple[Any, ...]], *, durable: bool
    ) -> Deferred[None]:
        if self._commit is None:
            raise RuntimeError("the store is not open")
        return self._commit.batched(statement, rows, durable=durable)

    # --- lifecycle -----------------------------------------------------------

    def open(self) -> Deferred[Recovered]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # Commits only append to the WAL; the GroupCommitter's fsync makes them durable.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > len(_MIGRATIONS):
            conn.close()
            raise RuntimeError(
                f"{self.path}: schema version {version} is newer than this gateway knows"
            )
        for number in range(version, len(_MIGRATIONS)):
            conn.execute("BEGIN IMMEDIATE")
            for statement in _MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(number + 1),)
            )
            conn.execute("COMMIT")
        row = conn.execute("SELECT value FROM meta WHERE key='short_id_next'").fetchone()
        # Start past every id a previous run may have handed out.
        self._short_next = int(row[0]) if row else 0
        self._short_reserved = self._short_next + _SHORT_ID_BLOCK
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('short_id_next', ?)", (str(self._short_reserved),)
        )
        recovered = Recovered()
        for row in conn.execute(
            f"{_SELECT_MESSAGE} WHERE state = ? ORDER BY submitted_at", (QUEUED,)
        ):
            recovered.messages.append(_message_from_row(row))
        for seq, *values in conn.execute(f"{_SELECT_RECEIPT} ORDER BY seq"):
            receipt = Receipt(**dict(zip(_RECEIPT_COLUMNS, values, strict=True)), seq=seq)
            recovered.receipts.append(receipt)
        self._commit = GroupCommitter(
            self._reactor,
            self.path,
            conn,
            durable=self._durable,
            checkpoint_interval=self._checkpoint_interval,
        )
        return succeed(recovered)

    def close(self) -> Deferred[None]:
        if self._commit is None:
            return succeed(None)
        return self._commit.close()

    # --- operations ------------------------------------------------------------

    def add_messages(self, messages: list[Message]) -> Deferred[None]:
        """Store new messages (calls until the next flush share one INSERT)."""
        rows = [
            (
                m.id,
                m.account,
                m.connector,
                m.state,
                m.submitted_at,
                m.expires_at,
                m.validity_s,
                m.priority,
                m.registered_delivery,
                m.source_addr,
                m.source_ton,
                m.source_npi,
                m.dest_addr,
                m.dest_ton,
                m.dest_npi,
                m.text_head,
                m.parts,
                *_field_values(m.fields),
                m.upstream_id,
                m.service_type,
                m.data_coding,
                m.esm_class,
                m.reply_id,
                m.next_attempt_at,
                m.billing_receipt,
            )
            for m in messages
        ]
        return self._batched(_INSERT_MESSAGE, rows, durable=True)

    def add_mo(
        self, messages: list[tuple[str, list[Receipt]]]
    ) -> Deferred[list[list[Receipt] | None]]:
        """Store each MO's deliver_sm items, unless LINK's id was seen before.

        LINK sends an MO again when it did not get our answer; its id (kept for
        the retention period) makes the second copy None here, not a second
        delivery to the ESME. An MO without an id cannot be told apart.
        """
        now = self._now()

        def run(conn: sqlite3.Connection) -> list[list[Receipt] | None]:
            results: list[list[Receipt] | None] = []
            for upstream_id, items in messages:
                if upstream_id:
                    cursor = conn.execute(
                        "INSERT OR IGNORE INTO mo_seen (upstream_id, received_at) VALUES (?, ?)",
                        (upstream_id, now),
                    )
                    if not cursor.rowcount:
                        results.append(None)
                        continue
                results.append([_insert_receipt(conn, item) for item in items])
            return results

        return self._submit(run)

    def heartbeat(self, stamp: str) -> Deferred[None]:
        """A tiny durable write (the readiness probe's): it fires only if the store
        still commits and fsyncs, the way every accepted message does."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('readiness_probe', ?)", (stamp,))

        return self._submit(run)

    def reroute(self, moved: list[tuple[str, str]]) -> Deferred[None]:
        """(our id, the connector it now waits for) after a failover.

        Bookkeeping: lost in a crash, the message waits for its first connector
        again and the router moves it anew.
        """
        rows = [(connector, message_id) for message_id, connector in moved]
        return self._batched(_SET_CONNECTOR, rows, durable=False)

    def record_parts(self, sent: list[tuple[str, tuple[str, ...]]]) -> Deferred[None]:
        """(our id, LINK's id of every segment) for messages a connector split itself.

        Each id goes in under all its forms (`upstream_id_forms`), so that a
        receipt spelling it differently still finds its message and part.
        Bookkeeping like mark_sent: lost in a crash, the message is sent again.
        """
        forms: list[tuple[str, str, int | None]] = []
        counts: list[tuple[int, str]] = []
        for message_id, parts in sent:
            single = len(parts) == 1
            for index, link_id in enumerate(parts):
                for form in upstream_id_forms(link_id):
                    forms.append((form, message_id, None if single else index))
            counts.append((len(parts), message_id))
        self._batched(_INSERT_FORM, forms, durable=False)
        return self._batched(_SET_PARTS, counts, durable=False)

    def apply_link_receipts(self, receipts: list[LinkReceipt]) -> Deferred[list[ReportResult]]:
        """LINK SMPP receipts: matched by any form of their id, applied with LINK's
        own stat and err (one receipt per segment is aggregated like Common's `$n`)."""
        table = self.result_codes
        now = self._now()

        def run(conn: sqlite3.Connection) -> list[ReportResult]:
            return [
                _apply_report(conn, _link_report(conn, receipt), table, now) for receipt in receipts
            ]

        return self._submit(run)

    def replace_message(self, message: Message) -> Deferred[None]:
        row = (
            message.next_attempt_at,
            message.expires_at,
            message.validity_s,
            message.registered_delivery,
            message.text_head,
            message.parts,
            *_field_values(message.fields),
            message.id,
            QUEUED,
        )

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(_REPLACE_MESSAGE, row)

        return self._submit(run)

    def query(self, account: str, message_id: str) -> Deferred[list[MessageStatus]]:
        if self._commit is None:
            raise RuntimeError("the store is not open")
        rows = self._commit.read(
            lambda conn: conn.execute(_QUERY, (account, message_id, message_id)).fetchall()
        )
        return succeed([MessageStatus(*row) for row in rows])

    def short_id(self, fmt: str) -> str:
        if self._commit is None:
            raise RuntimeError("the store is not open")
        base, span = _SHORT_ID_RANGES[fmt]
        while True:
            n = self._short_next
            self._short_next += 1
            if self._short_next > self._short_reserved - _SHORT_ID_BLOCK // 2:
                self._reserve_short_ids()
            candidate = f"{base + n % span:{'x' if fmt == 'hex' else 'd'}}"
            # Only after the counter wrapped can an id still be in the store.
            if n < span or not self._commit.read(partial(_id_in_use, candidate)):
                return candidate

    def _reserve_short_ids(self) -> None:
        # Ids up to the reservation may be handed out before it is on disk: the
        # reservation is queued before any message that carries one of them, and
        # the committer keeps that order, so no such message outlives a crash that
        # the reservation did not.
        self._short_reserved += _SHORT_ID_BLOCK
        upto = self._short_reserved

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('short_id_next', ?)", (str(upto),))

        self._submit(run, durable=False)

    def mark_sent(self, sent: list[tuple[str, str | None]]) -> Deferred[None]:
        rows = [(upstream, SENT, our) for our, upstream in sent]
        # Lost in a crash, the message is sent again: the same as a crash just before
        # LINK's answer. Not worth an fsync of its own.
        return self._batched(_MARK_SENT, rows, durable=False)

    def finish(self, finishes: list[Finish]) -> Deferred[list[Receipt]]:
        def run(conn: sqlite3.Connection) -> list[Receipt]:
            stored = []
            for f in finishes:
                # A report may have made the message final meanwhile (a send that timed
                # out had reached LINK): that state stands, and its receipt was the one.
                cursor = conn.execute(
                    "UPDATE messages SET state = ?, stat = ?, err = ?, done_at = ?"
                    " WHERE id = ? AND state < 2",
                    (FINAL, f.stat, f.err, f.done_at, f.message_id),
                )
                if cursor.rowcount and f.receipt is not None:
                    stored.append(_insert_receipt(conn, f.receipt))
            return stored

        return self._submit(run)

    def apply_reports(self, reports: list[DeliveryReport]) -> Deferred[list[ReportResult]]:
        table = self.result_codes
        now = self._now()

        def run(conn: sqlite3.Connection) -> list[ReportResult]:
            return [_apply_report(conn, report, table, now) for report in reports]

        return self._submit(run)

    def receipts_done(self, seqs: list[int]) -> Deferred[None]:
        # Lost in a crash, the receipt is delivered again after the restart.
        return self._batched(_DELETE_RECEIPT, [(seq,) for seq in seqs], durable=False)

    def purge(self, before: float) -> Deferred[int]:
        def run(conn: sqlite3.Connection) -> int:
            # Bounded so one purge never holds the writer for long.
            conn.execute(
                "DELETE FROM upstream_ids WHERE message_id IN (SELECT id FROM messages"
                " WHERE state = 2 AND done_at < ? LIMIT 10000)",
                (before,),
            )
            conn.execute(
                "DELETE FROM mo_seen WHERE upstream_id IN (SELECT upstream_id FROM mo_seen"
                " WHERE received_at < ? LIMIT 10000)",
                (before,),
            )
            cursor = conn.execute(
                "DELETE FROM messages WHERE id IN (SELECT id FROM messages"
                " WHERE state = 2 AND done_at < ? LIMIT 10000)",
                (before,),
            )
            return cursor.rowcount

        return self._submit(run)

    def depths(self) -> Deferred[Depths]:
        def run(conn: sqlite3.Connection) -> Depths:
            counts = dict(
                conn.execute(
                    "SELECT state, count(*) FROM messages WHERE state < 2 GROUP BY state"
                ).fetchall()
            )
            oldest_queued = conn.execute(
                "SELECT min(submitted_at) FROM messages WHERE state = 0"
            ).fetchone()[0]
            receipts, oldest_receipt = conn.execute(
                "SELECT count(*), min(done_date) FROM receipts"
            ).fetchone()
            return Depths(
                queued=counts.get(QUEUED, 0),
                sent=counts.get(SENT, 0),
                receipts=receipts,
                oldest_queued=oldest_queued,
                oldest_receipt=oldest_receipt,
            )

        return self._submit(run)

    def message_state(self, message_id: str) -> Deferred[tuple[int, str | None, str] | None]:
        """(state, stat, account) of one message, for tests and query tools."""

        def run(conn: sqlite3.Connection) -> tuple[int, str | None, str] | None:
            row = conn.execute(
                "SELECT state, stat, account FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            return None if row is None else (row[0], row[1], row[2])

        return self._submit(run)


def _link_report(conn: sqlite3.Connection, receipt: LinkReceipt) -> DeliveryReport:
    """A LINK SMPP receipt in the shape Common's reports have: `id$part` for a
    segment, refId our own id when the id is known under any of its forms."""
    row = None
    for form in upstream_id_forms(receipt.upstream_id):
        row = conn.execute(_FIND_FORM, (form,)).fetchone()
        if row is not None:
            break
    message_id, part = row if row is not None else (None, None)
    stat = receipt.stat if receipt.stat in STAT_STATE else "UNKNOWN"
    # ENROUTE is LINK's only state on the way; every other stat word is final.
    final = stat != "ENROUTE"
    return DeliveryReport(
        id=receipt.upstream_id if part is None else f"{receipt.upstream_id}${part}",
        ref_id=message_id,
        result_code=0,
        operator=None,
        timestamp=None,
        sent_timestamp=None,
        operator_result_code=None,
        segments=None,
        custom_parameters={},
        outcome=Outcome(stat, receipt.err, final, STAT_STATE[stat]),
        reported_at=receipt.done_at,
    )


def _id_in_use(message_id: str, conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone() is not None


def _field_values(message_fields: Mapping[str, Any]) -> tuple[Any, ...]:
    get = message_fields.get
    extra = {k: v for k, v in message_fields.items() if k not in _COLUMN_FIELDS}
    return (
        get("source"),
        get("sourceTON"),
        get("destination"),
        get("destinationTON"),
        get("dcs"),
        get("userData"),
        get("userDataHeader"),
        _encode(extra) if extra else None,
    )


def _message_from_row(row: tuple[Any, ...]) -> Message:
    values = dict(zip(_MESSAGE_COLUMNS, row, strict=True))
    message_fields: dict[str, Any] = {}
    for field, column in _FIELD_COLUMNS:
        value = values.pop(column)
        if value is not None:
            message_fields[field] = value
    extra = values.pop("extra_fields")
    if extra:
        message_fields.update(json.loads(extra))
    values["billing_receipt"] = bool(values["billing_receipt"])
    return Message(fields=message_fields, **values)


def _receipt_row(receipt: Receipt) -> tuple[Any, ...]:
    return (
        receipt.account,
        receipt.message_id,
        receipt.source_addr,
        receipt.source_ton,
        receipt.source_npi,
        receipt.destination_addr,
        receipt.dest_ton,
        receipt.dest_npi,
        receipt.stat,
        receipt.err,
        receipt.sub,
        receipt.dlvrd,
        receipt.submit_date,
        receipt.done_date,
        receipt.text,
        receipt.attempts,
        receipt.kind,
        receipt.data_coding,
        receipt.esm_class,
        receipt.payload,
        receipt.expires_at,
    )


def _insert_receipt(conn: sqlite3.Connection, receipt: Receipt) -> Receipt:
    receipt.seq = conn.execute(_INSERT_RECEIPT, _receipt_row(receipt)).lastrowid or 0
    return receipt


def _load_parts(text: str | None, table: Mapping[int, Outcome]) -> dict[str, Outcome]:
    """Part outcomes as stored: [stat, err, final] (a bare int is a Common resultCode,
    as schema 1 stored them)."""
    if not text:
        return {}
    parts: dict[str, Outcome] = {}
    for key, value in json.loads(text).items():
        if isinstance(value, int):
            parts[key] = outcome_for(value, table)
        else:
            stat, err, final = value
            parts[key] = Outcome(stat, err, final, STAT_STATE[stat])
    return parts


def _dump_parts(parts: Mapping[str, Outcome]) -> str | None:
    if not parts:
        return None
    return json.dumps({k: [o.stat, o.err, o.final] for k, o in parts.items()})


def _finish_whole(
    conn: sqlite3.Connection, report: DeliveryReport, base: str, outcome: Outcome, now: float
) -> ReportResult | None:
    """A final report for a whole message, in one UPDATE ... RETURNING; None if it
    matched no message that was still open."""
    billing = BILLING_PENDING if outcome.billing_pending else None
    values = (outcome.stat, outcome.err, now, billing, base)
    row = None
    if report.ref_id:
        row = conn.execute(_FINISH_BY_ID, (*values, report.ref_id)).fetchone()
    if row is None:
        row = conn.execute(_FINISH_BY_UPSTREAM, (*values, base)).fetchone()
    if row is None:
        return None
    dlvrd = 1 if outcome.stat == "DELIVRD" else 0
    kind = "billing_pending" if billing else "final"
    return _reported(conn, report, row, kind, outcome, 1, dlvrd, now)


def _reported(
    conn: sqlite3.Connection,
    report: DeliveryReport,
    context: tuple[Any, ...],
    kind: str,
    outcome: Outcome,
    sub: int,
    dlvrd: int,
    now: float,
) -> ReportResult:
    """The result of a report that changed its message; stores the receipt if wanted."""
    (
        our_id,
        reply_id,
        submitted_at,
        account,
        registered_delivery,
        source_addr,
        source_ton,
        source_npi,
        dest_addr,
        dest_ton,
        dest_npi,
        text_head,
    ) = context
    final = kind in ("final", "billing_pending")
    if kind == "partial" or not rp.esme_wants(registered_delivery, outcome):
        return ReportResult(
            report,
            kind if kind == "partial" else "silent",
            stat=outcome.stat,
            message_id=our_id,
            final=final,
        )
    receipt = Receipt(
        account=account,
        message_id=reply_id or our_id,
        # A receipt travels back: from the original destination to the original source.
        source_addr=dest_addr,
        source_ton=dest_ton,
        source_npi=dest_npi,
        destination_addr=source_addr,
        dest_ton=source_ton,
        dest_npi=source_npi,
        stat=outcome.stat,
        err=outcome.err,
        sub=sub,
        dlvrd=dlvrd,
        submit_date=submitted_at,
        done_date=rp.done_time(report.reported_at, submitted_at, now),
        text=text_head,
    )
    return ReportResult(
        report, kind, _insert_receipt(conn, receipt), outcome.stat, message_id=our_id, final=final
    )


def _apply_report(
    conn: sqlite3.Connection,
    report: DeliveryReport,
    table: Mapping[int, Outcome],
    now: float,
) -> ReportResult:
    base, part = rp.split_part(report.id)
    if part is None:
        whole = report.outcome or outcome_for(report.result_code, table)
        if whole.final:
            fast = _finish_whole(conn, report, base, whole, now)
            if fast is not None:
                return fast
    row = None
    # refId is our own id, mirrored by Common: it finds the message even when the
    # report overtook the REST answer that told us LINK's id.
    if report.ref_id:
        row = conn.execute(_REPORT_BY_ID, (report.ref_id,)).fetchone()
    if row is None:
        row = conn.execute(_REPORT_BY_UPSTREAM, (base,)).fetchone()
    if row is None:
        return ReportResult(report, "unknown")
    state, parts_json, expected_parts, billing, billing_receipt, *context = row
    our_id = context[0]
    if state == FINAL and billing == BILLING_PENDING:
        said = report.outcome or outcome_for(report.result_code, table)
        return _billing_reported(conn, report, said, bool(billing_receipt), context, now)
    decision = rp.decide(
        already_final=state == FINAL,
        parts=_load_parts(parts_json, table),
        expected_parts=expected_parts,
        outcome=report.outcome or outcome_for(report.result_code, table),
        part=part,
        segments=report.segments,
    )
    if decision.kind == "duplicate":
        return ReportResult(report, "duplicate", message_id=our_id)
    outcome = decision.outcome
    assert outcome is not None
    kind = decision.kind
    if kind == "final":
        pending = outcome.stat == "DELIVRD" and (
            outcome.billing_pending or any(o.billing_pending for o in decision.parts.values())
        )
        if pending:
            kind = "billing_pending"
        conn.execute(
            "UPDATE messages SET state = ?, stat = ?, err = ?, done_at = ?, part_results = ?,"
            " billing = ?, upstream_id = coalesce(upstream_id, ?) WHERE id = ?",
            (
                FINAL,
                outcome.stat,
                outcome.err,
                now,
                _dump_parts(decision.parts),
                BILLING_PENDING if pending else None,
                base,
                our_id,
            ),
        )
    elif decision.parts:
        conn.execute(
            "UPDATE messages SET part_results = ? WHERE id = ?",
            (_dump_parts(decision.parts), our_id),
        )
    return _reported(conn, report, tuple(context), kind, outcome, decision.sub, decision.dlvrd, now)


def _billing_reported(
    conn: sqlite3.Connection,
    report: DeliveryReport,
    outcome: Outcome,
    wants_receipt: bool,
    context: list[Any],
    now: float,
) -> ReportResult:
    """A report for a message delivered with its billing still to come (1007).

    The first final one settles it: recorded as its resultCode, counted as
    billed (DELIVRD, e.g. 1001) or billing_failed (22xx and any other); the
    ESME, which had its DELIVRD, hears of a failure only when its account has
    billing_receipts and it asked for receipts of failures.
    """
    our_id = context[0]
    if not outcome.final:
        return ReportResult(report, "intermediate", stat=outcome.stat, message_id=our_id)
    conn.execute("UPDATE messages SET billing = ? WHERE id = ?", (str(report.result_code), our_id))
    if outcome.stat == "DELIVRD":
        return ReportResult(report, "billed", stat=outcome.stat, message_id=our_id)
    if not wants_receipt:
        return ReportResult(report, "billing_failed", stat=outcome.stat, message_id=our_id)
    result = _reported(conn, report, tuple(context), "final", outcome, 1, 1, now)
    return ReportResult(report, "billing_failed", result.receipt, outcome.stat, message_id=our_id)
