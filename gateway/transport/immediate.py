"""Writing small answers at once instead of at the reactor's next turn.

Twisted's `transport.write` only buffers: the bytes leave in a later pass of the
reactor, after it asked epoll whether the socket is writable (two epoll_ctl
calls per write, to add and drop that interest). An answer the peer waits for
(a callback's 200, a submit_sm_resp) then also waits for every other
connection's work in that pass. When nothing is buffered ahead of it, `send`
tries the socket right away; what the socket does not take goes through the
transport's buffer as before, so order and flow control are unchanged.

Only plain TCP connections are written to directly; TLS and anything else go
through `transport.write`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp


def send(transport: Any, data: bytes) -> None:
    if (
        isinstance(transport, tcp.Connection)
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport._tempDataBuffer
        and transport.offset == len(transport.dataBuffer)
    ):
        sent = transport.writeSomeData(data)
        if isinstance(sent, int) and sent >= 0:
            if sent < len(data):
                transport.write(data[sent:])
            return
    transport.write(data)
