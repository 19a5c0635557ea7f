"""The embedded store: one SQLite file in WAL mode (gateway.store.base.Store).

Writes go through `GroupCommitter` (gateway/store/commit.py): calls of one
reactor turn share one transaction, and a durable call's Deferred fires only
once its transaction is on disk. The schema and its migrations are in
gateway/store/schema.py, the rows of each record in gateway/store/rows.py.

A full disk makes the store "refuse" (`refusing`): the reserve beside it
(gateway/store/reserve.py) is given back so that the writes which stop
duplicates still find room, and new work (messages, LINK's reports and MO,
the readiness probe's write) fails at once with StoreFull. Once a second a
probe tries to take the reserve again; when it can, the store takes new work
again. A start on a full disk releases the previous run's reserve first, opens
in that room, and begins refusing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from gateway.ids import upstream_id_forms
from gateway.records import Message, Receipt, Report
from gateway.store import rows
from gateway.store.base import (
    FINAL,
    HELD,
    QUEUED,
    SENT,
    Backlog,
    Finish,
    MessageStatus,
    Queued,
    QueueDepth,
    ReportRule,
    StoreFull,
)
from gateway.store.commit import WAL_KEEP, WAL_LIMIT, GroupCommitter
from gateway.store.depths import read_queue_depths
from gateway.store.reserve import Reserve
from gateway.store.schema import migrate

log = Logger()

T = TypeVar("T")

_MARK_SENT = "UPDATE messages SET upstream_id = ?, state = ? WHERE id = ? AND state < 2"
_DELETE_RECEIPT = "DELETE FROM receipts WHERE seq = ?"
_INSERT_FORM = "INSERT OR REPLACE INTO upstream_ids (form, message_id, part) VALUES (?, ?, ?)"
_SET_PARTS = "UPDATE messages SET parts = ? WHERE id = ?"
_SET_CONNECTOR = "UPDATE messages SET connector = ? WHERE id = ? AND state = 0"
# state <> 2: queued, sent, or a part held for its siblings (HELD).
_FINISH = (
    "UPDATE messages SET state = 2, stat = ?, err = ?, done_at = ? WHERE id = ? AND state <> 2"
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
# Bounded so one purge never holds the writer for long.
_PURGE_BATCH: Final = 10_000
# The backlog's reads (gateway/store/schema.py, version 5, has the index of each).
# `rowid <= ?` leaves out what was committed but not yet reported durable.
_QUEUED = (
    f"{rows.SELECT_QUEUED} WHERE state = 0 AND connector = ? AND rowid > ? AND rowid <= ?"
    " ORDER BY rowid LIMIT ?"
)
_QUEUED_DUE = (
    f"{rows.SELECT_QUEUED} WHERE state = 0 AND not_before > 0 AND connector = ?"
    " AND (not_before, rowid) > (?, ?) AND not_before <= ? AND rowid <= ?"
    " ORDER BY not_before, rowid LIMIT ?"
)
_QUEUED_EXPIRED = (
    f"{rows.SELECT_QUEUED} WHERE state = 0 AND expires_at <= ? AND rowid <= ?"
    " ORDER BY expires_at LIMIT ?"
)
# `+state`, `+account`: the planner would pick messages_pending or messages_reply,
# which hold every open message, over the narrower index meant for these.
_QUEUED_AS = (
    f"{rows.SELECT_QUEUED} WHERE +state = 0 AND +account = ? AND (id = ? OR reply_id = ?)"
    " AND rowid <= ? ORDER BY rowid"
)
_QUEUED_TO = (
    f"{rows.SELECT_QUEUED} WHERE state = 0 AND account = ? AND dest_addr = ? AND rowid <= ?"
    " ORDER BY rowid"
)
# A part of a reassembled message is found by its own id: its message's row.
_MEMBER_OF = "SELECT message_id FROM member_ids WHERE account = ? AND id = ?"
_QUERY_ID = "SELECT state, stat, err, done_at, connector FROM messages WHERE id = ?"
_QUEUED_ID = f"{rows.SELECT_QUEUED} WHERE id = ? AND state = 0 AND rowid <= ?"
_HELD = f"{rows.SELECT_MESSAGE} WHERE state = {HELD} ORDER BY rowid"
_UNHOLD = f"DELETE FROM messages WHERE id = ? AND state = {HELD}"
_ADD_MEMBER = "INSERT OR REPLACE INTO member_ids (id, account, message_id) VALUES (?, ?, ?)"
_RECEIPTS_AFTER = f"{rows.SELECT_RECEIPT} WHERE account = ? AND seq > ? ORDER BY seq LIMIT ?"


class SqliteStore:
    def __init__(
        self,
        reactor: Any,
        path: str,
        *,
        synchronous: str = "full",
        clock: Callable[[], float] | None = None,
        checkpoint_interval: float = 1.0,
        wal_limit: int = WAL_LIMIT,
        wal_keep: int = WAL_KEEP,
        reserve: int = 0,
        commit_delay: float = 0.0,
        fsync: str = "thread",
    ) -> None:
        self._reactor = reactor
        self.path = path
        self._reserve = Reserve(path + ".reserve", reserve)
        self._refusing_since: float | None = None
        self._probe: LoopingCall | None = None
        self._durable = synchronous.lower() == "full"
        self._now = clock or reactor.seconds
        self._checkpoint_interval = checkpoint_interval
        self._wal = (wal_limit, wal_keep)
        self._commit_delay = commit_delay
        self._fsync = fsync
        self._commit: GroupCommitter | None = None
        self._short_next = 0
        self._short_reserved = 0
        # The next message's place, and the last place whose add_messages fired:
        # reads stop there (see base.py), and the committer fires in commit order.
        self._place = 0
        self._reported = 0

    @property
    def batches(self) -> int:
        """Transactions so far (group commit: fewer than the calls)."""
        return self._commit.batches if self._commit else 0

    @property
    def jobs(self) -> int:
        return self._commit.jobs if self._commit else 0

    @property
    def refusing(self) -> bool:
        """Whether new work is turned away: the disk is full (see the module docstring)."""
        return self._refusing_since is not None

    def _refused(self) -> Deferred[Any]:
        return fail(StoreFull("the disk is full: new work is refused until space is freed"))

    def _disk_full(self) -> bool:
        """The committer's `on_full`: give the reserve back; whether that freed room."""
        if self._reserve.size <= 0:
            return False
        freed = self._reserve.release()
        self._refuse(f"the reserve ({self._reserve.size // 2**20} MiB) is given back")
        return freed

    def _refuse(self, why: str) -> None:
        if self._refusing_since is not None:
            return
        self._refusing_since = self._reactor.seconds()
        log.error(
            "store: the disk is full; {why}. New messages get ESME_RMSGQFUL, LINK's"
            " callbacks 503 and nothing new goes to LINK until {need} MiB are free",
            why=why,
            need=2 * self._reserve.size // 2**20,
        )
        self._probe = LoopingCall(self._try_reserve)
        self._probe.clock = self._reactor
        self._probe.start(1.0, now=False)

    def _try_reserve(self) -> None:
        try:
            taken = self._reserve.take()
        except OSError as error:
            log.error("store: cannot allocate its reserve: {error}", error=error)
            return
        if taken and self._refusing_since is not None:
            log.info(
                "store: space is back after {seconds:.1f} s; taking new work again",
                seconds=self._reactor.seconds() - self._refusing_since,
            )
            self._refusing_since = None
            if self._probe is not None and self._probe.running:
                self._probe.stop()
            self._probe = None

    def _committer(self) -> GroupCommitter:
        if self._commit is None:
            raise RuntimeError("the store is not open")
        return self._commit

    def _submit(
        self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = True, urgent: bool = False
    ) -> Deferred[T]:
        return self._committer().submit(fn, durable=durable, urgent=urgent)

    def _batched(
        self, statement: str, values: list[tuple[Any, ...]], *, durable: bool
    ) -> Deferred[None]:
        return self._committer().batched(statement, values, durable=durable)

    # --- lifecycle -----------------------------------------------------------

    def open(self) -> Deferred[Backlog]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # The previous run's reserve is room to open in when the disk is full.
        self._reserve.release()
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # Commits only append to the WAL; the GroupCommitter's fsync makes them durable.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        try:
            migrate(conn, self.path)
        except BaseException:
            conn.close()
            raise
        row = conn.execute("SELECT value FROM meta WHERE key='short_id_next'").fetchone()
        # Start past every id a previous run may have handed out.
        self._short_next = int(row[0]) if row else 0
        self._short_reserved = self._short_next + _SHORT_ID_BLOCK
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('short_id_next', ?)", (str(self._short_reserved),)
        )
        backlog = Backlog()
        for account, connector, count in conn.execute(
            "SELECT account, connector, count(*) FROM messages WHERE state = ?"
            " GROUP BY account, connector",
            (QUEUED,),
        ):
            backlog.messages[(account, connector)] = count
        for account, kind, count in conn.execute(
            "SELECT account, kind, count(*) FROM receipts GROUP BY account, kind"
        ):
            backlog.receipts[(account, kind)] = count
        (top,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()
        self._place = self._reported = top
        self._commit = GroupCommitter(
            self._reactor,
            self.path,
            conn,
            durable=self._durable,
            checkpoint_interval=self._checkpoint_interval,
            wal_limit=self._wal[0],
            wal_keep=self._wal[1],
            on_full=self._disk_full,
            delay=self._commit_delay,
            fsync=self._fsync,
        )
        if self._durable:
            log.info("store: fsyncs through {how}", how=self._commit.fsync_by)
        if self._reserve.size > 0 and not self._reserve.take():
            self._refuse("the reserve could not be allocated at the start")
        return succeed(backlog)

    def close(self) -> Deferred[None]:
        if self._probe is not None and self._probe.running:
            self._probe.stop()
        if self._commit is None:
            return succeed(None)
        return self._commit.close()

    def heartbeat(self, stamp: str) -> Deferred[None]:
        """A tiny durable write (the readiness probe's): it fires only if the store
        still commits and fsyncs, the way every accepted message does."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('readiness_probe', ?)", (stamp,))

        if self.refusing:
            return self._refused()  # /readyz must not say 200 on the reserve's room
        return self._submit(run)

    # --- MT ---------------------------------------------------------------------

    def add_messages(self, messages: list[Message]) -> Deferred[None]:
        """Store new messages (calls until the next flush share one INSERT)."""
        return self._insert(messages, QUEUED)

    def hold(self, messages: list[Message]) -> Deferred[None]:
        """Store parts of long messages, waiting for their siblings in no queue."""
        return self._insert(messages, HELD)

    def _insert(self, messages: list[Message], state: int) -> Deferred[None]:
        if self.refusing:
            return self._refused()
        first, last = self._places(len(messages))
        values = [rows.message_row(m, place, state) for place, m in enumerate(messages, first)]
        d = self._batched(rows.INSERT_MESSAGE, values, durable=True)
        return d.addCallback(self._reported_upto, last)

    def _places(self, count: int) -> tuple[int, int]:
        """Queue places for `count` new rows: (first, last)."""
        first = self._place + 1
        self._place += count
        return first, self._place

    def _reported_upto(self, result: Any, last: int) -> Any:
        # Transactions fire in the order they were queued, but a batched INSERT
        # shares the next flush with later calls: never move back.
        self._reported = max(self._reported, last)
        return result

    def held(self) -> Deferred[list[Message]]:
        """Every part waiting for its siblings, in the order stored (a restart)."""
        found = self._read(_HELD, ())
        return succeed([rows.message_from_row(row) for row in found])

    def assemble(self, whole: Message, part_ids: list[str]) -> Deferred[None]:
        """The message complete parts make, queued in their place; the parts are
        its members from now on, found by their ids (`member_ids`)."""
        first, last = self._places(1)
        row = rows.message_row(whole, first)
        members = [(part_id, whole.account, whole.id) for part_id in part_ids]

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(_UNHOLD, [(part_id,) for part_id in part_ids])
            conn.execute(rows.INSERT_MESSAGE, row)
            conn.executemany(_ADD_MEMBER, members)

        return self._submit(run).addCallback(self._reported_upto, last)

    def release(self, messages: list[Message]) -> Deferred[list[str]]:
        """Waiting parts that go on as the segments they are: queued under their own
        ids at the end of the queue. Fires with the ids released (a part finished
        meanwhile, cancelled say, stays as it is)."""
        first, last = self._places(len(messages))
        values = [rows.message_row(m, place) for place, m in enumerate(messages, first)]

        def run(conn: sqlite3.Connection) -> list[str]:
            released = []
            for message, row in zip(messages, values, strict=True):
                if conn.execute(_UNHOLD, (message.id,)).rowcount:
                    conn.execute(rows.INSERT_MESSAGE, row)
                    released.append(message.id)
            return released

        return self._submit(run).addCallback(self._reported_upto, last)

    def _read(self, statement: str, values: tuple[Any, ...]) -> list[Any]:
        return self._committer().read(lambda conn: conn.execute(statement, values).fetchall())

    def queued(self, connector: str, after: int, limit: int) -> Deferred[list[Queued]]:
        found = self._read(_QUEUED, (connector, after, self._reported, limit))
        return succeed([rows.queued_from_row(row) for row in found])

    def queued_due(
        self, connector: str, after: tuple[float, int], upto: float, limit: int
    ) -> Deferred[list[Queued]]:
        values = (connector, *after, upto, self._reported, limit)
        return succeed([rows.queued_from_row(row) for row in self._read(_QUEUED_DUE, values)])

    def queued_expired(self, now: float, limit: int) -> Deferred[list[Message]]:
        found = self._read(_QUEUED_EXPIRED, (now, self._reported, limit))
        return succeed([rows.queued_from_row(row)[1] for row in found])

    def queued_as(self, account: str, message_id: str) -> Deferred[list[Message]]:
        found = self._read(_QUEUED_AS, (account, message_id, message_id, self._reported))
        if not found:
            whole = self._member_of(account, message_id)
            if whole is not None:
                found = self._read(_QUEUED_ID, (whole, self._reported))
        return succeed([rows.queued_from_row(row)[1] for row in found])

    def _member_of(self, account: str, part_id: str) -> str | None:
        row = self._read(_MEMBER_OF, (account, part_id))
        return row[0][0] if row else None

    def queued_to(self, account: str, destination: str) -> Deferred[list[Message]]:
        found = self._read(_QUEUED_TO, (account, destination, self._reported))
        return succeed([rows.queued_from_row(row)[1] for row in found])

    def mark_sent(self, sent: list[tuple[str, str | None]]) -> Deferred[None]:
        values = [(upstream, SENT, our) for our, upstream in sent]
        # Lost in a crash, the message is sent again: the same as a crash just before
        # LINK's answer. Not worth an fsync of its own.
        return self._batched(_MARK_SENT, values, durable=False)

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

    def reroute(self, moved: list[tuple[str, str]]) -> Deferred[None]:
        """(our id, the connector it now waits for) after a failover.

        Bookkeeping: lost in a crash, the message waits for its first connector
        again and the router moves it anew.
        """
        values = [(connector, message_id) for message_id, connector in moved]
        return self._batched(_SET_CONNECTOR, values, durable=False)

    def replace_message(self, message: Message) -> Deferred[None]:
        row = rows.replacement_row(message)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(rows.REPLACE_MESSAGE, row)

        return self._submit(run)

    def finish(self, finishes: list[Finish]) -> Deferred[list[Receipt]]:
        def run(conn: sqlite3.Connection) -> list[Receipt]:
            stored: list[Receipt] = []
            for f in finishes:
                # A report may have made the message final meanwhile (a send that timed
                # out had reached LINK): that state stands, and its receipt was the one.
                cursor = conn.execute(_FINISH, (f.stat, f.err, f.done_at, f.message_id))
                if cursor.rowcount:
                    stored.extend(rows.insert_receipt(conn, r) for r in f.receipts)
            return stored

        return self._submit(run)

    def query(self, account: str, message_id: str) -> Deferred[list[MessageStatus]]:
        found = self._read(_QUERY, (account, message_id, message_id))
        if not found:
            whole = self._member_of(account, message_id)
            if whole is not None:
                found = self._read(_QUERY_ID, (whole,))
        return succeed([MessageStatus(*row) for row in found])

    def short_id(self, fmt: str) -> str:
        commit = self._committer()
        base, span = _SHORT_ID_RANGES[fmt]
        while True:
            n = self._short_next
            self._short_next += 1
            if self._short_next > self._short_reserved - _SHORT_ID_BLOCK // 2:
                self._reserve_short_ids()
            candidate = f"{base + n % span:{'x' if fmt == 'hex' else 'd'}}"
            # Only after the counter wrapped can an id still be in the store.
            if n < span or not commit.read(partial(_id_in_use, candidate)):
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

    # --- reports -----------------------------------------------------------------

    def apply_reports(self, reports: list[Report], rule: ReportRule[T]) -> Deferred[list[T]]:
        if self.refusing:
            return self._refused()  # LINK gets a 503 and sends them again later

        def run(conn: sqlite3.Connection) -> list[T]:
            book = rows.SqliteBook(conn)
            return [rule(book, report) for report in reports]

        # LINK's next report on this connection waits for the 200 (commit.py).
        return self._submit(run, urgent=True)

    # --- towards ESMEs -------------------------------------------------------------

    def add_receipts(self, receipts: list[Receipt]) -> Deferred[list[Receipt]]:
        def run(conn: sqlite3.Connection) -> list[Receipt]:
            return [rows.insert_receipt(conn, receipt) for receipt in receipts]

        return self._submit(run)

    def receipts_after(self, account: str, after: int, limit: int) -> Deferred[list[Receipt]]:
        # Committed receipts whose Deferred has not fired yet may be in the page: the
        # deliverer passes over seqs it holds and those it is told of later.
        found = self._read(_RECEIPTS_AFTER, (account, after, limit))
        return succeed([rows.receipt_from_row(row) for row in found])

    def receipts_done(self, seqs: list[int]) -> Deferred[None]:
        # Lost in a crash, the receipt is delivered again after the restart.
        return self._batched(_DELETE_RECEIPT, [(seq,) for seq in seqs], durable=False)

    def add_mo(
        self, messages: list[tuple[str, list[Receipt]]]
    ) -> Deferred[list[list[Receipt] | None]]:
        """Store each MO's deliver_sm items, unless LINK's id was seen before.

        LINK sends an MO again when it did not get our answer; its id (kept for
        the retention period) makes the second copy None here, not a second
        delivery to the ESME. An MO without an id cannot be told apart.
        """
        if self.refusing:
            return self._refused()
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
                results.append([rows.insert_receipt(conn, item) for item in items])
            return results

        return self._submit(run, urgent=True)  # as reports: LINK waits for the answer

    # --- upkeep --------------------------------------------------------------------

    def purge(self, before: float) -> Deferred[int]:
        def run(conn: sqlite3.Connection) -> int:
            old = (
                f"SELECT id FROM messages WHERE state = {FINAL} AND done_at < ?"
                f" LIMIT {_PURGE_BATCH}"
            )
            conn.execute(f"DELETE FROM upstream_ids WHERE message_id IN ({old})", (before,))
            conn.execute(f"DELETE FROM member_ids WHERE message_id IN ({old})", (before,))
            conn.execute(
                "DELETE FROM mo_seen WHERE upstream_id IN (SELECT upstream_id FROM mo_seen"
                f" WHERE received_at < ? LIMIT {_PURGE_BATCH})",
                (before,),
            )
            return conn.execute(f"DELETE FROM messages WHERE id IN ({old})", (before,)).rowcount

        return self._submit(run)

    def depths(self) -> Deferred[list[QueueDepth]]:
        return self._submit(read_queue_depths, durable=False)

    def message_state(self, message_id: str) -> Deferred[tuple[int, str | None, str] | None]:
        """(state, stat, account) of one message, for tests and query tools."""

        def run(conn: sqlite3.Connection) -> tuple[int, str | None, str] | None:
            row = conn.execute(
                "SELECT state, stat, account FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            return None if row is None else (row[0], row[1], row[2])

        return self._submit(run)


def _id_in_use(message_id: str, conn: sqlite3.Connection) -> bool:
    for table in ("messages", "member_ids"):
        if conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (message_id,)).fetchone():
            return True
    return False


__all__ = ["SqliteStore"]
