"""Delivery-report callbacks: every body format a Gate can use, and the resource's
answers (401, 413, 400, 200 only once stored, 503 when storing failed)."""

from __future__ import annotations

import base64
import contextlib
import json
from io import BytesIO
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail, succeed
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from gateway.common.callbacks import (
    BadCallback,
    CallbackResource,
    DeliveryReport,
    parse_callback_objects,
    parse_delivery_reports,
)

# Shaped exactly like seed 001's "Delivery Report Example".
SEED_REPORT: dict[str, Any] = {
    "refId": "9ui5kKL",
    "id": "Dcshuhod0PMAAAFQ+/PbnR3x",
    "operator": "no.telenor",
    "sentTimestamp": "2015-11-19T09:37:35Z",
    "timestamp": "2015-11-19T09:37:00Z",
    "resultCode": 1001,
    "operatorResultCode": "2",
    "segments": 1,
    "gateCustomParameters": {},
    "customParameters": {
        "received": "2015-11-19 10:37:36",
        "source": "2333",
        "destination": "+4746910822",
    },
}

EXPECTED = DeliveryReport(
    id="Dcshuhod0PMAAAFQ+/PbnR3x",
    ref_id="9ui5kKL",
    result_code=1001,
    operator="no.telenor",
    timestamp="2015-11-19T09:37:00Z",
    sent_timestamp="2015-11-19T09:37:35Z",
    operator_result_code="2",
    segments=1,
    custom_parameters={
        "received": "2015-11-19 10:37:36",
        "source": "2333",
        "destination": "+4746910822",
    },
    gate_custom_parameters={},
)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
XML = "application/xml"


def parse(
    body: bytes, content_type: str | None = JSON, method: bytes = b"POST"
) -> list[DeliveryReport]:
    return parse_delivery_reports(method, content_type, body, {})


# -- formats -----------------------------------------------------------------------


def test_json_object_as_in_seed() -> None:
    assert parse(json.dumps(SEED_REPORT).encode()) == [EXPECTED]


def test_json_failed_report_with_nulls() -> None:
    report = dict(SEED_REPORT, operator=None, operatorResultCode=None, resultCode=2106)
    [parsed] = parse(json.dumps(report).encode())
    assert parsed.result_code == 2106
    assert parsed.operator is None and parsed.operator_result_code is None


def test_json_array_of_reports() -> None:
    second = dict(SEED_REPORT, id="abc123$1", segments=2)
    first = dict(SEED_REPORT, id="abc123$0", segments=2)
    parsed = parse(json.dumps([first, second]).encode())
    assert [r.id for r in parsed] == ["abc123$0", "abc123$1"]
    assert all(r.segments == 2 for r in parsed)


def test_json_without_content_type_is_sniffed() -> None:
    assert parse(json.dumps(SEED_REPORT).encode(), content_type=None) == [EXPECTED]


def test_json_charset_parameter() -> None:
    body = json.dumps(SEED_REPORT).encode()
    assert parse(body, content_type="application/json; charset=UTF-8") == [EXPECTED]


def test_null_ref_id() -> None:
    [parsed] = parse(json.dumps(dict(SEED_REPORT, refId=None)).encode())
    assert parsed.ref_id is None


XML_REPORT = b"""<?xml version="1.0" encoding="UTF-8"?>
<deliveryReport>
  <refId>9ui5kKL</refId>
  <id>Dcshuhod0PMAAAFQ+/PbnR3x</id>
  <operator>no.telenor</operator>
  <sentTimestamp>2015-11-19T09:37:35Z</sentTimestamp>
  <timestamp>2015-11-19T09:37:00Z</timestamp>
  <resultCode>1001</resultCode>
  <operatorResultCode>2</operatorResultCode>
  <segments>1</segments>
  <gateCustomParameters/>
  <customParameters>
    <received>2015-11-19 10:37:36</received>
    <source>2333</source>
    <destination>+4746910822</destination>
  </customParameters>
</deliveryReport>"""


def test_xml_report() -> None:
    assert parse(XML_REPORT, content_type=XML) == [EXPECTED]


def test_xml_sniffed_and_text_xml() -> None:
    assert parse(XML_REPORT, content_type=None) == [EXPECTED]
    assert parse(XML_REPORT, content_type="text/xml") == [EXPECTED]


def test_xml_list_of_reports_and_entry_maps() -> None:
    body = b"""<deliveryReports>
      <deliveryReport><id>a$0</id><resultCode>1001</resultCode><segments>2</segments>
        <customParameters><entry><key>source</key><value>2333</value></entry></customParameters>
      </deliveryReport>
      <deliveryReport><id>a$1</id><resultCode>1006</resultCode><segments>2</segments>
        <customParameters><entry><key>source</key><value>2333</value></entry></customParameters>
      </deliveryReport>
    </deliveryReports>"""
    parsed = parse(body, content_type=XML)
    assert [(r.id, r.result_code) for r in parsed] == [("a$0", 1001), ("a$1", 1006)]
    assert parsed[0].custom_parameters == {"source": "2333"}


def test_xml_namespaces_are_ignored() -> None:
    body = b'<r xmlns="urn:x"><id>x</id><resultCode>1001</resultCode></r>'
    [parsed] = parse(body, content_type=XML)
    assert parsed.id == "x"


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE r [<!ENTITY a "aaaa">]><r><id>&a;</id><resultCode>1</resultCode></r>',
        b'<!doctype r SYSTEM "file:///etc/passwd"><r/>',
        b'<r><!ENTITY a "x"><id>x</id></r>',
    ],
)
def test_xml_doctype_and_entities_refused(body: bytes) -> None:
    with pytest.raises(BadCallback, match="DOCTYPE"):
        parse(body, content_type=XML)


def test_form_body() -> None:
    fields = {
        "refId": "9ui5kKL",
        "id": "Dcshuhod0PMAAAFQ+/PbnR3x",
        "operator": "no.telenor",
        "sentTimestamp": "2015-11-19T09:37:35Z",
        "timestamp": "2015-11-19T09:37:00Z",
        "resultCode": "1001",
        "operatorResultCode": "2",
        "segments": "1",
        "customParameters.received": "2015-11-19 10:37:36",
        "customParameters[source]": "2333",
        "customParameters.destination": "+4746910822",
    }
    assert parse(urlencode(fields).encode(), content_type=FORM) == [EXPECTED]


def test_get_query_from_a_gate_template() -> None:
    # Seed 000 template "id=${id}&resultCode=${resultCode}" plus source/destination.
    query = {
        b"id": [b"MyIde123456"],
        b"resultCode": [b"1001"],
        b"destination": [b"+46123456789"],
        b"source": [b"2333"],
    }
    [parsed] = parse_delivery_reports(b"GET", None, b"", query)
    assert parsed.id == "MyIde123456"
    assert parsed.result_code == 1001
    assert parsed.ref_id is None and parsed.segments is None
    assert parsed.custom_parameters == {"destination": "+46123456789", "source": "2333"}


def test_post_without_body_uses_query() -> None:
    query = {b"id": [b"x"], b"resultCode": [b"1002"]}
    [parsed] = parse_delivery_reports(b"POST", FORM, b"", query)
    assert parsed.result_code == 1002


def test_generic_objects_keep_unknown_fields_for_other_kinds() -> None:
    # The same first step serves MO SmsMessage callbacks (seed 000).
    body = json.dumps({"messageId": "m1", "source": "+4799", "userData": "hi"}).encode()
    assert parse_callback_objects(b"POST", JSON, body, {}) == [
        {"messageId": "m1", "source": "+4799", "userData": "hi"}
    ]


# -- bad bodies --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"", JSON, "empty"),
        (b"{", JSON, "not valid JSON"),
        (b"[]", JSON, "empty JSON array"),
        (b"[1]", JSON, "objects"),
        (b"42", JSON, "object or an array"),
        (b'{"resultCode": 1001}', JSON, "'id'"),
        (b'{"id": "x"}', JSON, "resultCode"),
        (b'{"id": "x", "resultCode": "delivered"}', JSON, "integer"),
        (b'{"id": "x", "resultCode": 1001.5}', JSON, "integer"),
        (b'{"id": "x", "resultCode": true}', JSON, "integer"),
        (b'{"id": "x", "resultCode": null}', JSON, "integer"),
        (b'{"id": "", "resultCode": 1}', JSON, "'id'"),
        (b'{"id": ["x"], "resultCode": 1}', JSON, "'id'"),
        (b'{"id": "x", "resultCode": 1, "segments": "two"}', JSON, "segments"),
        (b'{"id": "x", "resultCode": 1, "operator": {}}', JSON, "operator"),
        (b'{"id": "x", "resultCode": 1, "customParameters": 3}', JSON, "customParameters"),
        (b'{"id": "x", "resultCode": 1, "customParameters": {"a": []}}', JSON, "customParameters"),
        (b"<r><id>x</id>", XML, "well-formed"),
        (b"<r/>", XML, "no fields"),
        (b"id=x&resultCode=", FORM, "integer"),
        (b"id=x", FORM, "resultCode"),
        (b"\xff\xfe=1", FORM, "UTF-8"),
        (b"[" * 100000, JSON, "not valid JSON"),
    ],
)
def test_bad_bodies(body: bytes, content_type: str, reason: str) -> None:
    with pytest.raises(BadCallback) as caught:
        parse(body, content_type=content_type)
    assert reason in caught.value.reason


def test_empty_get_is_bad() -> None:
    with pytest.raises(BadCallback, match="empty"):
        parse_delivery_reports(b"GET", None, b"", {})


# -- nothing but BadCallback escapes -----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
field_names = st.sampled_from(
    ["id", "refId", "resultCode", "segments", "operator", "customParameters", "timestamp"]
)


def _only_bad_callback(body: bytes, content_type: str | None) -> None:
    with contextlib.suppress(BadCallback):
        parse(body, content_type=content_type)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([JSON, XML, FORM, None, "text/plain"]))
def test_random_bytes_only_raise_bad_callback(body: bytes, content_type: str | None) -> None:
    _only_bad_callback(body, content_type)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_only_raises_bad_callback(value: object) -> None:
    _only_bad_callback(json.dumps(value).encode(), JSON)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(field_names, json_values, max_size=7))
def test_random_report_objects_only_raise_bad_callback(value: dict[str, object]) -> None:
    _only_bad_callback(json.dumps(value).encode(), JSON)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(field_names | st.text(max_size=10), st.text(max_size=10)), max_size=8))
def test_random_forms_only_raise_bad_callback(pairs: list[tuple[str, str]]) -> None:
    _only_bad_callback(urlencode(pairs).encode(), FORM)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_xml_text_only_raises_bad_callback(text: str) -> None:
    _only_bad_callback(f"<r>{text}</r>".encode(), XML)


# -- the resource ------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[DeliveryReport]] = []
        self.pending: list[Deferred[None]] = []
        self.outcomes: list[str] = []

    def handler(self, reports: list[DeliveryReport]) -> Deferred[None]:
        self.calls.append(reports)
        d: Deferred[None] = Deferred()
        self.pending.append(d)
        return d


def make_resource(recorder: Recorder, **kwargs: Any) -> CallbackResource:
    options: dict[str, Any] = {"username": "link", "password": "s3cret"}
    options.update(kwargs)
    return CallbackResource(recorder.handler, on_outcome=recorder.outcomes.append, **options)


def make_request(
    body: bytes = b"",
    *,
    method: bytes = b"POST",
    content_type: bytes = b"application/json",
    auth: tuple[str, str] | None = ("link", "s3cret"),
    content_length: bytes | None = None,
) -> DummyRequest:
    request = DummyRequest([b""])
    request.method = method
    request.content = BytesIO(body)
    request.requestHeaders.setRawHeaders(b"content-type", [content_type])
    if content_length is not None:
        request.requestHeaders.setRawHeaders(b"content-length", [content_length])
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode())
        request.requestHeaders.setRawHeaders(b"authorization", [b"Basic " + token])
    return request


def render(resource: CallbackResource, request: DummyRequest) -> bytes | None:
    """What the resource answered synchronously, or None when it answers later."""
    result = resource.render(request)
    if result is NOT_DONE_YET:
        return None
    assert isinstance(result, bytes)
    return result


BODY = json.dumps(SEED_REPORT).encode()


@pytest.mark.parametrize(
    "auth", [None, ("link", "wrong"), ("other", "s3cret"), ("link", ""), ("", "")]
)
def test_resource_401_without_right_credentials(auth: tuple[str, str] | None) -> None:
    recorder = Recorder()
    request = make_request(BODY, auth=auth)
    assert render(make_resource(recorder), request) is not None
    assert request.responseCode == 401
    assert request.responseHeaders.getRawHeaders(b"www-authenticate")
    assert recorder.calls == [] and recorder.outcomes == ["unauthorized"]


def test_resource_401_for_garbage_authorization() -> None:
    recorder = Recorder()
    request = make_request(BODY, auth=None)
    request.requestHeaders.setRawHeaders(b"authorization", [b"Basic !!!not-base64"])
    render(make_resource(recorder), request)
    assert request.responseCode == 401


def test_resource_without_credentials_configured_takes_anyone() -> None:
    recorder = Recorder()
    request = make_request(BODY, auth=None)
    resource = make_resource(recorder, username=None, password=None)
    assert render(resource, request) is None
    recorder.pending[0].callback(None)
    assert request.finished and request.responseCode in (None, 200)


def test_resource_413_by_content_length() -> None:
    recorder = Recorder()
    request = make_request(BODY, content_length=b"100000")
    render(make_resource(recorder, max_body=1000), request)
    assert request.responseCode == 413
    assert recorder.outcomes == ["too_large"]


def test_resource_413_by_real_length() -> None:
    recorder = Recorder()
    request = make_request(b"{" + b" " * 2000 + b"}")
    render(make_resource(recorder, max_body=1000), request)
    assert request.responseCode == 413


def test_resource_400_with_reason() -> None:
    recorder = Recorder()
    request = make_request(b'{"id": "x"}')
    answer = render(make_resource(recorder), request)
    assert request.responseCode == 400
    assert answer is not None and b"resultCode" in answer
    assert request.responseHeaders.getRawHeaders(b"content-type") == [b"text/plain; charset=utf-8"]
    assert recorder.calls == [] and recorder.outcomes == ["bad_request"]


def test_resource_200_only_after_handler_fires() -> None:
    recorder = Recorder()
    request = make_request(BODY)
    assert render(make_resource(recorder), request) is None
    assert recorder.calls == [[EXPECTED]]
    assert not request.finished
    recorder.pending[0].callback(None)
    assert request.finished
    assert request.responseCode in (None, 200)
    assert b"".join(request.written) == b"OK"
    assert recorder.outcomes == ["ok"]


def test_resource_get_with_query() -> None:
    recorder = Recorder()
    request = make_request(method=b"GET")
    request.args = {b"id": [b"abc$0"], b"resultCode": [b"1001"]}
    assert render(make_resource(recorder), request) is None
    assert recorder.calls[0][0].id == "abc$0"


def test_resource_503_when_handler_fails() -> None:
    recorder = Recorder()
    request = make_request(BODY)
    render(make_resource(recorder), request)
    recorder.pending[0].errback(RuntimeError("disk full"))
    assert request.finished and request.responseCode == 503
    assert recorder.outcomes == ["error"]


def test_resource_503_when_handler_raises() -> None:
    outcomes: list[str] = []

    def broken(reports: list[DeliveryReport]) -> Deferred[None]:
        raise RuntimeError("bug")

    resource = CallbackResource(broken, username=None, password=None, on_outcome=outcomes.append)
    request = make_request(BODY, auth=None)
    render(resource, request)
    assert request.responseCode == 503 and outcomes == ["error"]


def test_resource_client_gone_before_stored() -> None:
    recorder = Recorder()
    request = make_request(BODY)
    render(make_resource(recorder), request)
    request.processingFailed(RuntimeError("connection lost"))  # fires notifyFinish
    recorder.pending[0].callback(None)  # must not write to a finished request
    assert recorder.outcomes == ["ok"]


def test_resource_handler_already_fired() -> None:
    outcomes: list[str] = []
    resource = CallbackResource(
        lambda reports: succeed(None), username=None, password=None, on_outcome=outcomes.append
    )
    request = make_request(BODY, auth=None)
    render(resource, request)
    assert request.finished and outcomes == ["ok"]
    failing = CallbackResource(
        lambda reports: fail(RuntimeError("x")), username=None, password=None
    )
    request = make_request(BODY, auth=None)
    render(failing, request)
    assert request.responseCode == 503
