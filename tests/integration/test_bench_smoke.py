"""The benchmarks keep working: a quick run loses nothing (their figures are not checked)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.harness import PYTHON, ROOT, _env


@pytest.mark.slow
def test_quick_benchmark_loses_no_message() -> None:
    result = subprocess.run(
        [PYTHON, "-m", "bench.e2e", "--quick", "--json"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    phases = json.loads(result.stdout)
    assert phases, "the benchmark printed no phase"


def test_quick_http_client_benchmark_runs() -> None:
    result = subprocess.run(
        [PYTHON, "-m", "bench.http_client", "--requests", "50", "--rounds", "1", "--json"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout)
    assert {(row["client"], row["mode"]) for row in rows} == {
        (client, mode)
        for client in ("treq", "lean", "common")
        for mode in ("sequential", "concurrent")
    }


def test_floor_benchmark_prints_its_rows() -> None:
    result = subprocess.run(
        [PYTHON, "-m", "bench.floor", "--rates", "200", "--seconds", "0.5"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    row = result.stdout.splitlines()[-1].strip("| ").split(" | ")
    assert row[0] == "200" and all(float(cell) >= 0 for cell in row[1:]), result.stdout
