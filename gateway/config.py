"""The TOML configuration: parsed once, validated whole, frozen.

Every key is checked at start; a problem raises `ConfigError` naming the file,
the key (as a dotted path such as `accounts[1].rate`) and what is wrong, so the
daemon refuses to start instead of failing on the first message. Secrets never
live in the parsed tree as given: `x_env` and `x_file` keys are resolved here
and the result kept only in the frozen dataclasses.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway import tls
from gateway.addresses import claimed_number
from gateway.connectors.common.results import RESULT_CODES, merge_result_codes
from gateway.connectors.common.settings import CommonSettings
from gateway.connectors.linksmpp.settings import BIND_MODES, LinkSmppSettings
from gateway.http import sources
from gateway.intake.mo import MoRouter, claimed_keyword
from gateway.mt.router import Route, route_prefix
from gateway.mt.submission import AccountPolicy
from gateway.mt.vendor import (
    VENDOR_TAGS,
    VendorTlv,
    default_vendor_type,
    premium_problem,
    vendor_field_problem,
    vendor_type_problem,
)
from gateway.passwords import is_password_hash
from gateway.records import Outcome


class ConfigError(Exception):
    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class SmppSettings:
    listen: tuple[str, ...] = ("tcp:2775",)
    system_id: str = "smppgw"
    window: int = 100
    bind_timeout: float = 10.0
    inactivity_timeout: float = 300.0
    enquire_link_interval: float = 30.0
    response_timeout: float = 30.0
    receipt_window: int = 10
    max_pdu_length: int = 16384
    failed_bind_delay: float = 1.0
    # "wait": stop reading a session at its window (TCP backpressure);
    # "throttle": answer requests beyond it with ESME_RTHROTTLED.
    window_overrun: str = "wait"
    max_destinations: int = 254
    # SIGTERM: how long requests already taken (ESMEs' and ours to LINK) may take to finish.
    shutdown_timeout: float = 10.0
    # SMPP over TLS (gateway.tls): listeners, PEM files, protocol floor, 1.2 suites.
    tls_listen: tuple[str, ...] = ()
    tls_certificate: str = ""
    tls_private_key: str = ""
    tls_min_version: str = "1.2"
    tls_ciphers: tuple[str, ...] = tls.DEFAULT_CIPHERS
    # After lockout_failures failed binds from one address within lockout_window,
    # its binds are refused unchecked for lockout_time; 0 failures: no lockout.
    lockout_failures: int = 10
    lockout_window: float = 300.0
    lockout_time: float = 900.0
    # A PDU must be complete this long after its first byte.
    partial_pdu_timeout: float = 10.0
    # Output the peer leaves unread past the transport's buffer for this long closes
    # the connection (gateway/transport/protocol.py).
    write_timeout: float = 30.0
    # Password checks (scrypt) at once, and waiting; beyond both a bind is refused
    # unchecked (gateway/bindcheck.py). A verified password is remembered per
    # client address for bind_cache.
    bind_checks: int = 2
    bind_check_queue: int = 64
    bind_cache: float = 60.0
    # "uniform": ESME_RINVPASWD for an unknown system_id too, after the same work;
    # "distinct": ESME_RINVSYSID at once (tells a guesser which system_ids exist).
    bind_failure_status: str = "uniform"


@dataclass(frozen=True)
class HttpSettings:
    listen: str = "tcp:8080:interface=127.0.0.1"
    public_url: str = "http://127.0.0.1:8080"
    callback_path: str = "/callbacks/dlr"
    callback_username: str | None = None
    callback_password: str | None = None
    max_body: int = 65536
    # Who may call the callback paths (callback_sources and the file's entries
    # together); None: anyone. metrics_sources likewise for /metrics and probes.
    callback_sources: tuple[sources.Network, ...] | None = None
    callback_sources_file: str = ""
    metrics_sources: tuple[sources.Network, ...] | None = None
    # Peers whose X-Forwarded-For is believed.
    trusted_proxies: tuple[sources.Network, ...] = ()
    request_timeout: float = 30.0
    keepalive_timeout: float = 60.0
    # Answers a client leaves unread past the socket buffer for this long close it.
    write_timeout: float = 30.0
    # /metrics renders the page at most once per this many seconds (0: every time).
    metrics_cache: float = 1.0


@dataclass(frozen=True)
class StoreSettings:
    path: str = "state/gateway.sqlite"
    retention: float = 7 * 86400.0
    synchronous: str = "full"


@dataclass(frozen=True)
class RetrySettings:
    initial: float = 1.0
    maximum: float = 300.0
    factor: float = 2.0


@dataclass(frozen=True)
class BreakerSettings:
    """The connector's circuit breaker (gateway.mt.router.CircuitBreaker)."""

    failures: int = 5
    open_for: float = 30.0
    probes: int = 1


@dataclass(frozen=True)
class ConnectorSettings:
    name: str
    type: str
    # common: how to reach the account (None for other types), and what to send
    common: CommonSettings | None = None
    # linksmpp: how to reach LINK's SMPP endpoint (None for other types)
    linksmpp: LinkSmppSettings | None = None
    platform_id: str = ""
    platform_partner_id: str = ""
    gate_id: str = ""
    # common: the Gate API under base_url (`smpp-gateway gate ...`)
    gate_path: str = "/gate"
    max_batch: int = 1000
    batch_delay: float = 0.02
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()
    # simulator
    delay: float = 0.5
    result_code: int = 1001
    callback_url: str = ""


@dataclass(frozen=True)
class AccountSettings:
    system_id: str
    password_hash: str
    connector: str
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_binds: int = 4
    rate: float = 0.0
    burst: float = 0.0
    max_queue: int = 100_000
    message_id_format: str = "decimal"
    max_message_id_length: int = 18
    accept: str = "stored"
    # "none", "decimal" or "hex": ids of at most 8 characters for ESMEs bound as 3.3.
    short_message_id: str = "none"
    # A message scheduled at most this far ahead waits in the gateway (where
    # cancel_sm and replace_sm reach it); later ones go to LINK with scheduledTime.
    hold_scheduled: float = 86400.0
    policy: AccountPolicy = field(default_factory=AccountPolicy)
    # MO to these numbers is this account's: short codes as digits, MSISDNs "+digits".
    mo_numbers: tuple[str, ...] = ()
    # Upper case; when set, only MO whose first word is one of them.
    mo_keywords: tuple[str, ...] = ()
    # Vendor TLV tag that carries the connector's name in query_sm_resp.
    route_tlv: int | None = None
    # After a DELIVRD for 1007 (billed delayed), a billing failure reported later
    # gets a second receipt; otherwise it is only recorded.
    billing_receipts: bool = False

    def allows(self, host: str) -> bool:
        if not self.allowed_networks:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.allowed_networks)


@dataclass(frozen=True)
class MoSettings:
    callback_path: str = "/callbacks/mo"
    ttl: float = 48 * 3600.0  # how long an MO waits for its ESME to bind
    default_account: str | None = None  # for MO to a number no account claims


@dataclass(frozen=True)
class LoggingSettings:
    # Events below this level are not written; SIGHUP applies a change.
    level: str = "info"


@dataclass(frozen=True)
class Config:
    source: str
    smpp: SmppSettings
    http: HttpSettings
    store: StoreSettings
    accounts: Mapping[str, AccountSettings]
    connectors: Mapping[str, ConnectorSettings]
    result_codes: Mapping[int, Outcome] = field(default_factory=lambda: RESULT_CODES)
    log_format: str = "text"
    routes: tuple[Route, ...] = ()
    mo: MoSettings = MoSettings()
    logging: LoggingSettings = LoggingSettings()


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
CONNECTOR_TYPES = ("common", "linksmpp", "simulator")
ID_FORMATS = {"decimal": 18, "hex": 16, "uuid": 36}
SHORT_ID_FORMATS = ("none", "decimal", "hex")
WINDOW_OVERRUN = ("wait", "throttle")
BIND_FAILURE_STATUSES = ("uniform", "distinct")
LOG_LEVELS = ("debug", "info", "warn", "error")
# SMPP 3.4 section 4.5.1: number_of_dests is at most 254.
MAX_DESTINATIONS = 254
# A TLV tag as a TOML key: "0x1401" or "5121".
_TAG_KEY = re.compile(r"^(?:0[xX][0-9A-Fa-f]{1,4}|[0-9]{1,5})$")


class _Reader:
    """Walks one table of the TOML tree, remembering its dotted path for errors."""

    def __init__(self, source: str, path: str, table: Mapping[str, Any]) -> None:
        self.source = source
        self.path = path
        self.table = table
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.source, self.key(name), problem)

    def _get(self, name: str, default: Any) -> Any:
        self.used.add(name)
        return self.table.get(name, default)

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self._get(name, default)
        if value is None:
            if required:
                raise self.fail(name, "is required")
            return ""
        if not isinstance(value, str):
            raise self.fail(name, f"must be a string, not {type(value).__name__}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...] | list[str]) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise self.fail(name, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(name, f"must be a number, not {type(value).__name__}")
        if not math.isfinite(value):
            raise self.fail(name, "must be a finite number")
        if value < minimum:
            raise self.fail(name, f"must be at least {minimum:g}")
        return float(value)

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"must be an integer, not {type(value).__name__}")
        if value < minimum:
            raise self.fail(name, f"must be at least {minimum}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, f"must be true or false, not {type(value).__name__}")
        return value

    def duration(self, name: str, default: float, *, positive: bool = False) -> float:
        value = self._get(name, default)
        if isinstance(value, bool):
            raise self.fail(name, "must be a duration such as 30, '30s', '5m' or '7d'")
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and (match := _DURATION.match(value)):
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
        else:
            raise self.fail(name, "must be a duration such as 30, '30s', '5m' or '7d'")
        if not math.isfinite(seconds):
            raise self.fail(name, "must be a finite duration")
        if seconds < 0:
            raise self.fail(name, "must not be negative")
        if positive and seconds == 0:
            raise self.fail(name, "must be more than 0")
        return seconds

    def strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(name, list(default))
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(name, "must be a list of strings")
        return tuple(value)

    def table_(self, name: str) -> Mapping[str, Any]:
        value = self._get(name, {})
        if not isinstance(value, dict):
            raise self.fail(name, "must be a table")
        return value

    def secret(self, name: str, *, required: bool = False) -> str:
        """A secret given inline, as `name_env` (variable) or as `name_file` (path)."""
        inline = self._get(name, None)
        env = self._get(f"{name}_env", None)
        path = self._get(f"{name}_file", None)
        given = [k for k, v in ((name, inline), (f"{name}_env", env), (f"{name}_file", path)) if v]
        if len(given) > 1:
            raise self.fail(name, f"give only one of {', '.join(given)}")
        if env:
            if not isinstance(env, str):
                raise self.fail(f"{name}_env", "must be the name of an environment variable")
            if env not in os.environ:
                raise self.fail(f"{name}_env", f"environment variable {env} is not set")
            return os.environ[env]
        if path:
            if not isinstance(path, str):
                raise self.fail(f"{name}_file", "must be a path")
            try:
                return Path(path).read_text().strip()
            except OSError as e:
                raise self.fail(f"{name}_file", f"cannot read {path}: {e.strerror}") from e
            except ValueError as e:  # a NUL in the path
                raise self.fail(f"{name}_file", f"cannot read {path!r}: {e}") from e
        if inline is None or inline == "":
            if required:
                raise self.fail(name, f"is required (or {name}_env / {name}_file)")
            return ""
        if not isinstance(inline, str):
            raise self.fail(name, "must be a string")
        return inline

    def check_unknown(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.fail(unknown[0], "unknown key")


def load(path: str | os.PathLike[str]) -> Config:
    source = str(path)
    try:
        with open(path, "rb") as f:
            tree = tomllib.load(f)
    except OSError as e:
        raise ConfigError(source, "(file)", f"cannot read: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, "(syntax)", str(e)) from e
    return parse(tree, source=source)


def parse(tree: Mapping[str, Any], *, source: str = "<config>") -> Config:
    top = _Reader(source, "", tree)
    smpp = _smpp(_Reader(source, "smpp", top.table_("smpp")))
    http = _http(_Reader(source, "http", top.table_("http")))
    store = _store(_Reader(source, "store", top.table_("store")))
    log_format = top.choice("log_format", "text", ("text", "json"))
    logging = _logging(_Reader(source, "logging", top.table_("logging")))

    connectors: dict[str, ConnectorSettings] = {}
    for name, table in top.table_("connectors").items():
        if not isinstance(table, dict):
            raise top.fail(f"connectors.{name}", "must be a table")
        connectors[name] = _connector(_Reader(source, f"connectors.{name}", table), name, http)
    if not connectors:
        raise top.fail("connectors", "define at least one connector")

    vendor_tlvs = _vendor_tlvs(_Reader(source, "vendor_tlvs", top.table_("vendor_tlvs")))
    raw_accounts = top._get("accounts", [])
    if not isinstance(raw_accounts, list) or not raw_accounts:
        raise top.fail("accounts", "define at least one [[accounts]] entry")
    accounts: dict[str, AccountSettings] = {}
    for index, table in enumerate(raw_accounts):
        if not isinstance(table, dict):
            raise top.fail(f"accounts[{index}]", "must be a table ([[accounts]])")
        reader = _Reader(source, f"accounts[{index}]", table)
        account = _account(reader, connectors, vendor_tlvs)
        if account.system_id in accounts:
            raise reader.fail("system_id", f"{account.system_id!r} is defined twice")
        accounts[account.system_id] = account

    mo = _mo(_Reader(source, "mo", top.table_("mo")), http, accounts)
    _claim_mo_numbers(source, accounts, mo)
    routes = _routes(top, connectors, accounts)
    result_codes = _result_codes(_Reader(source, "result_codes", top.table_("result_codes")))
    top.check_unknown()
    return Config(
        source=source,
        smpp=smpp,
        http=http,
        store=store,
        accounts=accounts,
        connectors=connectors,
        result_codes=result_codes,
        log_format=log_format,
        routes=routes,
        mo=mo,
        logging=logging,
    )


def _logging(r: _Reader) -> LoggingSettings:
    settings = LoggingSettings(level=r.choice("level", LoggingSettings.level, LOG_LEVELS))
    r.check_unknown()
    return settings


def _smpp(r: _Reader) -> SmppSettings:
    d = SmppSettings()
    settings = SmppSettings(
        listen=r.strings("listen", d.listen),
        system_id=r.text("system_id", d.system_id),
        window=r.integer("window", d.window, minimum=1),
        bind_timeout=r.duration("bind_timeout", d.bind_timeout),
        inactivity_timeout=r.duration("inactivity_timeout", d.inactivity_timeout),
        enquire_link_interval=r.duration("enquire_link_interval", d.enquire_link_interval),
        response_timeout=r.duration("response_timeout", d.response_timeout),
        receipt_window=r.integer("receipt_window", d.receipt_window, minimum=1),
        max_pdu_length=r.integer("max_pdu_length", d.max_pdu_length, minimum=512),
        failed_bind_delay=r.duration("failed_bind_delay", d.failed_bind_delay),
        window_overrun=r.choice("window_overrun", d.window_overrun, WINDOW_OVERRUN),
        max_destinations=r.integer("max_destinations", d.max_destinations, minimum=1),
        shutdown_timeout=r.duration("shutdown_timeout", d.shutdown_timeout),
        tls_listen=r.strings("tls_listen", d.tls_listen),
        tls_certificate=r.text("tls_certificate", d.tls_certificate),
        tls_private_key=r.text("tls_private_key", d.tls_private_key),
        tls_min_version=r.choice("tls_min_version", d.tls_min_version, tuple(tls.TLS_VERSIONS)),
        tls_ciphers=r.strings("tls_ciphers", d.tls_ciphers),
        lockout_failures=r.integer("lockout_failures", d.lockout_failures),
        lockout_window=r.duration("lockout_window", d.lockout_window, positive=True),
        lockout_time=r.duration("lockout_time", d.lockout_time, positive=True),
        partial_pdu_timeout=r.duration("partial_pdu_timeout", d.partial_pdu_timeout, positive=True),
        write_timeout=r.duration("write_timeout", d.write_timeout, positive=True),
        bind_checks=r.integer("bind_checks", d.bind_checks, minimum=1),
        bind_check_queue=r.integer("bind_check_queue", d.bind_check_queue),
        bind_cache=r.duration("bind_cache", d.bind_cache),
        bind_failure_status=r.choice(
            "bind_failure_status", d.bind_failure_status, BIND_FAILURE_STATUSES
        ),
    )
    _smpp_tls(r, settings)
    if settings.max_destinations > MAX_DESTINATIONS:
        raise r.fail("max_destinations", "at most 254 (SMPP 3.4 number_of_dests)")
    if len(settings.system_id) > 15:
        raise r.fail("system_id", "at most 15 characters (SMPP C-Octet String of 16)")
    if not settings.listen and not settings.tls_listen:
        raise r.fail("listen", "give at least one listener (listen or tls_listen)")
    r.check_unknown()
    return settings


def _smpp_tls(r: _Reader, settings: SmppSettings) -> None:
    """The TLS listener's files and settings, checked by building its context."""
    if not settings.tls_listen:
        return
    for description in settings.tls_listen:
        if description.strip().lower().startswith(("ssl:", "tls:")):
            raise r.fail("tls_listen", f"give a plain endpoint (tcp:...), not {description}")
    for key in ("tls_certificate", "tls_private_key"):
        path = getattr(settings, key)
        if not path:
            raise r.fail(key, "is required with tls_listen (a PEM file)")
        try:
            exists = Path(path).is_file()
        except (OSError, ValueError):
            exists = False
        if not exists:
            raise r.fail(key, f"no such file: {path}")
    if not settings.tls_ciphers:
        raise r.fail("tls_ciphers", "give at least one cipher")
    try:
        tls.check(settings)
    except tls.TlsProblem as e:
        raise r.fail(e.key, e.problem) from None


def _http(r: _Reader) -> HttpSettings:
    d = HttpSettings()
    user = r.text("callback_username") or None
    password = r.secret("callback_password") or None
    if (user is None) != (password is None):
        raise r.fail("callback_password", "set both callback_username and callback_password")
    settings = HttpSettings(
        listen=r.text("listen", d.listen),
        public_url=r.text("public_url", d.public_url).rstrip("/"),
        callback_path=r.text("callback_path", d.callback_path),
        callback_username=user,
        callback_password=password,
        max_body=r.integer("max_body", d.max_body, minimum=1024),
        callback_sources=_callback_sources(r),
        callback_sources_file=r.text("callback_sources_file"),
        metrics_sources=_networks(r, "metrics_sources"),
        trusted_proxies=_networks(r, "trusted_proxies") or (),
        request_timeout=r.duration("request_timeout", d.request_timeout, positive=True),
        keepalive_timeout=r.duration("keepalive_timeout", d.keepalive_timeout, positive=True),
        write_timeout=r.duration("write_timeout", d.write_timeout, positive=True),
        metrics_cache=r.duration("metrics_cache", d.metrics_cache),
    )
    if not settings.callback_path.startswith("/"):
        raise r.fail("callback_path", "must start with '/'")
    r.check_unknown()
    return settings


def _networks(r: _Reader, name: str) -> tuple[sources.Network, ...] | None:
    """A list of addresses/CIDRs; None when the key is absent (no allow-list)."""
    if name not in r.table:
        r.used.add(name)
        return None
    try:
        return sources.parse_networks(r.strings(name, ()))
    except ValueError as e:
        raise r.fail(name, str(e)) from None


def _callback_sources(r: _Reader) -> tuple[sources.Network, ...] | None:
    """callback_sources and callback_sources_file together; an empty result would
    refuse every callback, which is never what was meant."""
    listed = _networks(r, "callback_sources")
    path = r.text("callback_sources_file")
    if listed is None and not path:
        return None
    networks = listed or ()
    if path:
        try:
            networks += sources.read_networks(path)
        except OSError as e:
            raise r.fail("callback_sources_file", f"cannot read {path}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise r.fail("callback_sources_file", f"{path} is not UTF-8 text") from None
        except ValueError as e:
            raise r.fail("callback_sources_file", f"{path}: {e}") from None
    if not networks:
        key = "callback_sources_file" if path else "callback_sources"
        raise r.fail(key, "lists no address: every callback would be refused")
    return networks


def _store(r: _Reader) -> StoreSettings:
    d = StoreSettings()
    settings = StoreSettings(
        path=r.text("path", d.path),
        retention=r.duration("retention", d.retention),
        synchronous=r.choice("synchronous", d.synchronous, ("full", "normal")),
    )
    r.check_unknown()
    return settings


def _connector(r: _Reader, name: str, http: HttpSettings) -> ConnectorSettings:
    kind = r.choice("type", "", CONNECTOR_TYPES)
    d = ConnectorSettings(name=name, type=kind)
    retry = _Reader(r.source, r.key("retry"), r.table_("retry"))
    retry_settings = RetrySettings(
        initial=retry.duration("initial", d.retry.initial),
        maximum=retry.duration("maximum", d.retry.maximum),
        factor=retry.number("factor", d.retry.factor, minimum=1.0),
    )
    retry.check_unknown()
    breaker = _breaker(_Reader(r.source, r.key("breaker"), r.table_("breaker")))
    if kind == "common":
        base_url = r.text("base_url", required=True).rstrip("/")
        if not base_url.startswith(("https://", "http://")):
            raise r.fail("base_url", "must be an http:// or https:// URL")
        dc = CommonSettings(base_url=base_url)
        common = CommonSettings(
            base_url=base_url,
            send_path=r.text("send_path", dc.send_path),
            batch_path=r.text("batch_path", dc.batch_path),
            token_path=r.text("token_path", dc.token_path),
            auth=r.choice("auth", dc.auth, ("basic", "oauth2")),
            username=r.text("username", required=True),
            password=r.secret("password", required=True),
            timeout=r.duration("timeout", dc.timeout),
            max_connections=r.integer("max_connections", dc.max_connections, minimum=1),
            ca_file=r.text("ca_file") or None,
        )
        settings = ConnectorSettings(
            name=name,
            type=kind,
            common=common,
            platform_id=r.text("platform_id", required=True),
            platform_partner_id=r.text("platform_partner_id", required=True),
            gate_id=r.text("gate_id", d.gate_id),
            gate_path=r.text("gate_path", d.gate_path).rstrip("/"),
            max_batch=r.integer("max_batch", d.max_batch, minimum=1),
            batch_delay=r.duration("batch_delay", d.batch_delay),
            retry=retry_settings,
            breaker=breaker,
        )
        if settings.max_batch > 1000:
            raise r.fail("max_batch", "Common takes at most 1000 messages per sendbatch")
        if settings.gate_path and not settings.gate_path.startswith("/"):
            raise r.fail("gate_path", "must start with '/'")
    elif kind == "linksmpp":
        settings = ConnectorSettings(
            name=name, type=kind, linksmpp=_linksmpp(r), retry=retry_settings, breaker=breaker
        )
    else:
        settings = ConnectorSettings(
            name=name,
            type=kind,
            delay=r.duration("delay", d.delay),
            result_code=r.integer("result_code", d.result_code),
            callback_url=r.text("callback_url", http.public_url + http.callback_path),
            platform_id=r.text("platform_id", "simulator"),
            platform_partner_id=r.text("platform_partner_id", "simulator"),
            gate_id=r.text("gate_id", "simulator"),
            retry=retry_settings,
            breaker=breaker,
        )
    r.check_unknown()
    return settings


def _breaker(r: _Reader) -> BreakerSettings:
    d = BreakerSettings()
    settings = BreakerSettings(
        failures=r.integer("failures", d.failures, minimum=1),
        open_for=r.duration("open_for", d.open_for, positive=True),
        probes=r.integer("probes", d.probes, minimum=1),
    )
    r.check_unknown()
    return settings


# LINK closes a link idle for 5 minutes (seed 004): enquire_link must come sooner.
LINK_IDLE_LIMIT = 300.0
_LINK_ENDPOINT = re.compile(r"^(?P<scheme>tls|tcp):(?P<host>\[[^\]]+\]|[^:\[\]]+):(?P<port>\d+)$")
# Longest value of each C-Octet String the bind carries (the codec's limits:
# gateway/smpp/pdu.py, which reads passwords of up to 16 as found in the wild).
_BIND_STRINGS = {"system_id": 15, "password": 16, "system_type": 12}


def _bind_string(r: _Reader, name: str, value: str) -> str:
    limit = _BIND_STRINGS[name]
    try:
        fits = len(value.encode("latin-1")) <= limit and "\0" not in value
    except UnicodeEncodeError:
        fits = False
    if not fits:
        raise r.fail(name, f"at most {limit} Latin-1 characters, no NUL (SMPP C-Octet String)")
    return value


def _linksmpp(r: _Reader) -> LinkSmppSettings:
    """`endpoint = "tls:HOST:PORT"` or host/port/tls; every LINK figure a default."""
    d = LinkSmppSettings()
    endpoint = r.text("endpoint")
    address_key = "endpoint" if endpoint else "port"
    if endpoint:
        both = [k for k in ("host", "port", "tls") if k in r.table]
        if both:
            raise r.fail("endpoint", f"give either endpoint or {', '.join(both)}, not both")
        match = _LINK_ENDPOINT.match(endpoint)
        if match is None:
            raise r.fail(
                "endpoint", f'must read "tls:HOST:PORT" or "tcp:HOST:PORT", not {endpoint!r}'
            )
        host, port = match["host"].strip("[]"), int(match["port"])
        tls = match["scheme"] == "tls"
    else:
        host = r.text("host", d.host)
        port = r.integer("port", d.port, minimum=1)
        tls = r.flag("tls", d.tls)
        if not host:
            raise r.fail("host", "must not be empty")
    if not 1 <= port <= 65535:
        raise r.fail(address_key, f"port must be 1-65535, not {port}")
    ca_file = r.text("ca_file") or None
    if ca_file is not None:
        if not tls:
            raise r.fail("ca_file", "is only used with TLS (tls = true or a tls: endpoint)")
        if not Path(ca_file).is_file():
            raise r.fail("ca_file", f"no such file: {ca_file}")
    rate = r.number("rate", d.rate)
    if rate <= 0:
        raise r.fail("rate", "must be more than 0 (LINK allows 5 SMS a second)")
    enquire = r.duration("enquire_link_interval", d.enquire_link_interval, positive=True)
    if enquire >= LINK_IDLE_LIMIT:
        raise r.fail(
            "enquire_link_interval",
            f"must be under {LINK_IDLE_LIMIT:g} s: LINK closes a link idle for 5 minutes",
        )
    settings = LinkSmppSettings(
        host=host,
        port=port,
        tls=tls,
        ca_file=ca_file,
        system_id=_bind_string(r, "system_id", r.text("system_id", required=True)),
        password=_bind_string(r, "password", r.secret("password", required=True)),
        system_type=_bind_string(r, "system_type", r.text("system_type", d.system_type)),
        bind=r.choice("bind", d.bind, BIND_MODES),
        window=r.integer("window", d.window, minimum=1),
        rate=rate,
        # Fewer than one token would never let a message through.
        burst=r.number("burst", max(rate, 1.0), minimum=1.0),
        enquire_link_interval=enquire,
        reconnect_delay=r.duration("reconnect_delay", d.reconnect_delay),
        bind_timeout=r.duration("bind_timeout", d.bind_timeout, positive=True),
        response_timeout=r.duration("response_timeout", d.response_timeout, positive=True),
        throttle_backoff=r.duration("throttle_backoff", d.throttle_backoff, positive=True),
        throttle_backoff_max=r.duration("throttle_backoff_max", d.throttle_backoff_max),
    )
    if not settings.system_id:
        raise r.fail("system_id", "must not be empty")
    if settings.throttle_backoff_max < settings.throttle_backoff:
        raise r.fail("throttle_backoff_max", "must be at least throttle_backoff")
    return settings


def _account(
    r: _Reader,
    connectors: Mapping[str, ConnectorSettings],
    default_vendor_tlvs: Mapping[int, VendorTlv],
) -> AccountSettings:
    system_id = r.text("system_id", required=True)
    if not 1 <= len(system_id) <= 15:
        raise r.fail("system_id", "must be 1 to 15 characters (SMPP C-Octet String of 16)")
    password_hash = r.text("password", required=True)
    if not is_password_hash(password_hash):
        raise r.fail("password", "must be a hash made by `smpp-gateway hash-password`")
    connector = r.text("connector", required=True)
    if connector not in connectors:
        raise r.fail("connector", f"no connector named {connector!r} in [connectors]")
    networks = []
    for text in r.strings("allowed_networks", ()):
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as e:
            raise r.fail("allowed_networks", str(e)) from e
    rate = r.number("rate", 0.0)
    id_format = r.choice("message_id_format", "decimal", tuple(ID_FORMATS))
    max_id = r.integer("max_message_id_length", ID_FORMATS[id_format], minimum=8)
    if max_id > 64:
        raise r.fail(
            "max_message_id_length", "at most 64 (SMPP message_id is a C-Octet String of 65)"
        )
    if id_format == "uuid" and max_id < 36:
        raise r.fail("max_message_id_length", "a uuid needs 36 characters")
    premium = dict(r.table_("premium"))
    for name, value in premium.items():
        problem = premium_problem(name, value)
        if problem is not None:
            raise r.fail(f"premium.{name}", problem)
    custom = r.table_("custom_parameters")
    if not all(isinstance(v, str) for v in custom.values()):
        raise r.fail("custom_parameters", "values must be strings")
    country = r.text("default_country_code", "")
    if country and not country.isdigit():
        raise r.fail("default_country_code", "digits only, without '+' or '00'")
    target = connectors[connector]
    alphabet = r.choice("default_alphabet", "gsm", ("gsm", "latin1"))
    ia5 = r.choice("ia5_alphabet", "ascii", ("ascii", "gsm"))
    short_digits: int | None = None
    if "short_number_digits" in r.table:
        short_digits = r.integer("short_number_digits", 0, minimum=1)
        if short_digits > 14:
            raise r.fail("short_number_digits", "at most 14 (Common's short numbers)")
    else:
        r.used.add("short_number_digits")
    # An account's own table replaces the top-level one whole, so what applies
    # is always one table; `vendor_tlvs = {}` opts an account out.
    if "vendor_tlvs" in r.table:
        vendor_tlvs = _vendor_tlvs(_Reader(r.source, r.key("vendor_tlvs"), r.table_("vendor_tlvs")))
    else:
        vendor_tlvs = default_vendor_tlvs
    try:
        policy = AccountPolicy(
            default_country_code=country,
            default_alphabet=alphabet,
            ia5_alphabet=ia5,
            short_number_digits=short_digits,
            platform_id=target.platform_id,
            platform_partner_id=target.platform_partner_id,
            gate_ids=(target.gate_id,) if target.gate_id else (),
            premium=premium,
            custom_parameters=dict(custom),
            vendor_tlvs=vendor_tlvs,
        )
    except ValueError as e:
        raise r.fail("default_country_code" if "country" in str(e) else "premium", str(e)) from e
    settings = AccountSettings(
        system_id=system_id,
        password_hash=password_hash,
        connector=connector,
        allowed_networks=tuple(networks),
        max_binds=r.integer("max_binds", 4, minimum=1),
        rate=rate,
        burst=r.number("burst", rate),
        max_queue=r.integer("max_queue", 100_000, minimum=1),
        message_id_format=id_format,
        max_message_id_length=max_id,
        accept=r.choice("accept", "stored", ("stored", "upstream")),
        short_message_id=r.choice("short_message_id", "none", SHORT_ID_FORMATS),
        hold_scheduled=r.duration("hold_scheduled", 86400.0),
        policy=policy,
        mo_numbers=_normalised(r, "mo_numbers", claimed_number),
        mo_keywords=_normalised(r, "mo_keywords", claimed_keyword),
        route_tlv=_route_tlv(r),
        billing_receipts=r.flag("billing_receipts", False),
    )
    if settings.mo_keywords and not settings.mo_numbers:
        raise r.fail("mo_keywords", "needs mo_numbers: keywords choose among MO to those numbers")
    r.check_unknown()
    return settings


def _normalised(r: _Reader, name: str, normalise: Callable[[str], str]) -> tuple[str, ...]:
    """A list of strings, each normalised; two that normalise alike are an error."""
    values: list[str] = []
    for text in r.strings(name, ()):
        try:
            value = normalise(text)
        except ValueError as e:
            raise r.fail(name, str(e)) from e
        if value in values:
            raise r.fail(name, f"{value} is given twice")
        values.append(value)
    return tuple(values)


def _tag_number(text: str) -> int | None:
    """A TLV tag written as "0x1401" or "5121"; None for anything else."""
    if not _TAG_KEY.match(text):
        return None
    return int(text, 16) if text[1:2] in ("x", "X") else int(text)


def _route_tlv(r: _Reader) -> int | None:
    value = r._get("route_tlv", None)
    if value is None:
        return None
    tag = _tag_number(value) if isinstance(value, str) else value
    if isinstance(tag, bool) or not isinstance(tag, int):
        raise r.fail("route_tlv", 'a TLV tag such as 0x1410, "0x1410" or 5136')
    if tag not in VENDOR_TAGS:
        raise r.fail("route_tlv", f"tag {tag:#06x} is outside the vendor range 0x1400-0x3FFF")
    return tag


def _mo(r: _Reader, http: HttpSettings, accounts: Mapping[str, AccountSettings]) -> MoSettings:
    d = MoSettings()
    settings = MoSettings(
        callback_path=r.text("callback_path", d.callback_path),
        ttl=r.duration("ttl", d.ttl, positive=True),
        default_account=r.text("default_account") or None,
    )
    path = settings.callback_path
    if not path.startswith("/"):
        raise r.fail("callback_path", "must start with '/'")
    # The delivery-report callback also takes every path below its own.
    if _overlap(path, http.callback_path):
        raise r.fail("callback_path", f"must not overlap http.callback_path {http.callback_path}")
    if settings.default_account is not None and settings.default_account not in accounts:
        raise r.fail("default_account", f"no account with system_id {settings.default_account!r}")
    r.check_unknown()
    return settings


def _overlap(a: str, b: str) -> bool:
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def _claim_mo_numbers(source: str, accounts: Mapping[str, AccountSettings], mo: MoSettings) -> None:
    """Refuse two accounts claiming one number (or one number and keyword).

    The routing table itself decides what clashes; it is built one account at a
    time so that the error names the account that made the clash.
    """
    claims: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for index, account in enumerate(accounts.values()):
        if not account.mo_numbers:
            continue
        claims[account.system_id] = (account.mo_numbers, account.mo_keywords)
        try:
            MoRouter(claims, mo.default_account)
        except ValueError as e:
            key = "mo_keywords" if str(e).startswith("MO keyword") else "mo_numbers"
            raise ConfigError(source, f"accounts[{index}].{key}", str(e)) from e


def _routes(
    top: _Reader,
    connectors: Mapping[str, ConnectorSettings],
    accounts: Mapping[str, AccountSettings],
) -> tuple[Route, ...]:
    raw = top._get("routes", [])
    if not isinstance(raw, list):
        raise top.fail("routes", "must be a list of [[routes]] tables")
    routes = []
    for index, table in enumerate(raw):
        if not isinstance(table, dict):
            raise top.fail(f"routes[{index}]", "must be a table ([[routes]])")
        r = _Reader(top.source, f"routes[{index}]", table)
        names = r.strings("accounts", ())
        for name in names:
            if name not in accounts:
                raise r.fail("accounts", f"no account with system_id {name!r}")
        prefixes = _normalised(r, "prefixes", route_prefix)
        connector = r.text("connector", required=True)
        if connector not in connectors:
            raise r.fail("connector", f"no connector named {connector!r} in [connectors]")
        fallback = r.text("fallback") or None
        if fallback is not None and fallback not in connectors:
            raise r.fail("fallback", f"no connector named {fallback!r} in [connectors]")
        if fallback == connector:
            raise r.fail("fallback", "must differ from connector")
        r.check_unknown()
        routes.append(Route(frozenset(names), prefixes, connector, fallback))
    return tuple(routes)


def _vendor_tlvs(r: _Reader) -> Mapping[int, VendorTlv]:
    """`TAG = { field = "tariff", type = "int" }` rows; keys as written name errors."""
    tlvs: dict[int, VendorTlv] = {}
    filled: dict[str, str] = {}  # Common field -> the key that fills it
    for key, row in r.table.items():
        r.used.add(key)
        tag = _tag_number(key)
        if tag is None:
            raise r.fail(key, 'a TLV tag such as "0x1401" or "5121"')
        if tag not in VENDOR_TAGS:
            raise r.fail(key, f"tag 0x{tag:04X} is outside the vendor range 0x1400-0x3FFF")
        if tag in tlvs:
            raise r.fail(key, f"tag 0x{tag:04X} is given twice")
        if not isinstance(row, dict):
            raise r.fail(key, 'use `0x1401 = { field = "tariff", type = "int" }`')
        row_reader = _Reader(r.source, r.key(key), row)
        target = row_reader.text("field", required=True)
        problem = vendor_field_problem(target)
        if problem is not None:
            raise row_reader.fail("field", problem)
        if target in filled:
            raise row_reader.fail("field", f"{target} is already filled by {filled[target]}")
        kind = row_reader.text("type", default_vendor_type(target))
        problem = vendor_type_problem(target, kind)
        if problem is not None:
            raise row_reader.fail("type", problem)
        row_reader.check_unknown()
        filled[target] = key
        tlvs[tag] = VendorTlv(target, kind)
    return tlvs


def _result_codes(r: _Reader) -> Mapping[int, Outcome]:
    overrides: dict[int, tuple[str, int, bool]] = {}
    for code, row in r.table.items():
        r.used.add(code)
        if not code.isdigit() or not isinstance(row, dict):
            raise r.fail(code, 'use `CODE = { stat = "UNDELIV", err = 222, final = true }`')
        row_reader = _Reader(r.source, r.key(code), row)
        overrides[int(code)] = (
            row_reader.text("stat", required=True),
            row_reader.integer("err", 0),
            bool(row_reader._get("final", True)),
        )
        row_reader.check_unknown()
        try:
            merge_result_codes({int(code): overrides[int(code)]})
        except ValueError as e:
            raise r.fail(code, str(e)) from e
    try:
        return merge_result_codes(overrides)
    except ValueError as e:
        raise r.fail("", str(e)) from e
