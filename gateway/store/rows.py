"""Records <-> SQLite rows, and the report primitives on one transaction.

Plain columns, not JSON: a delivery report reads its message's columns on the
hot path, and decoding a blob per report cost more than the query. Only the
rare vendor fields (premium, customParameters) are JSON, and NULL when empty.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import fields, replace
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Final

from gateway.ids import upstream_id_forms
from gateway.records import (
    Address,
    Alphabet,
    Body,
    Member,
    Message,
    Outcome,
    Party,
    PartyKind,
    Receipt,
    Report,
)
from gateway.smpp.receipts import STAT_STATE
from gateway.store.base import FINAL, QUEUED, Tracked

# One encoder for the process: json.dumps with arguments builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

MESSAGE_COLUMNS: Final = (
    "id",
    "account",
    "connector",
    "state",
    "submitted_at",
    "expires_at",
    "validity_s",
    "scheduled_at",
    "not_before",
    "priority",
    "registered_delivery",
    "source_addr",
    "source_ton",
    "source_npi",
    "dest_addr",
    "dest_ton",
    "dest_npi",
    "sender_kind",
    "sender",
    "recipient",
    "body_text",
    "body_data",
    "udh",
    "alphabet",
    "flash",
    "premium",
    "custom",
    "service_type",
    "data_coding",
    "esm_class",
    "text_head",
    "parts",
    "reply_id",
    "billing_receipt",
    "members",
)
# The rowid first: it is the message's place in its queue, given by the store.
INSERT_MESSAGE: Final = (
    f"INSERT INTO messages (rowid, {', '.join(MESSAGE_COLUMNS)})"
    f" VALUES (?, {', '.join('?' * len(MESSAGE_COLUMNS))})"
)
SELECT_MESSAGE: Final = f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages"
SELECT_QUEUED: Final = f"SELECT rowid, {', '.join(MESSAGE_COLUMNS)} FROM messages"
# What replace_sm may change of a queued message.
REPLACE_MESSAGE: Final = (
    "UPDATE messages SET scheduled_at = ?, not_before = ?, expires_at = ?, validity_s = ?,"
    " registered_delivery = ?, text_head = ?, parts = ?, body_text = ?, body_data = ?,"
    " udh = ?, alphabet = ?, flash = ? WHERE id = ? AND state = 0"
)

RECEIPT_COLUMNS: Final = tuple(f.name for f in fields(Receipt) if f.name != "seq")
INSERT_RECEIPT: Final = (
    f"INSERT INTO receipts ({', '.join(RECEIPT_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(RECEIPT_COLUMNS))})"
)
SELECT_RECEIPT: Final = f"SELECT seq, {', '.join(RECEIPT_COLUMNS)} FROM receipts"
# Every report that wants a receipt passes through here: attrgetter and a
# positional constructor cost a fifth of a genexpr and dataclasses.replace.
_RECEIPT_ROW: Final = attrgetter(*RECEIPT_COLUMNS)
_RECEIPT_FIELDS: Final = attrgetter(*(f.name for f in fields(Receipt)))
_SEQ_AT: Final = [f.name for f in fields(Receipt)].index("seq")

_KINDS: Final = {kind.value: kind for kind in PartyKind}
_ALPHABETS: Final = {alphabet.value: alphabet for alphabet in Alphabet}
_NO_FIELDS: Final[Mapping[str, Any]] = MappingProxyType({})


def _json(value: Mapping[str, Any]) -> str | None:
    return _encode(dict(value)) if value else None


def _unjson(text: str | None) -> Mapping[str, Any]:
    return MappingProxyType(json.loads(text)) if text else _NO_FIELDS


def body_values(body: Body) -> tuple[Any, ...]:
    return (
        body.text,
        body.data,
        body.udh,
        body.alphabet.value if body.alphabet is not None else None,
        int(body.flash),
    )


def dump_members(members: tuple[Member, ...]) -> str | None:
    if not members:
        return None
    return _encode(
        [
            [m.id, m.seq, m.registered_delivery, m.submitted_at, m.text_head, list(m.segments)]
            for m in members
        ]
    )


def load_members(text: str | None) -> tuple[Member, ...]:
    if not text:
        return ()
    return tuple(
        Member(id_, seq, rd, submitted_at, head, tuple(segments))
        for id_, seq, rd, submitted_at, head, segments in json.loads(text)
    )


def message_row(m: Message, place: int, state: int = QUEUED) -> tuple[Any, ...]:
    source, destination = m.source, m.destination
    return (
        place,
        m.id,
        m.account,
        m.connector,
        state,
        m.submitted_at,
        m.expires_at,
        m.validity_s,
        m.scheduled_at,
        m.not_before,
        m.priority,
        m.registered_delivery,
        source.addr,
        source.ton,
        source.npi,
        destination.addr,
        destination.ton,
        destination.npi,
        m.sender.kind.value,
        m.sender.value,
        m.recipient,
        *body_values(m.body),
        _json(m.premium),
        _json(m.custom),
        m.service_type,
        m.data_coding,
        m.esm_class,
        m.text_head,
        m.parts,
        m.reply_id,
        int(m.billing_receipt),
        dump_members(m.members),
    )


def queued_from_row(row: tuple[Any, ...]) -> tuple[int, Message]:
    """(place, message) from a SELECT_QUEUED row."""
    return row[0], message_from_row(row[1:])


def message_from_row(row: tuple[Any, ...]) -> Message:
    (
        id_,
        account,
        connector,
        _state,
        submitted_at,
        expires_at,
        validity_s,
        scheduled_at,
        not_before,
        priority,
        registered_delivery,
        source_addr,
        source_ton,
        source_npi,
        dest_addr,
        dest_ton,
        dest_npi,
        sender_kind,
        sender,
        recipient,
        text,
        data,
        udh,
        alphabet,
        flash,
        premium,
        custom,
        service_type,
        data_coding,
        esm_class,
        text_head,
        parts,
        reply_id,
        billing_receipt,
        members,
    ) = row
    return Message(
        id=id_,
        account=account,
        connector=connector,
        source=Address(source_addr, source_ton, source_npi),
        destination=Address(dest_addr, dest_ton, dest_npi),
        sender=Party(_KINDS[sender_kind], sender),
        recipient=recipient,
        body=Body(
            text=text,
            data=None if data is None else bytes(data),
            udh=None if udh is None else bytes(udh),
            alphabet=_ALPHABETS[alphabet] if alphabet else None,
            flash=bool(flash),
        ),
        submitted_at=submitted_at,
        expires_at=expires_at,
        validity_s=validity_s,
        scheduled_at=scheduled_at,
        not_before=not_before,
        priority=priority,
        registered_delivery=registered_delivery,
        premium=_unjson(premium),
        custom=_unjson(custom),
        service_type=service_type,
        data_coding=data_coding,
        esm_class=esm_class,
        text_head=text_head,
        parts=parts,
        reply_id=reply_id,
        billing_receipt=bool(billing_receipt),
        members=load_members(members),
    )


def replacement_row(m: Message) -> tuple[Any, ...]:
    return (
        m.scheduled_at,
        m.not_before,
        m.expires_at,
        m.validity_s,
        m.registered_delivery,
        m.text_head,
        m.parts,
        *body_values(m.body),
        m.id,
    )


def receipt_row(r: Receipt) -> tuple[Any, ...]:
    return _RECEIPT_ROW(r)


def receipt_from_row(row: tuple[Any, ...]) -> Receipt:
    seq, *values = row
    receipt = Receipt(**dict(zip(RECEIPT_COLUMNS, values, strict=True)), seq=seq)
    return replace(receipt, payload=bytes(receipt.payload))


def insert_receipt(conn: sqlite3.Connection, receipt: Receipt) -> Receipt:
    seq = conn.execute(INSERT_RECEIPT, receipt_row(receipt)).lastrowid or 0
    values = list(_RECEIPT_FIELDS(receipt))
    values[_SEQ_AT] = seq
    return Receipt(*values)


def load_parts(text: str | None) -> dict[str, Outcome]:
    """Part outcomes as stored: [stat, err, final] each."""
    if not text:
        return {}
    return {
        key: Outcome(stat, err, final, STAT_STATE[stat])
        for key, (stat, err, final) in json.loads(text).items()
    }


def dump_parts(parts: Mapping[str, Outcome]) -> str | None:
    if not parts:
        return None
    return _encode({k: [o.stat, o.err, o.final] for k, o in parts.items()})


# --- the report primitives --------------------------------------------------------

# What a report's rules need of its message, in the order `_tracked` reads it.
_TRACKED = (
    "id, reply_id, account, registered_delivery, source_addr, source_ton, source_npi,"
    " dest_addr, dest_ton, dest_npi, submitted_at, text_head, state, part_results, parts,"
    " billing, billing_receipt, members"
)
_FIND = f"SELECT {_TRACKED} FROM messages WHERE {{key}} = ?"
_FIND_BY_ID: Final = _FIND.format(key="id")
_FIND_BY_UPSTREAM: Final = _FIND.format(key="upstream_id")
# The common case: a whole-message final report for a message not yet final.
# Anything else (parts, duplicates, unknown ids) takes the long way. By id the
# row is read back with a SELECT rather than RETURNING, which SQLite buffers
# apart: about 10 us more an UPDATE here, twice what the SELECT costs.
_CLOSE: Final = (
    "UPDATE messages SET state = 2, stat = ?, err = ?, done_at = ?, billing = ?,"
    " upstream_id = coalesce(upstream_id, ?) WHERE {key} = ? AND state < 2"
)
_CLOSE_ID: Final = _CLOSE.format(key="id")
# By upstream id (a report without refId), RETURNING says which message it was.
_CLOSE_BY_UPSTREAM: Final = _CLOSE.format(key="upstream_id") + f" RETURNING {_TRACKED}"
_FIND_FORM: Final = "SELECT message_id, part FROM upstream_ids WHERE form = ?"


def _tracked(row: tuple[Any, ...], part: int | None = None) -> Tracked:
    return Tracked(
        id=row[0],
        reply_id=row[1],
        account=row[2],
        registered_delivery=row[3],
        source=Address(row[4], row[5], row[6]),
        destination=Address(row[7], row[8], row[9]),
        submitted_at=row[10],
        text_head=row[11],
        state=row[12],
        parts=load_parts(row[13]),
        expected_parts=row[14],
        billing=row[15],
        billing_receipt=bool(row[16]),
        part=part,
        members=load_members(row[17]),
    )


class SqliteBook:
    """gateway.store.base.ReportBook on one SQLite transaction."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _form(self, report: Report) -> tuple[str, int | None] | None:
        for form in upstream_id_forms(report.upstream_id):
            row = self._conn.execute(_FIND_FORM, (form,)).fetchone()
            if row is not None:
                return row[0], row[1]
        return None

    def close_open(
        self, report: Report, outcome: Outcome, done_at: float, billing: str | None
    ) -> Tracked | None:
        conn = self._conn
        values = (outcome.stat, outcome.err, done_at, billing, report.upstream_id)
        row = None
        if report.ref_id:
            row = self._close_id(values, report.ref_id)
        if row is None and report.any_form:
            found = self._form(report)
            if found is not None and found[1] is None:
                row = self._close_id(values, found[0])
        elif row is None:
            row = conn.execute(_CLOSE_BY_UPSTREAM, (*values, report.upstream_id)).fetchone()
        return None if row is None else _tracked(row)

    def _close_id(self, values: tuple[Any, ...], message_id: str) -> tuple[Any, ...] | None:
        conn = self._conn
        if conn.execute(_CLOSE_ID, (*values, message_id)).rowcount != 1:
            return None
        row: tuple[Any, ...] = conn.execute(_FIND_BY_ID, (message_id,)).fetchone()
        return row

    def find(self, report: Report) -> Tracked | None:
        conn = self._conn
        # refId is our own id, mirrored by Common: it finds the message even when the
        # report overtook the REST answer that told us LINK's id.
        if report.ref_id:
            row = conn.execute(_FIND_BY_ID, (report.ref_id,)).fetchone()
            if row is not None:
                return _tracked(row)
        if report.any_form:
            found = self._form(report)
            if found is None:
                return None
            row = conn.execute(_FIND_BY_ID, (found[0],)).fetchone()
            return None if row is None else _tracked(row, found[1])
        row = conn.execute(_FIND_BY_UPSTREAM, (report.upstream_id,)).fetchone()
        return None if row is None else _tracked(row)

    def update(
        self,
        message_id: str,
        *,
        parts: Mapping[str, Outcome] | None = None,
        final: Outcome | None = None,
        done_at: float = 0.0,
        billing: str | None = None,
        upstream_id: str | None = None,
    ) -> None:
        sets: list[str] = []
        values: list[Any] = []
        if final is not None:
            sets += ["state = ?", "stat = ?", "err = ?", "done_at = ?"]
            values += [FINAL, final.stat, final.err, done_at]
        if parts is not None:
            sets.append("part_results = ?")
            values.append(dump_parts(parts))
        if billing is not None:
            sets.append("billing = ?")
            values.append(billing)
        if upstream_id is not None:
            sets.append("upstream_id = coalesce(upstream_id, ?)")
            values.append(upstream_id)
        if sets:
            self._conn.execute(
                f"UPDATE messages SET {', '.join(sets)} WHERE id = ?", (*values, message_id)
            )

    def add_receipt(self, receipt: Receipt) -> Receipt:
        return insert_receipt(self._conn, receipt)


__all__ = [
    "INSERT_MESSAGE",
    "MESSAGE_COLUMNS",
    "REPLACE_MESSAGE",
    "SELECT_MESSAGE",
    "SELECT_RECEIPT",
    "SqliteBook",
    "dump_parts",
    "insert_receipt",
    "load_parts",
    "message_from_row",
    "message_row",
    "queued_from_row",
    "receipt_from_row",
    "replacement_row",
]
