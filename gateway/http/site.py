"""The HTTP endpoints: LINK's callbacks, /metrics, /healthz and /readyz.

Responsible for: routing requests from the HTTP server
(:mod:`gateway.http.server`) on the `[http] listen` endpoint to their
handlers. The callback path comes from the config (default `/callbacks/dlr`);
it is the URL the Gate is told to call (`http.public_url` + path).

What always holds: an unknown path gets 404, a known path with a method it
does not take gets 405 with `Allow`; the callback path also takes any path
below it (`/callbacks/dlr/...`), as the twisted.web resource it replaced did.
With `callback_sources` set, a callback from any other client address gets 403
(counted as `forbidden`) before its credentials or body are looked at; with
`metrics_sources` set, so do `/metrics` and the probes. Unknown paths stay 404
for everyone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from gateway.config import Config
from gateway.connectors.base import Inbound
from gateway.connectors.common.callbacks import CallbackEndpoint
from gateway.connectors.common.mapping import CommonReports
from gateway.connectors.common.mo import incoming_mo_from_object
from gateway.connectors.common.payloads import DeliveryReport, parse_callback_objects
from gateway.http.parser import HttpRequest, Response
from gateway.http.server import Admit, HttpServerFactory
from gateway.http.sources import SourcePolicy, source_policies
from gateway.logs import Repeats
from gateway.metrics import Metrics
from gateway.records import IncomingMo

log = Logger()

Handler = Callable[[HttpRequest], "Response | Deferred[Response]"]

_NOT_FOUND = Response(404, b"not found\n")
_FORBIDDEN = Response(403, b"forbidden\n")
# Seconds between two log lines about refused clients: a scan must not flood the log.
_REFUSAL_LOG_INTERVAL = 60.0
_CALLBACK_OUTCOMES = ("ok", "bad_request", "unauthorized", "too_large", "error", "forbidden")
_READ_ONLY = frozenset((b"GET", b"HEAD"))
_CALLBACK_METHODS = frozenset((b"GET", b"POST", b"PUT"))


class Router:
    """Path -> (methods, handler, guard); exact paths first, then the callback prefix.

    `admit` (for the HTTP server's `admit`) runs the route's guard, if it has one.
    """

    def __init__(self) -> None:
        self._routes: dict[bytes, tuple[frozenset[bytes], Handler, Response, Admit | None]] = {}
        self._prefixes: list[tuple[bytes, bytes]] = []

    def add(
        self,
        path: bytes,
        methods: frozenset[bytes],
        handler: Handler,
        *,
        subtree: bool = False,
        guard: Admit | None = None,
    ) -> None:
        allow = b", ".join(sorted(methods))
        not_allowed = Response(405, b"method not allowed\n", headers=((b"Allow", allow),))
        self._routes[path] = (methods, handler, not_allowed, guard)
        if subtree:
            self._prefixes.append((path.rstrip(b"/") + b"/", path))

    def _route(
        self, target: bytes
    ) -> tuple[frozenset[bytes], Handler, Response, Admit | None] | None:
        route = self._routes.get(target)
        if route is None:
            for prefix, path in self._prefixes:
                if target.startswith(prefix):
                    return self._routes[path]
        return route

    def admit(self, request: HttpRequest, peer: str) -> Response | None:
        route = self._route(request.path)
        if route is None or route[3] is None:
            return None
        return route[3](request, peer)

    def screen(self, head: HttpRequest, peer: str) -> Response | None:
        """For a head waiting for 100 (Continue): the answer it gets without its
        body being read (unknown path, method, address or credentials), or None."""
        route = self._route(head.path)
        if route is None:
            return _NOT_FOUND
        methods, handler, not_allowed, guard = route
        if head.method not in methods:
            return not_allowed
        refusal = guard(head, peer) if guard is not None else None
        if refusal is None:
            refuse_head = getattr(handler, "refuse_head", None)
            refusal = refuse_head(head) if refuse_head is not None else None
        return refusal

    def __call__(self, request: HttpRequest) -> Response | Deferred[Response]:
        route = self._route(request.path)
        if route is None:
            return _NOT_FOUND
        methods, handler, not_allowed, _ = route
        if request.method not in methods:
            return not_allowed
        return handler(request)


class SourceGuard:
    """Answers 403 to clients outside `policy`, counting each and logging a few."""

    def __init__(
        self, policy: SourcePolicy | None, key: str, on_refused: Callable[[], Any], clock: Any
    ) -> None:
        self.policy = policy  # None lets everyone in; a reload may set or clear it
        self._key = key  # the config key that would let the client in, for the log
        self._on_refused = on_refused
        self._clock = clock
        self._refusals = Repeats(_REFUSAL_LOG_INTERVAL)

    def __call__(self, request: HttpRequest, peer: str) -> Response | None:
        if self.policy is None:
            return None
        allowed, client = self.policy.check(peer, request.headers.get(b"x-forwarded-for"))
        if allowed:
            return None
        self._on_refused()
        suppressed = self._refusals.note("refused", self._clock.seconds())
        if suppressed is not None:
            log.warn(
                "refused {path} from {client}: not in [http] {key}"
                " ({suppressed} more refusals since the last such line)",
                path=request.path.decode("latin-1")[:100],
                client=client,
                key=self._key,
                suppressed=suppressed,
            )
        return _FORBIDDEN


class _MetricsPage:
    """/metrics, rendered at most once per `cache_for` seconds.

    Rendering costs milliseconds (every labelled series); a scraper that asks
    a thousand times a second, or a pipelined flood, gets the same bytes.
    """

    def __init__(self, registry: Any, clock: Any, cache_for: float) -> None:
        self._registry = registry
        self._clock = clock
        self._cache_for = cache_for
        self._page: Response | None = None
        self._rendered_at = float("-inf")

    def __call__(self, request: HttpRequest) -> Response:
        now = self._clock.seconds()
        if self._page is None or now - self._rendered_at >= self._cache_for:
            self._page = Response(
                200, generate_latest(self._registry), content_type=CONTENT_TYPE_LATEST.encode()
            )
            self._rendered_at = now
        return self._page


# The name the Common route's callbacks carry towards the intake, for its logs.
_COMMON = "common"


class HttpSite:
    """The HTTP server for the gateway: Common's callbacks, metrics and probes.

    `factory` is what the listener serves; `reconfigure` applies a reloaded
    config's callback credentials and source lists (gateway/reload.py).
    """

    def __init__(
        self,
        reactor: Any,
        config: Config,
        inbound: Inbound,
        reports: CommonReports,
        metrics: Metrics,
        ready: Callable[[], tuple[bool, str]],
    ) -> None:
        http = config.http
        # One labelled child per outcome, looked up once: a label lookup per callback
        # would be per-message work (DESIGN.md section 9).
        dlr = {word: metrics.child(metrics.callbacks, "dlr", word) for word in _CALLBACK_OUTCOMES}
        mo = {word: metrics.child(metrics.callbacks, "mo", word) for word in _CALLBACK_OUTCOMES}

        def reported(delivery_reports: list[DeliveryReport]) -> Deferred[None]:
            return inbound.reports(_COMMON, [reports.report(r) for r in delivery_reports])

        def parse_mo(
            method: bytes,
            content_type: str | None,
            body: bytes,
            query: Mapping[bytes, Sequence[bytes]],
        ) -> list[IncomingMo]:
            now = reactor.seconds()
            return [
                incoming_mo_from_object(obj, connector=_COMMON, now=now)
                for obj in parse_callback_objects(method, content_type, body, query)
            ]

        callback = CallbackEndpoint(
            reported,
            username=http.callback_username,
            password=http.callback_password,
            on_outcome=lambda word: dlr[word].inc(),
        )
        mo_callback = CallbackEndpoint(
            inbound.mo_received,
            username=http.callback_username,
            password=http.callback_password,
            on_outcome=lambda word: mo[word].inc(),
            parse=parse_mo,
            what="MO messages",
        )
        self._endpoints = (callback, mo_callback)
        page = _MetricsPage(metrics.registry, reactor, http.metrics_cache)

        def probe(check: Callable[[], tuple[bool, str]]) -> Handler:
            def answer(request: HttpRequest) -> Response:
                ok, text = check()
                return Response(200 if ok else 503, text.encode() + b"\n")

            return answer

        # Always in place, so that a reload can set or clear the lists.
        callers, scrapers = source_policies(
            http.callback_sources, http.metrics_sources, http.trusted_proxies
        )
        dlr_guard = SourceGuard(callers, "callback_sources", dlr["forbidden"].inc, reactor)
        mo_guard = SourceGuard(callers, "callback_sources", mo["forbidden"].inc, reactor)
        metrics_guard = SourceGuard(scrapers, "metrics_sources", lambda: None, reactor)
        self._callback_guards = (dlr_guard, mo_guard)
        self._metrics_guard = metrics_guard

        router = Router()
        router.add(
            http.callback_path.encode(), _CALLBACK_METHODS, callback, subtree=True, guard=dlr_guard
        )
        router.add(
            config.mo.callback_path.encode(),
            _CALLBACK_METHODS,
            mo_callback,
            subtree=True,
            guard=mo_guard,
        )
        router.add(b"/metrics", _READ_ONLY, page, guard=metrics_guard)
        router.add(b"/healthz", _READ_ONLY, probe(lambda: (True, "ok")), guard=metrics_guard)
        router.add(b"/readyz", _READ_ONLY, probe(ready), guard=metrics_guard)

        def refused(status: int) -> None:
            metrics.child(metrics.http_refused, str(status)).inc()
            callback.on_http_error(status)

        self.factory = HttpServerFactory(
            reactor,
            router,
            max_body=http.max_body,
            idle_timeout=http.keepalive_timeout,
            request_timeout=http.request_timeout,
            on_error=refused,
            admit=router.admit,
            screen=router.screen,
            write_timeout=http.write_timeout,
            on_disconnect=lambda reason: metrics.child(metrics.disconnects, "http", reason).inc(),
        )

    def reconfigure(self, config: Config) -> None:
        http = config.http
        for endpoint in self._endpoints:
            endpoint.set_credentials(http.callback_username, http.callback_password)
        callers, scrapers = source_policies(
            http.callback_sources, http.metrics_sources, http.trusted_proxies
        )
        for guard in self._callback_guards:
            guard.policy = callers
        self._metrics_guard.policy = scrapers


__all__ = ["HttpSite", "Router", "SourceGuard"]
