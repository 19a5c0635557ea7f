"""Binds (gateway.transport.server): lockout per address, bounded and shared
password checks, uniform refusals; on a fake clock.

The connection is driven through EsmeConnection._bind with a stand-in link and
gateway, and the password check (a thread in the daemon) runs inline, or as a
Deferred the test fires, so checks racing each other and the lockout can be
tested too.
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


def inline(fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
    return succeed(fn(*args))


class Stack:
    def __init__(self, account: dict[str, Any] | None = None, **smpp: Any) -> None:
        self.clock = Clock()
        # Where password checks run: inline unless a test holds them back.
        self.runner: Callable[..., Deferred[bool]] = inline
        self.scrypts = 0
        tree = {
            "smpp": {"failed_bind_delay": 0, **smpp},
            "connectors": {"sim": {"type": "simulator"}},
            "accounts": [
                {"system_id": "shop", "password": HASH, "connector": "sim", **(account or {})}
            ],
        }
        self.metrics = Metrics()
        # Binds only: nothing is ever submitted or delivered.
        admission = SimpleNamespace(metrics=self.metrics)
        deliverer = SimpleNamespace(attach=lambda *a: None, detach=lambda *a: None)
        self.server = SmppServer(
            self.clock,
            parse(tree),
            admission,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            deliverer,  # type: ignore[arg-type]
            run_check=self._run,
        )

    def _run(self, fn: Callable[..., bool], *args: Any) -> Deferred[bool]:
        self.scrypts += 1
        return self.runner(fn, *args)

    def start_bind(self, password: str, host: str = HOST, system_id: str = "shop") -> Link:
        link = Link(host)
        connection = EsmeConnection(link, self.server)  # type: ignore[arg-type]
        connection.event(
            SimpleNamespace(  # type: ignore[arg-type]
                pdu=p.BindTransceiver(system_id=system_id, password=password)
            )
        )
        return link

    def bind(self, password: str, host: str = HOST, system_id: str = "shop") -> int:
        """Bind on a new connection; the status answered."""
        link = self.start_bind(password, host, system_id)
        self.clock.advance(0)
        (answer,) = link.answers
        return int(answer.status)

    def failures(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "smppgw_bind_failures_total", {"reason": reason}
        )
        return value or 0.0


@pytest.fixture(autouse=True)
def duck_typed_requests(monkeypatch: pytest.MonkeyPatch) -> None:
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


@pytest.mark.parametrize(
    ("mode", "status"),
    [("uniform", S.ESME_RINVPASWD), ("distinct", S.ESME_RINVSYSID)],
)
def test_unknown_system_ids_count_too(mode: str, status: int) -> None:
    stack = Stack(lockout_failures=2, bind_failure_status=mode)
    assert stack.bind("x", system_id="nobody") == status
    assert stack.bind("x", system_id="other") == status
    assert stack.bind(PASSWORD) == S.ESME_RBINDFAIL
    assert stack.failures("locked_out") == 1
    assert stack.failures("unknown_system_id") == 2


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
    pending: list[tuple[Deferred[bool], bytes]] = []

    def later(fn: Callable[..., bool], password: bytes, hashed: str) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        pending.append((d, password))
        return d

    stack.runner = later
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
        d.callback(password == PASSWORD.encode())
    stack.clock.advance(0)
    statuses = [int(link.answers[0].status) for link in links]
    assert statuses == [S.ESME_RINVPASWD, S.ESME_RINVPASWD, S.ESME_RBINDFAIL]
    # And the address is still locked: the right password did not clear it.
    stack.runner = inline
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


# --- bind storms: bounded, shared and remembered checks -------------------------------


class Held:
    """A runner that keeps every check until the test answers it."""

    def __init__(self) -> None:
        self.checks: list[tuple[Deferred[bool], bytes]] = []

    def __call__(self, fn: Callable[..., bool], octets: bytes, stored: str) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        self.checks.append((d, octets))
        return d

    def answer_all(self) -> None:
        while self.checks:
            d, octets = self.checks.pop(0)
            d.callback(octets == PASSWORD.encode())


def status_of(link: Link) -> int:
    (answer,) = link.answers
    return int(answer.status)


def test_too_many_binds_does_not_count_towards_the_lockout() -> None:
    stack = Stack({"max_binds": 1}, lockout_failures=2)
    assert stack.bind(PASSWORD) == S.ESME_ROK
    for _ in range(5):
        assert stack.bind(PASSWORD) == S.ESME_RBINDFAIL
    assert stack.failures("too_many_binds") == 5
    assert stack.failures("locked_out") == 0
    stack.server.unbound("shop")  # the first session went away
    assert stack.bind(PASSWORD) == S.ESME_ROK


def test_checks_beyond_the_running_and_waiting_ones_are_refused_at_once() -> None:
    stack = Stack(bind_checks=1, bind_check_queue=2, lockout_failures=0)
    held = stack.runner = Held()
    links = [stack.start_bind(f"wrong-{n}") for n in range(5)]
    stack.clock.advance(0)
    # One runs, two wait; the other two are answered without a check.
    assert len(held.checks) == 1
    assert [status_of(link) for link in links[3:]] == [S.ESME_RBINDFAIL] * 2
    assert links[0].answers == links[1].answers == links[2].answers == []
    assert stack.failures("busy") == 2
    held.answer_all()
    stack.clock.advance(0)
    assert [status_of(link) for link in links[:3]] == [S.ESME_RINVPASWD] * 3
    assert stack.scrypts == 3


def test_busy_refusals_neither_delay_nor_lock_the_address() -> None:
    stack = Stack(bind_checks=1, bind_check_queue=0, lockout_failures=2, failed_bind_delay=1)
    held = stack.runner = Held()
    stack.start_bind("first")
    for _ in range(5):
        assert stack.bind("other") == S.ESME_RBINDFAIL  # answered at advance(0): no delay
    assert stack.failures("busy") == 5
    assert not stack.server.locked_out(HOST)
    held.answer_all()


def test_a_reconnect_storm_of_one_esme_costs_one_check() -> None:
    stack = Stack({"max_binds": 4})
    held = stack.runner = Held()
    links = [stack.start_bind(PASSWORD) for _ in range(100)]
    assert stack.scrypts == 1
    held.answer_all()
    stack.clock.advance(0)
    statuses = [status_of(link) for link in links]
    assert statuses.count(S.ESME_ROK) == 4
    assert statuses.count(S.ESME_RBINDFAIL) == 96
    assert stack.failures("too_many_binds") == 96
    assert not stack.server.locked_out(HOST)


def test_a_verified_password_is_remembered_per_address_for_bind_cache() -> None:
    stack = Stack({"max_binds": 100}, bind_cache=60)
    assert stack.bind(PASSWORD) == S.ESME_ROK
    assert stack.bind(PASSWORD) == S.ESME_ROK
    assert stack.scrypts == 1
    # Another address checks for itself; a wrong password is always checked.
    assert stack.bind(PASSWORD, host="192.0.2.99") == S.ESME_ROK
    assert stack.bind("wrong") == S.ESME_RINVPASWD
    assert stack.scrypts == 3
    stack.clock.advance(61)
    assert stack.bind(PASSWORD) == S.ESME_ROK
    assert stack.scrypts == 4


def test_bind_cache_zero_checks_every_bind() -> None:
    stack = Stack({"max_binds": 100}, bind_cache=0)
    for _ in range(3):
        assert stack.bind(PASSWORD) == S.ESME_ROK
    assert stack.scrypts == 3


def test_a_waiting_check_whose_client_left_runs_no_scrypt() -> None:
    stack = Stack(bind_checks=1)
    held = stack.runner = Held()
    stack.start_bind("wrong-1")
    gone = stack.start_bind("wrong-2")
    gone.close()
    held.answer_all()
    stack.clock.advance(0)
    assert stack.scrypts == 1
    assert gone.answers == []


def test_uniform_unknown_system_id_costs_a_check_and_answers_like_a_wrong_password() -> None:
    uniform = Stack()
    assert uniform.bind("x", system_id="nobody") == S.ESME_RINVPASWD
    assert uniform.bind("y", system_id="shop") == S.ESME_RINVPASWD
    assert uniform.scrypts == 2
    distinct = Stack(bind_failure_status="distinct")
    assert distinct.bind("x", system_id="nobody") == S.ESME_RINVSYSID
    assert distinct.scrypts == 0


def test_uniform_checks_the_password_before_the_address() -> None:
    account = {"allowed_networks": ["10.0.0.0/8"]}
    uniform = Stack(account)
    # Outside the networks: a guesser learns only that the password is wrong ...
    assert uniform.bind("wrong") == S.ESME_RINVPASWD
    # ... and the owner of the password learns why it is refused.
    assert uniform.bind(PASSWORD) == S.ESME_RBINDFAIL
    assert uniform.failures("address_not_allowed") == 1
    assert uniform.bind(PASSWORD, host="10.1.2.3") == S.ESME_ROK
    distinct = Stack(account, bind_failure_status="distinct")
    assert distinct.bind("wrong") == S.ESME_RBINDFAIL
    assert distinct.scrypts == 0


def test_repeated_bind_refusals_are_logged_once_a_minute_per_address(
    logs: list[dict[str, Any]],
) -> None:
    stack = Stack(lockout_failures=0)
    for _ in range(50):
        stack.bind("wrong")
    stack.clock.advance(61)
    stack.bind("wrong")
    lines = [line for line in text_of(logs) if "refused bind" in line]
    assert len(lines) == 2
    assert "(0 more" in lines[0]
    assert "(49 more" in lines[1]
