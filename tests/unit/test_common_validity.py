"""The validity Common is told (relativeValidityTime), gateway.connectors.common.mapping."""

from __future__ import annotations

import pytest

from gateway.connectors.common.mapping import (
    MAX_VALIDITY_S,
    MIN_VALIDITY_S,
    relative_validity_ms,
)
from gateway.records import Message
from tests.support.records import message

NOW = 1_800_000_000.0


def queued(expires_in: float, validity_s: int) -> Message:
    """A message submitted at NOW whose validity ends `expires_in` seconds after it."""
    return message("m", submitted_at=NOW, expires_at=NOW + expires_in, validity_s=validity_s)


@pytest.mark.parametrize(
    ("expires_in", "validity_s", "told_s"),
    [
        (3600, 3600, 3600),  # sent at once: all of it
        (1800, 3600, 1800),  # waited half an hour in the gateway: what is left
        # Scheduled 7 days ahead through Common, valid 1 h: Common counts from the
        # scheduled time, so it is told 1 h, not 48 h from now.
        (7 * 86400 + 3600, 3600, 3600),
        (60, 3600, MIN_VALIDITY_S),  # clamped to Common's 15 minutes
        (-10, 3600, MIN_VALIDITY_S),
        (10 * 86400, 10 * 86400, MAX_VALIDITY_S),
    ],
)
def test_relative_validity(expires_in: float, validity_s: int, told_s: int) -> None:
    assert relative_validity_ms(queued(expires_in, validity_s), NOW) == told_s * 1000


def test_the_limits_are_commons() -> None:
    # Seed 001: relativeValidityTime between 15 minutes and 48 hours.
    assert (MIN_VALIDITY_S, MAX_VALIDITY_S) == (15 * 60, 48 * 3600)
