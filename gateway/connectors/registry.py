"""Which connector class a `[connectors.NAME]` table builds."""

from __future__ import annotations

from gateway.config import ConnectorSettings, HttpSettings
from gateway.connectors.base import Connector, Inbound
from gateway.connectors.common.connector import CommonConnector
from gateway.connectors.linksmpp.connector import LinkSmppConnector
from gateway.connectors.simulator import SimulatorConnector
from gateway.metrics import Metrics


def build_connector(
    reactor: object,
    settings: ConnectorSettings,
    http: HttpSettings,
    metrics: Metrics,
    inbound: Inbound | None = None,
) -> Connector:
    if settings.type == "linksmpp":
        assert inbound is not None, "the LINK SMPP connector hands receipts and MO back"
        return LinkSmppConnector(reactor, settings, metrics, inbound)
    if settings.type == "common":
        return CommonConnector(reactor, settings, metrics)
    if settings.type == "simulator":
        return SimulatorConnector(reactor, settings, http, metrics)
    raise ValueError(f"unknown connector type {settings.type!r}")
