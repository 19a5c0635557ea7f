"""The gateway's own tables: [smpp], [http], [store] and [logging]."""

from __future__ import annotations

from pathlib import Path

from gateway import tls
from gateway.config.model import (
    BIND_FAILURE_STATUSES,
    LOG_LEVELS,
    MAX_COMMIT_DELAY,
    MAX_DESTINATIONS,
    WINDOW_OVERRUN,
    HttpSettings,
    LoggingSettings,
    SmppSettings,
    StoreSettings,
)
from gateway.config.reader import Reader
from gateway.http import sources


def read_logging(r: Reader) -> LoggingSettings:
    settings = LoggingSettings(level=r.choice("level", LoggingSettings.level, LOG_LEVELS))
    r.check_unknown()
    return settings


def read_smpp(r: Reader) -> SmppSettings:
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
        reassembly_timeout=r.duration("reassembly_timeout", d.reassembly_timeout, positive=True),
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


def _smpp_tls(r: Reader, settings: SmppSettings) -> None:
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


def read_http(r: Reader) -> HttpSettings:
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


def _networks(r: Reader, name: str) -> tuple[sources.Network, ...] | None:
    """A list of addresses/CIDRs; None when the key is absent (no allow-list)."""
    if name not in r.table:
        r.used.add(name)
        return None
    try:
        return sources.parse_networks(r.strings(name, ()))
    except ValueError as e:
        raise r.fail(name, str(e)) from None


def _callback_sources(r: Reader) -> tuple[sources.Network, ...] | None:
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


def read_store(r: Reader) -> StoreSettings:
    d = StoreSettings()
    settings = StoreSettings(
        path=r.text("path", d.path),
        retention=r.duration("retention", d.retention),
        synchronous=r.choice("synchronous", d.synchronous, ("full", "normal")),
        wal_limit_mb=r.integer("wal_limit_mb", d.wal_limit_mb, minimum=1),
        wal_keep_mb=r.integer("wal_keep_mb", d.wal_keep_mb, minimum=0),
        memory_window=r.integer("memory_window", d.memory_window, minimum=64),
        reserve_mb=r.integer("reserve_mb", d.reserve_mb, minimum=0),
        commit_delay=r.duration("commit_delay", d.commit_delay),
        fsync=r.choice("fsync", d.fsync, ("auto", "thread")),
    )
    if settings.commit_delay > MAX_COMMIT_DELAY:
        raise r.fail("commit_delay", f"must not be more than {MAX_COMMIT_DELAY * 1000:g}ms")
    if settings.wal_keep_mb > settings.wal_limit_mb:
        raise r.fail("wal_keep_mb", "must not be more than wal_limit_mb")
    r.check_unknown()
    return settings
