"""The VPC API actions the exporter calls, and the documented codes that decide what a
GetVpnGatewayDiagnoseResult answer means (API page and FACTS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from exporter.cloud.errors import is_missing_parameter

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
OUR_BUG = frozenset({"MissingParam.DiagnoseInfo", "InvalidDiagnoseId.NotFound", "param_error"})
"""Codes that mean the exporter sent a wrong request (`param_error`: "The param is must be
in ...", documented on the GetVpnGatewayDiagnoseResult page)."""


def is_our_bug(code: str | None) -> bool:
    """Whether `code` means the exporter sent a wrong request: `OUR_BUG`, `MissingParameter`
    or the gateway's `Missing{Name}` (`MissingRegionId`)."""
    return code in OUR_BUG or is_missing_parameter(code)


class DiagnosisSource(Protocol):
    """The part of the VPC client a poll needs. `on_launch`, when given, is called once,
    when the call's first attempt may go out (its rate budget slot is granted)."""

    async def get_vpn_gateway_diagnose_result(
        self,
        *,
        vpn_gateway_id: str | None = None,
        diagnose_id: str | None = None,
        on_launch: Callable[[], None] | None = None,
    ) -> dict[str, Any]: ...


class DiagnosisRunner(DiagnosisSource, Protocol):
    """The part of the VPC client a scheduled diagnosis needs
    (`exporter.collect.scheduled_diagnoses`): starting one, and reading its result."""

    async def diagnose_vpn_gateway(
        self,
        vpn_gateway_id: str,
        vpn_connection_id: str,
        *,
        private_source_ip: str | None = None,
        private_destination_ip: str | None = None,
        client_token: str | None = None,
    ) -> dict[str, Any]: ...
