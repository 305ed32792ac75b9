"""The exporter-toolkit web config: loading and refusing, TLS settings for the listener,
and authentication, checked over real HTTP(S) where users meet it."""

from __future__ import annotations

import base64
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from starlette.types import Receive, Scope, Send

from exporter.web.authentication import AuthFailure, Principal, authenticator_for, secure_app
from exporter.web.listener import Listener
from exporter.web.web_config import WebConfig, WebConfigError, load_web_config
from tests.pki import make_pki

PASSWORD = "s3cret-password-never-shown"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
TOKEN = "f" * 48


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def load_error(path: Path) -> str:
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    return str(caught.value)


# --- certificates ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for localhost and a client certificate, as PEM files."""
    made = make_pki(tmp_path_factory.mktemp("pki"))
    return {
        "ca": made.ca,
        "server_cert": made.server_cert,
        "server_key": made.server_key,
        "client_cert": made.client_cert,
        "client_key": made.client_key,
    }


def tls_config(tmp_path: Path, pki: dict[str, Path], extra: str = "") -> Path:
    return write(
        tmp_path / "web.yml",
        f"""
tls_server_config:
  cert_file: {pki["server_cert"]}
  key_file: {pki["server_key"]}
{extra}""",
    )


# --- loading ----------------------------------------------------------------------------


def test_empty_file_is_plain_http_without_authentication(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path / "web.yml", ""))
    assert config.tls_settings() is None
    assert not config.authenticates


def test_toolkit_example_with_tls_client_certs_headers_and_basic_auth_loads(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    path = tls_config(
        tmp_path,
        pki,
        f"""  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {pki["ca"]}
  min_version: TLS13
  prefer_server_cipher_suites: true
http_server_config:
  http2: false
  headers:
    Strict-Transport-Security: max-age=31536000
    X-Frame-Options: deny
basic_auth_users:
  alice: {HASH}
""",
    )
    config = load_web_config(path)
    tls = config.tls_settings()
    assert tls is not None
    assert (tls.certfile, tls.keyfile) == (str(pki["server_cert"]), str(pki["server_key"]))
    assert tls.client_ca_file == str(pki["ca"])
    assert tls.client_cert_required == ssl.CERT_REQUIRED
    assert tls.min_version == ssl.TLSVersion.TLSv1_3
    assert config.authenticates


def test_verify_client_cert_if_given_maps_to_optional_verification(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    extra = f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {pki['ca']}\n"
    tls = load_web_config(tls_config(tmp_path, pki, extra)).tls_settings()
    assert tls is not None and tls.client_cert_required == ssl.CERT_OPTIONAL


def test_tls_defaults_to_no_client_certificates_and_tls_1_2(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    tls = load_web_config(tls_config(tmp_path, pki)).tls_settings()
    assert tls is not None
    assert (tls.client_cert_required, tls.min_version) == (ssl.CERT_NONE, ssl.TLSVersion.TLSv1_2)


def test_relative_paths_are_relative_to_the_web_config_file(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    (tmp_path / "certs").mkdir()
    for name in ("server_cert", "server_key"):
        (tmp_path / "certs" / pki[name].name).write_bytes(pki[name].read_bytes())
    path = write(
        tmp_path / "web.yml",
        "tls_server_config:\n  cert_file: certs/server.crt\n  key_file: certs/server.key\n",
    )
    tls = load_web_config(path).tls_settings()
    assert tls is not None and tls.certfile == str(tmp_path / "certs" / "server.crt")


@pytest.mark.parametrize("kind", ["RequestClientCert", "RequireAnyClientCert"])
def test_client_auth_types_python_cannot_honour_are_config_errors_not_downgrades(
    tmp_path: Path, pki: dict[str, Path], kind: str
) -> None:
    message = load_error(tls_config(tmp_path, pki, f"  client_auth_type: {kind}\n"))
    assert f"tls_server_config.client_auth_type: {kind} is not supported" in message


def test_unknown_client_auth_type_is_a_config_error(tmp_path: Path, pki: dict[str, Path]) -> None:
    message = load_error(tls_config(tmp_path, pki, "  client_auth_type: Sometimes\n"))
    assert "must be NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert" in message


def test_verifying_client_certificates_needs_client_ca_file(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    message = load_error(
        tls_config(tmp_path, pki, "  client_auth_type: RequireAndVerifyClientCert\n")
    )
    assert "needs client_ca_file" in message


@pytest.mark.parametrize("key", ["cipher_suites", "curve_preferences", "max_version"])
def test_toolkit_tls_settings_python_cannot_apply_are_refused_not_ignored(
    tmp_path: Path, pki: dict[str, Path], key: str
) -> None:
    message = load_error(tls_config(tmp_path, pki, f"  {key}: [X]\n"))
    assert f"{key}: not supported by aliyun-vpn-exporter" in message


def test_certificate_and_key_that_do_not_match_are_a_config_error(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    path = write(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {pki['server_cert']}\n  key_file: {pki['client_key']}\n",
    )
    assert "cannot load cert_file and key_file as a pair" in load_error(path)


def test_missing_certificate_file_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path / "web.yml", "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n"
    )
    assert f"tls_server_config.cert_file: no such file: {tmp_path / 'a.crt'}" in load_error(path)


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    assert "basic_auth_user: unknown key" in load_error(
        write(tmp_path / "web.yml", f"basic_auth_user:\n  alice: {HASH}\n")
    )


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yml", f"basic_auth_users:\n  a: {HASH}\nbasic_auth_users: {{}}\n")
    assert "found the key 'basic_auth_users' twice" in load_error(path)


def test_a_password_instead_of_a_bcrypt_hash_is_refused_without_quoting_it(
    tmp_path: Path,
) -> None:
    message = load_error(write(tmp_path / "web.yml", f"basic_auth_users:\n  alice: {PASSWORD}\n"))
    assert "alice: not a bcrypt hash" in message
    assert PASSWORD not in message


def test_response_header_outside_the_toolkit_list_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yml", "http_server_config:\n  headers:\n    X-Powered-By: me\n")
    assert "X-Powered-By cannot be configured" in load_error(path)


def test_response_header_with_a_value_the_toolkit_refuses_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path / "web.yml", "http_server_config:\n  headers:\n    X-Frame-Options: allow\n"
    )
    assert "X-Frame-Options: invalid value (expected deny or sameorigin)" in load_error(path)


def test_bearer_tokens_file_is_read_relative_to_the_web_config(tmp_path: Path) -> None:
    write(tmp_path / "tokens", f"# callers\n\nci:{TOKEN}\ndeploy : {'e' * 40}\n")
    config = load_web_config(write(tmp_path / "web.yml", "bearer_tokens_file: tokens\n"))
    assert [token.name for token in config.bearer_tokens] == ["ci", "deploy"]
    assert config.authenticates
    assert TOKEN not in repr(config.bearer_tokens)


def test_a_short_bearer_token_is_refused_naming_the_line_not_the_token(tmp_path: Path) -> None:
    write(tmp_path / "tokens", "ci:short-token\n")
    message = load_error(write(tmp_path / "web.yml", "bearer_tokens_file: tokens\n"))
    assert "tokens:1: the token of ci must be 32 to 512 characters" in message
    assert "short-token" not in message


def test_a_bearer_token_shared_by_two_names_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "tokens", f"ci:{TOKEN}\ndeploy:{TOKEN}\n")
    message = load_error(write(tmp_path / "web.yml", "bearer_tokens_file: tokens\n"))
    assert "tokens:2: the token of deploy is also another name's" in message


def test_an_empty_bearer_tokens_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "tokens", "# nobody yet\n")
    assert "no tokens" in load_error(write(tmp_path / "web.yml", "bearer_tokens_file: tokens\n"))


# --- authentication ---------------------------------------------------------------------


def authenticator_config(tmp_path: Path) -> WebConfig:
    write(tmp_path / "tokens", f"ci:{TOKEN}\n")
    return WebConfig.model_validate(
        {"basic_auth_users": {"alice": HASH}, "bearer_tokens_file": str(tmp_path / "tokens")}
    )


async def test_right_password_authenticates_as_the_user(tmp_path: Path) -> None:
    authenticator = authenticator_for(authenticator_config(tmp_path))
    assert await authenticator.authenticate(basic("alice", PASSWORD)) == Principal("alice", "basic")


async def test_wrong_password_fails_naming_the_configured_user(tmp_path: Path) -> None:
    authenticator = authenticator_for(authenticator_config(tmp_path))
    assert await authenticator.authenticate(basic("alice", "guess")) == AuthFailure(
        "wrong_credentials", "alice"
    )


async def test_unknown_user_fails_without_repeating_the_name(tmp_path: Path) -> None:
    # The "name" might be a password typed into the wrong field: it is not echoed.
    authenticator = authenticator_for(authenticator_config(tmp_path))
    assert await authenticator.authenticate(basic(PASSWORD, "x")) == AuthFailure(
        "wrong_credentials"
    )


async def test_bearer_token_authenticates_as_its_name(tmp_path: Path) -> None:
    authenticator = authenticator_for(authenticator_config(tmp_path))
    assert await authenticator.authenticate(f"Bearer {TOKEN}") == Principal("ci", "bearer")


async def test_wrong_bearer_token_fails(tmp_path: Path) -> None:
    authenticator = authenticator_for(authenticator_config(tmp_path))
    assert await authenticator.authenticate("Bearer " + "0" * 48) == AuthFailure(
        "wrong_credentials"
    )


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Digest x",
    ],
)
async def test_missing_or_malformed_authorization_fails(tmp_path: Path, header: str | None) -> None:
    authenticator = authenticator_for(authenticator_config(tmp_path))
    outcome = await authenticator.authenticate(header)
    assert isinstance(outcome, AuthFailure) and outcome.reason in ("missing", "malformed")


async def test_a_password_longer_than_bcrypt_reads_fails_instead_of_raising(
    tmp_path: Path,
) -> None:
    authenticator = authenticator_for(authenticator_config(tmp_path))
    outcome = await authenticator.authenticate(basic("alice", PASSWORD + "x" * 100))
    assert outcome == AuthFailure("wrong_credentials", "alice")


def test_challenges_name_every_configured_scheme(tmp_path: Path) -> None:
    authenticator = authenticator_for(authenticator_config(tmp_path), "admin")
    assert authenticator.challenges == [
        'Basic realm="admin", charset="UTF-8"',
        'Bearer realm="admin"',
    ]


# --- over HTTP --------------------------------------------------------------------------


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello\n"})


@pytest.fixture
async def protected(tmp_path: Path) -> AsyncIterator[tuple[str, list[AuthFailure]]]:
    config = WebConfig.model_validate(
        {
            "basic_auth_users": {"alice": HASH},
            "http_server_config": {"headers": {"X-Content-Type-Options": "nosniff"}},
        }
    )
    failures: list[AuthFailure] = []
    app = secure_app(hello, config, lambda scope, failure: failures.append(failure))
    listener = Listener(app, "127.0.0.1:0")
    await listener.start()
    try:
        yield f"http://127.0.0.1:{listener.port}", failures
    finally:
        await listener.stop()


async def test_protected_listener_answers_401_with_a_challenge_and_counts_it(
    protected: tuple[str, list[AuthFailure]], caplog: pytest.LogCaptureFixture
) -> None:
    url, failures = protected
    with caplog.at_level(logging.WARNING, logger="exporter.web.web_config"):
        async with httpx.AsyncClient() as http:
            response = await http.get(url, headers={"Authorization": basic("alice", "guess")})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic realm=")
    assert failures == [AuthFailure("wrong_credentials", "alice")]
    assert "authentication failed" in caplog.text
    assert "guess" not in caplog.text


async def test_protected_listener_serves_authenticated_requests_with_configured_headers(
    protected: tuple[str, list[AuthFailure]],
) -> None:
    url, _ = protected
    async with httpx.AsyncClient() as http:
        response = await http.get(url, headers={"Authorization": basic("alice", PASSWORD)})
    assert (response.status_code, response.text) == (200, "hello\n")
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.fixture
async def mutual_tls(
    tmp_path: Path, pki: dict[str, Path]
) -> AsyncIterator[tuple[str, ssl.SSLContext]]:
    extra = f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki['ca']}\n"
    config = load_web_config(tls_config(tmp_path, pki, extra))
    listener = Listener(secure_app(hello, config), "127.0.0.1:0", config.tls_settings())
    await listener.start()
    trust = ssl.create_default_context(cafile=str(pki["ca"]))
    try:
        yield f"https://localhost:{listener.port}", trust
    finally:
        await listener.stop()


async def test_require_and_verify_client_cert_refuses_a_client_without_one(
    mutual_tls: tuple[str, ssl.SSLContext],
) -> None:
    url, trust = mutual_tls
    async with httpx.AsyncClient(verify=trust) as http:
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            await http.get(url)


async def test_require_and_verify_client_cert_serves_a_client_with_a_signed_one(
    mutual_tls: tuple[str, ssl.SSLContext], pki: dict[str, Path]
) -> None:
    url, trust = mutual_tls
    trust.load_cert_chain(pki["client_cert"], pki["client_key"])
    async with httpx.AsyncClient(verify=trust) as http:
        response = await http.get(url)
    assert (response.status_code, response.text) == (200, "hello\n")
