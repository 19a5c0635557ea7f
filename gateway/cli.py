"""`smpp-gateway`: the operator's command line.

    smpp-gateway check-config FILE     validate a config; exit 0 if it would start
    smpp-gateway hash-password         read a password, print the hash for [[accounts]]
    smpp-gateway run --config FILE     the same as `twistd -n smpp-gateway --config FILE`

Exit codes: 0 success, 1 the check failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from gateway import config as config_module
from gateway.passwords import hash_password


def _check_config(args: argparse.Namespace) -> int:
    try:
        cfg = config_module.load(args.file)
    except config_module.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"{args.file}: OK ({len(cfg.accounts)} account(s), "
        f"connectors: {', '.join(sorted(cfg.connectors))})"
    )
    return 0


def _hash_password(args: argparse.Namespace) -> int:
    if args.password is not None:
        password = args.password
    elif sys.stdin.isatty():
        password = getpass.getpass("SMPP password: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("error: empty password", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def _run(args: argparse.Namespace) -> int:
    from twisted.scripts.twistd import run

    sys.argv = ["twistd", "--nodaemon", "smpp-gateway", "--config", args.config]
    run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smpp-gateway", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file")
    check.set_defaults(func=_check_config)
    hashing = commands.add_parser("hash-password", help="hash an SMPP account password")
    hashing.add_argument(
        "--password", help="the password (default: prompt, or read a line from stdin)"
    )
    hashing.set_defaults(func=_hash_password)
    run = commands.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", required=True)
    run.set_defaults(func=_run)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
