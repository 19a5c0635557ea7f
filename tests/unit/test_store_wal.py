"""The store's WAL stays bounded under steady writes (issue 11, item 2).

Passive checkpoints alone never catch up with a writer that never pauses, so
SQLite never rewinds the WAL and it grew without end (93 MB, then 138 MB after
2 x 10,000 messages, beside a 6.7 MB database). 100,000 messages go through a
real SQLite file here, each stored, sent, reported and its receipt delivered,
in batches of 500 with a checkpoint every 50 ms; the WAL file is measured after
every batch. Without the hold (wal_limit out of reach) the same run took the
WAL to 76 MB here; with an 8 MB limit its largest was 8.5 MB, rewound 8 times.
"""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from gateway.intake.reports import settle
from gateway.records import Message, Report, ReportResult
from gateway.store.sqlite import SqliteStore
from tests.support.records import DELIVERED
from tests.support.store_contract import NOW, Steps, mt

MESSAGES = 100_000
BATCH = 500
WAL_LIMIT = 8 * 2**20
WAL_KEEP = 2 * 2**20
# What a batch writes between two checkpoints, on top of the limit.
SLACK = 6 * 2**20


class WalTests(TestCase):
    timeout = 180

    @staticmethod
    def _deliver(results: list[ReportResult], store: SqliteStore, delivered: list[int]) -> None:
        seqs = [r.receipt.seq for r in results if r.receipt is not None]
        delivered.append(len(seqs))
        store.receipts_done(seqs)

    @inlineCallbacks
    def test_the_wal_stays_under_its_limit_over_100000_messages(self) -> Steps:
        path = str(Path(self.mktemp()).absolute())
        os.makedirs(path)
        db = os.path.join(path, "gateway.sqlite")
        store = SqliteStore(
            reactor,
            db,
            synchronous="normal",
            clock=lambda: NOW,
            checkpoint_interval=0.05,
            wal_limit=WAL_LIMIT,
            wal_keep=WAL_KEEP,
        )
        yield store.open()
        self.addCleanup(store.close)
        largest = 0
        delivered: list[int] = []
        stages: list[list[Message]] = []
        waiting: list[Deferred[object]] = []
        # A pipeline, one stage a reactor turn, so that every turn writes: batch n is
        # stored while n-1 is marked sent and n-2 reported, as under steady traffic.
        for step in range(MESSAGES // BATCH + 2):
            start = step * BATCH
            if start < MESSAGES:
                batch = [
                    mt(f"m{n}", recipient=f"+4790{n:06d}") for n in range(start, start + BATCH)
                ]
                stages.append(batch)
                waiting.append(store.add_messages(batch))
            if 1 <= step <= len(stages):
                sent = stages[step - 1]
                waiting.append(store.mark_sent([(m.id, f"link-{m.id}") for m in sent]))
            if step >= 2:
                reported = stages[step - 2]
                d = store.apply_reports(
                    [Report(f"link-{m.id}", DELIVERED, ref_id=m.id) for m in reported],
                    lambda book, r: settle(book, r, NOW),
                )
                d.addCallback(self._deliver, store, delivered)
                waiting.append(d)
            yield deferLater(reactor, 0, lambda: None)
            largest = max(largest, os.path.getsize(db + "-wal"))
            if len(waiting) > 12:
                yield DeferredList(waiting[:-6], fireOnOneErrback=True, consumeErrors=True)
                del waiting[:-6]
        yield DeferredList(waiting, fireOnOneErrback=True, consumeErrors=True)
        self.assertEqual(sum(delivered), MESSAGES)
        self.assertLessEqual(largest, WAL_LIMIT + SLACK)
        self.assertGreater(store._committer().wal_rewinds, 0)
