"""A well-behaved ESME in a process of its own: submit_sm at a steady rate, time
every submit_sm_resp, take every receipt; print the figures as one JSON line.

Run by tests/stress: its own process, so that what it measures is the gateway's
answer time, not this client fighting the attackers for the GIL.

    python -m tests.stress.side_esme --port P --rate 20 --seconds 15
"""

from __future__ import annotations

import argparse
import json
import socket
import time

from gateway.smpp import pdu as p
from tests.esme import Esme, submit


def run(port: int, system_id: str, password: str, rate: float, seconds: float) -> dict[str, object]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    ids: set[str] = set()
    receipts: set[str] = set()
    with Esme(port, timeout=10.0) as esme:
        # As SMPP clients do: a deliver_sm_resp and the next submit_sm are two small
        # writes, which Nagle's algorithm and delayed ACKs would hold back ~40-200 ms.
        esme.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bind = esme.bind(system_id, password)
        if bind.status != p.CommandStatus.ESME_ROK:
            return {"error": f"bind refused: {bind.status:#x}"}
        interval = 1.0 / rate
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            due = start + n * interval
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            sent = time.monotonic()
            response = esme.request(submit(destination=f"47900{n % 100000:05d}"))
            latencies.append(time.monotonic() - sent)
            statuses[response.status] = statuses.get(response.status, 0) + 1
            assert isinstance(response, p.SubmitSmResp)
            if response.status == p.CommandStatus.ESME_ROK:
                ids.add(response.message_id)
            n += 1
            # Receipts that came meanwhile are acknowledged as they are read.
            for pdu in [x for x in esme.inbox if isinstance(x, p.DeliverSm)]:
                esme.inbox.remove(pdu)
                esme.send(p.DeliverSmResp(), sequence=pdu.sequence)
                receipts.add(_receipted(pdu))
        deadline = time.monotonic() + 30.0
        while receipts < ids and time.monotonic() < deadline:
            try:
                (pdu,) = esme.receipts(1, timeout=deadline - time.monotonic())
            except TimeoutError:
                break
            receipts.add(_receipted(pdu))
        for pdu in [x for x in esme.inbox if isinstance(x, p.DeliverSm)]:
            receipts.add(_receipted(pdu))
    slowest = sorted(range(len(latencies)), key=lambda i: -latencies[i])[:8]
    # (index, ms): when in the run the slow ones were.
    slow = [(i, round(1000 * latencies[i], 1)) for i in sorted(slowest)]
    latencies.sort()
    return {
        "slowest": slow,
        "submitted": n,
        "statuses": {f"{k:#x}": v for k, v in statuses.items()},
        "accepted": len(ids),
        "receipts_matched": len(ids & receipts),
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max_ms": 1000 * latencies[-1],
    }


def _receipted(pdu: p.DeliverSm) -> str:
    value = pdu.tlv(p.Tag.RECEIPTED_MESSAGE_ID)
    return value.rstrip(b"\0").decode() if value is not None else ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--system-id", default="side")
    parser.add_argument("--password", default="pw")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    result = run(args.port, args.system_id, args.password, args.rate, args.seconds)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
