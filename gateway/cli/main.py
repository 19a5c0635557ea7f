"""`smpp-gateway`'s parser and its commands (listed, with exit codes, in __init__.py)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from gateway import config as config_module
from gateway.cli import gate as gate_command
from gateway.cli.common import (
    FAILED,
    INTERRUPTED,
    OK,
    RECEIPT_FAILED,
    TIMED_OUT,
    USAGE,
    UsageError,
    fail,
    print_table,
    raw_config,
    table,
)
from gateway.passwords import ENCODINGS, hash_password, password_octets

_DEFAULT_SOURCE = "SMPPGW"

# -- check-config, hash-password, run -------------------------------------------------


def _check_config(args: argparse.Namespace) -> int:
    try:
        cfg = config_module.load(args.file)
    except config_module.ConfigError as e:
        # The error reads `FILE: key: problem`, as the daemon logs it.
        print(e, file=sys.stderr)
        return FAILED
    print(
        f"{args.file}: OK ({len(cfg.accounts)} account(s), "
        f"connectors: {', '.join(sorted(cfg.connectors))})"
    )
    return OK


def _hash_password(args: argparse.Namespace) -> int:
    if args.password is not None:
        password = args.password
    elif sys.stdin.isatty():
        password = getpass.getpass("SMPP password: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return FAILED
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        octets = password_octets(password, args.encoding)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return FAILED
    print(hash_password(octets))
    return OK


def _run(args: argparse.Namespace) -> int:
    from twisted.scripts.twistd import run

    sys.argv = ["twistd", "--nodaemon", "smpp-gateway", "--config", args.config]
    run()
    return OK


# -- send -----------------------------------------------------------------------------

# Twisted endpoint strings: colons inside a value are escaped as `\:`.
_ENDPOINT_SPLIT = re.compile(r"(?<!\\):")


def _listener(raw: dict[str, Any]) -> tuple[str, int] | None:
    """(host, port) of the first plain TCP listener in [smpp] listen, if any."""
    listen = table(raw, "smpp").get("listen", ["tcp:2775"])
    if isinstance(listen, str):
        listen = [listen]
    for endpoint in listen if isinstance(listen, list) else []:
        if not isinstance(endpoint, str):
            continue
        kind, *params = (p.replace("\\:", ":") for p in _ENDPOINT_SPLIT.split(endpoint))
        if kind not in ("tcp", "tcp6"):
            continue
        port: str | None = None
        interface = ""
        for param in params:
            key, equals, value = param.partition("=")
            if not equals:
                port = port or key
            elif key == "port":
                port = value
            elif key == "interface":
                interface = value
        if port is None or not port.isdigit():
            continue
        if interface in ("", "0.0.0.0", "::"):
            interface = "::1" if kind == "tcp6" else "127.0.0.1"
        return interface, int(port)
    return None


def _smpp_password(args: argparse.Namespace) -> str:
    if args.password_env is not None:
        value = os.environ.get(args.password_env)
        if value is None:
            fail(f"--password-env: environment variable {args.password_env} is not set")
        return value
    try:
        return Path(args.password_file).read_text().rstrip("\r\n")
    except OSError as e:
        fail(f"--password-file: cannot read {args.password_file}: {e.strerror}")


def _send(args: argparse.Namespace) -> int:
    from gateway.cli import esme

    raw = raw_config(args.config)
    accounts = raw.get("accounts")
    system_ids = [a.get("system_id") for a in accounts or [] if isinstance(a, dict)]
    if args.account not in system_ids:
        fail(f"{args.config}: no [[accounts]] entry with system_id {args.account!r}")
    password = _smpp_password(args)
    listener = _listener(raw)
    host = args.host or (listener[0] if listener else "127.0.0.1")
    port = args.port or (listener[1] if listener else None)
    if port is None:
        fail(f"{args.config}: smpp.listen has no tcp: listener; give --port")
    if args.timeout <= 0:
        fail("--timeout must be more than 0")
    try:
        submit = esme.submit_for(args.text, args.source, args.to)
    except ValueError as e:
        fail(f"--to/--from/TEXT: {e}")

    def submitted(message_id: str) -> None:
        print(f"message id: {message_id}", flush=True)

    def intermediate(receipt: esme.ReceiptInfo) -> None:
        print(f"status: {receipt.stat} err {receipt.err or '-'}", flush=True)

    started = time.monotonic()
    try:
        receipt = esme.send_and_wait(
            host,
            port,
            system_id=args.account,
            password=password,
            submit=submit,
            timeout=args.timeout,
            submitted=submitted,
            intermediate=intermediate,
        )
    except esme.SmppFailure as e:
        print(f"error: {host}:{port}: {e}", file=sys.stderr)
        return FAILED
    if receipt is None:
        print(
            f"error: no receipt within {args.timeout:g}s; the message may still be on its way"
            " (see `smpp-gateway queues`)",
            file=sys.stderr,
        )
        return TIMED_OUT
    print(
        f"receipt: stat {receipt.stat} err {receipt.err or '-'}"
        f" done date {receipt.done_date or '-'} ({time.monotonic() - started:.1f}s)"
    )
    return OK if receipt.stat == "DELIVRD" else RECEIPT_FAILED


# -- queues ---------------------------------------------------------------------------


def _queues(args: argparse.Namespace) -> int:
    import sqlite3

    from gateway.cli import queues as q

    raw = raw_config(args.config)
    path = table(raw, "store").get("path", config_module.StoreSettings().path)
    if not isinstance(path, str):
        fail(f"{args.config}: store.path: must be a string")
    try:
        depths = q.read_depths(path)
    except q.StoreMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return FAILED
    except sqlite3.Error as e:
        print(f"error: {path}: {e}", file=sys.stderr)
        return FAILED
    now = time.time()

    def age(oldest: float | None) -> float | None:
        return None if oldest is None else round(max(0.0, now - oldest), 3)

    totals = q.totals(depths)
    if args.json:
        document = {
            "store": path,
            "time": now,
            "queues": [
                {
                    "queue": d.kind,
                    "account": d.account,
                    "connector": d.connector,
                    "count": d.count,
                    "oldest_age_s": age(d.oldest),
                }
                for d in depths
            ],
            "totals": {
                kind: {"count": count, "oldest_age_s": age(oldest)}
                for kind, (count, oldest) in totals.items()
            },
        }
        print(json.dumps(document, indent=2))
        return OK
    rows = [("QUEUE", "ACCOUNT", "CONNECTOR", "COUNT", "OLDEST")]
    for d in depths:
        rows.append(
            (
                q.LABELS[d.kind],
                d.account,
                d.connector or "-",
                str(d.count),
                q.format_age(age(d.oldest)),
            )
        )
    for kind, (count, oldest) in totals.items():
        rows.append((q.LABELS[kind], "(all)", "-", str(count), q.format_age(age(oldest))))
    print(f"store: {path}")
    print_table(rows)
    return OK


# -- the parser -----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smpp-gateway",
        description="Operate the SMPP gateway in front of LINK Mobility.",
        epilog="Exit codes: 0 ok, 1 failed, 2 usage or config error;"
        " send: 3 failure receipt, 4 no receipt in time.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check-config", help="validate a configuration file (exit 1 if invalid)"
    )
    check.add_argument("file")
    check.set_defaults(func=_check_config)

    hashing = commands.add_parser("hash-password", help="hash an SMPP account password")
    hashing.add_argument(
        "--password", help="the password (default: prompt, or read a line from stdin)"
    )
    hashing.add_argument(
        "--encoding",
        choices=ENCODINGS,
        default="utf-8",
        help="the octets the ESME sends for this password: utf-8 (default), or latin-1"
        " for an ESME that sends Latin-1",
    )
    hashing.set_defaults(func=_hash_password)

    run = commands.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", required=True)
    run.set_defaults(func=_run)

    gate = commands.add_parser(
        "gate",
        help="LINK Gates (Gate API) that post delivery reports and MO to the gateway",
        description="Create, list and delete PartnerGates with the Common account of a"
        " common connector (its base_url + gate_path, its credentials and auth).",
    )
    gate_commands = gate.add_subparsers(dest="gate_command", required=True, metavar="ACTION")
    register = gate_commands.add_parser(
        "register", help="create a gate posting to http.public_url + the callback path"
    )
    listing = gate_commands.add_parser("list", help="list the platform partner's gates")
    delete = gate_commands.add_parser("delete", help="delete one gate")
    for sub in (register, listing, delete):
        sub.add_argument("--config", required=True, metavar="FILE")
        sub.add_argument(
            "--connector", metavar="NAME", help="a common connector (default: the only one)"
        )
        sub.set_defaults(func=gate_command.gate)
    register.add_argument(
        "--kind",
        choices=("dlr", "mo"),
        default="dlr",
        help="dlr: [http] callback_path (default); mo: [mo] callback_path",
    )
    register.add_argument("--ref-id", metavar="REF", help="the gate's refId")
    delete.add_argument("gate_id", metavar="GATE_ID")

    send = commands.add_parser(
        "send",
        help="send one SMS through the running gateway and wait for its receipt",
        description="Bind to the gateway as a transceiver of an account, submit TEXT and"
        " wait for the delivery receipt. Receipts and MO of the account's other"
        " messages are refused with ESME_RX_T_APPN, so the gateway keeps them for the"
        " account's own ESMEs.",
    )
    send.add_argument("--config", required=True, metavar="FILE")
    send.add_argument("--account", required=True, metavar="SYSTEM_ID")
    secret = send.add_mutually_exclusive_group(required=True)
    secret.add_argument("--password-env", metavar="VAR", help="environment variable to read")
    secret.add_argument("--password-file", metavar="PATH", help="file holding the password")
    send.add_argument("--host", help="default: the [smpp] listener's interface, or 127.0.0.1")
    send.add_argument("--port", type=int, help="default: the first tcp: port in [smpp] listen")
    send.add_argument("--to", required=True, metavar="NUMBER", help="+4799999999 or digits")
    send.add_argument(
        "--from",
        dest="source",
        default=_DEFAULT_SOURCE,
        metavar="SOURCE",
        help=f"alphanumeric, short code or +number (default {_DEFAULT_SOURCE})",
    )
    send.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    send.add_argument("text", metavar="TEXT")
    send.set_defaults(func=_send)

    queues = commands.add_parser(
        "queues", help="messages, receipts and MO waiting in the store (read-only)"
    )
    queues.add_argument("--config", required=True, metavar="FILE")
    queues.add_argument("--json", action="store_true", help="machine-readable output")
    queues.set_defaults(func=_queues)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except UsageError as e:
        print(f"smpp-gateway {args.command}: error: {e}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        # The reader (head, a pager) went away; Python would complain again when
        # flushing stdout at exit, so point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
    return result
