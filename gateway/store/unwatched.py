"""Store writes that nobody waits for (bookkeeping recorded lazily).

Their failure must still end somewhere: a full disk is reported by the store
itself, once a minute (gateway/store/commit.py); anything else is logged here.
Without this, each one would be an "Unhandled error in Deferred" when the
Deferred is collected.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.store.base import StoreFull

log = Logger()


def unwatched(d: Deferred[Any], what: str) -> None:
    def failed(failure: Failure) -> None:
        if not failure.check(StoreFull):
            log.failure("store: {what} failed", failure, what=what)

    d.addErrback(failed)


__all__ = ["unwatched"]
