"""JSON log lines (gateway.logs) and how they are installed under twistd."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from twisted.application.service import Application, IService
from twisted.logger import ILogObserver, Logger, LogLevel, globalLogPublisher
from twisted.python.failure import Failure

from gateway.logs import LevelFilter, Repeats, TopService, json_file_observer, observer_for


def _capture(emit: Any) -> list[dict[str, Any]]:
    out = io.StringIO()
    observer = json_file_observer(out)
    log = Logger(namespace="gateway.test", observer=observer)
    emit(log)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_one_flat_object_per_event_with_its_fields() -> None:
    (record,) = _capture(
        lambda log: log.warn(
            "LINK rejected {message_id} of {account}",
            message_id="1001",
            upstream_id="abc",
            account="shop",
            connector="main",
            count=3,
        )
    )
    assert list(record)[:4] == ["time", "level", "namespace", "message"]
    assert record["level"] == "warning"
    assert record["namespace"] == "gateway.test"
    assert record["message"] == "LINK rejected 1001 of shop"
    assert record["time"].endswith("Z") and "T" in record["time"]
    assert {k: record[k] for k in ("message_id", "upstream_id", "account", "connector")} == {
        "message_id": "1001",
        "upstream_id": "abc",
        "account": "shop",
        "connector": "main",
    }
    assert record["count"] == 3
    assert not any(key.startswith("log_") for key in record)


def test_levels() -> None:
    records = _capture(
        lambda log: [
            log.emit(level, "x")
            for level in LogLevel.iterconstants()  # type: ignore[func-returns-value]
        ]
    )
    assert [r["level"] for r in records] == ["debug", "info", "warning", "error", "critical"]


def test_secrets_never_reach_the_line() -> None:
    (record,) = _capture(
        lambda log: log.info(
            "bind of {system_id}",
            system_id="shop",
            password="hunter2",
            callback_password="x",
            token="t",
            client_secret="s",
            Authorization="Basic abc",
        )
    )
    assert record["system_id"] == "shop"
    assert set(record) == {"time", "level", "namespace", "message", "system_id"}


def test_values_stay_flat_and_bounded() -> None:
    (record,) = _capture(
        lambda log: log.info(
            "{what}", what=["a", "b"], error=ValueError("bad"), long="x" * 5000, time="field"
        )
    )
    assert record["what"] == "['a', 'b']" and record["error"] == "bad"
    assert len(record["long"]) < 2100
    # A field named like a fixed key is kept aside, never replacing the real one.
    assert record["time_field"] == "field" and record["time"].endswith("Z")


def test_failures_carry_the_exception_and_traceback() -> None:
    def emit(log: Logger) -> None:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.failure("store transaction failed for {account}", Failure(), account="shop")

    (record,) = _capture(emit)
    assert record["level"] == "critical"
    assert record["exception"] == "RuntimeError: boom"
    assert "Traceback" in record["traceback"] and record["account"] == "shop"


def test_legacy_events_are_lines_too() -> None:
    out = io.StringIO()
    observer = json_file_observer(out)
    globalLogPublisher.addObserver(observer)
    try:
        from twisted.python import log as legacy

        legacy.msg("Starting factory", system="-")
    finally:
        globalLogPublisher.removeObserver(observer)
    (record,) = (json.loads(line) for line in out.getvalue().splitlines())
    assert record["message"] == "Starting factory"
    assert "isError" not in record and "system" not in record


def test_syslog_leaves_twistd_s_observer_alone() -> None:
    assert observer_for("json", {"nodaemon": True, "syslog": True}) is None
    assert observer_for("text", {"nodaemon": True, "syslog": True}) is None
    assert observer_for("text", {"nodaemon": True}) is not None
    assert observer_for("json", {"nodaemon": True, "logfile": None}) is not None


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_level_drops_what_is_below_it_and_a_reload_changes_it(
    tmp_path: Path, log_format: str
) -> None:
    path = tmp_path / "gateway.log"
    level = LevelFilter("info")
    observer = observer_for(log_format, {"logfile": str(path)}, level)
    assert observer is not None
    log = Logger(namespace="t", observer=observer)
    log.debug("dropped-1")
    log.info("kept-1")
    level.set("warn")
    log.info("dropped-2")
    log.warn("kept-2")
    level.set("debug")
    log.debug("kept-3")
    text = path.read_text()
    assert [word for word in ("kept-1", "kept-2", "kept-3") if word in text] == [
        "kept-1",
        "kept-2",
        "kept-3",
    ]
    assert "dropped" not in text


def test_repeats_let_the_first_through_then_one_a_minute_with_a_count() -> None:
    repeats = Repeats(interval=60)
    assert repeats.note("a", 0.0) == 0
    assert [repeats.note("a", t) for t in (1.0, 2.0, 59.0)] == [None, None, None]
    assert repeats.note("b", 3.0) == 0  # keys are counted apart
    assert repeats.note("a", 60.0, count=1) == 3
    assert repeats.note("a", 61.0, count=5) is None
    assert repeats.left_out() == {"a": 5}


def test_repeats_remember_a_bounded_number_of_keys() -> None:
    repeats = Repeats(interval=60, max_keys=10)
    for n in range(100):
        repeats.note(n, 0.0)
    assert len(repeats._seen) == 10


def test_json_goes_to_twistd_s_logfile(tmp_path: Path) -> None:
    path = tmp_path / "gateway.log"
    observer = observer_for("json", {"logfile": str(path), "nodaemon": True})
    assert observer is not None
    Logger(namespace="t", observer=observer).info("hello {account}", account="shop")
    (record,) = (json.loads(line) for line in path.read_text().splitlines())
    assert record["account"] == "shop"


def test_top_service_installs_the_observer_on_twistd_s_application() -> None:
    observer = json_file_observer(io.StringIO())
    application = Application("smpp-gateway")
    top = TopService(observer)
    top.setServiceParent(application)  # what twistd does with makeService's result
    assert application.getComponent(ILogObserver) is observer
    assert top in list(IService(application))  # type: ignore[call-overload]


def test_top_service_without_observer_is_a_plain_multiservice() -> None:
    application = Application("smpp-gateway")
    TopService(None).setServiceParent(application)
    assert application.getComponent(ILogObserver, None) is None


def test_secret_names_and_innocent_ones() -> None:
    (record,) = _capture(
        lambda log: log.info(
            "x",
            pass_="a",
            pw="b",
            client_secret="c",
            access_token="d",
            passwd="e",
            bypass="kept",
            passed=2,
            ratio=float("nan"),
        )
    )
    assert {k: record[k] for k in ("bypass", "passed", "ratio")} == {
        "bypass": "kept",
        "passed": 2,
        "ratio": "nan",
    }
    assert not {"pass_", "pw", "client_secret", "access_token", "passwd"} & set(record)
