"""FakeCommon posts delivery reports back to a real callback listener (the gateway's
own CallbackEndpoint on its HTTP server), and validates requests the way seed 001
describes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from gateway.connectors.common.callbacks import CallbackEndpoint
from gateway.connectors.common.client import CommonClient, CommonSettings
from gateway.connectors.common.payloads import DeliveryReport
from gateway.http.server import HttpServerFactory
from tests.fakes.fake_common import FakeCommon, count_segments

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def message(destination: str = "+4799999999", ref_id: str = "r1", **extra: Any) -> dict[str, Any]:
    return {
        "source": "LINK",
        "destination": destination,
        "userData": "Hello world",
        "platformId": "0",
        "platformPartnerId": "0",
        "refId": ref_id,
        **extra,
    }


class ReportTests(TestCase):
    timeout = 20

    def setUp(self) -> None:
        self.reports: list[DeliveryReport] = []
        self.fail_stores = 0
        endpoint = CallbackEndpoint(self.store, username="link", password="cb-secret")
        factory = HttpServerFactory(reactor, endpoint, max_body=65536)
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.addCleanup(factory.close_connections)
        callback = f"http://127.0.0.1:{listening.getHost().port}/dlr"
        self.common = FakeCommon(
            reactor,
            callback_url=callback,
            callback_user="link",
            callback_password="cb-secret",
            retry_delay=0.05,
        )
        self.common.start()
        self.addCleanup(self.common.stop)
        self.client = CommonClient(
            reactor,
            CommonSettings(base_url=self.common.base_url, username="user", password="secret"),
        )
        self.addCleanup(self.client.close)

    def store(self, reports: list[DeliveryReport]) -> Deferred[None]:
        if self.fail_stores:
            self.fail_stores -= 1
            return fail(RuntimeError("store unavailable"))
        self.reports.extend(reports)
        return succeed(None)

    @inlineCallbacks
    def wait_for_reports(self, n: int, seconds: float = 5.0) -> Any:
        for _ in range(int(seconds / 0.01)):
            if len(self.reports) >= n:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        # Nothing more should trickle in.
        yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(len(self.reports), n)

    @inlineCallbacks
    def test_single_report(self) -> Any:
        result = yield self.client.send(message())
        yield self.wait_for_reports(1)
        [report] = self.reports
        self.assertEqual(report.id, result.message_id)
        self.assertEqual(report.ref_id, "r1")
        self.assertEqual(report.result_code, 1001)
        self.assertEqual(report.segments, 1)
        self.assertEqual(report.custom_parameters["destination"], "+4799999999")
        self.assertEqual(self.common.reports_acknowledged, 1)

    @inlineCallbacks
    def test_no_report_when_not_asked(self) -> Any:
        yield self.client.send(message(useDeliveryReport=False))
        yield self.wait_for_reports(0, seconds=0.2)

    @inlineCallbacks
    def test_multipart_reports(self) -> Any:
        result = yield self.client.send(message(userData="a" * 200))
        yield self.wait_for_reports(2)
        self.assertEqual(
            sorted(r.id for r in self.reports),
            [f"{result.message_id}$0", f"{result.message_id}$1"],
        )
        self.assertTrue(all(r.segments == 2 and r.ref_id == "r1" for r in self.reports))

    @inlineCallbacks
    def test_multipart_ucs2(self) -> Any:
        yield self.client.send(message(userData="ж" * 140))
        yield self.wait_for_reports(3)

    @inlineCallbacks
    def test_intermediate_then_final(self) -> Any:
        self.common.result_rules["+4712345678"] = [1000, 1001]
        yield self.client.send(message(destination="+4712345678"))
        yield self.wait_for_reports(2)
        self.assertEqual([r.result_code for r in self.reports], [1000, 1001])

    @inlineCallbacks
    def test_failure_code_for_a_destination(self) -> Any:
        self.common.result_rules["+4700000000"] = 2104
        yield self.client.send(message(destination="+4700000000"))
        yield self.wait_for_reports(1)
        self.assertEqual(self.reports[0].result_code, 2104)

    @inlineCallbacks
    def test_retry_on_503(self) -> Any:
        self.fail_stores = 2
        yield self.client.send(message())
        yield self.wait_for_reports(1)
        self.assertEqual(self.common.reports_posted, 3)
        self.assertEqual(self.common.reports_acknowledged, 1)
        self.assertEqual(self.common.reports_failed, 0)
        self.flushLoggedErrors(RuntimeError)

    @inlineCallbacks
    def test_gives_up_after_attempts(self) -> Any:
        self.fail_stores = 100
        self.common.report_attempts = 2
        yield self.client.send(message())
        for _ in range(100):
            if self.common.reports_failed:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual((self.common.reports_posted, self.common.reports_failed), (2, 1))
        self.flushLoggedErrors(RuntimeError)

    @inlineCallbacks
    def test_batch_reports_for_every_message(self) -> Any:
        batch = {
            "platformId": "0",
            "platformPartnerId": "0",
            "sendRequestMessages": [
                {
                    "source": "2333",
                    "destination": f"+4790000{i:03d}",
                    "userData": "x",
                    "refId": f"b{i}",
                }
                for i in range(50)
            ],
        }
        yield self.client.send_batch(batch)
        yield self.wait_for_reports(50)
        self.assertEqual(
            sorted(r.ref_id or "" for r in self.reports), sorted(f"b{i}" for i in range(50))
        )

    @inlineCallbacks
    def test_many_reports_pipelined(self) -> Any:
        batch = {
            "platformId": "0",
            "platformPartnerId": "0",
            "sendRequestMessages": [
                {"source": "2333", "destination": "+4790000000", "userData": "x", "refId": f"p{i}"}
                for i in range(1000)
            ],
        }
        yield self.client.send_batch(batch)
        yield self.wait_for_reports(1000)
        self.assertEqual(len({r.id for r in self.reports}), 1000)

    @inlineCallbacks
    def test_callback_listener_down_then_up(self) -> Any:
        # Reports to a closed port fail and are retried; nothing is lost or duplicated.
        common = FakeCommon(reactor, callback_url="http://127.0.0.1:1/x", retry_delay=0.01)
        common.report_attempts = 2
        common.start()
        self.addCleanup(common.stop)
        client = CommonClient(
            reactor,
            CommonSettings(base_url=common.base_url, username="user", password="secret"),
        )
        self.addCleanup(client.close)
        yield client.send(message())
        for _ in range(200):
            if common.reports_failed:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(common.reports_failed, 1)


class ValidationTests(TestCase):
    timeout = 20

    def setUp(self) -> None:
        self.common = FakeCommon(reactor, platform_id="P1", platform_partner_id="PP1")
        self.common.start()
        self.addCleanup(self.common.stop)
        pool = HTTPConnectionPool(reactor)
        self.addCleanup(pool.closeCachedConnections)
        self.http = treq.client.HTTPClient(treq.api.Agent(reactor, pool=pool))

    @inlineCallbacks
    def post(self, path: str, body: bytes | dict[str, Any] | list[Any], auth: bool = True) -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = yield self.http.post(
            self.common.base_url + path,
            data=data,
            auth=("user", "secret") if auth else None,
            headers={b"Content-Type": [b"application/json"]},
        )
        content = yield treq.content(response)
        return response.code, json.loads(content) if content[:1] in (b"{", b"[") else content

    def ok_message(self, **extra: Any) -> dict[str, Any]:
        return message(platformId="P1", platformPartnerId="PP1", **extra)

    @inlineCallbacks
    def test_seed_minimal_example(self) -> Any:
        status, answer = yield self.post("/sms/send", self.ok_message(useDeliveryReport=False))
        self.assertEqual(status, 200)
        self.assertEqual((answer["resultCode"], answer["description"]), (1005, "Queued"))
        self.assertEqual(len(answer["messageId"]), 24)

    @inlineCallbacks
    def test_errors(self) -> Any:
        cases: list[tuple[bytes | dict[str, Any], int]] = [
            (b"{not json", 106001),
            (message(), 106200),
            (message(platformId="P1"), 106201),
            (self.ok_message(source=None), 106001),
            (self.ok_message(userData=None), 106001),
            (self.ok_message(dcs="KLINGON"), 106001),
            (self.ok_message(dcs="BINARY", userData="zz"), 106001),
        ]
        for body, code in cases:
            status, answer = yield self.post("/sms/send", body)
            self.assertEqual((status, answer["resultCode"]), (400, code), body)
        self.assertEqual(self.common.accepted, [])

    @inlineCallbacks
    def test_binary_with_udh_needs_no_user_data(self) -> Any:
        body = self.ok_message(dcs="BINARY", userData=None, userDataHeader="0605040b8423f0")
        status, _ = yield self.post("/sms/send", body)
        self.assertEqual(status, 200)

    @inlineCallbacks
    def test_unauthorized(self) -> Any:
        status, answer = yield self.post("/sms/send", self.ok_message(), auth=False)
        self.assertEqual((status, answer["resultCode"]), (401, 101100))

    @inlineCallbacks
    def test_batch_limits_and_default_ignore_response(self) -> Any:
        one = {"source": "2333", "destination": "+4711", "userData": "x"}
        envelope = {"platformId": "P1", "platformPartnerId": "PP1"}
        status, _ = yield self.post(
            "/sms/sendbatch", {**envelope, "sendRequestMessages": [one] * 1001}
        )
        self.assertEqual(status, 400)
        # Seed 001: ignoreResponse defaults to true for batches.
        status, _ = yield self.post(
            "/sms/sendbatch", {**envelope, "sendRequestMessages": [one] * 1000}
        )
        self.assertEqual(status, 204)
        self.assertEqual(len(self.common.accepted), 1000)

    @inlineCallbacks
    def test_batch_custom_parameters_override(self) -> Any:
        batch = {
            "platformId": "P1",
            "platformPartnerId": "PP1",
            "ignoreResponse": False,
            "customParameters": {"flash.sms": "true"},
            "sendRequestMessages": [
                {**message(), "customParameters": {"flash.sms": "false", "replySmsCount": "true"}}
            ],
        }
        status, answer = yield self.post("/sms/sendbatch", batch)
        self.assertEqual(status, 200)
        self.assertEqual(answer[0]["smsCount"], 1)
        self.assertEqual(self.common.accepted[0]["customParameters"]["flash.sms"], "true")

    @inlineCallbacks
    def test_token_endpoint(self) -> Any:
        response = yield self.http.post(
            self.common.base_url + "/auth/token",
            data={"grant_type": "client_credentials", "client_id": "user", "client_secret": "bad"},
        )
        self.assertEqual(response.code, 401)
        answer = yield treq.json_content(response)
        self.assertEqual(answer, {"error": "invalid_client"})


def test_count_segments() -> None:
    assert count_segments({"userData": "a" * 160}) == 1
    assert count_segments({"userData": "a" * 161}) == 2
    assert count_segments({"userData": "€" * 80}) == 1
    assert count_segments({"userData": "€" * 81}) == 2
    assert count_segments({"userData": "ж" * 70}) == 1
    assert count_segments({"userData": "ж" * 71}) == 2
    assert count_segments({"userData": "a" * 400, "userDataHeader": "050003010201"}) == 1
    assert count_segments({"userData": "00" * 141, "dcs": "BINARY"}) == 2


def test_runs_as_a_process() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_common", "--port", "0", "--platform-id", "P"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on "), line
        control = f"http://127.0.0.1:{int(line.split()[-1])}/_control"
        with urllib.request.urlopen(control, timeout=5) as response:
            assert json.load(response)["accepted"] == 0
        request = urllib.request.Request(
            control, data=json.dumps({"fail_next": {"n": 2}, "down": False}).encode()
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["down"] is False
    finally:
        process.terminate()
        process.wait(timeout=10)
