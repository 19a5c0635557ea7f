"""What every `smpp-gateway` command shares: exit codes, usage errors, config loading."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from gateway import config as config_module

OK = 0
FAILED = 1
USAGE = 2
RECEIPT_FAILED = 3
TIMED_OUT = 4
INTERRUPTED = 130  # the shell's code for SIGINT


class UsageError(Exception):
    """A command line or config problem: exit 2 with the message."""


def fail(message: str) -> NoReturn:
    raise UsageError(message)


# -- config helpers -------------------------------------------------------------------


def load_config(path: str) -> config_module.Config:
    try:
        return config_module.load(path)
    except config_module.ConfigError as e:
        fail(str(e))


def raw_config(path: str) -> dict[str, Any]:
    """The TOML tree without validation.

    `send` and `queues` need two or three keys; validating the whole file would
    also resolve every `*_env` and `*_file` secret, which an operator's shell
    (unlike the service) usually cannot.
    """
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        fail(f"{path}: (file): cannot read: {e.strerror}")
    except tomllib.TOMLDecodeError as e:
        fail(f"{path}: (syntax): {e}")


def table(tree: dict[str, Any], name: str) -> dict[str, Any]:
    value = tree.get(name, {})
    return value if isinstance(value, dict) else {}


def run_reactor(work: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    """Run one coroutine on the global reactor; its int is the exit code."""
    from twisted.internet import reactor as global_reactor
    from twisted.internet.defer import Deferred
    from twisted.python.failure import Failure

    reactor: Any = global_reactor

    outcome: list[int] = []

    def finished(result: int | Failure) -> None:
        if isinstance(result, Failure):
            print(f"error: {result.getErrorMessage()}", file=sys.stderr)
            outcome.append(FAILED)
        else:
            outcome.append(result)
        reactor.stop()

    def start() -> None:
        Deferred.fromCoroutine(work(reactor)).addBoth(finished)

    reactor.callWhenRunning(start)
    reactor.run()
    return outcome[0] if outcome else FAILED


def print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())
