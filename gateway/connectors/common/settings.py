"""How to reach one LINK Common account: read by the config, used by the client.

Kept apart from the client so that loading a config needs no HTTP stack, and
so that the fields and their defaults are written once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommonSettings:
    """How to reach one Common account. Paths are configurable (DESIGN 8)."""

    base_url: str
    send_path: str = "/sms/send"
    batch_path: str = "/sms/sendbatch"
    token_path: str = "/auth/token"
    auth: str = "basic"
    username: str = ""
    password: str = ""
    timeout: float = 10.0
    max_connections: int = 8
    ca_file: str | None = None

    def __repr__(self) -> str:
        # The dataclass default repr would print the password into any log line
        # or traceback that shows the settings.
        return (
            f"CommonSettings(base_url={self.base_url!r}, auth={self.auth!r}, "
            f"username={self.username!r}, password=<hidden>)"
        )
