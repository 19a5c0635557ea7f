"""LINK's callback bodies, read: any format a Gate destination can use (seeds 000, 001).

Sans-IO. One callback body (JSON object or array, XML, x-www-form-urlencoded,
or a GET/POST whose query string carries the fields through a template) becomes
plain dicts (:func:`parse_callback_objects`), then typed
:class:`DeliveryReport` objects (:func:`delivery_report_from_object`); MO
``SmsMessage`` bodies reuse the first step (`gateway.connectors.common.mo`).

What always holds:

* Parsing untrusted input raises nothing but :class:`BadCallback` (a ValueError
  carrying a human-readable ``reason``).
* XML with a DOCTYPE or entity declaration is refused before it reaches the parser,
  so entity expansion attacks never start.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import field
from urllib.parse import parse_qsl
from xml.etree import ElementTree

from gateway.records import record

# Fields a report may carry as key/value maps (seed 001, "Delivery reports").
_MAP_FIELDS = ("customParameters", "gateCustomParameters")


class BadCallback(ValueError):
    """A callback body we cannot take; ``reason`` is answered to LINK as text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@record
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
        # A BOM is dropped by hand: the utf-8-sig codec is written in Python.
        text = body.decode("utf-8")
        value = json.loads(text[1:] if text.startswith("\ufeff") else text)
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


__all__ = [
    "BadCallback",
    "DeliveryReport",
    "delivery_report_from_object",
    "parse_callback_objects",
    "parse_delivery_reports",
]
