"""Shared pieces of the interop tests: the gateway + fake Common pair, and a strict
reader of the receipt text the gateway writes (SMPP-NOTES section 5)."""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import FakeCommonProcess, GatewayProcess, gateway_with_common

SYSTEM_ID = "esme1"
PASSWORD = "secret1"

# Exactly the form third-party parsers expect: every field, this order, single
# spaces, 10-digit dates, 3-digit numbers, a 7-letter stat word.
RECEIPT_TEXT = re.compile(
    r"id:(?P<id>\S+) sub:(?P<sub>\d{3}) dlvrd:(?P<dlvrd>\d{3})"
    r" submit date:(?P<submit>\d{10}) done date:(?P<done>\d{10})"
    r" stat:(?P<stat>[A-Z]{7}) err:(?P<err>\d{3}) text:(?P<text>.{0,20})",
    re.ASCII | re.DOTALL,
)


@dataclass(frozen=True)
class ReceiptText:
    id: str
    sub: str
    dlvrd: str
    submit_date: str
    done_date: str
    stat: str
    err: str
    text: str


def parse_receipt(text: str) -> ReceiptText:
    """The fields of a receipt text; fails the test when it is not exactly Appendix B form."""
    match = RECEIPT_TEXT.fullmatch(text)
    assert match is not None, f"not an Appendix B receipt: {text!r}"
    for date in (match["submit"], match["done"]):
        datetime.datetime.strptime(date, "%y%m%d%H%M")  # a real date and time
    return ReceiptText(
        id=match["id"],
        sub=match["sub"],
        dlvrd=match["dlvrd"],
        submit_date=match["submit"],
        done_date=match["done"],
        stat=match["stat"],
        err=match["err"],
        text=match["text"],
    )


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[GatewayProcess, FakeCommonProcess]]:
    """A real gateway on the Common connector and the fake Common behind it."""
    with gateway_with_common(tmp_path) as pair:
        yield pair


@pytest.fixture(scope="module")
def shared_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, FakeCommonProcess]]:
    """One gateway for a module's tests that leave no state behind (bind checks)."""
    with gateway_with_common(tmp_path_factory.mktemp("gateway")) as pair:
        yield pair
