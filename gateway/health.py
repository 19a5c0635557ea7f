"""What /readyz answers: can this gateway take and pass on traffic right now?

Ready means all of: the store takes writes (a tiny write committed recently and
the latest one did not fail), every listener is listening, and at least one
connector could send now (its circuit breaker lets attempts through and, for a
connector that keeps an SMPP link, the link is bound). Anything else is a 503
whose one-line body says why, so `curl /readyz` is the first thing to read.

Everything here is cheap and never blocks: /readyz only reads state that
`StoreProbe` keeps up to date from a periodic job, because a probe that ran SQL
on the reactor (or waited for an fsync) would make a slow disk look like a hung
gateway and stall every session while it waits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

if TYPE_CHECKING:
    from gateway.store.sqlite import SqliteStore

log = Logger()

# A write every few seconds costs one small WAL frame and rides along with other
# commits under load; three missed beats in a row is a store that stopped taking writes.
STORE_PROBE_INTERVAL = 5.0
STORE_PROBE_MAX_AGE = 20.0


class _Breaker(Protocol):
    @property
    def usable(self) -> bool: ...


class StoreProbe:
    """Runs `write` (a durable store transaction) now and then and remembers how it went.

    Writable: the last write that finished succeeded, within `max_age` seconds.
    At most one write is in flight: a stuck fsync must not pile probes up behind it,
    and while it is stuck the age of the last success grows past `max_age`.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        write: Callable[[], Deferred[Any]],
        *,
        max_age: float = STORE_PROBE_MAX_AGE,
    ) -> None:
        self._clock = clock
        self._write = write
        self.max_age = max_age
        self._pending = False
        self._last_ok: float | None = None
        self._error: str | None = None

    def beat(self) -> None:
        if self._pending:
            return
        self._pending = True
        try:
            d = self._write()
        except Exception:
            self._failed(Failure())
            return
        d.addCallbacks(self._succeeded, self._failed)

    def _succeeded(self, _: object) -> None:
        self._pending = False
        self._last_ok = self._clock()
        if self._error is not None:
            log.info("store: writes work again")
        self._error = None

    def _failed(self, failure: Failure) -> None:
        self._pending = False
        if self._error is None:
            log.error("store: the readiness write failed: {error}", error=failure.getErrorMessage())
        # The reason is one line of /readyz's body, whatever the error's text holds.
        self._error = " ".join(failure.getErrorMessage().split()) or type(failure.value).__name__

    def problem(self) -> str | None:
        """Why the store is not writable, or None."""
        if self._error is not None:
            return f"store write failed: {self._error}"
        if self._last_ok is None:
            return "store: no write committed yet"
        age = self._clock() - self._last_ok
        if age > self.max_age:
            return f"store: no write committed for {age:.0f}s"
        return None


def store_write(store: SqliteStore, clock: Callable[[], float]) -> Callable[[], Deferred[None]]:
    """The probe's write: one row of the store's meta table, durable like a submit.

    It goes through the store's own job queue, so it takes the path every accepted
    message takes (one transaction on the reactor, the fsync in a thread), shares
    their commits under load and never runs SQL while another transaction is open.
    """

    def write() -> Deferred[None]:
        return store.heartbeat(repr(clock()))

    return write


def connector_problem(connector: object, breaker: _Breaker | None) -> str | None:
    """Why this connector cannot send now, or None."""
    # Only connectors that keep an SMPP link have link_up; REST ones have no link to lose.
    if getattr(connector, "link_up", True) is False:
        return "link down"
    if breaker is not None and not breaker.usable:
        return "circuit breaker open"
    return None


def listener_down(ports: Iterable[Any]) -> list[str]:
    """Listeners that stopped listening (tcp.Port keeps `connected` while it listens)."""
    down = []
    for port in ports:
        if not getattr(port, "connected", True):
            try:
                where = str(port.getHost().port)
            except Exception:  # a closed tcp.Port has no socket left to ask
                where = str(getattr(port, "port", port))
            down.append(where)
    return down


def readiness(
    *,
    store: StoreProbe,
    ports: Iterable[Any],
    connectors: Mapping[str, object],
    breaker: Callable[[str], _Breaker | None],
) -> tuple[bool, str]:
    """(ready, one-line reason) for a started gateway."""
    problem = store.problem()
    if problem is not None:
        return False, problem
    down = listener_down(ports)
    if down:
        return False, f"listener not listening: {', '.join(down)}"
    reasons = []
    for name, connector in connectors.items():
        why = connector_problem(connector, breaker(name))
        if why is None:
            return True, "ready"
        reasons.append(f"{name}: {why}")
    if not reasons:
        return False, "no connector configured"
    return False, "no usable connector (" + "; ".join(reasons) + ")"


__all__ = [
    "STORE_PROBE_INTERVAL",
    "StoreProbe",
    "connector_problem",
    "readiness",
    "store_write",
]
