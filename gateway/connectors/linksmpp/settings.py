"""How to reach LINK's SMPP endpoint: read by the config, used by the connector.

Every figure of seed 004 (LINK's SMPP API) is a default here, not a constant
in the code (DESIGN 6): TLS on ham.smpp.api.linkmobility.de:4002, one
connection, window 1 each way, 5 SMS a second, enquire_link well inside the
5-minute idle limit, 30 seconds before reconnecting.
"""

from __future__ import annotations

from dataclasses import dataclass

BIND_MODES = ("transceiver", "pair")  # "pair": one transmitter and one receiver


@dataclass(frozen=True)
class LinkSmppSettings:
    host: str = "ham.smpp.api.linkmobility.de"
    port: int = 4002
    tls: bool = True
    ca_file: str | None = None  # None: the system's trust store
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    bind: str = "transceiver"
    window: int = 1
    rate: float = 5.0  # submit_sm per second (token bucket)
    burst: float = 5.0
    enquire_link_interval: float = 60.0  # LINK closes a link idle for 5 minutes
    reconnect_delay: float = 30.0
    bind_timeout: float = 30.0
    response_timeout: float = 30.0
    # After ESME_RTHROTTLED or ESME_RMSGQFUL from LINK: pause this long, doubling
    # on each further one up to throttle_backoff_max, back to normal on success.
    throttle_backoff: float = 1.0
    throttle_backoff_max: float = 60.0

    def __repr__(self) -> str:
        # Keep the password out of any log line or traceback that shows the settings.
        return (
            f"LinkSmppSettings(host={self.host!r}, port={self.port}, tls={self.tls}, "
            f"system_id={self.system_id!r}, password=<hidden>)"
        )
