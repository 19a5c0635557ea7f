"""Drive node-smpp (the `smpp` npm package) step by step from a test, through
tests/interop/node/driver.js: one node process, one SMPP session, one JSON line
per request and per answer (the protocol is described at the top of driver.js)."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.interop.conftest import Receipt

NODE_DIR = Path(__file__).resolve().parent / "node"
DRIVER = NODE_DIR / "driver.js"
NODE = shutil.which("node")
NODE_SMPP_INSTALLED = (NODE_DIR / "node_modules" / "smpp").is_dir()
LIFETIME = 120  # seconds: the driver leaves by itself after this


def hexed(data: bytes) -> dict[str, str]:
    """A Buffer in driver.js params."""
    return {"$hex": data.hex()}


def unhex(value: Any) -> bytes | None:
    """A Buffer in driver.js answers, or None when the field is absent."""
    if value is None:
        return None
    assert isinstance(value, dict) and "$hex" in value, f"not a Buffer: {value!r}"
    return bytes.fromhex(value["$hex"])


class NodeEsme:
    def __init__(self, port: int) -> None:
        assert NODE is not None
        self.proc = subprocess.Popen(
            [NODE, str(DRIVER), "127.0.0.1", str(port), str(LIFETIME)],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._next_id = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self._answers.put(json.loads(line))
        self._answers.put(None)  # the driver is gone

    def call(self, op: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        """Send one request and return its answer (an error answer fails the test)."""
        assert self.proc.stdin is not None
        self._next_id += 1
        request_id = self._next_id
        self.proc.stdin.write(json.dumps({"id": request_id, "op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        while True:
            try:
                answer = self._answers.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"driver.js did not answer {op} in {timeout} s") from None
            if answer is None:
                raise AssertionError(f"driver.js exited during {op}:\n{self._stderr()}")
            if answer.get("id") == request_id:
                break
        assert "error" not in answer, f"driver.js {op}: {answer['error']}"
        return answer

    def send(self, command: str, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
        """Send one node-smpp command; the response PDU's fields."""
        response: dict[str, Any] = self.call(
            "send", timeout=timeout, command=command, params=params
        )["response"]
        return response

    def bind(
        self,
        system_id: str,
        password: str,
        mode: str = "transceiver",
        interface_version: int | None = None,
    ) -> dict[str, Any]:
        """Connect and bind; node-smpp's own interface_version (0x50) unless one is given."""
        self.call("open")
        params: dict[str, Any] = {"system_id": system_id, "password": password}
        if interface_version is not None:
            params["interface_version"] = interface_version
        return self.send(f"bind_{mode}", **params)

    def deliveries(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("receipts")["deliveries"]
        return found

    def receipts(self) -> list[Receipt]:
        """Every receipt deliver_sm so far, in arrival order."""
        found = []
        for pdu in self.deliveries():
            if not pdu["esm_class"] & 0x3C:
                continue
            raw = unhex(pdu["short_message"]["raw"])
            assert raw is not None
            state = pdu.get("message_state")
            found.append(
                Receipt(
                    receipted_message_id=pdu.get("receipted_message_id"),
                    text=raw.decode("ascii"),
                    esm_class=pdu["esm_class"],
                    data_coding=pdu["data_coding"],
                    message_state=state,
                    network_error_code=unhex(pdu.get("network_error_code")),
                    source_addr=pdu["source_addr"],
                    destination_addr=pdu["destination_addr"],
                )
            )
        return found

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.call("close", timeout=5)
        finally:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(5)
            if self.proc.stderr is not None:
                self.proc.stderr.close()

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()[-3000:]

    def __enter__(self) -> NodeEsme:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
