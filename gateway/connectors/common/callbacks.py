"""LINK's callbacks to us: the HTTP endpoint a Common Gate posts to (seeds 000, 001).

Responsible for answering LINK so that it retries exactly what we did not take;
reading the bodies is `gateway.connectors.common.payloads`.

What always holds:

* :class:`CallbackEndpoint` answers 200 only after the handler's Deferred fired (the
  handler stores the reports durably); a failing handler gets 503 so LINK retries;
  a bad body gets 400 with the reason and the handler is not called.
* Credentials are compared in constant time. A body over the HTTP server's
  ``max_body`` is refused with 413 by its parser before anything here runs.
"""

from __future__ import annotations

import binascii
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.connectors.common.payloads import BadCallback, parse_delivery_reports
from gateway.http.parser import HttpRequest, Response
from gateway.logs import Repeats
from gateway.store.base import StoreFull

log = Logger()
T = TypeVar("T")

# Seconds between two logged handler failures: a failing store during a flood of
# callbacks must not also flood the log.
_FAILURE_LOG_INTERVAL = 10.0


# -- the HTTP endpoint -------------------------------------------------------------

_ALLOWED = (b"GET", b"POST", b"PUT")
_UNAUTHORIZED = Response(
    401, b"unauthorized\n", headers=((b"WWW-Authenticate", b'Basic realm="callbacks"'),)
)
_NOT_ALLOWED = Response(405, b"method not allowed\n", headers=((b"Allow", b"GET, POST, PUT"),))
_STORED = Response(200, b"OK")
_NOT_STORED = Response(503, b"temporarily unable to store, retry\n")


Parser = Callable[[bytes, "str | None", bytes, Mapping[bytes, Sequence[bytes]]], list[T]]


class CallbackEndpoint(Generic[T]):
    """A callback path of the HTTP server, for a Gate destination that delivers
    reports (or, with another `parse`, MO messages): call it with a request, get
    the answer (now, or as a Deferred).

    ``on_outcome`` is called once per request with "ok", "bad_request",
    "unauthorized", "too_large" or "error". The body limit is the HTTP server's
    (its parser answers 413); pass :meth:`on_http_error` to the server so those
    refusals are counted as "too_large" too.
    """

    def __init__(
        self,
        handler: Callable[[list[T]], Deferred[None]],
        *,
        username: str | None,
        password: str | None,
        on_outcome: Callable[[str], None] = lambda outcome: None,
        parse: Parser[T] = parse_delivery_reports,  # type: ignore[assignment]
        what: str = "delivery reports",
    ) -> None:
        self._handler = handler
        self._parse = parse
        self._what = what
        self.set_credentials(username, password)
        self._on_outcome = on_outcome
        self._failure_log = Repeats(_FAILURE_LOG_INTERVAL)

    def set_credentials(self, username: str | None, password: str | None) -> None:
        """The Basic credentials LINK must send (None, None: no check); a reload may change them."""
        if (username is None) != (password is None):
            raise ValueError("set both username and password, or neither")
        self._username = username.encode() if username is not None else None
        self._password = password.encode() if password is not None else None

    def __call__(self, request: HttpRequest) -> Response | Deferred[Response]:
        # A Gate destination can be switched to GET or PUT (seed 000, "method").
        refusal = self.refuse_head(request)
        if refusal is not None:
            return refusal
        content_type = request.headers.get(b"content-type")
        try:
            items = self._parse(
                request.method,
                content_type.decode("latin-1") if content_type is not None else None,
                request.body,
                request.query_args(),
            )
        except BadCallback as e:
            self._on_outcome("bad_request")
            return Response(400, e.reason.encode() + b"\n")
        try:
            stored = self._handler(items)
        except Exception:
            stored = Deferred()
            stored.errback(Failure())
        # If LINK hangs up before this fires it retries: the handler must accept
        # the same report again. The outcome is counted either way.
        return stored.addCallbacks(self._stored, self._not_stored)

    def refuse_head(self, request: HttpRequest) -> Response | None:
        """The answer to a request whose body is not read yet, when its head alone
        already decides it (wrong method, missing or wrong credentials); else None.
        Counted like the same refusal of a whole request."""
        if request.method not in _ALLOWED:
            return _NOT_ALLOWED
        if self._username is not None and not self._authorized(request):
            self._on_outcome("unauthorized")
            return _UNAUTHORIZED
        return None

    def on_http_error(self, status: int) -> None:
        """The HTTP server refused a request before routing it; 413 is a body over
        the limit, counted like the resource used to count it."""
        if status == 413:
            self._on_outcome("too_large")

    def _stored(self, _: None) -> Response:
        self._on_outcome("ok")
        return _STORED

    def _not_stored(self, failure: Failure) -> Response:
        suppressed = self._failure_log.note("not_stored", time.monotonic())
        if suppressed is not None and failure.check(StoreFull):
            # Expected while the disk is full, and the store says so itself: no traceback.
            log.warn(
                "{what} not stored, the disk is full ({suppressed} more not logged);"
                " answering 503 so that LINK retries",
                what=self._what,
                suppressed=suppressed,
            )
        elif suppressed is not None:
            log.failure(
                "{what} not stored ({suppressed} similar failures not logged); "
                "answering 503 so that LINK retries",
                failure,
                what=self._what,
                suppressed=suppressed,
            )
        self._on_outcome("error")
        return _NOT_STORED

    def _authorized(self, request: HttpRequest) -> bool:
        header = request.headers.get(b"authorization")
        if not header:
            return False
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            decoded = binascii.a2b_base64(encoded.strip())
        except binascii.Error:
            return False
        user, colon, password = decoded.partition(b":")
        assert self._username is not None and self._password is not None
        # Both comparisons always run, so timing tells nothing about which failed.
        user_ok = hmac.compare_digest(user, self._username)
        password_ok = hmac.compare_digest(password, self._password)
        return bool(colon) and user_ok and password_ok


__all__ = ["CallbackEndpoint"]
