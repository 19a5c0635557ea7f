"""Shared pieces of the interop tests: the gateway + fake Common pair, and a strict
reader of the receipt text the gateway writes (SMPP-NOTES section 5)."""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.smpp.receipts import ascii_text
from tests.harness import FakeCommonProcess, GatewayProcess, account_toml, gateway_with_common

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


# --- every operation and every kind of text (test_*_operations.py) -------------------
#
# These tests compare what reached the fake Common byte for byte, so their gateway's
# fake keeps every accepted message (`GET /_messages`), and they have a second
# account to show that one account cannot query or cancel another's messages.

SYSTEM_ID2 = "esme2"
PASSWORD2 = "secret2"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "query_cancel: query_sm / cancel_sm round trips (run alone with -m query_cancel)",
    )
    config.addinivalue_line(
        "markers", "submit_multi: submit_multi round trips (run alone with -m submit_multi)"
    )


@pytest.fixture(scope="module")
def ops_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, FakeCommonProcess]]:
    """One gateway (two accounts) and a fake Common that keeps what it accepts,
    shared by a module's tests; each test uses destinations of its own."""
    accounts = account_toml(SYSTEM_ID, PASSWORD, "main") + account_toml(
        SYSTEM_ID2, PASSWORD2, "main"
    )
    with gateway_with_common(
        tmp_path_factory.mktemp("ops-gateway"),
        accounts=accounts,
        fake_options={"keep_messages": True},
    ) as pair:
        yield pair


def common_messages(fake: FakeCommonProcess) -> list[dict[str, Any]]:
    """Every sendRequestMessage the fake Common accepted, as it received them."""
    messages: list[dict[str, Any]] = fake.get("/_messages")
    return messages


def messages_to(fake: FakeCommonProcess, destination: str) -> list[dict[str, Any]]:
    """What Common received for one destination (`+digits`), in order of arrival."""
    return fake.messages_to(destination)


def wait_for_messages(
    fake: FakeCommonProcess, destination: str, count: int, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Wait until Common holds `count` messages for `destination`; then those messages
    (after a short pause, so that one too many would show)."""
    wait_for(lambda: len(messages_to(fake, destination)) >= count, timeout)
    time.sleep(0.2)
    return messages_to(fake, destination)


@contextmanager
def common_down(fake: FakeCommonProcess) -> Iterator[None]:
    """The fake Common answers 503 to everything inside the block (and is always
    brought back, so a failing test does not leave the shared gateway stuck)."""
    fake.control({"down": True})
    try:
        yield
    finally:
        fake.control({"down": False})


def wait_for_attempts(fake: FakeCommonProcess, more_than: int, timeout: float = 10.0) -> None:
    """Wait until the gateway has tried Common more than `more_than` times in all, and
    has taken the 503: its messages are then back in its queue for the retry delay
    (0.2 s at first, harness config), not in a request, so a cancel_sm can reach them."""
    assert wait_for(lambda: fake.control()["requests"] > more_than, timeout, interval=0.02), (
        "the gateway never tried Common"
    )
    time.sleep(0.03)  # messages submitted together are tried together: let all answers in


def receipt_head(text: str) -> str:
    """The `text:` field the gateway writes: 20 characters in their ASCII spelling
    (tests/unit/test_receipts.py pins it), the rest and controls as '?'."""
    spelled = ascii_text(text[:20])[:20]
    return "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in spelled)


# SMPP 3.4 section 7.1.1 absolute time: YYMMDDhhmmss, tenths, quarter hours, +/-.
SMPP_ABSOLUTE_TIME = re.compile(r"\d{12}\d\d{2}[+-]", re.ASCII)


def check_absolute_time(value: str) -> datetime.datetime:
    """The moment an SMPP absolute time names; fails the test unless it is exactly that form."""
    assert SMPP_ABSOLUTE_TIME.fullmatch(value), f"not an SMPP absolute time: {value!r}"
    moment = datetime.datetime.strptime(value[:12], "%y%m%d%H%M%S")
    offset = datetime.timedelta(minutes=15 * int(value[13:15]))
    utc = moment - offset if value[15] == "+" else moment + offset
    return utc.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class Receipt:
    """A receipt deliver_sm as either client saw it, in the same terms."""

    receipted_message_id: str
    text: str  # short_message, ASCII
    esm_class: int
    data_coding: int
    message_state: int | None
    network_error_code: bytes | None
    source_addr: str
    destination_addr: str


def check_receipt(
    receipt: Receipt,
    *,
    message_id: str,
    destination: str,
    source: str,
    text: str,
    stat: str = "DELIVRD",
    err: int = 0,
    state: int = 2,
) -> ReceiptText:
    """One receipt for `message_id`, for a message from `source` to `destination`
    (as the ESME wrote them) whose text began with `text`."""
    assert receipt.receipted_message_id == message_id
    fields = parse_receipt(receipt.text)
    assert fields.id == message_id, f"text id {fields.id} != receipted_message_id {message_id}"
    assert receipt.esm_class == 0x04
    assert receipt.data_coding == 0
    assert receipt.source_addr == destination
    assert receipt.destination_addr == source
    assert fields.stat == stat, f"{message_id}: stat {fields.stat}, wanted {stat}"
    assert fields.err == f"{err:03d}", f"{message_id}: err {fields.err}, wanted {err:03d}"
    assert fields.text == receipt_head(text)
    assert receipt.message_state == state
    assert receipt.network_error_code == bytes((3,)) + err.to_bytes(2, "big")
    return fields


# --- the texts both clients send ------------------------------------------------

# Every GSM 03.38 extension character smpplib's table has, among basic ones
# (smpplib maps '§' wrongly and lacks the form feed, so neither is here).
GSM_TEXT = "Price: 5€ [x] {y} ~^|\\ @£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ¿äöñüà"
# Its unpacked GSM 03.38 octets, written out by hand (checks the clients' encoders).
GSM_TEXT_OCTETS = bytes.fromhex(
    "50726963653a2035 1b65 20 1b3c 78 1b3e 20 1b28 79 1b29 20 1b3d 1b14 1b40 1b2f 20"
    "00 01 02 03 04 05 06 07 08 09 0b 0c 0e 0f 10 11 12 13 14 15 16 17 18 19 1a"
    "1c 1d 1e 1f 24 40 5b 5c 5d 5e 60 7b 7c 7d 7e 7f".replace(" ", "")
)
# 34 characters, 68 octets (non-Latin letters on purpose, hence the noqa).
UCS2_TEXT = "Привет, мир! Γειά σου κόσμε! 你好，世界"  # noqa: RUF001
EMOJI_TEXT = "Smile 😀 please"  # U+1F600 needs a surrogate pair in UTF-16


def gsm_septets(text: str) -> int:
    return len(text) + sum(1 for c in text if c in "€[]{}~^|\\\f")


def _fill(pattern: str, septets: int) -> str:
    """Text of exactly `septets` GSM septets made from `pattern`, padded with dots."""
    out = ""
    for c in pattern * (1 + septets // max(len(pattern), 1)):
        if gsm_septets(out + c) > septets:
            break
        out += c
    return out + "." * (septets - gsm_septets(out))


# A long GSM text the ESME splits with an 8-bit reference UDH (6 octets, so 153
# septets a part). Both full parts end in a basic character, never inside an
# escape pair, so each part is whole text on its own.
GSM_SEGMENTS = (
    _fill("Part one of a long GSM message, with extension characters €[]{}~^|\\. ", 153),
    _fill("Part two carries on: brackets [ ] braces { } and the euro € again. ", 153),
    "Part three is short and ends here: ~^|€",
)
# A long UCS-2 text split with a 16-bit reference UDH (7 octets: 66 characters a part).
UCS2_SEGMENTS = (
    ("Длинное сообщение, первая часть. Μεγάλο μήνυμα, πρώτο μέρος. 长消息" * 2)[:66],
    "Вторая часть. Δεύτερο μέρος. 第二部分。",
)
# Texts longer than short_message allows, sent whole in message_payload.
PAYLOAD_GSM_TEXT = _fill("Message payload text, GSM 03.38 with €, [brackets] and {braces}. ", 400)
PAYLOAD_UCS2_TEXT = ("Полезная нагрузка: длинный текст в UCS-2, Ελληνικά και 中文. " * 4)[:200]
