"""The HTTP site: LINK's callbacks, /metrics, /healthz and /readyz.

One twisted.web Site on the `[http] listen` endpoint. The callback path comes
from the config (default `/callbacks/dlr`); it is the URL the Gate is told to
call (`http.public_url` + path).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client.twisted import MetricsResource
from twisted.web.resource import Resource
from twisted.web.server import Site

from gateway.common.callbacks import CallbackResource
from gateway.core import Gateway


class _Probe(Resource):
    isLeaf = True

    def __init__(self, check: Callable[[], tuple[bool, str]]) -> None:
        super().__init__()
        self._check = check

    def render_GET(self, request: Any) -> bytes:
        ok, text = self._check()
        request.setResponseCode(200 if ok else 503)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return text.encode() + b"\n"


def build_site(gateway: Gateway, ready: Callable[[], tuple[bool, str]]) -> Site:
    http = gateway.config.http
    metrics = gateway.metrics
    root: Any = Resource()
    root.putChild(b"metrics", MetricsResource(registry=metrics.registry))
    root.putChild(b"healthz", _Probe(lambda: (True, "ok")))
    root.putChild(b"readyz", _Probe(ready))

    def outcome(word: str) -> None:
        metrics.child(metrics.callbacks, "dlr", word).inc()

    callback = CallbackResource(
        gateway.on_reports,
        username=http.callback_username,
        password=http.callback_password,
        max_body=http.max_body,
        on_outcome=outcome,
    )
    segments = [s.encode() for s in http.callback_path.strip("/").split("/")]
    parent = root
    for segment in segments[:-1]:
        child = Resource()
        parent.putChild(segment, child)
        parent = child
    parent.putChild(segments[-1], callback)
    # Form bodies are parsed by the callback itself; twisted.web's own parsing builds an
    # email.message per request, which costs more than handling the report.
    site = Site(root, parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    # Per-request access logs would cost more than the request at LINK's rates.
    site.log = lambda request: None  # type: ignore[method-assign]
    return site
