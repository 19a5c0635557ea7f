"""Nothing accepted is lost across a restart, and nothing is sent twice.

With LINK (the fake Common) down, 1,000 messages are accepted; the daemon is
stopped with SIGTERM or killed with SIGKILL and started again on the same
SQLite file; LINK comes back: every message reaches LINK once (unique refIds)
and every receipt reaches the ESME once.

Under load: an ESME keeps a window of submit_sm outstanding and LINK answers
slowly, so at SIGTERM there are requests of both kinds in flight. The drain
answers what it read, lets the requests to LINK finish, and every message the
ESME saw acknowledged is in the store and reaches LINK exactly once.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.smpp import pdu as p
from gateway.smpp.codec import encode
from gateway.smpp.receipts import parse_receipt_text
from tests.esme import Esme, submit
from tests.harness import (
    FakeCommonProcess,
    GatewayProcess,
    account_toml,
    free_port,
    gateway_config,
    wait_for_metric,
)

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


class _LoadingEsme:
    """A transmitter that keeps `window` submit_sm outstanding until the gateway unbinds it.

    Two threads on one socket: the sender waits for room in the window, the reader
    records each answer. On the gateway's unbind the reader answers it (under the
    sender's lock, so `sent_before_unbind_resp` is exact) and reads on until the close.
    """

    def __init__(self, port: int, window: int) -> None:
        self.esme = Esme(port, timeout=30)
        self.room = threading.Semaphore(window)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.sent: list[int] = []
        self.sent_before_unbind_resp: list[int] = []
        self.answers: dict[int, tuple[int, str]] = {}
        self.unbound = False
        self.errors: list[BaseException] = []

    def start(self) -> None:
        assert self.esme.bind("esme1", "secret1", p.BindTransmitter).status == 0
        self.threads = [
            threading.Thread(target=self._guard, args=(self._send,), daemon=True),
            threading.Thread(target=self._guard, args=(self._read,), daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float) -> None:
        for thread in self.threads:
            thread.join(timeout)
        self.stopped.set()
        self.esme.close()
        assert not self.errors, self.errors

    def _guard(self, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as e:  # reported by join, not lost in a thread
            self.errors.append(e)
            self.stopped.set()

    def _send(self) -> None:
        count = 0
        while not self.stopped.is_set():
            if not self.room.acquire(timeout=0.2):
                continue
            with self.lock:
                if self.stopped.is_set():
                    return
                count += 1
                pdu = submit(f"4791{count:06d}", f"load {count}".encode())
                self.sent.append(self.esme.send(pdu))

    def _read(self) -> None:
        esme = self.esme
        while True:
            try:
                pdu = esme._read_one(time.monotonic() + 30)
            except ConnectionResetError:
                return
            if pdu is None:
                return
            if isinstance(pdu, p.SubmitSmResp):
                self.answers[pdu.sequence] = (pdu.status, pdu.message_id)
                self.room.release()
            elif isinstance(pdu, p.Unbind):
                with self.lock:
                    self.stopped.set()
                    self.unbound = True
                    self.sent_before_unbind_resp = list(self.sent)
                    esme.send(p.UnbindResp(), sequence=pdu.sequence)
            elif isinstance(pdu, p.EnquireLink):
                esme.send(p.EnquireLinkResp(), sequence=pdu.sequence)


def _acked(load: _LoadingEsme) -> int:
    return sum(1 for status, _ in list(load.answers.values()) if status == p.CommandStatus.ESME_ROK)


def _recovered_messages(log: str) -> int:
    """How many queued messages the last start recovered (none: no such line)."""
    found = re.findall(r"recovered (\d+) queued messages", log)
    return int(found[-1]) if found else 0


def _stored_ids(path: Path) -> set[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return {row[0] for row in db.execute("SELECT id FROM messages")}


@pytest.mark.slow
@pytest.mark.parametrize("accept", ["stored", "upstream"])
def test_sigterm_under_load_answers_what_it_read_and_loses_no_acked_message(
    tmp_path: Path, accept: str
) -> None:
    """accept = "upstream" answers each submit_sm only after LINK did, so at SIGTERM
    a window of answers waits for requests to LINK in flight."""
    smpp_port, http_port = free_port(), free_port()
    callback = f"http://127.0.0.1:{http_port}/callbacks/dlr"
    with FakeCommonProcess(callback) as fake:
        # Slow answers from LINK: at SIGTERM, requests to it are in flight.
        fake.control({"response_delay": 0.3, "keep_messages": True})
        config = gateway_config(
            tmp_path,
            smpp_port=smpp_port,
            http_port=http_port,
            common_url=fake.url,
            accounts=account_toml("esme1", "secret1", "main", accept=accept),
        )
        first = GatewayProcess(config, smpp_port, http_port).start()
        load = _LoadingEsme(smpp_port, window=10)
        try:
            load.start()
            # Under load: answers coming back, and LINK (0.3 s to answer) has taken
            # requests, so at SIGTERM requests of both kinds are in flight.
            deadline = time.monotonic() + 15
            while not (_acked(load) >= 20 and fake.control()["accepted"] > 0):
                assert not load.errors, load.errors
                assert time.monotonic() < deadline, f"no load: {_acked(load)} acked"
                time.sleep(0.05)
            assert first.proc is not None
            first.proc.send_signal(signal.SIGTERM)
            load.join(timeout=30)
        finally:
            code = first.stop()
        assert code in (0, -signal.SIGTERM)
        log = Path(first.log).read_text()
        assert "smpp-gateway stopped" in log
        assert "shutdown_timeout" not in log  # the drain finished in time
        sent_to_link_before_stop = fake.control()["accepted"]

        # The gateway unbound the ESME after answering every request it had read:
        # each submit_sm sent before the unbind_resp has its answer, none is left hanging.
        assert load.unbound
        unanswered = [seq for seq in load.sent_before_unbind_resp if seq not in load.answers]
        assert unanswered == []
        statuses = {status for status, _ in load.answers.values()}
        # What the gateway read after the drain began is refused, never silently dropped.
        assert statuses <= {p.CommandStatus.ESME_ROK, p.CommandStatus.ESME_RINVBNDSTS}
        acked = {mid for status, mid in load.answers.values() if status == p.CommandStatus.ESME_ROK}
        assert len(acked) >= 20
        assert sent_to_link_before_stop > 0
        assert acked <= _stored_ids(tmp_path / "gateway.sqlite")

        fake.control({"response_delay": 0})
        with GatewayProcess(config, smpp_port, http_port) as second:
            # What it sends again is what it recovered from the store: once LINK has
            # answered for every one of them, anything sent twice has arrived.
            recovered = _recovered_messages(Path(second.log).read_text())
            wait_for_metric(
                second,
                "smppgw_upstream_messages_total",
                recovered,
                timeout=30,
                connector="main",
                outcome="accepted",
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ref_ids = [m.get("refId") for m in fake.get("/_messages")]
                if acked <= set(ref_ids):
                    break
                time.sleep(0.2)
            stats = fake.control()

    assert acked <= set(ref_ids)
    assert stats["duplicate_ref_ids"] == 0
    counts = Counter(ref_ids)
    assert all(counts[mid] == 1 for mid in acked)
