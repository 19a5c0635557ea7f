"""The store on a full disk: the reserve, refusing new work, and the retry in its room.

A real disk is not filled here (tests/integration/test_disk_full.py does that on
a tmpfs); SQLite's `max_page_count` makes a real transaction fail with
SQLITE_FULL, and a reserve larger than half the free space cannot be taken.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from gateway.store.base import Finish, StoreFull
from gateway.store.commit import GroupCommitter
from gateway.store.reserve import Reserve
from gateway.store.sqlite import SqliteStore
from tests.support.records import receipt
from tests.support.store_contract import NOW, Steps, mt


def _free(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def test_a_reserve_is_a_file_of_its_size_until_released(tmp_path: Path) -> None:
    reserve = Reserve(str(tmp_path / "s.reserve"), 2**20)
    assert reserve.take() and reserve.held
    assert (tmp_path / "s.reserve").stat().st_size == 2**20
    # Allocated, not sparse: the blocks are really taken from the disk.
    assert (tmp_path / "s.reserve").stat().st_blocks * 512 >= 2**20
    assert reserve.take()  # held already: nothing more to do
    assert reserve.release() and not reserve.held
    assert not (tmp_path / "s.reserve").exists()
    assert not reserve.release()  # nothing left to give back


def test_a_reserve_needs_twice_its_size_free(tmp_path: Path) -> None:
    reserve = Reserve(str(tmp_path / "s.reserve"), _free(tmp_path) // 2 + 2**20)
    assert not reserve.take() and not reserve.held
    assert not (tmp_path / "s.reserve").exists()


def test_release_removes_what_a_previous_run_left(tmp_path: Path) -> None:
    (tmp_path / "s.reserve").write_bytes(b"\0" * 4096)
    assert Reserve(str(tmp_path / "s.reserve"), 2**20).release()
    assert not (tmp_path / "s.reserve").exists()


def test_no_reserve_is_never_held(tmp_path: Path) -> None:
    reserve = Reserve(str(tmp_path / "s.reserve"), 0)
    assert not reserve.take() and not reserve.release()


class CommitterRetryTests(TestCase):
    """A transaction that hits a full database runs again once `on_full` made room."""

    def setUp(self) -> None:
        self.path = str(Path(self.mktemp()) / "c.sqlite")
        Path(self.path).parent.mkdir(parents=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE t (v BLOB)")
        (pages,) = self.conn.execute("PRAGMA page_count").fetchone()
        self.conn.execute(f"PRAGMA max_page_count={pages + 2}")
        self.calls = 0

    def committer(self, room: bool) -> GroupCommitter:
        def on_full() -> bool:
            self.calls += 1
            if room:
                self.conn.execute("PRAGMA max_page_count=100000")
            return room

        commit = GroupCommitter(reactor, self.path, self.conn, durable=True, on_full=on_full)
        self.addCleanup(commit.close)
        return commit

    def write(self, commit: GroupCommitter) -> list[object]:
        def run(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO t VALUES (?)", [(b"x" * 3000,)] * 20)

        return [commit.submit(run), commit.submit(lambda conn: 7)]

    @inlineCallbacks
    def test_the_same_jobs_commit_in_the_room_made(self) -> Steps:
        commit = self.committer(room=True)
        first, second = self.write(commit)
        assert (yield first) is None and (yield second) == 7
        assert self.calls == 1
        assert self.conn.execute("SELECT count(*) FROM t").fetchone() == (20,)

    @inlineCallbacks
    def test_without_room_every_job_fails_with_store_full(self) -> Steps:
        commit = self.committer(room=False)
        for d in self.write(commit):
            with pytest.raises(StoreFull):
                yield d
        assert self.calls == 1
        assert self.conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


class RefusingTests(TestCase):
    """A store that cannot take its reserve refuses new work and records the rest."""

    timeout = 30

    def setUp(self) -> None:
        directory = Path(self.mktemp())
        directory.mkdir()
        self.store = SqliteStore(
            reactor,
            str(directory / "s.sqlite"),
            clock=lambda: NOW,
            reserve=_free(directory) // 2 + 2**20,
        )
        self.addCleanup(self.store.close)
        return self.store.open()

    @inlineCallbacks
    def test_new_work_is_refused_and_the_states_that_stop_duplicates_are_kept(
        self,
    ) -> Steps:
        store = self.store
        assert store.refusing
        for refused in (
            store.add_messages([mt("new")]),
            store.apply_reports([], lambda book, report: None),
            store.add_mo([("mo-1", [])]),
            store.heartbeat("probe"),
        ):
            with pytest.raises(StoreFull):
                yield refused
        yield store.mark_sent([("unknown", "link-1")])
        yield store.finish([Finish("unknown", "EXPIRED", 220, NOW)])
        stored = yield store.add_receipts([receipt("m1")])
        yield store.receipts_done([stored[0].seq])

    @inlineCallbacks
    def test_the_probe_takes_new_work_again_once_the_reserve_fits(self) -> Steps:
        store = self.store
        assert store.refusing
        store._reserve.size = 2**20  # as if space had been freed
        yield deferLater(reactor, 1.3, lambda: None)
        assert not store.refusing
        yield store.add_messages([mt("new")])
        yield store.heartbeat("probe")
