"""gateway.reload.plan: what a SIGHUP changes, keeps, refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.config import parse
from gateway.passwords import hash_password
from gateway.reload import ReloadRefused, plan

HASH = hash_password("pw", salt=b"0123456789abcdef")


def tree(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "smpp": {"listen": ["tcp:2775"]},
        "http": {"callback_username": "link", "callback_password": "one"},
        "connectors": {"sim": {"type": "simulator"}, "sim2": {"type": "simulator"}},
        "accounts": [
            {"system_id": "a", "password": HASH, "connector": "sim", "rate": 10},
            {"system_id": "b", "password": HASH, "connector": "sim"},
        ],
    }
    base = copy.deepcopy(base)
    base.update(changes)
    return base


def test_accounts_added_removed_changed_and_credentials() -> None:
    running = parse(tree())
    accounts = [
        {"system_id": "a", "password": HASH, "connector": "sim", "rate": 20},
        {"system_id": "c", "password": HASH, "connector": "sim2"},
    ]
    http = {"callback_username": "link", "callback_password": "two", "max_body": 1024}
    result = plan(running, parse(tree(accounts=accounts, http=http)))
    assert (result.added, result.removed, result.changed) == (("c",), ("b",), ("a",))
    assert result.config.accounts["a"].rate == 20
    assert result.config.http.callback_password == "two"
    # max_body needs a restart: the running value stays, and the plan says so.
    assert result.config.http.max_body == running.http.max_body
    assert result.restart_needed == ("[http] (but the callback credentials and source lists)",)


def test_listener_and_store_changes_wait_for_a_restart() -> None:
    running = parse(tree())
    new = parse(tree(smpp={"listen": ["tcp:2776"]}, store={"path": "/tmp/elsewhere.sqlite"}))
    result = plan(running, new)
    assert result.config.smpp == running.smpp and result.config.store == running.store
    assert result.restart_needed == ("[smpp]", "[store]")
    assert (result.added, result.removed, result.changed) == ((), (), ())


def test_a_connector_that_is_not_running_is_refused() -> None:
    running = parse(tree())
    connectors = {
        "sim": {"type": "simulator"},
        "sim2": {"type": "simulator"},
        "sim3": {"type": "simulator"},
    }
    accounts = [{"system_id": "a", "password": HASH, "connector": "sim3"}]
    with pytest.raises(ReloadRefused, match="sim3"):
        plan(running, parse(tree(connectors=connectors, accounts=accounts)))


def test_source_allow_lists_reload() -> None:
    running = parse(tree())
    http = {
        "callback_username": "link",
        "callback_password": "one",
        "callback_sources": ["193.142.108.0/24"],
        "metrics_sources": ["127.0.0.1/32"],
    }
    result = plan(running, parse(tree(http=http)))
    assert [str(n) for n in result.config.http.callback_sources or ()] == ["193.142.108.0/24"]
    assert [str(n) for n in result.config.http.metrics_sources or ()] == ["127.0.0.1/32"]
    assert result.restart_needed == ()


def test_the_log_level_changes_live() -> None:
    running = parse(tree())
    assert running.logging.level == "info"
    result = plan(running, parse(tree(logging={"level": "warn"})))
    assert result.config.logging.level == "warn"
    assert result.restart_needed == ()
