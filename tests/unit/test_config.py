"""gateway.config: a bad config names the file, the key and the problem (DESIGN 7, 8)."""

from __future__ import annotations

import copy
import ipaddress
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import config
from gateway.config import ConfigError, load, parse
from gateway.connectors.linksmpp.settings import LinkSmppSettings
from gateway.intake.mo import MoRouter
from gateway.mt.router import Route
from gateway.mt.vendor import PREMIUM_FIELDS, VendorTlv
from gateway.records import IncomingMo
from tests.support.configs import HASH, minimal

ETC = Path(__file__).resolve().parents[2] / "etc"
UNSET = "SMPPGW_TEST_CONFIG_SURELY_UNSET"


def test_minimal_config_parses_with_defaults() -> None:
    cfg = parse(minimal(), source="mini.toml")
    assert cfg.source == "mini.toml"
    assert cfg.smpp == config.SmppSettings()
    assert cfg.http == config.HttpSettings()
    assert cfg.store == config.StoreSettings()
    assert list(cfg.accounts) == ["shop1"]
    account = cfg.accounts["shop1"]
    assert (account.password_hash, account.connector) == (HASH, "main")
    assert (account.message_id_format, account.max_message_id_length) == ("decimal", 18)
    assert (account.rate, account.accept, account.allowed_networks) == (0.0, "stored", ())
    assert account.policy.platform_id == "PID"
    assert account.short_message_id == "none"
    assert (dict(account.policy.vendor_tlvs), account.policy.vendor_tags) == ({}, frozenset())
    assert (cfg.smpp.window_overrun, cfg.smpp.max_destinations) == ("wait", 254)
    connector = cfg.connectors["main"]
    assert connector.common is not None
    assert connector.common.base_url == "https://n-eu.linkmobility.io"  # trailing slash dropped
    assert (connector.common.send_path, connector.common.batch_path) == (
        "/sms/send",
        "/sms/sendbatch",
    )
    assert (connector.common.username, connector.common.password) == ("user", "pw")
    assert connector.max_batch == 1000
    assert cfg.result_codes[1001].stat == "DELIVRD"


def test_settings_are_frozen() -> None:
    cfg = parse(minimal())
    with pytest.raises(AttributeError):
        cfg.smpp.window = 5  # type: ignore[misc]


def test_full_config_from_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(
        f"""
log_format = "json"

[smpp]
listen = ["tcp:2775:interface=0.0.0.0", "tcp:2776"]
window = 50
bind_timeout = "5s"
inactivity_timeout = "5m"
enquire_link_interval = 30
window_overrun = "throttle"
max_destinations = 10

[vendor_tlvs]
0x1401 = {{ field = "tariff", type = "int" }}
"0x1402" = {{ field = "currency" }}

[store]
path = "{tmp_path}/gw.sqlite"
retention = "7d"

[[accounts]]
system_id = "shop1"
password = "{HASH}"
allowed_networks = ["10.0.0.0/8"]
max_binds = 2
rate = 100
burst = 150
message_id_format = "hex"
accept = "upstream"
connector = "main"
short_message_id = "decimal"

[accounts.premium]
tariff = 100
currency = "NOK"
moReferenceId = "mo-1"

[[accounts]]
system_id = "shop2"
password = "{HASH}"
connector = "sim"
message_id_format = "uuid"
short_message_id = "hex"

[accounts.vendor_tlvs]
5121 = {{ field = "age", type = "int" }}
0x1500 = {{ field = "customParameters.campaign", type = "string" }}
0X3fff = {{ field = "moReferenceId", type = "hex" }}

[connectors.main]
type = "common"
base_url = "https://n-eu.linkmobility.io"
username = "u"
password = "p"
platform_id = "P"
platform_partner_id = "PP"
max_batch = 500

[connectors.main.retry]
initial = "500ms"
maximum = "2m"
factor = 3

[connectors.sim]
type = "simulator"
delay = 0.25

[result_codes]
1006 = {{ stat = "DELETED", err = 221 }}
"""
    )
    cfg = load(path)
    assert cfg.source == str(path)
    assert cfg.log_format == "json"
    assert cfg.smpp.listen == ("tcp:2775:interface=0.0.0.0", "tcp:2776")
    assert (cfg.smpp.window, cfg.smpp.bind_timeout, cfg.smpp.inactivity_timeout) == (50, 5.0, 300.0)
    assert cfg.store.retention == 7 * 86400.0
    shop1, shop2 = cfg.accounts["shop1"], cfg.accounts["shop2"]
    assert shop1.allowed_networks == (ipaddress.ip_network("10.0.0.0/8"),)
    assert shop1.allows("10.1.2.3") and not shop1.allows("192.168.0.1")
    assert not shop1.allows("not-an-address")
    assert (shop1.rate, shop1.burst, shop1.max_binds) == (100.0, 150.0, 2)
    assert (shop1.message_id_format, shop1.max_message_id_length) == ("hex", 16)
    assert shop1.accept == "upstream"
    assert (shop2.message_id_format, shop2.max_message_id_length) == ("uuid", 36)
    assert (cfg.smpp.window_overrun, cfg.smpp.max_destinations) == ("throttle", 10)
    assert (shop1.short_message_id, shop2.short_message_id) == ("decimal", "hex")
    assert dict(shop1.policy.premium) == {"tariff": 100, "currency": "NOK", "moReferenceId": "mo-1"}
    # shop1 inherits the top-level table; shop2's own table replaces it whole.
    assert dict(shop1.policy.vendor_tlvs) == {
        0x1401: VendorTlv("tariff", "int"),
        0x1402: VendorTlv("currency", "string"),
    }
    assert dict(shop2.policy.vendor_tlvs) == {
        5121: VendorTlv("age", "int"),
        0x1500: VendorTlv("customParameters.campaign", "string"),
        0x3FFF: VendorTlv("moReferenceId", "hex"),
    }
    assert shop2.policy.vendor_tags == frozenset({0x1401, 0x1500, 0x3FFF})
    main = cfg.connectors["main"]
    assert main.max_batch == 500
    assert main.retry == config.RetrySettings(initial=0.5, maximum=120.0, factor=3.0)
    sim = cfg.connectors["sim"]
    assert (sim.type, sim.delay) == ("simulator", 0.25)
    assert sim.callback_url == "http://127.0.0.1:8080/callbacks/dlr"
    assert (cfg.result_codes[1006].stat, cfg.result_codes[1006].err) == ("DELETED", 221)
    assert cfg.result_codes[1006].final


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting a dotted path (`accounts.0.rate`) in the tree."""

    def mutate(tree: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = tree
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[last] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(tree: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = tree
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return mutate


def _second_account(tree: dict[str, Any]) -> None:
    tree["accounts"].append({"system_id": "shop1", "password": HASH, "connector": "main"})


def _env_password(tree: dict[str, Any]) -> None:
    del tree["connectors"]["main"]["password"]
    tree["connectors"]["main"]["password_env"] = UNSET


DROP = object()  # a key _link leaves out


def _link(**keys: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation adding a valid LINK SMPP connector `link`, with `keys` over it."""

    def mutate(tree: dict[str, Any]) -> None:
        table = {"type": "linksmpp", "system_id": "gw", "password": "pw", **keys}
        tree["connectors"]["link"] = {k: v for k, v in table.items() if v is not DROP}

    return mutate


def _route(**keys: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation appending a [[routes]] entry (to connector "main" unless given)."""

    def mutate(tree: dict[str, Any]) -> None:
        tree.setdefault("routes", []).append({"connector": "main", **keys})

    return mutate


def _account_too(**keys: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation appending a second account, shop2, with `keys`."""

    def mutate(tree: dict[str, Any]) -> None:
        tree["accounts"].append(
            {"system_id": "shop2", "password": HASH, "connector": "main", **keys}
        )

    return mutate


def _both(
    *mutations: Callable[[dict[str, Any]], None],
) -> Callable[[dict[str, Any]], None]:
    def mutate(tree: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(tree)

    return mutate


ERRORS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("unknown top-level key", _set("colour", "blue"), "colour"),
    ("unknown key in smpp", _set("smpp.windw", 10), "smpp.windw"),
    ("unknown key in store", _set("store.paht", "x"), "store.paht"),
    ("unknown key in an account", _set("accounts.0.rat", 10), "accounts[0].rat"),
    ("unknown key in a connector", _set("connectors.main.bse_url", "x"), "connectors.main.bse_url"),
    (
        "unknown key in retry",
        _set("connectors.main.retry.inital", 1),
        "connectors.main.retry.inital",
    ),
    ("missing accounts", _delete("accounts"), "accounts"),
    ("empty accounts", _set("accounts", []), "accounts"),
    ("no connectors", _set("connectors", {}), "connectors"),
    ("account password not a hash", _set("accounts.0.password", "secret"), "accounts[0].password"),
    ("account without password", _delete("accounts.0.password"), "accounts[0].password"),
    ("connector name unknown", _set("accounts.0.connector", "nope"), "accounts[0].connector"),
    ("duplicate system_id", _second_account, "accounts[1].system_id"),
    ("system_id too long", _set("accounts.0.system_id", "x" * 16), "accounts[0].system_id"),
    ("bad duration string", _set("smpp.bind_timeout", "ten seconds"), "smpp.bind_timeout"),
    ("bad duration unit", _set("store.retention", "7w"), "store.retention"),
    ("WAL kept above its limit", _set("store.wal_keep_mb", 65), "store.wal_keep_mb"),
    ("WAL limit zero", _set("store.wal_limit_mb", 0), "store.wal_limit_mb"),
    ("boolean duration", _set("smpp.inactivity_timeout", True), "smpp.inactivity_timeout"),
    ("negative duration", _set("smpp.enquire_link_interval", -1), "smpp.enquire_link_interval"),
    ("rate negative", _set("accounts.0.rate", -1), "accounts[0].rate"),
    ("rate not a number", _set("accounts.0.rate", "fast"), "accounts[0].rate"),
    ("window zero", _set("smpp.window", 0), "smpp.window"),
    (
        "message_id_format invalid",
        _set("accounts.0.message_id_format", "base64"),
        "accounts[0].message_id_format",
    ),
    (
        "uuid with a short id cap",
        lambda t: t["accounts"][0].update(message_id_format="uuid", max_message_id_length=18),
        "accounts[0].max_message_id_length",
    ),
    ("max_batch > 1000", _set("connectors.main.max_batch", 1001), "connectors.main.max_batch"),
    ("common without base_url", _delete("connectors.main.base_url"), "connectors.main.base_url"),
    ("base_url not http", _set("connectors.main.base_url", "ftp://x"), "connectors.main.base_url"),
    (
        "connector type unknown",
        _set("connectors.main.type", "carrier-pigeon"),
        "connectors.main.type",
    ),
    ("password_env unset", _env_password, "connectors.main.password_env"),
    (
        "password_file with a NUL",
        _both(_delete("connectors.main.password"), _set("connectors.main.password_file", "a\0b")),
        "connectors.main.password_file",
    ),
    (
        "two ways to give one secret",
        _set("connectors.main.password_env", "HOME"),
        "connectors.main.password",
    ),
    (
        "callback password without user",
        _set("http.callback_password", "x"),
        "http.callback_password",
    ),
    (
        "bad network",
        _set("accounts.0.allowed_networks", ["10.0.0.300/8"]),
        "accounts[0].allowed_networks",
    ),
    ("accept invalid", _set("accounts.0.accept", "later"), "accounts[0].accept"),
    # short ids for SMPP 3.3 binds
    (
        "short_message_id invalid",
        _set("accounts.0.short_message_id", "uuid"),
        "accounts[0].short_message_id",
    ),
    (
        "short_message_id not a string",
        _set("accounts.0.short_message_id", 8),
        "accounts[0].short_message_id",
    ),
    # [smpp] window_overrun, max_destinations
    ("window_overrun invalid", _set("smpp.window_overrun", "drop"), "smpp.window_overrun"),
    ("window_overrun boolean", _set("smpp.window_overrun", True), "smpp.window_overrun"),
    ("max_destinations zero", _set("smpp.max_destinations", 0), "smpp.max_destinations"),
    ("max_destinations 255", _set("smpp.max_destinations", 255), "smpp.max_destinations"),
    ("max_destinations text", _set("smpp.max_destinations", "many"), "smpp.max_destinations"),
    # premium values
    ("premium unknown field", _set("accounts.0.premium.price", 5), "accounts[0].premium.price"),
    ("premium tariff text", _set("accounts.0.premium.tariff", "5"), "accounts[0].premium.tariff"),
    ("premium age negative", _set("accounts.0.premium.age", -1), "accounts[0].premium.age"),
    (
        "premium currency number",
        _set("accounts.0.premium.currency", 578),
        "accounts[0].premium.currency",
    ),
    # vendor TLVs, per account and top level
    ("vendor_tlvs not a table", _set("accounts.0.vendor_tlvs", 5), "accounts[0].vendor_tlvs"),
    ("top-level vendor_tlvs not a table", _set("vendor_tlvs", []), "vendor_tlvs"),
    (
        "vendor tag below the vendor range",
        _set("accounts.0.vendor_tlvs.0x0424", {"field": "tariff"}),
        "accounts[0].vendor_tlvs.0x0424",
    ),
    (
        "vendor tag above the vendor range",
        _set("vendor_tlvs.0x4000", {"field": "tariff"}),
        "vendor_tlvs.0x4000",
    ),
    (
        "decimal vendor tag below the range",
        lambda t: t.setdefault("vendor_tlvs", {}).update({"5119": {"field": "tariff"}}),
        "vendor_tlvs.5119",
    ),
    (
        "vendor tag not a number",
        _set("accounts.0.vendor_tlvs.tariff", {"field": "tariff"}),
        "accounts[0].vendor_tlvs.tariff",
    ),
    (
        "vendor tag with underscores",
        _set("accounts.0.vendor_tlvs.0x14_01", {"field": "tariff"}),
        "accounts[0].vendor_tlvs.0x14_01",
    ),
    (
        "vendor tag given twice",
        lambda t: t["accounts"][0].update(
            vendor_tlvs={"0x1401": {"field": "tariff"}, "5121": {"field": "age"}}
        ),
        "accounts[0].vendor_tlvs.5121",
    ),
    (
        "vendor row not a table",
        _set("accounts.0.vendor_tlvs.0x1401", "tariff"),
        "accounts[0].vendor_tlvs.0x1401",
    ),
    (
        "vendor row without field",
        _set("accounts.0.vendor_tlvs.0x1401", {"type": "int"}),
        "accounts[0].vendor_tlvs.0x1401.field",
    ),
    (
        "vendor field unknown",
        _set("accounts.0.vendor_tlvs.0x1401", {"field": "price"}),
        "accounts[0].vendor_tlvs.0x1401.field",
    ),
    (
        "vendor customParameters without a name",
        _set("vendor_tlvs.0x1401", {"field": "customParameters."}),
        "vendor_tlvs.0x1401.field",
    ),
    (
        "vendor customParameters the gateway sets",
        _set("vendor_tlvs.0x1401", {"field": "customParameters.scheduledTime"}),
        "vendor_tlvs.0x1401.field",
    ),
    (
        "vendor type unknown",
        _set("accounts.0.vendor_tlvs.0x1401", {"field": "currency", "type": "float"}),
        "accounts[0].vendor_tlvs.0x1401.type",
    ),
    (
        "vendor integer field with a string type",
        _set("accounts.0.vendor_tlvs.0x1401", {"field": "tariff", "type": "string"}),
        "accounts[0].vendor_tlvs.0x1401.type",
    ),
    (
        "two vendor tags fill one field",
        lambda t: t["accounts"][0].update(
            vendor_tlvs={"0x1401": {"field": "tariff"}, "0x1402": {"field": "tariff"}}
        ),
        "accounts[0].vendor_tlvs.0x1402.field",
    ),
    (
        "unknown key in a vendor row",
        _set("vendor_tlvs.0x1401", {"field": "tariff", "width": 4}),
        "vendor_tlvs.0x1401.width",
    ),
    # type = "linksmpp"
    ("linksmpp unknown key", _link(platform_id="P"), "connectors.link.platform_id"),
    ("linksmpp without system_id", _link(system_id=DROP), "connectors.link.system_id"),
    ("linksmpp empty system_id", _link(system_id=""), "connectors.link.system_id"),
    ("linksmpp system_id too long", _link(system_id="x" * 16), "connectors.link.system_id"),
    ("linksmpp without password", _link(password=DROP), "connectors.link.password"),
    ("linksmpp password too long", _link(password="x" * 17), "connectors.link.password"),
    ("linksmpp password not Latin-1", _link(password="пароль"), "connectors.link.password"),
    (
        "linksmpp password_env unset",
        _link(password=DROP, password_env=UNSET),
        "connectors.link.password_env",
    ),
    ("linksmpp two passwords", _link(password_file="/x"), "connectors.link.password"),
    ("linksmpp system_type too long", _link(system_type="x" * 13), "connectors.link.system_type"),
    ("linksmpp bind receiver", _link(bind="receiver"), "connectors.link.bind"),
    ("linksmpp window zero", _link(window=0), "connectors.link.window"),
    ("linksmpp rate zero", _link(rate=0), "connectors.link.rate"),
    ("linksmpp rate negative", _link(rate=-5), "connectors.link.rate"),
    ("linksmpp rate text", _link(rate="5/s"), "connectors.link.rate"),
    ("linksmpp burst under one", _link(burst=0.5), "connectors.link.burst"),
    (
        "enquire_link at LINK's idle limit",
        _link(enquire_link_interval=300),
        "connectors.link.enquire_link_interval",
    ),
    ("enquire_link 5m", _link(enquire_link_interval="5m"), "connectors.link.enquire_link_interval"),
    ("enquire_link 1h", _link(enquire_link_interval="1h"), "connectors.link.enquire_link_interval"),
    ("enquire_link zero", _link(enquire_link_interval=0), "connectors.link.enquire_link_interval"),
    ("reconnect_delay negative", _link(reconnect_delay=-1), "connectors.link.reconnect_delay"),
    ("bind_timeout zero", _link(bind_timeout="0s"), "connectors.link.bind_timeout"),
    ("response_timeout text", _link(response_timeout="soon"), "connectors.link.response_timeout"),
    ("throttle_backoff zero", _link(throttle_backoff=0), "connectors.link.throttle_backoff"),
    (
        "throttle_backoff_max below throttle_backoff",
        _link(throttle_backoff="10s", throttle_backoff_max="5s"),
        "connectors.link.throttle_backoff_max",
    ),
    ("linksmpp tls text", _link(tls="yes"), "connectors.link.tls"),
    ("linksmpp tls number", _link(tls=1), "connectors.link.tls"),
    ("linksmpp port zero", _link(port=0), "connectors.link.port"),
    ("linksmpp port too big", _link(port=65536), "connectors.link.port"),
    ("linksmpp port text", _link(port="4002"), "connectors.link.port"),
    ("linksmpp host empty", _link(host=""), "connectors.link.host"),
    ("endpoint and host", _link(endpoint="tls:h:1", host="h"), "connectors.link.endpoint"),
    ("endpoint and tls", _link(endpoint="tls:h:1", tls=False), "connectors.link.endpoint"),
    ("endpoint ssl", _link(endpoint="ssl:h:4002"), "connectors.link.endpoint"),
    ("endpoint without port", _link(endpoint="tls:h"), "connectors.link.endpoint"),
    ("endpoint without host", _link(endpoint="tls::4002"), "connectors.link.endpoint"),
    ("endpoint port too big", _link(endpoint="tls:h:99999"), "connectors.link.endpoint"),
    ("endpoint Twisted style", _link(endpoint="tls:host=h:port=1"), "connectors.link.endpoint"),
    ("ca_file missing", _link(ca_file="/nonexistent/ca.pem"), "connectors.link.ca_file"),
    ("ca_file without TLS", _link(endpoint="tcp:h:1", ca_file="/x"), "connectors.link.ca_file"),
    # [connectors.NAME.breaker], any type
    ("breaker not a table", _set("connectors.main.breaker", 5), "connectors.main.breaker"),
    (
        "breaker failures zero",
        _set("connectors.main.breaker.failures", 0),
        "connectors.main.breaker.failures",
    ),
    (
        "breaker probes zero",
        _set("connectors.main.breaker.probes", 0),
        "connectors.main.breaker.probes",
    ),
    (
        "breaker open_for zero",
        _set("connectors.main.breaker.open_for", 0),
        "connectors.main.breaker.open_for",
    ),
    (
        "breaker open_for text",
        _set("connectors.main.breaker.open_for", "long"),
        "connectors.main.breaker.open_for",
    ),
    (
        "breaker unknown key",
        _set("connectors.main.breaker.threshold", 3),
        "connectors.main.breaker.threshold",
    ),
    (
        "linksmpp breaker",
        _both(_link(), _set("connectors.link.breaker.probes", 0)),
        "connectors.link.breaker.probes",
    ),
    # [[routes]]
    ("routes a table", _set("routes", {"connector": "main"}), "routes"),
    ("route not a table", _set("routes", ["main"]), "routes[0]"),
    ("route without connector", _route(connector=DROP), "routes[0].connector"),
    ("route to an unknown connector", _route(connector="nope"), "routes[0].connector"),
    ("route for an unknown account", _route(accounts=["shop1", "ghost"]), "routes[0].accounts"),
    ("route accounts not strings", _route(accounts=[1]), "routes[0].accounts"),
    ("route unknown fallback", _route(fallback="nope"), "routes[0].fallback"),
    ("route fallback itself", _route(fallback="main"), "routes[0].fallback"),
    ("route bad prefix", _route(prefixes=["47x"]), "routes[0].prefixes"),
    ("route prefix number", _route(prefixes=[47]), "routes[0].prefixes"),
    ("route prefix twice", _route(prefixes=["47", "+47"]), "routes[0].prefixes"),
    ("route empty prefix", _route(prefixes=["+"]), "routes[0].prefixes"),
    ("route unknown key", _route(prefix=["47"]), "routes[0].prefix"),
    ("second route wrong", _both(_route(), _route(connector="nope")), "routes[1].connector"),
    # [mo]
    ("mo not a table", _set("mo", "x"), "mo"),
    ("mo callback_path relative", _set("mo.callback_path", "mo"), "mo.callback_path"),
    (
        "mo callback_path the dlr one",
        _set("mo.callback_path", "/callbacks/dlr"),
        "mo.callback_path",
    ),
    (
        "mo callback_path below dlr",
        _set("mo.callback_path", "/callbacks/dlr/mo"),
        "mo.callback_path",
    ),
    ("mo callback_path above dlr", _set("mo.callback_path", "/callbacks/"), "mo.callback_path"),
    ("mo ttl zero", _set("mo.ttl", 0), "mo.ttl"),
    ("mo ttl text", _set("mo.ttl", "forever"), "mo.ttl"),
    ("mo default_account unknown", _set("mo.default_account", "ghost"), "mo.default_account"),
    ("mo unknown key", _set("mo.path", "/mo"), "mo.path"),
    # accounts: mo_numbers, mo_keywords, route_tlv
    ("mo_numbers not digits", _set("accounts.0.mo_numbers", ["22-33"]), "accounts[0].mo_numbers"),
    ("mo_numbers integers", _set("accounts.0.mo_numbers", [2233]), "accounts[0].mo_numbers"),
    ("mo_numbers too long", _set("accounts.0.mo_numbers", ["1" * 16]), "accounts[0].mo_numbers"),
    (
        "mo_numbers given twice",
        _set("accounts.0.mo_numbers", ["4790001234", "+4790001234"]),
        "accounts[0].mo_numbers",
    ),
    (
        "mo_keywords without numbers",
        _set("accounts.0.mo_keywords", ["SHOP"]),
        "accounts[0].mo_keywords",
    ),
    (
        "mo_keywords two words",
        lambda t: t["accounts"][0].update(mo_numbers=["2233"], mo_keywords=["BUY NOW"]),
        "accounts[0].mo_keywords",
    ),
    (
        "mo_keywords twice",
        lambda t: t["accounts"][0].update(mo_numbers=["2233"], mo_keywords=["stop", "STOP"]),
        "accounts[0].mo_keywords",
    ),
    (
        "a number claimed twice",
        _both(_set("accounts.0.mo_numbers", ["2233"]), _account_too(mo_numbers=["2233"])),
        "accounts[1].mo_numbers",
    ),
    (
        "an MSISDN claimed twice, written two ways",
        _both(
            _set("accounts.0.mo_numbers", ["4790001234"]), _account_too(mo_numbers=["+4790001234"])
        ),
        "accounts[1].mo_numbers",
    ),
    (
        "a number and keyword claimed twice",
        _both(
            lambda t: t["accounts"][0].update(mo_numbers=["2233"], mo_keywords=["SHOP"]),
            _account_too(mo_numbers=["2233"], mo_keywords=["stop", "shop"]),
        ),
        "accounts[1].mo_keywords",
    ),
    (
        "route_tlv below the vendor range",
        _set("accounts.0.route_tlv", 0x13FF),
        "accounts[0].route_tlv",
    ),
    (
        "route_tlv above the vendor range",
        _set("accounts.0.route_tlv", "0x4000"),
        "accounts[0].route_tlv",
    ),
    ("route_tlv text", _set("accounts.0.route_tlv", "connector"), "accounts[0].route_tlv"),
    ("route_tlv boolean", _set("accounts.0.route_tlv", True), "accounts[0].route_tlv"),
    ("route_tlv float", _set("accounts.0.route_tlv", 5121.0), "accounts[0].route_tlv"),
]


@pytest.mark.parametrize(("mutate", "key"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_name_the_key(
    mutate: Callable[[dict[str, Any]], None], key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    tree = copy.deepcopy(minimal())
    mutate(tree)
    with pytest.raises(ConfigError) as info:
        parse(tree, source="bad.toml")
    error = info.value
    assert error.key == key, error
    assert error.source == "bad.toml"
    assert error.problem
    assert str(error) == f"bad.toml: {key}: {error.problem}"


def test_vendor_tlv_errors_read_file_key_problem(tmp_path: Path) -> None:
    path = tmp_path / "vendor.toml"
    path.write_text(
        f"""
[connectors.sim]
type = "simulator"

[[accounts]]
system_id = "shop1"
password = "{HASH}"
connector = "sim"

[accounts.vendor_tlvs]
0x1401 = {{ field = "tariff", type = "string" }}
"""
    )
    with pytest.raises(ConfigError) as info:
        load(path)
    key = "accounts[0].vendor_tlvs.0x1401.type"
    problem = 'tariff is an integer in Common: use type = "int"'
    assert str(info.value) == f"{path}: {key}: {problem}"


def test_vendor_tlv_type_defaults_to_the_fields_own() -> None:
    tree = minimal()
    tree["vendor_tlvs"] = {
        "0x1401": {"field": "tariff"},
        "0x1402": {"field": "productDescription"},
        "0x1403": {"field": "customParameters.x"},
    }
    policy = parse(tree).accounts["shop1"].policy
    assert dict(policy.vendor_tlvs) == {
        0x1401: VendorTlv("tariff", "int"),
        0x1402: VendorTlv("productDescription", "string"),
        0x1403: VendorTlv("customParameters.x", "string"),
    }


def test_an_empty_account_table_opts_out_of_the_default() -> None:
    tree = minimal()
    tree["vendor_tlvs"] = {"0x1401": {"field": "tariff"}}
    tree["accounts"].append(
        {"system_id": "shop2", "password": HASH, "connector": "main", "vendor_tlvs": {}}
    )
    cfg = parse(tree)
    assert cfg.accounts["shop1"].policy.vendor_tags == frozenset({0x1401})
    assert cfg.accounts["shop2"].policy.vendor_tags == frozenset()


@pytest.mark.parametrize(
    ("key", "tag"),
    [("0x1400", 0x1400), ("0X3FFF", 0x3FFF), ("0x1aBc", 0x1ABC), ("5120", 5120), ("16383", 16383)],
)
def test_vendor_tag_keys(key: str, tag: int) -> None:
    tree = minimal()
    tree["accounts"][0]["vendor_tlvs"] = {key: {"field": "age"}}
    assert parse(tree).accounts["shop1"].policy.vendor_tags == frozenset({tag})


@pytest.mark.parametrize("key", ["0x13FF", "0x4000", "5119", "16384", "0x", "-5121", "0o12001"])
def test_vendor_tag_keys_refused(key: str) -> None:
    tree = minimal()
    tree["accounts"][0]["vendor_tlvs"] = {key: {"field": "age"}}
    with pytest.raises(ConfigError) as info:
        parse(tree, source="t.toml")
    assert info.value.key == f"accounts[0].vendor_tlvs.{key}"
    assert str(info.value).startswith(f"t.toml: accounts[0].vendor_tlvs.{key}: ")


def test_result_code_row_errors() -> None:
    tree = minimal()
    tree["result_codes"] = {"1006": 5}
    with pytest.raises(ConfigError) as info:
        parse(tree)
    assert info.value.key == "result_codes.1006"
    tree["result_codes"] = {"1006": {"stat": "UNDELIV", "err": 1, "colour": "red"}}
    with pytest.raises(ConfigError) as info:
        parse(tree)
    assert info.value.key == "result_codes.1006.colour"


def test_result_code_bad_stat_names_the_row() -> None:
    tree = minimal()
    tree["result_codes"] = {"1006": {"stat": "GONE", "err": 1}}
    with pytest.raises(ConfigError) as info:
        parse(tree)
    assert info.value.key == "result_codes.1006"


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[smpp]\nwindow = "many"\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.source == str(path)
    assert info.value.key == "smpp.window"
    assert str(info.value).startswith(f"{path}: smpp.window: ")


def test_load_syntax_error_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "syntax.toml"
    path.write_text("[smpp\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert (info.value.source, info.value.key) == (str(path), "(syntax)")
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "missing.toml")
    assert info.value.key == "(file)"


def test_password_env_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMPPGW_TEST_LINK_PASSWORD", "from-env")
    tree = minimal()
    del tree["connectors"]["main"]["password"]
    tree["connectors"]["main"]["password_env"] = "SMPPGW_TEST_LINK_PASSWORD"
    cfg = parse(tree)
    assert cfg.connectors["main"].common.password == "from-env"  # type: ignore[union-attr]


def test_password_file_resolves(tmp_path: Path) -> None:
    secret = tmp_path / "link-password"
    secret.write_text("from-file\n")
    callback = tmp_path / "callback"
    callback.write_text("  cb-secret  \n")
    tree = minimal()
    del tree["connectors"]["main"]["password"]
    tree["connectors"]["main"]["password_file"] = str(secret)
    tree["http"] = {"callback_username": "link", "callback_password_file": str(callback)}
    cfg = parse(tree)
    assert cfg.connectors["main"].common.password == "from-file"  # type: ignore[union-attr]
    assert (cfg.http.callback_username, cfg.http.callback_password) == ("link", "cb-secret")


def test_password_file_unreadable(tmp_path: Path) -> None:
    tree = minimal()
    del tree["connectors"]["main"]["password"]
    tree["connectors"]["main"]["password_file"] = str(tmp_path / "absent")
    with pytest.raises(ConfigError) as info:
        parse(tree)
    assert info.value.key == "connectors.main.password_file"


def test_example_configs_exist() -> None:
    assert sorted(ETC.rglob("*.toml")), f"no example configs under {ETC}"


def _env_names(node: Any) -> set[str]:
    """Every variable a config names through an `x_env` key."""
    if isinstance(node, dict):
        names = {v for k, v in node.items() if k.endswith("_env") and isinstance(v, str)}
        for value in node.values():
            names |= _env_names(value)
        return names
    if isinstance(node, list):
        return set().union(*(_env_names(v) for v in node))
    return set()


@pytest.mark.parametrize("path", sorted(ETC.rglob("*.toml")), ids=lambda p: str(p.relative_to(ETC)))
def test_example_config_loads(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Secrets an example takes from the environment are set, as an operator would
    # (short enough for an SMPP bind password: 16 characters).
    with path.open("rb") as f:
        for name in _env_names(tomllib.load(f)):
            monkeypatch.setenv(name, "example-secret")
    cfg = load(path)
    assert cfg.source == str(path)
    assert cfg.accounts and cfg.connectors
    for account in cfg.accounts.values():
        assert account.connector in cfg.connectors


def test_example_vendor_tlvs_block_parses() -> None:
    # The production example keeps its [vendor_tlvs] commented out (a tariff TLV
    # makes messages premium); uncommented, it must still be valid.
    lines = (ETC / "gateway.example.toml").read_text().splitlines()
    start = lines.index("# [vendor_tlvs]")
    block = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        block.append(line[2:])
    table = tomllib.loads("\n".join(block))["vendor_tlvs"]
    tree = minimal()
    tree["vendor_tlvs"] = table
    policy = parse(tree).accounts["shop1"].policy
    assert len(policy.vendor_tags) == len(table) >= 5
    assert policy.vendor_tlvs[0x1401] == VendorTlv("tariff", "int")


# --- property: whatever the TOML holds, the only failure is a ConfigError --------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["30s", "5m", "7d", "tcp:2775", "common", "simulator", "basic", "x"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_keys = st.sampled_from(
    [
        "smpp",
        "http",
        "store",
        "accounts",
        "connectors",
        "result_codes",
        "log_format",
        "listen",
        "window",
        "rate",
        "type",
        "base_url",
        "password",
        "system_id",
        "retention",
        "vendor_tlvs",
        "window_overrun",
        "max_destinations",
        "short_message_id",
        "routes",
        "mo",
        "mo_numbers",
        "mo_keywords",
        "route_tlv",
        "endpoint",
        "breaker",
        "prefixes",
        "fallback",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(_keys, _values, max_size=5),
    st.sampled_from(
        [
            "smpp",
            "http",
            "store",
            "accounts",
            "connectors",
            "result_codes",
            "vendor_tlvs",
            "routes",
            "mo",
        ]
    ),
    _values,
)
def test_random_trees_fail_only_with_config_error(
    noise: dict[str, Any], section: str, value: Any
) -> None:
    for tree in (noise, {**minimal(), section: value}, {**minimal(), **noise}):
        try:
            parse(tree)
        except ConfigError as e:
            assert e.key and e.problem


_SECTION_KEYS = {
    "smpp": [
        "listen",
        "system_id",
        "window",
        "bind_timeout",
        "inactivity_timeout",
        "enquire_link_interval",
        "response_timeout",
        "receipt_window",
        "max_pdu_length",
        "failed_bind_delay",
        "window_overrun",
        "max_destinations",
    ],
    "http": [
        "listen",
        "public_url",
        "callback_path",
        "callback_username",
        "callback_password",
        "callback_password_env",
        "callback_password_file",
        "max_body",
    ],
    "store": [
        "path",
        "retention",
        "synchronous",
        "wal_limit_mb",
        "wal_keep_mb",
        "memory_window",
        "reserve_mb",
    ],
    "account": [
        "system_id",
        "password",
        "connector",
        "allowed_networks",
        "max_binds",
        "rate",
        "burst",
        "max_queue",
        "message_id_format",
        "max_message_id_length",
        "accept",
        "default_country_code",
        "default_alphabet",
        "premium",
        "custom_parameters",
        "short_message_id",
        "vendor_tlvs",
        "mo_numbers",
        "mo_keywords",
        "route_tlv",
    ],
    "connector": [
        "type",
        "base_url",
        "send_path",
        "auth",
        "username",
        "password",
        "password_env",
        "platform_id",
        "timeout",
        "max_connections",
        "max_batch",
        "batch_delay",
        "ca_file",
        "retry",
        "delay",
        "result_code",
        "gate_id",
        "breaker",
    ],
    "linksmpp": [
        "endpoint",
        "host",
        "port",
        "tls",
        "ca_file",
        "system_id",
        "password",
        "password_env",
        "password_file",
        "system_type",
        "bind",
        "window",
        "rate",
        "burst",
        "enquire_link_interval",
        "reconnect_delay",
        "bind_timeout",
        "response_timeout",
        "throttle_backoff",
        "throttle_backoff_max",
        "retry",
        "breaker",
    ],
    "breaker": ["failures", "open_for", "probes"],
    "route": ["accounts", "prefixes", "connector", "fallback"],
    "mo": ["callback_path", "ttl", "default_account"],
}


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(_SECTION_KEYS)), st.data())
def test_any_value_for_any_known_key_fails_only_with_config_error(
    section: str, data: st.DataObject
) -> None:
    key = data.draw(st.sampled_from(_SECTION_KEYS[section]))
    value = data.draw(_values)
    tree = minimal()
    if section == "account":
        tree["accounts"][0][key] = value
    elif section == "connector":
        tree["connectors"]["main"][key] = value
    elif section == "linksmpp":
        tree = _with_link(**{key: value})
    elif section == "breaker":
        tree["connectors"]["main"]["breaker"] = {key: value}
    elif section == "route":
        tree["routes"] = [{"connector": "main", key: value}]
    else:
        tree[section] = {key: value}
    try:
        parse(tree)
    except ConfigError as e:
        assert e.key and e.problem


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_numbers_and_durations_must_be_finite(value: float) -> None:
    for key, tree in (
        (
            "accounts[0].rate",
            {**minimal(), "accounts": [{**minimal()["accounts"][0], "rate": value}]},
        ),
        ("smpp.bind_timeout", {**minimal(), "smpp": {"bind_timeout": value}}),
    ):
        with pytest.raises(ConfigError) as info:
            parse(tree)
        assert info.value.key == key


_tag_keys = st.one_of(
    st.sampled_from(["0x1401", "0X3FFF", "5121", "0x0424", "0x4000", "0x", "", "tariff", "1e4"]),
    st.integers(0, 0x10000).map(hex),
    st.integers(0, 70000).map(str),
    st.text(max_size=6),
)
_vendor_rows = st.one_of(
    _values,
    st.fixed_dictionaries(
        {"field": st.one_of(_scalars, st.sampled_from(sorted(PREMIUM_FIELDS)))},
        optional={
            "type": st.one_of(_scalars, st.sampled_from(["int", "string", "hex"])),
            "width": _scalars,
        },
    ),
    st.fixed_dictionaries(
        {
            "field": st.text(max_size=10).map(lambda n: "customParameters." + n),
            "type": st.sampled_from(["int", "string", "hex", "float"]),
        }
    ),
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(_tag_keys, _vendor_rows, max_size=4), st.booleans())
def test_any_vendor_tlv_table_fails_only_with_config_error(
    table: dict[str, Any], per_account: bool
) -> None:
    tree = minimal()
    if per_account:
        tree["accounts"][0]["vendor_tlvs"] = table
    else:
        tree["vendor_tlvs"] = table
    try:
        cfg = parse(tree, source="v.toml")
    except ConfigError as e:
        assert e.key and e.problem
        assert str(e) == f"v.toml: {e.key}: {e.problem}"
        assert e.key.startswith("accounts[0].vendor_tlvs" if per_account else "vendor_tlvs")
        return
    policy = cfg.accounts["shop1"].policy
    assert policy.vendor_tags == frozenset(policy.vendor_tlvs)
    assert all(0x1400 <= tag <= 0x3FFF for tag in policy.vendor_tags)
    assert len({spec.field for spec in policy.vendor_tlvs.values()}) == len(policy.vendor_tlvs)


# --- LINK SMPP connectors -------------------------------------------------------


def _with_link(**keys: Any) -> dict[str, Any]:
    tree = minimal()
    _link(**keys)(tree)
    return tree


def test_linksmpp_defaults_are_links_figures() -> None:
    connector = parse(_with_link()).connectors["link"]
    assert (connector.type, connector.common) == ("linksmpp", None)
    assert connector.linksmpp == LinkSmppSettings(system_id="gw", password="pw")
    link = connector.linksmpp
    assert (link.host, link.port, link.tls, link.ca_file) == (
        "ham.smpp.api.linkmobility.de",
        4002,
        True,
        None,
    )
    assert (link.bind, link.window, link.rate, link.burst) == ("transceiver", 1, 5.0, 5.0)
    assert (link.enquire_link_interval, link.reconnect_delay) == (60.0, 30.0)
    assert connector.retry == config.RetrySettings()
    assert connector.breaker == config.BreakerSettings(failures=5, open_for=30.0, probes=1)
    assert "pw" not in repr(connector)


def test_linksmpp_every_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("SMPPGW_TEST_LINK_SMPP", "from-env")
    tree = _with_link(
        password=DROP,
        password_env="SMPPGW_TEST_LINK_SMPP",
        host="smpp.test",
        port=4003,
        tls=True,
        ca_file=str(ca),
        system_type="VMA",
        bind="pair",
        window=2,
        rate=10,
        enquire_link_interval="299s",
        reconnect_delay="1m",
        bind_timeout=5,
        response_timeout="10s",
        throttle_backoff="500ms",
        throttle_backoff_max="2m",
        retry={"initial": 2},
        breaker={"failures": 2, "open_for": "1m", "probes": 3},
    )
    connector = parse(tree).connectors["link"]
    assert connector.linksmpp == LinkSmppSettings(
        host="smpp.test",
        port=4003,
        tls=True,
        ca_file=str(ca),
        system_id="gw",
        password="from-env",
        system_type="VMA",
        bind="pair",
        window=2,
        rate=10.0,
        burst=10.0,  # the rate, unless given
        enquire_link_interval=299.0,
        reconnect_delay=60.0,
        bind_timeout=5.0,
        response_timeout=10.0,
        throttle_backoff=0.5,
        throttle_backoff_max=120.0,
    )
    assert connector.retry.initial == 2.0
    assert connector.breaker == config.BreakerSettings(failures=2, open_for=60.0, probes=3)


def test_linksmpp_password_file_and_plain_tcp(tmp_path: Path) -> None:
    secret = tmp_path / "link-smpp"
    secret.write_text("s3cret\n")
    tree = _with_link(password=DROP, password_file=str(secret), tls=False, port=2775)
    link = parse(tree).connectors["link"].linksmpp
    assert link is not None
    assert (link.password, link.tls, link.port) == ("s3cret", False, 2775)


@pytest.mark.parametrize(
    ("endpoint", "host", "port", "tls"),
    [
        ("tls:ham.smpp.api.linkmobility.de:4002", "ham.smpp.api.linkmobility.de", 4002, True),
        ("tcp:127.0.0.1:2775", "127.0.0.1", 2775, False),
        ("tls:[2001:db8::1]:4002", "2001:db8::1", 4002, True),
    ],
)
def test_linksmpp_endpoint_shorthand(endpoint: str, host: str, port: int, tls: bool) -> None:
    link = parse(_with_link(endpoint=endpoint)).connectors["link"].linksmpp
    assert link is not None
    assert (link.host, link.port, link.tls) == (host, port, tls)


def test_linksmpp_small_rate_gets_a_burst_of_one() -> None:
    link = parse(_with_link(rate=0.5)).connectors["link"].linksmpp
    assert link is not None
    assert (link.rate, link.burst) == (0.5, 1.0)


def test_enquire_link_error_says_why() -> None:
    with pytest.raises(ConfigError) as info:
        parse(_with_link(enquire_link_interval="5m"), source="l.toml")
    assert str(info.value) == (
        "l.toml: connectors.link.enquire_link_interval: "
        "must be under 300 s: LINK closes a link idle for 5 minutes"
    )


def test_accounts_may_use_a_linksmpp_connector() -> None:
    tree = _with_link()
    tree["accounts"][0]["connector"] = "link"
    account = parse(tree).accounts["shop1"]
    assert account.connector == "link"
    assert (account.policy.platform_id, account.policy.gate_ids) == ("", ())


def test_breaker_defaults_on_every_type() -> None:
    tree = minimal()
    tree["connectors"]["sim"] = {"type": "simulator", "breaker": {"open_for": "2m"}}
    cfg = parse(tree)
    assert cfg.connectors["main"].breaker == config.BreakerSettings()
    assert cfg.connectors["sim"].breaker == config.BreakerSettings(open_for=120.0)


# --- routes ---------------------------------------------------------------------


def test_routes_parse_in_order_with_normalised_prefixes() -> None:
    tree = _with_link()
    _account_too()(tree)
    tree["routes"] = [
        {
            "accounts": ["shop1"],
            "prefixes": ["4790", "+4791"],
            "connector": "link",
            "fallback": "main",
        },
        {"prefixes": ["+46"], "connector": "link"},
        {"accounts": ["shop2", "shop1"], "connector": "main", "fallback": "link"},
        {"accounts": [], "prefixes": [], "connector": "link"},
    ]
    cfg = parse(tree)
    assert cfg.routes == (
        Route(frozenset({"shop1"}), ("+4790", "+4791"), "link", "main"),
        Route(frozenset(), ("+46",), "link", None),
        Route(frozenset({"shop1", "shop2"}), (), "main", "link"),
        Route(frozenset(), (), "link", None),
    )


def test_no_routes_by_default() -> None:
    assert parse(minimal()).routes == ()


# --- MO -------------------------------------------------------------------------


def test_mo_defaults() -> None:
    cfg = parse(minimal())
    assert cfg.mo == config.MoSettings(callback_path="/callbacks/mo", ttl=48 * 3600.0)
    assert cfg.mo.default_account is None
    shop1 = cfg.accounts["shop1"]
    assert (shop1.mo_numbers, shop1.mo_keywords, shop1.route_tlv) == ((), (), None)


def test_mo_numbers_keywords_and_sharing() -> None:
    tree = minimal()
    tree["accounts"][0].update(mo_numbers=["2233", "4790001234", "+4790005678"])
    _account_too(mo_numbers=["2233"], mo_keywords=["shop", "Buy"])(tree)
    tree["accounts"].append(
        {
            "system_id": "shop3",
            "password": HASH,
            "connector": "main",
            "mo_numbers": ["2233", "004790009999"],
            "mo_keywords": ["STOP"],
        }
    )
    tree["mo"] = {"callback_path": "/mo", "ttl": "2d", "default_account": "shop3"}
    cfg = parse(tree)
    assert cfg.mo == config.MoSettings(callback_path="/mo", ttl=172800.0, default_account="shop3")
    assert cfg.accounts["shop1"].mo_numbers == ("2233", "+4790001234", "+4790005678")
    assert cfg.accounts["shop2"].mo_keywords == ("SHOP", "BUY")
    assert cfg.accounts["shop3"].mo_numbers == ("2233", "+4790009999")
    routes = _MoOwners(cfg)
    assert routes.account_for("2233", "buy 2") == "shop2"
    assert routes.account_for("2233", "Stop") == "shop3"
    assert routes.account_for("2233", "hello") == "shop1"
    assert routes.account_for("+4790009999", "hello") == "shop3"  # the default
    assert routes.account_for("4790001234", "stop") == "shop1"


class _MoOwners:
    """The account an MO to `number` saying `text` goes to, as the gateway routes it."""

    def __init__(self, cfg: config.Config) -> None:
        self._router = MoRouter.from_config(cfg)

    def account_for(self, number: str, text: str) -> str | None:
        return self._router.route(IncomingMo("id", "+4790000000", number, text))


def test_mo_conflict_names_the_owner() -> None:
    tree = minimal()
    tree["accounts"][0]["mo_numbers"] = ["2233"]
    _account_too(mo_numbers=["2233"])(tree)
    with pytest.raises(ConfigError) as info:
        parse(tree, source="mo.toml")
    assert str(info.value) == (
        "mo.toml: accounts[1].mo_numbers: MO number 2233 is the catch-all of both"
        " 'shop1' and 'shop2'; give one of them keywords"
    )


@pytest.mark.parametrize(
    ("value", "tag"), [(0x1410, 0x1410), ("0x1410", 0x1410), ("5136", 5136), (0x3FFF, 0x3FFF)]
)
def test_route_tlv(value: Any, tag: int) -> None:
    tree = minimal()
    tree["accounts"][0]["route_tlv"] = value
    assert parse(tree).accounts["shop1"].route_tlv == tag


def test_example_linksmpp_block_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    # The production example keeps its LINK SMPP connector and route commented
    # out; uncommented, they must be valid next to the rest of the file.
    monkeypatch.setenv("LINK_PASSWORD", "example-secret")
    monkeypatch.setenv("CALLBACK_PASSWORD", "example-secret")
    monkeypatch.setenv("LINK_SMPP_PASSWORD", "example-secret")
    text = (ETC / "gateway.example.toml").read_text()
    lines = text.splitlines()
    start = lines.index("# [connectors.linksmpp]")
    block = []
    for line in lines[start:]:
        if line != "#" and not line.startswith("# "):
            break
        block.append(line[2:])
    cfg = parse(tomllib.loads(text + "\n" + "\n".join(block)))
    assert cfg.connectors["linksmpp"].linksmpp == LinkSmppSettings(
        system_id="my-smpp-user", password="example-secret"
    )
    assert cfg.routes == (Route(frozenset({"shop1"}), ("+474", "+479"), "linksmpp", "common"),)
    assert cfg.accounts["shop1"].mo_numbers == ("2233", "+4790001234")


# --- properties of the new sections -------------------------------------------------

_mo_pool = st.sampled_from(["2233", "+2233", "4790001234", "+4790001234", "004790001234", "1"])
_word_pool = st.sampled_from(["SHOP", "shop", "STOP", "Info"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(_mo_pool, max_size=3), st.lists(_word_pool, max_size=2)),
        min_size=1,
        max_size=4,
    )
)
def test_mo_claims_are_refused_or_unambiguous(claims: list[tuple[list[str], list[str]]]) -> None:
    tree = minimal()
    tree["accounts"] = [
        {
            "system_id": f"a{i}",
            "password": HASH,
            "connector": "main",
            "mo_numbers": numbers,
            "mo_keywords": words,
        }
        for i, (numbers, words) in enumerate(claims)
    ]
    try:
        cfg = parse(tree, source="mo.toml")
    except ConfigError as e:
        assert re.fullmatch(r"accounts\[\d+\]\.mo_(numbers|keywords)", e.key), e
        return
    routes = _MoOwners(cfg)
    for name, account in cfg.accounts.items():
        for number in account.mo_numbers:
            for word in account.mo_keywords:
                assert routes.account_for(number, f"{word.lower()} please") == name
            if not account.mo_keywords:
                assert routes.account_for(number, "zzz") == name


_hosts = st.one_of(
    st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["tls", "tcp"]), _hosts, st.integers(1, 65535))
def test_endpoint_shorthand_round_trips(scheme: str, host: str, port: int) -> None:
    link = parse(_with_link(endpoint=f"{scheme}:{host}:{port}")).connectors["link"].linksmpp
    assert link is not None
    assert (link.host, link.port, link.tls) == (host.strip("[]"), port, scheme == "tls")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_any_endpoint_string_fails_only_with_config_error(endpoint: str) -> None:
    try:
        parse(_with_link(endpoint=endpoint))
    except ConfigError as e:
        assert e.key == "connectors.link.endpoint"


@pytest.mark.parametrize("section", ["linksmpp", "breaker", "route", "mo"])
def test_readme_documents_the_routing_keys(section: str) -> None:
    readme = (ETC.parent / "README.md").read_text()
    # Tables are documented as sections of their own.
    keys = [k for k in _SECTION_KEYS[section] if k not in ("retry", "breaker")]
    missing = [k for k in keys if f"`{k}`" not in readme]
    assert not missing, f"README.md does not document {missing}"
    for key in ("mo_numbers", "mo_keywords", "route_tlv"):
        assert f"| `{key}` |" in readme


def test_hostile_client_bounds_have_defaults_and_are_checked() -> None:
    cfg = parse(minimal())
    smpp, http = cfg.smpp, cfg.http
    assert (smpp.write_timeout, smpp.partial_pdu_timeout) == (30.0, 10.0)
    assert (smpp.bind_checks, smpp.bind_check_queue, smpp.bind_cache) == (2, 64, 60.0)
    assert smpp.bind_failure_status == "uniform"
    assert (http.write_timeout, http.metrics_cache) == (30.0, 1.0)
    assert cfg.logging.level == "info"
    tree = minimal()
    tree["smpp"] = {"write_timeout": "5s", "bind_checks": 1, "bind_failure_status": "distinct"}
    tree["http"] = {"metrics_cache": 0}
    tree["logging"] = {"level": "debug"}
    cfg = parse(tree)
    assert (cfg.smpp.write_timeout, cfg.smpp.bind_checks) == (5.0, 1)
    assert cfg.smpp.bind_failure_status == "distinct"
    assert (cfg.http.metrics_cache, cfg.logging.level) == (0.0, "debug")


@pytest.mark.parametrize(
    ("section", "key", "value", "problem"),
    [
        ("smpp", "write_timeout", 0, "more than 0"),
        ("smpp", "partial_pdu_timeout", 0, "more than 0"),
        ("smpp", "bind_checks", 0, "at least 1"),
        ("smpp", "bind_check_queue", -1, "at least 0"),
        ("smpp", "bind_failure_status", "loud", "one of uniform, distinct"),
        ("logging", "level", "verbose", "one of debug, info, warn, error"),
        ("logging", "format", "json", "unknown key"),
    ],
)
def test_hostile_client_bounds_refuse_bad_values(
    section: str, key: str, value: Any, problem: str
) -> None:
    tree = minimal()
    tree[section] = {key: value}
    with pytest.raises(ConfigError) as refused:
        parse(tree)
    assert refused.value.key == f"{section}.{key}" and problem in refused.value.problem
