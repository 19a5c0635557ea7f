"""Which connector takes a message.

Sans-IO: nothing here touches the reactor. Time comes from the `clock` callable
the caller passes in, so tests drive the breakers with a fake clock.

MT: `[[routes]]` are tried in config order; the first whose accounts and
destination prefixes match names a connector, else the account's own connector
does. Each connector has a circuit breaker: a connector that keeps failing, or
reports its link down, is skipped for the route's fallback while the fallback
can take the message; when neither can, the message stays with the primary and
waits for it, because failing over to a connector that is also down gains
nothing and loses the route's intent.

Which account an incoming (MO) message belongs to is gateway.intake.mo's business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from gateway.records import record

if TYPE_CHECKING:
    from gateway.config import Config

BreakerState = Literal["closed", "open", "half_open"]
BREAKER_STATES: Final[tuple[BreakerState, ...]] = ("closed", "open", "half_open")

# Up to this many digits without '+' is a short code (DESIGN 4: "digits <= 8 long").
SHORT_CODE_MAX: Final = 8
# E.164: at most 15 digits with the country code.
NUMBER_MAX: Final = 15


def route_prefix(prefix: str) -> str:
    """A destination prefix as routes match it: "+" and digits ("47" -> "+47")."""
    digits = prefix[1:] if prefix.startswith("+") else prefix
    if not digits.isdigit() or not digits.isascii() or len(digits) > NUMBER_MAX:
        raise ValueError(f"a prefix is '+' and 1-{NUMBER_MAX} digits, not {prefix!r}")
    return "+" + digits


# --- MT routes --------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Messages of `accounts` (empty: every account) to `prefixes` (empty: every
    destination) go to `connector`, or to `fallback` while it cannot take them.

    Prefixes are normalised to "+digits" and kept longest first, duplicates dropped.
    """

    accounts: frozenset[str]
    prefixes: tuple[str, ...]
    connector: str
    fallback: str | None = None

    def __post_init__(self) -> None:
        prefixes = sorted({route_prefix(p) for p in self.prefixes}, key=lambda p: (-len(p), p))
        object.__setattr__(self, "accounts", frozenset(self.accounts))
        object.__setattr__(self, "prefixes", tuple(prefixes))
        if self.fallback == self.connector:
            raise ValueError("a route's fallback must differ from its connector")

    def prefix_for(self, destination: str) -> str | None:
        """The longest of the route's prefixes `destination` starts with; "" when
        the route takes every destination; None when it takes none of this one."""
        if not self.prefixes:
            return ""
        number = _plus(destination)
        for prefix in self.prefixes:
            if number.startswith(prefix):
                return prefix
        return None

    def matches(self, account: str, destination: str) -> bool:
        if self.accounts and account not in self.accounts:
            return False
        return self.prefix_for(destination) is not None


def _plus(destination: str) -> str:
    # Destinations reach the router normalised (mapping.resolve_destination);
    # one without its '+' is read the same way a prefix without one is.
    return destination if destination.startswith("+") else "+" + destination


# --- circuit breaker -------------------------------------------------------------


class CircuitBreaker:
    """closed -> open after `failures` consecutive failures; open for `open_for`
    seconds; then half-open, letting `probes` attempts through: a success closes
    it, a failure opens it again.

    `force_down()` holds it open without waiting for failures (an SMPP link
    that is not bound); `up()` ends that and closes it, the link being new.
    A probe that never reports back is given up after `open_for`, so a lost
    answer cannot keep the breaker half-open and shut for good.
    """

    __slots__ = (
        "_clock",
        "_down",
        "_failed",
        "_opened_at",
        "_probe_at",
        "_probing",
        "failures",
        "open_for",
        "probes",
    )

    def __init__(
        self,
        clock: Callable[[], float],
        failures: int = 5,
        open_for: float = 30.0,
        probes: int = 1,
    ) -> None:
        if failures < 1 or probes < 1 or not open_for >= 0:
            raise ValueError("need failures >= 1, probes >= 1 and open_for >= 0")
        self._clock = clock
        self.failures = failures
        self.open_for = open_for
        self.probes = probes
        self._failed = 0  # consecutive failures while closed
        self._opened_at: float | None = None  # None: closed
        self._probing = 0  # probes let through since the breaker became half-open
        self._probe_at = 0.0
        self._down = False

    @property
    def state(self) -> BreakerState:
        if self._down:
            return "open"
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.open_for:
            return "open"
        return "half_open"

    @property
    def forced_down(self) -> bool:
        return self._down

    def _probe_free(self) -> bool:
        if self._probing < self.probes:
            return True
        if self._clock() - self._probe_at >= self.open_for:
            self._probing = 0  # the probes never reported: let new ones through
            return True
        return False

    @property
    def usable(self) -> bool:
        """Whether `allow()` would let an attempt through now (without taking it)."""
        state = self.state
        return state == "closed" or (state == "half_open" and self._probe_free())

    def allow(self) -> bool:
        """Take one attempt: always in closed, one of the probes in half-open."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and self._probe_free():
            self._probing += 1
            self._probe_at = self._clock()
            return True
        return False

    def success(self) -> None:
        state = self.state
        if state == "closed":
            self._failed = 0
        elif state == "half_open":
            self._close()
        # While open (or forced down), a late answer to an attempt made before
        # it opened says nothing about now: ignored.

    def failure(self) -> None:
        state = self.state
        if state == "closed":
            self._failed += 1
            if self._failed >= self.failures:
                self._open()
        elif state == "half_open":
            self._open()

    def force_down(self) -> None:
        self._down = True

    def up(self) -> None:
        if self._down:
            self._down = False
            self._close()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probing = 0

    def _close(self) -> None:
        self._opened_at = None
        self._failed = 0
        self._probing = 0

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state!r}, failed={self._failed})"


# --- router ----------------------------------------------------------------------


@record
class Choice:
    """Where one message goes.

    `allowed` is False when neither the route's connector nor its fallback can
    take the message now: it stays with `connector` and waits for it.
    """

    connector: str
    route_index: int | None  # None: no route matched; the account's own connector
    failed_over: bool
    allowed: bool = True


class Router:
    """account/destination -> connector, with failover on the connectors' breakers.

    `choose` takes an attempt from the breaker of the connector it returns (a
    probe while half-open), so call it when about to send, and report how the
    attempt went with `record`: once per request to the connector, not per
    message in a batch. A connector without a breaker is always usable.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        default: Mapping[str, str],
        breakers: Mapping[str, CircuitBreaker],
    ) -> None:
        self.routes = tuple(routes)
        self._default = dict(default)
        self._breakers = dict(breakers)

    @classmethod
    def from_config(cls, config: Config, clock: Callable[[], float]) -> Router:
        breakers = {
            name: CircuitBreaker(
                clock,
                failures=c.breaker.failures,
                open_for=c.breaker.open_for,
                probes=c.breaker.probes,
            )
            for name, c in config.connectors.items()
        }
        default = {name: account.connector for name, account in config.accounts.items()}
        return cls(config.routes, default, breakers)

    def reconfigure(self, config: Config) -> None:
        """The routes and accounts of `config`, keeping the breakers (and what they
        learned): a reload does not forget that a connector is down."""
        self.routes = tuple(config.routes)
        self._default = {name: account.connector for name, account in config.accounts.items()}

    @property
    def connectors(self) -> frozenset[str]:
        """Every connector `choose` may return."""
        names = set(self._default.values())
        for route in self.routes:
            names.add(route.connector)
            if route.fallback is not None:
                names.add(route.fallback)
        return frozenset(names)

    def breaker(self, connector: str) -> CircuitBreaker | None:
        return self._breakers.get(connector)

    def route_for(self, account: str, destination: str) -> tuple[int | None, str, str | None]:
        """(route index, connector, fallback) by configuration alone, breakers aside.

        Raises KeyError for an account no route takes and without a connector.
        """
        for index, route in enumerate(self.routes):
            if route.matches(account, destination):
                return index, route.connector, route.fallback
        return None, self._default[account], None

    def _allow(self, connector: str) -> bool:
        breaker = self._breakers.get(connector)
        return breaker is None or breaker.allow()

    def _usable(self, connector: str) -> bool:
        breaker = self._breakers.get(connector)
        return breaker is None or breaker.usable

    def choose(self, account: str, destination: str) -> Choice:
        """Where a message goes now, taking an attempt from that connector's breaker."""
        return self._choice(account, destination, self._allow)

    def place(self, account: str, destination: str) -> Choice:
        """Where a message should wait now, by the same rule as `choose` but taking
        no attempt: for a message accepted, or moved off a connector that is down."""
        return self._choice(account, destination, self._usable)

    def _choice(self, account: str, destination: str, ok: Callable[[str], bool]) -> Choice:
        index, primary, fallback = self.route_for(account, destination)
        if ok(primary):
            return Choice(primary, index, failed_over=False)
        if fallback is not None and ok(fallback):
            return Choice(fallback, index, failed_over=True)
        return Choice(primary, index, failed_over=False, allowed=False)

    def record(self, connector: str, ok: bool) -> None:
        breaker = self._breakers.get(connector)
        if breaker is None:
            return
        if ok:
            breaker.success()
        else:
            breaker.failure()
