"""A full disk under the store heals by itself (issue 11, item 3), on a real tmpfs.

The store lives on a small tmpfs mounted for the test (root only; skipped with
the reason otherwise; CI runs as root). An ESME submits without pause while a
file fills the tmpfs and, later, is deleted again. What must hold, without a
restart: while full, submit_sm gets ESME_RMSGQFUL (which ESMEs retry), never
ESME_RSYSERR, and LINK's callbacks 503 (LINK retries); /readyz says 503 with the
reason; once the file is gone, submits are accepted again within seconds and
/readyz says 200; every message answered ESME_ROK reaches the fake Common.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.smpp import pdu as p
from tests.esme import Esme, submit
from tests.harness import (
    FakeCommonProcess,
    GatewayProcess,
    account_toml,
    gateway_with_common,
    metric_value,
    post_callback,
)

S = p.CommandStatus
# The reserve given back when the disk fills: small beside the 16 MiB tmpfs.
RESERVE_MB = 2


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "store"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def stack(tmpfs: Path, tmp_path: Path) -> Iterator[tuple[GatewayProcess, FakeCommonProcess]]:
    with gateway_with_common(
        tmp_path,
        accounts=account_toml("shop", "pw", "main"),
        store_path=tmpfs / "gateway.sqlite",
        store_extra=f"reserve_mb = {RESERVE_MB}",
        fake_options={"keep_messages": True, "report_delay": 60},
    ) as pair:
        yield pair


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    # Unbuffered: a buffered file keeps the bytes the full disk refused and tries
    # them again when it is closed, which raised ENOSPC out of the `with`.
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


def test_a_full_disk_refuses_with_rmsgqful_and_heals_when_space_is_freed_under_load(
    tmpfs: Path, stack: tuple[GatewayProcess, FakeCommonProcess]
) -> None:
    gateway, fake = stack
    accepted: list[str] = []
    with Esme(gateway.smpp_port, timeout=10.0) as esme:
        assert esme.bind("shop", "pw").status == S.ESME_ROK

        def one(n: int) -> int:
            response = esme.request(submit(destination=f"4790{n:06d}"))
            if response.status == S.ESME_ROK:
                accepted.append(response.message_id)
            for pdu in [x for x in esme.inbox if isinstance(x, p.DeliverSm)]:
                esme.inbox.remove(pdu)
                esme.send(p.DeliverSmResp(), sequence=pdu.sequence)
            return int(response.status)

        statuses = [one(n) for n in range(50)]
        assert set(statuses) == {S.ESME_ROK}
        n = 50
        filler = _fill(tmpfs)
        # Full, under load: refusals ESMEs retry, a 503 for LINK, readiness says why.
        full: list[int] = []
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not (full and gateway.readiness()[0] == 503):
            full.append(one(n := n + 1))
        assert S.ESME_RMSGQFUL in full, full
        assert S.ESME_RSYSERR not in full, full
        status, reason = gateway.readiness()
        assert status == 503 and "store" in reason, reason
        # A report that changes a message (LINK's own wait a minute here) cannot be kept.
        body = b'{"id": "x1", "refId": "%s", "resultCode": 1001}' % accepted[-1].encode()
        assert post_callback(gateway, body)[0] == 503
        # Freed, still under load: accepted again within seconds, no restart.
        filler.unlink()
        healed_after = None
        started = time.monotonic()
        while time.monotonic() - started < 15.0:
            if one(n := n + 1) == S.ESME_ROK:
                healed_after = time.monotonic() - started
                break
        assert healed_after is not None, "still refusing 15 s after space was freed"
        statuses = [one(n + k) for k in range(1, 51)]
        assert set(statuses) == {S.ESME_ROK}
        deadline = time.monotonic() + 15.0
        while gateway.readiness()[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert gateway.readiness()[0] == 200
    metrics = gateway.metrics()
    assert metric_value(metrics, "smppgw_submits_total", account="shop", outcome="store_full") > 0
    assert metric_value(metrics, "smppgw_submits_total", account="shop", outcome="error") == 0
    # Every message answered ESME_ROK went to LINK.
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        if fake.control()["accepted"] >= len(accepted):
            break
        time.sleep(0.2)
    assert fake.control()["accepted"] >= len(accepted)


def _depth(gateway: GatewayProcess, queue: str) -> float:
    return metric_value(gateway.metrics(), "smppgw_queue_depth", queue=queue)


def _wait(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def test_a_start_on_a_full_disk_refuses_delivers_stored_receipts_and_heals(
    tmpfs: Path, tmp_path: Path
) -> None:
    with gateway_with_common(
        tmp_path,
        accounts=account_toml("shop", "pw", "main"),
        store_path=tmpfs / "gateway.sqlite",
        store_extra=f"reserve_mb = {RESERVE_MB}",
        fake_options={"report_delay": 0.05},
    ) as (gateway, _fake):
        # Receipts for nobody: a transmitter bind cannot take them, so they wait stored.
        with Esme(gateway.smpp_port) as esme:
            assert esme.bind("shop", "pw", p.BindTransmitter).status == S.ESME_ROK
            ids = [esme.request(submit(destination=f"4791{n:06d}")).message_id for n in range(20)]
        _wait(lambda: _depth(gateway, "receipts") == 20, "20 receipts to be stored")
        assert (tmpfs / "gateway.sqlite.reserve").stat().st_size == RESERVE_MB * 2**20

        gateway.stop()
        filler = _fill(tmpfs)
        gateway.start()  # exits if it cannot open the store: this must not
        status, reason = gateway.readiness()
        assert status == 503 and "disk is full" in reason, reason
        with Esme(gateway.smpp_port) as esme:
            assert esme.bind("shop", "pw").status == S.ESME_ROK
            receipts = esme.receipts(20)
            receipted = [r.tlv(p.Tag.RECEIPTED_MESSAGE_ID).rstrip(b"\0") for r in receipts]
            assert sorted(r.decode() for r in receipted) == sorted(ids)
            refused = esme.request(submit(destination="4792000000"))
            assert refused.status == S.ESME_RMSGQFUL
            body = b'{"id": "x1", "refId": "%s", "resultCode": 1001}' % ids[0].encode()
            assert post_callback(gateway, body)[0] == 503
            filler.unlink()
            started = time.monotonic()
            while esme.request(submit(destination="4792000001")).status != S.ESME_ROK:
                assert time.monotonic() - started < 15.0, "still refusing after space was freed"
                time.sleep(0.2)
            esme.receipts(1)  # the new message's
        _wait(lambda: gateway.readiness()[0] == 200, "/readyz to say 200 again")

        # The acknowledgements were recorded while the disk was full: none comes again.
        gateway.stop()
        gateway.start()
        with Esme(gateway.smpp_port) as esme:
            assert esme.bind("shop", "pw").status == S.ESME_ROK
            with pytest.raises(TimeoutError):
                esme.receive(lambda r: isinstance(r, p.DeliverSm), 2.0)
