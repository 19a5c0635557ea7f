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
