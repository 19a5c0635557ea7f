"""etc/prometheus rules and the etc/grafana dashboard use only metrics the gateway exports.

A renamed metric would otherwise leave an alert that never fires and a panel
that shows "No data", both silently. The PromQL is read with a small tokenizer
(metric names are the identifiers that are not functions, keywords, label
names or template variables); promtool, where installed, checks the syntax too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "etc" / "prometheus" / "smpp-gateway.rules.yml"
DASHBOARD = ROOT / "etc" / "grafana" / "smpp-gateway.json"
# Prometheus' own series, not the gateway's.
PROMETHEUS_SERIES = {"up"}
SEVERITIES = {"critical", "warning", "info"}

_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The series names an expression selects."""
    text = _STRING.sub('""', expr)
    text = _VARIABLE.sub("1", text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.groups()
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def exported() -> set[str]:
    """Every series name a scrape of the gateway can have."""
    metrics = Metrics()
    names = set()
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def _base(name: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", name)


def test_the_tokenizer() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, connector) (rate(smppgw_x_bucket{a="b",'
        ' instance=~"$instance"}[$__rate_interval]))) / on(job) group_left sum(up{job="j"})'
        " > 0.5 and smppgw_y offset 5m"
    )
    assert metric_names(expr) == {"smppgw_x_bucket", "up", "smppgw_y"}


# --- the alert rules -----------------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    rules = []
    for group in document["groups"]:
        assert group["name"] and group["rules"]
        rules.extend(group["rules"])
    return rules


def test_every_rule_is_a_complete_alert() -> None:
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"\d+[smh]", str(rule["for"])), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip()
        expr = rule["expr"]
        for opening, closing in ("()", "{}", "[]"):
            assert expr.count(opening) == expr.count(closing), rule["alert"]


def test_rules_use_only_exported_metrics() -> None:
    known = exported() | PROMETHEUS_SERIES
    for rule in _rules():
        used = metric_names(rule["expr"])
        assert used, rule["alert"]
        assert used <= known, (rule["alert"], used - known)


def test_the_issue_s_alerts_are_there() -> None:
    used_by_alert = {rule["alert"]: metric_names(rule["expr"]) for rule in _rules()}
    everything = set().union(*used_by_alert.values())
    for name in (
        "up",
        "smppgw_ready",
        "smppgw_upstream_link_up",
        "smppgw_queue_depth",
        "smppgw_queue_oldest_seconds",
        "smppgw_receipt_deliveries_total",
        "smppgw_bind_failures_total",
        "smppgw_upstream_requests_total",
        "smppgw_upstream_misconfiguration_total",
    ):
        assert name in everything, name
    oldest = " ".join(r["expr"] for r in _rules() if "smppgw_queue_oldest_seconds" in r["expr"])
    for queue in ("mt", "receipts", "mo"):
        assert f'queue="{queue}"' in oldest


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is optional")
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the dashboard ---------------------------------------------------------------


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def test_dashboard_has_a_datasource_variable_used_everywhere() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    graphs = [p for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    assert graphs
    for panel in graphs:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))


def test_dashboard_uses_only_exported_metrics() -> None:
    dashboard = _dashboard()
    known = exported()
    expressions = [
        target["expr"]
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        # Grafana's label_values(METRIC, LABEL): the metric is the selector.
        match = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable.get("definition", ""))
        if match:
            expressions.append(match.group(1))
    used: set[str] = set()
    for expr in expressions:
        names = metric_names(expr)
        assert names, expr
        assert names <= known, (expr, names - known)
        used |= names
    # What the issue asks the dashboard to show.
    wanted = {
        "smppgw_submits_total",
        "smppgw_submit_response_seconds",
        "smppgw_upstream_requests_total",
        "smppgw_upstream_request_seconds",
        "smppgw_queue_depth",
        "smppgw_queue_oldest_seconds",
        "smppgw_receipts_total",
        "smppgw_callbacks_total",
        "smppgw_sessions",
        "smppgw_bind_failures_total",
        "smppgw_upstream_link_up",
    }
    assert wanted <= {_base(name) for name in used}
