"""The command line and start-up failures, as an operator meets them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gateway.passwords import verify_password
from tests.harness import PYTHON, ROOT, TWISTD, _env, free_port, gateway_config


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=_env(), input=stdin, capture_output=True, text=True, timeout=60
    )


def test_hash_password_reads_stdin_and_verifies() -> None:
    result = run(PYTHON, "-m", "gateway.cli", "hash-password", stdin="s3cret\n")
    assert result.returncode == 0
    assert verify_password("s3cret", result.stdout.strip())
    assert not verify_password("other", result.stdout.strip())


def test_check_config_accepts_the_shipped_simulator_example() -> None:
    result = run(PYTHON, "-m", "gateway.cli", "check-config", "etc/simulator.toml")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_config_names_file_key_and_problem(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, smpp_port=1, http_port=2, common_url=None)
    config.write_text(config.read_text().replace('connector = "main"', 'connector = "nope"'))
    result = run(PYTHON, "-m", "gateway.cli", "check-config", str(config))
    assert result.returncode == 1
    assert str(config) in result.stderr and "accounts[0].connector" in result.stderr
    assert "no connector named 'nope'" in result.stderr


def test_twistd_refuses_a_bad_config(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, smpp_port=free_port(), http_port=free_port(), common_url=None)
    config.write_text(config.read_text() + "\n[bogus]\nx = 1\n")
    result = run(TWISTD, "--nodaemon", "--pidfile=", "smpp-gateway", "--config", str(config))
    assert result.returncode != 0
    assert "bogus: unknown key" in result.stdout + result.stderr


def test_a_busy_port_makes_the_daemon_exit_with_status_1(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = gateway_config(tmp_path, smpp_port=port, http_port=free_port(), common_url=None)
        result = run(TWISTD, "--nodaemon", "--pidfile=", "smpp-gateway", "--config", str(config))
    assert result.returncode == 1
    assert "could not start" in result.stdout + result.stderr
