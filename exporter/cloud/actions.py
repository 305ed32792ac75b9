"""The VPC API actions the exporter calls, and the documented codes that decide what a
GetVpnGatewayDiagnoseResult answer means (API page and FACTS)."""

from __future__ import annotations

from typing import Any, Protocol

RESULT_ACTION = "GetVpnGatewayDiagnoseResult"
DIAGNOSE_ACTION = "DiagnoseVpnGateway"

NO_DIAGNOSIS = "InvalidVpnGatewayId.NotFound"
"""The gateway exists but has no diagnosis yet: a documented answer, not a failure."""
DIAGNOSIS_FAILED = frozenset(
    {"IncorrectStatus.DiagnoseTimeout", "IncorrectStatus.VpnConnectionDeleted"}
)
"""The diagnosis itself failed: the previous good data is kept."""
NO_SUCH_GATEWAY = "InvalidVpnGatewayInstanceId.NotFound"
"""The gateway does not exist: a configuration problem."""
OUR_BUG = frozenset({"MissingParam.DiagnoseInfo", "InvalidDiagnoseId.NotFound"})
"""Codes that mean the exporter sent a wrong request."""


class DiagnosisSource(Protocol):
    """The part of the VPC client a poll needs."""

    async def get_vpn_gateway_diagnose_result(
        self, *, vpn_gateway_id: str | None = None, diagnose_id: str | None = None
    ) -> dict[str, Any]: ...
