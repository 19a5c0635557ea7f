"""fdatasync through io_uring (gateway/store/uring.py), on real files and the real reactor.

Where the kernel or a seccomp filter refuses io_uring, the ring tests are
skipped and the fallback is what the store uses; the fallback's own test runs
everywhere.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from gateway.store import uring
from gateway.store.commit import GroupCommitter
from tests.support.committer import committer
from tests.support.store_contract import Steps


@pytest.fixture
def data_file(tmp_path: Path) -> Iterator[int]:
    fd = os.open(tmp_path / "data", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"x" * 4096)
    yield fd
    os.close(fd)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_refused_setup_gives_no_ring_and_says_why(
    data_file: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A syscall number no kernel has: ENOSYS, as a kernel without io_uring answers
    # (a seccomp filter says EPERM; both take the same way).
    monkeypatch.setattr(uring, "_SETUP", 100_000)
    before = _open_fds()
    ring, why = uring.open_uring(reactor, data_file)
    assert ring is None
    assert "io_uring refused" in why and os.strerror(errno.ENOSYS) in why
    assert _open_fds() == before  # nothing half set up is left open


# A descriptor far above any this process has: fdatasync says EBADF, and no file
# opened meanwhile (the ring's own) can take its number.
_NO_SUCH_FD = 100_000


def test_a_probe_that_fails_gives_no_ring() -> None:
    before = _open_fds()
    ring, why = uring.open_uring(reactor, _NO_SUCH_FD)
    if ring is None and "EBADF" not in why and os.strerror(errno.EBADF) not in why:
        pytest.skip(f"no io_uring here: {why}")
    assert ring is None and os.strerror(errno.EBADF) in why
    assert _open_fds() == before


class RingTests(TestCase):
    def setUp(self) -> None:
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT)
        self.addCleanup(os.close, self.fd)
        ring, why = uring.open_uring(reactor, self.fd)
        if ring is None:
            raise self.skipTest(f"no io_uring here: {why}")
        self.ring = ring
        self.addCleanup(ring.close)

    @inlineCallbacks
    def test_fdatasync_fires_once_the_kernel_did_it(self) -> Steps:
        for _ in range(20):
            os.write(self.fd, b"y" * 4096)
            assert (yield self.ring.fdatasync(self.fd)) is None

    @inlineCallbacks
    def test_two_at_once_both_fire(self) -> Steps:
        os.write(self.fd, b"z" * 4096)
        first, second = self.ring.fdatasync(self.fd), self.ring.fdatasync(self.fd)
        assert (yield first) is None and (yield second) is None

    @inlineCallbacks
    def test_a_failed_fdatasync_fails_with_its_errno(self) -> Steps:
        with pytest.raises(OSError) as raised:
            yield self.ring.fdatasync(_NO_SUCH_FD)
        assert raised.value.errno == errno.EBADF
        # The ring goes on working.
        assert (yield self.ring.fdatasync(self.fd)) is None


class CommitterFsyncTests(TestCase):
    def committer(self, fsync: str) -> GroupCommitter:
        commit, self.conn = committer(self, fsync=fsync)
        return commit

    @inlineCallbacks
    def write(self, commit: GroupCommitter) -> Steps:
        def insert(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO t VALUES (1)")
            return 1

        for n in range(10):
            assert (yield commit.submit(insert, urgent=n % 2 == 0)) == 1
        assert self.conn.execute("SELECT count(*) FROM t").fetchone() == (10,)

    @inlineCallbacks
    def test_auto_fsyncs_through_io_uring_where_it_is(self) -> Steps:
        commit = self.committer("auto")
        if commit.fsync_by != "io_uring":
            assert commit.fsync_by.startswith("threads (")
        yield self.write(commit)

    @inlineCallbacks
    def test_thread_fsyncs_in_threads(self) -> Steps:
        commit = self.committer("thread")
        assert commit.fsync_by == "threads"
        yield self.write(commit)

    def test_an_unknown_mode_is_refused(self) -> None:
        with pytest.raises(ValueError, match="fsync must be"):
            self.committer("sometimes")
