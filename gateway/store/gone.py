"""Keys that left memory while the store still shows them, for the window readers.

The dispatcher's window (gateway/mt/window.py) and the receipt deliverer
(gateway/intake/delivery.py) read pages of the store while their own writes
are out. A message sent, or a receipt acknowledged, is still in the store until
the write saying so commits; a page read meanwhile must not bring it back. And
a read that began before the commit may return it even after: a key leaves
only once its write fired and no read is outstanding.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred

K = TypeVar("K")
T = TypeVar("T")


class Gone(Generic[K]):
    def __init__(self) -> None:
        self._keys: set[K] = set()
        self._reads = 0
        self._later: list[K] = []

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def add(self, key: K) -> None:
        """Gone for as long as the process runs."""
        self._keys.add(key)

    def until(self, keys: Iterable[K], write: Deferred[Any]) -> None:
        """Gone until `write` (which removes them from the store's view) commits.
        If it fails, they stay gone until a restart."""
        keys = list(keys)
        self._keys.update(keys)

        def written(result: Any) -> Any:
            if self._reads:
                self._later.extend(keys)
            else:
                self._keys.difference_update(keys)
            return result

        write.addCallback(written)

    def reading(self, read: Deferred[T]) -> Deferred[T]:
        """`read`, a read of the store, is outstanding until it fires."""
        self._reads += 1

        def ended(result: Any) -> Any:
            self._reads -= 1
            if not self._reads and self._later:
                self._keys.difference_update(self._later)
                self._later = []
            return result

        return read.addBoth(ended)


__all__ = ["Gone"]
