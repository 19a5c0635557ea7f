"""gateway.http.server and gateway.http.site without sockets: the address screen
(`admit`, SourceGuard) and the request deadline of a new connection, on a fake
clock and an in-memory transport."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent

from gateway.http.parser import HttpRequest, Response
from gateway.http.server import HttpServerFactory, HttpServerProtocol
from gateway.http.site import Router, SourceGuard, _MetricsPage
from gateway.http.sources import SourcePolicy, parse_network

GET_CALLBACK = b"GET /callbacks/dlr?id=1 HTTP/1.1\r\nHost: gw\r\n\r\n"


class Screened:
    def __init__(self, allowed: str = "193.142.108.0/24") -> None:
        self.clock = Clock()
        self.refused = 0
        self.routed: list[bytes] = []
        router = Router()

        def handler(request: HttpRequest) -> Response:
            self.routed.append(request.path)
            return Response(200, b"OK")

        def count() -> None:
            self.refused += 1

        guard = SourceGuard(
            SourcePolicy([parse_network(allowed)], [parse_network("10.0.0.1")]),
            "callback_sources",
            count,
            self.clock,
        )
        router.add(b"/callbacks/dlr", frozenset((b"GET",)), handler, subtree=True, guard=guard)
        router.add(b"/healthz", frozenset((b"GET",)), handler)
        self.factory = HttpServerFactory(
            self.clock,
            router,
            max_body=1024,
            request_timeout=5.0,
            idle_timeout=60.0,
            admit=router.admit,
        )

    def connect(self, peer: str) -> tuple[HttpServerProtocol, StringTransport]:
        protocol = self.factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000))
        protocol.makeConnection(transport)
        return protocol, transport


def test_a_client_outside_the_list_gets_403_and_the_handler_never_runs() -> None:
    screened = Screened()
    protocol, transport = screened.connect("203.0.113.9")
    protocol.dataReceived(GET_CALLBACK)
    assert transport.value().startswith(b"HTTP/1.1 403 ")
    assert screened.routed == [] and screened.refused == 1
    # Paths without a guard are answered as before.
    protocol.dataReceived(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
    assert screened.routed == [b"/healthz"]


def test_a_listed_client_and_one_vouched_for_by_a_trusted_proxy_are_routed() -> None:
    screened = Screened()
    protocol, transport = screened.connect("193.142.108.11")
    protocol.dataReceived(GET_CALLBACK)
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    protocol, transport = screened.connect("10.0.0.1")
    protocol.dataReceived(
        GET_CALLBACK.replace(b"\r\n\r\n", b"\r\nX-Forwarded-For: 193.142.108.12\r\n\r\n")
    )
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert screened.routed == [b"/callbacks/dlr", b"/callbacks/dlr"]


def test_refusals_are_logged_at_most_once_a_minute() -> None:
    screened = Screened()
    with capturedLogs() as events:
        for _ in range(5):
            protocol, _ = screened.connect("203.0.113.9")
            protocol.dataReceived(GET_CALLBACK)
        screened.clock.advance(60)
        protocol, _ = screened.connect("203.0.113.10")
        protocol.dataReceived(GET_CALLBACK)
    lines = [formatEvent(e) for e in events if "refused" in formatEvent(e)]
    assert lines == [
        "refused /callbacks/dlr from 203.0.113.9: not in [http] callback_sources"
        " (0 more refusals since the last such line)",
        "refused /callbacks/dlr from 203.0.113.10: not in [http] callback_sources"
        " (4 more refusals since the last such line)",
    ]
    assert screened.refused == 6


def test_a_new_connection_gets_request_timeout_not_idle_timeout() -> None:
    screened = Screened()
    _, transport = screened.connect("193.142.108.11")
    screened.clock.advance(4.9)
    assert transport.connected
    screened.clock.advance(0.1)
    assert transport.disconnecting and transport.value() == b""


def test_the_first_request_counts_from_the_connection() -> None:
    screened = Screened()
    protocol, transport = screened.connect("193.142.108.11")
    screened.clock.advance(3)
    protocol.dataReceived(b"GET /healthz HTTP/1.1\r\n")  # a header, slowly
    screened.clock.advance(2)
    assert transport.value().startswith(b"HTTP/1.1 408 ") and transport.disconnecting


def test_after_an_answer_the_idle_limit_is_keepalive() -> None:
    screened = Screened()
    protocol, transport = screened.connect("193.142.108.11")
    protocol.dataReceived(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    screened.clock.advance(59)
    assert not transport.disconnecting
    screened.clock.advance(1)
    assert transport.disconnecting


def test_screen_refuses_an_address_before_its_body_is_read() -> None:
    head = HttpRequest(b"POST", b"/callbacks/dlr", b"/callbacks/dlr", b"", b"HTTP/1.1", {})
    web = Router()
    guard_refusals: list[str] = []
    guard = SourceGuard(
        SourcePolicy([parse_network("193.142.108.0/24")], []),
        "callback_sources",
        lambda: guard_refusals.append("x"),
        Clock(),
    )

    class Endpoint:
        def __call__(self, request: HttpRequest) -> Response:
            return Response(200)

        def refuse_head(self, request: HttpRequest) -> Response | None:
            if request.headers.get(b"authorization") != b"ok":
                return Response(401)
            return None

    web.add(b"/callbacks/dlr", frozenset((b"POST",)), Endpoint(), guard=guard)
    refused = web.screen(head, "203.0.113.9")
    assert refused is not None and refused.status == 403 and guard_refusals == ["x"]
    no_credentials = web.screen(head, "193.142.108.5")
    assert no_credentials is not None and no_credentials.status == 401
    head.headers[b"authorization"] = b"ok"
    assert web.screen(head, "193.142.108.5") is None
    unknown = HttpRequest(b"POST", b"/nope", b"/nope", b"", b"HTTP/1.1", {})
    not_found = web.screen(unknown, "193.142.108.5")
    assert not_found is not None and not_found.status == 404


def test_the_metrics_page_is_rendered_at_most_once_per_metrics_cache() -> None:
    clock = Clock()
    registry = CollectorRegistry()
    counter = Counter("smppgw_test_total", "t", registry=registry)
    page = _MetricsPage(registry, clock, 1.0)
    get = HttpRequest(b"GET", b"/metrics", b"/metrics", b"", b"HTTP/1.1", {})
    first = page(get).body
    counter.inc()
    clock.advance(0.5)
    assert page(get).body == first  # a flood gets the same bytes
    clock.advance(0.5)
    assert page(get).body != first and b"smppgw_test_total 1.0" in page(get).body
    uncached = _MetricsPage(registry, clock, 0.0)
    before = uncached(get).body
    counter.inc()
    assert uncached(get).body != before
