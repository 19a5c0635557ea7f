"""HTTP client for LINK's Common SMS REST API (``/sms/send``, ``/sms/sendbatch``).

Responsible for: authenticating (HTTP Basic, or OAuth 2.0 client_credentials against
``/auth/token``), posting already-built request dicts as JSON over keep-alive
connections (:class:`gateway.http.client.HttpClient`, at most ``max_connections``),
and turning every possible outcome into either a result or a :class:`CommonError`
that says whether trying again later can help.

What always holds:

* Every Deferred returned by :meth:`CommonClient.send` / :meth:`CommonClient.send_batch`
  fires with results or fails with :class:`CommonError` -- never with a raw
  transport, TLS, timeout or parse exception.
* ``CommonError.temporary`` is True exactly when the request may succeed if repeated
  unchanged: connection failures, timeouts (``settings.timeout`` per HTTP exchange),
  HTTP 5xx and 429. Everything else the server refused is permanent.
* A 2xx answer is never turned into an error: a 204 or an unreadable 200 body means
  "accepted, no messageId" (the refId we sent still correlates delivery reports),
  because resending an accepted message would deliver it twice.
* HTTPS always verifies the server's hostname. ``ca_file`` (a PEM bundle) replaces
  the platform's trust roots: only its certificates are trusted.
* Neither the password nor an access token is ever logged.
* With OAuth 2.0 at most one token request is in flight; sends that need a token
  wait for it. A send answered 401 drops the token it used, fetches a new one and is
  retried once.
* :meth:`CommonClient.request` gives other LINK APIs on the same host and account
  (the Gate API) the same authentication, timeout and error guarantees.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.internet import ssl
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.connectors.common.settings import CommonSettings
from gateway.connectors.pace import parse_retry_after
from gateway.http.answers import Answer
from gateway.http.client import Headers, HttpClient, HttpTransportError, Origin

log = Logger()

# What a failed HTTP exchange raises when the network, not our code, is at fault
# (CancelledError: our own timeout cancelled it).
_TRANSPORT_ERRORS = (HttpTransportError, CancelledError)

# Seed 001 "Error Result Codes": what we report when a 401/403 body carries no code.
INVALID_AUTHENTICATION = 101100
ACCESS_DENIED = 101101

# The token is renewed once this fraction of its lifetime has passed, so that a
# send never races the expiry of the token it carries.
_RENEW_FRACTION = 0.8
_DEFAULT_EXPIRES_IN = 3599.0
_MAX_ERROR_TEXT = 200

_JSON_HEADERS: Headers = ((b"Content-Type", b"application/json"), (b"Accept", b"application/json"))
_ACCEPT_JSON: Headers = ((b"Accept", b"application/json"),)
_FORM_HEADERS: Headers = (
    (b"Content-Type", b"application/x-www-form-urlencoded"),
    (b"Accept", b"application/json"),
)
# Characters a path keeps as they are (RFC 3986, section 3.3, and "%" so that a
# segment the caller escaped stays escaped); anything else is percent-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%?"


@dataclass(frozen=True)
class SendResult:
    """Common's answer for one message. ``message_id`` is None for 204 answers."""

    ref_id: str | None
    message_id: str | None
    result_code: int | None
    description: str


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP answer: its status, body, Location header (REST creations) and
    the seconds its Retry-After asks to wait."""

    status: int
    body: bytes
    location: str | None = None
    retry_after: float | None = None


class CommonError(Exception):
    """A request Common did not accept.

    ``temporary`` says whether the same request may succeed later; ``code`` is the
    ErrorResponse result code (seed 001 "Error Result Codes") when there was one.
    """

    def __init__(
        self,
        description: str,
        *,
        temporary: bool,
        http_status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.temporary = temporary
        self.http_status = http_status
        self.code = code
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"CommonError({self.description!r}, temporary={self.temporary}, "
            f"http_status={self.http_status}, code={self.code})"
        )


class Requester(Protocol):
    """What CommonClient sends its requests through: :class:`HttpClient` in
    production, an in-memory stand-in in tests. ``target`` is the request target
    (path and query, percent-encoded); the Deferred fires with the answer or fails
    with HttpTransportError (or CancelledError once cancelled)."""

    def request(
        self, method: bytes, target: bytes, headers: Headers, body: bytes | None
    ) -> Deferred[Answer]: ...


@dataclass(frozen=True, slots=True)
class _Url:
    """A URL under base_url: its text for messages, its request target for the wire."""

    text: str
    target: bytes


class CommonClient:
    """Sends request dicts to Common; see the module docstring for the guarantees."""

    def __init__(
        self, reactor: Any, settings: CommonSettings, *, http: Requester | None = None
    ) -> None:
        """`http` replaces the HTTP client built from `settings` (it then belongs to
        whoever passed it): tests pass one that answers in memory."""
        if settings.auth not in ("basic", "oauth2"):
            raise ValueError(f"auth must be 'basic' or 'oauth2', not {settings.auth!r}")
        self._reactor = reactor
        self._settings = settings
        self._base = settings.base_url.rstrip("/")
        self._prefix = Origin.from_url(self._base).path
        self._owned: HttpClient | None = None
        if http is None:
            trust = _load_trust_root(settings.ca_file) if settings.ca_file is not None else None
            http = self._owned = HttpClient(
                reactor,
                self._base,
                max_connections=settings.max_connections,
                connect_timeout=settings.timeout,
                trust_root=trust,
            )
        self._http = http
        # Built once: every send reuses the same target bytes.
        self._send_url = self._url(settings.send_path)
        self._batch_url = self._url(settings.batch_path)
        self._token_url = self._url(settings.token_path)

        self._basic: bytes | None = None
        if settings.auth == "basic":
            credentials = f"{settings.username}:{settings.password}".encode()
            self._basic = b"Basic " + base64.b64encode(credentials)
        self._token: bytes | None = None
        self._token_renew_at = 0.0
        self._token_expires_at = 0.0
        self._token_waiters: list[Deferred[bytes]] | None = None
        self.token_requests = 0

    # -- public API -------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> Deferred[SendResult]:
        """POST one SendRequest; fires with its result or fails with CommonError."""
        body = json.dumps(message, separators=(",", ":")).encode()
        return Deferred.fromCoroutine(self._send(body, _opt_str(message.get("refId"))))

    def send_batch(self, batch: dict[str, Any]) -> Deferred[list[SendResult]]:
        """POST a batchSendRequest; results come back in request order.

        Seed 001 makes ``ignoreResponse`` default to *true* for batches (unlike single
        sends), which would hide every messageId; unless the caller chose, we ask
        for the response.
        """
        messages = batch.get("sendRequestMessages")
        if not isinstance(messages, list) or not messages:
            return fail(CommonError("batch without sendRequestMessages", temporary=False))
        if len(messages) > 1000:
            return fail(CommonError("batch of more than 1000 messages", temporary=False))
        if "ignoreResponse" not in batch:
            batch = {**batch, "ignoreResponse": False}
        body = json.dumps(batch, separators=(",", ":")).encode()
        return Deferred.fromCoroutine(self._send_batch(body, messages))

    def request(self, method: str, path: str, body: Any = None) -> Deferred[HttpAnswer]:
        """An authorized request to ``base_url + path``, JSON ``body`` if not None.

        Fires with the 2xx answer or fails with CommonError (the ErrorResponse's
        code and description for any other status).
        """
        url = self._url(path)
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        return Deferred.fromCoroutine(self._request(method, url, data))

    def close(self) -> Deferred[None]:
        """Close the connections of the HTTP client this client created (an
        injected one belongs to whoever injected it)."""
        if self._owned is not None:
            return self._owned.close()
        return succeed(None)

    def _url(self, path: str) -> _Url:
        return _Url(self._base + path, quote(self._prefix + path, safe=_PATH_SAFE).encode())

    # -- requests ---------------------------------------------------------------

    async def _send(self, body: bytes, ref_id: str | None) -> SendResult:
        answer = await self._authorized("POST", self._send_url, body)
        return _single_result(answer, ref_id)

    async def _send_batch(self, body: bytes, messages: list[Any]) -> list[SendResult]:
        answer = await self._authorized("POST", self._batch_url, body)
        return _batch_results(answer, messages)

    async def _request(self, method: str, url: _Url, body: bytes | None) -> HttpAnswer:
        answer = await self._authorized(method, url, body)
        if not 200 <= answer.status < 300:
            raise _http_error(answer)
        return answer

    async def _authorized(self, method: str, url: _Url, body: bytes | None) -> HttpAnswer:
        headers = _ACCEPT_JSON if body is None else _JSON_HEADERS
        if self._basic is not None:
            return await self._exchange(url, body, self._basic, headers, method)
        token = await self._bearer()
        answer = await self._exchange(url, body, token, headers, method)
        if answer.status != 401:
            return answer
        if self._token == token:
            self._token = None
        log.info("Common refused the access token; renewing it once")
        token = await self._bearer()
        return await self._exchange(url, body, token, headers, method)

    async def _exchange(
        self,
        url: _Url,
        body: bytes | None,
        authorization: bytes | None,
        headers: Headers = _JSON_HEADERS,
        method: str = "POST",
    ) -> HttpAnswer:
        """One HTTP request and its answer, or CommonError for anything that is not
        an HTTP answer."""
        if authorization is not None:
            headers = (*headers, (b"Authorization", authorization))
        d = Deferred.fromCoroutine(self._round_trip(method.encode(), url, body, headers))
        # One timeout covers waiting for a connection, connecting, sending and
        # reading the whole answer; the flag tells our cancel from any other.
        timed_out: list[bool] = []

        def expire() -> None:
            timed_out.append(True)
            d.cancel()

        timer = self._reactor.callLater(self._settings.timeout, expire)
        try:
            result = await d
        except Exception as e:
            error: Exception = e
        else:
            timer.cancel()
            return result
        if timed_out:
            what = f"no answer within {self._settings.timeout:g}s"
        else:
            timer.cancel()
            if isinstance(error, _TRANSPORT_ERRORS):
                what = _describe(error)
            else:
                log.failure("unexpected error talking to {url}", Failure(error), url=url.text)
                what = _describe(error)
        raise CommonError(f"{url.text}: {what}", temporary=True)

    async def _round_trip(
        self, method: bytes, url: _Url, body: bytes | None, headers: Headers
    ) -> HttpAnswer:
        answer = await self._http.request(method, url.target, headers, body)
        location = answer.headers.get(b"location")
        retry_after = answer.headers.get(b"retry-after")
        return HttpAnswer(
            answer.status,
            answer.body,
            location.decode("latin-1") if location is not None else None,
            parse_retry_after(retry_after, self._reactor.seconds()) if retry_after else None,
        )

    # -- OAuth 2.0 --------------------------------------------------------------

    def _bearer(self) -> Deferred[bytes]:
        """The Authorization value to use now, renewing the token when due."""
        now: float = self._reactor.seconds()
        token = self._token
        if token is not None and now < self._token_expires_at:
            if now >= self._token_renew_at and self._token_waiters is None:
                # Renew in the background: the current token is still good.
                self._renew_token().addErrback(lambda _: None)
            return succeed(token)
        return self._renew_token()

    def _renew_token(self) -> Deferred[bytes]:
        waiter: Deferred[bytes] = Deferred()
        if self._token_waiters is not None:
            self._token_waiters.append(waiter)
            return waiter
        self._token_waiters = [waiter]
        self.token_requests += 1
        Deferred.fromCoroutine(self._fetch_token())
        return waiter

    async def _fetch_token(self) -> None:
        form = urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": self._settings.username,
                "client_secret": self._settings.password,
            }
        ).encode()
        result: bytes | Failure
        try:
            answer = await self._exchange(self._token_url, form, None, _FORM_HEADERS)
            result = self._token_received(answer.status, answer.body)
        except CommonError as e:
            log.warn("could not obtain a Common access token: {error}", error=e.description)
            result = Failure(e)
        waiters, self._token_waiters = self._token_waiters or [], None
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    def _token_received(self, status: int, body: bytes) -> bytes:
        if status != 200:
            raise _token_error(status, body)
        try:
            answer = json.loads(body)
            access_token = answer["access_token"]
            if not isinstance(access_token, str) or not access_token:
                raise ValueError("empty access_token")
            expires_in = float(answer.get("expires_in") or _DEFAULT_EXPIRES_IN)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CommonError(
                f"unreadable token response ({type(e).__name__})", temporary=True, http_status=200
            ) from None
        now: float = self._reactor.seconds()
        token = b"Bearer " + access_token.encode()
        self._token = token
        self._token_renew_at = now + expires_in * _RENEW_FRACTION
        self._token_expires_at = now + expires_in
        log.info("obtained a Common access token valid for {expires_in:g}s", expires_in=expires_in)
        return token


def _single_result(answer: HttpAnswer, ref_id: str | None) -> SendResult:
    status, body = answer.status, answer.body
    if status == 200:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            return _result_from(parsed, ref_id)
        return SendResult(ref_id, None, None, "accepted (unreadable response body)")
    if 200 < status < 300:
        return SendResult(ref_id, None, None, "accepted (no response body)")
    raise _http_error(answer)


def _batch_results(answer: HttpAnswer, messages: list[Any]) -> list[SendResult]:
    status, body = answer.status, answer.body
    if not 200 <= status < 300:
        raise _http_error(answer)
    answers: list[Any] = []
    if status == 200:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, list):
            answers = parsed
    by_ref: dict[str, dict[str, Any]] = {}
    for item in answers:
        if isinstance(item, dict):
            ref = item.get("refId")
            if isinstance(ref, str):
                by_ref[ref] = item
    results: list[SendResult] = []
    for index, message in enumerate(messages):
        ref_id = _opt_str(message.get("refId")) if isinstance(message, dict) else None
        match = by_ref.get(ref_id) if ref_id is not None else None
        if match is None and index < len(answers) and isinstance(answers[index], dict):
            # Without refIds the answer array is taken to be in request order.
            match = answers[index]
        if match is not None:
            results.append(_result_from(match, ref_id))
        else:
            results.append(SendResult(ref_id, None, None, "accepted (no per-message answer)"))
    return results


def _result_from(answer: dict[str, Any], ref_id: str | None) -> SendResult:
    code = answer.get("resultCode")
    description = answer.get("description")
    if description is None:
        # The batch answer in seed 001 calls it "message".
        description = answer.get("message")
    return SendResult(
        ref_id=_opt_str(answer.get("refId")) or ref_id,
        message_id=_opt_str(answer.get("messageId")),
        result_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        description=description if isinstance(description, str) else "",
    )


def _error_body(body: bytes) -> tuple[int | None, str]:
    """(code, description) from an ErrorResponse, tolerating any body at all."""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        answer = None
    if isinstance(answer, dict):
        code: int | None = None
        for key in ("resultCode", "code", "errorCode"):
            value = answer.get(key)
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                code = value
                break
            if isinstance(value, str) and value.strip().isdigit():
                code = int(value)
                break
        for key in ("description", "message", "translation", "error_description", "error"):
            text = answer.get(key)
            if isinstance(text, str) and text:
                return code, text[:_MAX_ERROR_TEXT]
        return code, ""
    return None, body[:_MAX_ERROR_TEXT].decode("utf-8", "replace").strip()


def _http_error(answer: HttpAnswer) -> CommonError:
    status = answer.status
    code, text = _error_body(answer.body)
    if status == 401 and code is None:
        code = INVALID_AUTHENTICATION
    elif status == 403 and code is None:
        code = ACCESS_DENIED
    temporary = status >= 500 or status == 429
    return CommonError(
        f"HTTP {status}" + (f": {text}" if text else ""),
        temporary=temporary,
        http_status=status,
        code=code,
        retry_after=answer.retry_after,
    )


def _token_error(status: int, body: bytes) -> CommonError:
    code, text = _error_body(body)
    temporary = status >= 500 or status == 429
    if not temporary and code is None:
        # The token endpoint answers OAuth errors ("invalid_client", ...), no codes.
        code = INVALID_AUTHENTICATION
    return CommonError(
        f"token request: HTTP {status}" + (f": {text}" if text else ""),
        temporary=temporary,
        http_status=status,
        code=code,
    )


def _opt_str(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _load_trust_root(ca_file: str) -> Any:
    """Every certificate in a PEM bundle, as the only roots trusted."""
    with open(ca_file, "rb") as f:
        bundle = f.read()
    try:
        certificates = x509.load_pem_x509_certificates(bundle)
    except ValueError as e:
        raise ValueError(f"{ca_file}: no PEM certificates ({e})") from None
    return ssl.trustRootFromCertificates(
        [ssl.Certificate.loadPEM(c.public_bytes(serialization.Encoding.PEM)) for c in certificates]
    )


def _describe(error: BaseException) -> str:
    if isinstance(error, HttpTransportError):
        return error.description
    return f"{type(error).__name__}: {error}"


__all__ = [
    "ACCESS_DENIED",
    "INVALID_AUTHENTICATION",
    "CommonClient",
    "CommonError",
    "CommonSettings",
    "HttpAnswer",
    "Requester",
    "SendResult",
]
