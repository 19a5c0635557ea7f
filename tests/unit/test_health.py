"""/readyz's verdict (gateway.health): store probe, listeners, connectors."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from gateway.health import StoreProbe, connector_problem, readiness, store_write
from gateway.mt.router import CircuitBreaker
from gateway.store.sqlite import SqliteStore


def test_store_probe_is_writable_after_a_write_and_goes_stale() -> None:
    clock = Clock()
    probe = StoreProbe(clock.seconds, lambda: succeed(None), max_age=20)
    assert probe.problem() == "store: no write committed yet"
    probe.beat()
    assert probe.problem() is None
    clock.advance(21)
    assert probe.problem() == "store: no write committed for 21s"
    probe.beat()
    assert probe.problem() is None


def test_a_failed_write_makes_the_store_unready_until_one_succeeds() -> None:
    clock = Clock()
    results: list[Deferred[None]] = [fail(OSError("disk I/O error")), succeed(None)]
    probe = StoreProbe(clock.seconds, lambda: results.pop(0))
    probe.beat()
    assert probe.problem() == "store write failed: disk I/O error"
    probe.beat()
    assert probe.problem() is None


def test_a_write_that_raises_at_once_counts_as_failed() -> None:
    def broken() -> Deferred[None]:
        raise RuntimeError("the store is not open")

    probe = StoreProbe(Clock().seconds, broken)
    probe.beat()
    assert probe.problem() == "store write failed: the store is not open"


def test_a_stuck_write_is_not_piled_on_and_goes_stale() -> None:
    clock = Clock()
    writes: list[Deferred[None]] = []

    def write() -> Deferred[None]:
        writes.append(Deferred())
        return writes[-1]

    probe = StoreProbe(clock.seconds, write, max_age=20)
    probe.beat()
    writes[0].callback(None)
    probe.beat()  # this one hangs (an fsync that never returns)
    for _ in range(10):
        clock.advance(5)
        probe.beat()
    assert len(writes) == 2
    assert probe.problem() == "store: no write committed for 50s"
    writes[1].callback(None)
    assert probe.problem() is None


def test_store_write_commits_a_row(tmp_path: Path) -> None:
    clock = Clock()
    clock.advance(1234.5)
    store = SqliteStore(clock, str(tmp_path / "s.sqlite"), synchronous="normal")
    store.open()
    try:
        done: list[object] = []
        store_write(store, clock.seconds)().addCallback(done.append)
        clock.advance(0)  # the group commit flushes at the end of the reactor turn
        assert done == [None]
    finally:
        store.close()
        clock.advance(1)
    row = sqlite3.connect(tmp_path / "s.sqlite").execute(
        "SELECT value FROM meta WHERE key = 'readiness_probe'"
    )
    assert row.fetchone() == ("1234.5",)


@dataclass
class _Link:
    link_up: bool


@dataclass
class _Port:
    connected: bool
    number: int

    def getHost(self) -> object:
        return type("Address", (), {"port": self.number})()


def _ready_store() -> StoreProbe:
    probe = StoreProbe(Clock().seconds, lambda: succeed(None))
    probe.beat()
    return probe


def test_connector_problems() -> None:
    clock = Clock()
    closed = CircuitBreaker(clock.seconds, failures=1, open_for=30)
    assert connector_problem(object(), closed) is None
    assert connector_problem(_Link(link_up=True), None) is None
    assert connector_problem(_Link(link_up=False), closed) == "link down"
    closed.failure()
    assert connector_problem(object(), closed) == "circuit breaker open"
    clock.advance(30)  # half-open: a probe may go
    assert connector_problem(object(), closed) is None


def test_ready_with_one_usable_connector_of_two() -> None:
    ok, reason = readiness(
        store=_ready_store(),
        ports=[_Port(True, 2775)],
        connectors={"link": _Link(link_up=False), "main": object()},
        breaker=lambda name: None,
    )
    assert (ok, reason) == (True, "ready")


def test_not_ready_reasons() -> None:
    clock = Clock()
    opened = CircuitBreaker(clock.seconds, failures=1)
    opened.failure()
    connectors = {"link": _Link(link_up=False), "main": object()}
    assert readiness(
        store=_ready_store(),
        ports=[],
        connectors=connectors,
        breaker=lambda name: opened if name == "main" else None,
    ) == (False, "no usable connector (link: link down; main: circuit breaker open)")
    assert readiness(
        store=_ready_store(),
        ports=[_Port(True, 8080), _Port(False, 2775)],
        connectors=connectors,
        breaker=lambda name: None,
    ) == (False, "listener not listening: 2775")
    assert readiness(
        store=StoreProbe(clock.seconds, lambda: succeed(None)),
        ports=[],
        connectors=connectors,
        breaker=lambda name: None,
    ) == (False, "store: no write committed yet")
