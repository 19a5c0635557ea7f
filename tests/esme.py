"""A blocking test ESME on a real socket, built on our codec.

For tests that need exact control over the bytes (malformed PDUs, windows,
timeouts); interop with clients we did not write lives in tests/interop.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from gateway.smpp import pdu as p
from gateway.smpp.codec import Framer, decode, encode


class Esme:
    def __init__(self, port: int, *, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.framer = Framer(1 << 20)
        self.sequence = 0
        self.inbox: list[p.Pdu] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Esme:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, pdu: p.Pdu, *, sequence: int | None = None) -> int:
        if sequence is None:
            self.sequence += 1
            sequence = self.sequence
        pdu.sequence = sequence
        self.sock.sendall(encode(pdu))
        return sequence

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read_one(self, deadline: float) -> p.Pdu | None:
        while True:
            frame = self.framer.next_frame()
            if frame is not None:
                return decode(frame)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no PDU arrived in time")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                return None
            self.framer.feed(data)

    def receive(
        self, match: Callable[[p.Pdu], bool] = lambda pdu: True, timeout: float | None = None
    ) -> p.Pdu:
        """The first PDU that matches; deliver_sm is answered ROK automatically."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        for index, pdu in enumerate(self.inbox):
            if match(pdu):
                return self.inbox.pop(index)
        while True:
            pdu = self._read_one(deadline)
            if pdu is None:
                raise ConnectionError("connection closed by the gateway")
            if match(pdu):
                return pdu
            self.inbox.append(pdu)

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self._read_one(deadline) is None:
                    return True
        except TimeoutError:
            return False
        except OSError:
            return True

    def request(self, pdu: p.Pdu, timeout: float | None = None) -> p.Pdu:
        sequence = self.send(pdu)
        return self.receive(lambda r: r.is_response and r.sequence == sequence, timeout)

    def bind(
        self,
        system_id: str,
        password: str,
        kind: type[p.Pdu] = p.BindTransceiver,
        interface_version: int = 0x34,
    ) -> p.Pdu:
        return self.request(
            kind(system_id=system_id, password=password, interface_version=interface_version)  # type: ignore[call-arg]
        )

    def receipts(self, count: int, timeout: float = 20.0, ack: bool = True) -> list[p.DeliverSm]:
        out: list[p.DeliverSm] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            pdu = self.receive(lambda r: isinstance(r, p.DeliverSm), deadline - time.monotonic())
            assert isinstance(pdu, p.DeliverSm)
            if ack:
                self.send(p.DeliverSmResp(), sequence=pdu.sequence)
            out.append(pdu)
        return out


def submit(destination: str = "4799999999", text: bytes = b"Hello", **fields: object) -> p.SubmitSm:
    values: dict[str, object] = {
        "source_addr_ton": 5,
        "source_addr": "LINK",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": destination,
        "registered_delivery": 1,
        "short_message": text,
    }
    values.update(fields)
    return p.SubmitSm(**values)  # type: ignore[arg-type]
