"""The admin API's routes, error handlers and OpenAPI document (FastAPI).

- `POST /api/v1/vpn-connections/{vpn_connection_id}/routes` adds a route;
- `GET` on the same path lists the connection's routes;
- `GET /api/v1/openapi.json` describes both, every status included.

Order of checks on a create, each before anything costlier: authentication and the whole
body (the gate), the body and parameters, the region, the operator's allow-lists (the
connection, the next hop, the destination), a next hop that is another connection, the
Idempotency-Key; only then the cloud (the connection's attachment, state and tunnels, the
existing routes, and the create itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import Response

from exporter import __version__
from exporter.admin.audit import OPENAPI_PATH, Audit, attempt_of, operation_of
from exporter.admin.auth import client_address, principal_of
from exporter.admin.idempotency import IdempotencyKeyReused, IdempotencyStore, StoredAnswer
from exporter.admin.problems import (
    IDEMPOTENCY_KEY_REUSED,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    MALFORMED_REQUEST,
    METHOD_NOT_ALLOWED,
    NOT_ALLOWED,
    NOT_FOUND,
    PROBLEM_MEDIA_TYPE,
    SHUTTING_DOWN,
    InvalidParam,
    Problem,
    ProblemError,
)
from exporter.admin.schemas import DryRunResult, Route, RouteCreated, RouteList
from exporter.admin.service import CallTrace, CreateOutcome, RouteService
from exporter.admin.validation import (
    CONNECTION_ID_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    NEXT_HOP_RULE,
    REGION_ID_PATTERN,
    RouteRequest,
    is_connection_id,
)
from exporter.config.model import AdminConfig

ROUTES = "/api/v1/vpn-connections/{vpn_connection_id}/routes"

RouteEntryType = Literal["custom", "bgp"]

ConnectionId = Annotated[
    str,
    Path(
        pattern=CONNECTION_ID_PATTERN,
        description="The IPsec connection (`vco-...`).",
        examples=["vco-p0w2jpkhi2eeop6q6"],
    ),
]

_ERROR_DESCRIPTIONS = {
    400: "The body is not JSON.",
    401: "No valid credentials (basic auth or bearer token); nothing was done.",
    403: "The connection or destination is outside the operator's allow-lists.",
    404: "The region has no such IPsec connection.",
    409: "The route exists or conflicts with others, a quota is full, or the connection is "
    "locked for overdue payment.",
    413: "The body is too large.",
    422: "A field is invalid (see invalid_params), the connection is not attached to a transit "
    "router, the cloud refused the route, or the Idempotency-Key was used for another request.",
    500: "A bug in the exporter.",
    502: "The exporter's cloud identity lacks a permission (missing_permission), its "
    "credentials were refused, or the cloud failed.",
    503: "The cloud is throttling or the connection is still busy after retries, or the "
    "exporter is stopping; retry after Retry-After seconds.",
    504: "The cloud did not answer in time; the outcome is unknown. Retry with the same "
    "Idempotency-Key.",
}
_CREATE_ERRORS = (400, 401, 403, 404, 409, 413, 422, 500, 502, 503, 504)
_LIST_ERRORS = (401, 403, 404, 413, 422, 500, 502, 503, 504)


def _errors(statuses: tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": Problem, "description": _ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


def _fingerprint(connection_id: str, body: RouteRequest) -> str:
    canonical = json.dumps(
        {"vpn_connection_id": connection_id, **body.model_dump()}, sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def routes_location(connection_id: str, region_id: str) -> str:
    return f"/api/v1/vpn-connections/{connection_id}/routes?region_id={region_id}"


class AdminApi:
    """The FastAPI app and what its handlers need."""

    def __init__(
        self,
        admin: AdminConfig,
        regions: frozenset[str],
        service: RouteService,
        store: IdempotencyStore,
        audit: Audit,
        *,
        security_schemes: dict[str, dict[str, str]],
    ) -> None:
        self._admin = admin
        self._regions = regions
        self._service = service
        self._store = store
        self._audit = audit
        self._security_schemes = security_schemes
        self.app = FastAPI(
            title="aliyun-vpn-exporter admin API",
            version=__version__,
            description="Adds destination-based routes to IPsec connections attached to a "
            "transit router (CreateVcoRouteEntry), safely.",
            openapi_url=OPENAPI_PATH,
            docs_url=None,
            redoc_url=None,
        )
        self._add_routes()
        self.app.add_exception_handler(ProblemError, self._on_problem)
        self.app.add_exception_handler(RequestValidationError, self._on_invalid)
        self.app.add_exception_handler(HTTPException, self._on_http_error)
        self.app.add_exception_handler(Exception, self._on_bug)
        self.app.openapi = self._openapi  # type: ignore[method-assign]

    def reconfigure(self, admin: AdminConfig, regions: frozenset[str]) -> None:
        """Apply a reloaded configuration's allow-lists and regions (and describe the new
        regions in the OpenAPI document)."""
        self._admin = admin
        self._regions = regions
        self.app.openapi_schema = None

    # --- routes -------------------------------------------------------------------------

    def _add_routes(self) -> None:
        @self.app.post(
            ROUTES,
            operation_id="createRoute",
            summary="Add a destination-based route to the connection",
            status_code=202,
            response_model=None,
            responses={
                200: {"model": DryRunResult, "description": "dry_run: the cloud accepted it."},
                201: {
                    "model": RouteCreated,
                    "description": "Created: the connection settled and lists the route.",
                    "headers": {"Location": _location_header()},
                },
                202: {
                    "model": RouteCreated,
                    "description": "Accepted: the cloud is creating the route; see Location.",
                    "headers": {"Location": _location_header()},
                },
                **_errors(_CREATE_ERRORS),
            },
        )
        async def create_route(
            request: Request,
            vpn_connection_id: ConnectionId,
            body: RouteRequest,
            wait: Annotated[
                bool,
                Query(description="Wait until the connection settles (201), else answer 202."),
            ] = False,
            idempotency_key: Annotated[
                str | None,
                Header(
                    alias="Idempotency-Key",
                    pattern=IDEMPOTENCY_KEY_PATTERN,
                    description="Makes retries safe: becomes the cloud's ClientToken; the same "
                    "key with the same request returns the first answer.",
                ),
            ] = None,
        ) -> Response:
            request.state.route_request = body
            self._check_scope(vpn_connection_id, body)
            started = time.monotonic()
            key = idempotency_key or str(uuid.uuid4())

            async def run() -> StoredAnswer:
                return await self._create(
                    request,
                    vpn_connection_id,
                    body,
                    key,
                    idempotency_key is not None,
                    wait,
                    started,
                )

            if idempotency_key is None:
                answer = await run()
            else:
                try:
                    answer, replayed = await self._store.once(
                        key, _fingerprint(vpn_connection_id, body), run
                    )
                except IdempotencyKeyReused:
                    raise ProblemError(
                        IDEMPOTENCY_KEY_REUSED,
                        "this Idempotency-Key was first used with another request; "
                        "use a new key for a new request",
                        invalid_params=[
                            InvalidParam(name="Idempotency-Key", reason="used for another request")
                        ],
                    ) from None
                if replayed:
                    self._replayed(request, vpn_connection_id, body, answer)
                    headers = (*answer.headers, ("Idempotent-Replayed", "true"))
                    return Response(answer.body, answer.status, dict(headers))
            return Response(answer.body, answer.status, dict(answer.headers))

        @self.app.get(
            ROUTES,
            operation_id="listRoutes",
            summary="List the connection's routes",
            response_model=RouteList,
            responses=_errors(_LIST_ERRORS),
        )
        async def list_routes(
            vpn_connection_id: ConnectionId,
            region_id: Annotated[
                str,
                Query(
                    pattern=REGION_ID_PATTERN,
                    max_length=64,
                    description="The connection's region; one of the configured regions.",
                ),
            ],
            route_entry_type: Annotated[
                RouteEntryType | None,
                Query(description="Only custom (static) or bgp routes; default: as the cloud."),
            ] = None,
        ) -> RouteList:
            self._check_region(region_id)
            self._check_connection(vpn_connection_id)
            connection = await self._service.connection(region_id, vpn_connection_id)
            routes = await self._service.list_routes(region_id, vpn_connection_id, route_entry_type)
            return RouteList(
                region_id=region_id,
                vpn_connection_id=vpn_connection_id,
                connection_state=connection.state,
                total_count=len(routes),
                routes=[Route.from_cloud(route) for route in routes],
            )

    # --- checks before any cloud call ---------------------------------------------------

    def _check_region(self, region_id: str) -> None:
        if region_id not in self._regions:
            configured = ", ".join(sorted(self._regions)) or "none"
            raise ProblemError(
                INVALID_REQUEST,
                f"region {region_id} is not configured (configured: {configured})",
                invalid_params=[InvalidParam(name="region_id", reason="not a configured region")],
            )

    def _check_connection(self, connection_id: str) -> None:
        allowed = self._admin.allowed_connections
        if allowed and connection_id not in allowed:
            raise ProblemError(NOT_ALLOWED, f"{connection_id} is not in admin.allowed_connections")

    def _check_scope(self, connection_id: str, body: RouteRequest) -> None:
        self._check_region(body.region_id)
        self._check_connection(connection_id)
        if is_connection_id(body.next_hop):
            self._check_connection(body.next_hop)
            if body.next_hop != connection_id:
                raise ProblemError(
                    INVALID_REQUEST,
                    f"next_hop {body.next_hop} is another connection: a route's next hop is "
                    f"{connection_id} itself or one of its tunnels",
                    invalid_params=[InvalidParam(name="next_hop", reason=NEXT_HOP_RULE)],
                )
        allowed = self._admin.allowed_destinations
        dest = ipaddress.IPv4Network(body.route_dest)
        if allowed and not any(dest.subnet_of(network) for network in allowed):
            raise ProblemError(
                NOT_ALLOWED,
                f"{dest} is not inside admin.allowed_destinations "
                f"({', '.join(str(network) for network in allowed)})",
            )

    # --- the create -------------------------------------------------------------------

    async def _create(
        self,
        request: Request,
        connection_id: str,
        body: RouteRequest,
        key: str,
        caller_key: bool,
        wait: bool,
        started: float,
    ) -> StoredAnswer:
        """Run the create and make its answer (success or problem), auditing it once."""
        trace = CallTrace()
        try:
            outcome = await self._service.create(
                connection_id, body, key, caller_token=caller_key, wait=wait, trace=trace
            )
        except asyncio.CancelledError:  # at shutdown; the gate answers and counts it
            self._audit_create(
                request, connection_id, body, "cancelled", SHUTTING_DOWN.status, trace, started
            )
            raise
        except ProblemError as problem:
            self._audit.failure("create_route", problem.kind.reason)
            self._audit_create(
                request,
                connection_id,
                body,
                problem.kind.reason,
                problem.kind.status,
                trace,
                started,
                code=problem.code,
                request_id=problem.request_id,
            )
            return _stored(problem.response(request.url.path), problem.kind.reason)
        response = self._success(connection_id, body, key, outcome)
        self._audit_create(
            request,
            connection_id,
            body,
            outcome.status,
            response.status_code,
            trace,
            started,
            request_id=outcome.request_id,
        )
        return _stored(response)

    def _success(
        self, connection_id: str, body: RouteRequest, key: str, outcome: CreateOutcome
    ) -> Response:
        route = Route.from_cloud(outcome.route)
        if outcome.status == "dry_run":
            document = DryRunResult(
                region_id=body.region_id,
                vpn_connection_id=connection_id,
                route=route,
                request_id=outcome.request_id,
            ).model_dump_json()
            return Response(document, 200, media_type="application/json")
        created = RouteCreated(
            status=outcome.status,
            region_id=body.region_id,
            vpn_connection_id=connection_id,
            route=route,
            request_id=outcome.request_id,
            idempotency_key=key,
        )
        return Response(
            created.model_dump_json(),
            201 if outcome.status == "created" else 202,
            {"Location": routes_location(connection_id, body.region_id)},
            media_type="application/json",
        )

    def _audit_create(
        self,
        request: Request,
        connection_id: str,
        body: RouteRequest | None,
        outcome: str,
        status: int,
        trace: CallTrace | None,
        started: float | None,
        **extra: Any,
    ) -> None:
        """Settle the request's create attempt; the gate writes its audit line."""
        attempt = attempt_of(request.scope.get("state", {}))
        if attempt is None:  # only requests through the gate reach the API
            return
        principal = principal_of(request.scope)
        fields: dict[str, Any] = {
            "user": principal.name if principal else None,
            "auth": principal.method if principal else None,
            "remote_addr": client_address(request.scope),
            "vpn_connection_id": connection_id,
        }
        if body is not None:
            fields |= {
                "region_id": body.region_id,
                "route_dest": body.route_dest,
                "next_hop": body.next_hop,
                "weight": body.weight,
                "description": body.description,
                "dry_run": body.dry_run,
            }
        if trace is not None:
            fields |= {"request_id": trace.request_id, "create_calls": trace.creates}
        if started is not None:
            fields["duration_seconds"] = round(time.monotonic() - started, 3)
        attempt.settle(outcome, status, fields | extra)

    def _replayed(
        self, request: Request, connection_id: str, body: RouteRequest, answer: StoredAnswer
    ) -> None:
        self._audit_create(
            request,
            connection_id,
            body,
            "replayed",
            answer.status,
            None,
            None,
            idempotency_key=request.headers.get("idempotency-key"),
        )
        if answer.failure_reason is not None:
            self._audit.failure("create_route", answer.failure_reason)

    # --- errors -------------------------------------------------------------------------

    async def _on_problem(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, ProblemError)
        operation = operation_of(request.method, request.url.path)
        self._audit.failure(operation, error.kind.reason)
        if operation == "create_route":
            self._audit_create(
                request,
                request.path_params.get("vpn_connection_id", ""),
                getattr(request.state, "route_request", None),
                error.kind.reason,
                error.kind.status,
                None,
                None,
            )
        return error.response(request.url.path)

    async def _on_invalid(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        params = []
        malformed = False
        for item in error.errors():
            if item.get("type") == "json_invalid":
                malformed = True
            params.append(InvalidParam(name=_field_name(item["loc"]), reason=item["msg"]))
        if malformed:
            problem = ProblemError(MALFORMED_REQUEST, "the body is not valid JSON")
        else:
            problem = ProblemError(
                INVALID_REQUEST,
                "invalid: " + ", ".join(sorted({param.name for param in params})),
                invalid_params=params,
            )
        return await self._on_problem(request, problem)

    async def _on_http_error(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        headers = dict(error.headers or {})
        if error.status_code == 405:
            # Starlette names the methods of the first route on the path only.
            path = request.url.path
            methods = {
                method
                for route in self.app.routes
                if isinstance(route, APIRoute) and route.path_regex.fullmatch(path)
                for method in route.methods or ()
            }
            headers["Allow"] = ", ".join(sorted(methods))
        if error.status_code == 400:
            # FastAPI's answer to a body json.loads cannot read at all (not UTF-8, nested
            # too deeply): as malformed as any other non-JSON body.
            problem = ProblemError(
                MALFORMED_REQUEST, "the body is not valid JSON (UTF-8, not nested too deeply)"
            )
            return await self._on_problem(request, problem)
        kind = METHOD_NOT_ALLOWED if error.status_code == 405 else NOT_FOUND
        problem = ProblemError(kind, str(error.detail), headers=headers)
        return await self._on_problem(request, problem)

    async def _on_bug(self, request: Request, error: Exception) -> Response:
        # Starlette raises the error again once this answer is sent: the server logs it.
        return await self._on_problem(
            request, ProblemError(INTERNAL_ERROR, "an unexpected error; see the exporter's log")
        )

    # --- OpenAPI ------------------------------------------------------------------------

    def _openapi(self) -> dict[str, Any]:
        """FastAPI's document, with problem bodies as `application/problem+json`, the
        configured regions as an enum, the response headers and the auth schemes."""
        if self.app.openapi_schema:
            return self.app.openapi_schema
        document = get_openapi(
            title=self.app.title,
            version=self.app.version,
            description=self.app.description,
            routes=self.app.routes,
        )
        problem_ref = {"$ref": "#/components/schemas/Problem"}
        for path_item in document["paths"].values():
            for operation in path_item.values():
                for status, response in operation["responses"].items():
                    if int(status) >= 400:
                        response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": problem_ref}}
                    if status == "401":
                        response["headers"] = {"WWW-Authenticate": _header("The schemes.")}
                    if status == "503":
                        response["headers"] = {
                            "Retry-After": _header("Seconds to wait.", integer=True)
                        }
                    if (
                        status in ("200", "201", "202")
                        and operation["operationId"] == "createRoute"
                    ):
                        response.setdefault("headers", {})["Idempotent-Replayed"] = _header(
                            "true when this is the stored answer to an earlier request "
                            "with the same Idempotency-Key.",
                            required=False,
                        )
                for parameter in operation.get("parameters", []):
                    _not_nullable(parameter)
                    if parameter["name"] == "region_id":
                        parameter["schema"]["enum"] = sorted(self._regions)
        schemas = document["components"]["schemas"]
        schemas["RouteRequest"]["properties"]["region_id"]["enum"] = sorted(self._regions)
        document["components"]["securitySchemes"] = self._security_schemes
        document["security"] = [{name: []} for name in self._security_schemes]
        self.app.openapi_schema = document
        return document


def _stored(response: Response, failure_reason: str | None = None) -> StoredAnswer:
    headers = tuple(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in response.raw_headers
        if name != b"content-length"
    )
    return StoredAnswer(response.status_code, bytes(response.body), headers, failure_reason)


def _field_name(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """`route_dest` for a body field, `vpn_connection_id` for the path, `Idempotency-Key`
    for the header."""
    parts = [str(part) for part in loc]
    if parts and parts[0] in ("body", "path", "query", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _not_nullable(parameter: dict[str, Any]) -> None:
    """An optional query or header parameter is left out, never sent as null: drop the
    `null` branch pydantic gives `X | None`."""
    schema = parameter["schema"]
    variants = [v for v in schema.get("anyOf", ()) if v != {"type": "null"}]
    if len(variants) == 1 and len(schema["anyOf"]) == 2:
        del schema["anyOf"]
        schema.update(variants[0])


def _header(description: str, *, integer: bool = False, required: bool = True) -> dict[str, Any]:
    return {
        "description": description,
        "required": required,
        "schema": {"type": "integer" if integer else "string"},
    }


def _location_header() -> dict[str, Any]:
    return _header("The connection's routes (GET), where the new route's state shows.")
