"""The Common REST route: stored messages -> /sms/send or /sms/sendbatch.

Messages that share an envelope (priority and remaining validity rounded to the
minute; platform and gate come from the connector) go out together through
/sms/sendbatch, at most `max_batch` per request; a lone message goes through
/sms/send (DESIGN 3.7). At most `max_connections` requests are in flight, so
under load the dispatcher's queue grows and batches fill up by themselves.

Every message carries our id as `refId`, which Common mirrors in each delivery
report (DESIGN 3.3).
"""

from __future__ import annotations

import math
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

from gateway.common.client import CommonClient, CommonError, SendResult
from gateway.config import ConnectorSettings
from gateway.connectors import ACCEPTED, REJECTED, TEMPORARY, SubmitOutcome
from gateway.mapping import outcome_for, rejection_outcome
from gateway.metrics import Metrics
from gateway.store.base import Message

log = Logger()

MIN_VALIDITY_S = 15 * 60
MAX_VALIDITY_S = 48 * 3600


def relative_validity_ms(message: Message, now: float) -> int:
    """What is left of the message's validity, rounded up to a minute, clamped per Common."""
    remaining = max(message.expires_at - now, 0.0)
    minutes = math.ceil(remaining / 60.0)
    return int(min(max(minutes * 60, MIN_VALIDITY_S), MAX_VALIDITY_S) * 1000)


class CommonConnector:
    def __init__(self, reactor: Any, settings: ConnectorSettings, metrics: Metrics) -> None:
        self.name = settings.name
        self._reactor = reactor
        self._settings = settings
        self._metrics = metrics
        assert settings.common is not None, "a common connector has its Common settings"
        self._common = settings.common
        self._client = CommonClient(reactor, settings.common)
        self._inflight = 0
        self._envelope: dict[str, Any] = {
            "platformId": settings.platform_id,
            "platformPartnerId": settings.platform_partner_id,
            # The gateway always asks for reports: it needs them for its own state.
            "useDeliveryReport": True,
        }
        if settings.gate_id:
            self._envelope["deliveryReportGates"] = [settings.gate_id]

    @property
    def max_batch(self) -> int:
        return self._settings.max_batch

    @property
    def capacity(self) -> int:
        free = self._common.max_connections - self._inflight
        return max(free, 0) * self._settings.max_batch

    def start(self) -> None:
        pass

    def stop(self) -> Deferred[None]:
        return self._client.close()

    def submit(self, messages: list[Message]) -> Deferred[list[SubmitOutcome]]:
        now = self._reactor.seconds()
        groups: dict[tuple[str | None, int], list[Message]] = {}
        for message in messages:
            key = (message.priority, relative_validity_ms(message, now))
            groups.setdefault(key, []).append(message)
        requests: list[Deferred[list[SubmitOutcome]]] = []
        for (priority, validity), group in groups.items():
            envelope = dict(self._envelope, relativeValidityTime=validity)
            if priority:
                envelope["priority"] = priority
            for start in range(0, len(group), self._settings.max_batch):
                requests.append(
                    self._request(envelope, group[start : start + self._settings.max_batch])
                )
        if len(requests) == 1:
            return requests[0]
        return gatherResults(requests).addCallback(
            lambda lists: [outcome for outcomes in lists for outcome in outcomes]
        )

    def _request(
        self, envelope: dict[str, Any], batch: list[Message]
    ) -> Deferred[list[SubmitOutcome]]:
        self._inflight += 1
        started = self._reactor.seconds()
        endpoint = "send" if len(batch) == 1 else "sendbatch"
        sent: Deferred[list[SendResult]]
        if len(batch) == 1:
            body = dict(envelope)
            body.update(batch[0].fields)
            body["refId"] = batch[0].id
            sent = self._client.send(body).addCallback(lambda result: [result])
        else:
            items = []
            for message in batch:
                item = dict(message.fields)
                item["refId"] = message.id
                items.append(item)
            sent = self._client.send_batch(dict(envelope, sendRequestMessages=items))

        def done(results: list[SendResult]) -> list[SubmitOutcome]:
            self._observe(endpoint, "ok", started)
            return _match(batch, results)

        def failed(failure: Any) -> list[SubmitOutcome]:
            error = failure.value
            if not isinstance(error, CommonError):
                log.failure(
                    "{connector}: unexpected error from the Common client",
                    failure,
                    connector=self.name,
                )
                error = CommonError(
                    temporary=True, http_status=None, code=None, description=str(error)
                )
            self._observe(endpoint, "temporary" if error.temporary else "rejected", started)
            if error.temporary:
                log.warn(
                    "{connector}: {endpoint} failed, will retry: {error}",
                    connector=self.name,
                    endpoint=endpoint,
                    error=error.description,
                )
                return [
                    SubmitOutcome(
                        m,
                        TEMPORARY,
                        http_status=error.http_status,
                        code=error.code,
                        description=error.description,
                    )
                    for m in batch
                ]
            outcome, misconfigured = rejection_outcome(error.code)
            if misconfigured:
                self._metrics.child(self._metrics.misconfigured, self.name).inc()
                log.critical(
                    "{connector}: LINK rejects our account settings (code {code}: {error});"
                    " check username, password, platform_id and platform_partner_id",
                    connector=self.name,
                    code=error.code,
                    error=error.description,
                )
            return [
                SubmitOutcome(
                    m,
                    REJECTED,
                    rejection=outcome,
                    misconfigured=misconfigured,
                    http_status=error.http_status,
                    code=error.code,
                    description=error.description,
                )
                for m in batch
            ]

        def release(result: list[SubmitOutcome]) -> list[SubmitOutcome]:
            self._inflight -= 1
            return result

        return sent.addCallbacks(done, failed).addBoth(release)

    def _observe(self, endpoint: str, outcome: str, started: float) -> None:
        m = self._metrics
        m.child(m.upstream_requests, self.name, endpoint, outcome).inc()
        m.child(m.upstream_latency, self.name, endpoint).observe(self._reactor.seconds() - started)


def _match(batch: list[Message], results: list[SendResult]) -> list[SubmitOutcome]:
    """Pair results with messages by refId, else by position (the seed's arrays keep order)."""
    by_ref = {r.ref_id: r for r in results if r.ref_id}
    outcomes = []
    for index, message in enumerate(batch):
        result = by_ref.get(message.id)
        if result is None and len(results) == len(batch) and not by_ref:
            result = results[index]
        if result is None:
            # 200/204 without a result for it: accepted; refId still correlates reports.
            outcomes.append(SubmitOutcome(message, ACCEPTED))
            continue
        code = result.result_code
        if result.message_id or code is None or code < 2000:
            outcomes.append(
                SubmitOutcome(message, ACCEPTED, upstream_id=result.message_id, code=code)
            )
            continue
        # Per-message codes are delivery-report codes (2000-4007); request-level ones are
        # Common error codes (1xxxxx).
        if code >= 100000:
            outcome, misconfigured = rejection_outcome(code)
        else:
            outcome, misconfigured = outcome_for(code), False
        outcomes.append(
            SubmitOutcome(
                message,
                REJECTED,
                rejection=outcome,
                misconfigured=misconfigured,
                code=code,
                description=result.description,
            )
        )
    return outcomes
