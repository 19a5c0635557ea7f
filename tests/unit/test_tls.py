"""gateway.tls and the `[smpp] tls_*` keys: what starts, and what is refused at config time."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from OpenSSL import SSL

from gateway import tls
from gateway.config import ConfigError, SmppSettings, parse
from tests.support.configs import minimal
from tests.tlspki import Pki, encrypted_key, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def ec_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("ecpki"), key="ec")


def with_smpp(**smpp: Any) -> dict[str, Any]:
    return {**minimal(), "smpp": smpp}


def tls_keys(pki: Pki, **extra: Any) -> dict[str, Any]:
    return {
        "tls_listen": ["tcp:3550:interface=127.0.0.1"],
        "tls_certificate": str(pki.certificate),
        "tls_private_key": str(pki.private_key),
        **extra,
    }


def refused(tree: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(tree)
    return info.value


def test_defaults_are_links_tls12_suites_and_no_tls_listener() -> None:
    smpp = SmppSettings()
    assert smpp.tls_listen == ()
    assert smpp.tls_min_version == "1.2"
    # Seed 000, Appendix 2: 0xc02f, 0xc030, 0xcca8 in OpenSSL's names.
    assert smpp.tls_ciphers == (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )


def test_a_tls_listener_with_its_files_parses(pki: Pki) -> None:
    smpp = parse(with_smpp(**tls_keys(pki, tls_min_version="1.3"))).smpp
    assert smpp.tls_listen == ("tcp:3550:interface=127.0.0.1",)
    assert (smpp.tls_certificate, smpp.tls_private_key) == (
        str(pki.certificate),
        str(pki.private_key),
    )
    assert smpp.tls_min_version == "1.3"
    assert smpp.listen == ("tcp:2775",)  # the plain listener stays


def test_tls_only_is_allowed_but_no_listener_at_all_is_not(pki: Pki) -> None:
    assert parse(with_smpp(listen=[], **tls_keys(pki))).smpp.listen == ()
    assert refused(with_smpp(listen=[])).key == "smpp.listen"


@pytest.mark.parametrize("key", ["tls_certificate", "tls_private_key"])
def test_the_pem_files_are_required_and_must_exist(pki: Pki, tmp_path: Path, key: str) -> None:
    keys = tls_keys(pki)
    del keys[key]
    error = refused(with_smpp(**keys))
    assert (error.key, error.problem) == (f"smpp.{key}", "is required with tls_listen (a PEM file)")
    missing = tmp_path / "missing.pem"
    error = refused(with_smpp(**tls_keys(pki, **{key: str(missing)})))
    assert error.key == f"smpp.{key}" and "no such file" in error.problem


def test_files_are_not_needed_without_a_tls_listener() -> None:
    # Loading must not fail on a file nothing will read.
    config = parse(with_smpp(tls_certificate="/nonexistent.pem"))
    assert config.smpp.tls_listen == () and config.smpp.tls_certificate == "/nonexistent.pem"


@pytest.mark.parametrize("version", ["1.1", "1.0", "1", "TLSv1.2", ""])
def test_min_version_is_12_or_13(pki: Pki, version: str) -> None:
    assert refused(with_smpp(**tls_keys(pki, tls_min_version=version))).key == (
        "smpp.tls_min_version"
    )


def test_endpoint_strings_that_already_speak_tls_are_refused(pki: Pki) -> None:
    keys = tls_keys(pki, tls_listen=["ssl:3550:privateKey=k.pem"])
    assert refused(with_smpp(**keys)).key == "smpp.tls_listen"


@pytest.mark.parametrize(
    "ciphers",
    [[], ["NOT-A-CIPHER"], ["TLS_AES_128_GCM_SHA256"], ["ECDHE-ECDSA-AES128-GCM-SHA256"]],
)
def test_cipher_lists_that_leave_no_tls12_suite_for_an_rsa_key(
    pki: Pki, ciphers: list[str]
) -> None:
    assert refused(with_smpp(**tls_keys(pki, tls_ciphers=ciphers))).key == "smpp.tls_ciphers"


def test_an_ec_key_needs_ecdsa_suites_or_tls13_only(ec_pki: Pki) -> None:
    error = refused(with_smpp(**tls_keys(ec_pki)))
    assert error.key == "smpp.tls_ciphers" and "EC (ECDSA)" in error.problem
    parse(with_smpp(**tls_keys(ec_pki, tls_min_version="1.3")))
    parse(with_smpp(**tls_keys(ec_pki, tls_ciphers=["ECDHE-ECDSA-AES128-GCM-SHA256"])))


def test_a_key_that_is_not_the_certificates_is_refused(pki: Pki, ec_pki: Pki) -> None:
    keys = tls_keys(pki, tls_private_key=str(ec_pki.private_key))
    error = refused(with_smpp(**keys))
    assert error.key == "smpp.tls_private_key" and "not the key" in error.problem


def test_an_encrypted_key_is_refused(pki: Pki, tmp_path: Path) -> None:
    path = encrypted_key(pki, tmp_path / "encrypted.pem")
    error = refused(with_smpp(**tls_keys(pki, tls_private_key=str(path))))
    assert error.key == "smpp.tls_private_key" and "encrypted" in error.problem


def test_files_that_are_not_pem_are_refused(pki: Pki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert refused(with_smpp(**tls_keys(pki, tls_certificate=str(junk)))).key == (
        "smpp.tls_certificate"
    )
    assert refused(with_smpp(**tls_keys(pki, tls_private_key=str(junk)))).key == (
        "smpp.tls_private_key"
    )
    # A key where the certificate belongs, and the other way round.
    swapped = tls_keys(pki, tls_certificate=str(pki.private_key))
    assert refused(with_smpp(**swapped)).key == "smpp.tls_certificate"


def _handshake(server: SSL.Connection, client: SSL.Connection) -> None:
    """Both ends in memory, bytes passed by hand until neither wants more."""
    server.set_accept_state()
    client.set_connect_state()
    for _ in range(20):
        for end in (client, server):
            with contextlib.suppress(SSL.WantReadError):
                end.do_handshake()
        moved = False
        for source, sink in ((client, server), (server, client)):
            try:
                sink.bio_write(source.bio_read(65536))
                moved = True
            except SSL.WantReadError:
                pass
        if not moved:
            return


def _client(max_version: int, ciphers: bytes = b"DEFAULT") -> SSL.Connection:
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_max_proto_version(max_version)
    context.set_cipher_list(ciphers)
    return SSL.Connection(context, None)


def test_the_context_takes_tls13_and_links_tls12_suites_only(pki: Pki) -> None:
    server = tls.server_tls(str(pki.certificate), str(pki.private_key), "1.2", tls.DEFAULT_CIPHERS)
    connection = server.serverConnectionForTLS(None)
    suites = [s for s in connection.get_cipher_list() if not s.startswith("TLS_")]
    assert suites == list(tls.DEFAULT_CIPHERS)

    client = _client(SSL.TLS1_3_VERSION)
    _handshake(connection, client)
    assert client.get_protocol_version_name() == "TLSv1.3"
    assert (client.get_cipher_name() or "").startswith("TLS_")

    connection, client = server.serverConnectionForTLS(None), _client(SSL.TLS1_2_VERSION)
    _handshake(connection, client)
    assert client.get_protocol_version_name() == "TLSv1.2"
    assert client.get_cipher_name() == "ECDHE-RSA-AES128-GCM-SHA256"  # ours first

    # A suite LINK dropped on 2025-10-15 (CBC): no handshake.
    connection = server.serverConnectionForTLS(None)
    client = _client(SSL.TLS1_2_VERSION, b"ECDHE-RSA-AES128-SHA256")
    with pytest.raises(SSL.Error):
        _handshake(connection, client)


def test_a_13_floor_refuses_tls12(pki: Pki) -> None:
    server = tls.server_tls(str(pki.certificate), str(pki.private_key), "1.3", tls.DEFAULT_CIPHERS)
    with pytest.raises(SSL.Error):
        _handshake(server.serverConnectionForTLS(None), _client(SSL.TLS1_2_VERSION))


def test_endpoints_wrap_only_the_tls_listeners(pki: Pki) -> None:
    from twisted.internet.task import Clock

    smpp = parse(with_smpp(listen=["tcp:2775"], **tls_keys(pki))).smpp
    plain, wrapped = tls.smpp_endpoints(Clock(), smpp)
    assert type(plain).__name__ == "TCP4ServerEndpoint"
    assert "TLS" in type(wrapped).__name__
