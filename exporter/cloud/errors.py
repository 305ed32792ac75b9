"""Errors of the VPC API as values with names, carrying what a user needs to act.

An `ApiError` never carries a secret: only the HTTP status, the cloud's `Code`,
`Message` and `RequestId`, and the action that failed. The message comes from whoever
answered (a proxy, a misconfigured endpoint that echoes the request), so it is cleaned
where the error is made, for every consumer (logs, the status page, admin problem
documents): values of `Signature`, `AccessKeyId`, `Authorization` and the like are
replaced with `[redacted]`, and it is cut at `MAX_MESSAGE` characters.
"""

from __future__ import annotations

import re

MAX_MESSAGE = 512
"""Characters of an API error message kept (the cloud's own are far shorter)."""
_SECRET_NAMES = (
    r"signature|accesskeyid|access_key_id|access-key-id|securitytoken|security_token"
    r"|x-acs-security-token|credential|accesskeysecret|access_key_secret"
)
_SECRET_VALUE = re.compile(
    rf"(?i)(\b(?:{_SECRET_NAMES})[\"']?\s*(?:=|:|%3D)\s*[\"']?)[^\s\"'&,;<>]+"
)
_AUTHORIZATION = re.compile(r"(?i)(\bauthorization[\"']?\s*(?:=|:|%3D)\s*[\"']?)[^\"'&\r\n<>]+")


def clean_message(message: str) -> str:
    """`message` with secret-looking values redacted and its length capped."""
    message = _AUTHORIZATION.sub(r"\1[redacted]", message)
    message = _SECRET_VALUE.sub(r"\1[redacted]", message)
    if len(message) > MAX_MESSAGE:
        message = f"{message[:MAX_MESSAGE]}... ({len(message)} characters, cut)"
    return message


THROTTLING_CODES = frozenset({"Throttling", "Throttling.User", "Throttling.Api"})
TRANSIENT_CODES = THROTTLING_CODES | {"ServiceUnavailable", "VpnGateway.Configuring"}
"""Codes worth retrying with backoff (besides any 5xx and network errors)."""

AUTH_CODES = frozenset(
    {
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "IncompleteSignature",
        "SignatureNonceUsed",
        "InvalidSecurityToken.Expired",
        "InvalidSecurityToken.Malformed",
        "Forbidden",
        "Forbidden.RAM",
        "Forbbiden.SubUser",
        "Forbidden.SubUser",
    }
)


CLOCK_CODES = frozenset({"InvalidTimeStamp.Expired", "InvalidTimeStamp.Format", "IllegalTimestamp"})
"""The request's date is more than 15 minutes off the API's clock, or malformed (FACTS;
`IllegalTimestamp` from older gateways): a problem of the host clock, never of the
credentials, so these are not `AUTH_CODES`."""

MISSING_PARAMETER = "MissingParameter"
MISSING_PREFIX = "Missing"
"""The gateway's common code for a missing parameter is `Missing{Name}` (`MissingRegionId`)."""
MISSING_NAMES = frozenset(
    {
        "RegionId",
        "VpnGatewayId",
        "DiagnoseId",
        "ResourceType",
        "ResourceId",
        "VpnConnectionId",
        "RouteDest",
        "NextHop",
        "Weight",
        "Action",
        "Version",
    }
)
"""Parameters the exporter sends: `Missing{Name}` of these are the codes used as metric labels."""


def is_missing_parameter(code: str | None) -> bool:
    """Whether `code` says a required parameter was not sent: `MissingParameter` or
    `Missing{Name}` (not `MissingParam.DiagnoseInfo`, which has its own meaning)."""
    if code is None or not code.startswith(MISSING_PREFIX) or "." in code:
        return False
    name = code[len(MISSING_PREFIX) :]
    return code == MISSING_PARAMETER or (name[:1].isupper() and name.isalnum())


def rejects_credentials(code: str | None) -> bool:
    """Whether the cloud's `code` says it does not accept the credentials themselves
    (a wrong secret, an unknown or disabled AccessKey, a bad or expired STS token), as
    opposed to a permission, a clock or a request problem."""
    return code is not None and (
        code == "SignatureDoesNotMatch"
        or code.startswith("InvalidAccessKeyId.")
        or code.startswith("InvalidSecurityToken.")
    )


AUTH_ADVICE = {
    "SignatureDoesNotMatch": "the AccessKey secret is wrong (the signature does not match "
    "it): check ALIBABA_CLOUD_ACCESS_KEY_SECRET or the profile's access_key_secret",
    "IncompleteSignature": "the request's signature is incomplete: a proxy may change requests",
    "InvalidAccessKeyId.NotFound": "the AccessKey ID does not exist: check "
    "ALIBABA_CLOUD_ACCESS_KEY_ID or the profile's access_key_id",
    "InvalidAccessKeyId.Inactive": "the AccessKey is disabled: enable it in the RAM console "
    "or use another",
    "InvalidSecurityToken.Expired": "the STS token has expired: a fixed security_token "
    "cannot be refreshed, use a ram_role_arn, oidc or ecs_ram_role profile",
    "InvalidSecurityToken.Malformed": "the STS token is malformed: check "
    "ALIBABA_CLOUD_SECURITY_TOKEN or the profile's security_token",
    "SignatureNonceUsed": "a request nonce was used twice: report it if it persists",
}
"""What a user should do about each authentication code (none is a missing permission)."""


class ApiError(Exception):
    """A failed call to the VPC API."""

    #: the `code` label of `aliyun_vpn_api_request_failures_total` for this error
    metric_code: str = "other"

    def __init__(
        self,
        action: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        clock_offset: float | None = None,
    ) -> None:
        message = clean_message(message)
        super().__init__(message)
        self.action = action
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        self.clock_offset = clock_offset
        """Host clock minus the answer's `Date` header, in seconds, when it had one."""

    @property
    def transient(self) -> bool:
        """Whether retrying the same call later may succeed."""
        return False

    def __str__(self) -> str:
        parts = [f"{self.action}: {self.message}"]
        if self.code:
            parts.append(f"code={self.code}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)


class CloudError(ApiError):
    """The API answered with its error body (`Code`, `Message`, `RequestId`).

    Its metric label comes from `exporter.cloud.client.failure_code`, which keeps the label set
    bounded to documented codes.
    """

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT_CODES or (self.status is not None and self.status >= 500)

    @property
    def throttled(self) -> bool:
        return self.code is not None and self.code.startswith("Throttling")

    @property
    def auth_failure(self) -> bool:
        """The cloud rejected the credentials or their permissions (never a clock problem)."""
        return not self.clock_problem and (self.code in AUTH_CODES or self.status == 403)

    @property
    def credentials_rejected(self) -> bool:
        """The cloud does not accept the credentials (see `rejects_credentials`)."""
        return rejects_credentials(self.code)

    @property
    def clock_problem(self) -> bool:
        """The API refused the request's date: the host clock is off (or the date garbled)."""
        return self.code in CLOCK_CODES

    @property
    def advice(self) -> str | None:
        """What to do about an authentication or permission failure, else None."""
        if self.code in AUTH_ADVICE:
            return AUTH_ADVICE[self.code]
        if self.auth_failure:
            return (
                f"the credentials lack the RAM action vpc:{self.action}: attach "
                "deploy/ram-policy.json (and deploy/ram-policy-diagnose.json for scheduled "
                "diagnoses) to the RAM user or role"
            )
        return None


def clock_problem_message(error: ApiError) -> str:
    """What to tell the operator about a refused date, from the answer's `Date` header."""
    offset = error.clock_offset
    if offset is None:
        return (
            "the API refused the request's date: the host clock is probably more than "
            "15 minutes off (the answer had no Date header to tell by how much); "
            "synchronise it (NTP)"
        )
    minutes = round(abs(offset) / 60)
    direction = "ahead of" if offset > 0 else "behind"
    return (
        f"the host clock is off by about {minutes} minutes ({abs(offset):.0f}s {direction} "
        "the API's Date header); the API refuses requests more than 15 minutes off: "
        "synchronise the host clock (NTP)"
    )


class NetworkError(ApiError):
    """The request never got an HTTP answer: refused, reset, DNS, TLS."""

    metric_code = "NetworkError"

    @property
    def transient(self) -> bool:
        return True


class ApiTimeout(NetworkError):
    """The API did not answer within the configured timeout."""

    metric_code = "Timeout"


class InvalidResponse(ApiError):
    """An answer that is not the documented JSON (HTML page, truncated, too large)."""

    metric_code = "InvalidResponse"

    @property
    def transient(self) -> bool:
        return self.status is not None and self.status >= 500


class CredentialsError(ApiError):
    """Credentials could not be resolved for the account; no request was sent."""

    def __init__(self, action: str, message: str, *, advice: str | None = None) -> None:
        super().__init__(action, message)
        self.advice = advice
        """What the user should do, when it is known (no credentials at all, say)."""


DOCUMENTED_CODES = (
    THROTTLING_CODES
    | AUTH_CODES
    | CLOCK_CODES
    | {MISSING_PREFIX + name for name in MISSING_NAMES}
    | {
        # FACTS: common codes
        "ServiceUnavailable",
        "InternalError",
        "MissingParameter",
        "InvalidParameter",
        "IdempotentParameterMismatch",
        "DryRunOperation",
        # GetVpnGatewayDiagnoseResult
        "param_error",
        "MissingParam.DiagnoseInfo",
        "VpnGateway.Configuring",
        "IncorrectStatus.DiagnoseTimeout",
        "IncorrectStatus.VpnConnectionDeleted",
        "InvalidDiagnoseId.NotFound",
        "InvalidVpnGatewayId.NotFound",
        "InvalidVpnGatewayInstanceId.NotFound",
        # CreateVcoRouteEntry
        "Resource.QuotaFull",
        "VpnConnection.Configuring",
        "VpnConnection.FinancialLocked",
        "VpnRouteEntry.AlreadyExists",
        "VpnRouteEntry.Conflict",
        "VpnRouteEntry.ConflictSSL",
        "VpnRouteEntry.BackupRoute",
        "InvalidNextHop.NotFound",
        "IllegalParam.RouteDest",
        "OperationFailed.InvalidCidrBlock",
        "QuotaExceeded.VpnRouteEntry",
        "TaskConflict",
        "InvalidVpnConnectionInstanceId.NotFound",
    }
)
"""Cloud error codes the API reference documents: the only ones used as metric labels, so a
misbehaving endpoint cannot inflate the `code` label's cardinality."""


def failure_code(error: ApiError) -> str:
    """The `code` label of `aliyun_vpn_api_request_failures_total` for `error`."""
    if isinstance(error, CloudError):
        return error.code if error.code in DOCUMENTED_CODES else "other"
    return error.metric_code
