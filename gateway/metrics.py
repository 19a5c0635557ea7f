"""Every Prometheus metric the gateway exports, defined in one place.

Names follow Prometheus conventions: `smppgw_` prefix, `_total` counters,
`_seconds` histograms. Label sets are bounded: account (from the config),
connector (from the config), command and status (SMPP tables), stat (seven
words), outcome and reason (fixed words in the code). Nothing per message or per
address ever becomes a label.

A `Metrics` object owns its registry so that tests (and several gateways in
one process) do not collide; the daemon uses the default registry. Hot paths
call the cached children (`child(metric, *labels)`), not `.labels()`.

Counters touched per message are `Tally` objects: prometheus_client's Counter
takes a lock on every increment (about 1.3 µs, ten times per message), while
every increment here happens on the reactor thread, and so does the scrape
(the HTTP server runs there too): a plain float add is enough.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics import MetricWrapperBase

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _TallyChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Tally:
    """A labelled counter for the reactor thread only; read at scrape time."""

    def __init__(
        self, name: str, documentation: str, labelnames: list[str], registry: CollectorRegistry
    ) -> None:
        # CounterMetricFamily adds the `_total` suffix itself.
        self._name = name.removesuffix("_total")
        self._documentation = documentation
        self._labelnames = labelnames
        self._children: dict[tuple[str, ...], _TallyChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> _TallyChild:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self._labelnames):
                raise ValueError(f"{self._name}: expected labels {self._labelnames}")
            child = self._children[values] = _TallyChild()
        return child

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in self._children.items():
            family.add_metric(list(values), child.value)
        yield family


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
        self.pdus_in = Tally(
            "smppgw_pdus_in_total", "PDUs received from ESMEs", ["command"], registry=r
        )
        self.pdus_out = Tally(
            "smppgw_pdus_out_total",
            "Responses sent to ESMEs, by command and status",
            ["command", "status"],
            registry=r,
        )
        self.protocol_errors = Tally(
            "smppgw_protocol_errors_total",
            "Malformed, unknown or out-of-state PDUs, by the status answered",
            ["status"],
            registry=r,
        )
        self.bind_failures = Counter(
            "smppgw_bind_failures_total", "Refused binds", ["reason"], registry=r
        )
        self.submits = Tally(
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
        self.upstream_messages = Tally(
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
        self.expired = Counter(
            "smppgw_messages_expired_total",
            "Messages whose validity ended while still queued in the gateway",
            ["account"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "smppgw_queue_depth",
            "Items waiting: mt (to send upstream), inflight (at LINK, no final report), receipts",
            ["queue"],
            registry=r,
        )
        self.queue_oldest = Gauge(
            "smppgw_queue_oldest_seconds",
            "Age of the oldest item waiting in a queue",
            ["queue"],
            registry=r,
        )
        self.callbacks = Tally(
            "smppgw_callbacks_total",
            "HTTP callbacks from LINK by kind and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.reports = Tally(
            "smppgw_reports_total",
            "Delivery reports by what they did (final, intermediate, partial, duplicate,"
            " unknown, silent)",
            ["outcome"],
            registry=r,
        )
        self.receipts = Tally(
            "smppgw_receipts_total", "Receipts generated for ESMEs, by stat", ["stat"], registry=r
        )
        self.receipt_deliveries = Tally(
            "smppgw_receipt_deliveries_total",
            "deliver_sm receipts sent to ESMEs by outcome (ok, retry, rejected, timeout)",
            ["outcome"],
            registry=r,
        )

    @cache  # noqa: B019 - one Metrics per process lifetime; the cache is the point
    def child(self, metric: MetricWrapperBase | Tally, *labels: str) -> Any:
        return metric.labels(*labels)
