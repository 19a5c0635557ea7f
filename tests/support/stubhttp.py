"""CommonClient's HTTP seam in memory: requests reach a twisted.web resource through
treq's `StubTreq`, answers come back as `gateway.http.answers.Answer`.

The production seam is `gateway.http.client.HttpClient`; this one lets the whole
gateway run on a memory reactor with no socket, as it did when CommonClient used
treq itself. Failures other than a cancel become `HttpTransportError`, as the real
client's do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import treq
from treq.testing import StubTreq
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from gateway.http.answers import Answer
from gateway.http.client import HttpTransportError


class StubOrigin:
    """`request(method, target, headers, body)` against `stub` at `base_url`'s origin."""

    def __init__(self, stub: StubTreq, base_url: str) -> None:
        self.stub = stub
        self._base = base_url.rstrip("/")

    def request(
        self,
        method: bytes,
        target: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes | None,
    ) -> Deferred[Answer]:
        fields: dict[bytes, list[bytes]] = {}
        for name, value in headers:
            fields.setdefault(name, []).append(value)
        d: Deferred[Any] = self.stub.request(
            method.decode(),
            self._base + target.decode(),
            data=body,
            headers=fields,
            allow_redirects=False,
        )
        d.addCallback(self._read)
        d.addErrback(_transport_error)
        return d

    def flush(self) -> None:
        self.stub.flush()

    def _read(self, response: Any) -> Deferred[Answer]:
        headers = {
            name.lower(): b", ".join(values) for name, values in response.headers.getAllRawHeaders()
        }
        content: Deferred[bytes] = treq.content(response)
        return content.addCallback(lambda body: Answer(response.code, headers, body, True))


def _transport_error(failure: Failure) -> Failure:
    if failure.check(CancelledError, HttpTransportError):
        return failure
    return Failure(HttpTransportError(f"{type(failure.value).__name__}: {failure.value}"))
