"""The VPC API client: signed RPC calls with retries, a rate budget, typed errors and metrics.

One `VpcClient` serves one (credentials profile, region); every client shares one
`httpx.AsyncClient` from `make_http_client`. Answers come back as the API's JSON objects;
the parser module turns them into typed values.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from prometheus_client import Counter, Histogram

from exporter import __version__
from exporter.cloud.clock_offset import ClockOffset
from exporter.cloud.errors import (
    ApiError,
    ApiTimeout,
    CloudError,
    CredentialsError,
    InvalidResponse,
    NetworkError,
    failure_code,
)
from exporter.cloud.keys import CredentialsProvider, CredentialVerdicts
from exporter.cloud.paging import MAX_PAGE_SIZE
from exporter.cloud.ratelimit import RateBudget, RateBudgets
from exporter.cloud.retry import RETRY_AFTER_HEADER, RetryPolicy, parse_retry_after
from exporter.cloud.signer import AcsV3Auth
from exporter.cloud.signing import canonical_query
from exporter.telemetry.self_metrics import SelfMetrics

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "vpc.{region_id}.aliyuncs.com"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_TAGS = 20
USER_AGENT = f"aliyun-vpn-exporter/{__version__}"


class _NoCookies(httpx.Cookies):
    """A cookie store that never stores a cookie."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _CookielessAsyncClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` that keeps no cookies.

    A signed API client has no use for them, and httpx would otherwise parse every response
    for `Set-Cookie` (about 14 µs a call, some 4 % of a call's CPU).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        """Ignored: this client keeps no cookies."""


def make_http_client(
    *,
    timeout: float = DEFAULT_TIMEOUT,
    proxy: str | None = None,
    ca_file: str | None = None,
    max_connections: int = 100,
    keepalive_expiry: float = 30.0,
) -> httpx.AsyncClient:
    """The one `httpx.AsyncClient` all `VpcClient`s share, on aiohttp's HTTP/1.1 stack.

    httpx's own transport costs several times the CPU per call under concurrency;
    `httpx_aiohttp.AiohttpTransport` keeps httpx's API at aiohttp's cost. Its limits:
    - timeouts: `timeout` bounds connecting, waiting for a connection and each socket read,
      not the whole exchange (write timeouts are ignored); `VpcClient` adds a deadline per
      attempt.
    - proxy: only the explicit `proxy` (an `http://` URL, with optional user:password);
      `HTTP(S)_PROXY`/`NO_PROXY` are not read: a single proxy serves every request, and
      aiohttp's own environment lookup costs a thread hop per request. No SOCKS.
    - TLS: verified against `ca_file` alone when given, else certifi's CAs (or
      `SSL_CERT_FILE` / `SSL_CERT_DIR` when set, as httpx reads them).
    - HTTP/1.1 only; no cookies are kept.
    """
    ssl_context = (
        ssl.create_default_context(cafile=ca_file)
        if ca_file
        else httpx.create_ssl_context(verify=True)
    )

    def session() -> aiohttp.ClientSession:
        # Built lazily by the transport, inside the running event loop.
        connector = aiohttp.TCPConnector(
            limit=max_connections, keepalive_timeout=keepalive_expiry, ssl=ssl_context
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            # aiohttp would label the empty body `application/octet-stream`, unsigned.
            skip_auto_headers=("Content-Type",),
        )

    transport = AiohttpTransport(
        verify=ssl_context,
        proxy=httpx.Proxy(proxy) if proxy else None,
        client=session,
    )
    return _CookielessAsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout),
        headers={"user-agent": USER_AGENT, "accept": "application/json"},
        follow_redirects=False,
    )


def endpoint_url(template: str | None, region_id: str) -> str:
    """The base URL of the region's endpoint, from a template such as the default
    `vpc.{region_id}.aliyuncs.com` (https) or `http://127.0.0.1:1234` (the simulator)."""
    endpoint = (template or DEFAULT_ENDPOINT).replace("{region_id}", region_id)
    if "://" not in endpoint:
        endpoint = "https://" + endpoint
    url = httpx.URL(endpoint)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"endpoint {endpoint!r} is not an http(s) host")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ValueError(f"endpoint {endpoint!r} must be a host, without path or query")
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


Sleep = Callable[[float], Awaitable[None]]


class VpcClient:
    """Calls the VPC API in one region with one credentials profile.

    Every HTTP attempt waits for a slot of the (account, region, action) budget (the
    account defaults to the profile's name), is signed afresh, is counted in the
    self-metrics and must finish within `timeout`. Failures raise
    the `exporter.cloud.errors` types; transient ones are retried first per `retry`.
    `verdicts`, when given, hears whether the cloud accepted the credentials.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: CredentialsProvider,
        region_id: str,
        *,
        budgets: RateBudgets | None = None,
        metrics: SelfMetrics | None = None,
        endpoint: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        account: str | None = None,
        verdicts: CredentialVerdicts | None = None,
    ) -> None:
        self._http = http
        self._credentials = credentials
        self._verdicts = verdicts
        self.account = account or credentials.profile
        """Whose rate budgets the calls take: the API throttles per account and region."""
        self.region_id = region_id
        self.base_url = endpoint_url(endpoint, region_id)
        self._budgets = budgets or RateBudgets()
        self._metrics = metrics or SelfMetrics()
        self._retry = retry or RetryPolicy()
        self._timeout = timeout if timeout is not None else (http.timeout.read or DEFAULT_TIMEOUT)
        self._max_response_bytes = max_response_bytes
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._rand = rand
        self._per_action: dict[str, tuple[RateBudget, Counter, Histogram]] = {}
        self._clock_offset = ClockOffset(self._metrics.set_clock_offset, wall_clock)

    @property
    def profile(self) -> str:
        """The credentials profile this client signs with."""
        return self._credentials.profile

    def rate_per_second(self, action: str) -> float:
        """Calls per second the budget of `action` currently allows this client."""
        return self._action(action)[0].rate_per_second

    async def call(
        self,
        action: str,
        params: Mapping[str, str],
        *,
        on_launch: Callable[[], None] | None = None,
        retry: RetryPolicy | None = None,
    ) -> dict[str, Any]:
        """Call an RPC action (`POST /?<params>`, empty body) and return its JSON answer.

        `RegionId` is always sent. Raises `ApiError` subclasses after retries run out.
        `on_launch` is called once, when the budget grants the first attempt: the moment
        the call could actually go out. `retry` replaces the client's policy for this call
        (a caller that retries itself passes `RetryPolicy(max_retries=0)`, so that retries
        do not multiply).
        """
        policy = retry or self._retry
        query = canonical_query([("RegionId", self.region_id), *params.items()])
        url = httpx.URL(f"{self.base_url}/?{query}")
        budget = self._action(action)[0]
        retries = 0
        while True:
            await budget.acquire()
            if on_launch is not None and retries == 0:
                on_launch()
            try:
                answer = await self._attempt(action, url)
            except CredentialsError:
                raise
            except ApiError as error:
                if isinstance(error, CloudError):
                    self._judge_credentials(error)
                if isinstance(error, CloudError) and error.throttled:
                    budget.throttled(error.retry_after)
                delay = policy.delay(retries, error, self._rand)
                if delay is None:
                    raise
                retries += 1
                log.debug(
                    "retrying %s in %s (attempt %d after %s: %s)",
                    action,
                    self.region_id,
                    retries + 1,
                    f"{delay:.2f}s",
                    failure_code(error),
                )
                await self._sleep(delay)
            else:
                budget.succeeded()
                if self._verdicts is not None:
                    self._verdicts.accepted()
                return answer

    def _judge_credentials(self, error: CloudError) -> None:
        """Tell `verdicts` whether the cloud's error answer accepted the credentials: a
        rejection says so; any other 4xx answer (not throttling) got past the check."""
        if self._verdicts is None:
            return
        if error.credentials_rejected:
            self._verdicts.rejected(str(error))
        elif error.status is not None and error.status < 500 and not error.throttled:
            self._verdicts.accepted()

    async def _attempt(self, action: str, url: httpx.URL) -> dict[str, Any]:
        """One signed HTTP exchange, counted and timed in the self-metrics."""
        _, requests, duration = self._action(action)
        auth = AcsV3Auth(self._credentials, action, clock=self._wall_clock)
        started = self._clock()
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.send(
                    self._http.build_request("POST", url), auth=auth, stream=True
                )
                try:
                    body = await self._read_body(action, response)
                finally:
                    await response.aclose()
            answer = self._decode(action, response, body)
        except CredentialsError:
            raise  # nothing was sent
        except ApiError as failure:
            self._count(action, requests, duration, started, failure)
            raise
        except (
            TimeoutError,
            httpx.TransportError,
            httpx.DecodingError,
            aiohttp.ClientError,
            OSError,
        ) as exc:
            error = self._transport_error(action, exc)
            self._count(action, requests, duration, started, error)
            raise error from exc
        self._count(action, requests, duration, started, None)
        return answer

    def _count(
        self,
        action: str,
        requests: Counter,
        duration: Histogram,
        started: float,
        error: ApiError | None,
    ) -> None:
        requests.inc()
        duration.observe(self._clock() - started)
        if error is not None:
            self._metrics.api_failures.labels(action, failure_code(error)).inc()
            log.debug("%s in %s failed: %s", action, self.region_id, error)

    def _transport_error(self, action: str, exc: Exception) -> ApiError:
        """Name what went wrong below HTTP. `httpx_aiohttp` maps every aiohttp connection
        error (a reset included) to `httpx.ConnectTimeout`, so the aiohttp cause decides."""
        cause = exc.__cause__
        if isinstance(exc, TimeoutError):
            return ApiTimeout(action, f"no answer within {self._timeout:g}s")
        if isinstance(exc, httpx.DecodingError):
            return InvalidResponse(action, f"undecodable body: {exc}")
        if isinstance(exc, httpx.TransportError):
            timed_out = (
                isinstance(cause, TimeoutError)
                if isinstance(cause, aiohttp.ClientError)
                else isinstance(exc, httpx.TimeoutException)
            )
            if timed_out:
                return ApiTimeout(action, f"timed out: {exc or type(exc).__name__}")
            return NetworkError(action, f"{type(cause or exc).__name__}: {exc}")
        return NetworkError(action, f"{type(exc).__name__}: {exc}")

    async def _read_body(self, action: str, response: httpx.Response) -> bytes:
        """Read the body, failing as soon as it exceeds the cap (never buffering more)."""
        cap = self._max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise self._too_large(action, response)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise self._too_large(action, response)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, action: str, response: httpx.Response) -> InvalidResponse:
        return InvalidResponse(
            action,
            f"response larger than {self._max_response_bytes} bytes",
            status=response.status_code,
            request_id=response.headers.get("x-acs-request-id"),
        )

    def _decode(self, action: str, response: httpx.Response, body: bytes) -> dict[str, Any]:
        """The JSON object of a 2xx answer; raise the error a non-2xx one describes."""
        status = response.status_code
        clock_offset = self._clock_offset.observe(response.headers.get("date"))
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        if not isinstance(document, dict):
            content_type = response.headers.get("content-type", "no content type")
            raise InvalidResponse(
                action,
                f"HTTP {status}: not a JSON object ({content_type}, {len(body)} bytes)",
                status=status,
                request_id=response.headers.get("x-acs-request-id"),
                retry_after=parse_retry_after(response.headers.get(RETRY_AFTER_HEADER)),
            )
        if 200 <= status < 300:
            return document
        code = document.get("Code")
        request_id = document.get("RequestId") or response.headers.get("x-acs-request-id")
        raise CloudError(
            action,
            str(document.get("Message") or f"HTTP {status}"),
            status=status,
            code=str(code) if code is not None else None,
            request_id=str(request_id) if request_id is not None else None,
            retry_after=parse_retry_after(response.headers.get(RETRY_AFTER_HEADER)),
            clock_offset=clock_offset,
        )

    def _action(self, action: str) -> tuple[RateBudget, Counter, Histogram]:
        """The budget and metric children of `action`, looked up once per client."""
        entry = self._per_action.get(action)
        if entry is None:
            entry = (
                self._budgets.get(self.account, self.region_id, action),
                self._metrics.api_requests.labels(action),
                self._metrics.api_duration.labels(action),
            )
            self._per_action[action] = entry
        return entry

    async def get_vpn_gateway_diagnose_result(
        self,
        *,
        vpn_gateway_id: str | None = None,
        diagnose_id: str | None = None,
        on_launch: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """The latest diagnosis of a gateway, or the diagnosis `diagnose_id`."""
        if not vpn_gateway_id and not diagnose_id:
            raise ValueError("give vpn_gateway_id or diagnose_id (or both)")
        params = {}
        if vpn_gateway_id:
            params["VpnGatewayId"] = vpn_gateway_id
        if diagnose_id:
            params["DiagnoseId"] = diagnose_id
        return await self.call("GetVpnGatewayDiagnoseResult", params, on_launch=on_launch)

    async def diagnose_vpn_gateway(
        self,
        vpn_gateway_id: str,
        vpn_connection_id: str,
        *,
        private_source_ip: str | None = None,
        private_destination_ip: str | None = None,
        client_token: str | None = None,
    ) -> dict[str, Any]:
        """Start a diagnosis of one IPsec connection; the answer carries its `DiagnoseId`.

        The private connectivity item needs both private IPs (VPC side, on-premises side).
        """
        params = {
            "VpnGatewayId": vpn_gateway_id,
            "ResourceType": "IPsec",
            "ResourceId": vpn_connection_id,
        }
        if private_source_ip and private_destination_ip:
            params["IPsecExtendInfo"] = json.dumps(
                {
                    "PrivateSourceIp": private_source_ip,
                    "PrivateDestinationIp": private_destination_ip,
                },
                separators=(",", ":"),
            )
        if client_token:
            params["ClientToken"] = client_token
        return await self.call("DiagnoseVpnGateway", params)

    async def describe_vpn_gateways(
        self,
        page_number: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        *,
        vpn_gateway_id: str | None = None,
        vpc_id: str | None = None,
        status: str | None = None,
        business_status: str | None = None,
        resource_group_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One page of the region's VPN gateways, filtered."""
        params = _page(page_number, page_size) | _tags(tags)
        filters = {
            "VpnGatewayId": vpn_gateway_id,
            "VpcId": vpc_id,
            "Status": status,
            "BusinessStatus": business_status,
            "ResourceGroupId": resource_group_id,
        }
        params |= {name: value for name, value in filters.items() if value}
        return await self.call("DescribeVpnGateways", params)

    async def describe_vpn_connections(
        self,
        page_number: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        *,
        vpn_gateway_id: str | None = None,
        vpn_connection_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One page of the region's IPsec connections, filtered."""
        params = _page(page_number, page_size) | _tags(tags)
        if vpn_gateway_id:
            params["VpnGatewayId"] = vpn_gateway_id
        if vpn_connection_id:
            params["VpnConnectionId"] = vpn_connection_id
        return await self.call("DescribeVpnConnections", params)


def _page(page_number: int, page_size: int) -> dict[str, str]:
    if page_number < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page {page_number} of size {page_size}: need 1.. and 1..50")
    return {"PageNumber": str(page_number), "PageSize": str(page_size)}


def _tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """`Tag.N.Key` / `Tag.N.Value` pairs, N from 1."""
    if not tags:
        return {}
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags can filter a listing, not {len(tags)}")
    params: dict[str, str] = {}
    for number, (key, value) in enumerate(tags.items(), start=1):
        params[f"Tag.{number}.Key"] = key
        params[f"Tag.{number}.Value"] = value
    return params
