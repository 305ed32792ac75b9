"""Certificates for TLS tests: a CA with a server certificate for localhost and a client
certificate, and a second, untrusted CA with a client certificate of its own."""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Key = ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: Key, issuer: tuple[x509.Name, Key] | None = None, *, ca: bool = False
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: Key) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    foreign_client_cert: Path
    """Signed by another CA, which the servers do not trust."""
    foreign_client_key: Path

    def client_context(
        self, *, cert: str | None = "trusted", maximum: ssl.TLSVersion | None = None
    ) -> ssl.SSLContext:
        """A client trusting the CA, presenting the `trusted` or `foreign` client
        certificate (or none), optionally capped at TLS version `maximum`."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert == "trusted":
            context.load_cert_chain(self.client_cert, self.client_key)
        elif cert == "foreign":
            context.load_cert_chain(self.foreign_client_cert, self.foreign_client_key)
        if maximum is not None:
            context.maximum_version = maximum
        return context


def make_pki(directory: Path) -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test CA", ca_key, ca=True)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _certificate("untrusted CA", other_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    client_key = ec.generate_private_key(ec.SECP256R1())
    foreign_key = ec.generate_private_key(ec.SECP256R1())
    return Pki(
        ca=_write_cert(directory / "ca.crt", ca),
        server_cert=_write_cert(
            directory / "server.crt", _certificate("localhost", server_key, (ca.subject, ca_key))
        ),
        server_key=_write_key(directory / "server.key", server_key),
        client_cert=_write_cert(
            directory / "client.crt", _certificate("client", client_key, (ca.subject, ca_key))
        ),
        client_key=_write_key(directory / "client.key", client_key),
        foreign_client_cert=_write_cert(
            directory / "foreign.crt",
            _certificate("intruder", foreign_key, (other.subject, other_key)),
        ),
        foreign_client_key=_write_key(directory / "foreign.key", foreign_key),
    )
