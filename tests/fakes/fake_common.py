"""A fake LINK Common SMS REST API, written from seed 001 (and seed 000 for OAuth 2.0).

Responsible for: answering ``POST /sms/send``, ``POST /sms/sendbatch`` and
``POST /auth/token`` the way the seeds describe, recording every accepted message,
and posting delivery reports back to a callback URL the way a Gate does (JSON, one
HTTP request per report, retried while the receiver does not answer 200). It also
answers seed 000's Gate API for PartnerGates under ``/gate/partnergate`` (create,
list, get by id or refId, delete), keeping the gates in ``gates`` (in ``GET
/_control`` as ``"gates"``); they only record what was asked, reports still go to
the callback URL the fake was given.

Used in-process by tests (``FakeCommon(reactor, ...)``) and as a process by the
benchmark (``python -m tests.fakes.fake_common --port N ...``, which prints
``listening on PORT`` once it listens, and offers ``/_control``, and
``GET /_messages``: the accepted messages it kept, each as received plus its
``messageId``, in order of acceptance; a process keeps them only when started
with ``--keep-messages`` or told ``{"keep_messages": true}`` on ``/_control``).

What always holds:

* It listens on 127.0.0.1 only and posts reports only to the configured URL.
* A message is in ``accepted`` exactly when the answer to its request said so; every
  accepted message with ``useDeliveryReport`` not false gets its reports posted
  (one per part when Common would have split it: ids ``<messageId>$<n>``).
* Reports for one message are posted in order: the next result code of a rule such as
  ``[1000, 1001]`` goes out only after the previous report was acknowledged or given up.
* Report posting is cheap: a small pipelining HTTP/1.1 client over a few keep-alive
  connections, parsing only the status line and the body framing of each answer.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

# Seed 001 "Error Result Codes".
INVALID_AUTHENTICATION = 101100
PARSE_ERROR = 106001
INVALID_PLATFORM_ID = 106200
INVALID_PLATFORM_PARTNER_ID = 106201
QUEUED = 1005
# Seed 000 "Error Codes" (Gate API).
GATE_INVALID_AUTHENTICATION = 103100
GATE_INVALID_PLATFORM_ID = 103201
GATE_INVALID_PARTNER_ID = 103202
GATE_DUPLICATE_REF_ID = 103212
GATE_MISSING_PARAMETERS = 103300
GATE_INVALID_GATE = 103302
GATE_NO_GATES_FOUND = 103303
GATE_NOT_FOUND = 103304
GATE_PATH = b"/gate/partnergate"
_GATE_TYPES = frozenset({"ALL", "ONE_ORDERED", "ONE_RANDOM"})
_GATE_CONTENT_TYPES = frozenset(
    {"application/json", "application/xml", "application/x-www-form-urlencoded"}
)
DELIVERED = 1001
MAX_BATCH = 1000

_TONS = frozenset({"SHORTNUMBER", "ALPHANUMERIC", "MSISDN"})
_DCS = frozenset({"GSM", "BINARY", "UCS2", "TEXT"})
_HEX = frozenset("0123456789abcdefABCDEF")
# GSM 03.38 default alphabet and the characters of its extension table (2 septets).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")


def count_segments(message: dict[str, Any]) -> int:
    """How many SMS Common would split a message into (1 if the sender segmented)."""
    if message.get("userDataHeader"):
        return 1
    user_data = message.get("userData") or ""
    dcs = message.get("dcs", "TEXT")
    if dcs == "BINARY":
        size, single, part = len(user_data) // 2, 140, 134
    elif dcs != "UCS2" and all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in user_data):
        size = len(user_data) + sum(1 for c in user_data if c in _GSM_EXTENSION)
        single, part = 160, 153
    else:
        size = len(user_data.encode("utf-16-be")) // 2
        single, part = 70, 67
    return 1 if size <= single else -(-size // part)


class QuietSite(Site):
    """A Site that writes no access log (a log line per request costs more than the
    request on the benchmark's hot path) and can drop all its connections."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource)
        self.channels: set[_TrackedChannel] = set()
        self.protocol = _TrackedChannel  # HTTP/1.1 only

    def log(self, request: Any) -> None:
        pass

    def close_connections(self) -> Deferred[None]:
        """Abort every open connection; fires once all are gone."""
        waits = [channel.lost for channel in list(self.channels)]
        for channel in list(self.channels):
            channel.transport.abortConnection()
        return DeferredList(waits).addCallback(lambda _: None)


class _TrackedChannel(HTTPChannel):
    def connectionMade(self) -> None:
        super().connectionMade()
        self.lost: Deferred[None] = Deferred()
        self.factory.channels.add(self)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        super().connectionLost(reason)
        self.factory.channels.discard(self)
        self.lost.callback(None)


# -- the report poster ----------------------------------------------------------


class _Pending:
    __slots__ = ("attempts", "close", "data", "deferred", "sent_at")

    def __init__(self, data: bytes, deferred: Deferred[int], close: bool = False) -> None:
        self.data = data
        self.deferred = deferred
        self.attempts = 0
        self.close = close  # sent with Connection: close: the connection ends with it
        self.sent_at = 0.0


class _ReportConnection(Protocol):
    """One keep-alive HTTP/1.1 connection carrying pipelined requests.

    Answers come back in request order (RFC 9112, section 9.3.2), so each parsed
    answer belongs to the oldest request in flight.
    """

    def __init__(self, poster: ReportPoster) -> None:
        self.poster = poster
        self.in_flight: deque[_Pending] = deque()
        self.lost: Deferred[None] = Deferred()
        self.closing = False
        self._buffer = bytearray()
        self._status = 0
        self._remaining = -1  # body bytes still expected; -1: reading the head
        self._chunked = False
        self._close_after = False

    def connectionMade(self) -> None:
        # LINK's reports are small requests: don't let Nagle hold them back.
        self.transport.setTcpNoDelay(True)  # type: ignore[union-attr]

    def send(self, pending: _Pending) -> None:
        pending.attempts += 1
        pending.sent_at = time.perf_counter()
        self.in_flight.append(pending)
        if pending.close:
            self.closing = True  # nothing more goes on this connection
        self.transport.write(pending.data)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while True:
            if self._remaining < 0:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buffer[:end]).lower()
                del buffer[: end + 4]
                if not head.startswith(b"http/1."):
                    self._abort()
                    return
                self._status = int(head[9:12])
                self._chunked = b"\r\ntransfer-encoding: chunked" in head
                self._close_after = b"\r\nconnection: close" in head
                length_at = head.find(b"\r\ncontent-length:")
                if self._chunked:
                    self._remaining = 0
                elif length_at >= 0:
                    line_end = head.find(b"\r\n", length_at + 2)
                    value = head[length_at + 17 : line_end if line_end >= 0 else None]
                    self._remaining = int(value.strip())
                elif self._status in (204, 304):
                    self._remaining = 0
                else:
                    # Body delimited by the end of the connection.
                    self._close_after = True
                    self._remaining = 1 << 62
            if self._chunked:
                if not self._skip_chunks():
                    return
            elif len(buffer) >= self._remaining:
                del buffer[: self._remaining]
            else:
                self._remaining -= len(buffer)
                buffer.clear()
                return
            self._answered()
            if self.closing:
                return

    def _skip_chunks(self) -> bool:
        """Consume chunked body data; True once the last chunk and trailers are in."""
        buffer = self._buffer
        while True:
            if self._remaining > 0:
                if len(buffer) < self._remaining:
                    return False
                del buffer[: self._remaining]
                self._remaining = 0
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                return False
            line = bytes(buffer[:line_end])
            if line == b"":
                del buffer[:2]
                continue
            size = int(line.split(b";")[0], 16)
            if size == 0:
                trailer_end = buffer.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return False
                del buffer[: trailer_end + 4]
                return True
            del buffer[: line_end + 2]
            self._remaining = size + 2  # the chunk and its CRLF

    def _answered(self) -> None:
        status = self._status
        self._remaining = -1
        self._chunked = False
        closed = False
        if self.in_flight:
            answered = self.in_flight.popleft()
            closed = answered.close
            self.poster.answer_times.append(time.perf_counter() - answered.sent_at)
            answered.deferred.callback(status)
        if self._close_after or closed:
            self.closing = True
            self.transport.loseConnection()  # type: ignore[union-attr]
        else:
            self.poster._pump()

    def _abort(self) -> None:
        self.closing = True
        self.transport.abortConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.closing = True
        self.poster._connection_lost(self, reason)
        self.lost.callback(None)


class ReportPoster:
    """Posts bodies to one http:// URL over up to ``connections`` keep-alive
    connections, pipelining up to ``pipeline`` requests on each.

    A ``close`` share of the requests (spread evenly) carry ``Connection: close``
    and end their connection, as senders that do not keep connections alive do;
    the next request opens a new one.

    ``post`` fires with the HTTP status, or fails when the request could not be
    delivered (connection refused, or lost three times).
    """

    def __init__(
        self,
        reactor: Any,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        connections: int = 4,
        pipeline: int = 32,
        close: float = 0.0,
        content_type: str = "application/json",
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the fake posts to http:// URLs only, not {url!r}")
        self._reactor = reactor
        self._host = parts.hostname
        self._port = parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {parts.netloc}",
            f"Content-Type: {content_type}",
        ]
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            head.append(f"Authorization: Basic {token}")
        self._head = ("\r\n".join(head) + "\r\nContent-Length: ").encode()
        self._max_connections = connections
        self._pipeline = pipeline
        self._close = close
        self._posted = 0
        # Seconds from writing each request to reading its answer, as LINK sees it.
        self.answer_times: list[float] = []
        self._connections: list[_ReportConnection] = []
        self._connecting: set[Deferred[_ReportConnection]] = set()
        self._queue: deque[_Pending] = deque()
        self._closed = False

    def post(self, body: bytes) -> Deferred[int]:
        d: Deferred[int] = Deferred()
        if self._closed:
            d.errback(Failure(ConnectionLost("poster closed")))
            return d
        self._posted += 1
        # Request n closes when n * share crosses a whole number: evenly spread.
        close = int(self._posted * self._close) != int((self._posted - 1) * self._close)
        extra = b"\r\nConnection: close" if close else b""
        data = b"%s%d%s\r\n\r\n%s" % (self._head, len(body), extra, body)
        self._queue.append(_Pending(data, d, close))
        self._pump()
        return d

    def close(self) -> Deferred[None]:
        self._closed = True
        for connecting in list(self._connecting):
            connecting.cancel()
        waits = [c.lost for c in self._connections]
        for connection in list(self._connections):
            connection.closing = True
            connection.transport.loseConnection()  # type: ignore[union-attr]
        queued, self._queue = self._queue, deque()
        for pending in queued:
            pending.deferred.errback(Failure(ConnectionLost("poster closed")))
        return DeferredList(waits).addCallback(lambda _: None)

    def _pump(self) -> None:
        queue = self._queue
        while queue:
            best: _ReportConnection | None = None
            for connection in self._connections:
                if connection.closing or len(connection.in_flight) >= self._pipeline:
                    continue
                if best is None or len(connection.in_flight) < len(best.in_flight):
                    best = connection
            if best is None or (best.in_flight and self._can_connect()):
                if self._can_connect():
                    self._connect()
                if best is None:
                    return
            best.send(queue.popleft())

    def _can_connect(self) -> bool:
        return (
            not self._closed
            and len(self._connections) + len(self._connecting) < self._max_connections
        )

    def _connect(self) -> None:
        endpoint = TCP4ClientEndpoint(self._reactor, self._host, self._port, timeout=5)
        connection = _ReportConnection(self)
        d: Deferred[_ReportConnection] = connectProtocol(endpoint, connection)
        self._connecting.add(d)

        def connected(protocol: _ReportConnection) -> None:
            self._connecting.discard(d)
            self._connections.append(protocol)
            self._pump()

        def failed(reason: Failure) -> None:
            self._connecting.discard(d)
            if not self._connections:
                # Nobody can carry the queue: fail it, the caller retries later.
                queued, self._queue = self._queue, deque()
                for pending in queued:
                    pending.deferred.errback(reason)

        d.addCallbacks(connected, failed)

    def _connection_lost(self, connection: _ReportConnection, reason: Failure) -> None:
        if connection in self._connections:
            self._connections.remove(connection)
        # Unanswered requests go out again (an idle keep-alive connection can be
        # closed by the server just as we write), unless they keep failing.
        for pending in reversed(connection.in_flight):
            if pending.attempts < 3 and not self._closed:
                self._queue.appendleft(pending)
            else:
                pending.deferred.errback(reason)
        connection.in_flight.clear()
        if not self._closed:
            self._pump()


# -- the fake server ----------------------------------------------------------------


class FakeCommon:
    """The fake; every attribute documented here may be changed by tests at any time.

    ``result_rules`` maps a destination to the resultCode (or the list of codes, in
    order) its reports carry; others get ``default_result_code``. A key
    ``<destination>$<n>`` gives part n (from 0) of a message Common split its own
    last code: parts of one message may end differently.
    ``permanent_errors`` maps a destination to an error code answered with 400
    (for /sms/send) or put in that message's batch result.
    """

    def __init__(
        self,
        reactor: Any,
        *,
        username: str = "user",
        password: str = "secret",
        platform_id: str = "0",
        platform_partner_id: str = "0",
        callback_url: str | None = None,
        callback_user: str | None = None,
        callback_password: str | None = None,
        callback_connections: int = 4,
        callback_pipeline: int = 32,
        callback_close: float = 0.0,
        report_delay: float = 0.0,
        report_attempts: int = 4,
        retry_delay: float = 0.2,
        token_expires_in: int = 3599,
        accept_basic: bool = True,
        accept_oauth2: bool = True,
        keep_messages: bool = True,
    ) -> None:
        self.reactor = reactor
        self.username = username
        self.password = password
        self.platform_id = platform_id
        self.platform_partner_id = platform_partner_id
        self.report_delay = report_delay
        self.report_attempts = report_attempts
        self.retry_delay = retry_delay
        self.token_expires_in = token_expires_in
        self.accept_basic = accept_basic
        self.accept_oauth2 = accept_oauth2
        # A long benchmark would otherwise hold every message in memory.
        self.keep_messages = keep_messages
        self.accepted_count = 0
        self.response_delay = 0.0
        self.default_result_code = DELIVERED
        self.result_rules: dict[str, int | list[int]] = {}
        self.permanent_errors: dict[str, int] = {}

        self.accepted: list[dict[str, Any]] = []
        self.ref_id_counts: Counter[str] = Counter()
        # PartnerGates by id, in order of creation.
        self.gates: dict[str, dict[str, Any]] = {}
        self.requests = 0
        self.token_requests = 0
        self.reports_posted = 0
        self.reports_acknowledged = 0
        self.reports_failed = 0

        self.poster: ReportPoster | None = None
        if callback_url is not None:
            self.poster = ReportPoster(
                reactor,
                callback_url,
                username=callback_user,
                password=callback_password,
                connections=callback_connections,
                pipeline=callback_pipeline,
                close=callback_close,
            )
        self._basic = b"Basic " + base64.b64encode(f"{username}:{password}".encode())
        self._tokens: dict[bytes, float] = {}
        self._failures: deque[tuple[int, bytes]] = deque()
        # Seconds a 429 asks the client to wait (Retry-After); None: no such field.
        self.retry_after: int | None = None
        self._down = False
        self._refusing = False
        self._timers: set[Any] = set()
        self._id_prefix = secrets.token_bytes(10)
        self._id_counter = 0
        self._second = -1
        self._stamp = ""
        self._site = QuietSite(_FakeResource(self))
        self._listening: Any = None
        self._tls: Any = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------

    def start(self, port: int = 0, *, tls: Any = None) -> int:
        """Listen on 127.0.0.1 (with TLS when given a context factory); returns the port."""
        if tls is not None:
            self._tls = tls
        if self._tls is not None:
            self._listening = self.reactor.listenSSL(
                port, self._site, self._tls, interface="127.0.0.1"
            )
        else:
            self._listening = self.reactor.listenTCP(port, self._site, interface="127.0.0.1")
        self.port = self._listening.getHost().port
        return self.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> Deferred[None]:
        """Stop listening, drop every connection and pending report."""
        for timer in list(self._timers):
            if timer.active():
                timer.cancel()
        self._timers.clear()
        waits: list[Deferred[Any]] = [self._site.close_connections()]
        if self._listening is not None:
            waits.append(maybeDeferred(self._listening.stopListening))
            self._listening = None
        if self.poster is not None:
            waits.append(self.poster.close())
        return DeferredList(waits).addCallback(lambda _: None)

    # -- failure injection --------------------------------------------------------

    def fail_next(self, n: int, status: int = 503, body: bytes | None = None) -> None:
        """Answer the next n /sms requests with ``status`` (and ``body``)."""
        if body is None:
            body = _error_body(106000, "Unknown Error") if status < 500 else b"Service Unavailable"
        self._failures.extend([(status, body)] * n)

    def set_down(self, down: bool, *, refuse: bool = False) -> Deferred[None]:
        """Down: answer 503 to everything, or with ``refuse`` stop listening and
        drop open connections. Up again: listen on the same port."""
        self._down = down
        if down and refuse and not self._refusing:
            self._refusing = True
            listening, self._listening = self._listening, None
            d: Deferred[Any] = (
                maybeDeferred(listening.stopListening) if listening else succeed(None)
            )
            return d.addCallback(lambda _: self._site.close_connections())
        if not down and self._refusing:
            self._refusing = False
            self.start(self.port)
        return succeed(None)

    def expire_tokens(self) -> None:
        """Forget every access token, as if they all expired."""
        self._tokens.clear()

    # -- queries ---------------------------------------------------------------

    def count_ref_id(self, ref_id: str) -> int:
        return self.ref_id_counts[ref_id]

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "accepted": self.accepted_count,
            "unique_ref_ids": len(self.ref_id_counts),
            "duplicate_ref_ids": sum(1 for n in self.ref_id_counts.values() if n > 1),
            "token_requests": self.token_requests,
            "reports_posted": self.reports_posted,
            "reports_acknowledged": self.reports_acknowledged,
            "reports_failed": self.reports_failed,
            "report_answer_ms": self._answer_percentiles(),
            "down": self._down,
            "gates": list(self.gates.values()),
        }

    def _answer_percentiles(self) -> dict[str, float]:
        """How long the callback receiver took to answer a report (p50, p99, max)."""
        times = sorted(self.poster.answer_times) if self.poster is not None else []
        if not times:
            return {}

        def at(q: float) -> float:
            return round(times[min(len(times) - 1, int(q * len(times)))] * 1000, 2)

        return {"p50": at(0.5), "p99": at(0.99), "max": round(times[-1] * 1000, 2)}

    # -- request handling (called by the resource) ------------------------------

    def handle(self, path: bytes, headers: Any, body: bytes) -> tuple[int, bytes]:
        self.requests += 1
        if self._down:
            return 503, b"Service Unavailable"
        if path == b"/auth/token":
            return self._token(body)
        if path not in (b"/sms/send", b"/sms/sendbatch"):
            return 404, _error_body(106000, "Not found")
        if self._failures:
            return self._failures.popleft()
        if not self._authorized(headers.getRawHeaders(b"authorization")):
            return 401, _error_body(INVALID_AUTHENTICATION, "Invalid authentication")
        try:
            request = json.loads(body)
        except (ValueError, RecursionError):
            return 400, _error_body(PARSE_ERROR, "Parse Error")
        if not isinstance(request, dict):
            return 400, _error_body(PARSE_ERROR, "Parse Error: expected an object")
        if request.get("platformId") != self.platform_id:
            return 400, _error_body(INVALID_PLATFORM_ID, "Invalid or missing platformId")
        if request.get("platformPartnerId") != self.platform_partner_id:
            return 400, _error_body(
                INVALID_PLATFORM_PARTNER_ID, "Invalid or missing platformPartnerId"
            )
        if path == b"/sms/send":
            return self._send(request)
        return self._send_batch(request)

    def _authorized(self, header: list[bytes] | None) -> bool:
        if not header:
            return False
        value = header[0]
        if value.startswith(b"Bearer "):
            expires = self._tokens.get(value[7:])
            return self.accept_oauth2 and expires is not None and expires > self.reactor.seconds()
        return self.accept_basic and value == self._basic

    def _token(self, body: bytes) -> tuple[int, bytes]:
        self.token_requests += 1
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        if form.get("grant_type") != "client_credentials":
            return 400, json.dumps({"error": "unsupported_grant_type"}).encode()
        if form.get("client_id") != self.username or form.get("client_secret") != self.password:
            return 401, json.dumps({"error": "invalid_client"}).encode()
        token = secrets.token_urlsafe(24)
        self._tokens[token.encode()] = self.reactor.seconds() + self.token_expires_in
        answer = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_expires_in,
        }
        return 200, json.dumps(answer).encode()

    def _send(self, message: dict[str, Any]) -> tuple[int, bytes]:
        reason = _invalid_message(message)
        if reason is not None:
            return 400, _error_body(PARSE_ERROR, f"Parse Error: {reason}")
        code = self.permanent_errors.get(message["destination"])
        if code is not None:
            return 400, _error_body(code, "Rejected")
        message_id = self._accept(message)
        self._later(self.report_delay, self._report_all, [message])
        if message.get("ignoreResponse") is True:
            return 204, b""
        answer: dict[str, Any] = {
            "messageId": message_id,
            "resultCode": QUEUED,
            "description": "Queued",
        }
        if _wants_sms_count(message):
            answer["smsCount"] = count_segments(message)
        return 200, json.dumps(answer).encode()

    def _send_batch(self, batch: dict[str, Any]) -> tuple[int, bytes]:
        messages = batch.get("sendRequestMessages")
        if not isinstance(messages, list) or not messages:
            return 400, _error_body(PARSE_ERROR, "Parse Error: no sendRequestMessages")
        if len(messages) > MAX_BATCH:
            return 400, _error_body(PARSE_ERROR, f"Parse Error: more than {MAX_BATCH} messages")
        envelope = {k: v for k, v in batch.items() if k != "sendRequestMessages"}
        envelope_custom = envelope.get("customParameters")
        merged_all: list[dict[str, Any]] = []
        for item in messages:
            if not isinstance(item, dict):
                return 400, _error_body(PARSE_ERROR, "Parse Error: message is not an object")
            merged = {**envelope, **item}
            if isinstance(envelope_custom, dict):
                # Seed 001: the batch's customParameters override the message's.
                merged["customParameters"] = {
                    **(item.get("customParameters") or {}),
                    **envelope_custom,
                }
            reason = _invalid_message(merged)
            if reason is not None:
                return 400, _error_body(PARSE_ERROR, f"Parse Error: {reason}")
            merged_all.append(merged)
        answers: list[dict[str, Any]] = []
        to_report: list[dict[str, Any]] = []
        for merged in merged_all:
            code = self.permanent_errors.get(merged["destination"])
            if code is not None:
                answers.append(
                    {"refId": merged.get("refId"), "resultCode": code, "message": "Rejected"}
                )
                continue
            answer: dict[str, Any] = {
                "messageId": self._accept(merged),
                "refId": merged.get("refId"),
                "resultCode": QUEUED,
                "message": "Queued",
            }
            if _wants_sms_count(merged):
                answer["smsCount"] = count_segments(merged)
            answers.append(answer)
            to_report.append(merged)
        self._later(self.report_delay, self._report_all, to_report)
        # Seed 001: for batches ignoreResponse defaults to true.
        if batch.get("ignoreResponse", True) is not False:
            return 204, b""
        return 200, json.dumps(answers).encode()

    def _accept(self, message: dict[str, Any]) -> str:
        self._id_counter += 1
        raw = self._id_prefix + self._id_counter.to_bytes(8, "big")
        message_id = base64.b64encode(raw).decode()
        message["messageId"] = message_id
        self.accepted_count += 1
        if self.keep_messages:
            self.accepted.append(message)
        ref_id = message.get("refId")
        if isinstance(ref_id, str):
            self.ref_id_counts[ref_id] += 1
        return message_id

    # -- the Gate API (seed 000) -------------------------------------------------

    def handle_gate(
        self, method: bytes, path: bytes, headers: Any, body: bytes
    ) -> tuple[int, bytes, str | None]:
        """One Gate API request: (status, body, Location header or None)."""
        self.requests += 1
        if self._down:
            return 503, b"Service Unavailable", None
        if not self._authorized(headers.getRawHeaders(b"authorization")):
            return 401, _error_body(GATE_INVALID_AUTHENTICATION, "Invalid authentication"), None
        rest = path[len(GATE_PATH) :].decode("utf-8", "replace")
        if rest in ("", "/"):
            if method != b"POST":
                return 405, _error_body(GATE_INVALID_GATE, "Method not allowed"), None
            return self._create_gate(body)
        parts = [unquote(part) for part in rest.strip("/").split("/")]
        # platform/{platformId}/partner/{partnerId}[/id/{gateId} | /refid/{refId}]
        if len(parts) not in (4, 6) or parts[0] != "platform" or parts[2] != "partner":
            return 404, _error_body(GATE_NOT_FOUND, "Not found"), None
        if parts[1] != self.platform_id:
            return 403, _error_body(GATE_INVALID_PLATFORM_ID, "Invalid platformId"), None
        if parts[3] != self.platform_partner_id:
            return 403, _error_body(GATE_INVALID_PARTNER_ID, "Invalid partnerId"), None
        if len(parts) == 4:
            if method != b"GET":
                return 405, _error_body(GATE_INVALID_GATE, "Method not allowed"), None
            if not self.gates:
                # An assumption: seed 000 lists NO_GATES_FOUND without saying when.
                return 404, _error_body(GATE_NO_GATES_FOUND, "No gates found"), None
            return 200, json.dumps(list(self.gates.values())).encode(), None
        key, value = parts[4], parts[5]
        if key == "id":
            gate = self.gates.get(value)
        elif key == "refid":
            gate = next((g for g in self.gates.values() if g.get("refId") == value), None)
        else:
            return 404, _error_body(GATE_NOT_FOUND, "Not found"), None
        if gate is None:
            return 404, _error_body(GATE_NOT_FOUND, "Gate not found"), None
        if method == b"GET":
            return 200, json.dumps(gate).encode(), None
        if method == b"DELETE" and key == "id":
            del self.gates[value]
            return 204, b"", None
        return 405, _error_body(GATE_INVALID_GATE, "Method not allowed"), None

    def _create_gate(self, body: bytes) -> tuple[int, bytes, str | None]:
        try:
            gate = json.loads(body)
        except (ValueError, RecursionError):
            return 400, _error_body(GATE_INVALID_GATE, "Invalid gate: not JSON"), None
        if not isinstance(gate, dict):
            return 400, _error_body(GATE_INVALID_GATE, "Invalid gate: not an object"), None
        missing = [
            k for k in ("type", "platformId", "platformPartnerId", "destinations") if k not in gate
        ]
        if missing:
            text = f"Missing parameters: {', '.join(missing)}"
            return 400, _error_body(GATE_MISSING_PARAMETERS, text), None
        if gate["platformId"] != self.platform_id:
            return 403, _error_body(GATE_INVALID_PLATFORM_ID, "Invalid platformId"), None
        if gate["platformPartnerId"] != self.platform_partner_id:
            return 403, _error_body(GATE_INVALID_PARTNER_ID, "Invalid partnerId"), None
        reason = _invalid_gate(gate)
        if reason is not None:
            return 400, _error_body(GATE_INVALID_GATE, f"Invalid gate: {reason}"), None
        ref_id = gate.get("refId")
        if ref_id and any(g.get("refId") == ref_id for g in self.gates.values()):
            return 409, _error_body(GATE_DUPLICATE_REF_ID, "Duplicate refId"), None
        gate_id = secrets.token_hex(5)
        stored = {
            "ttl": 172_800_000,
            "acknowledge": False,
            "throttle": None,
            "customParameters": {},
            **gate,
            "id": gate_id,
        }
        self.gates[gate_id] = stored
        scheme = "https" if self._tls is not None else "http"
        location = (
            f"{scheme}://127.0.0.1:{self.port}{GATE_PATH.decode()}/platform/{self.platform_id}"
            f"/partner/{self.platform_partner_id}/id/{gate_id}"
        )
        return 201, b"", location

    # -- delivery reports --------------------------------------------------------

    def _later(self, delay: float, function: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            self._timers.discard(call)
            function(*args)

        call = self.reactor.callLater(delay, run)
        self._timers.add(call)

    def _report_all(self, messages: Iterable[dict[str, Any]]) -> None:
        if self.poster is None:
            return
        for message in messages:
            if message.get("useDeliveryReport") is False:
                continue
            rule = self.result_rules.get(message["destination"], self.default_result_code)
            codes = rule if isinstance(rule, list) else [rule]
            self._report_steps(message, codes, 0)

    def _report_steps(self, message: dict[str, Any], codes: list[int], step: int) -> None:
        """Post the reports for codes[step] (one per part), then the next step."""
        segments = count_segments(message)
        message_id = message["messageId"]
        code = codes[step]
        if segments == 1 and len(codes) == 1:
            # The common case, kept free of per-report closures.
            self._deliver(self._report_body(message, message_id, code, segments), 1, None)
            return
        ids = [message_id] if segments == 1 else [f"{message_id}${n}" for n in range(segments)]
        left = [len(ids)]

        def part_done() -> None:
            left[0] -= 1
            if left[0] == 0 and step + 1 < len(codes):
                self._report_steps(message, codes, step + 1)

        destination = message["destination"]
        for n, report_id in enumerate(ids):
            own = code
            if segments > 1 and step + 1 == len(codes):
                rule = self.result_rules.get(f"{destination}${n}")
                own = rule if isinstance(rule, int) else code
            self._deliver(self._report_body(message, report_id, own, segments), 1, part_done)

    def _report_body(
        self, message: dict[str, Any], report_id: str, code: int, segments: int
    ) -> bytes:
        stamp = self._timestamp()
        report = {
            "refId": message.get("refId"),
            "id": report_id,
            "operator": "fake.operator",
            "sentTimestamp": stamp,
            "timestamp": stamp,
            "resultCode": code,
            "operatorResultCode": str(code),
            "segments": segments,
            "gateCustomParameters": {},
            # Seed 001: what the operator's report carried, then source and destination.
            "customParameters": {
                "received": stamp.replace("T", " ").rstrip("Z"),
                "source": message.get("source"),
                "destination": message.get("destination"),
            },
        }
        return json.dumps(report, separators=(",", ":")).encode()

    def _deliver(self, body: bytes, attempt: int, done: Callable[[], None] | None) -> None:
        assert self.poster is not None
        self.reports_posted += 1
        args = (body, attempt, done)
        self.poster.post(body).addCallbacks(
            self._answered, self._not_answered, callbackArgs=args, errbackArgs=args
        )

    def _answered(
        self, status: int, body: bytes, attempt: int, done: Callable[[], None] | None
    ) -> None:
        if status != 200:
            self._not_answered(None, body, attempt, done)
            return
        self.reports_acknowledged += 1
        if done is not None:
            done()

    def _not_answered(
        self, _: object, body: bytes, attempt: int, done: Callable[[], None] | None
    ) -> None:
        if attempt < self.report_attempts:
            self._later(self.retry_delay, self._deliver, body, attempt + 1, done)
            return
        self.reports_failed += 1
        if done is not None:
            done()

    def _timestamp(self) -> str:
        second = int(self.reactor.seconds())
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return self._stamp

    # -- control ----------------------------------------------------------------

    def control(self, command: dict[str, Any]) -> Deferred[None]:
        """Apply a /_control POST: down, refuse, fail_next, response_delay,
        report_delay, retry_after (the Retry-After of 429 answers), result_rules,
        permanent_errors, default_result_code, keep_messages (true/false),
        clear_messages (forget what was kept), clear_gates (forget every PartnerGate)."""
        if "fail_next" in command:
            spec = command["fail_next"]
            if isinstance(spec, int):
                spec = {"n": spec}
            body = spec.get("body")
            self.fail_next(
                int(spec.get("n", 1)),
                int(spec.get("status", 503)),
                body.encode() if isinstance(body, str) else None,
            )
        for name in ("response_delay", "report_delay"):
            if name in command:
                setattr(self, name, float(command[name]))
        if "retry_after" in command:
            value = command["retry_after"]
            self.retry_after = None if value is None else int(value)
        if "default_result_code" in command:
            self.default_result_code = int(command["default_result_code"])
        if "keep_messages" in command:
            self.keep_messages = bool(command["keep_messages"])
        if command.get("clear_messages"):
            self.accepted.clear()
        if command.get("clear_gates"):
            self.gates.clear()
        if "result_rules" in command:
            self.result_rules = dict(command["result_rules"])
        if "permanent_errors" in command:
            self.permanent_errors = {k: int(v) for k, v in command["permanent_errors"].items()}
        if "down" in command:
            return self.set_down(bool(command["down"]), refuse=bool(command.get("refuse")))
        return succeed(None)


class _FakeResource(Resource):
    isLeaf = True

    def __init__(self, fake: FakeCommon) -> None:
        super().__init__()
        self._fake = fake

    def render_GET(self, request: Any) -> bytes | int:
        if request.path.startswith(GATE_PATH):
            return self._gate(request)
        if request.path == b"/_messages":
            # What tests compare byte for byte: every accepted message, as received.
            request.setHeader(b"Content-Type", b"application/json")
            return json.dumps(self._fake.accepted, ensure_ascii=False).encode()
        if request.path != b"/_control":
            request.setResponseCode(405)
            return b""
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(self._fake.stats()).encode()

    def render_POST(self, request: Any) -> bytes | int:
        fake = self._fake
        body = request.content.read()
        if request.path == b"/_control":
            try:
                command = json.loads(body)
                fake.control(command)
            except (ValueError, TypeError, AttributeError, KeyError) as e:
                request.setResponseCode(400)
                return f"{type(e).__name__}: {e}\n".encode()
            request.setHeader(b"Content-Type", b"application/json")
            return json.dumps(fake.stats()).encode()
        if fake._refusing:
            request.transport.abortConnection()
            return NOT_DONE_YET
        if request.path.startswith(GATE_PATH):
            return self._gate(request, body)
        status, answer = fake.handle(request.path, request.requestHeaders, body)
        if status == 429 and fake.retry_after is not None:
            request.setHeader(b"Retry-After", b"%d" % fake.retry_after)
        if fake.response_delay <= 0:
            return self._answer(request, status, answer)
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def later() -> None:
            if not gone:
                request.write(self._answer(request, status, answer))
                request.finish()

        fake._later(fake.response_delay, later)
        return NOT_DONE_YET

    def render_DELETE(self, request: Any) -> bytes | int:
        if not request.path.startswith(GATE_PATH):
            request.setResponseCode(405)
            return b""
        return self._gate(request)

    def _gate(self, request: Any, body: bytes | None = None) -> bytes | int:
        fake = self._fake
        if fake._refusing:
            request.transport.abortConnection()
            return NOT_DONE_YET
        if body is None:
            body = request.content.read()
        status, answer, location = fake.handle_gate(
            request.method, request.path, request.requestHeaders, body
        )
        if location is not None:
            request.setHeader(b"Location", location.encode())
        return self._answer(request, status, answer)

    @staticmethod
    def _answer(request: Any, status: int, answer: bytes) -> bytes:
        request.setResponseCode(status)
        if answer[:1] in (b"{", b"["):
            request.setHeader(b"Content-Type", b"application/json")
        if status != 204:
            request.setHeader(b"Content-Length", b"%d" % len(answer))
        return answer


def _invalid_message(message: dict[str, Any]) -> str | None:
    """Why seed 001 would refuse this (merged) SendRequest, or None."""
    for name in ("source", "destination"):
        value = message.get(name)
        if not isinstance(value, str) or not value:
            return f"{name} is required"
    for name in ("sourceTON", "destinationTON"):
        if name in message and message[name] not in _TONS:
            return f"invalid {name}"
    dcs = message.get("dcs", "TEXT")
    if dcs not in _DCS:
        return "invalid dcs"
    header = message.get("userDataHeader")
    if header is not None and (not isinstance(header, str) or not _is_hex(header)):
        return "userDataHeader must be hex"
    user_data = message.get("userData")
    if user_data is None or user_data == "":
        if not (dcs == "BINARY" and header):
            return "userData is required"
    elif not isinstance(user_data, str):
        return "userData must be a string"
    elif dcs == "BINARY" and not _is_hex(user_data):
        return "userData must be hex for dcs BINARY"
    ref_id = message.get("refId")
    if ref_id is not None and not isinstance(ref_id, str):
        return "refId must be a string"
    custom = message.get("customParameters")
    if custom is not None and not (
        isinstance(custom, dict) and all(isinstance(v, str) for v in custom.values())
    ):
        return "customParameters must map strings to strings"
    return None


def _invalid_gate(gate: dict[str, Any]) -> str | None:
    """Why seed 000 would refuse this new PartnerGate, or None."""
    if "id" in gate:
        return "a new gate has no id (it is generated)"
    if gate["type"] != "PARTNER_GATE":
        return "type must be PARTNER_GATE"
    if gate.get("gateType", "ONE_ORDERED") not in _GATE_TYPES:
        return f"gateType must be one of {', '.join(sorted(_GATE_TYPES))}"
    for name in ("refId",):
        if name in gate and gate[name] is not None and not isinstance(gate[name], str):
            return f"{name} must be a string"
    destinations = gate["destinations"]
    if not isinstance(destinations, list) or not destinations:
        return "destinations must be a non-empty list"
    for destination in destinations:
        if not isinstance(destination, dict):
            return "a destination must be an object"
        url = destination.get("url")
        if not isinstance(url, str) or not (
            url == "do://drop"
            or (urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname)
        ):
            return f"destination url {url!r} is not an http(s) URL"
        if destination.get("contentType") not in _GATE_CONTENT_TYPES:
            return f"destination contentType {destination.get('contentType')!r} not supported"
        for name in ("username", "password"):
            if name in destination and not isinstance(destination[name], str):
                return f"destination {name} must be a string"
    return None


def _is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and all(c in _HEX for c in text)


def _wants_sms_count(message: dict[str, Any]) -> bool:
    custom = message.get("customParameters")
    return isinstance(custom, dict) and str(custom.get("replySmsCount", "")).lower() == "true"


def _error_body(code: int, description: str) -> bytes:
    return json.dumps(
        {"resultCode": code, "description": description, "translation": None}
    ).encode()


def _flag(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {value!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.fake_common")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--callback", help="URL that receives delivery reports")
    parser.add_argument("--callback-user")
    parser.add_argument("--callback-password")
    parser.add_argument("--callback-connections", type=int, default=4)
    # 1 is how an HTTP client pool such as LINK's posts: one request in flight
    # per connection. The default pipelines, which no real sender does.
    parser.add_argument("--callback-pipeline", type=int, default=32)
    # Share of report requests sent with Connection: close (0-1).
    parser.add_argument("--callback-close", type=float, default=0.0)
    parser.add_argument("--username", default="user")
    parser.add_argument("--password", default=os.environ.get("FAKE_COMMON_PASSWORD", "secret"))
    parser.add_argument("--platform-id", default="0")
    parser.add_argument("--platform-partner-id", default="0")
    parser.add_argument("--report-delay", type=float, default=0.0)
    parser.add_argument("--token-expires-in", type=int, default=3599)
    parser.add_argument(
        "--keep-messages",
        nargs="?",
        const=True,
        default=False,
        type=_flag,
        help="keep every accepted message in memory (only counts are kept by default);"
        " an optional true/false value, so harness options can pass keep_messages=True",
    )
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    fake = FakeCommon(
        reactor,
        username=args.username,
        password=args.password,
        platform_id=args.platform_id,
        platform_partner_id=args.platform_partner_id,
        callback_url=args.callback,
        callback_user=args.callback_user,
        callback_password=args.callback_password,
        callback_connections=args.callback_connections,
        callback_pipeline=args.callback_pipeline,
        callback_close=args.callback_close,
        report_delay=args.report_delay,
        token_expires_in=args.token_expires_in,
        keep_messages=args.keep_messages,
    )
    port = fake.start(args.port)
    print(f"listening on {port}", flush=True)
    reactor.run()  # type: ignore[attr-defined]
    sys.stdout.flush()


if __name__ == "__main__":
    main()
