"""SMPP over TLS: the server side of `[smpp] tls_listen`.

Responsible for: building one OpenSSL context from the configured certificate
chain, private key, minimum version and TLS 1.2 cipher list, checking it at
config time (so `check-config` catches a wrong key or an empty cipher list),
and turning the `[smpp]` listener strings into endpoints, TLS ones wrapped.

The defaults are what LINK itself accepts (seed 000, Appendix 2): TLS 1.2 and
1.3, and for 1.2 only the three ECDHE-RSA AEAD suites LINK still supports. An
ESME that reaches LINK's endpoints today therefore reaches ours with the same
settings. TLS 1.3 suites are OpenSSL's fixed set (all AEAD) and are not
configurable here.

What always holds: a listener in `tls_listen` never accepts plain SMPP (a
client that does not start a handshake is dropped by OpenSSL, and a silent
one by the SMPP bind timeout); TLS below `tls_min_version` is refused in the
handshake; renegotiation and compression are off.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from OpenSSL import SSL
from twisted.internet.endpoints import serverFromString, wrapServerTLS
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.logger import Logger
from zope.interface import implementer

if TYPE_CHECKING:
    from gateway.config import SmppSettings

log = Logger()

TLS_VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}
# Seed 000, Appendix 2: LINK's TLS 1.2 suites (0xc02f, 0xc030, 0xcca8) in
# OpenSSL's names, without those it removed on 2025-10-15 (the DHE and CBC ones).
DEFAULT_CIPHERS = (
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
)
_KEY_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
# Warn at start when the certificate ends this soon: renewing takes a while.
_EXPIRY_WARNING = datetime.timedelta(days=14)
_OPTIONS = (
    SSL.OP_NO_COMPRESSION  # CRIME
    | SSL.OP_NO_RENEGOTIATION  # client-initiated renegotiation is a CPU sink
    | SSL.OP_CIPHER_SERVER_PREFERENCE  # our order (AES-GCM first), not the client's
)


class TlsProblem(ValueError):
    """What is wrong with the TLS settings, and which `[smpp]` key it is about."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@implementer(IOpenSSLServerConnectionCreator)
class ServerTls:
    """One context shared by every TLS listener and connection."""

    def __init__(self, context: SSL.Context, certificate: x509.Certificate) -> None:
        self.context = context
        self.certificate = certificate

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(self.context, None)


def server_tls(
    certificate: str, private_key: str, min_version: str, ciphers: Sequence[str]
) -> ServerTls:
    """The server side of TLS from PEM files, or TlsProblem naming the key at fault."""
    if min_version not in TLS_VERSIONS:
        raise TlsProblem("tls_min_version", f"must be one of {', '.join(TLS_VERSIONS)}")
    chain_pem = _read("tls_certificate", certificate)
    key_pem = _read("tls_private_key", private_key)
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise TlsProblem("tls_certificate", f"{certificate} holds no PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TlsProblem(
            "tls_private_key",
            f"{private_key} is encrypted; give it unencrypted, readable only by the service",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsProblem("tls_private_key", f"{private_key} holds no PEM private key") from None
    if not isinstance(key, _KEY_TYPES):
        raise TlsProblem("tls_private_key", "must be an RSA, EC or EdDSA key")

    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_options(_OPTIONS)
    context.set_min_proto_version(TLS_VERSIONS[min_version])
    try:
        context.set_cipher_list(":".join(ciphers).encode("ascii"))
    except (SSL.Error, UnicodeEncodeError):
        raise TlsProblem("tls_ciphers", "names no cipher OpenSSL knows") from None
    try:
        context.use_certificate(chain[0])
        for extra in chain[1:]:
            context.add_extra_chain_cert(extra)
    except SSL.Error as e:
        raise TlsProblem("tls_certificate", f"{certificate} is not usable: {_ssl_reason(e)}") from e
    try:
        context.use_privatekey(key)
        context.check_privatekey()
    except SSL.Error:
        raise TlsProblem(
            "tls_private_key",
            f"{private_key} is not the key of the first certificate in tls_certificate"
            " (the server's own comes first, then intermediates)",
        ) from None
    # Lets resumed sessions find their context; any fixed value does.
    context.set_session_id(b"smpp-gateway")
    if min_version == "1.2":
        # Last: looking at the suites makes a Connection, which freezes the context.
        _check_tls12_suites(context, key)
    return ServerTls(context, chain[0])


def _read(key: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise TlsProblem(key, f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:  # a NUL in the path
        raise TlsProblem(key, f"cannot read {path!r}: {e}") from None


def _check_tls12_suites(context: SSL.Context, key: object) -> None:
    """TLS 1.2 suites name the key type they sign with; none fitting the key
    would leave only TLS 1.3 clients able to connect, which is a mistake to
    catch at start rather than an ESME's handshake failure to debug later."""
    suites = [
        s for s in SSL.Connection(context, None).get_cipher_list() if not s.startswith("TLS_")
    ]
    if not suites:
        raise TlsProblem(
            "tls_ciphers", 'lists no TLS 1.2 cipher; for TLS 1.3 only set tls_min_version = "1.3"'
        )
    if isinstance(key, rsa.RSAPrivateKey):
        usable = [s for s in suites if "ECDSA" not in s and "PSK" not in s]
        kind = "RSA"
    else:
        usable = [s for s in suites if "ECDSA" in s]
        kind = "EC (ECDSA)"
    if not usable:
        raise TlsProblem(
            "tls_ciphers",
            f"no TLS 1.2 cipher in the list works with an {kind} key, so TLS 1.2 clients "
            'could not connect; add matching ciphers or set tls_min_version = "1.3"',
        )


def _ssl_reason(error: SSL.Error) -> str:
    try:
        return str(error.args[0][0][2])
    except (IndexError, TypeError):
        return str(error)


def check(settings: SmppSettings) -> None:
    """Raise TlsProblem if the TLS listeners could not start."""
    if settings.tls_listen:
        server_tls(
            settings.tls_certificate,
            settings.tls_private_key,
            settings.tls_min_version,
            settings.tls_ciphers,
        )


def smpp_endpoints(reactor: Any, settings: SmppSettings) -> list[Any]:
    """Every SMPP listener: `listen` as given, `tls_listen` wrapped in TLS.

    The endpoints provide IStreamServerEndpoint; typed Any because mypy, without
    zope's plugin, reads an interface's methods as lacking `self`.
    """
    endpoints = [serverFromString(reactor, description) for description in settings.listen]
    if not settings.tls_listen:
        return endpoints
    tls = server_tls(
        settings.tls_certificate,
        settings.tls_private_key,
        settings.tls_min_version,
        settings.tls_ciphers,
    )
    log.info(
        "SMPP over TLS (TLS {version} and later) on {listen}, certificate {subject}",
        version=settings.tls_min_version,
        listen=", ".join(settings.tls_listen),
        subject=tls.certificate.subject.rfc4514_string(),
    )
    expires = tls.certificate.not_valid_after_utc
    if expires - datetime.datetime.now(datetime.UTC) < _EXPIRY_WARNING:
        log.warn(
            "the SMPP TLS certificate {path} expires {when}",
            path=settings.tls_certificate,
            when=expires.isoformat(),
        )
    # zope's @implementer is invisible to mypy.
    creator = cast(IOpenSSLServerConnectionCreator, tls)
    for description in settings.tls_listen:
        endpoints.append(wrapServerTLS(creator, serverFromString(reactor, description), reactor))
    return endpoints


__all__ = [
    "DEFAULT_CIPHERS",
    "TLS_VERSIONS",
    "ServerTls",
    "TlsProblem",
    "check",
    "server_tls",
    "smpp_endpoints",
]
