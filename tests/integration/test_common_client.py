"""The real CommonClient against the real FakeCommon over HTTP(S) on 127.0.0.1."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from gateway.connectors.common.client import CommonClient, CommonError, CommonSettings, SendResult
from tests.fakes.fake_common import FakeCommon
from tests.tlspki import ServerTls, make_pem


def message(destination: str = "+4799999999", ref_id: str = "r1", **extra: Any) -> dict[str, Any]:
    return {
        "source": "LINK",
        "destination": destination,
        "userData": "Hello world",
        "platformId": "0",
        "platformPartnerId": "0",
        "refId": ref_id,
        "useDeliveryReport": False,
        **extra,
    }


class ClientTestCase(TestCase):
    timeout = 20

    def make(
        self, auth: str = "basic", password: str = "secret", timeout: float = 5.0, **fake: Any
    ) -> tuple[FakeCommon, CommonClient]:
        common = FakeCommon(reactor, **fake)
        common.start()
        self.addCleanup(common.stop)
        return common, self.client(common.base_url, auth=auth, password=password, timeout=timeout)

    def client(self, base_url: str, **settings: Any) -> CommonClient:
        options: dict[str, Any] = {"username": "user", "password": "secret"}
        options.update(settings)
        client = CommonClient(reactor, CommonSettings(base_url=base_url, **options))
        self.addCleanup(client.close)
        return client

    @inlineCallbacks
    def expect_error(self, d: Deferred[Any]) -> Any:
        try:
            yield d
        except CommonError as e:
            return e
        self.fail("expected CommonError")


class SendTests(ClientTestCase):
    @inlineCallbacks
    def test_send_basic(self) -> Any:
        common, client = self.make()
        result = yield client.send(message())
        self.assertEqual(result.result_code, 1005)
        self.assertEqual(result.description, "Queued")
        self.assertEqual(result.ref_id, "r1")
        self.assertEqual(result.message_id, common.accepted[0]["messageId"])
        self.assertEqual(common.count_ref_id("r1"), 1)
        self.assertEqual(common.accepted[0]["userData"], "Hello world")

    @inlineCallbacks
    def test_send_ignore_response_gives_no_message_id(self) -> Any:
        common, client = self.make()
        result = yield client.send(message(ignoreResponse=True))
        self.assertEqual(result, SendResult("r1", None, None, "accepted (no response body)"))
        self.assertEqual(len(common.accepted), 1)

    @inlineCallbacks
    def test_send_batch_matches_ref_ids(self) -> Any:
        common, client = self.make()
        batch = {
            "platformId": "0",
            "platformPartnerId": "0",
            "useDeliveryReport": False,
            "sendRequestMessages": [
                {
                    "source": "2333",
                    "destination": f"+47999999{i:02d}",
                    "userData": "x",
                    "refId": f"ref{i}",
                }
                for i in range(5)
            ],
        }
        results = yield client.send_batch(batch)
        self.assertEqual([r.ref_id for r in results], [f"ref{i}" for i in range(5)])
        by_ref = {m["refId"]: m["messageId"] for m in common.accepted}
        for r in results:
            self.assertEqual(r.message_id, by_ref[r.ref_id])
            self.assertEqual(r.result_code, 1005)
        self.assertEqual(len(set(by_ref.values())), 5)
        # Envelope fields are merged into each accepted message.
        self.assertEqual(common.accepted[0]["platformId"], "0")

    @inlineCallbacks
    def test_send_batch_with_a_rejected_destination(self) -> Any:
        common, client = self.make()
        common.permanent_errors["+4700000000"] = 2106
        batch = {
            "platformId": "0",
            "platformPartnerId": "0",
            "sendRequestMessages": [
                {"source": "2333", "destination": "+4700000000", "userData": "x", "refId": "bad"},
                {"source": "2333", "destination": "+4711111111", "userData": "x", "refId": "good"},
            ],
        }
        results = yield client.send_batch(batch)
        self.assertEqual(
            [(r.ref_id, r.result_code) for r in results], [("bad", 2106), ("good", 1005)]
        )
        self.assertIsNone(results[0].message_id)

    @inlineCallbacks
    def test_send_batch_ignore_response_explicit(self) -> Any:
        _, client = self.make()
        batch = {
            "platformId": "0",
            "platformPartnerId": "0",
            "ignoreResponse": True,
            "sendRequestMessages": [
                {"source": "2333", "destination": "+4711", "userData": "x", "refId": "a"}
            ],
        }
        results = yield client.send_batch(batch)
        self.assertEqual([(r.ref_id, r.message_id) for r in results], [("a", None)])

    @inlineCallbacks
    def test_batch_over_1000_refused_locally(self) -> Any:
        _, client = self.make()
        batch = {"sendRequestMessages": [message(ref_id=str(i)) for i in range(1001)]}
        error = yield self.expect_error(client.send_batch(batch))
        self.assertFalse(error.temporary)


class AuthTests(ClientTestCase):
    @inlineCallbacks
    def test_basic_wrong_password_is_permanent(self) -> Any:
        _, client = self.make(password="wrong")
        error = yield self.expect_error(client.send(message()))
        self.assertFalse(error.temporary)
        self.assertEqual((error.http_status, error.code), (401, 101100))

    @inlineCallbacks
    def test_oauth2_token_reused(self) -> Any:
        common, client = self.make(auth="oauth2")
        for i in range(3):
            yield client.send(message(ref_id=str(i)))
        self.assertEqual(common.token_requests, 1)
        self.assertEqual(len(common.accepted), 3)

    @inlineCallbacks
    def test_oauth2_one_renewal_for_concurrent_sends(self) -> Any:
        common, client = self.make(auth="oauth2")
        results = yield DeferredList(
            [client.send(message(ref_id=str(i))) for i in range(10)], fireOnOneErrback=True
        )
        self.assertEqual(len(results), 10)
        self.assertEqual(common.token_requests, 1)
        self.assertEqual(client.token_requests, 1)

    @inlineCallbacks
    def test_oauth2_renewed_before_expiry(self) -> Any:
        common, client = self.make(auth="oauth2", token_expires_in=1)
        yield client.send(message(ref_id="a"))
        yield deferLater(reactor, 0.85, lambda: None)
        # Past 80% of the lifetime: the old token still works, a new one is fetched.
        yield client.send(message(ref_id="b"))
        yield deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(common.token_requests, 2)
        yield client.send(message(ref_id="c"))
        self.assertEqual(common.token_requests, 2)

    @inlineCallbacks
    def test_oauth2_renewed_when_expired(self) -> Any:
        common, client = self.make(auth="oauth2", token_expires_in=1)
        yield client.send(message(ref_id="a"))
        yield deferLater(reactor, 1.1, lambda: None)
        yield client.send(message(ref_id="b"))
        self.assertEqual(common.token_requests, 2)
        self.assertEqual(len(common.accepted), 2)

    @inlineCallbacks
    def test_oauth2_401_renews_and_retries_once(self) -> Any:
        common, client = self.make(auth="oauth2")
        yield client.send(message(ref_id="a"))
        common.expire_tokens()
        result = yield client.send(message(ref_id="b"))
        self.assertEqual(result.result_code, 1005)
        self.assertEqual(common.token_requests, 2)
        self.assertEqual(common.count_ref_id("b"), 1)

    @inlineCallbacks
    def test_oauth2_401_after_retry_is_permanent(self) -> Any:
        common, client = self.make(auth="oauth2", accept_oauth2=False)
        error = yield self.expect_error(client.send(message()))
        self.assertFalse(error.temporary)
        self.assertEqual((error.http_status, error.code), (401, 101100))
        self.assertEqual(common.token_requests, 2)

    @inlineCallbacks
    def test_oauth2_bad_client_secret(self) -> Any:
        _, client = self.make(auth="oauth2", password="wrong")
        error = yield self.expect_error(client.send(message()))
        self.assertFalse(error.temporary)
        self.assertEqual((error.http_status, error.code), (401, 101100))


class FailureTests(ClientTestCase):
    @inlineCallbacks
    def test_5xx_is_temporary(self) -> Any:
        common, client = self.make()
        common.fail_next(1, 503)
        error = yield self.expect_error(client.send(message()))
        self.assertTrue(error.temporary)
        self.assertEqual(error.http_status, 503)
        self.assertEqual(common.accepted, [])
        result = yield client.send(message())
        self.assertEqual(result.result_code, 1005)

    @inlineCallbacks
    def test_429_is_temporary(self) -> Any:
        common, client = self.make()
        common.fail_next(1, 429, b"slow down")
        error = yield self.expect_error(client.send(message()))
        self.assertTrue(error.temporary)
        self.assertEqual(error.http_status, 429)

    @inlineCallbacks
    def test_down_is_temporary(self) -> Any:
        common, client = self.make()
        yield common.set_down(True)
        error = yield self.expect_error(client.send(message()))
        self.assertTrue(error.temporary)

    @inlineCallbacks
    def test_timeout_is_temporary(self) -> Any:
        common, client = self.make(timeout=0.3)
        common.response_delay = 2.0
        error = yield self.expect_error(client.send(message()))
        self.assertTrue(error.temporary)
        self.assertIn("no answer within 0.3s", error.description)

    @inlineCallbacks
    def test_400_with_code_is_permanent(self) -> Any:
        _, client = self.make()
        error = yield self.expect_error(client.send(message(platformId="nope")))
        self.assertFalse(error.temporary)
        self.assertEqual((error.http_status, error.code), (400, 106200))
        error = yield self.expect_error(client.send(message(platformPartnerId="nope")))
        self.assertEqual(error.code, 106201)

    @inlineCallbacks
    def test_400_for_a_destination(self) -> Any:
        common, client = self.make()
        common.permanent_errors["+4700000000"] = 2106
        error = yield self.expect_error(client.send(message(destination="+4700000000")))
        self.assertFalse(error.temporary)
        self.assertEqual(error.code, 2106)

    @inlineCallbacks
    def test_400_with_a_body_that_is_not_json(self) -> Any:
        common, client = self.make()
        common.fail_next(1, 400, b"<html>Bad Request</html>")
        error = yield self.expect_error(client.send(message()))
        self.assertFalse(error.temporary)
        self.assertIsNone(error.code)
        self.assertIn("Bad Request", error.description)

    @inlineCallbacks
    def test_403_without_code(self) -> Any:
        common, client = self.make()
        common.fail_next(1, 403, b"")
        error = yield self.expect_error(client.send(message()))
        self.assertEqual((error.temporary, error.code), (False, 101101))

    @inlineCallbacks
    def test_connection_refused_is_temporary(self) -> Any:
        common = FakeCommon(reactor)
        port = common.start()
        yield common.stop()
        client = self.client(f"http://127.0.0.1:{port}")
        error = yield self.expect_error(client.send(message()))
        self.assertTrue(error.temporary)
        self.assertIsNone(error.http_status)

    @inlineCallbacks
    def test_refusing_then_back(self) -> Any:
        common, client = self.make()
        yield client.send(message(ref_id="before"))
        yield common.set_down(True, refuse=True)
        error = yield self.expect_error(client.send(message(ref_id="during")))
        self.assertTrue(error.temporary)
        yield common.set_down(False)
        yield client.send(message(ref_id="after"))
        self.assertEqual([m["refId"] for m in common.accepted], ["before", "after"])

    @inlineCallbacks
    def test_client_owns_and_closes_its_connections(self) -> Any:
        common = FakeCommon(reactor)
        common.start()
        self.addCleanup(common.stop)
        client = CommonClient(
            reactor, CommonSettings(base_url=common.base_url, password="secret", username="user")
        )
        yield client.send(message())
        yield client.close()

    def test_repr_hides_password(self) -> None:
        settings = CommonSettings(base_url="https://x", username="u", password="hunter2")
        self.assertNotIn("hunter2", repr(settings))


def _make_ca_and_server_cert(directory: str) -> tuple[str, ServerTls]:
    """A throwaway CA and a server certificate for DNS name "localhost" only.
    Returns (ca_file, server TLS context factory)."""
    ca_pem, key_pem, cert_pem = make_pem(("localhost",), key="ec")
    ca_file = os.path.join(directory, "ca.pem")
    with open(ca_file, "wb") as f:
        f.write(ca_pem)
    return ca_file, ServerTls(key_pem, cert_pem)


class TLSTests(ClientTestCase):
    def setUp(self) -> None:
        directory = tempfile.mkdtemp()
        self.ca_file, server_tls = _make_ca_and_server_cert(directory)
        self.common = FakeCommon(reactor)
        self.port = self.common.start(tls=server_tls)
        self.addCleanup(self.common.stop)

    @inlineCallbacks
    def test_ca_file_verifies_the_server(self) -> Any:
        client = self.client(f"https://localhost:{self.port}", ca_file=self.ca_file)
        result = yield client.send(message())
        self.assertEqual(result.result_code, 1005)

    @inlineCallbacks
    def test_wrong_hostname_fails(self) -> Any:
        # The certificate names "localhost", not the address.
        client = self.client(f"https://127.0.0.1:{self.port}", ca_file=self.ca_file)
        error = yield self.expect_error(client.send(message()))
        self.assertTrue(error.temporary)
        self.assertIn("127.0.0.1", error.description)
        self.assertEqual(self.common.accepted, [])

    @inlineCallbacks
    def test_unknown_ca_fails(self) -> Any:
        client = self.client(f"https://localhost:{self.port}")
        yield self.expect_error(client.send(message()))
        self.assertEqual(self.common.accepted, [])
