"""Group commit for the SQLite store: transactions on the reactor, fsync off it.

Every call becomes a job; `delay` after the first durable job (at the end of
its reactor turn with no delay; at once for an urgent one) all queued jobs run
in one transaction on the reactor thread. COMMIT is cheap (the connection runs
with synchronous=NORMAL, so a commit only appends to the WAL file); durability
comes from an fdatasync of the WAL file, through io_uring where the kernel has
it (gateway/store/uring.py, `fsync="auto"`) or else in a thread, after which
the jobs' Deferreds fire. Up to MAX_SYNCS fsyncs may be in flight, so a commit
need not wait for an earlier fsync to finish before its own starts; beyond
that, jobs gather and share the next transaction. Under load batches grow by
themselves and the cost of the disk is shared.

At ordinary rates they would not: at 1,000 messages/s a submit or a report
comes every half millisecond, and each would get a transaction and an fsync of
its own, which cost more CPU than the work in them (BEGIN and COMMIT, a dozen
WAL pages written, two thread hand-offs). The delay, 1 ms by default (`[store]
commit_delay`), lets a few share them: measured in bench/README, it cuts the
gateway's CPU per message at 1,000/s by about a fifth and adds up to the delay
to a submit_sm_resp (2 ms saved no more, and its p99 was a millisecond
higher). An urgent job does not wait: LINK posts its reports over a few
connections, one request in flight on each, so the 200 of every report paces
LINK's next one; a delay there would cap how fast reports can come at
connections / delay. Not even for the end of the turn: the intake hands over
one turn's reports in one job, from a call of the reactor's timer pass, whose
end is after the next poll's I/O (K=8: +6% reports a second). What is queued
goes with it.

Why this split: a durable commit waits for the disk (about a millisecond
here), which must not stall the reactor; but running SQLite itself in a worker
thread makes the two threads fight for the GIL on every socket call. The fsync
threads hold no GIL while they wait, but take it back to hand their result
over; io_uring spares that hand-over (K=8: +8% reports a second). Checkpoints
run in a thread of their own, on a connection of their own, so neither the
reactor nor the fsyncs wait for them.

What always holds: a durable job's Deferred fires only after its transaction
is committed and (for a committer made with `durable=True`) on disk; if the
transaction fails, every job in it fails and none of its rows exist. Jobs fire
in the order they were committed, although two fsyncs may be out at once: the
dispatcher and the deliverer rely on it (what they read from the store is what
they were already told about).

The WAL stays bounded. A passive checkpoint copies only the frames that were
there when it began, so under steady writes it never catches up and SQLite
never rewinds the WAL: it grew by tens of MB a minute. When the WAL file passes
`wal_limit`, commits are held (jobs gather, the reactor runs on) while one
passive checkpoint copies everything; the next commit then rewinds the WAL and
SQLite truncates it to `wal_keep` (journal_size_limit). The hold lasts as long
as that checkpoint, at most HOLD_MAX; a checkpoint that takes longer (a slow or
full disk) releases the commits and is tried again at the next interval.

A transaction that fails for a full disk asks `on_full` for room (the store's
reserve, gateway/store/reserve.py); when it freed some, the same jobs run once
more in a new transaction. So a job's `fn` must touch nothing but the
connection: after a rollback it may run again.
"""

from __future__ import annotations

import errno
import os
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.logs import Repeats
from gateway.store.base import StoreFull
from gateway.store.uring import Uring, open_uring

log = Logger()
T = TypeVar("T")

# How long non-durable bookkeeping may wait for a transaction to ride along with.
LAZY_DELAY = 0.02
# fsyncs in flight at once, each in a thread of its own.
MAX_SYNCS = 2
# Through io_uring, where one more out costs no thread: K=8 and K=64 +6%.
MAX_URING_SYNCS = 4
# The WAL file size that makes the next checkpoint hold commits until it caught up,
# and the size SQLite truncates the WAL to once it rewinds it.
WAL_LIMIT = 64 * 2**20
WAL_KEEP = 16 * 2**20
# Commits never wait longer than this for a checkpoint.
HOLD_MAX = 2.0


def disk_full(error: BaseException | None) -> bool:
    """Whether `error` says the disk (or the quota) is full: SQLITE_FULL from
    SQLite, ENOSPC or EDQUOT from the fsync."""
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def _fire(jobs: list[_Job]) -> None:
    for job in jobs:
        job.deferred.callback(job.result)


class _Worker:
    """One thread that runs blocking calls (fsync, checkpoints) in order.

    A plain thread fed by a SimpleQueue: Twisted's ThreadPool adds about a
    millisecond of hand-offs per call, which would be most of a submit's latency.
    """

    def __init__(self, reactor: Any, name: str) -> None:
        self._reactor = reactor
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Deferred[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def call(self, fn: Callable[[], T]) -> Deferred[T]:
        d: Deferred[T] = Deferred()
        self._queue.put((fn, d))
        return d

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, d = item
            try:
                result = fn()
            except BaseException:
                self._reactor.callFromThread(d.errback, Failure())
            else:
                self._reactor.callFromThread(d.callback, result)


class _Job:
    __slots__ = ("deferred", "durable", "fn", "result")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], durable: bool) -> None:
        self.fn = fn
        self.durable = durable
        self.deferred: Deferred[Any] = Deferred()
        self.result: Any = None


class GroupCommitter:
    """Runs jobs `fn(connection)` in shared transactions; see the module docstring."""

    def __init__(
        self,
        reactor: Any,
        path: str,
        conn: sqlite3.Connection,
        *,
        durable: bool,
        checkpoint_interval: float = 1.0,
        wal_limit: int = WAL_LIMIT,
        wal_keep: int = WAL_KEEP,
        on_full: Callable[[], bool] = lambda: False,
        delay: float = 0.0,
        fsync: str = "thread",
    ) -> None:
        if fsync not in ("auto", "thread"):
            raise ValueError(f"fsync must be 'auto' or 'thread', not {fsync!r}")
        self._reactor = reactor
        self._delay = delay
        self._on_full = on_full
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._durable = durable
        self.wal_limit = wal_limit
        conn.execute(f"PRAGMA journal_size_limit={int(wal_keep)}")
        # While a checkpoint must catch up with every frame, commits wait (see above).
        self._holding = False
        self._hold_timer: Any = None
        self.wal_rewinds = 0
        # When transactions began failing for a full disk (None: they do not).
        self._full_since: float | None = None
        self._full_repeats = Repeats()
        # Checkpoints copy pages and fsync the database file: tens of milliseconds that
        # must not hold up the fsyncs submits wait for.
        self._checkpoint_worker = _Worker(reactor, "sqlite-checkpoint")
        self._checkpointer: sqlite3.Connection | None = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False
        )
        self._checkpoints = LoopingCall(self._checkpoint)
        self._checkpoints.clock = reactor
        # fsync applies to the file, not the descriptor: our own descriptor of the WAL
        # makes SQLite's appends durable. SQLite keeps the WAL file (rewinding, not
        # deleting it) while a connection is open, so one descriptor serves for good.
        wal = path + "-wal"
        wal_fd = os.open(wal, os.O_RDONLY)
        self._wal_fd: int | None = wal_fd
        # The WAL file is new: its directory entry must survive a crash too.
        directory = os.open(os.path.dirname(os.path.abspath(wal)), os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        # Two fsyncs may be in flight: a commit made while one waits for the disk
        # starts its own at once instead of waiting for it to finish first. Through
        # io_uring when asked for and the kernel has it (gateway/store/uring.py),
        # else each in a thread of its own.
        self._uring: Uring | None = None
        self.fsync_by = "threads"  # said in the log at the start
        if fsync == "auto" and durable:
            self._uring, why = open_uring(reactor, wal_fd)
            self.fsync_by = "io_uring" if self._uring is not None else f"threads ({why})"
        self._max_syncs = MAX_SYNCS if self._uring is None else MAX_URING_SYNCS
        workers = 0 if self._uring is not None else MAX_SYNCS
        self._sync_workers = [_Worker(reactor, f"sqlite-fsync-{n}") for n in range(workers)]
        self._idle_sync_workers = list(self._sync_workers)
        self._pending: list[_Job] = []
        self._unsynced: list[_Job] = []
        # Committed batches whose fsync is out, in commit order.
        self._syncing: deque[list[_Job]] = deque()
        self._syncs = 0
        self._flush_call: Any = None
        self._open_batches: dict[str, tuple[list[tuple[Any, ...]], list[Deferred[None]]]] = {}
        self._closed = False
        self.batches = 0
        self.jobs = 0
        for worker in self._sync_workers:
            worker.start()
        self._checkpoint_worker.start()
        self._checkpoints.start(checkpoint_interval, now=False)

    def submit(
        self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = True, urgent: bool = False
    ) -> Deferred[T]:
        """Queue a job for the next transaction.

        Durable jobs fire after the fsync and are flushed `delay` after the first of
        them (without a delay at the end of this reactor turn; an urgent one now,
        unless fsyncs are out, with what is queued). Bookkeeping that nobody waits
        for (`durable=False`) rides along with the next durable flush, or goes on
        its own after LAZY_DELAY, so that it costs no transaction and no fsync of
        its own.
        """
        job = _Job(fn, durable)
        self._pending.append(job)
        if self._syncs >= self._max_syncs:
            # The disk is busy: gather until an fsync is done, then one commit for all.
            return job.deferred
        if urgent and durable:
            self._flush()  # returns at once while held by a checkpoint
            return job.deferred
        call = self._flush_call
        wait = self._delay if durable else LAZY_DELAY
        if call is None or not call.active():
            self._flush_call = self._reactor.callLater(wait, self._flush)
        elif durable and call.getTime() > self._reactor.seconds() + wait:
            call.reset(wait)
        return job.deferred

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read now, outside any transaction.

        Transactions begin and end within one `_flush` call on the reactor thread,
        so between two reactor callbacks none is open; a read sees every committed
        job, including those whose fsync is still in flight.
        """
        if self._conn is None:
            raise RuntimeError("the store is closed")
        return fn(self._conn)

    @property
    def _scheduled(self) -> bool:
        return self._flush_call is not None and self._flush_call.active()

    def _flush(self) -> None:
        if self._syncs >= self._max_syncs or self._holding:
            return  # next_round, or the checkpoint's end, flushes what gathered meanwhile
        jobs, self._pending = self._pending, []
        call = self._flush_call
        if call is not None and call.active():
            call.cancel()  # flushed early (urgent, or after an fsync): nothing left for it
        self._flush_call = None
        if not jobs:
            return
        self.batches += 1
        self.jobs += len(jobs)
        try:
            try:
                self._transaction(jobs)
            except Exception as exc:
                if not (disk_full(exc) and self._on_full()):
                    raise
                self._transaction(jobs)  # in the room the reserve gave back
        except Exception as exc:
            failure = Failure(StoreFull(str(exc))) if disk_full(exc) else Failure()
            if failure.check(StoreFull):
                self._full_since = self._full_since or self._reactor.seconds()
                self._note_full(str(exc))
            else:
                log.failure("store transaction failed", failure)
            for job in jobs:
                job.deferred.errback(failure)
            return
        if self._full_since is not None:
            log.info(
                "store: writes work again after {seconds:.1f} s of a full disk",
                seconds=self._reactor.seconds() - self._full_since,
            )
            self._full_since = None
            self._full_repeats = Repeats()  # the next full disk is said at once
        if not self._durable:
            _fire(jobs)
            return
        _fire([job for job in jobs if not job.durable])
        self._unsynced.extend(job for job in jobs if job.durable)
        self._sync()

    def _transaction(self, jobs: list[_Job]) -> None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the store is closed")
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                job.result = job.fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _sync(self) -> None:
        if self._syncs >= self._max_syncs or not self._unsynced:
            return
        jobs, self._unsynced = self._unsynced, []
        self._syncs += 1
        worker = self._idle_sync_workers.pop() if self._idle_sync_workers else None
        self._syncing.append(jobs)

        def synced(_: None) -> None:
            # An fsync that returns makes every transaction committed before it
            # began durable, an earlier one whose own fsync is still out included:
            # those fire now, first, so that callers see commits in their order.
            while self._syncing:
                earlier = self._syncing.popleft()
                _fire(earlier)
                if earlier is jobs:
                    break

        def failed(failure: Failure) -> None:
            # Committed but not known to be on disk: the callers must not acknowledge.
            if disk_full(failure.value):
                failure = Failure(StoreFull(failure.getErrorMessage()))
                self._note_full(failure.getErrorMessage())
                self._on_full()
            else:
                log.failure("fsync of the store failed", failure)
            if any(batch is jobs for batch in self._syncing):  # not fired by a later fsync
                self._syncing.remove(jobs)
                for job in jobs:
                    job.deferred.errback(failure)

        def next_round(_: object) -> None:
            self._syncs -= 1
            if worker is not None:
                self._idle_sync_workers.append(worker)
            if self._pending:
                self._flush()

        wal_fd = self._wal_fd
        assert wal_fd is not None
        # fdatasync, as SQLite itself uses: the data and the file size, not the mtime.
        d: Deferred[None]
        if worker is None:
            assert self._uring is not None
            d = self._uring.fdatasync(wal_fd)
        else:
            d = worker.call(lambda: os.fdatasync(wal_fd))
        d.addCallbacks(synced, failed).addBoth(next_round)

    def _checkpoint(self) -> Deferred[None] | None:
        # The LoopingCall waits for the Deferred returned here: one checkpoint at a time.
        if self._checkpointer is None or self._wal_fd is None:
            return None
        catch_up = os.fstat(self._wal_fd).st_size > self.wal_limit
        if catch_up:
            self._holding = True
            self._hold_timer = self._reactor.callLater(HOLD_MAX, self._release)

        def run() -> tuple[int, int, int]:
            assert self._checkpointer is not None
            busy, frames, copied = self._checkpointer.execute(
                "PRAGMA wal_checkpoint(PASSIVE)"
            ).fetchone()
            return busy, frames, copied

        def done(result: tuple[int, int, int]) -> None:
            _, frames, copied = result
            if catch_up and self._holding and frames == copied:
                self.wal_rewinds += 1  # the next commit rewinds and truncates the WAL

        def ended(result: Failure | None) -> Failure | None:
            if catch_up:
                self._release()
            return result

        def failed(failure: Failure) -> None:
            if disk_full(failure.value):
                self._note_full(failure.getErrorMessage())  # tried again in a second
                self._on_full()
            else:
                log.failure("store checkpoint failed", failure)

        d = self._checkpoint_worker.call(run).addCallback(done).addBoth(ended)
        return d.addErrback(failed)

    def _note_full(self, error: str) -> None:
        # Every transaction fails while the disk is full: said once a minute, not each time.
        left_out = self._full_repeats.note("full", self._reactor.seconds())
        if left_out is not None:
            log.error(
                "store: the disk is full ({error}); refusing new messages with"
                " ESME_RMSGQFUL and reports with 503 until there is space"
                " ({left_out} more failed writes since the last line)",
                error=error,
                left_out=left_out,
            )

    def _release(self) -> None:
        if not self._holding:
            return
        self._holding = False
        if self._hold_timer is not None and self._hold_timer.active():
            self._hold_timer.cancel()
        self._hold_timer = None
        if self._pending:
            self._flush()

    def batched(
        self, statement: str, rows: list[tuple[Any, ...]], *, durable: bool
    ) -> Deferred[None]:
        """`executemany(statement, rows)`, sharing one job with the same statement's
        other calls until the next flush.

        Per submit_sm or per receipt, a job of its own (closure, Deferred chain,
        executemany call) costs more than the row it writes.
        """
        open_batch = self._open_batches.get(statement)
        if open_batch is None:
            batch: list[tuple[Any, ...]] = []
            waiters: list[Deferred[None]] = []
            open_batch = self._open_batches[statement] = (batch, waiters)

            def run(conn: sqlite3.Connection) -> None:
                self._open_batches.pop(statement, None)
                conn.executemany(statement, batch)

            def fan_out(result: object) -> None:
                if self._open_batches.get(statement, (None, None))[1] is waiters:
                    del self._open_batches[statement]  # the transaction failed before `run`
                for waiter in waiters:
                    if isinstance(result, Failure):
                        waiter.errback(result)
                    else:
                        waiter.callback(None)

            self.submit(run, durable=durable).addBoth(fan_out)
        open_batch[0].extend(rows)
        d: Deferred[None] = Deferred()
        open_batch[1].append(d)
        return d

    def close(self) -> Deferred[None]:
        """Finish what is queued, then stop the threads and close the connections."""
        d: Deferred[None] = Deferred()
        if self._closed:
            d.callback(None)
            return d
        self._closed = True
        if self._checkpoints.running:
            self._checkpoints.stop()

        self._release()

        def drained() -> None:
            if self._syncs or self._pending or self._scheduled or self._unsynced:
                self._reactor.callLater(0.01, drained)
                return
            for worker in self._sync_workers:
                worker.stop()
            if self._uring is not None:
                self._uring.close()
                self._uring = None
            self._checkpoint_worker.stop()
            for conn in (self._checkpointer, self._conn):
                if conn is not None:
                    conn.close()
            self._conn = self._checkpointer = None
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None
            d.callback(None)

        drained()
        return d
