"""A throwaway PKI for TLS tests: a CA and a server certificate for 127.0.0.1.

RSA by default because the gateway's default TLS 1.2 suites are ECDHE-RSA (LINK's
list); `key="ec"` makes an ECDSA server key to test what those suites do not fit.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA certificate a client trusts
    certificate: Path  # server certificate followed by the CA (a PEM chain)
    private_key: Path  # unencrypted PKCS#8


def _new_key(kind: str) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pem(
    hostnames: tuple[str, ...] = ("127.0.0.1", "localhost"), *, key: str = "rsa"
) -> tuple[bytes, bytes, bytes]:
    """(CA certificate, server private key, server certificate), PEM, for `hostnames`.

    Names that parse as IP addresses go in as IP SANs, the rest as DNS SANs.
    """
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("smpp-gateway test CA"))
        .issuer_name(_name("smpp-gateway test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = []
    for name in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    server_key = _new_key(key)
    server = (
        x509.CertificateBuilder()
        .subject_name(_name(hostnames[0]))
        .issuer_name(ca.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return (
        ca.public_bytes(pem),
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        server.public_bytes(pem),
    )


def make_pki(directory: Path, *, key: str = "rsa", prefix: str = "smpp") -> Pki:
    ca_pem, key_pem, cert_pem = make_pem(key=key)
    pki = Pki(
        ca=directory / f"{prefix}-ca.pem",
        certificate=directory / f"{prefix}-chain.pem",
        private_key=directory / f"{prefix}-key.pem",
    )
    pki.ca.write_bytes(ca_pem)
    pki.certificate.write_bytes(cert_pem + ca_pem)
    pki.private_key.write_bytes(key_pem)
    pki.private_key.chmod(0o600)
    return pki


@implementer(IOpenSSLContextFactory)
class ServerTls:
    """A server context from PEM (Twisted's PEM helpers hand pyOpenSSL objects
    around, which pyOpenSSL now deprecates)."""

    def __init__(self, key_pem: bytes, cert_pem: bytes) -> None:
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.use_certificate(x509.load_pem_x509_certificate(cert_pem))
        private_key = serialization.load_pem_private_key(key_pem, None)
        assert isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        context.use_privatekey(private_key)
        self._context = context

    def getContext(self) -> SSL.Context:
        return self._context


def encrypted_key(pki: Pki, path: Path) -> Path:
    """The PKI's private key again, encrypted with a passphrase."""
    key = serialization.load_pem_private_key(pki.private_key.read_bytes(), None)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    return path
