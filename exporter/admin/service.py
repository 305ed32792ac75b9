"""The cloud side of the admin API: creating and listing a connection's routes.

CreateVcoRouteEntry is asynchronous and refuses concurrent or rapid changes to one
connection (`TaskConflict`, `VpnConnection.Configuring`), so creates on one connection are
serialised here: each waits its turn, then waits for the connection to leave `updating`
before calling. The codes the Terraform provider retries are retried with the same
ClientToken (so the cloud creates the route at most once), here only: the VPC client does
not retry CreateVcoRouteEntry itself, so one admin request makes at most
`AdminSettings.max_create_attempts` Create calls, and everything up to the create's answer
(queueing, waiting, every attempt) fits in `AdminSettings.deadline`. Answers become typed
values at this edge; a malformed answer is the cloud's failure (502), never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from exporter.admin.problems import (
    CONNECTION_NOT_FOUND,
    INVALID_REQUEST,
    NOT_ATTACHED,
    RETRIED_CODES,
    ROUTE_EXISTS,
    UPSTREAM_BUSY,
    UPSTREAM_TIMEOUT,
    InvalidParam,
    ProblemError,
    cloud_problem,
)
from exporter.admin.settings import AdminSettings
from exporter.admin.validation import NEXT_HOP_RULE, RouteRequest
from exporter.clock import Clock
from exporter.cloud.client import VpcClient
from exporter.cloud.errors import ApiError, CloudError, InvalidResponse
from exporter.cloud.paging import MAX_PAGE_SIZE
from exporter.cloud.retry import RetryPolicy

log = logging.getLogger(__name__)

CREATE = "CreateVcoRouteEntry"
DESCRIBE_ROUTES = "DescribeVcoRouteEntries"
DESCRIBE_CONNECTIONS = "DescribeVpnConnections"
UPDATING = "updating"
ATTACHED_TO_TRANSIT_ROUTER = "CEN"
ONE_ATTEMPT = RetryPolicy(max_retries=0)
"""How the VPC client calls CreateVcoRouteEntry: `RouteService` is its one retry layer."""


def _millis_to_datetime(value: object) -> object:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    return value


class _CloudModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _tunnel_ids(value: object) -> object:
    entries = value.get("TunnelOptions") if isinstance(value, dict) else None
    if not isinstance(entries, list):
        return ()
    return tuple(
        entry["TunnelId"]
        for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("TunnelId"), str)
    )


class CloudConnection(_CloudModel):
    """An IPsec connection as DescribeVpnConnections shows it (what the admin API needs)."""

    vpn_connection_id: str = Field(alias="VpnConnectionId")
    state: str | None = Field(default=None, alias="State")
    attach_type: str | None = Field(default=None, alias="AttachType")
    tunnel_ids: Annotated[tuple[str, ...], BeforeValidator(_tunnel_ids)] = Field(
        default=(), alias="TunnelOptionsSpecification"
    )


class CloudRoute(_CloudModel):
    """A destination-based route, from DescribeVcoRouteEntries or CreateVcoRouteEntry."""

    route_dest: str = Field(alias="RouteDest")
    next_hop: str = Field(alias="NextHop")
    weight: int = Field(alias="Weight")
    state: str | None = Field(default=None, alias="State")
    route_entry_type: str | None = Field(default=None, alias="RouteEntryType")
    source: str | None = Field(default=None, alias="Source")
    description: str | None = Field(default=None, alias="Description")
    overlay_mode: str | None = Field(default=None, alias="OverlayMode")
    create_time: Annotated[datetime | None, BeforeValidator(_millis_to_datetime)] = Field(
        default=None, alias="CreateTime"
    )


class _ConnectionPage(_CloudModel):
    connections: list[CloudConnection]


class _RoutePage(_CloudModel):
    total_count: int = Field(alias="TotalCount")
    routes: list[CloudRoute] = Field(alias="VcoRouteEntries")


@dataclass(slots=True)
class CallTrace:
    """What the cloud calls of one admin request did, for the audit line."""

    creates: int = 0
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class CreateOutcome:
    """How a create ended: `created` (settled), `pending` (still being created) or
    `dry_run` (the cloud accepted the request and created nothing)."""

    status: Literal["created", "pending", "dry_run"]
    route: CloudRoute
    request_id: str | None


class QueueTimeout(Exception):
    """A lock of `KeyedLocks` was not free in time."""


class KeyedLocks:
    """One FIFO lock per key, dropped when nobody holds or waits for it (so random
    connection IDs cannot grow the table)."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable, timeout: float) -> AsyncIterator[None]:
        """Hold the key's lock; `QueueTimeout` if it is not free within `timeout` seconds."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            try:
                async with asyncio.timeout(max(timeout, 0.0)):
                    await lock.acquire()
            except TimeoutError:
                raise QueueTimeout from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


ModelT = TypeVar("ModelT", bound=BaseModel)


def _parse(model: type[ModelT], action: str, answer: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(answer)
    except ValidationError as error:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in error.errors())
        raise InvalidResponse(
            action, f"unexpected answer (fields: {fields})", request_id=answer.get("RequestId")
        ) from None


class RouteService:
    """Creates and lists routes through the VPC client of each configured region."""

    def __init__(
        self,
        clients: Callable[[str], VpcClient],
        settings: AdminSettings,
        clock: Clock,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._clients = clients
        self._settings = settings
        self._clock = clock
        self._rand = rand
        self._locks = KeyedLocks()
        self._retry_after = max(1, math.ceil(settings.retry_after))

    async def create(
        self,
        connection_id: str,
        request: RouteRequest,
        client_token: str,
        *,
        caller_token: bool,
        wait: bool,
        trace: CallTrace,
    ) -> CreateOutcome:
        """Create (or with `dry_run` only check) a route; raise `ProblemError` if it fails.

        `caller_token`: the ClientToken is the caller's Idempotency-Key (not one made up
        for this request).
        """
        client = self._clients(request.region_id)
        deadline = self._clock.monotonic() + self._settings.deadline
        try:
            async with self._locks.hold(
                (request.region_id, connection_id), deadline - self._clock.monotonic()
            ):
                try:
                    async with asyncio.timeout(max(0.0, deadline - self._clock.monotonic())):
                        answer = await self._submit(
                            client,
                            connection_id,
                            request,
                            client_token,
                            caller_token,
                            deadline,
                            trace,
                        )
                except TimeoutError:
                    raise self._past_deadline(connection_id, trace) from None
                return await self._outcome(client, connection_id, request, answer, wait, trace)
        except QueueTimeout:
            raise ProblemError(
                UPSTREAM_BUSY,
                f"other route changes on {connection_id} are still queued; try again later",
                retry_after=self._retry_after,
            ) from None
        except ApiError as error:
            raise cloud_problem(error, retry_after_default=self._settings.retry_after) from None

    def _past_deadline(self, connection_id: str, trace: CallTrace) -> ProblemError:
        if trace.creates == 0:  # nothing was asked to change: simply busy
            return ProblemError(
                UPSTREAM_BUSY,
                f"{connection_id} could not be changed within the "
                f"{self._settings.deadline:g} s deadline; try again later",
                retry_after=self._retry_after,
            )
        return ProblemError(
            UPSTREAM_TIMEOUT,
            f"no answer from {CREATE} within the {self._settings.deadline:g} s deadline; "
            "the outcome is unknown. Retry with the same Idempotency-Key: the cloud will not "
            "create the route twice.",
            request_id=trace.request_id,
        )

    async def _submit(
        self,
        client: VpcClient,
        connection_id: str,
        request: RouteRequest,
        client_token: str,
        caller_token: bool,
        deadline: float,
        trace: CallTrace,
    ) -> dict[str, Any] | None:
        """Check the connection, then create; the create's answer (None: a dry run passed)."""
        connection = await self._connection(client, connection_id)
        if connection.attach_type != ATTACHED_TO_TRANSIT_ROUTER:
            raise ProblemError(
                NOT_ATTACHED,
                f"{connection_id} is attached as {connection.attach_type or 'nothing'}; "
                "CreateVcoRouteEntry only serves connections attached to a transit router (CEN)",
            )
        if request.next_hop != connection_id and request.next_hop not in connection.tunnel_ids:
            raise ProblemError(
                INVALID_REQUEST,
                f"next_hop {request.next_hop} is neither {connection_id} nor one of its tunnels "
                f"({', '.join(connection.tunnel_ids) or 'none'})",
                invalid_params=[InvalidParam(name="next_hop", reason=NEXT_HOP_RULE)],
            )
        if connection.state == UPDATING:
            connection = await self._until_settled(client, connection_id, deadline)
            if connection.state == UPDATING:
                raise ProblemError(
                    UPSTREAM_BUSY,
                    f"{connection_id} is still updating from an earlier change",
                    retry_after=self._retry_after,
                )
        # The pre-check spares a create call that could only fail. With the caller's own
        # Idempotency-Key the cloud decides instead: the route may be this very request's,
        # created before an exporter restart, and the ClientToken then returns its answer.
        routes = [] if caller_token else await self._routes(client, connection_id)
        if any(_same_route(route, request) for route in routes):
            raise ProblemError(
                ROUTE_EXISTS,
                f"{connection_id} already has a route to {request.route_dest} via "
                f"{request.next_hop}",
            )
        return await self._call_create(
            client, connection_id, request, client_token, deadline, trace
        )

    async def _outcome(
        self,
        client: VpcClient,
        connection_id: str,
        request: RouteRequest,
        answer: dict[str, Any] | None,
        wait: bool,
        trace: CallTrace,
    ) -> CreateOutcome:
        """What the create did: with `wait`, once the connection has settled (or not)."""
        if answer is None:
            return CreateOutcome("dry_run", _proposed(request), trace.request_id)
        created = _parse(CloudRoute, CREATE, answer)
        if not wait:
            return CreateOutcome("pending", created, trace.request_id)
        wait_until = self._clock.monotonic() + self._settings.wait_timeout
        listed = await self._until_listed(client, connection_id, request, wait_until)
        if listed is None:
            return CreateOutcome("pending", created, trace.request_id)
        return CreateOutcome("created", listed, trace.request_id)

    async def _call_create(
        self,
        client: VpcClient,
        connection_id: str,
        request: RouteRequest,
        client_token: str,
        deadline: float,
        trace: CallTrace,
    ) -> dict[str, Any] | None:
        """CreateVcoRouteEntry, retried with the same ClientToken while the code is
        transient and the deadline allows; None when a dry run passed."""
        params = {
            "VpnConnectionId": connection_id,
            "RouteDest": request.route_dest,
            "NextHop": request.next_hop,
            "Weight": str(request.weight),
            "ClientToken": client_token,
        }
        if request.description is not None:
            params["Description"] = request.description
        if request.overlay_mode is not None:
            params["OverlayMode"] = request.overlay_mode
        if request.dry_run:
            params["DryRun"] = "true"
        retries = 0
        while True:
            trace.creates += 1
            try:
                answer = await client.call(CREATE, params, retry=ONE_ATTEMPT)
            except ApiError as error:
                trace.request_id = error.request_id or trace.request_id
                if request.dry_run and error.code == "DryRunOperation":
                    return None
                delay = self._retry_delay(retries, error)
                if (
                    delay is None
                    or trace.creates >= self._settings.max_create_attempts
                    or self._clock.monotonic() + delay > deadline
                ):
                    raise
                retries += 1
                log.info(
                    "retrying CreateVcoRouteEntry",
                    extra={
                        "fields": {
                            "vpn_connection_id": connection_id,
                            "code": error.code or error.metric_code,
                            "request_id": error.request_id,
                            "delay_seconds": round(delay, 3),
                        }
                    },
                )
                await self._clock.sleep(delay)
            else:
                request_id = answer.get("RequestId")
                trace.request_id = str(request_id) if request_id else trace.request_id
                return answer

    def _retry_delay(self, retries: int, error: ApiError) -> float | None:
        retried = error.transient or (isinstance(error, CloudError) and error.code in RETRIED_CODES)
        if not retried:
            return None
        ceiling = min(self._settings.retry_cap, self._settings.retry_base * 2.0**retries)
        return max(error.retry_after or 0.0, self._rand() * ceiling)

    async def connection(self, region_id: str, connection_id: str) -> CloudConnection:
        """The connection, or `ProblemError` 404 when the region has no such connection."""
        try:
            return await self._connection(self._clients(region_id), connection_id)
        except ApiError as error:
            raise cloud_problem(error, retry_after_default=self._settings.retry_after) from None

    async def list_routes(
        self, region_id: str, connection_id: str, route_entry_type: str | None
    ) -> list[CloudRoute]:
        """Every route of the connection (all DescribeVcoRouteEntries pages)."""
        try:
            return await self._routes(self._clients(region_id), connection_id, route_entry_type)
        except ApiError as error:
            raise cloud_problem(error, retry_after_default=self._settings.retry_after) from None

    async def _connection(self, client: VpcClient, connection_id: str) -> CloudConnection:
        answer = await client.describe_vpn_connections(vpn_connection_id=connection_id)
        page = _parse(
            _ConnectionPage,
            DESCRIBE_CONNECTIONS,
            {"connections": (answer.get("VpnConnections") or {}).get("VpnConnection") or []},
        )
        for connection in page.connections:
            if connection.vpn_connection_id == connection_id:
                return connection
        raise ProblemError(
            CONNECTION_NOT_FOUND, f"{client.region_id} has no IPsec connection {connection_id}"
        )

    async def _routes(
        self, client: VpcClient, connection_id: str, route_entry_type: str | None = None
    ) -> list[CloudRoute]:
        routes: list[CloudRoute] = []
        for number in range(1, self._settings.max_route_pages + 1):
            params = {
                "VpnConnectionId": connection_id,
                "PageNumber": str(number),
                "PageSize": str(MAX_PAGE_SIZE),
            }
            if route_entry_type is not None:
                params["RouteEntryType"] = route_entry_type
            page = _parse(_RoutePage, DESCRIBE_ROUTES, await client.call(DESCRIBE_ROUTES, params))
            routes.extend(page.routes)
            if not page.routes or len(routes) >= page.total_count:
                return routes
        log.warning(
            "route listing cut short",
            extra={"fields": {"vpn_connection_id": connection_id, "routes": len(routes)}},
        )
        return routes

    async def _until_settled(
        self, client: VpcClient, connection_id: str, until: float
    ) -> CloudConnection:
        """The connection once it is no longer `updating`, or as it is at `until`."""
        while True:
            await self._pause(until)
            connection = await self._connection(client, connection_id)
            if connection.state != UPDATING or self._clock.monotonic() >= until:
                return connection

    async def _until_listed(
        self, client: VpcClient, connection_id: str, request: RouteRequest, until: float
    ) -> CloudRoute | None:
        """The new route once its connection has settled and lists it; None at `until`.

        The first look comes a poll interval after the create: a connection may take a
        moment to enter `updating`, and must not be mistaken for done before it has.
        """
        while True:
            await self._pause(until)
            connection = await self._connection(client, connection_id)
            if connection.state != UPDATING:
                for route in await self._routes(client, connection_id):
                    if _same_route(route, request):
                        return route
            if self._clock.monotonic() >= until:
                return None

    async def _pause(self, until: float) -> None:
        remaining = until - self._clock.monotonic()
        await self._clock.sleep(max(0.0, min(self._settings.poll_interval, remaining)))


def _same_route(route: CloudRoute, request: RouteRequest) -> bool:
    return route.route_dest == request.route_dest and route.next_hop == request.next_hop


def _proposed(request: RouteRequest) -> CloudRoute:
    """The route a dry run would have created."""
    return CloudRoute(
        RouteDest=request.route_dest,
        NextHop=request.next_hop,
        Weight=request.weight,
        Description=request.description,
        OverlayMode=request.overlay_mode or "Ipsec",
    )
