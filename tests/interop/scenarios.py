"""query_sm and cancel_sm round trips, written once for every third-party client.

test_smpplib_operations.py and test_node_operations.py each wrap their library in
a `Client` and call these functions. The contract they check (SMPP 3.4 sections
4.8 and 4.9, SMPP-NOTES section 5):

- query_sm(message_id from submit_sm_resp, source as submitted) on the same
  account: status 0, message_id echoed; message_state 1 (ENROUTE) with an empty
  final_date while the gateway still holds the message, 2 (DELIVERED) with a
  16-character absolute final_date once the receipt came; 4 (DELETED) once
  cancelled. An unknown id, or another account's message: ESME_RQUERYFAIL 0x67.
- cancel_sm(message_id, source as submitted, service_type "") of a message the
  gateway still holds: status 0, the message never reaches Common, and an ESME
  that asked for a receipt gets stat:DELETED err:221. A message already delivered:
  ESME_RCANCELFAIL 0x11. With an empty message_id, every queued message of that
  account from that source to that destination is cancelled.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from tests.harness import FakeCommonProcess
from tests.interop.conftest import (
    PASSWORD,
    PASSWORD2,
    SYSTEM_ID,
    SYSTEM_ID2,
    Receipt,
    check_absolute_time,
    check_receipt,
    common_down,
    messages_to,
    wait_for,
    wait_for_attempts,
    wait_for_messages,
)

ROK = 0x00
ESME_RCANCELFAIL = 0x11
ESME_RQUERYFAIL = 0x67
ENROUTE, DELIVERED, DELETED = 1, 2, 4
SOURCE = "LINK"  # alphanumeric: ton 5, npi 0
SOURCE_TON, SOURCE_NPI = 5, 0


@dataclass(frozen=True)
class QueryAnswer:
    status: int
    message_id: str | None
    final_date: str | None
    message_state: int | None
    error_code: int | None


class Client(Protocol):
    """One bound transceiver session of some SMPP library."""

    def submit(self, destination: str, text: str, *, registered_delivery: int = 1) -> str:
        """submit_sm of ASCII text (source SOURCE, ton 5); the message_id (status must be 0)."""
        ...

    def query(self, message_id: str, source: str = SOURCE) -> QueryAnswer: ...

    def cancel(self, message_id: str, destination: str = "", source: str = SOURCE) -> int:
        """cancel_sm with service_type ""; destination "" is NULL (ton/npi 0)."""
        ...

    def wait_receipts(self, ids: set[str], timeout: float = 10.0) -> dict[str, Receipt]:
        """Receipts for every id in `ids` (fails after `timeout`); message_id -> receipt."""
        ...


OpenClient = Callable[[str, str], AbstractContextManager[Client]]

_numbers = itertools.count(1)


def destination(block: str) -> str:
    """A destination (as the ESME writes it) no other test uses; Common sees it with '+'."""
    return f"4799{block}{next(_numbers):04d}"


def sentinel_arrived(client: Client, fake: FakeCommonProcess, block: str) -> None:
    """Submit one more message and wait for it at Common and for its receipt: anything
    queued before it had its chance to reach Common by then."""
    dest = destination(block)
    message_id = client.submit(dest, "sentinel")
    client.wait_receipts({message_id})
    assert len(wait_for_messages(fake, "+" + dest, 1)) == 1


def state_of(client: Client, message_id: str) -> int | None:
    """message_state by query_sm, which must succeed."""
    answer = client.query(message_id)
    assert answer.status == ROK, f"query_sm_resp status {answer.status:#x} for {message_id}"
    assert answer.message_id == message_id
    return answer.message_state


def _recent(final_date: str) -> None:
    moment = check_absolute_time(final_date)
    now = datetime.datetime.now(datetime.UTC)
    assert abs((now - moment).total_seconds()) < 300, f"final_date {final_date} is not now"


# --- query_sm -------------------------------------------------------------------


def query_delivered(open_client: OpenClient, fake: FakeCommonProcess, block: str) -> None:
    dest = destination(block)
    with open_client(SYSTEM_ID, PASSWORD) as client:
        message_id = client.submit(dest, "query me when delivered")
        receipt = client.wait_receipts({message_id})[message_id]
        check_receipt(
            receipt,
            message_id=message_id,
            destination=dest,
            source=SOURCE,
            text="query me when delivered",
        )
        answer = client.query(message_id)
    assert answer.status == ROK, f"query_sm_resp status {answer.status:#x}"
    assert answer.message_id == message_id
    assert answer.message_state == DELIVERED
    assert answer.final_date is not None
    assert len(answer.final_date) == 16, f"final_date {answer.final_date!r}"
    _recent(answer.final_date)


def query_queued(open_client: OpenClient, fake: FakeCommonProcess, block: str) -> None:
    dest = destination(block)
    with open_client(SYSTEM_ID, PASSWORD) as client:
        before = fake.control()["requests"]
        with common_down(fake):
            message_id = client.submit(dest, "query me while queued")
            wait_for_attempts(fake, before)  # the gateway tried, and holds it
            answer = client.query(message_id)
            assert answer.status == ROK, f"query_sm_resp status {answer.status:#x}"
            assert answer.message_id == message_id
            assert answer.message_state == ENROUTE
            assert answer.final_date == ""
        # Common is back: the message goes, and the state follows.
        client.wait_receipts({message_id})
        assert wait_for(lambda: state_of(client, message_id) == DELIVERED, 5), (
            f"message_state {state_of(client, message_id)} after the receipt"
        )


def query_unknown_or_foreign(open_client: OpenClient, fake: FakeCommonProcess, block: str) -> None:
    dest = destination(block)
    with open_client(SYSTEM_ID, PASSWORD) as owner:
        message_id = owner.submit(dest, "not yours to query")
        owner.wait_receipts({message_id})
        assert state_of(owner, message_id) == DELIVERED
        unknown = owner.query("987654321987654321")
        assert unknown.status == ESME_RQUERYFAIL, f"unknown id: status {unknown.status:#x}"
    with open_client(SYSTEM_ID2, PASSWORD2) as other:
        foreign = other.query(message_id)
        assert foreign.status == ESME_RQUERYFAIL, f"foreign id: status {foreign.status:#x}"


# --- cancel_sm ------------------------------------------------------------------


def cancel_queued(open_client: OpenClient, fake: FakeCommonProcess, block: str) -> None:
    dest = destination(block)
    with open_client(SYSTEM_ID, PASSWORD) as client:
        before = fake.control()["requests"]
        with common_down(fake):
            message_id = client.submit(dest, "cancel me please")
            wait_for_attempts(fake, before)
            assert state_of(client, message_id) == ENROUTE
            status = client.cancel(message_id)
            assert status == ROK, f"cancel_sm_resp status {status:#x}"
            assert state_of(client, message_id) == DELETED
        # The ESME asked for a receipt: it learns the message was deleted.
        receipt = client.wait_receipts({message_id})[message_id]
        fields = check_receipt(
            receipt,
            message_id=message_id,
            destination=dest,
            source=SOURCE,
            text="cancel me please",
            stat="DELETED",
            err=221,
            state=DELETED,
        )
        assert (fields.sub, fields.dlvrd) == ("001", "000")
        sentinel_arrived(client, fake, block)
        assert state_of(client, message_id) == DELETED
    assert messages_to(fake, "+" + dest) == [], "a cancelled message reached Common"


def cancel_delivered(open_client: OpenClient, fake: FakeCommonProcess, block: str) -> None:
    dest = destination(block)
    with open_client(SYSTEM_ID, PASSWORD) as client:
        message_id = client.submit(dest, "too late to cancel")
        client.wait_receipts({message_id})
        status = client.cancel(message_id)
        assert status == ESME_RCANCELFAIL, f"cancel_sm_resp status {status:#x}"
        assert state_of(client, message_id) == DELIVERED
    assert len(messages_to(fake, "+" + dest)) == 1


def cancel_all_to_destination(open_client: OpenClient, fake: FakeCommonProcess, block: str) -> None:
    cancelled, kept = destination(block), destination(block)
    with open_client(SYSTEM_ID, PASSWORD) as client:
        before = fake.control()["requests"]
        with common_down(fake):
            first = client.submit(cancelled, "first of two", registered_delivery=0)
            second = client.submit(cancelled, "second of two", registered_delivery=0)
            other = client.submit(kept, "to another number", registered_delivery=0)
            wait_for_attempts(fake, before)
            status = client.cancel("", destination=cancelled)
            assert status == ROK, f"cancel_sm_resp status {status:#x}"
            assert state_of(client, first) == DELETED
            assert state_of(client, second) == DELETED
            assert state_of(client, other) == ENROUTE
        assert len(wait_for_messages(fake, "+" + kept, 1)) == 1
        sentinel_arrived(client, fake, block)
    assert messages_to(fake, "+" + cancelled) == [], "a cancelled message reached Common"


# Every query_sm / cancel_sm scenario, for the client modules to run in turn.
QUERY_CANCEL = (
    query_delivered,
    query_queued,
    query_unknown_or_foreign,
    cancel_queued,
    cancel_delivered,
    cancel_all_to_destination,
)
