"""The TOML configuration: parsed once, validated whole, frozen.

Every key is checked at start; a problem raises `ConfigError` naming the file,
the key (as a dotted path such as `accounts[1].rate`) and what is wrong, so the
daemon refuses to start instead of failing on the first message. Secrets never
live in the parsed tree as given: `x_env` and `x_file` keys are resolved here
and the result kept only in the frozen dataclasses.

The package's face is this module: everything else imports `gateway.config` and
its names below, so that the split into one module per group of tables stays
an inside matter: `reader` (typed reads), `model` (the dataclasses),
`sections`, `connectors`, `accounts` (one reader per table) and `load`.
"""

from gateway.config.load import load, parse
from gateway.config.model import (
    BIND_FAILURE_STATUSES,
    CONNECTOR_TYPES,
    ID_FORMATS,
    LOG_LEVELS,
    MAX_DESTINATIONS,
    SHORT_ID_FORMATS,
    WINDOW_OVERRUN,
    AccountSettings,
    BreakerSettings,
    Config,
    ConnectorSettings,
    HttpSettings,
    LoggingSettings,
    MoSettings,
    RetrySettings,
    SmppSettings,
    StoreSettings,
)
from gateway.config.reader import ConfigError

__all__ = [
    "BIND_FAILURE_STATUSES",
    "CONNECTOR_TYPES",
    "ID_FORMATS",
    "LOG_LEVELS",
    "MAX_DESTINATIONS",
    "SHORT_ID_FORMATS",
    "WINDOW_OVERRUN",
    "AccountSettings",
    "BreakerSettings",
    "Config",
    "ConfigError",
    "ConnectorSettings",
    "HttpSettings",
    "LoggingSettings",
    "MoSettings",
    "RetrySettings",
    "SmppSettings",
    "StoreSettings",
    "load",
    "parse",
]
