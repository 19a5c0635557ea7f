"""Failed-bind lockout (gateway.transport.server): counted per address, on a fake clock.

The connection is driven through EsmeConnection._bind with a stand-in link and
gateway, and the password check (a thread in the daemon) made a Deferred the
test fires, so the lockout racing a check already running can be tested too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from gateway.config import parse
from gateway.metrics import Metrics
from gateway.passwords import hash_password
from gateway.smpp import pdu as p
from gateway.smpp.session import BindState
from gateway.transport import server as server_module
from gateway.transport.server import EsmeConnection, SmppServer

S = p.CommandStatus
PASSWORD = "right-pw"
HASH = hash_password(PASSWORD, salt=b"0123456789abcdef")
HOST = "192.0.2.10"


class Link:
    """What EsmeConnection uses of SmppProtocol."""

    def __init__(self, host: str) -> None:
        self.peer_host = host
        self.session = SimpleNamespace(state=BindState.OPEN, interface_version=0x34)
        self.answers: list[p.Pdu] = []

    def respond(self, request: p.Pdu, response: p.Pdu) -> None:
        self.answers.append(response)

    def close(self) -> None:
        self.session.state = BindState.CLOSED


class Stack:
    def __init__(self, **smpp: Any) -> None:
        self.clock = Clock()
        tree = {
            "smpp": {"failed_bind_delay": 0, **smpp},
            "connectors": {"sim": {"type": "simulator"}},
            "accounts": [{"system_id": "shop", "password": HASH, "connector": "sim"}],
        }
        self.metrics = Metrics()
        gateway = SimpleNamespace(
            config=parse(tree),
            metrics=self.metrics,
            bound=lambda name: None,
            unbound=lambda name: None,
            bind_allowed=lambda account: True,
            deliverer=SimpleNamespace(attach=lambda *a: None, detach=lambda *a: None),
        )
        self.server = SmppServer(self.clock, gateway)  # type: ignore[arg-type]

    def bind(self, password: str, host: str = HOST, system_id: str = "shop") -> int:
        """Bind on a new connection; the status answered."""
        link = Link(host)
        connection = EsmeConnection(link, self.server)  # type: ignore[arg-type]
        connection.event(
            SimpleNamespace(  # type: ignore[arg-type]
                pdu=p.BindTransceiver(system_id=system_id, password=password)
            )
        )
        self.clock.advance(0)
        (answer,) = link.answers
        return int(answer.status)

    def failures(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "smppgw_bind_failures_total", {"reason": reason}
        )
        return value or 0.0


@pytest.fixture(autouse=True)
def checks_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Password checks answered at once instead of in a thread."""

    def inline(fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return succeed(fn(*args))

    monkeypatch.setattr(server_module, "deferToThread", inline)
    # The stand-in event is a Request only by duck type.
    monkeypatch.setattr(server_module, "Request", SimpleNamespace)


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capturedLogs() as events:
        yield events  # type: ignore[misc]


def text_of(events: list[dict[str, Any]]) -> list[str]:
    from twisted.logger import formatEvent

    return [formatEvent(event) for event in events]


def test_the_tenth_failure_within_the_window_locks_the_address_out(
    logs: list[dict[str, Any]],
) -> None:
    stack = Stack()
    for attempt in range(9):
        assert stack.bind(f"guess-{attempt}") == S.ESME_RINVPASWD
        stack.clock.advance(10)
    assert stack.bind("guess-9") == S.ESME_RINVPASWD
    # Locked: the right password gets ESME_RBINDFAIL, unchecked, as does any system_id.
    assert stack.bind(PASSWORD) == S.ESME_RBINDFAIL
    assert stack.bind("x", system_id="nobody") == S.ESME_RBINDFAIL
    assert stack.failures("locked_out") == 2
    assert stack.failures("bad_password") == 10
    lines = [line for line in text_of(logs) if "locking out" in line]
    assert lines == [
        "locking out 192.0.2.10 for 900 s: 10 failed binds within 300 s"
        " (the last for system_id 'shop')"
    ]
    assert not any("guess-" in line or PASSWORD in line for line in text_of(logs))


def test_other_addresses_are_not_locked_out() -> None:
    stack = Stack(lockout_failures=3)
    for _ in range(3):
        stack.bind("wrong")
    assert stack.bind(PASSWORD) == S.ESME_RBINDFAIL
    assert stack.bind(PASSWORD, host="192.0.2.11") == S.ESME_ROK


def test_the_lockout_ends_after_lockout_time_with_a_clean_slate() -> None:
    stack = Stack(lockout_failures=3, lockout_time=60)
    for _ in range(3):
        stack.bind("wrong")
    stack.clock.advance(59)
    assert stack.bind(PASSWORD) == S.ESME_RBINDFAIL
    stack.clock.advance(1)
    # Refusals during the lockout did not lengthen it, and one new failure
    # after it does not lock again.
    assert stack.bind("wrong") == S.ESME_RINVPASWD
    assert stack.bind(PASSWORD) == S.ESME_ROK


def test_failures_spread_wider_than_the_window_do_not_lock() -> None:
    stack = Stack(lockout_failures=3, lockout_window=60)
    for _ in range(10):
        assert stack.bind("wrong") == S.ESME_RINVPASWD
        stack.clock.advance(31)
    assert stack.failures("locked_out") == 0


def test_unknown_system_ids_and_disallowed_addresses_count_too() -> None:
    stack = Stack(lockout_failures=2)
    assert stack.bind("x", system_id="nobody") == S.ESME_RINVSYSID
    assert stack.bind("x", system_id="other") == S.ESME_RINVSYSID
    assert stack.bind(PASSWORD) == S.ESME_RBINDFAIL
    assert stack.failures("locked_out") == 1


def test_a_successful_bind_clears_the_count_when_not_locked() -> None:
    stack = Stack(lockout_failures=3)
    stack.bind("wrong")
    stack.bind("wrong")
    assert stack.bind(PASSWORD) == S.ESME_ROK
    stack.bind("wrong")
    stack.bind("wrong")
    assert stack.bind(PASSWORD) == S.ESME_ROK


def test_a_check_running_when_the_lockout_starts_is_answered_locked_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = Stack(lockout_failures=2)
    pending: list[tuple[Deferred[bool], str]] = []

    def later(fn: Callable[..., bool], password: str, hashed: str) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        pending.append((d, password))
        return d

    monkeypatch.setattr(server_module, "deferToThread", later)
    links = []
    for password in ("wrong-1", "wrong-2", PASSWORD):
        link = Link(HOST)
        connection = EsmeConnection(link, stack.server)  # type: ignore[arg-type]
        connection.event(
            SimpleNamespace(pdu=p.BindTransceiver(system_id="shop", password=password))  # type: ignore[arg-type]
        )
        links.append(link)
    # Three checks in parallel from one address; two fail and lock it out.
    for d, password in pending:
        d.callback(password == PASSWORD)
    stack.clock.advance(0)
    statuses = [int(link.answers[0].status) for link in links]
    assert statuses == [S.ESME_RINVPASWD, S.ESME_RINVPASWD, S.ESME_RBINDFAIL]
    # And the address is still locked: the right password did not clear it.
    monkeypatch.setattr(server_module, "deferToThread", lambda fn, *a: succeed(fn(*a)))
    assert stack.bind(PASSWORD) == S.ESME_RBINDFAIL


def test_lockout_failures_zero_turns_it_off() -> None:
    stack = Stack(lockout_failures=0)
    for _ in range(12):  # more than the default 10
        assert stack.bind("wrong") == S.ESME_RINVPASWD
    assert stack.bind(PASSWORD) == S.ESME_ROK


def test_locked_out_binds_still_get_the_growing_delay() -> None:
    stack = Stack(lockout_failures=2, failed_bind_delay=1)
    stack.server.bind_failed(HOST, "bad_password", "shop")
    stack.server.bind_failed(HOST, "bad_password", "shop")
    link = Link(HOST)
    connection = EsmeConnection(link, stack.server)  # type: ignore[arg-type]
    connection.event(SimpleNamespace(pdu=p.BindTransceiver(system_id="shop", password=PASSWORD)))  # type: ignore[arg-type]
    stack.clock.advance(1.9)
    assert link.answers == []
    stack.clock.advance(0.1)
    assert link.answers[0].status == S.ESME_RBINDFAIL


def test_memory_stays_bounded_under_a_scan() -> None:
    stack = Stack(lockout_failures=3)
    limit = server_module._MAX_REMEMBERED_HOSTS
    locked = "198.51.100.1"
    for _ in range(3):
        stack.server.bind_failed(locked, "bad_password", "shop")
    # More addresses than remembered, all within the window: nothing is quiet yet.
    for n in range(limit + 50):
        stack.server.bind_failed(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", "bad_password")
    assert len(stack.server._recent) <= limit
    assert stack.server.locked_out(locked)  # a lockout is not forgotten to make room
