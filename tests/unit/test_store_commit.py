"""The group committer's commit delay: durable jobs wait for company, urgent ones do not.

Real SQLite file, real fsync threads, the real reactor; what is checked is how
jobs are grouped into transactions (`batches`), never how long anything took.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from gateway.store.commit import GroupCommitter
from tests.support.committer import committer
from tests.support.store_contract import Steps


def _insert(value: int) -> Callable[[sqlite3.Connection], int]:
    def run(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t VALUES (?)", (value,))
        return value

    return run


class CommitDelayTests(TestCase):
    def committer(self, delay: float) -> GroupCommitter:
        commit, self.conn = committer(self, delay=delay)
        return commit

    @inlineCallbacks
    def test_a_durable_job_waits_the_delay_for_others_to_share_its_transaction(self) -> Steps:
        commit = self.committer(delay=3600.0)
        first = commit.submit(_insert(1))
        yield deferLater(reactor, 0.05, lambda: None)
        second = commit.submit(_insert(2))
        yield deferLater(reactor, 0.05, lambda: None)
        # An hour's delay: nothing has been committed, nothing has fired.
        assert commit.batches == 0 and not first.called and not second.called
        assert self.conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
        # An urgent job is committed at once and takes the waiting ones along.
        third = commit.submit(_insert(3), urgent=True)
        assert commit.batches == 1
        assert self.conn.execute("SELECT count(*) FROM t").fetchone() == (3,)
        assert (yield first) == 1 and (yield second) == 2 and (yield third) == 3
        assert commit.batches == 1 and commit.jobs == 3
        assert self.conn.execute("SELECT count(*) FROM t").fetchone() == (3,)

    @inlineCallbacks
    def test_a_lone_durable_job_is_committed_once_the_delay_is_over(self) -> Steps:
        commit = self.committer(delay=0.02)
        assert (yield commit.submit(_insert(1))) == 1
        assert commit.batches == 1

    @inlineCallbacks
    def test_without_a_delay_each_turn_commits_its_own_jobs(self) -> Steps:
        commit = self.committer(delay=0.0)
        assert (yield commit.submit(_insert(1))) == 1
        assert (yield commit.submit(_insert(2))) == 2
        assert commit.batches == 2

    @inlineCallbacks
    def test_bookkeeping_rides_along_with_a_delayed_durable_job(self) -> Steps:
        commit = self.committer(delay=3600.0)
        lazy = commit.submit(_insert(1), durable=False)
        durable = commit.submit(_insert(2))
        # The durable job's hour replaces nothing: the lazy flush, due first, takes both.
        assert (yield lazy) == 1 and (yield durable) == 2
        assert commit.batches == 1
