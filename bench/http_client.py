"""REST client benchmark: CPU per request of treq + Agent against gateway.http.client.

    python -m bench.http_client [--requests N] [--concurrency C] [--rounds R]
                                [--clients treq lean common] [--json]

What it shows: the CPU time the *client* process spends per POST to a LINK-like
REST endpoint, which is what the gateway pays per batch it sends. A keep-alive
HTTP server (the gateway's own, gateway/http/server.py) runs in a subprocess on
127.0.0.1, so that its CPU is not counted, and answers every POST with a small
JSON body, like Common's /sms/send. Each client posts a ~2 KB JSON body, first N
times one after another ("sequential"), then N times with C in flight at once
over at most C connections ("concurrent"); each mode runs R rounds after a
warm-up, and the median round is printed. Clients:

* ``treq``: treq over twisted.web's Agent with a persistent pool of C
  connections, URL parsed once, as CommonClient used it until it changed;
* ``lean``: gateway.http.client.HttpClient with max_connections C;
* ``common``: CommonClient.send_batch of the same batch, i.e. what the connector
  pays per request including JSON encoding, the timeout and reading the result
  (over whichever HTTP client CommonClient uses in the tree it runs in).

CPU is time.process_time() of this process (user + system, reactor included)
divided by the requests; wall req/s is given for orientation only, since the
server shares the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.task import react

ANSWER = json.dumps(
    {"messageId": "QC5BGwiuYk0AAAFi00000001", "resultCode": 1005, "description": "Queued"}
).encode()
MESSAGE = {
    "source": "LINK",
    "destination": "+4799999999",
    "userData": "Hello world, this is a message of ordinary length for a REST request. " * 2,
    "platformId": "PLATFORM-ID-0001",
    "platformPartnerId": "PARTNER-ID-0001",
    "refId": "0123456789abcdef0123456789abcdef",
    "useDeliveryReport": True,
    "deliveryReportGates": ["GATE-0001"],
}
# About 2 KB, as a batch of a few messages is.
BATCH = {"sendRequestMessages": [dict(MESSAGE, refId=f"{i:032x}") for i in range(6)]}
BODY = json.dumps(BATCH, separators=(",", ":")).encode()
USER, PASSWORD = "user", "secret"

Send = Callable[[], Awaitable[Any]]


# -- the server (subprocess) ---------------------------------------------------------


def serve() -> None:
    from twisted.internet import reactor

    from gateway.http.parser import HttpRequest, Response
    from gateway.http.server import HttpServerFactory

    def router(request: HttpRequest) -> Response:
        return Response(200, ANSWER, content_type=b"application/json")

    factory = HttpServerFactory(reactor, router, max_body=1 << 20, idle_timeout=600.0)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1", backlog=128)  # type: ignore[attr-defined]
    print(port.getHost().port, flush=True)
    reactor.run()  # type: ignore[attr-defined]


# -- the clients ---------------------------------------------------------------------


def treq_client(reactor: Any, base: str, connections: int) -> tuple[Send, Callable[[], Any]]:
    import treq
    from hyperlink import EncodedURL
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = connections
    http = HTTPClient(Agent(reactor, pool=pool))
    url = EncodedURL.from_text(base + "/sms/sendbatch")
    headers = {
        b"Content-Type": [b"application/json"],
        b"Accept": [b"application/json"],
        b"Authorization": [b"Basic dXNlcjpzZWNyZXQ="],
    }

    async def send() -> bytes:
        response = await http.request(
            "POST", url, data=BODY, headers=headers, allow_redirects=False
        )
        content: bytes = await treq.content(response)
        assert response.code == 200, response.code
        return content

    return send, pool.closeCachedConnections


def lean_client(reactor: Any, base: str, connections: int) -> tuple[Send, Callable[[], Any]]:
    from gateway.http.client import HttpClient

    client = HttpClient(reactor, base, max_connections=connections)
    headers = (
        (b"Content-Type", b"application/json"),
        (b"Accept", b"application/json"),
        (b"Authorization", b"Basic dXNlcjpzZWNyZXQ="),
    )

    async def send() -> bytes:
        answer = await client.request(b"POST", b"/sms/sendbatch", headers, BODY)
        assert answer.status == 200, answer.status
        return answer.body

    return send, client.close


def common_client(reactor: Any, base: str, connections: int) -> tuple[Send, Callable[[], Any]]:
    from gateway.connectors.common.client import CommonClient, CommonSettings

    settings = CommonSettings(
        base_url=base, username=USER, password=PASSWORD, max_connections=connections
    )
    client = CommonClient(reactor, settings)

    async def send() -> Any:
        return await client.send_batch(BATCH)

    return send, client.close


CLIENTS = {"treq": treq_client, "lean": lean_client, "common": common_client}


# -- measuring -----------------------------------------------------------------------


async def sequential(send: Send, requests: int) -> None:
    for _ in range(requests):
        await send()


async def concurrent(send: Send, requests: int, in_flight: int) -> None:
    async def worker(count: int) -> None:
        for _ in range(count):
            await send()

    share, extra = divmod(requests, in_flight)
    workers = [ensureDeferred(worker(share + (1 if i < extra else 0))) for i in range(in_flight)]
    await DeferredList(workers, fireOnOneErrback=True, consumeErrors=True)


async def measure(run: Callable[[], Awaitable[None]], requests: int) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    await run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_us_per_request": cpu / requests * 1e6, "requests_per_second": requests / wall}


async def bench(reactor: Any, options: argparse.Namespace) -> list[dict[str, Any]]:
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.http_client", "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        base = f"http://127.0.0.1:{int(server.stdout.readline())}"
        rows: list[dict[str, Any]] = []
        for name in options.clients:
            send, close = CLIENTS[name](reactor, base, options.concurrency)
            await concurrent(send, max(options.requests // 5, 100), options.concurrency)
            modes: dict[str, Callable[[], Awaitable[None]]] = {
                "sequential": partial(sequential, send, options.requests),
                "concurrent": partial(concurrent, send, options.requests, options.concurrency),
            }
            for mode, run in modes.items():
                rounds = [await measure(run, options.requests) for _ in range(options.rounds)]
                cpu = statistics.median(r["cpu_us_per_request"] for r in rounds)
                rate = statistics.median(r["requests_per_second"] for r in rounds)
                rows.append(
                    {
                        "client": name,
                        "mode": mode,
                        "requests": options.requests,
                        "in_flight": 1 if mode == "sequential" else options.concurrency,
                        "cpu_us_per_request": round(cpu, 1),
                        "cpu_us_rounds": [round(r["cpu_us_per_request"], 1) for r in rounds],
                        "requests_per_second": round(rate),
                    }
                )
            await close()
        return rows
    finally:
        server.terminate()
        server.wait()


def report(rows: list[dict[str, Any]]) -> None:
    print(f"{'client':8} {'mode':11} {'requests':>8} {'in flight':>9} {'CPU µs/req':>11} "
          f"{'req/s':>7}  rounds (CPU µs/req)")  # fmt: skip
    for row in rows:
        print(
            f"{row['client']:8} {row['mode']:11} {row['requests']:>8} {row['in_flight']:>9} "
            f"{row['cpu_us_per_request']:>11.1f} {row['requests_per_second']:>7}  "
            + " ".join(f"{v:.0f}" for v in row["cpu_us_rounds"])
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per round")
    parser.add_argument("--concurrency", type=int, default=8, help="in flight when concurrent")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", nargs="+", choices=sorted(CLIENTS), default=list(CLIENTS))
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve()
        return

    async def run(reactor: Any) -> None:
        rows = await bench(reactor, options)
        if options.json:
            print(json.dumps(rows, indent=2))
        else:
            report(rows)

    react(lambda reactor: Deferred.fromCoroutine(run(reactor)))


if __name__ == "__main__":
    main()
