"""The store contract: what every gateway.store.base.Store does, whatever keeps the data.

`StoreContract` is a mixin of twisted.trial tests written only against the
Store protocol (gateway/store/base.py), with the report rules the gateway uses
(`gateway.intake.reports.settle`). A store's test module subclasses it together
with twisted.trial.unittest.TestCase and overrides the `make_store` fixture:

    class SqliteStoreContractTests(StoreContract, TestCase):
        @pytest.fixture
        def make_store(self, tmp_path: Path) -> StoreFactory:
            return lambda clock: SqliteStore(reactor, str(tmp_path / "s.sqlite"), clock=clock)

`make_store(tmp_path)` gives a function that makes a new, unopened store over
the same data each time it is called (under `tmp_path`, or a database of the
test's own), reading the time from `clock`; a store made after the previous one
closed recovers what that one kept (`reopen`). Each test starts from an empty
store. Times are around `NOW`; the store's clock reads `NOW`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import pytest
from twisted.internet.defer import Deferred, inlineCallbacks

from gateway.intake.reports import settle
from gateway.records import (
    MO,
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
    ReportResult,
)
from gateway.smpp.pdu import MessageState
from gateway.store.base import (
    FINAL,
    HELD,
    MO_QUEUE,
    MT_BILLING,
    MT_HELD,
    MT_QUEUED,
    MT_SENT,
    QUEUED,
    RECEIPTS,
    SENT,
    Backlog,
    Finish,
    MessageStatus,
    QueueDepth,
    ReportBook,
    Store,
    Tracked,
)
from tests.support.records import DELIVERED, ENROUTE, message, receipt, report

if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase

    _Base = TestCase
else:
    _Base = object

NOW: Final = 1_760_000_000.0

StoreFactory: TypeAlias = Callable[[Callable[[], float]], Store]
Steps: TypeAlias = Generator[Deferred[Any], Any, None]

# Outcomes as a route's table gives them (the store keeps them as they come).
NOT_DELIVERED: Final = Outcome("UNDELIV", 222, True, MessageState.UNDELIVERABLE)
UNKNOWN_SUBSCRIBER: Final = Outcome("UNDELIV", 101, True, MessageState.UNDELIVERABLE)
EXPIRED: Final = Outcome("EXPIRED", 220, True, MessageState.EXPIRED)
BILLED_DELAYED: Final = Outcome("DELIVRD", 0, True, MessageState.DELIVERED, billing_pending=True)
BILLING_FAILED: Final = Outcome("UNDELIV", 235, True, MessageState.UNDELIVERABLE)
BILLING_REFUSED: Final = Outcome("UNDELIV", 128, True, MessageState.UNDELIVERABLE)


def mt(id_: str, **overrides: Any) -> Message:
    """A queued message of shop1 submitted a minute before NOW, valid for an hour."""
    values: dict[str, Any] = dict(
        submitted_at=NOW - 60,
        expires_at=NOW + 3600,
        validity_s=3600,
        text="hello",
    )
    values.update(overrides)
    return message(id_, **values)


def settle_now(book: ReportBook, rep: Report) -> ReportResult:
    """The gateway's report rule, at NOW."""
    return settle(book, rep, NOW)


def expired_receipt(message_id: str, done_at: float = NOW + 5) -> Receipt:
    """The receipt a gateway-decided EXPIRED gives shop1's ESME."""
    return receipt(
        message_id,
        stat="EXPIRED",
        err=220,
        dlvrd=0,
        submit_date=NOW - 60,
        done_date=done_at,
        text="hello",
    )


def mo_item(upstream_id: str = "mo-1", account: str = "shop1", **overrides: Any) -> Receipt:
    """One deliver_sm of an MO (a UDH segment) for `account`'s ESME."""
    values: dict[str, Any] = dict(
        account=account,
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
    values.update(overrides)
    return receipt(upstream_id, **values)


@dataclass
class Recovered:
    """Everything a store holds queued, read back the way the dispatcher and the
    deliverer read it: in pages, in the store's order."""

    messages: list[Message] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)


@inlineCallbacks
def read_backlog(
    store: Store, backlog: Backlog, page: int = 2
) -> Generator[Deferred[Any], Any, Recovered]:
    """Read every page `backlog` announces; the pages must add up to its counts."""
    recovered = Recovered()
    queued: list[tuple[int, Message]] = []
    for connector in sorted({c for _, c in backlog.messages}):
        after = 0
        while True:
            found = yield store.queued(connector, after, page)
            queued.extend(found)
            if len(found) < page:
                break
            after = found[-1][0]
    recovered.messages = [m for _, m in sorted(queued, key=lambda q: q[0])]
    for account in sorted({a for a, _ in backlog.receipts}):
        after = 0
        while True:
            receipts = yield store.receipts_after(account, after, page)
            recovered.receipts.extend(receipts)
            if len(receipts) < page:
                break
            after = receipts[-1].seq
    recovered.receipts.sort(key=lambda r: r.seq)
    assert len(recovered.messages) == sum(backlog.messages.values())
    assert len(recovered.receipts) == sum(backlog.receipts.values())
    return recovered


class _RuleFailed(Exception):
    pass


class StoreContract(_Base):
    """Tests of the Store protocol; see the module docstring for how to use them."""

    store: Store

    # --- the fixture -------------------------------------------------------------

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreFactory:
        """Abstract: a store's test class returns its factory (module docstring)."""
        raise NotImplementedError("a store's test class overrides make_store")

    @pytest.fixture(autouse=True)
    def _contract_store_factory(self, make_store: StoreFactory) -> None:
        self._store_factory = make_store

    @inlineCallbacks
    def setUp(self) -> Steps:
        self._closed: list[Store] = []
        self.store = yield self.open_store()

    @inlineCallbacks
    def open_store(self) -> Generator[Deferred[Any], Any, Store]:
        """A new store over the test's data, opened; what waits in it in `recovered`."""
        store = self._store_factory(lambda: NOW)
        self.addCleanup(self.close_store, store)
        backlog = yield store.open()
        self.recovered = yield read_backlog(store, backlog)
        return store

    def close_store(self, store: Store) -> Deferred[None] | None:
        if store in self._closed:
            return None
        self._closed.append(store)
        return store.close()

    @inlineCallbacks
    def reopen(self) -> Steps:
        """Close the store and open it again, as a restart does."""
        yield self.close_store(self.store)
        self.store = yield self.open_store()

    # --- helpers -----------------------------------------------------------------

    @inlineCallbacks
    def sent_message(self, id_: str, upstream: str | None = None, **overrides: Any) -> Steps:
        """A message LINK took, as `upstream` (default link-<id>)."""
        yield self.store.add_messages([mt(id_, **overrides)])
        yield self.store.mark_sent([(id_, upstream or f"link-{id_}")])

    def apply(self, reports: list[Report]) -> Deferred[list[ReportResult]]:
        return self.store.apply_reports(reports, settle_now)

    @inlineCallbacks
    def status(
        self, message_id: str, account: str = "shop1"
    ) -> Generator[Deferred[Any], Any, MessageStatus | None]:
        """query_sm's view of one message; None when the store has none by that id."""
        found = yield self.store.query(account, message_id)
        self.assertLessEqual(len(found), 1)
        return found[0] if found else None

    @inlineCallbacks
    def state(self, message_id: str) -> Generator[Deferred[Any], Any, tuple[int, str | None]]:
        found = yield self.status(message_id)
        self.assertIsNotNone(found, message_id)
        assert found is not None
        return found.state, found.stat

    @inlineCallbacks
    def counts(self) -> Generator[Deferred[Any], Any, dict[str, int]]:
        """How many of each kind wait, over all accounts and connectors."""
        depths = yield self.store.depths()
        totals: dict[str, int] = {}
        for depth in depths:
            totals[depth.kind] = totals.get(depth.kind, 0) + depth.count
        return totals

    @inlineCallbacks
    def receipt_count(self) -> Generator[Deferred[Any], Any, int]:
        totals = yield self.counts()
        return totals.get(RECEIPTS, 0)

    # --- recovery and MT -----------------------------------------------------------

    def test_a_new_store_recovers_nothing(self) -> None:
        self.assertEqual((self.recovered.messages, self.recovered.receipts), ([], []))

    @inlineCallbacks
    def test_reopen_recovers_queued_messages_with_all_fields(self) -> Steps:
        first = mt("m1", submitted_at=NOW - 30)
        second = Message(
            id="m2",
            account="shop2",
            connector="other",
            source=Address("12345", 3, 9),
            destination=Address("0049170000000", 0, 0),
            sender=Party(PartyKind.SHORT_CODE, "12345"),
            recipient="+49170000000",
            body=Body(text="x" * 300),
            submitted_at=NOW - 20,
            expires_at=NOW + 60,
            validity_s=60,
            scheduled_at=NOW + 30,
            not_before=NOW + 30,
            priority=1,
            registered_delivery=0x12,
            premium={"tariff": 100, "currency": "NOK", "productDescription": "\u00e6\u00f8\u00e5"},
            custom={"k": "v", "flag": "true"},
            service_type="CMT",
            data_coding=8,
            esm_class=0x40,
            text_head="\u00e6\u00f8\u00e5 \u20ac",
            parts=3,
            reply_id="m0",
            billing_receipt=True,
        )
        # A segment the ESME made itself: octets, its UDH and alphabet, flash.
        third = mt(
            "m3",
            submitted_at=NOW - 10,
            sender=Party(PartyKind.MSISDN, "+4798765432"),
            body=Body(
                data=b"\x00\xff\x7f",
                udh=b"\x05\x00\x03\x2a\x02\x01",
                alphabet=Alphabet.BINARY,
                flash=True,
            ),
            data_coding=4,
            text_head="",
        )
        yield self.store.add_messages([second, first])
        yield self.store.add_messages([third])
        yield self.store.add_messages([mt("sent", submitted_at=NOW - 25)])
        yield self.store.mark_sent([("sent", "link-1")])
        yield self.store.add_messages([mt("done", submitted_at=NOW - 15)])
        yield self.store.finish([Finish("done", "EXPIRED", 220, NOW)])

        yield self.reopen()

        # Only what still waits for its connector, in the order it was stored (not
        # by submission time), every field intact.
        self.assertEqual(self.recovered.messages, [second, first, third])

    @inlineCallbacks
    def test_mark_sent_makes_a_message_wait_for_its_report(self) -> Steps:
        yield self.sent_message("m1", "abc")
        found = yield self.status("m1")
        self.assertEqual(found, MessageStatus(SENT, None, None, None, "link"))
        counts = yield self.counts()
        self.assertEqual(counts, {MT_SENT: 1})
        # Sent is no longer queued: a restart does not send it again.
        yield self.reopen()
        self.assertEqual(self.recovered.messages, [])

    @inlineCallbacks
    def test_reroute_moves_queued_messages_only(self) -> Steps:
        yield self.store.add_messages([mt("m1"), mt("m2")])
        yield self.sent_message("m3")
        yield self.store.reroute([("m1", "backup"), ("m3", "backup")])
        m1 = yield self.status("m1")
        m3 = yield self.status("m3")
        self.assertEqual((m1.connector, m3.connector), ("backup", "link"))
        yield self.reopen()
        by_id = {m.id: m.connector for m in self.recovered.messages}
        self.assertEqual(by_id, {"m1": "backup", "m2": "link"})

    @inlineCallbacks
    def test_replace_changes_a_queued_message_only(self) -> Steps:
        yield self.store.add_messages([mt("m1"), mt("m2")])
        yield self.sent_message("m3")
        changes: dict[str, Any] = dict(
            text="new", registered_delivery=0, expires_at=NOW + 60, validity_s=60, parts=2
        )
        replaced_m1 = mt("m1", **changes)
        yield self.store.replace_message(replaced_m1)
        yield self.store.replace_message(mt("m3", **changes))
        yield self.reopen()
        by_id = {m.id: m for m in self.recovered.messages}
        self.assertEqual(set(by_id), {"m1", "m2"})
        self.assertEqual(by_id["m1"], replaced_m1)
        self.assertEqual(by_id["m2"], mt("m2"))
        # The sent one kept its content: its receipt still says "hello".
        (result,) = yield self.apply([report("link-m3")])
        self.assertEqual((result.receipt.text, result.receipt.message_id), ("hello", "m3"))

    @inlineCallbacks
    def test_finish_without_receipt(self) -> Steps:
        yield self.store.add_messages([mt("m1")])
        stored = yield self.store.finish([Finish("m1", "REJECTD", 127, NOW)])
        self.assertEqual(stored, [])
        found = yield self.status("m1")
        self.assertEqual(found, MessageStatus(FINAL, "REJECTD", 127, NOW, "link"))
        count = yield self.receipt_count()
        self.assertEqual(count, 0)

    @inlineCallbacks
    def test_finish_does_not_override_a_final_report(self) -> Steps:
        # A send that timed out (TEMPORARY) may still have reached LINK: its report
        # (found by refId) makes the message final while the dispatcher still holds
        # it. If the dispatcher then expires it, the DELIVRD state must stand and
        # the ESME must not get a second receipt for the same message.
        yield self.store.add_messages([mt("m1")])
        (result,) = yield self.apply([report("link-1", ref_id="m1")])
        self.assertEqual(result.outcome, "final")
        late = expired_receipt("m1")
        stored = yield self.store.finish([Finish("m1", "EXPIRED", 220, NOW + 5, (late,))])
        self.assertEqual(stored, [])
        state = yield self.state("m1")
        self.assertEqual(state, (FINAL, "DELIVRD"))
        count = yield self.receipt_count()
        self.assertEqual(count, 1)

    @inlineCallbacks
    def test_receipts_survive_reopen_until_done(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        yield self.sent_message("m2", "link-2")
        r1, r2 = yield self.apply([report("link-1"), report("link-2", NOT_DELIVERED)])
        yield self.store.add_messages([mt("m3")])
        (r3,) = yield self.store.finish(
            [Finish("m3", "EXPIRED", 220, NOW + 5, (expired_receipt("m3"),))]
        )
        self.assertEqual(_without_seq(r3), expired_receipt("m3"))
        self.assertEqual((r3.stat, r3.err, r3.message_id), ("EXPIRED", 220, "m3"))
        self.assertEqual(len({r1.receipt.seq, r2.receipt.seq, r3.seq}), 3)
        self.assertTrue(all(seq > 0 for seq in (r1.receipt.seq, r2.receipt.seq, r3.seq)))

        yield self.reopen()
        self.assertEqual(self.recovered.receipts, [r1.receipt, r2.receipt, r3])

        yield self.store.receipts_done([r1.receipt.seq, r3.seq])
        yield self.reopen()
        self.assertEqual(self.recovered.receipts, [r2.receipt])

        yield self.store.receipts_done([r2.receipt.seq])
        yield self.reopen()
        self.assertEqual(self.recovered.receipts, [])

    @inlineCallbacks
    def test_add_receipts_numbers_them_and_keeps_their_order(self) -> Steps:
        first = receipt("m1", done_date=NOW - 2)
        second = receipt("m2", account="shop2", stat="UNDELIV", err=222, dlvrd=0)
        stored = yield self.store.add_receipts([first, second])
        self.assertEqual([r.message_id for r in stored], ["m1", "m2"])
        self.assertLess(0, stored[0].seq)
        self.assertLess(stored[0].seq, stored[1].seq)
        # Apart from its seq, a receipt is kept as it was given.
        self.assertEqual([_without_seq(r) for r in stored], [first, second])
        (third,) = yield self.store.add_receipts([receipt("m3")])
        self.assertLess(stored[1].seq, third.seq)
        yield self.reopen()
        self.assertEqual(self.recovered.receipts, [*stored, third])
        yield self.store.receipts_done([stored[1].seq])
        yield self.reopen()
        self.assertEqual(self.recovered.receipts, [stored[0], third])

    @inlineCallbacks
    def test_query_finds_own_messages_only(self) -> Steps:
        yield self.store.add_messages([mt("m1")])
        yield self.store.add_messages([mt("m2", reply_id="m1")])
        yield self.apply([report("link-x", ref_id="m2")])
        rows = yield self.store.query("shop1", "m1")
        self.assertEqual(
            rows,
            [
                MessageStatus(QUEUED, None, None, None, "link"),
                MessageStatus(FINAL, "DELIVRD", 0, NOW, "link"),
            ],
        )
        self.assertEqual((yield self.store.query("shop2", "m1")), [])
        self.assertEqual((yield self.store.query("shop1", "m2")), [rows[1]])
        self.assertEqual((yield self.store.query("shop1", "nobody")), [])

    @inlineCallbacks
    def test_receipts_of_a_multi_carry_its_reply_id(self) -> Steps:
        yield self.store.add_messages([mt("m1"), mt("m2", reply_id="m1")])
        results = yield self.apply(
            [report("a", ref_id="m1"), report("b", NOT_DELIVERED, ref_id="m2")]
        )
        self.assertEqual([r.receipt.message_id for r in results], ["m1", "m1"])
        self.assertEqual([r.message_id for r in results], ["m1", "m2"])

    @inlineCallbacks
    def test_short_ids_are_short_unique_and_never_reused_after_a_restart(self) -> Steps:
        first = [self.store.short_id("decimal") for _ in range(3)]
        self.assertTrue(all(len(i) <= 8 and i.isascii() and i.isdigit() for i in first))
        self.assertEqual(len(set(first)), 3)
        hex_ids = [self.store.short_id("hex") for _ in range(3)]
        for hex_id in hex_ids:
            self.assertLessEqual(len(hex_id), 8)
            int(hex_id, 16)
        self.assertEqual(len(set(hex_ids)), 3)
        # The ids go out with messages; a restart must hand out none of them again.
        yield self.store.add_messages([mt(i) for i in first + hex_ids])
        yield self.reopen()
        again = {self.store.short_id("decimal") for _ in range(3)}
        again |= {self.store.short_id("hex") for _ in range(3)}
        self.assertEqual(again & set(first + hex_ids), set())

    # --- reports -------------------------------------------------------------------

    @inlineCallbacks
    def check_final_receipt(
        self, rep: Report, stat: str, err: int
    ) -> Generator[Deferred[Any], Any, Receipt]:
        (result,) = yield self.apply([rep])
        self.assertEqual(result.outcome, "final")
        self.assertEqual((result.stat, result.message_id, result.final), (stat, "m1", True))
        receipt_ = result.receipt
        self.assertIsNotNone(receipt_)
        self.assertGreater(receipt_.seq, 0)
        # A receipt travels back: from the original destination to the original source.
        self.assertEqual(
            (receipt_.source_addr, receipt_.source_ton, receipt_.source_npi),
            ("4712345678", 1, 1),
        )
        self.assertEqual(
            (receipt_.destination_addr, receipt_.dest_ton, receipt_.dest_npi), ("SHOP", 5, 0)
        )
        self.assertEqual((receipt_.stat, receipt_.err), (stat, err))
        self.assertEqual((receipt_.account, receipt_.message_id), ("shop1", "m1"))
        self.assertEqual((receipt_.sub, receipt_.dlvrd), (1, 1 if stat == "DELIVRD" else 0))
        self.assertEqual((receipt_.submit_date, receipt_.done_date), (NOW - 60, NOW))
        self.assertEqual(receipt_.text, "hello")
        found = yield self.status("m1")
        self.assertEqual(found, MessageStatus(FINAL, stat, err, NOW, "link"))
        # The receipt is kept for delivery.
        yield self.reopen()
        self.assertEqual(self.recovered.receipts, [receipt_])
        return receipt_

    @inlineCallbacks
    def test_report_by_ref_id(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        # The id is not LINK's id we know: only refId can find the message.
        yield self.check_final_receipt(
            report("other-id", UNKNOWN_SUBSCRIBER, ref_id="m1"), "UNDELIV", 101
        )

    @inlineCallbacks
    def test_report_by_ref_id_before_the_rest_answer(self) -> Steps:
        yield self.store.add_messages([mt("m1")])
        yield self.check_final_receipt(report("link-9", ref_id="m1"), "DELIVRD", 0)
        # LINK's answer arriving late neither revives the message nor loses LINK's id.
        yield self.store.mark_sent([("m1", "link-9")])
        state = yield self.state("m1")
        self.assertEqual(state, (FINAL, "DELIVRD"))
        (again,) = yield self.apply([report("link-9")])
        self.assertEqual((again.outcome, again.message_id), ("duplicate", "m1"))

    @inlineCallbacks
    def test_report_by_upstream_id(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        yield self.check_final_receipt(report("link-1", NOT_DELIVERED), "UNDELIV", 222)

    @inlineCallbacks
    def test_unknown_ref_id_falls_back_to_upstream_id(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        yield self.check_final_receipt(report("link-1", ref_id="lost"), "DELIVRD", 0)

    @inlineCallbacks
    def test_report_for_final_message_is_duplicate(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        (first,) = yield self.apply([report("link-1")])
        self.assertEqual(first.outcome, "final")
        (second,) = yield self.apply([report("link-1", NOT_DELIVERED)])
        self.assertEqual(second.outcome, "duplicate")
        self.assertIsNone(second.receipt)
        self.assertFalse(second.final)
        # The first answer stands.
        state = yield self.state("m1")
        self.assertEqual(state, (FINAL, "DELIVRD"))
        count = yield self.receipt_count()
        self.assertEqual(count, 1)

    @inlineCallbacks
    def test_report_after_gateway_finish_is_duplicate(self) -> Steps:
        yield self.store.add_messages([mt("m1")])
        yield self.store.finish([Finish("m1", "EXPIRED", 220, NOW)])
        (result,) = yield self.apply([report("x", ref_id="m1")])
        self.assertEqual(result.outcome, "duplicate")
        state = yield self.state("m1")
        self.assertEqual(state, (FINAL, "EXPIRED"))

    @inlineCallbacks
    def test_unknown_id(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        results = yield self.apply(
            [
                report("nope"),
                report("nope", part=1, ref_id="missing"),
                report("nope", any_form=True),
            ]
        )
        self.assertEqual([r.outcome for r in results], ["unknown"] * 3)
        self.assertEqual([(r.receipt, r.message_id) for r in results], [(None, None)] * 3)
        state = yield self.state("m1")
        self.assertEqual(state, (SENT, None))

    @inlineCallbacks
    def test_odd_report_ids_do_not_fail_the_batch(self) -> Steps:
        # Report ids come from the network; one odd id must not fail the other
        # jobs committed with it (here: a submit_sm's message).
        d1 = self.store.add_messages([mt("m1")])
        d2 = self.apply(
            [
                report("link-x$\u00b2"),
                report("y$" + "1" * 5000),
                report("\u0661\u0662", ref_id="\x00"),
                report(""),
                # LINK SMPP receipts are matched by every form of the id.
                report("1" * 5000, any_form=True),
            ]
        )
        yield d1
        results = yield d2
        self.assertEqual([r.outcome for r in results], ["unknown"] * 5)
        state = yield self.state("m1")
        self.assertEqual(state, (QUEUED, None))

    @inlineCallbacks
    def test_intermediate_report(self) -> Steps:
        yield self.sent_message("quiet", "link-q", registered_delivery=1)
        yield self.sent_message("chatty", "link-c", registered_delivery=0x11)
        quiet, chatty = yield self.apply([report("link-q", ENROUTE), report("link-c", ENROUTE)])
        self.assertEqual((quiet.outcome, quiet.receipt, quiet.final), ("silent", None, False))
        self.assertEqual((chatty.outcome, chatty.final), ("intermediate", False))
        self.assertEqual((chatty.receipt.stat, chatty.receipt.dlvrd), ("ENROUTE", 0))
        for id_ in ("quiet", "chatty"):
            state = yield self.state(id_)
            self.assertEqual(state, (SENT, None))
        # The final report after it still counts.
        (final,) = yield self.apply([report("link-c")])
        self.assertEqual((final.outcome, final.receipt.stat), ("final", "DELIVRD"))

    # --- multipart -------------------------------------------------------------------

    @inlineCallbacks
    def test_multipart_all_delivered(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        (first,) = yield self.apply([report("link-1", part=0, segments=2)])
        self.assertEqual((first.outcome, first.receipt, first.final), ("partial", None, False))
        state = yield self.state("m1")
        self.assertEqual(state, (SENT, None))
        (second,) = yield self.apply([report("link-1", part=1, segments=2)])
        self.assertEqual((second.outcome, second.final), ("final", True))
        self.assertEqual((second.receipt.stat, second.receipt.err), ("DELIVRD", 0))
        self.assertEqual((second.receipt.sub, second.receipt.dlvrd), (2, 2))
        (late,) = yield self.apply([report("link-1", part=1, segments=2)])
        self.assertEqual(late.outcome, "duplicate")
        count = yield self.receipt_count()
        self.assertEqual(count, 1)

    @inlineCallbacks
    def test_multipart_first_failed_part_decides(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        # Part 1 fails first in time, part 0 fails too: part 0's stat/err is reported.
        yield self.apply([report("link-1", NOT_DELIVERED, part=1, segments=2)])
        (result,) = yield self.apply([report("link-1", UNKNOWN_SUBSCRIBER, part=0, segments=2)])
        self.assertEqual(result.outcome, "final")
        self.assertEqual((result.receipt.stat, result.receipt.err), ("UNDELIV", 101))
        self.assertEqual((result.receipt.sub, result.receipt.dlvrd), (2, 0))
        found = yield self.status("m1")
        self.assertEqual((found.stat, found.err), ("UNDELIV", 101))

    @inlineCallbacks
    def test_multipart_one_failed(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        # Both parts in one batch, found through refId.
        results = yield self.apply(
            [
                report("link-1", part=0, ref_id="m1", segments=2),
                report("link-1", NOT_DELIVERED, part=1, ref_id="m1", segments=2),
            ]
        )
        self.assertEqual([r.outcome for r in results], ["partial", "final"])
        rec = results[1].receipt
        self.assertEqual((rec.stat, rec.err, rec.sub, rec.dlvrd), ("UNDELIV", 222, 2, 1))
        state = yield self.state("m1")
        self.assertEqual(state, (FINAL, "UNDELIV"))
        count = yield self.receipt_count()
        self.assertEqual(count, 1)

    @inlineCallbacks
    def test_multipart_same_part_twice_is_duplicate(self) -> Steps:
        yield self.sent_message("m1", "link-1", parts=3)
        yield self.apply([report("link-1", part=0)])
        (again,) = yield self.apply([report("link-1", part=0)])
        self.assertEqual(again.outcome, "duplicate")
        (second,) = yield self.apply([report("link-1", part=1)])
        self.assertEqual(second.outcome, "partial")  # the gateway counted 3 parts
        (third,) = yield self.apply([report("link-1", part=2)])
        self.assertEqual((third.outcome, third.receipt.sub, third.receipt.dlvrd), ("final", 3, 3))

    @inlineCallbacks
    def test_part_outcomes_survive_a_restart(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        yield self.apply([report("link-1", part=0, segments=2)])
        yield self.reopen()
        (result,) = yield self.apply([report("link-1", NOT_DELIVERED, part=1, segments=2)])
        self.assertEqual((result.outcome, result.receipt.dlvrd), ("final", 1))

    # --- registered_delivery -----------------------------------------------------------

    @inlineCallbacks
    def test_registered_delivery_none_is_silent(self) -> Steps:
        yield self.sent_message("m1", "link-1", registered_delivery=0)
        (result,) = yield self.apply([report("link-1", NOT_DELIVERED)])
        self.assertEqual(
            (result.outcome, result.receipt, result.stat, result.final),
            ("silent", None, "UNDELIV", True),
        )
        state = yield self.state("m1")
        self.assertEqual(state, (FINAL, "UNDELIV"))
        count = yield self.receipt_count()
        self.assertEqual(count, 0)

    @inlineCallbacks
    def test_registered_delivery_failure_only(self) -> Steps:
        yield self.sent_message("ok", "link-ok", registered_delivery=2)
        yield self.sent_message("bad", "link-bad", registered_delivery=2)
        ok, bad = yield self.apply([report("link-ok"), report("link-bad", NOT_DELIVERED)])
        self.assertEqual((ok.outcome, ok.receipt), ("silent", None))
        self.assertEqual(bad.outcome, "final")
        self.assertEqual(bad.receipt.stat, "UNDELIV")
        for id_, stat in (("ok", "DELIVRD"), ("bad", "UNDELIV")):
            state = yield self.state(id_)
            self.assertEqual(state, (FINAL, stat))
        count = yield self.receipt_count()
        self.assertEqual(count, 1)

    # --- LINK's ids in any spelling, per segment ------------------------------------------

    @inlineCallbacks
    def test_link_receipt_matches_any_spelling_of_links_id(self) -> Steps:
        yield self.store.add_messages([mt("m1"), mt("m2")])
        yield self.store.mark_sent([("m1", "00A1B2"), ("m2", "4096")])
        yield self.store.record_parts([("m1", ("00A1B2",)), ("m2", ("4096",))])
        results = yield self.apply(
            [
                report(str(0xA1B2), UNKNOWN_SUBSCRIBER, any_form=True),  # decimal of the hex id
                report("1000", any_form=True),  # hex of the decimal id
                report("ffff", any_form=True),  # nobody's
            ]
        )
        self.assertEqual([r.outcome for r in results], ["final", "final", "unknown"])
        first = results[0].receipt
        self.assertEqual((first.message_id, first.stat, first.err), ("m1", "UNDELIV", 101))
        self.assertEqual(results[1].receipt.message_id, "m2")

    @inlineCallbacks
    def test_link_segments_make_one_receipt(self) -> Steps:
        yield self.store.add_messages([mt("m1")])
        yield self.store.mark_sent([("m1", "a1")])
        yield self.store.record_parts([("m1", ("a1", "a2", "a3"))])
        first = yield self.apply(
            [report("A1", any_form=True), report("a2", ENROUTE, any_form=True)]
        )
        # An ENROUTE the ESME did not ask to hear about is silent.
        self.assertEqual([r.outcome for r in first], ["partial", "silent"])
        results = yield self.apply(
            [report("a3", any_form=True), report("a2", NOT_DELIVERED, any_form=True)]
        )
        self.assertEqual([r.outcome for r in results], ["partial", "final"])
        rec = results[1].receipt
        self.assertEqual((rec.stat, rec.err, rec.sub, rec.dlvrd), ("UNDELIV", 222, 3, 2))
        again = yield self.apply([report("a1", any_form=True)])
        self.assertEqual(again[0].outcome, "duplicate")

    @inlineCallbacks
    def test_link_ids_survive_a_restart(self) -> Steps:
        yield self.store.add_messages([mt("m1")])
        yield self.store.mark_sent([("m1", "0A")])
        yield self.store.record_parts([("m1", ("0A", "0B"))])
        yield self.reopen()
        results = yield self.apply([report("10", any_form=True), report("11", any_form=True)])
        self.assertEqual([r.outcome for r in results], ["partial", "final"])
        self.assertEqual((results[1].receipt.sub, results[1].receipt.dlvrd), (2, 2))

    # --- the report book: a rule's primitives, in one transaction ----------------------------

    @inlineCallbacks
    def test_the_book_finds_a_message_as_tracked(self) -> Steps:
        yield self.sent_message("m1", "link-1", reply_id="m0", billing_receipt=True)
        yield self.store.add_messages([mt("m2", parts=2)])
        yield self.store.mark_sent([("m2", "b1")])
        yield self.store.record_parts([("m2", ("b1", "b2"))])
        found = yield self.store.apply_reports(
            [
                report("link-1"),
                report("other", ref_id="m1"),
                report("B2", any_form=True),
                report("link-2"),
            ],
            lambda book, rep: book.find(rep),
        )
        m1 = Tracked(
            id="m1",
            reply_id="m0",
            account="shop1",
            registered_delivery=1,
            source=Address("SHOP", 5, 0),
            destination=Address("4712345678", 1, 1),
            submitted_at=NOW - 60,
            text_head="hello",
            state=SENT,
            parts={},
            expected_parts=1,
            billing=None,
            billing_receipt=True,
        )
        self.assertEqual(found[:2], [m1, m1])
        self.assertEqual((found[2].id, found[2].part, found[2].expected_parts), ("m2", 1, 2))
        self.assertIsNone(found[3])
        # Finding changes nothing.
        state = yield self.state("m1")
        self.assertEqual(state, (SENT, None))

    @inlineCallbacks
    def test_the_book_closes_an_open_message_once(self) -> Steps:
        yield self.sent_message("m1", "link-1")

        def close(book: ReportBook, rep: Report) -> Tracked | None:
            return book.close_open(rep, UNKNOWN_SUBSCRIBER, NOW - 5, None)

        first, second = yield self.store.apply_reports([report("link-1"), report("link-1")], close)
        # The message it closed, with what its receipt needs; the second finds nothing open.
        self.assertEqual(
            (first.id, first.account, first.registered_delivery, first.submitted_at),
            ("m1", "shop1", 1, NOW - 60),
        )
        self.assertEqual((first.source, first.destination), (mt("m1").source, mt("m1").destination))
        self.assertIsNone(second)
        found = yield self.status("m1")
        self.assertEqual(found, MessageStatus(FINAL, "UNDELIV", 101, NOW - 5, "link"))
        # A rule's primitives keep no receipt by themselves.
        count = yield self.receipt_count()
        self.assertEqual(count, 0)

    @inlineCallbacks
    def test_the_book_records_links_id_only_when_none_was_known(self) -> Steps:
        yield self.store.add_messages([mt("m1")])

        def learn(book: ReportBook, rep: Report) -> Tracked | None:
            book.update("m1", upstream_id=rep.upstream_id)
            return book.find(report(rep.upstream_id))

        first, second = yield self.store.apply_reports([report("x"), report("y")], learn)
        self.assertEqual(first.id, "m1")
        self.assertIsNone(second)  # "x" stands

    @inlineCallbacks
    def test_the_book_records_parts_and_final_state(self) -> Steps:
        yield self.sent_message("m1", "link-1", parts=2)

        def record(book: ReportBook, rep: Report) -> Tracked | None:
            if rep.part == 0:
                book.update("m1", parts={"0": DELIVERED})
            else:
                book.update(
                    "m1", parts={"0": DELIVERED, "1": EXPIRED}, final=EXPIRED, done_at=NOW - 1
                )
            return book.find(rep)

        first, second = yield self.store.apply_reports(
            [report("link-1", part=0), report("link-1", part=1)], record
        )
        self.assertEqual((first.state, first.parts), (SENT, {"0": DELIVERED}))
        self.assertEqual((second.state, second.parts), (FINAL, {"0": DELIVERED, "1": EXPIRED}))
        found = yield self.status("m1")
        self.assertEqual(found, MessageStatus(FINAL, "EXPIRED", 220, NOW - 1, "link"))

    @inlineCallbacks
    def test_a_failing_rule_fails_its_whole_batch(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        yield self.sent_message("m2", "link-2")

        def rule(book: ReportBook, rep: Report) -> ReportResult:
            if rep.upstream_id == "link-2":
                raise _RuleFailed(rep.upstream_id)
            return settle_now(book, rep)

        d = self.store.apply_reports([report("link-1"), report("link-2")], rule)
        yield self.assertFailure(d, _RuleFailed)
        self.flushLoggedErrors(_RuleFailed)
        # Nothing of the batch was kept: the first report may come again.
        for id_ in ("m1", "m2"):
            state = yield self.state(id_)
            self.assertEqual(state, (SENT, None))
        count = yield self.receipt_count()
        self.assertEqual(count, 0)
        (again,) = yield self.apply([report("link-1")])
        self.assertEqual(again.outcome, "final")

    # --- report times and billing ------------------------------------------------------

    @inlineCallbacks
    def test_done_date_is_the_reports_own_time_when_sane(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        yield self.sent_message("m2", "link-2")
        yield self.sent_message("m3", "link-3")
        r1, r2, r3 = yield self.apply(
            [
                report("link-1", reported_at=NOW - 30),
                report("link-2", reported_at=NOW + 86400),  # LINK's clock is off
                report("link-3"),  # no timestamp
            ]
        )
        self.assertEqual(r1.receipt.done_date, NOW - 30)
        self.assertEqual(r2.receipt.done_date, NOW)
        self.assertEqual(r3.receipt.done_date, NOW)

    @inlineCallbacks
    def test_a_link_smpp_receipts_done_date_is_kept(self) -> Steps:
        yield self.store.add_messages([mt("m1")])
        yield self.store.mark_sent([("m1", "7f")])
        yield self.store.record_parts([("m1", ("7f",))])
        (result,) = yield self.apply([report("7F", reported_at=NOW - 40, any_form=True)])
        self.assertEqual(result.receipt.done_date, NOW - 40)

    @inlineCallbacks
    def test_1007_delivers_then_a_billing_failure_is_recorded_without_a_second_receipt(
        self,
    ) -> Steps:
        yield self.sent_message("m1", "link-1")
        (first,) = yield self.apply([report("link-1", BILLED_DELAYED, code=1007)])
        self.assertEqual((first.outcome, first.receipt.stat), ("billing_pending", "DELIVRD"))
        self.assertTrue(first.final)
        state = yield self.state("m1")
        self.assertEqual(state, (FINAL, "DELIVRD"))
        counts = yield self.counts()
        self.assertEqual(counts.get(MT_BILLING), 1)
        (billing,) = yield self.apply([report("link-1", BILLING_FAILED, code=2200)])
        self.assertEqual((billing.outcome, billing.receipt), ("billing_failed", None))
        (late,) = yield self.apply([report("link-1", code=1001)])
        self.assertEqual(late.outcome, "duplicate")
        counts = yield self.counts()
        self.assertNotIn(MT_BILLING, counts)
        # The ESME got one receipt: its DELIVRD.
        self.assertEqual(counts.get(RECEIPTS), 1)
        state = yield self.state("m1")
        self.assertEqual(state, (FINAL, "DELIVRD"))

    @inlineCallbacks
    def test_billing_receipts_give_a_billing_failure_its_own_receipt(self) -> Steps:
        yield self.sent_message("m1", "link-1", billing_receipt=True)
        yield self.sent_message("m2", "link-2", billing_receipt=True)
        yield self.apply(
            [
                report("link-1", BILLED_DELAYED, code=1007),
                report("link-2", BILLED_DELAYED, code=1007),
            ]
        )
        # Intermediate states on the way are no billing result.
        (on_the_way,) = yield self.apply([report("link-1", ENROUTE, code=1013)])
        self.assertEqual(on_the_way.outcome, "intermediate")
        failed, billed = yield self.apply(
            [report("link-1", BILLING_REFUSED, code=2201), report("link-2", code=1001)]
        )
        self.assertEqual(failed.outcome, "billing_failed")
        self.assertEqual((failed.receipt.stat, failed.receipt.err), ("UNDELIV", 128))
        self.assertEqual(failed.receipt.message_id, "m1")
        self.assertEqual((billed.outcome, billed.receipt), ("billed", None))
        counts = yield self.counts()
        self.assertNotIn(MT_BILLING, counts)
        self.assertEqual(counts.get(RECEIPTS), 3)  # two DELIVRD, one billing failure

    @inlineCallbacks
    def test_billing_pending_is_kept_across_a_restart_and_shown_in_depths(self) -> Steps:
        yield self.sent_message("m1", "link-1")
        yield self.apply([report("link-1", BILLED_DELAYED, code=1007)])
        yield self.reopen()
        depths = yield self.store.depths()
        (pending,) = [d for d in depths if d.kind == MT_BILLING]
        self.assertEqual((pending.account, pending.count, pending.oldest), ("shop1", 1, NOW))
        (billing,) = yield self.apply([report("link-1", BILLING_FAILED, code=2200)])
        self.assertEqual(billing.outcome, "billing_failed")

    # --- MO ----------------------------------------------------------------------------

    @inlineCallbacks
    def test_mo_is_stored_once_per_link_id_and_recovered(self) -> Steps:
        item = mo_item()
        first = yield self.store.add_mo([("mo-1", [item]), ("", [item])])
        again = yield self.store.add_mo([("mo-1", [item])])
        self.assertEqual([len(r) for r in first], [1, 1])
        self.assertEqual([_without_seq(r) for r in first[0] + first[1]], [item, item])
        self.assertEqual(again, [None])
        counts = yield self.counts()
        self.assertEqual(counts, {MO_QUEUE: 2})
        yield self.reopen()
        self.assertEqual(self.recovered.receipts, first[0] + first[1])
        kinds = [(r.kind, r.payload, r.esm_class, r.expires_at) for r in self.recovered.receipts]
        self.assertEqual(kinds, [(MO, item.payload, 0x40, NOW + 60)] * 2)
        # The id is remembered across the restart too.
        again = yield self.store.add_mo([("mo-1", [item])])
        self.assertEqual(again, [None])

    @inlineCallbacks
    def test_every_segment_of_an_mo_is_kept_in_order(self) -> Steps:
        parts = [mo_item(payload=bytes((5, 0, 3, 7, 2, n)) + b"x") for n in (1, 2)]
        (stored,) = yield self.store.add_mo([("mo-2", parts)])
        self.assertEqual([r.payload for r in stored], [p.payload for p in parts])
        self.assertLess(stored[0].seq, stored[1].seq)
        yield self.store.receipts_done([stored[0].seq])
        yield self.reopen()
        self.assertEqual(self.recovered.receipts, [stored[1]])

    # --- upkeep --------------------------------------------------------------------------

    # --- parts of long messages ------------------------------------------------------

    def part(self, id_: str, seq: int, total: int = 2, **overrides: Any) -> Message:
        """A part of a long message (8-bit reference 7), too long for one SMS."""
        udh = bytes((0x05, 0x00, 0x03, 7, total, seq))
        return mt(id_, body=Body(text=f"{seq}" * 200, udh=udh), esm_class=0x40, **overrides)

    def whole(self, id_: str, parts: list[Message]) -> Message:
        members = tuple(
            Member(p.id, n, p.registered_delivery, p.submitted_at, p.text_head, (n - 1,))
            for n, p in enumerate(parts, start=1)
        )
        text = "".join(p.body.text or "" for p in parts)
        return mt(id_, text=text, parts=len(parts), members=members)

    @inlineCallbacks
    def test_held_parts_wait_in_no_queue_and_come_back_after_a_restart(self) -> Steps:
        first, second = self.part("p1", 1), self.part("p2", 2, registered_delivery=0x11)
        yield self.store.hold([first])
        yield self.store.add_messages([mt("q")])
        yield self.store.hold([second])
        counts = yield self.counts()
        self.assertEqual((counts.get(MT_HELD), counts.get(MT_QUEUED)), (2, 1))
        yield self.reopen()
        self.assertEqual(self.recovered.messages, [mt("q")])
        held = yield self.store.held()
        self.assertEqual(held, [first, second])
        found = yield self.status("p2")
        self.assertEqual(found.state, HELD)

    @inlineCallbacks
    def test_assemble_queues_the_whole_in_place_of_its_parts(self) -> Steps:
        parts = [self.part("p1", 1), self.part("p2", 2)]
        yield self.store.hold(parts)
        whole = self.whole("w", parts)
        yield self.store.assemble(whole, ["p1", "p2"])
        held = yield self.store.held()
        self.assertEqual(held, [])
        yield self.reopen()
        self.assertEqual(self.recovered.messages, [whole])
        # Any part's id reaches the whole, for its own account only.
        for part_id in ("p1", "p2"):
            found = yield self.status(part_id)
            self.assertEqual(found.state, QUEUED)
            queued = yield self.store.queued_as("shop1", part_id)
            self.assertEqual(queued, [whole])
        elsewhere = yield self.store.query("shop2", "p1")
        self.assertEqual(elsewhere, [])
        queued = yield self.store.queued_as("shop2", "p1")
        self.assertEqual(queued, [])

    @inlineCallbacks
    def test_a_whole_messages_report_gives_each_part_its_receipt(self) -> Steps:
        parts = [self.part("p1", 1), self.part("p2", 2, registered_delivery=0)]
        parts.append(self.part("p3", 2, submitted_at=NOW - 30))  # a copy of part 2
        yield self.store.hold(parts)
        whole = self.whole("w", parts[:2])
        copy = Member("p3", 2, 1, NOW - 30, parts[2].text_head, (1,))
        whole = replace(whole, members=(*whole.members, copy))
        yield self.store.assemble(whole, ["p1", "p2", "p3"])
        yield self.store.mark_sent([("w", "link-w")])
        (result,) = yield self.apply([report("link-w", ref_id="w")])
        # p2 asked for no receipt.
        self.assertEqual(
            [(r.message_id, r.stat, r.submit_date) for r in result.receipts],
            [("p1", "DELIVRD", NOW - 60), ("p3", "DELIVRD", NOW - 30)],
        )
        found = yield self.status("p2")
        self.assertEqual((found.state, found.stat), (FINAL, "DELIVRD"))

    @inlineCallbacks
    def test_release_queues_waiting_parts_last_and_leaves_finished_ones(self) -> Steps:
        parts = [self.part("p1", 1), self.part("p2", 2)]
        yield self.store.hold(parts)
        yield self.store.add_messages([mt("q")])
        yield self.store.finish([Finish("p2", "DELETED", 221, NOW)])
        released = yield self.store.release(parts)
        self.assertEqual(released, ["p1"])
        yield self.reopen()
        self.assertEqual(self.recovered.messages, [mt("q"), parts[0]])
        found = yield self.status("p2")
        self.assertEqual((found.state, found.stat), (FINAL, "DELETED"))

    @inlineCallbacks
    def test_finish_reaches_held_parts_with_their_receipts(self) -> Steps:
        yield self.store.hold([self.part("p1", 1)])
        stored = yield self.store.finish(
            [Finish("p1", "REJECTD", 998, NOW, (receipt("p1", stat="REJECTD", err=998),))]
        )
        self.assertEqual([(r.message_id, r.err) for r in stored], [("p1", 998)])
        found = yield self.status("p1")
        self.assertEqual((found.state, found.stat, found.err), (FINAL, "REJECTD", 998))
        held = yield self.store.held()
        self.assertEqual(held, [])

    @inlineCallbacks
    def test_purge_forgets_the_part_ids_of_a_purged_whole(self) -> Steps:
        parts = [self.part("p1", 1), self.part("p2", 2)]
        yield self.store.hold(parts)
        yield self.store.assemble(self.whole("w", parts), ["p1", "p2"])
        yield self.store.finish([Finish("w", "DELIVRD", 0, NOW - 8 * 86400)])
        removed = yield self.store.purge(NOW - 7 * 86400)
        self.assertEqual(removed, 1)
        found = yield self.store.query("shop1", "p1")
        self.assertEqual(found, [])

    @inlineCallbacks
    def test_purge_removes_only_old_final_rows(self) -> Steps:
        yield self.store.add_messages(
            [
                mt("old-final"),
                mt("new-final"),
                mt("old-queued", submitted_at=NOW - 90 * 86400),
                mt("old-sent", submitted_at=NOW - 90 * 86400),
            ]
        )
        yield self.store.mark_sent([("old-sent", "link-old")])
        yield self.store.finish(
            [
                Finish("old-final", "DELIVRD", 0, NOW - 8 * 86400),
                Finish("new-final", "DELIVRD", 0, NOW - 86400),
            ]
        )
        removed = yield self.store.purge(NOW - 7 * 86400)
        self.assertEqual(removed, 1)
        states = {}
        for id_ in ("old-final", "new-final", "old-queued", "old-sent"):
            states[id_] = yield self.status(id_)
        self.assertIsNone(states["old-final"])
        self.assertEqual(states["new-final"].state, FINAL)
        self.assertEqual(states["old-queued"].state, QUEUED)
        self.assertEqual(states["old-sent"].state, SENT)
        again = yield self.store.purge(NOW - 7 * 86400)
        self.assertEqual(again, 0)

    @inlineCallbacks
    def test_purge_forgets_links_ids_of_purged_messages(self) -> Steps:
        yield self.store.add_messages([mt("m1")])
        yield self.store.mark_sent([("m1", "0c")])
        yield self.store.record_parts([("m1", ("0c",))])
        yield self.apply([report("12", any_form=True)])
        removed = yield self.store.purge(NOW + 1)
        self.assertEqual(removed, 1)
        results = yield self.apply([report("0c", any_form=True), report("0c")])
        self.assertEqual([r.outcome for r in results], ["unknown", "unknown"])

    @inlineCallbacks
    def test_purge_forgets_old_mo_ids(self) -> Steps:
        (first,) = yield self.store.add_mo([("mo-1", [mo_item()])])
        yield self.store.purge(NOW)  # seen at NOW: not before it
        (kept,) = yield self.store.add_mo([("mo-1", [mo_item()])])
        self.assertIsNone(kept)
        yield self.store.purge(NOW + 1)
        (again,) = yield self.store.add_mo([("mo-1", [mo_item()])])
        self.assertIsNotNone(again)
        # Undelivered MO stay: only the memory of the id goes.
        counts = yield self.counts()
        self.assertEqual(counts, {MO_QUEUE: 2})
        self.assertNotEqual(first[0].seq, again[0].seq)

    @inlineCallbacks
    def test_depths_name_every_non_empty_queue(self) -> Steps:
        yield self.store.add_messages(
            [
                mt("q1", submitted_at=NOW - 50),
                mt("q2", submitted_at=NOW - 40),
                mt("q3", account="shop2", connector="backup", submitted_at=NOW - 30),
            ]
        )
        yield self.sent_message("s1", submitted_at=NOW - 20)
        yield self.sent_message("b1", submitted_at=NOW - 10)
        yield self.apply([report("link-b1", BILLED_DELAYED, code=1007)])
        yield self.store.add_mo([("mo-1", [mo_item(account="shop2", done_date=NOW - 5)])])
        depths = yield self.store.depths()
        self.assertEqual(
            depths,
            [
                QueueDepth(MT_QUEUED, "shop1", "link", 2, NOW - 50),
                QueueDepth(MT_QUEUED, "shop2", "backup", 1, NOW - 30),
                QueueDepth(MT_SENT, "shop1", "link", 1, NOW - 20),
                QueueDepth(MT_BILLING, "shop1", "link", 1, NOW),
                QueueDepth(RECEIPTS, "shop1", None, 1, NOW),
                QueueDepth(MO_QUEUE, "shop2", None, 1, NOW - 5),
            ],
        )

    @inlineCallbacks
    def test_an_empty_store_has_no_queues(self) -> Steps:
        depths = yield self.store.depths()
        self.assertEqual(depths, [])

    @inlineCallbacks
    def test_heartbeat_is_a_write_that_leaves_the_data_alone(self) -> Steps:
        yield self.store.add_messages([mt("m1")])
        for stamp in ("2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"):
            result = yield self.store.heartbeat(stamp)
            self.assertIsNone(result)
        counts = yield self.counts()
        self.assertEqual(counts, {MT_QUEUED: 1})
        yield self.reopen()
        self.assertEqual([m.id for m in self.recovered.messages], ["m1"])


def _without_seq(item: Receipt) -> Receipt:
    """The receipt as it was given to the store, before the store numbered it."""
    return replace(item, seq=0)


__all__ = [
    "BILLED_DELAYED",
    "BILLING_FAILED",
    "BILLING_REFUSED",
    "EXPIRED",
    "NOT_DELIVERED",
    "NOW",
    "UNKNOWN_SUBSCRIBER",
    "Steps",
    "StoreContract",
    "StoreFactory",
    "expired_receipt",
    "mo_item",
    "mt",
    "settle_now",
]
