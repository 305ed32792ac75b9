"""A simulated STS on loopback, over TLS with a CA made for the test run.

`alibabacloud-credentials` lets the STS endpoint of `ram_role_arn` and OIDC be set
(`host:port`) but always speaks https to it, verifying the certificate against the
system's CAs (`SSL_CERT_FILE` included) and certifi's. `TestPki` makes a CA and a
certificate for 127.0.0.1; with `SSL_CERT_FILE` pointing at the CA, the library trusts
`StsServer` as it would trust the real `sts.aliyuncs.com`.

`StsServer` answers AssumeRole (V1-signed with the caller's key, checked here with the
project's own signer) and AssumeRoleWithOIDC (the token must be the expected one), and
issues the credentials it was given.
"""

from __future__ import annotations

import asyncio
import datetime
import hmac
import ipaddress
import json
import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from exporter.cloud.signing import v1_signature


@dataclass(frozen=True)
class TestPki:
    """A CA and a server certificate for 127.0.0.1, as PEM files."""

    __test__ = False  # not a test class, whatever its name

    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def create(cls, directory: Path) -> TestPki:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, "aliyun-vpn-exporter test CA")]
        )
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
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
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        pki = cls(directory / "ca.pem", directory / "sts.pem", directory / "sts-key.pem")
        pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pki.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return pki


@dataclass
class Issued:
    """Credentials the STS hands out."""

    access_key_id: str = "STS.issued-key-id"
    access_key_secret: str = "issued-key-secret"
    security_token: str = "issued-security-token"
    lifetime: datetime.timedelta = datetime.timedelta(hours=1)


@dataclass
class StsServer:
    """AssumeRole and AssumeRoleWithOIDC on 127.0.0.1 over TLS."""

    pki: TestPki
    callers: dict[str, str] = field(default_factory=dict)
    """AccessKeyId → secret of the keys allowed to call AssumeRole."""
    oidc_token: str | None = None
    issued: Issued = field(default_factory=Issued)
    refuse: tuple[int, dict[str, Any]] | None = None
    """(status, body) to answer every request with instead."""
    requests: list[dict[str, str]] = field(default_factory=list)
    _server: asyncio.Server | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> StsServer:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.pki.cert_file, self.pki.key_file)
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=context)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()
            return
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        pairs = parse_qsl(urlsplit(target).query, keep_blank_values=True)
        params = dict(pairs)
        self.requests.append(params)
        status, body = self._answer(method, pairs, params)
        payload = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        writer.close()

    def _answer(
        self, method: str, pairs: list[tuple[str, str]], params: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        request_id = str(uuid.uuid4())
        if self.refuse is not None:
            status, body = self.refuse
            return status, {"RequestId": request_id, **body}
        action = params.get("Action")
        if action == "AssumeRole":
            secret = self.callers.get(params.get("AccessKeyId", ""))
            if secret is None:
                return 404, {"RequestId": request_id, "Code": "InvalidAccessKeyId.NotFound"}
            expected = v1_signature(secret, method, [(k, v) for k, v in pairs if k != "Signature"])
            if not hmac.compare_digest(expected, params.get("Signature", "")):
                return 400, {"RequestId": request_id, "Code": "SignatureDoesNotMatch"}
        elif action == "AssumeRoleWithOIDC":
            if params.get("OIDCToken") != self.oidc_token:
                return 400, {"RequestId": request_id, "Code": "AuthenticationFail.OIDCToken"}
        else:
            return 400, {"RequestId": request_id, "Code": "InvalidAction.NotFound"}
        issued = self.issued
        expiration = datetime.datetime.now(datetime.UTC) + issued.lifetime
        return 200, {
            "RequestId": request_id,
            "AssumedRoleUser": {"Arn": params.get("RoleArn", ""), "AssumedRoleId": "3xx:session"},
            "Credentials": {
                "AccessKeyId": issued.access_key_id,
                "AccessKeySecret": issued.access_key_secret,
                "SecurityToken": issued.security_token,
                "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        }
