"""gateway.mt.router: routes, circuit breakers, failover and MO ownership (sans-IO)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import config
from gateway.mt.router import (
    BREAKER_STATES,
    Choice,
    CircuitBreaker,
    Route,
    Router,
    route_prefix,
)
from gateway.passwords import hash_password
from tests.support.doubles import FakeClock

# --- prefixes ----------------------------------------------------------


@pytest.mark.parametrize(("given", "want"), [("47", "+47"), ("+47", "+47"), ("4790", "+4790")])
def test_route_prefix_normalises(given: str, want: str) -> None:
    assert route_prefix(given) == want


@pytest.mark.parametrize("bad", ["", "+", "++47", "47a", "0047 ", "+4-7", "٤٧", "1" * 16])
def test_route_prefix_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        route_prefix(bad)


# --- Route ------------------------------------------------------------------------


def test_route_prefixes_are_normalised_longest_first_without_duplicates() -> None:
    route = Route(frozenset(), ("47", "+4790", "+47", "46"), "link")
    assert route.prefixes == ("+4790", "+46", "+47")
    assert route.prefix_for("+4790001234") == "+4790"
    assert route.prefix_for("+4791001234") == "+47"
    assert route.prefix_for("4791001234") == "+47"  # the '+' is implied
    assert route.prefix_for("+4590001234") is None


def test_route_without_prefixes_takes_every_destination() -> None:
    route = Route(frozenset({"shop1"}), (), "link")
    assert route.prefix_for("+1555") == ""
    assert route.matches("shop1", "+1555")
    assert not route.matches("shop2", "+1555")


def test_route_without_accounts_takes_every_account() -> None:
    route = Route(frozenset(), ("+47",), "link")
    assert route.matches("anyone", "+4790001234")
    assert not route.matches("anyone", "+4690001234")


def test_route_refuses_itself_as_fallback_and_bad_prefixes() -> None:
    with pytest.raises(ValueError):
        Route(frozenset(), (), "link", "link")
    with pytest.raises(ValueError):
        Route(frozenset(), ("+47x",), "link")


# --- CircuitBreaker ----------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_only() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failures=3, open_for=10.0)
    for _ in range(2):
        breaker.failure()
    breaker.success()  # resets the count: failures must be consecutive
    for _ in range(2):
        breaker.failure()
    assert breaker.state == "closed" and breaker.usable and breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    assert not breaker.usable and not breaker.allow()


def test_breaker_half_opens_after_open_for_and_a_probe_success_closes_it() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failures=1, open_for=10.0, probes=2)
    breaker.failure()
    clock.now += 9.999
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 0.001
    assert breaker.state == "half_open" and breaker.usable
    assert breaker.allow() and breaker.allow()
    assert not breaker.allow() and not breaker.usable  # both probes are out
    breaker.success()
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(10))


def test_breaker_probe_failure_reopens_for_open_for_again() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failures=2, open_for=5.0)
    breaker.failure()
    breaker.failure()
    clock.now += 5.0
    assert breaker.allow()
    clock.now += 3.0
    breaker.failure()
    assert breaker.state == "open"
    clock.now += 4.999
    assert breaker.state == "open"
    clock.now += 0.001
    assert breaker.state == "half_open"


def test_breaker_frees_a_probe_that_never_reports() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failures=1, open_for=5.0)
    breaker.failure()
    clock.now += 5.0
    assert breaker.allow()
    clock.now += 4.0
    assert not breaker.usable
    clock.now += 1.0
    assert breaker.usable and breaker.allow()
    assert not breaker.allow()


def test_breaker_ignores_late_answers_while_open() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failures=1, open_for=5.0)
    breaker.failure()
    breaker.success()
    assert breaker.state == "open"
    clock.now += 4.0
    breaker.failure()  # does not push the end of the open period back
    clock.now += 1.0
    assert breaker.state == "half_open"


def test_breaker_forced_down_until_up() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failures=3, open_for=1.0)
    breaker.failure()
    breaker.force_down()
    assert breaker.forced_down
    clock.now += 3600
    assert breaker.state == "open" and not breaker.usable and not breaker.allow()
    breaker.success()
    assert breaker.state == "open"
    breaker.up()
    assert breaker.state == "closed" and not breaker.forced_down
    # The failure before the link went down is forgotten: a new link, a new count.
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed"


def test_up_does_not_close_a_breaker_opened_by_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failures=1, open_for=10.0)
    breaker.failure()
    breaker.up()
    assert breaker.state == "open"


@pytest.mark.parametrize(
    "kwargs", [{"failures": 0}, {"probes": 0}, {"open_for": -1.0}, {"open_for": float("nan")}]
)
def test_breaker_refuses_bad_parameters(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(FakeClock(), **kwargs)


_events = st.lists(
    st.one_of(
        st.sampled_from(["allow", "success", "failure", "force_down", "up", "usable"]),
        st.floats(0.0, 20.0),  # time passes
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(_events, st.integers(1, 4), st.floats(0.0, 15.0), st.integers(1, 3))
def test_breaker_is_always_in_a_defined_state(
    events: list[str | float], failures: int, open_for: float, probes: int
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failures=failures, open_for=open_for, probes=probes)
    failed_in_a_row = 0
    for event in events:
        before = breaker.state
        if isinstance(event, float):
            clock.now += event
        elif event == "allow":
            usable = breaker.usable
            assert breaker.allow() == usable
        elif event == "success":
            breaker.success()
            failed_in_a_row = 0
            if before == "half_open":
                assert breaker.state == "closed"
        elif event == "failure":
            breaker.failure()
            failed_in_a_row = failed_in_a_row + 1 if before == "closed" else 0
            if before == "half_open" or (before == "closed" and failed_in_a_row >= failures):
                # Open again (a zero open_for makes that half-open at once).
                assert breaker.state == ("open" if open_for else "half_open")
                failed_in_a_row = 0
        elif event == "force_down":
            breaker.force_down()
        elif event == "up":
            if breaker.forced_down:
                failed_in_a_row = 0  # a new link starts a new count
            breaker.up()
        else:
            breaker.usable  # noqa: B018 - a query must not change the state
        state = breaker.state
        assert state in BREAKER_STATES
        if breaker.forced_down:
            assert state == "open"
        if state == "closed":
            assert breaker.usable
        if state == "open":
            assert not breaker.usable and not breaker.allow()
        if event == "usable":
            assert state == before


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3), st.integers(0, 5))
def test_half_open_lets_through_exactly_the_probes(probes: int, extra: int) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failures=1, open_for=1.0, probes=probes)
    breaker.failure()
    clock.now += 1.0
    allowed = [breaker.allow() for _ in range(probes + extra)]
    assert allowed == [True] * probes + [False] * extra


# --- Router -----------------------------------------------------------------------


def _router(clock: FakeClock) -> Router:
    routes = [
        Route(frozenset({"shop1"}), ("+4790",), "link_smpp", "common"),
        Route(frozenset(), ("+47",), "common", "link_smpp"),
        Route(frozenset({"shop2"}), (), "sim"),
    ]
    breakers = {
        name: CircuitBreaker(clock, failures=2, open_for=30.0)
        for name in ("common", "link_smpp", "sim", "other")
    }
    return Router(routes, {"shop1": "other", "shop2": "other", "shop3": "other"}, breakers)


def test_routes_in_config_order_then_the_accounts_own() -> None:
    router = _router(FakeClock())
    assert router.choose("shop1", "+4790001234") == Choice("link_smpp", 0, False)
    assert router.choose("shop1", "+4791001234") == Choice("common", 1, False)
    assert router.choose("shop3", "+4790001234") == Choice("common", 1, False)
    assert router.choose("shop2", "+4690001234") == Choice("sim", 2, False)
    assert router.choose("shop1", "+4690001234") == Choice("other", None, False)
    assert router.route_for("shop1", "4790001234") == (0, "link_smpp", "common")
    assert router.connectors == frozenset({"common", "link_smpp", "sim", "other"})


def test_unknown_account_without_route_is_a_key_error() -> None:
    router = _router(FakeClock())
    assert router.choose("stranger", "+4712345678").connector == "common"
    with pytest.raises(KeyError):
        router.choose("stranger", "+4612345678")


def test_failover_and_back() -> None:
    clock = FakeClock()
    router = _router(clock)
    link = router.breaker("link_smpp")
    assert link is not None
    router.record("link_smpp", False)
    assert router.choose("shop1", "+4790001234").connector == "link_smpp"
    router.record("link_smpp", False)
    assert link.state == "open"
    assert router.choose("shop1", "+4790001234") == Choice("common", 0, True)
    clock.now += 30.0
    # Half-open: the first message is the probe, the rest fail over while it is out.
    assert router.choose("shop1", "+4790001234") == Choice("link_smpp", 0, False)
    assert router.choose("shop1", "+4790001234") == Choice("common", 0, True)
    router.record("link_smpp", True)
    assert link.state == "closed"
    assert router.choose("shop1", "+4790001234") == Choice("link_smpp", 0, False)


def test_link_down_fails_over_at_once() -> None:
    router = _router(FakeClock())
    link = router.breaker("link_smpp")
    assert link is not None
    link.force_down()
    assert router.choose("shop1", "+4790001234") == Choice("common", 0, True)
    link.up()
    assert router.choose("shop1", "+4790001234") == Choice("link_smpp", 0, False)


def test_neither_usable_stays_with_the_primary() -> None:
    router = _router(FakeClock())
    for name in ("link_smpp", "common"):
        breaker = router.breaker(name)
        assert breaker is not None
        breaker.force_down()
    assert router.choose("shop1", "+4790001234") == Choice("link_smpp", 0, False, allowed=False)
    assert router.choose("shop1", "+4791001234") == Choice("common", 1, False, allowed=False)
    # No fallback: the primary, waiting.
    sim = router.breaker("sim")
    assert sim is not None
    sim.force_down()
    assert router.choose("shop2", "+4612345678") == Choice("sim", 2, False, allowed=False)


def test_connector_without_breaker_is_always_usable() -> None:
    router = Router([Route(frozenset(), (), "a", "b")], {}, {})
    for _ in range(10):
        router.record("a", False)
    assert router.choose("x", "+1") == Choice("a", 0, False)
    assert router.breaker("a") is None


HASH = hash_password("secret", salt=b"0123456789abcdef")


def test_router_from_config() -> None:
    cfg = config.parse(
        {
            "connectors": {
                "sim": {"type": "simulator", "breaker": {"failures": 1, "open_for": "1m"}},
                "sim2": {"type": "simulator"},
            },
            "accounts": [
                {"system_id": "a", "password": HASH, "connector": "sim", "mo_numbers": ["2233"]},
                {"system_id": "b", "password": HASH, "connector": "sim2"},
            ],
            "routes": [
                {"accounts": ["b"], "prefixes": ["47"], "connector": "sim", "fallback": "sim2"}
            ],
            "mo": {"default_account": "b"},
        }
    )
    clock = FakeClock()
    router = Router.from_config(cfg, clock)
    assert router.choose("b", "+4712345678") == Choice("sim", 0, False)
    assert router.choose("a", "+4712345678") == Choice("sim", None, False)
    router.record("sim", False)
    assert router.choose("b", "+4712345678") == Choice("sim2", 0, True)
    clock.now += 60
    assert router.choose("b", "+4712345678") == Choice("sim", 0, False)


_connectors = st.sampled_from(["c1", "c2", "c3", "c4"])
_accounts = st.sampled_from(["a1", "a2", "a3"])
_routes = (
    st.tuples(
        st.frozensets(_accounts, max_size=2),
        st.lists(st.text("0123456789", min_size=1, max_size=4), max_size=3).map(tuple),
        _connectors,
        st.none() | _connectors,
    )
    .filter(lambda t: t[3] != t[2])
    .map(lambda t: Route(*t))
)
_happenings = st.lists(
    st.tuples(_connectors, st.sampled_from(["ok", "fail", "down", "up", "wait"])), max_size=30
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_routes, max_size=4),
    st.dictionaries(_accounts, _connectors, min_size=3),
    _happenings,
    st.lists(st.tuples(_accounts, st.text("0123456789", min_size=1, max_size=8)), max_size=10),
)
def test_choose_always_returns_a_configured_connector(
    routes: list[Route],
    default: dict[str, str],
    happenings: list[tuple[str, str]],
    messages: list[tuple[str, str]],
) -> None:
    clock = FakeClock()
    breakers = {
        c: CircuitBreaker(clock, failures=2, open_for=3.0) for c in ["c1", "c2", "c3", "c4"]
    }
    router = Router(routes, default, breakers)
    configured = set(default.values()) | {r.connector for r in routes}
    configured |= {r.fallback for r in routes if r.fallback}
    assert router.connectors == configured
    for connector, what in happenings:
        if what in ("ok", "fail"):
            router.record(connector, what == "ok")
        elif what == "down":
            breakers[connector].force_down()
        elif what == "up":
            breakers[connector].up()
        else:
            clock.now += 1.0
        for account, digits in messages:
            destination = "+" + digits
            choice = router.choose(account, destination)
            assert choice.connector in configured
            matching = [i for i, r in enumerate(routes) if r.matches(account, destination)]
            if matching:
                route = routes[matching[0]]
                assert choice.route_index == matching[0]
                want = route.fallback if choice.failed_over else route.connector
                assert choice.connector == want
            else:
                assert choice == Choice(default[account], None, False, choice.allowed)
            if choice.failed_over:
                assert choice.allowed
            if not choice.allowed:
                assert not choice.failed_over
