"""gateway.store.sqlite against a real SQLite file, with the real reactor and worker thread."""

from __future__ import annotations

import sqlite3
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.trial.unittest import TestCase

from gateway.connectors.common.callbacks import DeliveryReport
from gateway.inbound import LinkReceipt
from gateway.mapping import RESULT_CODES
from gateway.store.base import FINAL, MO, QUEUED, SENT, Finish, Message, MessageStatus, Receipt
from gateway.store.sqlite import _MIGRATIONS, SqliteStore

NOW = 1_760_000_000.0

DELIVERED = 1001
NOT_DELIVERED = 1006
UNKNOWN_SUBSCRIBER = 2104
SENT_CODE = 1000


def message(id_: str, **overrides: Any) -> Message:
    values: dict[str, Any] = dict(
        id=id_,
        account="shop1",
        connector="common",
        fields={
            "destination": "+4712345678",
            "userData": "hello",
            "customParameters": {"k": "v"},
            "useDeliveryReport": True,
        },
        submitted_at=NOW - 60,
        expires_at=NOW + 3600,
        validity_s=3600,
        priority="HIGH",
        registered_delivery=1,
        source_addr="SHOP",
        source_ton=5,
        source_npi=0,
        dest_addr="4712345678",
        dest_ton=1,
        dest_npi=1,
        text_head="hello",
        parts=1,
    )
    values.update(overrides)
    return Message(**values)


def report(
    id_: str,
    code: int,
    *,
    ref_id: str | None = None,
    segments: int | None = None,
    reported_at: float | None = None,
) -> DeliveryReport:
    return DeliveryReport(
        id=id_,
        ref_id=ref_id,
        result_code=code,
        operator=None,
        timestamp=None,
        sent_timestamp=None,
        operator_result_code=None,
        segments=segments,
        custom_parameters={},
        reported_at=reported_at,
    )


class SqliteStoreTests(TestCase):
    @inlineCallbacks
    def setUp(self):
        self.closed: list[SqliteStore] = []
        self.path = self.mktemp() + "/gateway.sqlite"
        self.store = yield self.open_store()

    @inlineCallbacks
    def open_store(self):
        store = SqliteStore(
            reactor, self.path, synchronous="normal", result_codes=RESULT_CODES, clock=lambda: NOW
        )
        self.addCleanup(self.close_store, store)
        self.recovered = yield store.open()
        return store

    def close_store(self, store: SqliteStore):
        # SqliteStore.close() may be called only once (ThreadPool.stop raises after that).
        if store in self.closed:
            return None
        self.closed.append(store)
        return store.close()

    @inlineCallbacks
    def reopen(self):
        yield self.close_store(self.store)
        self.store = yield self.open_store()

    @inlineCallbacks
    def sent_message(self, id_: str, upstream: str | None = None, **overrides: Any):
        yield self.store.add_messages([message(id_, **overrides)])
        yield self.store.mark_sent([(id_, upstream or f"link-{id_}")])

    # --- schema and recovery -------------------------------------------------

    def test_schema_created_with_version(self):
        conn = sqlite3.connect(self.path)
        try:
            (version,) = conn.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        finally:
            conn.close()
        self.assertEqual(int(version), len(_MIGRATIONS))
        self.assertTrue({"meta", "messages", "receipts"} <= tables)
        self.assertEqual(mode, "wal")
        self.assertEqual((self.recovered.messages, self.recovered.receipts), ([], []))

    @inlineCallbacks
    def test_reopen_keeps_schema_version(self):
        yield self.reopen()
        conn = sqlite3.connect(self.path)
        try:
            rows = conn.execute(
                "SELECT key, value FROM meta WHERE key = 'schema_version'"
            ).fetchall()
        finally:
            conn.close()
        self.assertEqual(rows, [("schema_version", str(len(_MIGRATIONS)))])

    @inlineCallbacks
    def test_newer_schema_refuses_to_open(self):
        yield self.close_store(self.store)
        conn = sqlite3.connect(self.path)
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
        conn.commit()
        conn.close()
        store = SqliteStore(reactor, self.path, result_codes=RESULT_CODES)
        self.addCleanup(self.close_store, store)
        with self.assertRaises(RuntimeError):
            yield store.open()

    @inlineCallbacks
    def test_reopen_recovers_queued_messages_with_all_fields(self):
        first = message("m1", submitted_at=NOW - 30)
        second = message(
            "m2",
            account="shop2",
            connector="other",
            fields={"userData": "x" * 300, "dcs": "TEXT", "n": 3},
            submitted_at=NOW - 20,
            expires_at=NOW + 60,
            validity_s=60,
            priority=None,
            registered_delivery=0x12,
            source_addr="12345",
            source_ton=3,
            source_npi=9,
            dest_addr="0049170000000",
            dest_ton=0,
            dest_npi=0,
            text_head="\u00e6\u00f8\u00e5 \u20ac",
            parts=3,
        )
        yield self.store.add_messages([second, first])
        yield self.store.add_messages([message("sent", submitted_at=NOW - 25)])
        yield self.store.mark_sent([("sent", "link-1")])
        yield self.store.add_messages([message("done", submitted_at=NOW - 10)])
        yield self.store.finish([Finish("done", "EXPIRED", 220, NOW, None)])

        yield self.reopen()

        # Only what still waits for its connector, oldest first, every field intact.
        self.assertEqual(self.recovered.messages, [first, second])
        self.assertEqual(self.recovered.messages[1].state, QUEUED)

    @inlineCallbacks
    def test_mark_sent_records_state(self):
        yield self.sent_message("m1", "abc")
        state = yield self.store.message_state("m1")
        self.assertEqual(state, (SENT, None, "shop1"))
        depths = yield self.store.depths()
        self.assertEqual((depths.queued, depths.sent), (0, 1))

    # --- delivery reports ----------------------------------------------------

    @inlineCallbacks
    def check_final_receipt(self, rep: DeliveryReport, stat: str, err: int):
        (result,) = yield self.store.apply_reports([rep])
        self.assertEqual(result.outcome, "final")
        self.assertEqual(result.stat, stat)
        receipt = result.receipt
        self.assertIsNotNone(receipt)
        self.assertGreater(receipt.seq, 0)
        # A receipt travels back: from the original destination to the original source.
        self.assertEqual(
            (receipt.source_addr, receipt.source_ton, receipt.source_npi),
            ("4712345678", 1, 1),
        )
        self.assertEqual(
            (receipt.destination_addr, receipt.dest_ton, receipt.dest_npi), ("SHOP", 5, 0)
        )
        self.assertEqual((receipt.stat, receipt.err), (stat, err))
        self.assertEqual((receipt.account, receipt.message_id), ("shop1", "m1"))
        self.assertEqual((receipt.sub, receipt.dlvrd), (1, 1 if stat == "DELIVRD" else 0))
        self.assertEqual((receipt.submit_date, receipt.done_date), (NOW - 60, NOW))
        self.assertEqual(receipt.text, "hello")
        state = yield self.store.message_state("m1")
        self.assertEqual(state, (FINAL, stat, "shop1"))
        return receipt

    @inlineCallbacks
    def test_report_by_ref_id(self):
        yield self.sent_message("m1", "link-1")
        # The id is not LINK's id we know: only refId can find the message.
        yield self.check_final_receipt(
            report("other-id", UNKNOWN_SUBSCRIBER, ref_id="m1"), "UNDELIV", 101
        )

    @inlineCallbacks
    def test_report_by_ref_id_before_the_rest_answer(self):
        yield self.store.add_messages([message("m1")])
        yield self.check_final_receipt(report("link-9", DELIVERED, ref_id="m1"), "DELIVRD", 0)
        # LINK's answer arriving late neither revives the message nor loses LINK's id.
        yield self.store.mark_sent([("m1", "link-9")])
        state = yield self.store.message_state("m1")
        self.assertEqual(state[0], FINAL)
        (again,) = yield self.store.apply_reports([report("link-9", DELIVERED)])
        self.assertEqual(again.outcome, "duplicate")

    @inlineCallbacks
    def test_report_by_upstream_id(self):
        yield self.sent_message("m1", "link-1")
        yield self.check_final_receipt(report("link-1", NOT_DELIVERED), "UNDELIV", 222)

    @inlineCallbacks
    def test_unknown_ref_id_falls_back_to_upstream_id(self):
        yield self.sent_message("m1", "link-1")
        yield self.check_final_receipt(report("link-1", DELIVERED, ref_id="lost"), "DELIVRD", 0)

    @inlineCallbacks
    def test_report_for_final_message_is_duplicate(self):
        yield self.sent_message("m1", "link-1")
        (first,) = yield self.store.apply_reports([report("link-1", DELIVERED)])
        self.assertEqual(first.outcome, "final")
        (second,) = yield self.store.apply_reports([report("link-1", NOT_DELIVERED)])
        self.assertEqual(second.outcome, "duplicate")
        self.assertIsNone(second.receipt)
        # The first answer stands.
        state = yield self.store.message_state("m1")
        self.assertEqual(state, (FINAL, "DELIVRD", "shop1"))
        self.recovered_receipts = yield self.receipt_count()
        self.assertEqual(self.recovered_receipts, 1)

    @inlineCallbacks
    def test_report_after_gateway_finish_is_duplicate(self):
        yield self.store.add_messages([message("m1")])
        yield self.store.finish([Finish("m1", "EXPIRED", 220, NOW, None)])
        (result,) = yield self.store.apply_reports([report("x", DELIVERED, ref_id="m1")])
        self.assertEqual(result.outcome, "duplicate")

    @inlineCallbacks
    def test_unknown_id(self):
        yield self.sent_message("m1", "link-1")
        results = yield self.store.apply_reports(
            [report("nope", DELIVERED), report("nope$1", DELIVERED, ref_id="missing")]
        )
        self.assertEqual([r.outcome for r in results], ["unknown", "unknown"])
        self.assertEqual([r.receipt for r in results], [None, None])
        state = yield self.store.message_state("m1")
        self.assertEqual(state[0], SENT)

    @inlineCallbacks
    def test_odd_part_suffix_does_not_fail_the_batch(self):
        # Report ids come from the network; one odd id must not fail the other
        # jobs committed with it (here: a submit_sm's message).
        d1 = self.store.add_messages([message("m1")])
        d2 = self.store.apply_reports(
            [report("link-x$\u00b2", DELIVERED), report("y$" + "1" * 5000, DELIVERED)]
        )
        yield d1
        results = yield d2
        self.assertEqual([r.outcome for r in results], ["unknown", "unknown"])
        state = yield self.store.message_state("m1")
        self.assertEqual(state[0], QUEUED)

    @inlineCallbacks
    def test_intermediate_report(self):
        yield self.sent_message("quiet", "link-q", registered_delivery=1)
        yield self.sent_message("chatty", "link-c", registered_delivery=0x11)
        quiet, chatty = yield self.store.apply_reports(
            [report("link-q", SENT_CODE), report("link-c", SENT_CODE)]
        )
        self.assertEqual((quiet.outcome, quiet.receipt), ("silent", None))
        self.assertEqual(chatty.outcome, "intermediate")
        self.assertEqual(chatty.receipt.stat, "ENROUTE")
        for id_ in ("quiet", "chatty"):
            state = yield self.store.message_state(id_)
            self.assertEqual(state[0], SENT)

    # --- multipart -----------------------------------------------------------

    @inlineCallbacks
    def test_multipart_all_delivered(self):
        yield self.sent_message("m1", "link-1")
        (first,) = yield self.store.apply_reports([report("link-1$0", DELIVERED, segments=2)])
        self.assertEqual((first.outcome, first.receipt), ("partial", None))
        state = yield self.store.message_state("m1")
        self.assertEqual(state[0], SENT)
        (second,) = yield self.store.apply_reports([report("link-1$1", DELIVERED, segments=2)])
        self.assertEqual(second.outcome, "final")
        self.assertEqual((second.receipt.stat, second.receipt.err), ("DELIVRD", 0))
        self.assertEqual((second.receipt.sub, second.receipt.dlvrd), (2, 2))
        (late,) = yield self.store.apply_reports([report("link-1$1", DELIVERED, segments=2)])
        self.assertEqual(late.outcome, "duplicate")
        count = yield self.receipt_count()
        self.assertEqual(count, 1)

    @inlineCallbacks
    def test_multipart_first_failed_part_decides(self):
        yield self.sent_message("m1", "link-1")
        # Part 1 fails first in time, part 0 fails too: part 0's stat/err is reported.
        yield self.store.apply_reports([report("link-1$1", NOT_DELIVERED, segments=2)])
        (result,) = yield self.store.apply_reports(
            [report("link-1$0", UNKNOWN_SUBSCRIBER, segments=2)]
        )
        self.assertEqual(result.outcome, "final")
        self.assertEqual((result.receipt.stat, result.receipt.err), ("UNDELIV", 101))
        self.assertEqual((result.receipt.sub, result.receipt.dlvrd), (2, 0))

    @inlineCallbacks
    def test_multipart_one_failed(self):
        yield self.sent_message("m1", "link-1")
        # Both parts in one batch, found through refId.
        results = yield self.store.apply_reports(
            [
                report("link-1$0", DELIVERED, ref_id="m1", segments=2),
                report("link-1$1", NOT_DELIVERED, ref_id="m1", segments=2),
            ]
        )
        self.assertEqual([r.outcome for r in results], ["partial", "final"])
        receipt = results[1].receipt
        self.assertEqual((receipt.stat, receipt.err, receipt.dlvrd), ("UNDELIV", 222, 1))
        state = yield self.store.message_state("m1")
        self.assertEqual(state, (FINAL, "UNDELIV", "shop1"))
        count = yield self.receipt_count()
        self.assertEqual(count, 1)

    @inlineCallbacks
    def test_multipart_same_part_twice_is_duplicate(self):
        yield self.sent_message("m1", "link-1", parts=3)
        yield self.store.apply_reports([report("link-1$0", DELIVERED)])
        (again,) = yield self.store.apply_reports([report("link-1$0", DELIVERED)])
        self.assertEqual(again.outcome, "duplicate")
        (second,) = yield self.store.apply_reports([report("link-1$1", DELIVERED)])
        self.assertEqual(second.outcome, "partial")  # the gateway counted 3 parts

    # --- registered_delivery -------------------------------------------------

    @inlineCallbacks
    def test_registered_delivery_none_is_silent(self):
        yield self.sent_message("m1", "link-1", registered_delivery=0)
        (result,) = yield self.store.apply_reports([report("link-1", NOT_DELIVERED)])
        self.assertEqual((result.outcome, result.receipt, result.stat), ("silent", None, "UNDELIV"))
        state = yield self.store.message_state("m1")
        self.assertEqual(state, (FINAL, "UNDELIV", "shop1"))
        count = yield self.receipt_count()
        self.assertEqual(count, 0)

    @inlineCallbacks
    def test_registered_delivery_failure_only(self):
        yield self.sent_message("ok", "link-ok", registered_delivery=2)
        yield self.sent_message("bad", "link-bad", registered_delivery=2)
        ok, bad = yield self.store.apply_reports(
            [report("link-ok", DELIVERED), report("link-bad", NOT_DELIVERED)]
        )
        self.assertEqual((ok.outcome, ok.receipt), ("silent", None))
        self.assertEqual(bad.outcome, "final")
        self.assertEqual(bad.receipt.stat, "UNDELIV")
        for id_, stat in (("ok", "DELIVRD"), ("bad", "UNDELIV")):
            state = yield self.store.message_state(id_)
            self.assertEqual(state[:2], (FINAL, stat))
        count = yield self.receipt_count()
        self.assertEqual(count, 1)

    # --- receipts ------------------------------------------------------------

    @inlineCallbacks
    def receipt_count(self):
        depths = yield self.store.depths()
        return depths.receipts

    @inlineCallbacks
    def test_receipts_survive_reopen_until_done(self):
        yield self.sent_message("m1", "link-1")
        yield self.sent_message("m2", "link-2")
        r1, r2 = yield self.store.apply_reports(
            [report("link-1", DELIVERED), report("link-2", NOT_DELIVERED)]
        )
        yield self.store.add_messages([message("m3")])
        (r3,) = yield self.store.finish(
            [
                Finish(
                    "m3",
                    "EXPIRED",
                    220,
                    NOW + 5,
                    Receipt(
                        "shop1",
                        "m3",
                        "4712345678",
                        1,
                        1,
                        "SHOP",
                        5,
                        0,
                        "EXPIRED",
                        220,
                        1,
                        0,
                        NOW - 60,
                        NOW + 5,
                        "hello",
                    ),
                )
            ]
        )
        self.assertEqual(len({r1.receipt.seq, r2.receipt.seq, r3.seq}), 3)

        yield self.reopen()
        self.assertEqual(self.recovered.receipts, [r1.receipt, r2.receipt, r3])

        yield self.store.receipts_done([r1.receipt.seq, r3.seq])
        yield self.reopen()
        self.assertEqual(self.recovered.receipts, [r2.receipt])

        yield self.store.receipts_done([r2.receipt.seq])
        yield self.reopen()
        self.assertEqual(self.recovered.receipts, [])

    @inlineCallbacks
    def test_finish_without_receipt(self):
        yield self.store.add_messages([message("m1")])
        stored = yield self.store.finish([Finish("m1", "REJECTD", 127, NOW, None)])
        self.assertEqual(stored, [])
        state = yield self.store.message_state("m1")
        self.assertEqual(state, (FINAL, "REJECTD", "shop1"))

    # --- purge ---------------------------------------------------------------

    @inlineCallbacks
    def test_purge_removes_only_old_final_rows(self):
        yield self.store.add_messages(
            [
                message("old-final"),
                message("new-final"),
                message("old-queued", submitted_at=NOW - 90 * 86400),
                message("old-sent", submitted_at=NOW - 90 * 86400),
            ]
        )
        yield self.store.mark_sent([("old-sent", "link-old")])
        yield self.store.finish(
            [
                Finish("old-final", "DELIVRD", 0, NOW - 8 * 86400, None),
                Finish("new-final", "DELIVRD", 0, NOW - 86400, None),
            ]
        )
        removed = yield self.store.purge(NOW - 7 * 86400)
        self.assertEqual(removed, 1)
        states = {}
        for id_ in ("old-final", "new-final", "old-queued", "old-sent"):
            states[id_] = yield self.store.message_state(id_)
        self.assertIsNone(states["old-final"])
        self.assertEqual(states["new-final"][0], FINAL)
        self.assertEqual(states["old-queued"][0], QUEUED)
        self.assertEqual(states["old-sent"][0], SENT)
        again = yield self.store.purge(NOW - 7 * 86400)
        self.assertEqual(again, 0)

    # --- group commit --------------------------------------------------------

    @inlineCallbacks
    def test_group_commit_shares_transactions(self):
        batches, jobs = self.store.batches, self.store.jobs
        calls = [self.store.add_messages([message(f"g{i:03}")]) for i in range(100)]
        calls += [self.store.receipts_done([i]) for i in range(100)]
        results = yield DeferredList(calls, consumeErrors=True)
        self.assertTrue(all(ok for ok, _ in results))
        new_batches = self.store.batches - batches
        new_jobs = self.store.jobs - jobs
        # The 100 add_messages share one job (one INSERT), the 100 receipts_done another.
        self.assertEqual(new_jobs, 2)
        self.assertLessEqual(new_batches, 2)
        depths = yield self.store.depths()
        self.assertEqual(depths.queued, 100)
        self.assertEqual(depths.oldest_queued, NOW - 60)

    @inlineCallbacks
    def test_failing_job_fails_its_whole_batch(self):
        yield self.store.add_messages([message("existing")])
        batches = self.store.batches
        calls = [
            self.store.add_messages([message("before")]),
            self.store.add_messages([message("existing")]),  # duplicate primary key
            self.store.add_messages([message("after-1"), message("after-2")]),
            self.store.receipts_done([12345]),
        ]
        results = yield DeferredList(calls, consumeErrors=True)
        self.assertEqual(self.store.batches - batches, 1)  # they did share one transaction
        self.assertEqual([ok for ok, _ in results], [False] * 4)
        for _, failure in results:
            self.assertTrue(failure.check(sqlite3.IntegrityError))
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.IntegrityError)), 1)
        for id_ in ("before", "after-1", "after-2"):
            state = yield self.store.message_state(id_)
            self.assertIsNone(state, id_)
        # The store carries on: the next batch commits.
        yield self.store.add_messages([message("before")])
        state = yield self.store.message_state("before")
        self.assertEqual(state[0], QUEUED)
        yield self.reopen()
        self.assertEqual(sorted(m.id for m in self.recovered.messages), ["before", "existing"])

    @inlineCallbacks
    def test_finish_does_not_override_a_final_report(self):
        # A send that timed out (TEMPORARY) may still have reached LINK: its report
        # (found by refId) makes the message final while the dispatcher still holds
        # it. If the dispatcher then expires it, the DELIVRD state must stand and
        # the ESME must not get a second receipt for the same message.
        yield self.store.add_messages([message("m1")])
        (result,) = yield self.store.apply_reports([report("link-1", DELIVERED, ref_id="m1")])
        self.assertEqual(result.outcome, "final")
        late = Receipt(
            "shop1", "m1", "4712345678", 1, 1, "SHOP", 5, 0,
            "EXPIRED", 220, 1, 0, NOW - 60, NOW + 5, "hello",
        )  # fmt: skip
        stored = yield self.store.finish([Finish("m1", "EXPIRED", 220, NOW + 5, late)])
        self.assertEqual(stored, [])
        state = yield self.store.message_state("m1")
        self.assertEqual(state, (FINAL, "DELIVRD", "shop1"))
        count = yield self.receipt_count()
        self.assertEqual(count, 1)

    # --- schema 2: query, replace, submit_multi, short ids --------------------------

    @inlineCallbacks
    def test_migration_from_schema_1_keeps_queued_messages(self):
        yield self.close_store(self.store)
        path = self.mktemp() + "/v1.sqlite"
        import os

        os.makedirs(os.path.dirname(path))
        conn = sqlite3.connect(path)
        conn.executescript(_MIGRATIONS[0])
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute(
            "INSERT INTO messages (id, account, connector, state, submitted_at, expires_at,"
            " validity_s, registered_delivery, source_addr, source_ton, source_npi, dest_addr,"
            " dest_ton, dest_npi, text_head, parts, destination, user_data)"
            " VALUES ('old', 'shop1', 'common', 0, 1, 2, 1, 1, 'S', 5, 0, '47', 1, 1, 'hi', 1,"
            " '+47', 'hi')"
        )
        conn.commit()
        conn.close()
        self.path = path
        self.store = yield self.open_store()
        (old,) = self.recovered.messages
        self.assertEqual(
            (old.id, old.service_type, old.data_coding, old.esm_class, old.reply_id),
            ("old", "", 0, 0, None),
        )

    @inlineCallbacks
    def test_new_columns_round_trip(self):
        yield self.store.add_messages(
            [
                message(
                    "m1",
                    service_type="CMT",
                    data_coding=8,
                    esm_class=0x40,
                    reply_id="m0",
                    next_attempt_at=NOW + 600,
                )
            ]
        )
        yield self.reopen()
        (m1,) = self.recovered.messages
        self.assertEqual(
            (m1.service_type, m1.data_coding, m1.esm_class, m1.reply_id), ("CMT", 8, 0x40, "m0")
        )
        # A scheduled message held here still waits for its time after a restart.
        self.assertEqual(m1.next_attempt_at, NOW + 600)

    @inlineCallbacks
    def test_query_finds_own_messages_only(self):
        yield self.store.add_messages([message("m1")])
        yield self.store.add_messages([message("m2", reply_id="m1")])
        yield self.store.apply_reports([report("link-x", DELIVERED, ref_id="m2")])
        rows = yield self.store.query("shop1", "m1")
        self.assertEqual(
            rows,
            [
                MessageStatus(QUEUED, None, None, None, "common"),
                MessageStatus(FINAL, "DELIVRD", 0, NOW, "common"),
            ],
        )
        self.assertEqual((yield self.store.query("shop2", "m1")), [])
        self.assertEqual((yield self.store.query("shop1", "m2")), [rows[1]])

    @inlineCallbacks
    def test_receipts_of_a_multi_carry_its_reply_id(self):
        yield self.store.add_messages([message("m1"), message("m2", reply_id="m1")])
        results = yield self.store.apply_reports(
            [report("a", DELIVERED, ref_id="m1"), report("b", NOT_DELIVERED, ref_id="m2")]
        )
        self.assertEqual([r.receipt.message_id for r in results], ["m1", "m1"])
        self.assertEqual([r.message_id for r in results], ["m1", "m2"])

    @inlineCallbacks
    def test_replace_changes_a_queued_message_only(self):
        yield self.store.add_messages([message("m1"), message("m2")])
        yield self.sent_message("m3")
        for id_ in ("m1", "m3"):
            replaced = message(
                id_,
                fields={"destination": "+4712345678", "userData": "new", "dcs": "TEXT"},
                text_head="new",
                registered_delivery=0,
                expires_at=NOW + 60,
            )
            yield self.store.replace_message(replaced)
        yield self.reopen()
        by_id = {m.id: m for m in self.recovered.messages}
        self.assertEqual(set(by_id), {"m1", "m2"})
        self.assertEqual(
            (by_id["m1"].fields, by_id["m1"].text_head, by_id["m1"].registered_delivery),
            ({"destination": "+4712345678", "userData": "new", "dcs": "TEXT"}, "new", 0),
        )
        self.assertEqual(by_id["m1"].expires_at, NOW + 60)
        self.assertEqual(by_id["m2"].fields["userData"], "hello")

    @inlineCallbacks
    def test_short_ids_are_short_unique_and_never_reused_after_a_restart(self):
        first = [self.store.short_id("decimal") for _ in range(3)]
        self.assertTrue(all(len(i) == 8 and i.isdigit() and i[0] != "0" for i in first))
        self.assertEqual(len(set(first)), 3)
        hex_id = self.store.short_id("hex")
        self.assertEqual(len(hex_id), 8)
        int(hex_id, 16)
        yield self.reopen()
        again = self.store.short_id("decimal")
        self.assertNotIn(again, first)
        self.assertGreater(int(again), int(first[-1]))

    @inlineCallbacks
    def test_short_ids_skip_ids_still_stored_after_wrapping(self):
        import gateway.store.sqlite as module

        store = self.store
        yield store.add_messages([message("10000000"), message("10000001")])
        # As if the counter went once round the whole range.
        store._short_next = module._SHORT_ID_RANGES["decimal"][1]
        self.assertEqual(store.short_id("decimal"), "10000002")

    @inlineCallbacks
    def test_short_id_reservations_move_ahead_of_use(self):
        import gateway.store.sqlite as module

        block = module._SHORT_ID_BLOCK
        ids = [self.store.short_id("decimal") for _ in range(block)]
        self.assertEqual(len(set(ids)), block)
        yield self.store.add_messages([message("flush")])  # carries the lazy reservation
        conn = sqlite3.connect(self.path)
        try:
            (reserved,) = conn.execute(
                "SELECT value FROM meta WHERE key = 'short_id_next'"
            ).fetchone()
        finally:
            conn.close()
        self.assertGreater(int(reserved), block)

    # --- LINK SMPP receipts and MO ----------------------------------------------------

    @inlineCallbacks
    def test_link_receipt_matches_any_spelling_of_links_id(self):
        yield self.store.add_messages([message("m1"), message("m2")])
        yield self.store.mark_sent([("m1", "00A1B2"), ("m2", "4096")])
        yield self.store.record_parts([("m1", ("00A1B2",)), ("m2", ("4096",))])
        results = yield self.store.apply_link_receipts(
            [
                LinkReceipt(str(0xA1B2), "UNDELIV", 101, None),  # decimal of the hex id
                LinkReceipt("0x1000"[2:].upper(), "DELIVRD", 0, None),  # hex of the decimal id
                LinkReceipt("ffff", "DELIVRD", 0, None),  # nobody's
            ]
        )
        self.assertEqual([r.outcome for r in results], ["final", "final", "unknown"])
        first = results[0].receipt
        self.assertEqual((first.message_id, first.stat, first.err), ("m1", "UNDELIV", 101))
        self.assertEqual(results[1].receipt.message_id, "m2")

    @inlineCallbacks
    def test_link_segments_make_one_receipt(self):
        yield self.store.add_messages([message("m1")])
        yield self.store.mark_sent([("m1", "a1")])
        yield self.store.record_parts([("m1", ("a1", "a2", "a3"))])
        first = yield self.store.apply_link_receipts(
            [LinkReceipt("A1", "DELIVRD", 0), LinkReceipt("a2", "ENROUTE", 0)]
        )
        # An ENROUTE the ESME did not ask to hear about is silent.
        self.assertEqual([r.outcome for r in first], ["partial", "silent"])
        results = yield self.store.apply_link_receipts(
            [LinkReceipt("a3", "DELIVRD", 0), LinkReceipt("a2", "UNDELIV", 222)]
        )
        self.assertEqual([r.outcome for r in results], ["partial", "final"])
        receipt = results[1].receipt
        self.assertEqual(
            (receipt.stat, receipt.err, receipt.sub, receipt.dlvrd), ("UNDELIV", 222, 3, 2)
        )
        again = yield self.store.apply_link_receipts([LinkReceipt("a1", "DELIVRD", 0)])
        self.assertEqual(again[0].outcome, "duplicate")

    @inlineCallbacks
    def test_schema_1_part_results_still_read(self):
        yield self.store.add_messages([message("m1", parts=2)])
        yield self.store.mark_sent([("m1", "link-m1")])
        conn = sqlite3.connect(self.path)
        conn.execute("UPDATE messages SET part_results = '{\"0\": 1001}' WHERE id = 'm1'")
        conn.commit()
        conn.close()
        yield self.reopen()
        (result,) = yield self.store.apply_reports([report("link-m1$1", NOT_DELIVERED)])
        self.assertEqual((result.outcome, result.receipt.dlvrd), ("final", 1))

    @inlineCallbacks
    def test_mo_is_stored_once_per_link_id_and_recovered(self):
        item = Receipt(
            account="shop1",
            message_id="mo-1",
            source_addr="4790000000",
            source_ton=1,
            source_npi=1,
            destination_addr="2233",
            dest_ton=3,
            dest_npi=0,
            stat="",
            err=0,
            sub=0,
            dlvrd=0,
            submit_date=NOW,
            done_date=NOW,
            text="hello",
            kind=MO,
            data_coding=8,
            esm_class=0x40,
            payload=b"\x05\x00\x03\x01\x02\x01\x00h",
            expires_at=NOW + 60,
        )
        first = yield self.store.add_mo([("mo-1", [item]), ("", [item])])
        again = yield self.store.add_mo([("mo-1", [item])])
        self.assertEqual([len(r) for r in first], [1, 1])
        self.assertEqual(again, [None])
        yield self.reopen()
        kinds = [(r.kind, r.payload, r.esm_class, r.expires_at) for r in self.recovered.receipts]
        self.assertEqual(kinds, [(MO, item.payload, 0x40, NOW + 60)] * 2)


class ReportTimesAndBillingTests(TestCase):
    """A receipt's done date is LINK's time of the status; 1007 keeps a delivered
    message open for its billing report. The store fixture is SqliteStoreTests'."""

    setUp = SqliteStoreTests.setUp
    open_store = SqliteStoreTests.open_store
    close_store = SqliteStoreTests.close_store
    reopen = SqliteStoreTests.reopen
    sent_message = SqliteStoreTests.sent_message

    @inlineCallbacks
    def test_done_date_is_the_reports_own_time_when_sane(self):
        yield self.sent_message("m1", "link-1")
        yield self.sent_message("m2", "link-2")
        yield self.sent_message("m3", "link-3")
        r1, r2, r3 = yield self.store.apply_reports(
            [
                report("link-1", DELIVERED, reported_at=NOW - 30),
                report("link-2", DELIVERED, reported_at=NOW + 86400),  # LINK's clock is off
                report("link-3", DELIVERED),  # no timestamp
            ]
        )
        self.assertEqual(r1.receipt.done_date, NOW - 30)
        self.assertEqual(r2.receipt.done_date, NOW)
        self.assertEqual(r3.receipt.done_date, NOW)

    @inlineCallbacks
    def test_a_link_smpp_receipts_done_date_is_kept(self):
        yield self.sent_message("m1", "7f")
        (result,) = yield self.store.apply_link_receipts(
            [LinkReceipt("7f", "DELIVRD", 0, done_at=NOW - 40)]
        )
        self.assertEqual(result.receipt.done_date, NOW - 40)

    @inlineCallbacks
    def test_1007_delivers_then_a_billing_failure_is_recorded_without_a_second_receipt(self):
        yield self.sent_message("m1", "link-1")
        (first,) = yield self.store.apply_reports([report("link-1", 1007)])
        self.assertEqual((first.outcome, first.receipt.stat), ("billing_pending", "DELIVRD"))
        self.assertTrue(first.final)
        state = yield self.store.message_state("m1")
        self.assertEqual(state, (FINAL, "DELIVRD", "shop1"))
        (billing,) = yield self.store.apply_reports([report("link-1", 2200)])
        self.assertEqual((billing.outcome, billing.receipt), ("billing_failed", None))
        (late,) = yield self.store.apply_reports([report("link-1", 1001)])
        self.assertEqual(late.outcome, "duplicate")
        self.assertEqual(self._billing("m1"), "2200")

    @inlineCallbacks
    def test_billing_receipts_give_a_billing_failure_its_own_receipt(self):
        yield self.sent_message("m1", "link-1", billing_receipt=True)
        yield self.sent_message("m2", "link-2", billing_receipt=True)
        yield self.store.apply_reports([report("link-1", 1007), report("link-2", 1007)])
        # Intermediate states on the way are no billing result.
        (on_the_way,) = yield self.store.apply_reports([report("link-1", 1013)])
        self.assertEqual(on_the_way.outcome, "intermediate")
        failed, billed = yield self.store.apply_reports(
            [report("link-1", 2201), report("link-2", 1001)]
        )
        self.assertEqual(failed.outcome, "billing_failed")
        self.assertEqual((failed.receipt.stat, failed.receipt.err), ("UNDELIV", 128))
        self.assertEqual((billed.outcome, billed.receipt), ("billed", None))
        self.assertEqual((self._billing("m1"), self._billing("m2")), ("2201", "1001"))

    @inlineCallbacks
    def test_billing_pending_is_kept_across_a_restart_and_shown_in_queues(self):
        from gateway.cli import queues

        yield self.sent_message("m1", "link-1")
        yield self.store.apply_reports([report("link-1", 1007)])
        yield self.reopen()
        (pending,) = [d for d in queues.read_depths(self.path) if d.kind == queues.MT_BILLING]
        self.assertEqual((pending.account, pending.count), ("shop1", 1))
        (billing,) = yield self.store.apply_reports([report("link-1", 2200)])
        self.assertEqual(billing.outcome, "billing_failed")

    def _billing(self, message_id: str) -> str | None:
        conn = sqlite3.connect(self.path)
        try:
            row = conn.execute("SELECT billing FROM messages WHERE id = ?", (message_id,))
            value: str | None = row.fetchone()[0]
            return value
        finally:
            conn.close()
