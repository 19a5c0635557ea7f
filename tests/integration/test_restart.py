"""Nothing accepted is lost across a restart, and nothing is sent twice.

With LINK (the fake Common) down, 1,000 messages are accepted; the daemon is
stopped with SIGTERM or killed with SIGKILL and started again on the same
SQLite file; LINK comes back: every message reaches LINK once (unique refIds)
and every receipt reaches the ESME once.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from gateway.smpp import pdu as p
from gateway.smpp.codec import encode
from gateway.smpp.receipts import parse_receipt_text
from tests.esme import Esme, submit
from tests.harness import FakeCommonProcess, GatewayProcess, free_port, gateway_config

COUNT = 1000


def _submit_all(port: int) -> set[str]:
    with Esme(port, timeout=30) as esme:
        assert esme.bind("esme1", "secret1", p.BindTransmitter).status == p.CommandStatus.ESME_ROK
        esme.send_raw(
            b"".join(
                encode(submit(f"4790{i:06d}", f"message {i}".encode(), sequence=10 + i))
                for i in range(COUNT)
            )
        )
        answers = [esme.receive(lambda r: isinstance(r, p.SubmitSmResp)) for _ in range(COUNT)]
    assert all(a.status == p.CommandStatus.ESME_ROK for a in answers)
    ids = {a.message_id for a in answers}  # type: ignore[attr-defined]
    assert len(ids) == COUNT
    return ids


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_restart_loses_nothing_and_duplicates_nothing(tmp_path: Path, sig: int) -> None:
    smpp_port, http_port = free_port(), free_port()
    callback = f"http://127.0.0.1:{http_port}/callbacks/dlr"
    with FakeCommonProcess(callback) as fake:
        fake.control({"down": True})
        config = gateway_config(
            tmp_path, smpp_port=smpp_port, http_port=http_port, common_url=fake.url
        )
        first = GatewayProcess(config, smpp_port, http_port).start()
        try:
            ids = _submit_all(smpp_port)
        finally:
            code = first.stop(sig)
        if sig == signal.SIGTERM:
            # twistd re-raises SIGTERM after a clean shutdown; systemd counts that as success.
            assert code in (0, -signal.SIGTERM)
            assert "smpp-gateway stopped" in Path(first.log).read_text()
        assert fake.control()["accepted"] == 0

        with GatewayProcess(config, smpp_port, http_port) as second:
            fake.control({"down": False})
            with Esme(smpp_port, timeout=30) as esme:
                assert esme.bind("esme1", "secret1", p.BindReceiver).status == 0
                receipts = esme.receipts(COUNT, timeout=60)
                # Anything sent twice would arrive now.
                extra = []
                deadline = time.monotonic() + 1.5
                while time.monotonic() < deadline:
                    try:
                        extra += esme.receipts(1, timeout=deadline - time.monotonic())
                    except TimeoutError:
                        break
            stats = fake.control()
            metrics = second.metrics()

    received = [parse_receipt_text(r.short_message).message_id for r in receipts + extra]
    assert len(received) == COUNT and set(received) == ids
    assert stats["accepted"] == COUNT
    assert stats["unique_ref_ids"] == COUNT and stats["duplicate_ref_ids"] == 0
    assert "smppgw_receipt_deliveries_total" in metrics


def test_sigterm_unbinds_bound_esmes(tmp_path: Path) -> None:
    smpp_port, http_port = free_port(), free_port()
    config = gateway_config(tmp_path, smpp_port=smpp_port, http_port=http_port, common_url=None)
    gateway = GatewayProcess(config, smpp_port, http_port).start()
    try:
        with Esme(smpp_port) as esme:
            assert esme.bind("esme1", "secret1").status == p.CommandStatus.ESME_ROK
            assert gateway.proc is not None
            gateway.proc.send_signal(signal.SIGTERM)
            unbind = esme.receive(lambda r: isinstance(r, p.Unbind))
            esme.send(p.UnbindResp(), sequence=unbind.sequence)
            assert esme.closed_by_peer()
    finally:
        gateway.stop()
    assert "smpp-gateway stopped" in Path(gateway.log).read_text()
