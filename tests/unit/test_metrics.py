"""The metrics module: children, registries, and README documents every metric."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Metrics

README = Path(__file__).resolve().parents[2] / "README.md"


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_cached_children_count() -> None:
    metrics = Metrics()
    metrics.child(metrics.pdus_in, "submit_sm").inc()
    metrics.child(metrics.pdus_in, "submit_sm").inc(2)
    metrics.child(metrics.submits, "shop", "throttled").inc()
    got = samples(metrics)
    assert got[("smppgw_pdus_in_total", (("command", "submit_sm"),))] == 3
    assert got[("smppgw_submits_total", (("account", "shop"), ("outcome", "throttled")))] == 1


def test_wrong_number_of_labels_is_refused() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError):
        metrics.pdus_out.labels("submit_sm_resp")


def test_two_gateways_in_one_process_do_not_collide() -> None:
    first, second = Metrics(), Metrics()
    first.child(first.reports, "final").inc()
    assert ("smppgw_reports_total", (("outcome", "final"),)) not in samples(second)


def test_readme_documents_every_metric_and_only_those() -> None:
    metrics = Metrics()
    exported = {
        family.name if family.type != "counter" else family.name + "_total"
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        if not family.name.endswith("_created")
    }
    documented = set(re.findall(r"^\| `(smppgw_[a-z_]+)` \|", README.read_text(), re.M))
    assert documented == exported


# Every label the gateway may use; each has a bounded set of values (see gateway.metrics).
BOUNDED_LABELS = {
    "account",
    "connector",
    "command",
    "status",
    "stat",
    "kind",
    "outcome",
    "reason",
    "queue",
    "bind",
    "endpoint",
}


def test_names_and_labels_follow_prometheus_conventions() -> None:
    metrics = Metrics()
    for collector in metrics.registry._collector_to_names:
        for family in collector.describe():
            name, kind = family.name, family.type
            assert name.startswith("smppgw_"), name
            if kind == "counter":
                # prometheus_client keeps a counter's name without its _total suffix.
                assert not name.endswith("_total"), name
            elif kind == "histogram":
                assert name.endswith("_seconds"), name
            else:
                assert kind == "gauge" and not name.endswith("_total"), name
            labels = set(collector._labelnames)  # type: ignore[attr-defined]
            assert labels <= BOUNDED_LABELS, (name, labels - BOUNDED_LABELS)


def test_the_issue_s_list_is_exported() -> None:
    """What "Run it like a production service" asks to see, by name and labels."""
    wanted = {
        "smppgw_sessions": {"account", "bind"},
        "smppgw_pdus_in_total": {"command"},
        "smppgw_pdus_out_total": {"command", "status"},
        "smppgw_submits_total": {"account", "outcome"},
        "smppgw_submit_response_seconds": set(),
        "smppgw_upstream_requests_total": {"connector", "endpoint", "outcome"},
        "smppgw_upstream_request_seconds": {"connector", "endpoint"},
        "smppgw_queue_depth": {"queue"},
        "smppgw_queue_oldest_seconds": {"queue"},
        "smppgw_receipts_total": {"stat"},
        "smppgw_callbacks_total": {"kind", "outcome"},
        "smppgw_bind_failures_total": {"reason"},
        "smppgw_upstream_link_up": {"connector"},
        "smppgw_ready": set(),
    }
    metrics = Metrics()
    exported = {}
    for collector in metrics.registry._collector_to_names:
        for family in collector.describe():
            suffix = "_total" if family.type == "counter" else ""
            exported[family.name + suffix] = set(collector._labelnames)  # type: ignore[attr-defined]
    for name, labels in wanted.items():
        assert exported.get(name) == labels, name
