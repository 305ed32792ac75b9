"""Credentials for signing VPC API requests: one provider per named profile of the config.

`build_providers(config, environ)` turns every profile into a `CredentialsProvider`:

- `access_key`: the configured pair (and STS token), as is.
- `default`: the official `alibabacloud-credentials` chain, in the library's order:
  `ALIBABA_CLOUD_ACCESS_KEY_ID`/`_SECRET` (`_SECURITY_TOKEN`), OIDC/RRSA
  (`ALIBABA_CLOUD_OIDC_TOKEN_FILE`, `_ROLE_ARN`, `_OIDC_PROVIDER_ARN`), the aliyun CLI
  profile, `~/.alibabacloud/credentials.ini`, the ECS RAM role, and
  `ALIBABA_CLOUD_CREDENTIALS_URI`. The first source that works is kept.
- `ram_role_arn`: STS AssumeRole through the library, refreshed before expiry, with the
  credentials of `base_profile` (or of the default chain).
- `oidc`: STS AssumeRoleWithOIDC (RRSA on ACK), settings from the profile or else from
  the variables RRSA injects (`ALIBABA_CLOUD_ROLE_ARN`, `_OIDC_PROVIDER_ARN`,
  `_OIDC_TOKEN_FILE`) in `environ`.
- `ecs_ram_role`: the instance's RAM role from the ECS metadata service, without the
  library's background refresh thread.
- `credentials_uri`: a local credentials endpoint.

The STS calls (`ram_role_arn`, `oidc`) always go over https and trust the system's CAs
(and `SSL_CERT_FILE`), not `api.ca_file`: the library builds its own TLS context.

Why the default chain is assembled here from the library's own providers instead of
`alibabacloud_credentials.client.Client()`:

- The library reads its environment variables once, when it is imported, so `Client()`
  would ignore `environ` and behave differently depending on which module imported the
  library first. Here every setting is read from `environ` and passed explicitly.
- Its chain builds the ECS RAM role provider with a background `BackgroundScheduler`
  thread (refreshing every minute) whenever `ALIBABA_CLOUD_ECS_METADATA_DISABLED` is not
  `true`. Here that provider is built without the thread (it refreshes when asked), and
  only when neither `environ` nor the process environment at import disables it.
- The library is imported only when a profile needs it (`default`, `ram_role_arn`), so an
  `access_key`-only setup (the demo) never loads it.

Test suites should set `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true` (and
`ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true`) in `os.environ` before anything imports the
library, and pass an `environ` with the same settings, so nothing ever calls the metadata
service (100.100.100.200) or reads the developer's own CLI profile.

Secrets never leave a `Credential` except to sign: `Credential`'s `repr` hides them, and a
`CredentialsError` names the profile and what failed, with any known secret masked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from exporter.cloud.errors import CredentialsError
from exporter.cloud.keys import Credential, CredentialsProvider
from exporter.config.model import (
    AccessKeyProfile,
    Config,
    CredentialsUriProfile,
    DefaultProfile,
    EcsRamRoleProfile,
    OidcProfile,
    RamRoleArnProfile,
)

log = logging.getLogger(__name__)

_MAX_REASON = 300
"""Library messages may carry whole HTTP bodies; a log line needs the start."""

_SECRET_FIELDS = re.compile(r'("(?:AccessKeyId|AccessKeySecret|SecurityToken)"\s*:\s*")[^"]*')
"""Key fields of an STS-style JSON body, which library messages quote when they fail."""


class StaticCredentialsProvider:
    """A fixed key pair: an `access_key` profile."""

    def __init__(self, profile: str, credential: Credential) -> None:
        self._profile = profile
        self._credential = credential

    @property
    def profile(self) -> str:
        return self._profile

    async def get(self) -> Credential:
        return self._credential


Fetch = Callable[[], Awaitable[Credential]]
"""One source of a chain: returns a credential or raises."""


class ChainCredentialsProvider:
    """Sources tried in order until one gives a credential; that one is kept for later
    calls (as the official chain does), and its own caching and refreshing apply.

    Calls are serialised: the library guards refreshes with a `threading.Lock` taken with
    a 5-second timeout, which a second coroutine on the same loop would block on.
    """

    def __init__(
        self,
        profile: str,
        source: str,
        links: Sequence[tuple[str, Fetch]],
        *,
        secrets: Iterable[str] = (),
        when_none_works: str | None = None,
    ) -> None:
        """`when_none_works`: what the error says when every source failed, instead of
        each source's reason (those are then logged at debug level)."""
        self._profile = profile
        self._source = source
        self._links = tuple(links)
        self._secrets = tuple(secrets)
        self._when_none_works = when_none_works
        self._chosen: tuple[str, Fetch] | None = None
        self._lock = asyncio.Lock()

    @property
    def profile(self) -> str:
        return self._profile

    @property
    def sources(self) -> tuple[str, ...]:
        """Names of the sources this provider tries, in order."""
        return tuple(name for name, _ in self._links)

    async def get(self) -> Credential:
        async with self._lock:
            if self._chosen is not None:
                name, fetch = self._chosen
                try:
                    return await fetch()
                except Exception as error:
                    raise self._error(f"{name}: {self._reason(error)}") from None
            failures = []
            for name, fetch in self._links:
                try:
                    credential = await fetch()
                except Exception as error:
                    failures.append(f"{name}: {self._reason(error)}")
                    continue
                self._chosen = (name, fetch)
                if len(self._links) > 1:
                    log.info(
                        "credentials source chosen",
                        extra={"fields": {"profile": self._profile, "source": name}},
                    )
                return credential
            if self._when_none_works is None:
                raise self._error("no credentials: " + ("; ".join(failures) or "no source to try"))
            log.debug(
                "no credentials source worked",
                extra={"fields": {"profile": self._profile, "reasons": "; ".join(failures)}},
            )
            tried = ", ".join(self.sources) or "none"
            raise self._error(
                f"no source worked (tried: {tried}; --log.level=debug says why each failed)",
                advice=self._when_none_works,
            )

    def _error(self, detail: str, advice: str | None = None) -> CredentialsError:
        return CredentialsError(
            "credentials",
            f"profile {self._profile!r} (source {self._source}): {detail}",
            advice=advice,
        )

    def _reason(self, error: Exception) -> str:
        text = str(getattr(error, "message", None) or error) or type(error).__name__
        text = _SECRET_FIELDS.sub(r"\1****", text)
        for secret in self._secrets:
            text = text.replace(secret, "****").replace(quote(secret, safe=""), "****")
        return text if len(text) <= _MAX_REASON else text[:_MAX_REASON] + "..."


class _LibraryKeys(Protocol):
    def get_access_key_id(self) -> str | None: ...
    def get_access_key_secret(self) -> str | None: ...
    def get_security_token(self) -> str | None: ...


class _LibraryProvider(Protocol):
    async def get_credentials_async(self) -> _LibraryKeys | None: ...


def _from_library(provider: _LibraryProvider) -> Fetch:
    async def fetch() -> Credential:
        keys = await provider.get_credentials_async()
        key_id = keys.get_access_key_id() if keys else None
        secret = keys.get_access_key_secret() if keys else None
        if keys is None or not key_id or not secret:
            raise ValueError("the source gave no AccessKey pair")
        return Credential(key_id, secret, keys.get_security_token() or None)

    return fetch


def _fixed(credential: Credential) -> Fetch:
    async def fetch() -> Credential:
        return credential

    return fetch


def _refusing(reason: str) -> Fetch:
    """A source that cannot work, failing with `reason` each time it is tried."""

    async def refused() -> Credential:
        raise ValueError(reason)

    return refused


def _library_link(make: Callable[[], _LibraryProvider]) -> Fetch:
    """A source built by the library, or, if the library refuses its settings, a source
    that reports why each time it is tried: a bad profile fails its own targets at poll
    time, it does not stop the exporter."""
    try:
        provider = make()
    except (ValueError, TypeError) as error:
        return _refusing(str(error))
    return _from_library(provider)


class _AsLibraryProvider:
    """One of our providers in the shape the library expects of a base provider (for the
    AssumeRole call of a `ram_role_arn` profile); only the async path is used."""

    def __init__(self, provider: CredentialsProvider) -> None:
        self._provider = provider

    async def get_credentials_async(self) -> Any:
        from alibabacloud_credentials.provider.refreshable import Credentials

        credential = await self._provider.get()
        return Credentials(
            access_key_id=credential.access_key_id,
            access_key_secret=credential.access_key_secret,
            security_token=credential.security_token,
            provider_name=f"profile:{self._provider.profile}",
        )

    def get_credentials(self) -> Any:
        raise NotImplementedError("the exporter resolves credentials asynchronously only")

    def get_provider_name(self) -> str:
        return f"profile:{self._provider.profile}"


@dataclass(frozen=True, slots=True)
class _Http:
    """Timeouts (ms) and proxy for the library's STS and credentials-URI calls."""

    timeout_ms: int
    proxy: str | None

    def options(self, *, proxy: bool = True) -> Any:
        from alibabacloud_credentials.http import HttpOptions

        return HttpOptions(
            connect_timeout=self.timeout_ms,
            read_timeout=self.timeout_ms,
            proxy=self.proxy if proxy else None,
        )


def _import_library() -> Any:
    """The library's provider classes, imported only when a profile needs them.

    Importing it attaches a stderr handler to its `credentials` logger, once per module
    that logs (so each line comes out several times), and it logs every failed refresh
    with a traceback, past the exporter's log format. The exporter reports those failures
    itself, once per change, as `CredentialsError`s carrying the library's reason; the
    library's own records are dropped unless critical.
    """
    from alibabacloud_credentials import provider

    library_log = logging.getLogger("credentials")
    for handler in list(library_log.handlers):
        library_log.removeHandler(handler)
    library_log.setLevel(logging.CRITICAL)
    return provider


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() == "true"


def _environment_link(environ: Mapping[str, str]) -> Fetch | None:
    key_id = environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
    secret = environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if not key_id or not secret:
        return None
    token = environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None
    return _fixed(Credential(key_id, secret, token))


def _default_chain(
    profile: str, environ: Mapping[str, str], http: _Http, secrets: Iterable[str]
) -> ChainCredentialsProvider:
    """The official default chain, each source configured from `environ` (see the module
    doc for why it is not `Client()`)."""
    library = _import_library()
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    profile_name = environ.get("ALIBABA_CLOUD_PROFILE") or None
    links: list[tuple[str, Fetch]] = []
    environment = _environment_link(environ)
    if environment is not None:
        links.append(("environment", environment))
    oidc_settings = [
        environ.get(name)
        for name in (
            "ALIBABA_CLOUD_ROLE_ARN",
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
        )
    ]
    if all(oidc_settings):
        role_arn, provider_arn, token_file = oidc_settings
        oidc = _library_link(
            lambda: library.OIDCRoleArnCredentialsProvider(
                role_arn=role_arn,
                oidc_provider_arn=provider_arn,
                oidc_token_file_path=token_file,
                role_session_name=environ.get("ALIBABA_CLOUD_ROLE_SESSION_NAME") or None,
                sts_region_id=environ.get("ALIBABA_CLOUD_STS_REGION") or None,
                enable_vpc=_flag(environ, "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED"),
                http_options=http.options(),
            )
        )
        links.append(("oidc", oidc))
    if not _flag(environ, "ALIBABA_CLOUD_CLI_PROFILE_DISABLED"):
        cli = _library_link(
            lambda: library.CLIProfileCredentialsProvider(
                profile_name=profile_name, profile_file=str(home / ".aliyun" / "config.json")
            )
        )
        links.append(("cli_profile", cli))
    ini = _library_link(
        lambda: library.ProfileCredentialsProvider(
            profile_file=environ.get("ALIBABA_CLOUD_CREDENTIALS_FILE")
            or str(home / ".alibabacloud" / "credentials.ini"),
            profile_name=profile_name or "default",
        )
    )
    links.append(("credentials_file", ini))
    if not _flag(environ, "ALIBABA_CLOUD_ECS_METADATA_DISABLED"):
        try:
            ecs = library.EcsRamRoleCredentialsProvider(
                role_name=environ.get("ALIBABA_CLOUD_ECS_METADATA") or None,
                disable_imds_v1=_flag(environ, "ALIBABA_CLOUD_IMDSV1_DISABLED"),
                async_update_enabled=False,  # no background refresh thread
            )
        except ValueError:
            # The library read ALIBABA_CLOUD_ECS_METADATA_DISABLED=true at import.
            log.debug("ECS RAM role source disabled by the process environment")
        else:
            links.append(("ecs_ram_role", _from_library(ecs)))
    uri = environ.get("ALIBABA_CLOUD_CREDENTIALS_URI")
    if uri:
        url = _library_link(
            lambda: library.URLCredentialsProvider(uri=uri, http_options=http.options(proxy=False))
        )
        links.append(("credentials_uri", url))
    # Nothing given explicitly (keys, RRSA, a credentials URI): the implicit sources' reasons
    # ("no such file", "no metadata service") would bury what to do.
    hint = (
        "no credentials found: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET, or configure another source for the profile"
        if environment is None and not all(oidc_settings) and not uri
        else None
    )
    return ChainCredentialsProvider(
        profile, "default", links, secrets=secrets, when_none_works=hint
    )


def _assumed_role(
    name: str,
    profile: RamRoleArnProfile,
    base: CredentialsProvider,
    environ: Mapping[str, str],
    http: _Http,
    secrets: Iterable[str],
) -> ChainCredentialsProvider:
    library = _import_library()
    role = _library_link(
        lambda: library.RamRoleArnCredentialsProvider(
            credentials_provider=_AsLibraryProvider(base),
            role_arn=profile.role_arn,
            role_session_name=profile.role_session_name,
            duration_seconds=int(profile.session_duration),
            external_id=profile.external_id.get_secret_value() if profile.external_id else None,
            sts_endpoint=profile.sts_endpoint,
            sts_region_id=environ.get("ALIBABA_CLOUD_STS_REGION") or None,
            enable_vpc=_flag(environ, "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED"),
            http_options=http.options(),
        )
    )
    return ChainCredentialsProvider(name, profile.source, [("ram_role_arn", role)], secrets=secrets)


def _oidc(
    name: str,
    profile: OidcProfile,
    environ: Mapping[str, str],
    http: _Http,
    secrets: Iterable[str],
) -> ChainCredentialsProvider:
    """AssumeRoleWithOIDC; every setting the profile leaves out comes from `environ` (never
    from what the library read at import)."""
    settings = {
        "role_arn": (profile.role_arn, "ALIBABA_CLOUD_ROLE_ARN"),
        "oidc_provider_arn": (profile.oidc_provider_arn, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"),
        "oidc_token_file": (profile.oidc_token_file, "ALIBABA_CLOUD_OIDC_TOKEN_FILE"),
    }
    values = {
        key: str(given or environ.get(variable) or "")
        for key, (given, variable) in settings.items()
    }
    missing = [f"{key} (or {settings[key][1]})" for key, value in values.items() if not value]
    link: Fetch
    if missing:
        link = _refusing("not configured: " + ", ".join(missing))
    else:
        library = _import_library()
        link = _library_link(
            lambda: library.OIDCRoleArnCredentialsProvider(
                role_arn=values["role_arn"],
                oidc_provider_arn=values["oidc_provider_arn"],
                oidc_token_file_path=values["oidc_token_file"],
                role_session_name=profile.role_session_name,
                duration_seconds=int(profile.session_duration),
                sts_endpoint=profile.sts_endpoint,
                sts_region_id=environ.get("ALIBABA_CLOUD_STS_REGION") or None,
                enable_vpc=_flag(environ, "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED"),
                http_options=http.options(),
            )
        )
    return ChainCredentialsProvider(name, profile.source, [("oidc", link)], secrets=secrets)


def _ecs_ram_role(
    name: str, profile: EcsRamRoleProfile, http: _Http, secrets: Iterable[str]
) -> ChainCredentialsProvider:
    """The instance's RAM role, refreshed when asked: no background thread. The library
    refuses to build it when the process started with
    `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`; the profile then fails saying so."""
    library = _import_library()
    link = _library_link(
        lambda: library.EcsRamRoleCredentialsProvider(
            role_name=profile.role_name,
            disable_imds_v1=profile.disable_imds_v1,
            http_options=http.options(proxy=False),
            async_update_enabled=False,
        )
    )
    return ChainCredentialsProvider(name, profile.source, [("ecs_ram_role", link)], secrets=secrets)


def _credentials_uri(
    name: str, profile: CredentialsUriProfile, http: _Http, secrets: Iterable[str]
) -> ChainCredentialsProvider:
    library = _import_library()
    uri = profile.uri.get_secret_value()
    link = _library_link(
        lambda: library.URLCredentialsProvider(uri=uri, http_options=http.options(proxy=False))
    )
    return ChainCredentialsProvider(
        name, profile.source, [("credentials_uri", link)], secrets=secrets
    )


def _known_secrets(config: Config, environ: Mapping[str, str]) -> list[str]:
    """Secret values a library message could quote, to mask them in errors."""
    values = [
        environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
        environ.get("ALIBABA_CLOUD_SECURITY_TOKEN"),
    ]
    for profile in config.credentials.values():
        if isinstance(profile, AccessKeyProfile):
            values += [profile.access_key_secret.get_secret_value()]
            values += [profile.security_token.get_secret_value()] if profile.security_token else []
        elif isinstance(profile, RamRoleArnProfile) and profile.external_id:
            values.append(profile.external_id.get_secret_value())
        elif isinstance(profile, CredentialsUriProfile):
            values.append(urlsplit(profile.uri.get_secret_value()).query)
    if config.api.proxy is not None:
        values.append(config.api.proxy.get_secret_value())
    # A credentials URI may carry a token in its query; library messages quote the URI.
    values.append(urlsplit(environ.get("ALIBABA_CLOUD_CREDENTIALS_URI", "")).query)
    # Longest first, so a secret containing another is masked whole.
    return sorted({value for value in values if value and len(value) >= 4}, key=len, reverse=True)


def build_providers(
    config: Config, environ: Mapping[str, str] | None = None
) -> dict[str, CredentialsProvider]:
    """A provider per credentials profile of `config`, keyed by profile name.

    `environ` (default `os.environ`) is what the `default` chain and STS settings read.
    Nothing is fetched here: the first `get()` resolves, so a failing profile only fails
    its own targets, at poll time, with a `CredentialsError` that says why.
    """
    environ = os.environ if environ is None else environ
    secrets = _known_secrets(config, environ)
    http = _Http(
        timeout_ms=max(1, round(config.api.timeout * 1000)),
        proxy=config.api.proxy.get_secret_value() if config.api.proxy else None,
    )
    providers: dict[str, CredentialsProvider] = {}

    def build(name: str) -> CredentialsProvider:
        if name in providers:
            return providers[name]
        profile = config.credentials[name]
        provider: CredentialsProvider
        if isinstance(profile, AccessKeyProfile):
            token = profile.security_token
            provider = StaticCredentialsProvider(
                name,
                Credential(
                    profile.access_key_id.get_secret_value(),
                    profile.access_key_secret.get_secret_value(),
                    token.get_secret_value() if token else None,
                ),
            )
        elif isinstance(profile, DefaultProfile):
            provider = _default_chain(name, environ, http, secrets)
        elif isinstance(profile, OidcProfile):
            provider = _oidc(name, profile, environ, http, secrets)
        elif isinstance(profile, EcsRamRoleProfile):
            provider = _ecs_ram_role(name, profile, http, secrets)
        elif isinstance(profile, CredentialsUriProfile):
            provider = _credentials_uri(name, profile, http, secrets)
        else:
            # The config refuses base_profile loops, so this recursion ends.
            base = (
                build(profile.base_profile)
                if profile.base_profile
                else _default_chain(f"{name}/base", environ, http, secrets)
            )
            provider = _assumed_role(name, profile, base, environ, http, secrets)
        providers[name] = provider
        return provider

    for name in config.credentials:
        build(name)
    return providers
