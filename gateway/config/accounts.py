"""[[accounts]], [mo], [[routes]], [vendor_tlvs] and [result_codes]: who may send what, where."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping

from gateway.addresses import claimed_number
from gateway.config.model import (
    ID_FORMATS,
    MAX_QUEUE,
    SHORT_ID_FORMATS,
    AccountSettings,
    ConnectorSettings,
    HttpSettings,
    MoSettings,
)
from gateway.config.reader import ConfigError, Reader
from gateway.connectors.common.results import merge_result_codes
from gateway.intake.mo import MoRouter, claimed_keyword
from gateway.mt.router import Route, route_prefix
from gateway.mt.submission import REASSEMBLE_POLICIES, AccountPolicy
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

# A TLV tag as a TOML key: "0x1401" or "5121".
_TAG_KEY = re.compile(r"^(?:0[xX][0-9A-Fa-f]{1,4}|[0-9]{1,5})$")


def read_account(
    r: Reader,
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
    reassemble = r.choice("reassemble", "oversized", REASSEMBLE_POLICIES)
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
        vendor_tlvs = read_vendor_tlvs(
            Reader(r.source, r.key("vendor_tlvs"), r.table_("vendor_tlvs"))
        )
    else:
        vendor_tlvs = default_vendor_tlvs
    try:
        policy = AccountPolicy(
            default_country_code=country,
            default_alphabet=alphabet,
            ia5_alphabet=ia5,
            reassemble=reassemble,
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
        max_queue=r.integer("max_queue", MAX_QUEUE, minimum=1),
        max_waiting_parts=r.integer("max_waiting_parts", 10_000, minimum=1),
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


def _normalised(r: Reader, name: str, normalise: Callable[[str], str]) -> tuple[str, ...]:
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


def _route_tlv(r: Reader) -> int | None:
    value = r._get("route_tlv", None)
    if value is None:
        return None
    tag = _tag_number(value) if isinstance(value, str) else value
    if isinstance(tag, bool) or not isinstance(tag, int):
        raise r.fail("route_tlv", 'a TLV tag such as 0x1410, "0x1410" or 5136')
    if tag not in VENDOR_TAGS:
        raise r.fail("route_tlv", f"tag {tag:#06x} is outside the vendor range 0x1400-0x3FFF")
    return tag


def read_mo(r: Reader, http: HttpSettings, accounts: Mapping[str, AccountSettings]) -> MoSettings:
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


def claim_mo_numbers(source: str, accounts: Mapping[str, AccountSettings], mo: MoSettings) -> None:
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


def read_routes(
    top: Reader,
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
        r = Reader(top.source, f"routes[{index}]", table)
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


def read_vendor_tlvs(r: Reader) -> Mapping[int, VendorTlv]:
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
        row_reader = Reader(r.source, r.key(key), row)
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


def read_result_codes(r: Reader) -> Mapping[int, Outcome]:
    overrides: dict[int, tuple[str, int, bool]] = {}
    for code, row in r.table.items():
        r.used.add(code)
        if not code.isdigit() or not isinstance(row, dict):
            raise r.fail(code, 'use `CODE = { stat = "UNDELIV", err = 222, final = true }`')
        row_reader = Reader(r.source, r.key(code), row)
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
