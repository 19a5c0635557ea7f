"""`smpp-gateway gate register|list|delete`: LINK Gates that post reports and MO to us."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gateway import config as config_module
from gateway.cli.common import FAILED, OK, fail, load_config, print_table, run_reactor

if TYPE_CHECKING:
    # Imported where used: the rest of the command line needs no HTTP stack.
    from gateway.connectors.common.client import CommonError
    from gateway.connectors.common.gates import GateApi

_LOOPBACK = ("127.0.0.1", "localhost", "::1")

# -- gate--------------------------------------------------------------------------


def _common_connector(
    cfg: config_module.Config, name: str | None
) -> config_module.ConnectorSettings:
    """The named connector, or the config's only common one."""
    if name is not None:
        connector = cfg.connectors.get(name)
        if connector is None:
            fail(f"{cfg.source}: no connector named {name!r}")
        if connector.type != "common":
            fail(
                f"{cfg.source}: connector {name!r} is of type {connector.type!r};"
                " Gates belong to a common connector"
            )
        return connector
    commons = sorted(n for n, c in cfg.connectors.items() if c.type == "common")
    if not commons:
        fail(f"{cfg.source}: no connector of type common; Gates belong to a Common account")
    if len(commons) > 1:
        fail(f"{cfg.source}: several common connectors ({', '.join(commons)}): use --connector")
    return cfg.connectors[commons[0]]


def _api_error(error: CommonError, connector: config_module.ConnectorSettings) -> str:
    """One line for a CommonError: HTTP status, LINK's code and text, and a hint."""
    from gateway.connectors.common.gates import ERROR_NAMES

    text = f"error: Gate API ({connector.name}): {error.description}"
    if error.code is not None:
        name = ERROR_NAMES.get(error.code)
        text += f" [code {error.code}{' ' + name if name else ''}]"
    if error.http_status in (401, 403):
        assert connector.common is not None
        text += (
            f"\nhint: check username, password and auth (now {connector.common.auth!r})"
            f" of [connectors.{connector.name}]"
        )
        if error.http_status == 403:
            text += ", and platform_id / platform_partner_id"
    return text


def gate(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    connector = _common_connector(cfg, args.connector)
    action: Callable[
        [GateApi, argparse.Namespace, config_module.Config, config_module.ConnectorSettings],
        Coroutine[Any, Any, int],
    ] = {
        "register": _gate_register,
        "list": _gate_list,
        "delete": _gate_delete,
    }[args.gate_command]
    if args.gate_command == "register":
        _check_public_url(cfg)

    async def work(reactor: Any) -> int:
        from gateway.connectors.common.client import CommonClient, CommonError
        from gateway.connectors.common.gates import GateApi

        assert connector.common is not None
        client = CommonClient(reactor, connector.common)
        api = GateApi(
            client, connector.gate_path, connector.platform_id, connector.platform_partner_id
        )
        try:
            result: int = await action(api, args, cfg, connector)
        except CommonError as e:
            print(_api_error(e, connector), file=sys.stderr)
            result = FAILED
        finally:
            await client.close()
        return result

    return run_reactor(work)


def _callback_url(cfg: config_module.Config, kind: str) -> str:
    path = cfg.http.callback_path if kind == "dlr" else cfg.mo.callback_path
    return cfg.http.public_url + path


def _check_public_url(cfg: config_module.Config) -> None:
    parts = urlsplit(cfg.http.public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(f"{cfg.source}: http.public_url: must be an http:// or https:// URL LINK can reach")
    if parts.hostname in _LOOPBACK:
        print(
            f"warning: http.public_url is {cfg.http.public_url}: LINK cannot reach a loopback"
            " address",
            file=sys.stderr,
        )
    elif parts.scheme == "http":
        print("warning: http.public_url is not https://; LINK recommends HTTPS", file=sys.stderr)
    if cfg.http.callback_username is None:
        print(
            "warning: no http.callback_username/callback_password: anyone who finds the"
            " callback URL can post to it",
            file=sys.stderr,
        )


async def _gate_register(
    api: GateApi,
    args: argparse.Namespace,
    cfg: config_module.Config,
    connector: config_module.ConnectorSettings,
) -> int:
    from gateway.connectors.common.gates import partner_gate

    url = _callback_url(cfg, args.kind)
    gate = partner_gate(
        url=url,
        platform_id=connector.platform_id,
        platform_partner_id=connector.platform_partner_id,
        username=cfg.http.callback_username,
        password=cfg.http.callback_password,
        ref_id=args.ref_id,
    )
    gate_id: str = await api.create(gate)
    # The id alone on stdout, so that scripts can take it; the advice goes to stderr.
    print(gate_id)
    print(f"created {args.kind} gate {gate_id} posting to {url}", file=sys.stderr)
    if args.kind == "dlr":
        print(
            f'next: set gate_id = "{gate_id}" in [connectors.{connector.name}] and restart'
            " the gateway, so that messages ask for delivery reports through this gate",
            file=sys.stderr,
        )
    else:
        print(
            f"next: ask LINK support to route MO for your numbers and keywords to gate {gate_id}",
            file=sys.stderr,
        )
    return OK


async def _gate_list(
    api: GateApi,
    args: argparse.Namespace,
    cfg: config_module.Config,
    connector: config_module.ConnectorSettings,
) -> int:
    gates: list[dict[str, Any]] = await api.list()
    if not gates:
        print(
            f"no gates for platform {connector.platform_id}"
            f" partner {connector.platform_partner_id}",
            file=sys.stderr,
        )
        return OK
    ours = {_callback_url(cfg, "dlr"): "dlr callback", _callback_url(cfg, "mo"): "mo callback"}
    rows = [("ID", "REF_ID", "DESTINATIONS", "NOTE")]
    for gate in gates:
        gate_id = str(gate.get("id") or "")
        urls = [
            str(d.get("url"))
            for d in gate.get("destinations") or []
            if isinstance(d, dict) and d.get("url")
        ]
        notes = sorted({ours[u] for u in urls if u in ours})
        if gate_id and gate_id == connector.gate_id:
            notes.insert(0, "gate_id")
        rows.append(
            (gate_id, str(gate.get("refId") or "-"), " ".join(urls) or "-", ", ".join(notes))
        )
    print_table(rows)
    return OK


async def _gate_delete(
    api: GateApi,
    args: argparse.Namespace,
    cfg: config_module.Config,
    connector: config_module.ConnectorSettings,
) -> int:
    await api.delete(args.gate_id)
    print(f"deleted gate {args.gate_id}")
    if args.gate_id == connector.gate_id:
        print(
            f"warning: [connectors.{connector.name}] gate_id still names this gate;"
            " register another and update the config, or delivery reports stop",
            file=sys.stderr,
        )
    return OK
