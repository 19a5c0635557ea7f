"""fdatasync without a thread: Linux io_uring, its completions read off an eventfd.

Responsible for: the store's fsyncs (gateway/store/commit.py) when the kernel
offers io_uring. The thread that otherwise waits in fdatasync has to take the
GIL back to hand its result to the reactor, and the reactor has to give it up:
futex calls and context switches on every commit, and every report's 200
waits for them (bench/README measured a tenth of the gateway's CPU in futex
alone at K=8). Here the reactor writes the request into the submission ring,
one `io_uring_enter` hands it to the kernel, whose own worker runs the
fdatasync and posts the completion; the ring's eventfd then wakes the reactor
like any socket. No Python thread, no GIL hand-over.

What always holds:

* A Deferred of :meth:`Uring.fdatasync` fires with None only after the kernel
  reported that fdatasync returned 0; any other result fails it with the
  OSError of that errno (ENOSPC, EIO), as `os.fdatasync` would have raised.
* :func:`open_uring` either returns a ring that has completed one fdatasync of
  the given descriptor, or None with the reason (no io_uring in this kernel, a
  seccomp filter that refuses it, a CPU other than x86-64): the caller then
  uses a thread. Nothing half set up is left behind.
* At most `ENTRIES` requests are out at once (the committer has four at most).

Why x86-64 only: the kernel reads the ring's tail after we wrote the entry, and
we read completions after the kernel wrote them; x86-64 keeps stores in order,
other CPUs need memory barriers that Python cannot issue.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import platform
import select
import struct
from typing import Any

from twisted.internet.defer import Deferred

# Syscall numbers of the generic table (x86-64 has the same).
_SETUP, _ENTER, _REGISTER = 425, 426, 427
_OP_FSYNC = 3
_FSYNC_DATASYNC = 1
_REGISTER_EVENTFD = 4
_FEAT_SINGLE_MMAP = 1
_OFF_SQ_RING, _OFF_CQ_RING, _OFF_SQES = 0, 0x8000000, 0x10000000
_SQE_SIZE = 64
ENTRIES = 8
# Seconds the first fdatasync may take before io_uring is given up for threads.
PROBE_TIMEOUT = 10.0

_u32 = ctypes.c_uint32


class _SqOffsets(ctypes.Structure):
    _fields_ = [
        *((name, _u32) for name in ("head", "tail", "ring_mask", "ring_entries", "flags")),
        *((name, _u32) for name in ("dropped", "array", "resv1")),
        ("user_addr", ctypes.c_uint64),
    ]


class _CqOffsets(ctypes.Structure):
    _fields_ = [
        *((name, _u32) for name in ("head", "tail", "ring_mask", "ring_entries", "overflow")),
        *((name, _u32) for name in ("cqes", "flags", "resv1")),
        ("user_addr", ctypes.c_uint64),
    ]


class _Params(ctypes.Structure):
    # struct io_uring_params, include/uapi/linux/io_uring.h
    _fields_ = [
        *((name, _u32) for name in ("sq_entries", "cq_entries", "flags", "sq_thread_cpu")),
        *((name, _u32) for name in ("sq_thread_idle", "features", "wq_fd")),
        ("resv", _u32 * 3),
        ("sq_off", _SqOffsets),
        ("cq_off", _CqOffsets),
    ]


_U32 = struct.Struct("<I")
# struct io_uring_sqe up to user_data (opcode, flags, ioprio, fd, off, addr, len,
# fsync_flags, user_data), the rest zero.
_SQE = struct.Struct("<BBHiQQIIQ24x")
_CQE = struct.Struct("<QiI")  # user_data, res, flags


def _error(call: str) -> OSError:
    error = ctypes.get_errno()
    return OSError(error, f"{call}: {os.strerror(error)}")


def _syscall() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    call = libc.syscall
    call.restype = ctypes.c_long
    return call


class Uring:
    """One io_uring for fdatasync requests; use :func:`open_uring`."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._call = _syscall()
        self._fd = -1
        self._event = -1
        self._maps: list[mmap.mmap] = []
        self._waiting: dict[int, Deferred[None]] = {}
        self._token = 0
        self._reading = False

    def _setup(self) -> None:
        params = _Params()
        fd = self._call(_SETUP, ctypes.c_uint(ENTRIES), ctypes.byref(params))
        if fd < 0:
            raise _error("io_uring_setup")
        self._fd = fd
        sq, cq = params.sq_off, params.cq_off
        sq_size = sq.array + params.sq_entries * 4
        cq_size = cq.cqes + params.cq_entries * _CQE.size
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        if params.features & _FEAT_SINGLE_MMAP:
            ring = mmap.mmap(fd, max(sq_size, cq_size), mmap.MAP_SHARED, prot, offset=_OFF_SQ_RING)
            self._sq = self._cq = ring
            self._maps.append(ring)
        else:
            self._sq = mmap.mmap(fd, sq_size, mmap.MAP_SHARED, prot, offset=_OFF_SQ_RING)
            self._maps.append(self._sq)
            self._cq = mmap.mmap(fd, cq_size, mmap.MAP_SHARED, prot, offset=_OFF_CQ_RING)
            self._maps.append(self._cq)
        self._sqes = mmap.mmap(fd, params.sq_entries * _SQE_SIZE, mmap.MAP_SHARED, prot,
                               offset=_OFF_SQES)  # fmt: skip
        self._maps.append(self._sqes)
        self._sq_tail, self._sq_array = sq.tail, sq.array
        self._sq_mask = _U32.unpack_from(self._sq, sq.ring_mask)[0]
        self._cq_head, self._cq_tail, self._cqes = cq.head, cq.tail, cq.cqes
        self._cq_mask = _U32.unpack_from(self._cq, cq.ring_mask)[0]
        self._event = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        event = ctypes.c_int(self._event)
        if self._call(_REGISTER, fd, _REGISTER_EVENTFD, ctypes.byref(event), 1) < 0:
            raise _error("io_uring_register")

    def _probe(self, fd: int) -> None:
        """One fdatasync of `fd`, waited for here: the kernel must know the operation."""
        self._submit(fd, 0)
        if self._call(_ENTER, self._fd, 1, 0, 0, None, 0) < 0:
            raise _error("io_uring_enter")
        # Waited for on the eventfd, not in io_uring_enter: with a deadline.
        if not select.select([self._event], [], [], PROBE_TIMEOUT)[0]:
            raise OSError(0, f"no completion within {PROBE_TIMEOUT:g}s")
        os.read(self._event, 8)
        done = self._completions()
        if not done:
            raise OSError(0, "the eventfd woke without a completion")
        result = done[0][1]
        if result < 0:
            raise OSError(-result, f"fdatasync through io_uring: {os.strerror(-result)}")

    # -- the committer's calls ----------------------------------------------------

    def fdatasync(self, fd: int) -> Deferred[None]:
        self._token += 1
        token = self._token
        d: Deferred[None] = Deferred()
        if len(self._waiting) >= ENTRIES:
            d.errback(OSError(0, "io_uring: more fsyncs out than the ring holds"))
            return d
        self._submit(fd, token)
        while self._call(_ENTER, self._fd, 1, 0, 0, None, 0) < 0:
            error = ctypes.get_errno()
            if error != 4:  # EINTR: a signal came in between; hand it over again
                d.errback(OSError(error, f"io_uring_enter: {os.strerror(error)}"))
                return d
        self._waiting[token] = d
        return d

    def close(self) -> None:
        if self._reading:
            self._reactor.removeReader(self)
            self._reading = False
        for ring in self._maps:
            ring.close()
        self._maps.clear()
        for fd in (self._event, self._fd):
            if fd >= 0:
                os.close(fd)
        self._event = self._fd = -1

    # -- IReadDescriptor: the eventfd ---------------------------------------------

    def fileno(self) -> int:
        return self._event

    def logPrefix(self) -> str:
        return "io_uring"

    def connectionLost(self, reason: Any) -> None:
        pass  # closed by close(); nothing else ends an eventfd

    def doRead(self) -> None:
        # Nothing to read: its count went with an earlier wake-up's completions.
        with contextlib.suppress(BlockingIOError):
            os.read(self._event, 8)
        for token, result in self._completions():
            d = self._waiting.pop(token, None)
            if d is None:
                continue
            if result < 0:
                d.errback(OSError(-result, os.strerror(-result)))
            else:
                d.callback(None)

    # -- the rings ----------------------------------------------------------------

    def _submit(self, fd: int, token: int) -> None:
        tail = _U32.unpack_from(self._sq, self._sq_tail)[0]
        index = tail & self._sq_mask
        entry = (_OP_FSYNC, 0, 0, fd, 0, 0, 0, _FSYNC_DATASYNC, token)
        _SQE.pack_into(self._sqes, index * _SQE_SIZE, *entry)
        _U32.pack_into(self._sq, self._sq_array + index * 4, index)
        _U32.pack_into(self._sq, self._sq_tail, (tail + 1) & 0xFFFFFFFF)

    def _completions(self) -> list[tuple[int, int]]:
        cq = self._cq
        head = _U32.unpack_from(cq, self._cq_head)[0]
        tail = _U32.unpack_from(cq, self._cq_tail)[0]
        done = []
        while head != tail:
            token, result, _ = _CQE.unpack_from(cq, self._cqes + (head & self._cq_mask) * _CQE.size)
            done.append((token, result))
            head = (head + 1) & 0xFFFFFFFF
        _U32.pack_into(cq, self._cq_head, head)
        return done


def open_uring(reactor: Any, probe_fd: int) -> tuple[Uring | None, str]:
    """A ring whose first fdatasync of `probe_fd` succeeded, or None and why not."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None, f"io_uring is used on x86-64 Linux only ({platform.machine()})"
    if not hasattr(os, "eventfd"):
        return None, "this Python has no os.eventfd"
    ring = Uring(reactor)
    try:
        ring._setup()
        ring._probe(probe_fd)
    except OSError as e:
        ring.close()
        return None, f"io_uring refused: {e.strerror}"
    reactor.addReader(ring)
    ring._reading = True
    return ring, "io_uring"


__all__ = ["ENTRIES", "Uring", "open_uring"]
