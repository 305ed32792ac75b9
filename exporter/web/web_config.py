"""The web config of a listener (`--web.config.file`, `--admin.web.config.file`): TLS,
authentication and response headers, in the Prometheus exporter-toolkit's format.

```yaml
tls_server_config:
  cert_file: server.crt              # relative paths are relative to this file
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert   # or VerifyClientCertIfGiven, NoClientCert
  client_ca_file: clients-ca.crt
  min_version: TLS12                 # TLS10, TLS11, TLS12 (default), TLS13
http_server_config:
  headers:
    Strict-Transport-Security: max-age=31536000
basic_auth_users:                    # name: bcrypt hash (htpasswd -nBC 12 name)
  alice: $2b$12$...
bearer_tokens_file: admin-tokens     # our extension, see below
```

What Python's `ssl` cannot do is refused with a clear message rather than silently served
weaker: `client_auth_type` `RequestClientCert` and `RequireAnyClientCert` (a certificate
asked for but not verified), `cipher_suites`, `curve_preferences`, `max_version`,
`client_allowed_sans` and the inline `cert`/`key`/`client_ca`. `http2` is accepted and
ignored (HTTP/1.1 is served either way); so is `prefer_server_cipher_suites`, which Go
itself ignores.

`bearer_tokens_file` (not part of the toolkit's format) names a file of `name:token`
lines (`#` comments and blank lines skipped). `name` is what logs record as the caller;
a token is 32 to 512 characters of RFC 6750's token alphabet (`openssl rand -hex 32`
makes one). Only SHA-256 digests of the tokens are kept in memory. Both mechanisms may be
configured together; a request then passes with either.

Secrets (passwords, tokens, hashes) never reach an error message, a log line or a `repr`.
Checking requests against this config is `exporter.web.authentication`'s job.
"""

from __future__ import annotations

import hashlib
import logging
import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from exporter.config.values import MAX_EXPANDED_VALUES, expanded_size

log = logging.getLogger(__name__)

DEFAULT_REALM = "aliyun-vpn-exporter"

CLIENT_AUTH_TYPES: Mapping[str, ssl.VerifyMode] = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
"""The exporter-toolkit's `client_auth_type` values Python's `ssl` can honour."""

TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

UNSUPPORTED_TLS_KEYS: Mapping[str, str] = {
    "cipher_suites": "Go cipher suite names cannot be applied to Python's ssl",
    "curve_preferences": "Python's ssl cannot set curve preferences per listener",
    "max_version": "a maximum TLS version is not supported",
    "client_allowed_sans": "client certificate SAN allow-lists are not supported",
    "cert": "inline certificates are not supported; use cert_file",
    "key": "inline keys are not supported; use key_file",
    "client_ca": "inline CA certificates are not supported; use client_ca_file",
}
"""exporter-toolkit settings refused by name: ignoring them would weaken what the operator
configured."""

ALLOWED_HEADERS: Mapping[str, frozenset[str] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": frozenset({"nosniff"}),
    "X-Frame-Options": frozenset({"deny", "sameorigin"}),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
"""Response headers the exporter-toolkit lets a web config set, with their allowed values
(None: any printable value)."""

_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")
_USER_NAME = re.compile(r"[^:\x00-\x1f\x7f]{1,128}")
_TOKEN_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]{32,512}=*")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{1,4096}")


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """What uvicorn needs to serve TLS (`exporter.web.listener` serves it)."""

    certfile: str
    keyfile: str
    client_ca_file: str | None = None
    client_cert_required: int = ssl.CERT_NONE
    min_version: ssl.TLSVersion | None = None


class WebConfigError(ValueError):
    """An unusable web config file, with every problem found as `path: message`."""

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"{source}: " + "; ".join(self.problems))


def _problem(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, "{reason}", {"reason": message})


def _resolve(path: Path, info: ValidationInfo) -> Path:
    base_dir = (info.context or {}).get("base_dir")
    return path if path.is_absolute() or base_dir is None else Path(base_dir) / path


def _readable(path: Path, info: ValidationInfo) -> Path:
    path = _resolve(path, info)
    if not path.is_file():
        raise _problem("file", f"no such file: {path}")
    return path


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class TlsServerConfig(_Strict):
    """`tls_server_config`: the listener serves HTTPS with this certificate."""

    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    prefer_server_cipher_suites: bool = True
    """Accepted for compatibility; Go ignores it too."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in sorted(UNSUPPORTED_TLS_KEYS.keys() & data.keys()):
                raise PydanticCustomError(
                    "unsupported",
                    "{key}: not supported by aliyun-vpn-exporter ({reason})",
                    {"key": key, "reason": UNSUPPORTED_TLS_KEYS[key]},
                )
        return data

    @field_validator("cert_file", "key_file", "client_ca_file")
    @classmethod
    def _exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return None if path is None else _readable(path, info)

    @field_validator("client_auth_type")
    @classmethod
    def _known_client_auth(cls, value: str) -> str:
        if value in CLIENT_AUTH_TYPES:
            return value
        if value in ("RequestClientCert", "RequireAnyClientCert"):
            raise _problem(
                "client_auth_type",
                f"{value} is not supported: Python's ssl cannot ask for a client certificate "
                "without verifying it; use VerifyClientCertIfGiven or RequireAndVerifyClientCert "
                "with client_ca_file",
            )
        raise _problem(
            "client_auth_type",
            "must be NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert",
        )

    @field_validator("min_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if value not in TLS_VERSIONS:
            raise _problem("min_version", "must be TLS10, TLS11, TLS12 or TLS13")
        return value

    @model_validator(mode="after")
    def _loadable(self) -> TlsServerConfig:
        verifying = self.client_auth_type != "NoClientCert"
        if verifying and self.client_ca_file is None:
            raise _problem(
                "client_ca_file",
                f"client_auth_type {self.client_auth_type} needs client_ca_file "
                "(the CA that signs client certificates)",
            )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as error:
            raise _problem(
                "tls", f"cannot load cert_file and key_file as a pair: {error.strerror or error}"
            ) from None
        if self.client_ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca_file)
            except (ssl.SSLError, OSError) as error:
                raise _problem(
                    "tls", f"cannot load client_ca_file: {error.strerror or error}"
                ) from None
        return self

    def settings(self) -> TlsSettings:
        return TlsSettings(
            certfile=str(self.cert_file),
            keyfile=str(self.key_file),
            client_ca_file=str(self.client_ca_file) if self.client_ca_file else None,
            client_cert_required=CLIENT_AUTH_TYPES[self.client_auth_type],
            min_version=TLS_VERSIONS[self.min_version],
        )


class HttpServerConfig(_Strict):
    """`http_server_config`: response headers (and `http2`, accepted and ignored)."""

    http2: bool = True
    headers: dict[str, str] = {}

    @field_validator("headers")
    @classmethod
    def _allowed_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if name not in ALLOWED_HEADERS:
                raise _problem(
                    "header",
                    f"{name} cannot be configured (allowed: {', '.join(ALLOWED_HEADERS)})",
                )
            allowed = ALLOWED_HEADERS[name]
            if _HEADER_VALUE.fullmatch(value) is None or (
                allowed is not None and value.lower() not in allowed
            ):
                expected = " or ".join(sorted(allowed)) if allowed else "printable ASCII"
                raise _problem("header", f"{name}: invalid value (expected {expected})")
        return headers


@dataclass(frozen=True, slots=True)
class BearerToken:
    """A named token from `bearer_tokens_file`; only its SHA-256 digest is kept."""

    name: str
    digest: bytes

    def __repr__(self) -> str:
        return f"BearerToken(name={self.name!r})"


def read_bearer_tokens(path: Path) -> tuple[BearerToken, ...]:
    """Parse a bearer tokens file; ValueError names the line, never its content."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ValueError(f"cannot read {path}: {reason}") from None
    tokens: list[BearerToken] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.partition(":")
        name, token = name.strip(), token.strip()
        if not sep or _TOKEN_NAME.fullmatch(name) is None:
            raise ValueError(f"{path}:{number}: expected name:token, name of 1-64 [A-Za-z0-9_.@-]")
        if _TOKEN.fullmatch(token) is None:
            raise ValueError(
                f"{path}:{number}: the token of {name} must be 32 to 512 characters of "
                "A-Z a-z 0-9 - . _ ~ + / (e.g. openssl rand -hex 32)"
            )
        digest = hashlib.sha256(token.encode("ascii")).digest()
        if name in names:
            raise ValueError(f"{path}:{number}: the name {name} is used twice")
        if digest in digests:
            raise ValueError(f"{path}:{number}: the token of {name} is also another name's")
        names.add(name)
        digests.add(digest)
        tokens.append(BearerToken(name, digest))
    if not tokens:
        raise ValueError(f"{path}: no tokens")
    return tuple(tokens)


class WebConfig(_Strict):
    """One listener's web config (see the module docstring). `WebConfig()` is the empty
    config: plain HTTP, no authentication."""

    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig = HttpServerConfig()
    basic_auth_users: dict[str, SecretStr] = {}
    bearer_tokens_file: Path | None = None
    _bearer_tokens: tuple[BearerToken, ...] = PrivateAttr(default=())

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, users: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, hashed in users.items():
            if _USER_NAME.fullmatch(name) is None:
                raise _problem(
                    "user", "a user name is 1 to 128 characters, without ':' or control characters"
                )
            if _BCRYPT_HASH.fullmatch(hashed.get_secret_value()) is None:
                raise _problem(
                    "bcrypt", f"{name}: not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04-31)"
                )
        return users

    @field_validator("bearer_tokens_file")
    @classmethod
    def _tokens_file_exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return None if path is None else _readable(path, info)

    @model_validator(mode="after")
    def _read_tokens(self) -> WebConfig:
        if self.bearer_tokens_file is not None:
            try:
                self._bearer_tokens = read_bearer_tokens(self.bearer_tokens_file)
            except ValueError as error:
                raise _problem("bearer_tokens_file", str(error)) from None
        return self

    @property
    def bearer_tokens(self) -> tuple[BearerToken, ...]:
        return self._bearer_tokens

    @property
    def authenticates(self) -> bool:
        """Whether requests must authenticate (basic auth users or bearer tokens)."""
        return bool(self.basic_auth_users or self._bearer_tokens)

    def tls_settings(self) -> TlsSettings | None:
        """What `exporter.web.listener.Listener` needs to serve HTTPS; None for plain HTTP."""
        return None if self.tls_server_config is None else self.tls_server_config.settings()


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML refusing duplicate keys (PyYAML would silently keep the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # `!!set 0`: PyYAML names the problem
            return super().construct_mapping(node, deep=deep)
        keys = [self.construct_object(key, deep=True) for key, _ in node.value]
        for index, key in enumerate(keys):
            if key in keys[:index]:
                raise yaml.constructor.ConstructorError(
                    None, None, f"found the key {key!r} twice", node.value[index][0].start_mark
                )
        return super().construct_mapping(node, deep=deep)


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def load_web_config(path: str | Path) -> WebConfig:
    """Read and validate a web config file; raise `WebConfigError` listing every problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise WebConfigError(source, [f"cannot read the file: {error.strerror}"]) from None
    except UnicodeDecodeError:
        raise WebConfigError(source, ["not UTF-8 text"]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        # str(error) would quote the offending line, which may hold a hash.
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise WebConfigError(
            source, [f"{where}not valid YAML ({getattr(error, 'problem', None) or 'syntax'})"]
        ) from None
    except RecursionError:
        raise WebConfigError(source, ["not valid YAML (nested too deeply)"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise WebConfigError(source, ["the file must hold a mapping"])
    if expanded_size(data, MAX_EXPANDED_VALUES) > MAX_EXPANDED_VALUES:
        raise WebConfigError(source, ["the file expands to too many values (YAML aliases?)"])
    try:
        return WebConfig.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as error:
        problems = []
        for item in error.errors(include_url=False, include_input=False):
            message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
            where = _location(item["loc"])
            problems.append(f"{where}: {message}" if where else message)
        raise WebConfigError(source, problems) from None
