"""The benchmarks keep working: a quick run loses nothing (their figures are not checked)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.harness import PYTHON, ROOT, _env


def _bench(*args: str, timeout: float = 120) -> str:
    """Run `python -m bench.ARGS...`; its stdout, once it exited 0."""
    result = subprocess.run(
        [PYTHON, "-m", *args], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_quick_benchmark_loses_no_message() -> None:
    phases = json.loads(_bench("bench.e2e", "--quick", "--json", timeout=300))
    assert phases, "the benchmark printed no phase"


@pytest.mark.slow
def test_quick_benchmark_of_long_messages_in_parts_loses_no_part() -> None:
    # Every part comes back as its own receipt, the message having gone whole.
    (phase, _paced) = json.loads(
        _bench("bench.e2e", "--quick", "--sar-parts", "2", "--json", timeout=300)
    )["phases"]
    counts = phase["counts"]
    assert counts["receipts_matched"] == phase["messages"] and counts["lost"] == 0
    assert phase["fake_common"]["accepted"] == phase["messages"] // 2


def test_quick_http_client_benchmark_runs() -> None:
    rows = json.loads(_bench("bench.http_client", "--requests", "50", "--rounds", "1", "--json"))
    assert {(row["client"], row["mode"]) for row in rows} == {
        (client, mode)
        for client in ("treq", "lean", "common")
        for mode in ("sequential", "concurrent")
    }


def test_floor_benchmark_prints_its_rows() -> None:
    out = _bench("bench.floor", "--rates", "200", "--seconds", "0.5")
    row = out.splitlines()[-1].strip("| ").split(" | ")
    assert row[0] == "200" and all(float(cell) >= 0 for cell in row[1:]), out
