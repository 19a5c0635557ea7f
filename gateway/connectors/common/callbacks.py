"""LINK's callbacks to us: delivery reports posted by a Common Gate (seeds 000, 001).

Responsible for: turning one callback HTTP request, in any format a Gate destination
can use (JSON object or array, XML, x-www-form-urlencoded, or a GET/POST whose
query string carries the fields through a template), into typed
:class:`DeliveryReport` objects, and answering LINK so that it retries exactly what
we did not take.

Parsing is two steps so that MO ``SmsMessage`` callbacks can reuse the first:
:func:`parse_callback_objects` turns the body into plain dicts whatever the format,
then a per-kind converter (:func:`delivery_report_from_object`) checks the fields.

What always holds:

* Parsing untrusted input raises nothing but :class:`BadCallback` (a ValueError
  carrying a human-readable ``reason``).
* XML with a DOCTYPE or entity declaration is refused before it reaches the parser,
  so entity expansion attacks never start.
* :class:`CallbackEndpoint` answers 200 only after the handler's Deferred fired (the
  handler stores the reports durably); a failing handler gets 503 so LINK retries;
  a bad body gets 400 with the reason and the handler is not called.
* Credentials are compared in constant time. A body over the HTTP server's
  ``max_body`` is refused with 413 by its parser before anything here runs.
"""

from __future__ import annotations

import binascii
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import parse_qsl
from xml.etree import ElementTree

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.http.parser import HttpRequest, Response
from gateway.logs import Repeats

log = Logger()
T = TypeVar("T")

# Fields a report may carry as key/value maps (seed 001, "Delivery reports").
_MAP_FIELDS = ("customParameters", "gateCustomParameters")
# Seconds between two logged handler failures: a failing store during a flood of
# callbacks must not also flood the log.
_FAILURE_LOG_INTERVAL = 10.0


class BadCallback(ValueError):
    """A callback body we cannot take; ``reason`` is answered to LINK as text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """One delivery report as seed 001 defines it. ``id`` is Common's messageId,
    with ``$<n>`` appended for part n (from 0) of a message Common split."""

    id: str
    ref_id: str | None
    result_code: int
    operator: str | None
    timestamp: str | None
    sent_timestamp: str | None
    operator_result_code: str | None
    segments: int | None
    custom_parameters: Mapping[str, str]
    gate_custom_parameters: Mapping[str, str] = field(default_factory=dict)


# -- step 1: any body -> plain objects -------------------------------------------


def parse_callback_objects(
    method: bytes,
    content_type: str | None,
    body: bytes,
    query: Mapping[bytes, Sequence[bytes]],
) -> list[dict[str, object]]:
    """The objects a callback carries, as dicts of field name -> value.

    Values are whatever the format gives: JSON types for JSON, str (or None for
    an empty XML element) for XML and forms; nested maps are dicts. A body wins over
    the query string; a request without a body uses the query string.
    """
    if not body.strip():
        if not query:
            raise BadCallback("empty callback: no body and no query parameters")
        return [_pairs_to_object(_query_pairs(query))]
    kind = _body_kind(content_type, body)
    if kind == "json":
        return _json_objects(body)
    if kind == "xml":
        return _xml_objects(body)
    return [_pairs_to_object(_form_pairs(body))]


def _body_kind(content_type: str | None, body: bytes) -> str:
    if content_type:
        mime = content_type.partition(";")[0].strip().lower()
        if mime == "application/json" or mime.endswith("+json"):
            return "json"
        if mime in ("application/xml", "text/xml") or mime.endswith("+xml"):
            return "xml"
        if mime == "application/x-www-form-urlencoded":
            return "form"
    # No or an unhelpful content type: the first significant byte tells.
    first = body.lstrip()[:1]
    if first in (b"{", b"["):
        return "json"
    if first == b"<":
        return "xml"
    return "form"


def _json_objects(body: bytes) -> list[dict[str, object]]:
    try:
        # LINK sends UTF-8 (seed 001, "Character Encoding"); decoding first skips
        # json's sniffing of UTF-16/32, which costs more than it should per report.
        value = json.loads(body.decode("utf-8-sig"))
    except (ValueError, RecursionError) as e:
        # UnicodeDecodeError is a ValueError; RecursionError comes from deep nesting.
        raise BadCallback(f"body is not valid JSON: {_short(e)}") from None
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        if not value:
            raise BadCallback("empty JSON array")
        for item in value:
            if not isinstance(item, dict):
                raise BadCallback("JSON array items must be objects")
        return value
    raise BadCallback("JSON body must be an object or an array of objects")


def _xml_objects(body: bytes) -> list[dict[str, object]]:
    upper = body.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise BadCallback("XML with DOCTYPE or ENTITY declarations is not accepted")
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, ValueError, RecursionError) as e:
        raise BadCallback(f"body is not well-formed XML: {_short(e)}") from None
    children = list(root)
    if not children:
        raise BadCallback("XML root element has no fields")
    if all(len(child) for child in children):
        # Every child is itself a structure: a list of objects.
        return [_xml_object(child) for child in children]
    return [_xml_object(root)]


def _xml_object(element: ElementTree.Element) -> dict[str, object]:
    result: dict[str, object] = {}
    for child in element:
        name = _local_name(child.tag)
        result[name] = _xml_map(child) if len(child) else _xml_text(child)
    return result


def _xml_map(element: ElementTree.Element) -> dict[str, object]:
    """A nested map: either <k>v</k> children, or JAXB-style
    <entry><key>k</key><value>v</value></entry> children."""
    result: dict[str, object] = {}
    for child in element:
        name = _local_name(child.tag)
        if name == "entry" and len(child):
            key = child.find("key")
            value = child.find("value")
            if key is None or key.text is None:
                raise BadCallback(f"<entry> without <key> in <{_local_name(element.tag)}>")
            result[key.text] = None if value is None else _xml_text(value)
        elif len(child):
            raise BadCallback(f"<{_local_name(element.tag)}> is nested too deeply")
        else:
            result[name] = _xml_text(child)
    return result


def _xml_text(element: ElementTree.Element) -> str | None:
    text = element.text
    if text is None:
        return None
    text = text.strip()
    return text


def _local_name(tag: object) -> str:
    if not isinstance(tag, str):
        raise BadCallback("XML comments or processing instructions are not fields")
    return tag.rpartition("}")[2]


def _form_pairs(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadCallback("form body is not UTF-8") from None
    try:
        return parse_qsl(text, keep_blank_values=True, max_num_fields=1000)
    except ValueError as e:
        raise BadCallback(f"bad form body: {_short(e)}") from None


def _query_pairs(query: Mapping[bytes, Sequence[bytes]]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    try:
        for key, values in query.items():
            name = key.decode("utf-8")
            for value in values:
                pairs.append((name, value.decode("utf-8")))
    except UnicodeDecodeError:
        raise BadCallback("query string is not UTF-8") from None
    return pairs


def _pairs_to_object(pairs: list[tuple[str, str]]) -> dict[str, object]:
    """Flat key/value pairs to an object. ``customParameters.k=v`` and
    ``customParameters[k]=v`` become nested maps; a repeated key keeps its last value."""
    result: dict[str, object] = {}
    for key, value in pairs:
        if "." in key or "[" in key:
            outer, nested = _split_nested(key)
            if nested is not None:
                inner = result.get(outer)
                if not isinstance(inner, dict):
                    inner = {}
                    result[outer] = inner
                inner[nested] = value
                continue
        result[key] = value
    if not result:
        raise BadCallback("no fields in the callback")
    return result


def _split_nested(key: str) -> tuple[str, str | None]:
    bracket = key.find("[")
    if bracket > 0 and key.endswith("]"):
        return key[:bracket], key[bracket + 1 : -1]
    outer, dot, inner = key.partition(".")
    if dot and outer and inner:
        return outer, inner
    return key, None


# -- step 2: object -> delivery report --------------------------------------------


def delivery_report_from_object(obj: Mapping[str, object]) -> DeliveryReport:
    """Check and convert one object into a DeliveryReport (seed 001 field names).

    Written for the hot path: the common case (JSON with the types seed 001 gives)
    takes only ``type() is`` checks; anything else goes through the slow helpers.
    """
    get = obj.get
    report_id = get("id")
    if type(report_id) is not str:
        if type(report_id) is int:
            report_id = str(report_id)
        else:
            raise BadCallback("missing or empty 'id'")
    if not report_id:
        raise BadCallback("missing or empty 'id'")
    result_code = get("resultCode")
    if type(result_code) is not int:
        if result_code is None:
            raise BadCallback(
                "missing 'resultCode'"
                if "resultCode" not in obj
                else "'resultCode' must be an integer"
            )
        result_code = _integer(result_code, "resultCode")
        if result_code is None:
            raise BadCallback("'resultCode' must be an integer")
    segments = get("segments")
    if segments is not None and type(segments) is not int:
        segments = _integer(segments, "segments")
    custom = _string_map(get("customParameters"), "customParameters")
    # Template GETs (seed 000) put source and destination at the top level, where
    # JSON reports carry them in customParameters (seed 001).
    for name in ("source", "destination"):
        value = get(name)
        if type(value) is str and name not in custom:
            custom[name] = value
    timestamp = _optional_text(get("timestamp"), "timestamp")
    return DeliveryReport(
        report_id,
        _optional_text(get("refId"), "refId"),
        result_code,
        _optional_text(get("operator"), "operator"),
        timestamp,
        _optional_text(get("sentTimestamp"), "sentTimestamp"),
        _optional_text(get("operatorResultCode"), "operatorResultCode"),
        segments,
        custom,
        _string_map(get("gateCustomParameters"), "gateCustomParameters"),
    )


def parse_delivery_reports(
    method: bytes,
    content_type: str | None,
    body: bytes,
    query: Mapping[bytes, Sequence[bytes]],
) -> list[DeliveryReport]:
    """All delivery reports in one callback request, or BadCallback."""
    return [
        delivery_report_from_object(obj)
        for obj in parse_callback_objects(method, content_type, body, query)
    ]


def _integer(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        digits = text[1:] if text[0] in "+-" else text
        if digits.isascii() and digits.isdigit() and len(digits) <= 18:
            return int(text)
    raise BadCallback(f"'{name}' must be an integer")


def _optional_text(value: object, name: str) -> str | None:
    if type(value) is str:
        return value or None
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise BadCallback(f"'{name}' must be a string")


def _string_map(value: object, name: str) -> dict[str, str]:
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        result: dict[str, str] = {}
        for key, item in value.items():
            if type(item) is str:
                result[key] = item
            elif item is None:
                continue
            elif isinstance(item, int | float | bool):
                result[str(key)] = json.dumps(item)
            else:
                raise BadCallback(f"'{name}' values must be strings")
        return result
    if isinstance(value, list):
        # A list of {"key": k, "value": v} pairs, as some serialisers write a map.
        pairs: dict[str, str] = {}
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                raise BadCallback(f"'{name}' must be a map of strings")
            item_value = item.get("value")
            if item_value is not None:
                pairs[item["key"]] = str(item_value)
        return pairs
    raise BadCallback(f"'{name}' must be a map of strings")


def _short(error: BaseException) -> str:
    return str(error)[:120]


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
        if suppressed is not None:
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


__all__ = [
    "BadCallback",
    "CallbackEndpoint",
    "DeliveryReport",
    "delivery_report_from_object",
    "parse_callback_objects",
    "parse_delivery_reports",
]
