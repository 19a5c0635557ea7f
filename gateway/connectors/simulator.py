"""The built-in simulator route, for development and demos only.

It answers like Common (every message accepted with an id of its own) and,
after `delay` seconds, POSTs delivery reports in Common's JSON shape to the
gateway's own callback URL with the configured callback credentials, so the
receipt an ESME gets has travelled the real path: HTTP callback, store,
receipt queue, deliver_sm. Reports due in the same moment go out as one JSON
array, which the callback endpoint accepts like LINK's single objects.

Every message gets the configured `result_code` (1001, delivered, by default).
"""

from __future__ import annotations

import base64
import datetime
import itertools
import json
from typing import Any

import treq
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory

from gateway.config import ConnectorSettings, HttpSettings
from gateway.metrics import Metrics
from gateway.records import Message, OutcomeKind, SubmitOutcome

log = Logger()


class _QuietClientFactory(_HTTP11ClientFactory):
    # Twisted logs "Starting factory" for every new pooled connection at info level.
    noisy = False


def quiet_pool(reactor: Any) -> HTTPConnectionPool:
    """A persistent connection pool that does not log each new connection."""
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool._factory = _QuietClientFactory
    return pool


def _rfc3339(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimulatorConnector:
    max_batch = 1000
    capacity = 1_000_000
    link_up = None
    paused_for = 0.0

    def __init__(
        self, reactor: Any, settings: ConnectorSettings, http: HttpSettings, metrics: Metrics
    ) -> None:
        self.name = settings.name
        self._reactor = reactor
        self._settings = settings
        self._metrics = metrics
        self._ids = itertools.count(1)
        self._due: list[dict[str, Any]] = []
        self._flush_call: Any = None
        self._pool = quiet_pool(reactor)
        self._pool.maxPersistentPerHost = 4
        self._headers: dict[bytes | str, list[bytes | str]] = {
            b"Content-Type": [b"application/json"]
        }
        if http.callback_username and http.callback_password:
            token = base64.b64encode(f"{http.callback_username}:{http.callback_password}".encode())
            self._headers[b"Authorization"] = [b"Basic " + token]
        self._posting = 0
        # Reports per callback: a report is well under 300 bytes of JSON, and a
        # body over the HTTP site's limit would be refused (413) for ever.
        self._chunk = max(1, min(1000, http.max_body // 300))

    def start(self) -> None:
        pass

    def stop(self) -> Deferred[None]:
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        result: Deferred[None] = self._pool.closeCachedConnections()
        return result

    def submit(self, messages: list[Message]) -> Deferred[list[SubmitOutcome]]:
        now = self._reactor.seconds()
        outcomes = []
        for message in messages:
            upstream_id = f"SIM{next(self._ids):010d}"
            outcomes.append(SubmitOutcome(message, OutcomeKind.ACCEPTED, upstream_id=upstream_id))
            self._due.append(
                {
                    "id": upstream_id,
                    "refId": message.id,
                    "resultCode": self._settings.result_code,
                    "operator": "simulator",
                    "sentTimestamp": _rfc3339(now),
                    "timestamp": _rfc3339(now + self._settings.delay),
                    "segments": message.parts,
                }
            )
        if self._flush_call is None or not self._flush_call.active():
            self._flush_call = self._reactor.callLater(self._settings.delay, self._post)
        self._metrics.child(self._metrics.upstream_requests, self.name, "send", "ok").inc()
        return succeed(outcomes)

    def _post(self) -> None:
        reports, self._due = self._due[: self._chunk], self._due[self._chunk :]
        if self._due:
            self._flush_call = self._reactor.callLater(0, self._post)
        if not reports:
            return
        body = json.dumps(reports).encode()
        d = treq.post(
            self._settings.callback_url,
            data=body,
            headers=self._headers,
            pool=self._pool,
            timeout=30,
        )

        def answered(response: Any) -> Any:
            if response.code != 200:
                # Like LINK: a report that was not taken is sent again later.
                log.warn("simulator: callback answered {code}, retrying", code=response.code)
                self._retry(reports)
            return treq.content(response)

        def failed(failure: Any) -> None:
            log.warn("simulator: callback failed ({error}), retrying", error=failure.value)
            self._retry(reports)

        d.addCallbacks(answered, failed)

    def _retry(self, reports: list[dict[str, Any]]) -> None:
        self._due.extend(reports)
        if self._flush_call is None or not self._flush_call.active():
            self._flush_call = self._reactor.callLater(1.0, self._post)
