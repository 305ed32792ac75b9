"""Errors of the admin API as RFC 9457 problem documents, and the deliberate mapping of
every cloud error code to an HTTP status.

Each problem has a `type` URI (an identifier; the README lists them) whose last part, the
slug, is also the `reason` label of `aliyun_vpn_admin_request_failures_total`. A problem
caused by the cloud carries its `code`, `message` and `request_id`, so an operator can
quote them to Alibaba Cloud support.

Who must act decides the status: 4xx when the caller can change the request (or the
routes it conflicts with), 502 when the exporter's own account or credentials are at
fault, 503 (with `Retry-After`) when the same request may succeed later, 504 when the
cloud did not answer in time and the outcome is unknown (retry with the same
`Idempotency-Key`: the ClientToken makes that safe).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from starlette.responses import Response

from exporter.cloud.errors import AUTH_CODES, ApiError, ApiTimeout, CloudError, CredentialsError

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:aliyun-vpn-exporter:problem:"
"""Problem types are identifiers, not pages (RFC 9457 allows a `type` that does not
resolve); the README's table documents each."""


@dataclass(frozen=True, slots=True)
class ProblemType:
    """A kind of problem: its slug, HTTP status and title."""

    slug: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        return PROBLEM_TYPE_BASE + self.slug

    @property
    def reason(self) -> str:
        """The `reason` label of the failure counter."""
        return self.slug.replace("-", "_")


MALFORMED_REQUEST = ProblemType("malformed-request", 400, "The request body is not JSON")
INCOMPLETE_REQUEST = ProblemType("incomplete-request", 400, "The request body did not arrive whole")
UNAUTHENTICATED = ProblemType("unauthenticated", 401, "Authentication required")
NOT_ALLOWED = ProblemType("not-allowed", 403, "Outside the operator's allow-lists")
NOT_FOUND = ProblemType("not-found", 404, "No such resource")
CONNECTION_NOT_FOUND = ProblemType("connection-not-found", 404, "No such IPsec connection")
METHOD_NOT_ALLOWED = ProblemType("method-not-allowed", 405, "Method not allowed")
ROUTE_EXISTS = ProblemType("route-exists", 409, "The route already exists")
ROUTE_CONFLICT = ProblemType("route-conflict", 409, "The route conflicts with existing routes")
QUOTA_EXCEEDED = ProblemType("quota-exceeded", 409, "A route quota is full")
CONNECTION_LOCKED = ProblemType(
    "connection-locked", 409, "The connection is locked for overdue payment"
)
PAYLOAD_TOO_LARGE = ProblemType("payload-too-large", 413, "The request body is too large")
INVALID_REQUEST = ProblemType("invalid-request", 422, "The request is invalid")
NOT_ATTACHED = ProblemType(
    "not-attached-to-transit-router", 422, "The connection is not attached to a transit router"
)
INVALID_ROUTE = ProblemType("invalid-route", 422, "The cloud refused the route as invalid")
IDEMPOTENCY_KEY_REUSED = ProblemType(
    "idempotency-key-reused", 422, "The Idempotency-Key was used for another request"
)
INTERNAL_ERROR = ProblemType("internal-error", 500, "A bug in the exporter; see its log")
UPSTREAM_PERMISSION_DENIED = ProblemType(
    "upstream-permission-denied", 502, "The exporter's cloud identity lacks a permission"
)
UPSTREAM_AUTHENTICATION_FAILED = ProblemType(
    "upstream-authentication-failed", 502, "The exporter's cloud credentials were refused"
)
UPSTREAM_ERROR = ProblemType("upstream-error", 502, "The cloud API failed")
UPSTREAM_UNREACHABLE = ProblemType("upstream-unreachable", 502, "The cloud API is unreachable")
UPSTREAM_BUSY = ProblemType("upstream-busy", 503, "Busy: try again later")
SHUTTING_DOWN = ProblemType("shutting-down", 503, "The exporter is shutting down")
UPSTREAM_TIMEOUT = ProblemType("upstream-timeout", 504, "The cloud API did not answer in time")

PROBLEM_TYPES: tuple[ProblemType, ...] = (
    MALFORMED_REQUEST,
    INCOMPLETE_REQUEST,
    UNAUTHENTICATED,
    NOT_ALLOWED,
    NOT_FOUND,
    CONNECTION_NOT_FOUND,
    METHOD_NOT_ALLOWED,
    ROUTE_EXISTS,
    ROUTE_CONFLICT,
    QUOTA_EXCEEDED,
    CONNECTION_LOCKED,
    PAYLOAD_TOO_LARGE,
    INVALID_REQUEST,
    NOT_ATTACHED,
    INVALID_ROUTE,
    IDEMPOTENCY_KEY_REUSED,
    INTERNAL_ERROR,
    UPSTREAM_PERMISSION_DENIED,
    UPSTREAM_AUTHENTICATION_FAILED,
    UPSTREAM_ERROR,
    UPSTREAM_UNREACHABLE,
    UPSTREAM_BUSY,
    SHUTTING_DOWN,
    UPSTREAM_TIMEOUT,
)

RETRIED_CODES = frozenset(
    {
        "VpnGateway.Configuring",
        "TaskConflict",
        "Appliance.Configuring",
        "VpnTask.CONFLICT",
        "VpnConnection.Configuring",
        "ServiceUnavailable",
    }
)
"""Codes the Terraform provider retries around CreateVcoRouteEntry (with one ClientToken),
besides any `Throttling*` and 5xx (FACTS)."""

CLOUD_CODES: Mapping[str, ProblemType] = {
    # the CreateVcoRouteEntry page, every code
    "Resource.QuotaFull": QUOTA_EXCEEDED,
    "VpnConnection.Configuring": UPSTREAM_BUSY,
    "VpnConnection.FinancialLocked": CONNECTION_LOCKED,
    "VpnRouteEntry.AlreadyExists": ROUTE_EXISTS,
    "VpnRouteEntry.Conflict": ROUTE_CONFLICT,
    "VpnRouteEntry.ConflictSSL": ROUTE_CONFLICT,
    "VpnRouteEntry.BackupRoute": ROUTE_CONFLICT,
    "InvalidNextHop.NotFound": INVALID_ROUTE,
    "IllegalParam.RouteDest": INVALID_ROUTE,
    "OperationFailed.InvalidCidrBlock": INVALID_ROUTE,
    "QuotaExceeded.VpnRouteEntry": QUOTA_EXCEEDED,
    "TaskConflict": UPSTREAM_BUSY,
    "Forbbiden.SubUser": UPSTREAM_PERMISSION_DENIED,
    "Forbidden": UPSTREAM_PERMISSION_DENIED,
    "InvalidVpnConnectionInstanceId.NotFound": CONNECTION_NOT_FOUND,
    # common codes (FACTS) and the other transient codes the Terraform provider retries
    "Forbidden.RAM": UPSTREAM_PERMISSION_DENIED,
    "Forbidden.SubUser": UPSTREAM_PERMISSION_DENIED,
    "IdempotentParameterMismatch": IDEMPOTENCY_KEY_REUSED,
    "InvalidParameter": INVALID_ROUTE,
    "Throttling": UPSTREAM_BUSY,
    "Throttling.User": UPSTREAM_BUSY,
    "Throttling.Api": UPSTREAM_BUSY,
    "ServiceUnavailable": UPSTREAM_BUSY,
    "VpnGateway.Configuring": UPSTREAM_BUSY,
    "Appliance.Configuring": UPSTREAM_BUSY,
    "VpnTask.CONFLICT": UPSTREAM_BUSY,
}
"""Every cloud code the admin API maps deliberately. Other credential codes are
`upstream-authentication-failed`, any other code `upstream-error` (502)."""


class InvalidParam(BaseModel):
    """One field that failed validation."""

    name: str = Field(description="The field: a body key, `vpn_connection_id`, a header.")
    reason: str


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The request's path.")
    code: str | None = Field(default=None, description="The cloud's error Code.")
    message: str | None = Field(default=None, description="The cloud's error Message.")
    request_id: str | None = Field(default=None, description="The cloud's RequestId.")
    missing_permission: str | None = Field(
        default=None, description="The RAM action the exporter's identity lacks."
    )
    invalid_params: list[InvalidParam] | None = None


@dataclass(eq=False)
class ProblemError(Exception):
    """A request that ends in a problem document."""

    kind: ProblemType
    detail: str
    invalid_params: Sequence[InvalidParam] = ()
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    missing_permission: str | None = None
    retry_after: int | None = None
    """Seconds for `Retry-After` (503 answers)."""
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, f"{self.kind.slug}: {self.detail}")

    def document(self, instance: str | None = None) -> Problem:
        return Problem(
            type=self.kind.uri,
            title=self.kind.title,
            status=self.kind.status,
            detail=self.detail,
            instance=instance,
            code=self.code,
            message=self.message,
            request_id=self.request_id,
            missing_permission=self.missing_permission,
            invalid_params=list(self.invalid_params) or None,
        )

    def response(self, instance: str | None = None) -> Response:
        """The problem as an `application/problem+json` answer."""
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        body = self.document(instance).model_dump_json(exclude_none=True)
        return Response(body, self.kind.status, headers, media_type=PROBLEM_MEDIA_TYPE)


def retry_after_seconds(error: ApiError, default: float) -> int:
    """Whole seconds a client should wait: the cloud's hint, else `default` (at least 1)."""
    return max(1, math.ceil(error.retry_after or default))


def cloud_problem(error: ApiError, *, retry_after_default: float) -> ProblemError:
    """The problem a failed cloud call ends the request with, after any retries."""
    if isinstance(error, ApiTimeout):
        return ProblemError(
            UPSTREAM_TIMEOUT,
            f"{error.action} got no answer in time; the outcome is unknown. Retry with the "
            "same Idempotency-Key: the cloud will not create the route twice.",
        )
    if isinstance(error, CredentialsError):
        return ProblemError(
            UPSTREAM_AUTHENTICATION_FAILED,
            "the exporter could not resolve its cloud credentials; see its log",
        )
    if not isinstance(error, CloudError):
        unreachable = error.metric_code == "NetworkError"
        return ProblemError(
            UPSTREAM_UNREACHABLE if unreachable else UPSTREAM_ERROR,
            f"{error.action} failed: {error.message}",
            request_id=error.request_id,
        )
    code = error.code or ""
    kind = CLOUD_CODES.get(code)
    if kind is None:
        if code in AUTH_CODES:
            kind = UPSTREAM_AUTHENTICATION_FAILED
        elif code.startswith("Throttling") or (error.status or 0) == 503:
            kind = UPSTREAM_BUSY
        else:
            kind = UPSTREAM_ERROR
    # Credential errors can quote what was signed; their message stays in the log only.
    message = None if kind is UPSTREAM_AUTHENTICATION_FAILED else error.message
    problem = ProblemError(
        kind,
        _detail(kind, error),
        code=error.code,
        message=message,
        request_id=error.request_id,
    )
    if kind is UPSTREAM_PERMISSION_DENIED:
        problem.missing_permission = f"vpc:{error.action}"
    if kind is UPSTREAM_BUSY:
        problem.retry_after = retry_after_seconds(error, retry_after_default)
    return problem


def _detail(kind: ProblemType, error: CloudError) -> str:
    if kind is UPSTREAM_PERMISSION_DENIED:
        return (
            f"the exporter's RAM identity may not call vpc:{error.action}; grant it "
            "(see the least-privilege policy in deploy/)"
        )
    if kind is UPSTREAM_AUTHENTICATION_FAILED:
        return f"the cloud refused the exporter's credentials ({error.code})"
    if kind is UPSTREAM_BUSY:
        return f"{error.action} is still refused after retries ({error.code}); try again later"
    return f"{error.action} failed: {error.code}: {error.message}"
