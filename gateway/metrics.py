"""Every Prometheus metric the gateway exports, defined in one place.

Names follow Prometheus conventions: `smppgw_` prefix, `_total` counters,
`_seconds` histograms and ages, no unit suffix on counts. Label sets are bounded:
account and connector (from the config), command and status (SMPP tables), stat
(seven words), bind (transmitter, receiver, transceiver), endpoint (the upstream
request kinds), queue (mt, receipts, mo), kind, outcome and reason (fixed words
in the code). Nothing per message or per address ever becomes a label.

etc/prometheus/smpp-gateway.rules.yml and etc/grafana/smpp-gateway.json use
these names; tests/unit/test_etc_monitoring.py keeps them in step.

A `Metrics` object owns its registry so that tests (and several gateways in
one process) do not collide; the daemon uses the default registry. Hot paths
call the cached children (`pdu_in(command)`), not `.labels()`, which costs a
dict lookup plus a lock per call.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sessions = Gauge(
            "smppgw_sessions", "Bound SMPP sessions", ["account", "bind"], registry=r
        )
        self.connections = Gauge(
            "smppgw_connections", "Open SMPP connections (bound or not)", registry=r
        )
        self.pdus_in = Counter(
            "smppgw_pdus_in_total", "PDUs received from ESMEs", ["command"], registry=r
        )
        self.pdus_out = Counter(
            "smppgw_pdus_out_total",
            "Responses sent to ESMEs, by command and status",
            ["command", "status"],
            registry=r,
        )
        self.protocol_errors = Counter(
            "smppgw_protocol_errors_total",
            "Malformed, unknown or out-of-state PDUs, by the status answered",
            ["status"],
            registry=r,
        )
        self.unknown_tlvs = Counter(
            "smppgw_unknown_tlvs_total",
            "TLVs with a tag the gateway does not know (kept and ignored), by command",
            ["command"],
            registry=r,
        )
        self.operations = Counter(
            "smppgw_operations_total",
            "query_sm, cancel_sm and replace_sm by account, command and outcome (ok, failed)",
            ["account", "command", "outcome"],
            registry=r,
        )
        self.upstream_link = Gauge(
            "smppgw_upstream_link_up",
            "1 while the SMPP link to LINK is bound, else 0, by connector",
            ["connector"],
            registry=r,
        )
        self.mo = Counter(
            "smppgw_mo_total",
            "MO messages from LINK by account and outcome"
            " (accepted, duplicate, unrouted, undeliverable)",
            ["account", "outcome"],
            registry=r,
        )
        self.bind_failures = Counter(
            "smppgw_bind_failures_total", "Refused binds", ["reason"], registry=r
        )
        self.bind_checks = Counter(
            "smppgw_bind_checks_total",
            "Bind password checks by outcome (checked: scrypt ran; shared: joined one"
            " running; cached: verified recently from that address; busy: refused unchecked;"
            " skipped: the client left before its turn)",
            ["outcome"],
            registry=r,
        )
        self.disconnects = Counter(
            "smppgw_disconnects_total",
            "Connections the gateway closed on a peer by kind (smpp, http) and reason"
            " (no_bind, unread, partial_pdu, silent, request_timeout)",
            ["kind", "reason"],
            registry=r,
        )
        self.http_refused = Counter(
            "smppgw_http_refused_total",
            "HTTP requests refused before routing (malformed, too large, timed out), by status",
            ["status"],
            registry=r,
        )
        self.submits = Counter(
            "smppgw_submits_total",
            "submit_sm by account and outcome (accepted, throttled, refused, queue_full, error)",
            ["account", "outcome"],
            registry=r,
        )
        self.submit_latency = Histogram(
            "smppgw_submit_response_seconds",
            "Time from a submit_sm's arrival to its submit_sm_resp",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_requests = Counter(
            "smppgw_upstream_requests_total",
            "Requests to LINK by connector, endpoint and outcome",
            ["connector", "endpoint", "outcome"],
            registry=r,
        )
        self.upstream_latency = Histogram(
            "smppgw_upstream_request_seconds",
            "Duration of requests to LINK",
            ["connector", "endpoint"],
            buckets=UPSTREAM_BUCKETS,
            registry=r,
        )
        self.upstream_rate_limit = Gauge(
            "smppgw_upstream_rate_limit",
            "Requests a second a connector allows itself after LINK answered 429 or"
            " throttling (0: no limit), by connector",
            ["connector"],
            registry=r,
        )
        self.upstream_messages = Counter(
            "smppgw_upstream_messages_total",
            "Messages handed to LINK by connector and outcome (accepted, retry, rejected)",
            ["connector", "outcome"],
            registry=r,
        )
        self.misconfigured = Counter(
            "smppgw_upstream_misconfiguration_total",
            "Upstream answers that mean our LINK account settings are wrong",
            ["connector"],
            registry=r,
        )
        self.parts = Counter(
            "smppgw_long_message_parts_total",
            "Parts of long messages by account and what became of them (held: waiting for"
            " siblings; merged: sent whole; segments: sent as they are after waiting;"
            " rejected: refused with a REJECTD receipt; refused: answered ESME_RINVMSGLEN)",
            ["account", "outcome"],
            registry=r,
        )
        self.parts_waiting = Gauge(
            "smppgw_long_message_parts_waiting",
            "Parts of long messages waiting for their siblings",
            registry=r,
        )
        self.expired = Counter(
            "smppgw_messages_expired_total",
            "Messages whose validity ended while still queued in the gateway",
            ["account"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "smppgw_queue_depth",
            "Items waiting: mt (for LINK), receipts and mo (for an ESME to bind and take them)",
            ["queue"],
            registry=r,
        )
        self.queue_oldest = Gauge(
            "smppgw_queue_oldest_seconds",
            "Age of the oldest item waiting in a queue",
            ["queue"],
            registry=r,
        )
        self.callbacks = Counter(
            "smppgw_callbacks_total",
            "HTTP callbacks from LINK by kind and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.reports = Counter(
            "smppgw_reports_total",
            "Delivery reports by what they did (final, intermediate, partial, duplicate,"
            " unknown, silent)",
            ["outcome"],
            registry=r,
        )
        self.receipts = Counter(
            "smppgw_receipts_total", "Receipts generated for ESMEs, by stat", ["stat"], registry=r
        )
        self.receipt_deliveries = Counter(
            "smppgw_receipt_deliveries_total",
            "deliver_sm (receipts and MO) to ESMEs by outcome (ok, retry, rejected, timeout,"
            " lost, expired)",
            ["outcome"],
            registry=r,
        )

        self.ready = Gauge(
            "smppgw_ready",
            "1 while /readyz answers 200 (store writable, listeners up, a connector usable)",
            registry=r,
        )

    @cache  # noqa: B019 - one Metrics per process lifetime; the cache is the point
    def child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        return metric.labels(*labels)
