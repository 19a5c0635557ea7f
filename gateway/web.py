"""The HTTP endpoints: LINK's callbacks, /metrics, /healthz and /readyz.

Responsible for: routing requests from the HTTP server
(:mod:`gateway.transport.http`) on the `[http] listen` endpoint to their
handlers. The callback path comes from the config (default `/callbacks/dlr`);
it is the URL the Gate is told to call (`http.public_url` + path).

What always holds: an unknown path gets 404, a known path with a method it
does not take gets 405 with `Allow`; the callback path also takes any path
below it (`/callbacks/dlr/...`), as the twisted.web resource it replaced did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.internet.defer import Deferred

from gateway.common.callbacks import CallbackEndpoint, parse_callback_objects
from gateway.core import Gateway
from gateway.http11 import HttpRequest, Response
from gateway.inbound import IncomingMo
from gateway.mo import incoming_mo_from_object
from gateway.transport.http import HttpServerFactory

Handler = Callable[[HttpRequest], "Response | Deferred[Response]"]

_NOT_FOUND = Response(404, b"not found\n")
_READ_ONLY = frozenset((b"GET", b"HEAD"))
_CALLBACK_METHODS = frozenset((b"GET", b"POST", b"PUT"))


class Router:
    """Path -> (methods, handler); exact paths first, then the callback prefix."""

    def __init__(self) -> None:
        self._routes: dict[bytes, tuple[frozenset[bytes], Handler, Response]] = {}
        self._prefixes: list[tuple[bytes, bytes]] = []

    def add(
        self, path: bytes, methods: frozenset[bytes], handler: Handler, *, subtree: bool = False
    ) -> None:
        allow = b", ".join(sorted(methods))
        not_allowed = Response(405, b"method not allowed\n", headers=((b"Allow", allow),))
        self._routes[path] = (methods, handler, not_allowed)
        if subtree:
            self._prefixes.append((path.rstrip(b"/") + b"/", path))

    def __call__(self, request: HttpRequest) -> Response | Deferred[Response]:
        route = self._routes.get(request.path)
        if route is None:
            for prefix, path in self._prefixes:
                if request.path.startswith(prefix):
                    route = self._routes[path]
                    break
            else:
                return _NOT_FOUND
        methods, handler, not_allowed = route
        if request.method not in methods:
            return not_allowed
        return handler(request)


def build_http_factory(
    gateway: Gateway, ready: Callable[[], tuple[bool, str]]
) -> HttpServerFactory:
    """The HTTP server for the gateway: callbacks, metrics and probes."""
    http = gateway.config.http
    metrics = gateway.metrics
    # One labelled child per outcome, looked up once: a label lookup per callback
    # would be per-message work (DESIGN.md section 9).
    outcomes = {
        word: metrics.child(metrics.callbacks, "dlr", word)
        for word in ("ok", "bad_request", "unauthorized", "too_large", "error")
    }

    def outcome(word: str) -> None:
        outcomes[word].inc()

    callback = CallbackEndpoint(
        gateway.on_reports,
        username=http.callback_username,
        password=http.callback_password,
        on_outcome=outcome,
    )

    mo_outcomes = {
        word: metrics.child(metrics.callbacks, "mo", word)
        for word in ("ok", "bad_request", "unauthorized", "too_large", "error")
    }

    def parse_mo(
        method: bytes,
        content_type: str | None,
        body: bytes,
        query: Mapping[bytes, Sequence[bytes]],
    ) -> list[IncomingMo]:
        now = gateway.reactor.seconds()
        return [
            incoming_mo_from_object(obj, connector="common", now=now)
            for obj in parse_callback_objects(method, content_type, body, query)
        ]

    mo_callback = CallbackEndpoint(
        gateway.mo_received,
        username=http.callback_username,
        password=http.callback_password,
        on_outcome=lambda word: mo_outcomes[word].inc(),
        parse=parse_mo,
        what="MO messages",
    )

    def metrics_page(request: HttpRequest) -> Response:
        return Response(
            200, generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.encode()
        )

    def probe(check: Callable[[], tuple[bool, str]]) -> Handler:
        def answer(request: HttpRequest) -> Response:
            ok, text = check()
            return Response(200 if ok else 503, text.encode() + b"\n")

        return answer

    router = Router()
    router.add(http.callback_path.encode(), _CALLBACK_METHODS, callback, subtree=True)
    router.add(
        gateway.config.mo.callback_path.encode(), _CALLBACK_METHODS, mo_callback, subtree=True
    )
    router.add(b"/metrics", _READ_ONLY, metrics_page)
    router.add(b"/healthz", _READ_ONLY, probe(lambda: (True, "ok")))
    router.add(b"/readyz", _READ_ONLY, probe(ready))
    # A reload may change the credentials LINK must send (gateway/reload.py).
    gateway.callback_endpoints = [callback, mo_callback]
    return HttpServerFactory(
        gateway.reactor, router, max_body=http.max_body, on_error=callback.on_http_error
    )


__all__ = ["Router", "build_http_factory"]
