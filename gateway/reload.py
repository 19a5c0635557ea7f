"""SIGHUP: read the config file again and apply what can change while ESMEs stay bound.

Live: accounts (added, removed, changed: passwords, networks, rates, queue
limits, mapping policy, vendor TLVs, MO numbers), routes, MO routing and its
ttl, the callback credentials, the callback and metrics source allow-lists,
the result-code table and the log level.

Not live (they need a restart and keep their old values until then, each named
in a warning): listeners and every other `[smpp]` setting, the rest of
`[http]`, `[store]`, connectors, the MO callback path, the log
format.

What always holds:
- A config that does not load, or that needs a connector the process is not
  running, is refused as a whole: the gateway goes on with the config it had.
- A bound session of a removed account is unbound; one of a changed account
  stays bound and follows the new settings from its next PDU (a new password
  is checked at the next bind, not against sessions already bound).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from gateway.config import Config

# Config parts that only a restart applies, with how an operator reads them.
_RESTART_ONLY: tuple[tuple[str, Callable[[Config], object]], ...] = (
    ("[smpp]", lambda c: c.smpp),
    ("[http] (but the callback credentials and source lists)", lambda c: _without_live(c)),
    ("[store]", lambda c: c.store),
    ("[connectors]", lambda c: c.connectors),
    ("[mo] callback_path", lambda c: c.mo.callback_path),
    ("log_format", lambda c: c.log_format),
)


class ReloadRefused(ValueError):
    """The new config cannot be applied to the running process at all."""


@dataclass(frozen=True)
class Plan:
    """What a reload does: the config to run with, and what changed."""

    config: Config
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    # Settings that differ but need a restart (kept as they were).
    restart_needed: tuple[str, ...]


# [http] settings a reload applies: who may call, and with which credentials.
_LIVE_HTTP = (
    "callback_username",
    "callback_password",
    "callback_sources",
    "callback_sources_file",
    "metrics_sources",
    "trusted_proxies",
)


def _without_live(config: Config) -> object:
    http = config.http
    return tuple(
        getattr(http, f.name) for f in dataclasses.fields(http) if f.name not in _LIVE_HTTP
    )


def plan(running: Config, new: Config) -> Plan:
    """The reload of `running` to `new`, or ReloadRefused."""
    wanted = {a.connector for a in new.accounts.values()} | {
        c for r in new.routes for c in (r.connector, r.fallback) if c is not None
    }
    missing = sorted(wanted - set(running.connectors))
    if missing:
        raise ReloadRefused(
            f"connector(s) {', '.join(missing)} are not running; adding a connector needs a restart"
        )
    merged = dataclasses.replace(
        running,
        accounts=new.accounts,
        routes=new.routes,
        mo=dataclasses.replace(new.mo, callback_path=running.mo.callback_path),
        http=dataclasses.replace(
            running.http,
            callback_username=new.http.callback_username,
            callback_password=new.http.callback_password,
            callback_sources=new.http.callback_sources,
            callback_sources_file=new.http.callback_sources_file,
            metrics_sources=new.http.metrics_sources,
            trusted_proxies=new.http.trusted_proxies,
        ),
        result_codes=new.result_codes,
        logging=new.logging,
    )
    old_accounts, new_accounts = running.accounts, new.accounts
    return Plan(
        config=merged,
        added=tuple(sorted(set(new_accounts) - set(old_accounts))),
        removed=tuple(sorted(set(old_accounts) - set(new_accounts))),
        changed=tuple(
            sorted(
                name
                for name in set(old_accounts) & set(new_accounts)
                if old_accounts[name] != new_accounts[name]
            )
        ),
        restart_needed=tuple(label for label, part in _RESTART_ONLY if part(running) != part(new)),
    )


__all__ = ["Plan", "ReloadRefused", "plan"]
