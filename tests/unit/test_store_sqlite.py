"""gateway.store.sqlite against a real SQLite file, with the real reactor and worker threads.

What every store does is the contract (tests/support/store_contract.py), run
here for SqliteStore; the rest is SQLite's own: the schema and its migrations,
WAL, group commit, how short ids are reserved, what the file says.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.trial.unittest import TestCase

import gateway.store.sqlite as sqlite_module
from gateway.cli import queues
from gateway.connectors.common.mapping import CommonReports
from gateway.connectors.common.payloads import DeliveryReport
from gateway.records import Address, Alphabet, Body, Party, PartyKind
from gateway.store.base import FINAL, MT_BILLING, MT_QUEUED, QUEUED, SENT, QueueDepth
from gateway.store.schema import MIGRATIONS
from gateway.store.sqlite import SqliteStore
from tests.support.records import report
from tests.support.store_contract import (
    BILLED_DELAYED,
    BILLING_FAILED,
    BILLING_REFUSED,
    NOW,
    Steps,
    StoreContract,
    StoreFactory,
    mt,
)

# The schema versions before the route-neutral message (4), as SQL.
_SQL_STEPS = [step for step in MIGRATIONS if isinstance(step, str)]


def common_report(
    report_id: str, code: int, *, ref_id: str | None = None, segments: int | None = None
) -> DeliveryReport:
    """A Common delivery report callback as its endpoint reads it."""
    return DeliveryReport(
        id=report_id,
        ref_id=ref_id,
        result_code=code,
        operator=None,
        timestamp=None,
        sent_timestamp=None,
        operator_result_code=None,
        segments=segments,
        custom_parameters={},
    )


def old_store(path: str, version: int, rows: list[str]) -> None:
    """A store file of schema `version` (1-3) holding `rows` (INSERT statements)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        for step in _SQL_STEPS[:version]:
            conn.executescript(step)
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
        for row in rows:
            conn.execute(row)
        conn.commit()
    finally:
        conn.close()


def read_file(path: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of `query` on the store's file, on a connection of the test's own."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


_V1_COLUMNS = (
    "INSERT INTO messages (id, account, connector, state, submitted_at, expires_at,"
    " validity_s, registered_delivery, source_addr, source_ton, source_npi, dest_addr,"
    " dest_ton, dest_npi, text_head, parts"
)


class SqliteStoreTests(StoreContract, TestCase):
    """The store contract for SqliteStore, and what only SQLite has."""

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreFactory:
        self.path = str(tmp_path / "gateway" / "gateway.sqlite")
        # The path is read when a store is made: a test may point it at an old file.
        return lambda clock: SqliteStore(reactor, self.path, synchronous="normal", clock=clock)

    @property
    def sqlite(self) -> SqliteStore:
        assert isinstance(self.store, SqliteStore)
        return self.store

    @inlineCallbacks
    def open_path(self, path: str) -> Steps:
        """Close the store and open the file at `path` instead."""
        yield self.close_store(self.store)
        self.path = path
        self.store = yield self.open_store()

    def billing(self, message_id: str) -> str | None:
        ((value,),) = read_file(self.path, "SELECT billing FROM messages WHERE id = ?", message_id)
        result: str | None = value
        return result

    # --- schema -----------------------------------------------------------------

    def test_schema_created_with_version(self) -> None:
        ((version,),) = read_file(self.path, "SELECT value FROM meta WHERE key = 'schema_version'")
        tables = {row[0] for row in read_file(self.path, "SELECT name FROM sqlite_master")}
        ((mode,),) = read_file(self.path, "PRAGMA journal_mode")
        self.assertEqual(int(version), len(MIGRATIONS))
        self.assertTrue({"meta", "messages", "receipts", "upstream_ids", "mo_seen"} <= tables)
        self.assertEqual(mode, "wal")
        self.assertEqual((self.recovered.messages, self.recovered.receipts), ([], []))

    @inlineCallbacks
    def test_reopen_keeps_schema_version(self) -> Steps:
        yield self.reopen()
        rows = read_file(self.path, "SELECT key, value FROM meta WHERE key = 'schema_version'")
        self.assertEqual(rows, [("schema_version", str(len(MIGRATIONS)))])

    @inlineCallbacks
    def test_newer_schema_refuses_to_open(self) -> Steps:
        yield self.close_store(self.store)
        conn = sqlite3.connect(self.path)
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
        conn.commit()
        conn.close()
        store = SqliteStore(reactor, self.path)
        self.addCleanup(self.close_store, store)
        with self.assertRaises(RuntimeError):
            yield store.open()

    @inlineCallbacks
    def test_migration_from_schema_1_keeps_queued_messages(self) -> Steps:
        path = str(Path(self.path).with_name("v1.sqlite"))
        old_store(
            path,
            1,
            [
                f"{_V1_COLUMNS}, destination, user_data) VALUES ('old', 'shop1', 'common', 0,"
                " 1, 2, 1, 1, 'S', 5, 0, '47', 1, 1, 'hi', 1, '+47', 'hi')"
            ],
        )
        yield self.open_path(path)
        (old,) = self.recovered.messages
        self.assertEqual(
            (old.id, old.service_type, old.data_coding, old.esm_class, old.reply_id),
            ("old", "", 0, 0, None),
        )
        self.assertEqual(
            (old.source, old.destination, old.recipient, old.body, old.priority, old.not_before),
            (Address("S", 5, 0), Address("47", 1, 1), "+47", Body(text="hi"), 0, 0.0),
        )
        ((version,),) = read_file(path, "SELECT value FROM meta WHERE key = 'schema_version'")
        self.assertEqual(int(version), len(MIGRATIONS))

    @inlineCallbacks
    def test_migration_to_route_neutral_reads_commons_fields(self) -> Steps:
        # Schema 3 kept Common's send-request fields; schema 4 keeps what the ESME sent.
        path = str(Path(self.path).with_name("v3.sqlite"))
        extra = {
            "tariff": 100,
            "currency": "NOK",
            "notPremium": 1,
            "customParameters": {
                "k": "v",
                "flash.sms": "true",
                "scheduledTime": "2025-10-09T09:00:00Z",
            },
        }
        columns = (
            ", priority, next_attempt_at, source, source_type, destination, dcs, user_data,"
            " user_data_header, extra_fields, service_type, reply_id, billing_receipt)"
        )
        old_store(
            path,
            3,
            [
                f"{_V1_COLUMNS}{columns} VALUES ('text', 'shop1', 'common', 0, 10, 2000, 600, 1,"
                " '2270', 3, 0, '4712345678', 1, 1, 'hello', 1, 'HIGH', 20, '2270',"
                " 'SHORTNUMBER', '+4712345678', 'TEXT', 'hello', NULL,"
                f" '{json.dumps(extra)}', 'CMT', 'm0', 1)",
                f"{_V1_COLUMNS}{columns} VALUES ('segment', 'shop1', 'common', 0, 11, 2000, 600,"
                " 0, 'SHOP', 5, 0, '4712345678', 1, 1, '', 2, NULL, 0, 'SHOP', 'ALPHANUMERIC',"
                " '+4712345678', 'BINARY', '00FF', '050003010201', NULL, '', NULL, 0)",
            ],
        )
        yield self.open_path(path)
        text, segment = self.recovered.messages
        self.assertEqual(
            (text.id, text.sender, text.recipient, text.body, text.priority, text.not_before),
            (
                "text",
                Party(PartyKind.SHORT_CODE, "2270"),
                "+4712345678",
                Body(text="hello", flash=True),
                1,
                20,
            ),
        )
        # Premium fields stay premium, customParameters stay custom, except the two the
        # gateway now keeps as fields of their own.
        self.assertEqual(dict(text.premium), {"tariff": 100, "currency": "NOK"})
        self.assertEqual(dict(text.custom), {"k": "v"})
        self.assertEqual(text.scheduled_at, 1_760_000_400.0)
        self.assertEqual(
            (text.service_type, text.reply_id, text.billing_receipt), ("CMT", "m0", True)
        )
        self.assertEqual(
            (segment.sender, segment.body, segment.priority, segment.scheduled_at),
            (
                Party(PartyKind.ALPHANUMERIC, "SHOP"),
                Body(data=b"\x00\xff", udh=bytes.fromhex("050003010201"), alphabet=Alphabet.BINARY),
                0,
                None,
            ),
        )
        self.assertEqual((dict(segment.premium), dict(segment.custom)), ({}, {}))
        columns_now = {row[1] for row in read_file(path, "PRAGMA table_info(messages)")}
        self.assertTrue({"user_data", "extra_fields", "next_attempt_at"}.isdisjoint(columns_now))

    @inlineCallbacks
    def test_schema_1_part_results_still_read(self) -> Steps:
        # Schema 1 kept each part's Common resultCode; schema 4 its outcome.
        path = str(Path(self.path).with_name("v3-parts.sqlite"))
        old_store(
            path,
            3,
            [
                f"{_V1_COLUMNS}) VALUES ('m1', 'shop1', 'common', 1, 10, 2000, 600, 1,"
                " 'SHOP', 5, 0, '4712345678', 1, 1, 'hi', 2)",
                "UPDATE messages SET upstream_id = 'link-m1', part_results = '{\"0\": 1001}'",
            ],
        )
        yield self.open_path(path)
        (result,) = yield self.apply([report("link-m1", BILLING_FAILED, part=1)])
        self.assertEqual(
            (result.outcome, result.receipt.sub, result.receipt.dlvrd), ("final", 2, 1)
        )
        self.assertEqual((result.receipt.stat, result.receipt.err), ("UNDELIV", 235))

    # --- what the file says ---------------------------------------------------------

    @inlineCallbacks
    def test_message_state_reads_one_message(self) -> Steps:
        yield self.sent_message("m1", "abc")
        state = yield self.sqlite.message_state("m1")
        self.assertEqual(state, (SENT, None, "shop1"))
        yield self.apply([report("abc")])
        state = yield self.sqlite.message_state("m1")
        self.assertEqual(state, (FINAL, "DELIVRD", "shop1"))
        missing = yield self.sqlite.message_state("nobody")
        self.assertIsNone(missing)

    @inlineCallbacks
    def test_billing_results_are_recorded_by_their_code(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        yield self.sent_message("m2", "link-2", billing_receipt=True)
        yield self.sent_message("m3", "link-3")
        yield self.apply(
            [
                report("link-1", BILLED_DELAYED, code=1007),
                report("link-2", BILLED_DELAYED, code=1007),
                report("link-3", BILLED_DELAYED, code=1007),
            ]
        )
        self.assertEqual([self.billing(i) for i in ("m1", "m2", "m3")], ["pending"] * 3)
        yield self.apply(
            [
                report("link-1", BILLING_FAILED, code=2200),
                report("link-2", BILLING_REFUSED, code=2201),
                report("link-3", code=1001),
            ]
        )
        self.assertEqual([self.billing(i) for i in ("m1", "m2", "m3")], ["2200", "2201", "1001"])
        # A later report changes nothing.
        (late,) = yield self.apply([report("link-1", code=1001)])
        self.assertEqual(late.outcome, "duplicate")
        self.assertEqual(self.billing("m1"), "2200")

    @inlineCallbacks
    def test_billing_pending_is_shown_by_the_queues_command(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        yield self.apply([report("link-1", BILLED_DELAYED, code=1007)])
        yield self.reopen()
        (pending,) = [d for d in queues.read_depths(self.path) if d.kind == queues.MT_BILLING]
        self.assertEqual(pending, QueueDepth(MT_BILLING, "shop1", "link", 1, NOW))

    @inlineCallbacks
    def test_heartbeat_writes_its_stamp(self) -> Steps:
        yield self.store.heartbeat("stamp-1")
        yield self.store.heartbeat("stamp-2")
        rows = read_file(self.path, "SELECT value FROM meta WHERE key = 'readiness_probe'")
        self.assertEqual(rows, [("stamp-2",)])

    # --- Common's callbacks through the store ------------------------------------------

    @inlineCallbacks
    def test_commons_part_ids_and_codes_reach_the_store(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        common = CommonReports()
        first, second = yield self.apply(
            [
                common.report(common_report("link-1$0", 1001, segments=2)),
                common.report(common_report("link-1$1", 2104, ref_id="m1", segments=2)),
            ]
        )
        self.assertEqual((first.outcome, second.outcome), ("partial", "final"))
        rec = second.receipt
        self.assertEqual((rec.stat, rec.err, rec.sub, rec.dlvrd), ("UNDELIV", 101, 2, 1))

    @inlineCallbacks
    def test_odd_part_suffix_does_not_fail_the_batch(self) -> Steps:
        common = CommonReports()
        d1 = self.store.add_messages([mt("m1")])
        d2 = self.apply(
            [
                common.report(common_report("link-x$\u00b2", 1001)),
                common.report(common_report("y$" + "1" * 5000, 1001)),
            ]
        )
        yield d1
        results = yield d2
        self.assertEqual([r.outcome for r in results], ["unknown", "unknown"])
        state = yield self.sqlite.message_state("m1")
        self.assertEqual(state, (QUEUED, None, "shop1"))

    # --- group commit ------------------------------------------------------------------

    @inlineCallbacks
    def test_group_commit_shares_transactions(self) -> Steps:
        store = self.sqlite
        batches, jobs = store.batches, store.jobs
        calls: list[Deferred[Any]] = [store.add_messages([mt(f"g{i:03}")]) for i in range(100)]
        calls += [store.receipts_done([i]) for i in range(100)]
        results = yield DeferredList(calls, consumeErrors=True)
        self.assertTrue(all(ok for ok, _ in results))
        new_batches = store.batches - batches
        new_jobs = store.jobs - jobs
        # The 100 add_messages share one job (one INSERT), the 100 receipts_done another.
        self.assertEqual(new_jobs, 2)
        self.assertLessEqual(new_batches, 2)
        depths = yield store.depths()
        self.assertEqual(depths, [QueueDepth(MT_QUEUED, "shop1", "link", 100, NOW - 60)])

    @inlineCallbacks
    def test_failing_job_fails_its_whole_batch(self) -> Steps:
        store = self.sqlite
        yield store.add_messages([mt("existing")])
        batches = store.batches
        calls = [
            store.add_messages([mt("before")]),
            store.add_messages([mt("existing")]),  # duplicate primary key
            store.add_messages([mt("after-1"), mt("after-2")]),
            store.receipts_done([12345]),
        ]
        results = yield DeferredList(calls, consumeErrors=True)
        self.assertEqual(store.batches - batches, 1)  # they did share one transaction
        self.assertEqual([ok for ok, _ in results], [False] * 4)
        for _, failure in results:
            self.assertTrue(failure.check(sqlite3.IntegrityError))
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.IntegrityError)), 1)
        for id_ in ("before", "after-1", "after-2"):
            state = yield store.message_state(id_)
            self.assertIsNone(state, id_)
        # The store carries on: the next batch commits.
        yield store.add_messages([mt("before")])
        state = yield store.message_state("before")
        self.assertEqual(state, (QUEUED, None, "shop1"))
        yield self.reopen()
        self.assertEqual(sorted(m.id for m in self.recovered.messages), ["before", "existing"])

    # --- short ids ----------------------------------------------------------------------

    @inlineCallbacks
    def test_short_ids_have_eight_characters_and_grow_across_a_restart(self) -> Steps:
        first = [self.store.short_id("decimal") for _ in range(3)]
        self.assertTrue(all(len(i) == 8 and i.isdigit() and i[0] != "0" for i in first))
        hex_id = self.store.short_id("hex")
        self.assertEqual(len(hex_id), 8)
        self.assertNotEqual(hex_id[0], "0")
        int(hex_id, 16)
        yield self.reopen()
        again = self.store.short_id("decimal")
        self.assertNotIn(again, first)
        self.assertGreater(int(again), int(first[-1]))

    @inlineCallbacks
    def test_short_ids_skip_ids_still_stored_after_wrapping(self) -> Steps:
        store = self.sqlite
        yield store.add_messages([mt("10000000"), mt("10000001")])
        # As if the counter went once round the whole range.
        store._short_next = sqlite_module._SHORT_ID_RANGES["decimal"][1]
        self.assertEqual(store.short_id("decimal"), "10000002")

    @inlineCallbacks
    def test_short_id_reservations_move_ahead_of_use(self) -> Steps:
        block = sqlite_module._SHORT_ID_BLOCK
        ids = [self.store.short_id("decimal") for _ in range(block)]
        self.assertEqual(len(set(ids)), block)
        yield self.store.add_messages([mt("flush")])  # carries the lazy reservation
        ((reserved,),) = read_file(self.path, "SELECT value FROM meta WHERE key = 'short_id_next'")
        self.assertGreater(int(reserved), block)


__all__: list[str] = []
