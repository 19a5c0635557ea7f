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

from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

from gateway.config import ConnectorSettings
from gateway.connectors.common.client import CommonClient, CommonError, SendResult
from gateway.connectors.common.mapping import message_fields, priority, relative_validity_ms
from gateway.connectors.common.results import (
    esme_status,
    refusal_is_temporary,
    rejection_outcome,
)
from gateway.connectors.pace import Pace
from gateway.logs import Repeats
from gateway.metrics import Metrics
from gateway.records import Message, OutcomeKind, SubmitOutcome

log = Logger()

TOO_MANY_REQUESTS = 429
THROTTLING = 3  # Common's result code "Maximum throttling exceeded"


def _refused(
    message: Message,
    *,
    temporary: bool,
    http_status: int | None,
    code: int | None,
    description: str,
) -> SubmitOutcome:
    """A message Common did not take: worth a retry, or rejected with its receipt."""
    status = esme_status(http_status=http_status, common_code=code, temporary=temporary)
    text = description if code is None else f"{code} {description}"
    if temporary:
        return SubmitOutcome(
            message,
            OutcomeKind.TEMPORARY,
            esme_status=status,
            description=text,
            throttled=http_status == TOO_MANY_REQUESTS or code == THROTTLING,
        )
    rejection, misconfigured = rejection_outcome(code)
    return SubmitOutcome(
        message,
        OutcomeKind.REJECTED,
        rejection=rejection,
        esme_status=status,
        misconfigured=misconfigured,
        description=text,
    )


class CommonConnector:
    def __init__(
        self,
        reactor: Any,
        settings: ConnectorSettings,
        metrics: Metrics,
        *,
        client: CommonClient | None = None,
    ) -> None:
        self.name = settings.name
        self._reactor = reactor
        self._settings = settings
        self._metrics = metrics
        assert settings.common is not None, "a common connector has its Common settings"
        self._common = settings.common
        self._client = client or CommonClient(reactor, settings.common)
        self._inflight = 0
        self._pace = Pace()
        self._throttle_repeats = Repeats()
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
        if self._pace.wait(self._reactor.seconds()) > 0:
            return 0
        free = self._common.max_connections - self._inflight
        return max(free, 0) * self._settings.max_batch

    @property
    def paused_for(self) -> float:
        return self._pace.wait(self._reactor.seconds())

    @property
    def link_up(self) -> bool | None:
        return None  # HTTP: no standing link, the breaker judges by answers

    def start(self) -> None:
        pass

    def stop(self) -> Deferred[None]:
        return self._client.close()

    def submit(self, messages: list[Message]) -> Deferred[list[SubmitOutcome]]:
        now = self._reactor.seconds()
        groups: dict[tuple[str | None, int], list[Message]] = {}
        for message in messages:
            key = (priority(message), relative_validity_ms(message, now))
            groups.setdefault(key, []).append(message)
        requests: list[Deferred[list[SubmitOutcome]]] = []
        for (level, validity), group in groups.items():
            envelope = dict(self._envelope, relativeValidityTime=validity)
            if level:
                envelope["priority"] = level
            for start in range(0, len(group), self._settings.max_batch):
                chunk = group[start : start + self._settings.max_batch]
                requests.append(self._request(envelope, chunk, now))
        if len(requests) == 1:
            return requests[0]
        return gatherResults(requests).addCallback(
            lambda lists: [outcome for outcomes in lists for outcome in outcomes]
        )

    def _request(
        self, envelope: dict[str, Any], batch: list[Message], now: float
    ) -> Deferred[list[SubmitOutcome]]:
        self._inflight += 1
        started = self._reactor.seconds()
        self._pace.sent(started)
        endpoint = "send" if len(batch) == 1 else "sendbatch"
        sent: Deferred[list[SendResult]]
        if len(batch) == 1:
            body = dict(envelope)
            body.update(message_fields(batch[0], now))
            body["refId"] = batch[0].id
            sent = self._client.send(body).addCallback(lambda result: [result])
        else:
            items = []
            for message in batch:
                item = message_fields(message, now)
                item["refId"] = message.id
                items.append(item)
            sent = self._client.send_batch(dict(envelope, sendRequestMessages=items))

        def done(results: list[SendResult]) -> list[SubmitOutcome]:
            self._observe(endpoint, "ok", started)
            outcomes = _match(batch, results)
            wrong = next((o for o in outcomes if o.misconfigured), None)
            if wrong is not None:
                self._misconfigured(wrong.description)
            if any(o.throttled for o in outcomes):
                self._slow_down(None)
            else:
                limit = self._pace.rate
                self._pace.answered(self._reactor.seconds())
                if self._pace.rate != limit:
                    m = self._metrics
                    m.child(m.upstream_rate_limit, self.name).set(self._pace.rate or 0.0)
            return outcomes

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
            # A refusal by result code (not an error code) may be worth a retry: 3 is
            # throttling, 105 LINK's own trouble (results.SEND_REFUSALS).
            temporary = error.temporary or (
                error.code is not None
                and error.code < 100000
                and bool(refusal_is_temporary(error.code))
            )
            if error.http_status == TOO_MANY_REQUESTS:
                self._observe(endpoint, "throttled", started)
                self._slow_down(error.retry_after)
            else:
                self._observe(endpoint, "temporary" if temporary else "rejected", started)
            if temporary and error.http_status != TOO_MANY_REQUESTS:
                log.warn(
                    "{connector}: {endpoint} failed, will retry: {error}",
                    connector=self.name,
                    endpoint=endpoint,
                    error=error.description,
                )
            outcomes = [
                _refused(
                    m,
                    temporary=temporary,
                    http_status=error.http_status,
                    code=error.code,
                    description=error.description,
                )
                for m in batch
            ]
            if outcomes and outcomes[0].misconfigured:
                self._misconfigured(outcomes[0].description)
            return outcomes

        def release(result: list[SubmitOutcome]) -> list[SubmitOutcome]:
            self._inflight -= 1
            return result

        return sent.addCallbacks(done, failed).addBoth(release)

    def _slow_down(self, retry_after: float | None) -> None:
        """LINK said "too fast": send slower for a while (gateway.connectors.pace)."""
        now = self._reactor.seconds()
        self._pace.throttled(now, retry_after)
        m = self._metrics
        m.child(m.upstream_rate_limit, self.name).set(self._pace.rate or 0.0)
        # Under sustained throttling every request says it: a line a minute is enough.
        left_out = self._throttle_repeats.note("throttled", now)
        if left_out is not None:
            log.info(
                "{connector}: LINK asks us to slow down; at most {rate:.1f} requests a second,"
                " none for {pause:.1f} s ({left_out} more such answers since the last line)",
                connector=self.name,
                rate=self._pace.rate or 0.0,
                pause=self._pace.wait(now),
                left_out=left_out,
            )

    def _misconfigured(self, description: str) -> None:
        self._metrics.child(self._metrics.misconfigured, self.name).inc()
        log.critical(
            "{connector}: LINK rejects our account settings ({error});"
            " check username, password, platform_id and platform_partner_id",
            connector=self.name,
            error=description,
        )

    def _observe(self, endpoint: str, outcome: str, started: float) -> None:
        m = self._metrics
        m.child(m.upstream_requests, self.name, endpoint, outcome).inc()
        m.child(m.upstream_latency, self.name, endpoint).observe(self._reactor.seconds() - started)


def _match(batch: list[Message], results: list[SendResult]) -> list[SubmitOutcome]:
    """Pair results with messages by refId, else by position (the seed's arrays keep order).

    A result with a messageId is a message LINK took. One without is taken only
    when its code says where a taken message is (1000-1013) or there is no code;
    any other code is a refusal, temporary or final by results.SEND_REFUSALS.
    """
    by_ref = {r.ref_id: r for r in results if r.ref_id}
    outcomes = []
    for index, message in enumerate(batch):
        result = by_ref.get(message.id)
        if result is None and len(results) == len(batch) and not by_ref:
            result = results[index]
        if result is None:
            # 200/204 without a result for it: accepted; refId still correlates reports.
            outcomes.append(SubmitOutcome(message, OutcomeKind.ACCEPTED))
            continue
        code = result.result_code
        temporary = None if result.message_id else refusal_is_temporary(code)
        if temporary is None:
            outcomes.append(
                SubmitOutcome(message, OutcomeKind.ACCEPTED, upstream_id=result.message_id)
            )
        else:
            outcomes.append(
                _refused(
                    message,
                    temporary=temporary,
                    http_status=None,
                    code=code,
                    description=result.description,
                )
            )
    return outcomes
