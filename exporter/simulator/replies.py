"""The API's answers on the wire: JSON bodies, the error body and its documented codes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

JSON_MEDIA_TYPE = "application/json;charset=utf-8"

ABORT_EXTENSION = "exporter.simulator.abort"
"""ASGI scope extension: a callable resetting the request's connection (set by the server)."""

KNOWN_ERRORS: dict[str, tuple[int, str]] = {
    # common codes (FACTS)
    "InvalidAction.NotFound": (
        404,
        "Specified api is not found, please check your url and method.",
    ),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "MissingParameter": (400, "A required parameter is not supplied."),
    # `Missing{Name}` (FACTS): built by `ErrorReply.missing`, "{Name} is mandatory for this
    # action.", HTTP 400.
    "InvalidParameter": (400, "The specified parameter is not valid."),
    "SignatureDoesNotMatch": (400, "Specified signature does not match our calculation."),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    # ASSUMPTION: FACTS names the code, not its message; this is the common codes' wording.
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    # older gateways (FACTS); the simulator serves the two codes above
    "IllegalTimestamp": (400, "Specified time stamp or date value is not in the valid range."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "InvalidSecurityToken.Malformed": (400, "Specified SecurityToken is malformed."),
    "Throttling": (400, "Request was denied due to flow control."),
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "Throttling.Api": (400, "Request was denied due to api flow control."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
    "InternalError": (
        500,
        "The request processing has failed due to some unknown error, exception or failure.",
    ),
    "Forbidden.RAM": (
        403,
        "User not authorized to operate on the specified resource, "
        "or this API doesn't support RAM.",
    ),
    "IdempotentParameterMismatch": (
        400,
        "The request uses the same client token as a previous, but non-identical request.",
    ),
    # GetVpnGatewayDiagnoseResult (the API page beside FACTS)
    "param_error": (400, "The param is must be in ..."),
    "MissingParam.DiagnoseInfo": (
        400,
        "The VPN gateway ID and diagnose ID cannot be empty at the same time.",
    ),
    "VpnGateway.Configuring": (400, "The specified service is configuring."),
    "IncorrectStatus.DiagnoseTimeout": (400, "Diagnose failed because of timeout."),
    "IncorrectStatus.VpnConnectionDeleted": (
        400,
        "Diagnose failed because the VPN connection has been deleted.",
    ),
    "Forbidden": (403, "User not authorized to operate on the specified resource."),
    "InvalidDiagnoseId.NotFound": (404, "The specified diagnose ID [%s] does not exist."),
    "InvalidVpnGatewayId.NotFound": (
        404,
        "The specified VPN gateway [%s] does not have any diagnoses.",
    ),
    "InvalidVpnGatewayInstanceId.NotFound": (
        404,
        "The specified vpn gateway instance id does not exist.",
    ),
    # CreateVcoRouteEntry page
    "InvalidVpnConnectionInstanceId.NotFound": (
        404,
        "The specified vpn connection instance id does not exist.",
    ),
    "Resource.QuotaFull": (400, "The quota of resource is full"),
    "VpnConnection.Configuring": (400, "The specified service is configuring."),
    "VpnConnection.FinancialLocked": (400, "The specified service is financial locked."),
    "VpnRouteEntry.AlreadyExists": (400, "The specified route entry is already exist."),
    "VpnRouteEntry.Conflict": (400, "The specified route entry has conflict."),
    "VpnRouteEntry.ConflictSSL": (400, "The specified route entry has conflict with SSL client."),
    "VpnRouteEntry.BackupRoute": (400, "Validate backup route entry failed."),
    "InvalidNextHop.NotFound": (400, "The specified NextHop does not exist."),
    "IllegalParam.RouteDest": (400, "The specified RouteDest is invalid"),
    "OperationFailed.InvalidCidrBlock": (
        400,
        "Operation failed because the specified network block is invalid.",
    ),
    "QuotaExceeded.VpnRouteEntry": (
        400,
        "The number of route entries to the VPN gateway in the VPC routing table has reached "
        "the quota limit.",
    ),
    "TaskConflict": (400, "The operation is too frequent, please wait a moment and try again."),
    "Forbbiden.SubUser": (403, "User not authorized to operate on the specified resource."),
    "DryRunOperation": (400, "Request validation has been passed with DryRun flag set."),
}

DEFAULT_CODE_FOR_STATUS = {
    500: "InternalError",
    502: "ServiceUnavailable",
    503: "ServiceUnavailable",
}
"""The code an injected 5xx carries when the fault names none (502 has no documented code)."""


class ErrorReply(Exception):
    """An answer with the API's error body; raised by handlers and the request pipeline."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        status: int | None = None,
        retry_after_ms: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        known_status, known_message = KNOWN_ERRORS.get(code, (400, code))
        self.code = code
        self.message = message if message is not None else known_message
        self.status = status if status is not None else known_status
        self.retry_after_ms = retry_after_ms
        self.detail = dict(detail or {})
        super().__init__(f"{self.status} {code}: {self.message}")

    @classmethod
    def about(cls, code: str, subject: str) -> ErrorReply:
        """A documented error whose message names the resource (`[%s]` in the API's text)."""
        template = KNOWN_ERRORS[code][1]
        return cls(code, template % subject if "%s" in template else f"{template} ({subject})")

    @classmethod
    def missing(cls, name: str) -> ErrorReply:
        """The gateway's common code for a missing parameter: `Missing{Name}` (FACTS)."""
        return cls(f"Missing{name}", f"{name} is mandatory for this action.")

    @classmethod
    def invalid(cls, name: str, value: str) -> ErrorReply:
        return cls("InvalidParameter", f'The specified parameter "{name}" ({value!r}) is invalid.')


def new_request_id() -> str:
    """A request ID in the API's format (upper-case UUID)."""
    return str(uuid.uuid4()).upper()


def dump_json(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_response(
    content: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(content, status_code=status, headers=headers, media_type=JSON_MEDIA_TYPE)


def error_response(error: ErrorReply, request_id: str, host_id: str) -> Response:
    """The real error body: `RequestId`, `HostId`, `Code`, `Message`, `Recommend`."""
    body: dict[str, Any] = {
        "RequestId": request_id,
        "HostId": host_id,
        "Code": error.code,
        "Message": error.message,
        "Recommend": (
            f"https://api.aliyun.com/troubleshoot?q={error.code}&product=Vpc&requestId={request_id}"
        ),
        **error.detail,
    }
    headers = {"x-acs-request-id": request_id}
    if error.retry_after_ms is not None:
        headers["x-acs-retry-after"] = str(error.retry_after_ms)
    return json_response(dump_json(body), error.status, headers)


class DroppedConnection(Response):
    """No HTTP answer: the connection is reset.

    The server running the simulator provides the reset (`ABORT_EXTENSION`); under another
    ASGI server the answer is started and never finished, so that server drops the connection.
    """

    def __init__(self) -> None:
        super().__init__(status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        abort = scope.get("extensions", {}).get(ABORT_EXTENSION)
        if abort is not None and abort():
            await asyncio.sleep(0)  # let the server see the connection go first
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
        )
