"""The frozen settings the daemon runs on, one dataclass per table."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway import tls
from gateway.connectors.common.results import RESULT_CODES
from gateway.connectors.common.settings import CommonSettings
from gateway.connectors.linksmpp.settings import LinkSmppSettings
from gateway.http import sources
from gateway.mt.router import Route
from gateway.mt.submission import AccountPolicy
from gateway.records import Outcome

# Queued messages live in the store, not in memory (gateway/mt/window.py): an
# account's max_queue bounds its share of the disk, about 350 bytes a message.
MAX_QUEUE = 10_000_000
# Beyond this a commit delay is latency that buys nothing: at rates where a few
# milliseconds gather no companions, there is no CPU left to save either.
MAX_COMMIT_DELAY = 0.02


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
    # How long the parts of a long message wait for their siblings (per account,
    # `reassemble`): then they go on as segments, or are refused.
    reassembly_timeout: float = 60.0
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
    # MiB: past wal_limit_mb the next checkpoint holds commits until it caught up
    # (gateway/store/commit.py); SQLite then truncates the WAL to wal_keep_mb.
    wal_limit_mb: int = 64
    wal_keep_mb: int = 16
    # Messages per connector and receipts per account held in memory; the rest of
    # a backlog waits in the store (gateway/mt/window.py).
    memory_window: int = 4096
    # MiB set aside beside the store and given back when the disk fills
    # (gateway/store/reserve.py); 0: none.
    reserve_mb: int = 32
    # How long a durable write waits for others to share its transaction and fsync
    # (gateway/store/commit.py); 0: the end of the reactor turn.
    commit_delay: float = 0.001
    # How the store's fsyncs run: "auto" through io_uring where the kernel offers
    # it (gateway/store/uring.py), else in threads; "thread" always in threads.
    fsync: str = "auto"


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
    max_queue: int = MAX_QUEUE
    # Parts of long messages waiting for their siblings, kept in memory as well
    # as on disk: beyond this, a part that would wait gets ESME_RMSGQFUL.
    max_waiting_parts: int = 10_000
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


CONNECTOR_TYPES = ("common", "linksmpp", "simulator")
ID_FORMATS = {"decimal": 18, "hex": 16, "uuid": 36}
SHORT_ID_FORMATS = ("none", "decimal", "hex")
WINDOW_OVERRUN = ("wait", "throttle")
BIND_FAILURE_STATUSES = ("uniform", "distinct")
LOG_LEVELS = ("debug", "info", "warn", "error")
# SMPP 3.4 section 4.5.1: number_of_dests is at most 254.
MAX_DESTINATIONS = 254
