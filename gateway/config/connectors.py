"""[connectors.NAME]: Common, LINK SMPP and the simulator, with retry and breaker."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.config.model import (
    CONNECTOR_TYPES,
    BreakerSettings,
    ConnectorSettings,
    HttpSettings,
    RetrySettings,
)
from gateway.config.reader import Reader
from gateway.connectors.common.settings import CommonSettings
from gateway.connectors.linksmpp.settings import BIND_MODES, LinkSmppSettings


def read_connector(r: Reader, name: str, http: HttpSettings) -> ConnectorSettings:
    kind = r.choice("type", "", CONNECTOR_TYPES)
    d = ConnectorSettings(name=name, type=kind)
    retry = Reader(r.source, r.key("retry"), r.table_("retry"))
    retry_settings = RetrySettings(
        initial=retry.duration("initial", d.retry.initial),
        maximum=retry.duration("maximum", d.retry.maximum),
        factor=retry.number("factor", d.retry.factor, minimum=1.0),
    )
    retry.check_unknown()
    breaker = _breaker(Reader(r.source, r.key("breaker"), r.table_("breaker")))
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


def _breaker(r: Reader) -> BreakerSettings:
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


def _bind_string(r: Reader, name: str, value: str) -> str:
    limit = _BIND_STRINGS[name]
    try:
        fits = len(value.encode("latin-1")) <= limit and "\0" not in value
    except UnicodeEncodeError:
        fits = False
    if not fits:
        raise r.fail(name, f"at most {limit} Latin-1 characters, no NUL (SMPP C-Octet String)")
    return value


def _linksmpp(r: Reader) -> LinkSmppSettings:
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
