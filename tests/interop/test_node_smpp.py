"""The real gateway driven by node-smpp (the `smpp` npm package), through
tests/interop/node/esme.js, which prints what it saw as one JSON line."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness import FakeCommonProcess, GatewayProcess
from tests.interop.conftest import PASSWORD, SYSTEM_ID, parse_receipt

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "esme.js"
SCRIPT_TIMEOUT = 20  # seconds; the script gives up by itself after this
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(NODE is None, reason="node is not on PATH (CI installs Node 20)"),
    pytest.mark.skipif(
        not (NODE_DIR / "node_modules" / "smpp").is_dir(),
        reason="tests/interop/node/node_modules is missing (run `make setup`)",
    ),
]


def run_esme(
    port: int,
    count: int,
    mode: str = "transceiver",
    system_id: str = SYSTEM_ID,
    password: str = PASSWORD,
) -> dict[str, Any]:
    assert NODE is not None
    args = [NODE, str(SCRIPT), "127.0.0.1", str(port), system_id, password, str(count), mode]
    done = subprocess.run(
        [*args, str(SCRIPT_TIMEOUT)],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT + 15,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"esme.js printed nothing (exit {done.returncode}):\n{done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert done.returncode == 0, f"esme.js exit {done.returncode}: {result}\n{done.stderr}"
    assert not result["timed_out"]
    return result


def check_run(result: dict[str, Any], count: int) -> None:
    """What test_smpplib checks for smpplib: ids equal, one receipt each, DELIVRD/000."""
    assert result["errors"] == []
    assert result["bind_status"] == [0] * len(result["bind_status"])
    assert len(result["submits"]) == count
    assert [s["status"] for s in result["submits"]] == [0] * count
    destination = {s["message_id"]: f"4790000{s['index']:03d}" for s in result["submits"]}
    assert len(destination) == count, "a message_id was given twice"
    seen = set()
    for receipt in result["receipts"]:
        message_id = receipt["receipted_message_id"]
        text = parse_receipt(receipt["text"])
        assert text.id == message_id
        assert message_id in destination, f"receipt for unknown message_id {message_id}"
        assert message_id not in seen, f"second receipt for {message_id}"
        seen.add(message_id)
        assert (text.sub, text.dlvrd, text.stat, text.err) == ("001", "001", "DELIVRD", "000")
        assert receipt["esm_class"] == 4  # compared literally by some ESMEs
        assert receipt["data_coding"] == 0
        assert receipt["message_state"] == 2
        assert receipt["source_addr"] == destination[message_id]
        assert receipt["destination_addr"] == "NODE"
    assert seen == set(destination)
    assert result["other_deliver_sm"] == 0
    assert result["unbind_status"] == [0] * len(result["bind_status"])


def test_node_transceiver_receipts_match_submit_responses(
    gateway: tuple[GatewayProcess, FakeCommonProcess],
) -> None:
    gw, fake = gateway
    result = run_esme(gw.smpp_port, 20)
    assert len(result["bind_status"]) == 1
    check_run(result, 20)
    stats = fake.control()
    assert stats["accepted"] == 20
    assert stats["unique_ref_ids"] == 20
    assert stats["duplicate_ref_ids"] == 0


def test_node_transmitter_and_receiver(gateway: tuple[GatewayProcess, FakeCommonProcess]) -> None:
    gw, fake = gateway
    result = run_esme(gw.smpp_port, 10, mode="split")
    assert len(result["bind_status"]) == 2
    check_run(result, 10)
    assert fake.control()["accepted"] == 10


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    # bind_failure_status = "uniform": an unknown system_id looks like a wrong password.
    [(SYSTEM_ID, "wrong", 0x0E), ("nobody", PASSWORD, 0x0E)],
    ids=["wrong-password", "unknown-system-id"],
)
def test_node_bind_refused(
    shared_gateway: tuple[GatewayProcess, FakeCommonProcess],
    system_id: str,
    password: str,
    status: int,
) -> None:
    gw, _ = shared_gateway
    result = run_esme(gw.smpp_port, 1, system_id=system_id, password=password)
    assert result["bind_status"] == [status]
    assert result["submits"] == []
    # The right credentials still work (and clear the failed-bind memory).
    check_run(run_esme(gw.smpp_port, 1), 1)
