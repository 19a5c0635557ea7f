"""Reading a file or a tree into a `Config`, every table through its own reader."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any

from gateway.config.accounts import (
    claim_mo_numbers,
    read_account,
    read_mo,
    read_result_codes,
    read_routes,
    read_vendor_tlvs,
)
from gateway.config.connectors import read_connector
from gateway.config.model import AccountSettings, Config, ConnectorSettings
from gateway.config.reader import ConfigError, Reader
from gateway.config.sections import read_http, read_logging, read_smpp, read_store


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
    top = Reader(source, "", tree)
    smpp = read_smpp(Reader(source, "smpp", top.table_("smpp")))
    http = read_http(Reader(source, "http", top.table_("http")))
    store = read_store(Reader(source, "store", top.table_("store")))
    log_format = top.choice("log_format", "text", ("text", "json"))
    logging = read_logging(Reader(source, "logging", top.table_("logging")))

    connectors: dict[str, ConnectorSettings] = {}
    for name, table in top.table_("connectors").items():
        if not isinstance(table, dict):
            raise top.fail(f"connectors.{name}", "must be a table")
        connectors[name] = read_connector(Reader(source, f"connectors.{name}", table), name, http)
    if not connectors:
        raise top.fail("connectors", "define at least one connector")

    vendor_tlvs = read_vendor_tlvs(Reader(source, "vendor_tlvs", top.table_("vendor_tlvs")))
    raw_accounts = top._get("accounts", [])
    if not isinstance(raw_accounts, list) or not raw_accounts:
        raise top.fail("accounts", "define at least one [[accounts]] entry")
    accounts: dict[str, AccountSettings] = {}
    for index, table in enumerate(raw_accounts):
        if not isinstance(table, dict):
            raise top.fail(f"accounts[{index}]", "must be a table ([[accounts]])")
        reader = Reader(source, f"accounts[{index}]", table)
        account = read_account(reader, connectors, vendor_tlvs)
        if account.system_id in accounts:
            raise reader.fail("system_id", f"{account.system_id!r} is defined twice")
        accounts[account.system_id] = account

    mo = read_mo(Reader(source, "mo", top.table_("mo")), http, accounts)
    claim_mo_numbers(source, accounts, mo)
    routes = read_routes(top, connectors, accounts)
    result_codes = read_result_codes(Reader(source, "result_codes", top.table_("result_codes")))
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
