"""The smallest config trees that load, for tests that change one key of them."""

from __future__ import annotations

from typing import Any

from gateway.passwords import hash_password

# Fixed salt: the hash is only parsed by these tests, never verified.
HASH = hash_password("secret", salt=b"0123456789abcdef")


def minimal() -> dict[str, Any]:
    return {
        "connectors": {
            "main": {
                "type": "common",
                "base_url": "https://n-eu.linkmobility.io/",
                "username": "user",
                "password": "pw",
                "platform_id": "PID",
                "platform_partner_id": "PPID",
            }
        },
        "accounts": [{"system_id": "shop1", "password": HASH, "connector": "main"}],
    }
