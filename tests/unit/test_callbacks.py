"""Delivery-report callbacks: every body format a Gate can use, the Report each
report becomes, and the endpoint's answers (401, 413 counted, 400, 200 only once
stored, 503 when storing failed)."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import globalLogPublisher

from gateway.connectors.common.callbacks import CallbackEndpoint
from gateway.connectors.common.mapping import CommonReports
from gateway.connectors.common.payloads import (
    BadCallback,
    DeliveryReport,
    parse_callback_objects,
    parse_delivery_reports,
)
from gateway.connectors.common.results import RESULT_CODES
from gateway.http.parser import HttpError, HttpRequest, RequestParser, Response
from gateway.records import Report
from gateway.store.base import StoreFull
from tests.support.records import DELIVERED

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
# What the Common route makes of it for the intake (CommonReports, gateway/http/site.py).
EXPECTED_REPORT = Report(
    upstream_id="Dcshuhod0PMAAAFQ+/PbnR3x",
    outcome=DELIVERED,  # resultCode 1001
    ref_id="9ui5kKL",
    part=None,
    segments=1,
    code=1001,
    reported_at=1447925820.0,  # the timestamp, read (2015-11-19T09:37:00Z)
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


def test_json_after_a_utf8_byte_order_mark() -> None:
    # Some HTTP clients write a BOM in front of a UTF-8 body; it is not JSON text.
    assert parse(b"\xef\xbb\xbf" + json.dumps(SEED_REPORT).encode()) == [EXPECTED]


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


# -- delivery reports -> Reports ------------------------------------------------


def as_reports(
    body: bytes, content_type: str | None = JSON, reports: CommonReports | None = None
) -> list[Report]:
    """The Reports the Common route hands the intake for one callback body."""
    route = reports if reports is not None else CommonReports()
    return [route.report(r) for r in parse(body, content_type=content_type)]


def test_report_record_in_every_format() -> None:
    fields = {k: str(v) for k, v in SEED_REPORT.items() if not isinstance(v, dict)}
    fields.update({f"customParameters.{k}": v for k, v in SEED_REPORT["customParameters"].items()})
    assert as_reports(json.dumps(SEED_REPORT).encode()) == [EXPECTED_REPORT]
    assert as_reports(XML_REPORT, content_type=XML) == [EXPECTED_REPORT]
    assert as_reports(urlencode(fields).encode(), content_type=FORM) == [EXPECTED_REPORT]


def test_report_parts_and_segments() -> None:
    first = dict(SEED_REPORT, id="abc123$0", segments=2)
    second = dict(SEED_REPORT, id="abc123$1", segments=2, resultCode=1006)
    parsed = as_reports(json.dumps([first, second]).encode())
    assert [(r.upstream_id, r.part, r.segments, r.code) for r in parsed] == [
        ("abc123", 0, 2, 1001),
        ("abc123", 1, 2, 1006),
    ]
    assert parsed[1].outcome == RESULT_CODES[1006]
    assert (parsed[1].outcome.stat, parsed[1].outcome.err) == ("UNDELIV", 222)


@pytest.mark.parametrize(
    ("timestamp", "reported_at"),
    [
        ("2015-11-19T09:37:00Z", 1447925820.0),
        ("2015-11-19T10:37:00+01:00", 1447925820.0),
        ("2015-11-19T09:37:00.250Z", 1447925820.25),
        (None, None),
        ("", None),
        ("yesterday", None),  # a report with a bad date is still a report
        ("2015-02-30T09:37:00Z", None),
    ],
)
def test_report_time_is_the_timestamp_read(
    timestamp: str | None, reported_at: float | None
) -> None:
    [parsed] = as_reports(json.dumps(dict(SEED_REPORT, timestamp=timestamp)).encode())
    assert parsed.reported_at == reported_at


def test_report_without_ref_id_or_segments() -> None:
    [parsed] = as_reports(json.dumps({"id": "x", "resultCode": 1001}).encode())
    assert parsed == Report(upstream_id="x", outcome=DELIVERED, code=1001)


def test_report_outcome_follows_the_table_in_force() -> None:
    reports = CommonReports()
    body = json.dumps(dict(SEED_REPORT, resultCode=1006)).encode()
    assert as_reports(body, reports=reports)[0].outcome == RESULT_CODES[1006]
    # A reload gives another table: 1006 now reads as delivered.
    reports.reconfigure({**RESULT_CODES, 1006: DELIVERED})
    assert as_reports(body, reports=reports)[0].outcome == DELIVERED


def test_report_unknown_result_code_is_kept() -> None:
    [parsed] = as_reports(json.dumps(dict(SEED_REPORT, resultCode=987654)).encode())
    assert parsed.code == 987654
    assert parsed.outcome.stat == "UNKNOWN"


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


# -- the endpoint ------------------------------------------------------------------


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


def make_endpoint(recorder: Recorder, **kwargs: Any) -> CallbackEndpoint:
    options: dict[str, Any] = {"username": "link", "password": "s3cret"}
    options.update(kwargs)
    return CallbackEndpoint(recorder.handler, on_outcome=recorder.outcomes.append, **options)


def make_request(
    body: bytes = b"",
    *,
    method: bytes = b"POST",
    content_type: bytes = b"application/json",
    auth: tuple[str, str] | None = ("link", "s3cret"),
    query: bytes = b"",
) -> HttpRequest:
    """A request as the HTTP parser hands it over, built from the bytes LINK sends."""
    lines = [b"%s /callbacks/dlr%s HTTP/1.1" % (method, b"?" + query if query else b"")]
    lines.append(b"Host: gw.example")
    lines.append(b"Content-Type: " + content_type)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode())
        lines.append(b"Authorization: Basic " + token)
    lines.append(b"Content-Length: %d" % len(body))
    parser = RequestParser()
    parser.feed(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    request = parser.next_request()
    assert request is not None
    return request


def answer_now(endpoint: CallbackEndpoint, request: HttpRequest) -> Response:
    """The endpoint's answer, which must be there already."""
    result = endpoint(request)
    if isinstance(result, Deferred):
        answers: list[Response] = []
        result.addCallback(answers.append)
        assert answers, "no answer yet"
        return answers[0]
    return result


BODY = json.dumps(SEED_REPORT).encode()


@pytest.mark.parametrize(
    "auth", [None, ("link", "wrong"), ("other", "s3cret"), ("link", ""), ("", "")]
)
def test_endpoint_401_without_right_credentials(auth: tuple[str, str] | None) -> None:
    recorder = Recorder()
    answer = answer_now(make_endpoint(recorder), make_request(BODY, auth=auth))
    assert answer.status == 401
    assert dict(answer.headers)[b"WWW-Authenticate"] == b'Basic realm="callbacks"'
    assert recorder.calls == [] and recorder.outcomes == ["unauthorized"]


@pytest.mark.parametrize(
    "header", [b"Basic !!!not-base64", b"Bearer abc", b"Basic " + base64.b64encode(b"nocolon")]
)
def test_endpoint_401_for_garbage_authorization(header: bytes) -> None:
    recorder = Recorder()
    request = make_request(BODY, auth=None)
    request.headers[b"authorization"] = header
    assert answer_now(make_endpoint(recorder), request).status == 401


def test_endpoint_without_credentials_configured_takes_anyone() -> None:
    recorder = Recorder()
    endpoint = make_endpoint(recorder, username=None, password=None)
    result = endpoint(make_request(BODY, auth=None))
    assert isinstance(result, Deferred)
    recorder.pending[0].callback(None)
    assert answer_now_from(result).status == 200


def test_endpoint_needs_both_or_no_credentials() -> None:
    with pytest.raises(ValueError):
        CallbackEndpoint(Recorder().handler, username="link", password=None)


def answer_now_from(result: Deferred[Response]) -> Response:
    answers: list[Response] = []
    result.addCallback(answers.append)
    assert answers, "no answer yet"
    return answers[0]


def test_endpoint_413_from_the_server_is_counted() -> None:
    # The HTTP parser refuses the body; the server reports the status to the endpoint.
    recorder = Recorder()
    endpoint = make_endpoint(recorder)
    parser = RequestParser(max_body=1000)
    parser.feed(b"POST /callbacks/dlr HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n")
    with pytest.raises(HttpError) as caught:
        parser.next_request()
    endpoint.on_http_error(caught.value.status)
    endpoint.on_http_error(400)  # not a callback outcome: the request never got here
    assert caught.value.status == 413
    assert recorder.outcomes == ["too_large"] and recorder.calls == []


def test_endpoint_400_with_reason() -> None:
    recorder = Recorder()
    answer = answer_now(make_endpoint(recorder), make_request(b'{"id": "x"}'))
    assert answer.status == 400
    assert b"resultCode" in answer.body
    assert answer.content_type == b"text/plain; charset=utf-8"
    assert recorder.calls == [] and recorder.outcomes == ["bad_request"]


def test_endpoint_200_only_after_handler_fires() -> None:
    recorder = Recorder()
    result = make_endpoint(recorder)(make_request(BODY))
    assert isinstance(result, Deferred)
    assert recorder.calls == [[EXPECTED]]
    answers: list[Response] = []
    result.addCallback(answers.append)
    assert answers == [] and recorder.outcomes == []
    recorder.pending[0].callback(None)
    assert [(a.status, a.body) for a in answers] == [(200, b"OK")]
    assert recorder.outcomes == ["ok"]


@pytest.mark.parametrize("method", [b"GET", b"POST", b"PUT"])
def test_endpoint_query_string_reports(method: bytes) -> None:
    recorder = Recorder()
    request = make_request(method=method, query=b"id=abc%240&resultCode=1001")
    make_endpoint(recorder)(request)
    assert recorder.calls[0][0].id == "abc$0"


def test_endpoint_form_body() -> None:
    recorder = Recorder()
    body = urlencode({"id": "f1", "resultCode": "1001"}).encode()
    make_endpoint(recorder)(make_request(body, content_type=FORM.encode()))
    assert recorder.calls[0][0].id == "f1"


def test_endpoint_other_methods_405() -> None:
    recorder = Recorder()
    answer = answer_now(make_endpoint(recorder), make_request(BODY, method=b"DELETE"))
    assert answer.status == 405 and recorder.outcomes == []


def test_endpoint_503_when_handler_fails() -> None:
    recorder = Recorder()
    result = make_endpoint(recorder)(make_request(BODY))
    assert isinstance(result, Deferred)
    recorder.pending[0].errback(RuntimeError("disk full"))
    assert answer_now_from(result).status == 503
    assert recorder.outcomes == ["error"]


def test_endpoint_503_when_handler_raises() -> None:
    outcomes: list[str] = []

    def broken(reports: list[DeliveryReport]) -> Deferred[None]:
        raise RuntimeError("bug")

    endpoint = CallbackEndpoint(broken, username=None, password=None, on_outcome=outcomes.append)
    answer = answer_now(endpoint, make_request(BODY, auth=None))
    assert answer.status == 503 and outcomes == ["error"]


def test_endpoint_failures_logged_at_most_every_interval() -> None:
    logged: list[dict[str, Any]] = []
    observer = logged.append
    globalLogPublisher.addObserver(observer)
    try:
        endpoint = CallbackEndpoint(
            lambda reports: fail(RuntimeError("x")), username=None, password=None
        )
        for _ in range(5):
            assert answer_now(endpoint, make_request(BODY, auth=None)).status == 503
    finally:
        globalLogPublisher.removeObserver(observer)
    failures = [e for e in logged if "log_failure" in e]
    assert len(failures) == 1


def test_a_full_disk_is_a_warning_without_a_traceback() -> None:
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        endpoint = CallbackEndpoint(
            lambda reports: fail(StoreFull("the disk is full")), username=None, password=None
        )
        assert answer_now(endpoint, make_request(BODY, auth=None)).status == 503
    finally:
        globalLogPublisher.removeObserver(logged.append)
    (event,) = [e for e in logged if "not stored" in e.get("log_format", "")]
    assert "log_failure" not in event and event["log_level"].name == "warn"


def test_endpoint_handler_already_fired() -> None:
    outcomes: list[str] = []
    endpoint = CallbackEndpoint(
        lambda reports: succeed(None), username=None, password=None, on_outcome=outcomes.append
    )
    assert answer_now(endpoint, make_request(BODY, auth=None)).status == 200
    assert outcomes == ["ok"]
