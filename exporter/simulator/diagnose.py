"""Actions about quick diagnoses: DiagnoseVpnGateway and GetVpnGatewayDiagnoseResult."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from exporter.simulator.call import Call, Handler
from exporter.simulator.clock import format_api_time
from exporter.simulator.faults import DescriptionMode, FaultKind
from exporter.simulator.fleet import Gateway
from exporter.simulator.items import TOTAL_ITEMS, describe
from exporter.simulator.replies import ErrorReply
from exporter.simulator.runs import DiagnosisRun
from exporter.simulator.state import SimulatorState, StateExtension

_DIAGNOSE_PARAMS = ("RegionId", "VpnGatewayId", "ResourceType", "ResourceId", "IPsecExtendInfo")

_NESTED_GARBAGE: tuple[Any, ...] = ({"value": {"nested": ["garbage"]}}, "NaN", -42, [1, 2], None)


def encode_description(description: dict[str, Any], mode: DescriptionMode | None) -> Any:
    """`DiagnoseResultDescription` as sent: a JSON string, unless a fault mangles it."""
    match mode:
        case None:
            return json.dumps(description, separators=(",", ":"))
        case DescriptionMode.GARBAGE:
            return "<<diagnosis unavailable>> {" + json.dumps(description)[:12]
        case DescriptionMode.WRONG_TYPE:
            return json.dumps(list(description.values()))
        case DescriptionMode.NESTED_GARBAGE:
            return json.dumps(
                {
                    key: _NESTED_GARBAGE[i % len(_NESTED_GARBAGE)]
                    for i, key in enumerate(description)
                }
            )
        case DescriptionMode.DOUBLY_ENCODED:
            return json.dumps(json.dumps(description))
        case DescriptionMode.NUMBERS_AS_STRINGS:
            return json.dumps(
                {
                    key: str(value) if isinstance(value, int | float) else value
                    for key, value in description.items()
                }
            )
        case DescriptionMode.NOT_A_STRING:
            return description
        case DescriptionMode.EMPTY:
            return ""


def result_json(run: DiagnosisRun, call: Call) -> dict[str, Any]:
    """A GetVpnGatewayDiagnoseResult body, shaped like the API page's sample.

    Values are those found at the run's begin time, so one DiagnoseId always reads the same.
    While running, only the finished items are listed and `FinishTime` is absent
    (ASSUMPTION: the API pages do not say what a running diagnosis returns).
    """
    finished = run.finished_count(call.now, stalled=call.fault(FaultKind.NEVER_FINISH) is not None)
    bad = [f for f in call.faults if f.kind is FaultKind.BAD_DESCRIPTION]
    gateway, connection = run.gateway, run.connection
    src, dst = run.private_ips or (connection.local_ip, connection.remote_ip)
    results = []
    for item in gateway.items[:finished]:
        description = describe(
            item,
            at=run.begin,
            phase=gateway.phase,
            internet_target=connection.customer_gateway_ip,
            private_src=src,
            private_target=dst,
        )
        mode = next((f.mode for f in bad if f.item in (None, item.name)), None)
        results.append(
            {
                "DiagnoseName": item.name,
                "DiagnoseResultDescription": encode_description(description, mode),
                "DiagnoseResultLevel": item.level.value,
            }
        )
    body: dict[str, Any] = {
        "BeginTime": format_api_time(run.begin),
        "DiagnoseId": run.diagnose_id,
        "DiagnoseResult": results,
    }
    if finished == TOTAL_ITEMS:
        body["FinishTime"] = format_api_time(run.finish_time)
    body |= {
        "FinishedCount": finished,
        "ResourceInstanceId": connection.id,
        "ResourceType": "IPsec",
        "TotalCount": TOTAL_ITEMS,
        "VpnGatewayId": gateway.id,
    }
    return body


def _gateway(call: Call, gateway_id: str) -> Gateway:
    gateway = call.state.fleet.gateway(gateway_id)
    if gateway is None or gateway.region_id != call.region_id:
        raise ErrorReply("InvalidVpnGatewayInstanceId.NotFound")
    return gateway


_MAX_CLIENT_TOKEN = 64


def _client_token(call: Call) -> None:
    """The API page documents `param_error` ("The param is must be in ...") without saying
    for which parameter. ASSUMPTION: a `ClientToken` that is not 1 to 64 ASCII characters
    (the page: "The client token can contain only ASCII characters")."""
    token = call.param("ClientToken")
    if token is not None and (not token.isascii() or len(token) > _MAX_CLIENT_TOKEN):
        raise ErrorReply("param_error")


def get_vpn_gateway_diagnose_result(call: Call) -> dict[str, Any]:
    region = call.region_id
    _client_token(call)
    diagnose_id = call.param("DiagnoseId")
    gateway_id = call.param("VpnGatewayId")
    if diagnose_id is not None:
        run = call.state.runs.get(diagnose_id)
        if (
            run is None
            or run.gateway.region_id != region
            or gateway_id not in (None, run.gateway.id)
        ):
            raise ErrorReply.about("InvalidDiagnoseId.NotFound", diagnose_id)
    elif gateway_id is not None:
        run = call.state.runs.latest(_gateway(call, gateway_id), call.now)
        if run is None:
            raise ErrorReply.about("InvalidVpnGatewayId.NotFound", gateway_id)
    else:
        raise ErrorReply("MissingParam.DiagnoseInfo")
    return result_json(run, call)


def _private_ips(call: Call) -> tuple[str, str] | None:
    """(PrivateSourceIp, PrivateDestinationIp) from the `IPsecExtendInfo` JSON string."""
    raw = call.param("IPsecExtendInfo")
    if raw is None:
        return None
    try:
        info = json.loads(raw)
        src, dst = info["PrivateSourceIp"], info["PrivateDestinationIp"]
        ipaddress.ip_address(src)
        ipaddress.ip_address(dst)
    except (ValueError, TypeError, KeyError):
        raise ErrorReply.invalid("IPsecExtendInfo", raw) from None
    return str(src), str(dst)


class ClientTokens(StateExtension):
    """DiagnoseVpnGateway's idempotency: a ClientToken seen before returns the same run."""

    def __init__(self, state: SimulatorState) -> None:
        super().__init__(state)
        self.runs: dict[str, tuple[tuple[str | None, ...], str]] = {}


def diagnose_vpn_gateway(call: Call) -> dict[str, Any]:
    gateway = _gateway(call, call.require("VpnGatewayId"))
    resource_type = call.require("ResourceType")
    if resource_type != "IPsec":
        raise ErrorReply.invalid("ResourceType", resource_type)
    resource_id = call.require("ResourceId")
    connection = next((c for c in gateway.connections if c.id == resource_id), None)
    if connection is None:
        raise ErrorReply.about("InvalidVpnConnectionInstanceId.NotFound", resource_id)
    private_ips = _private_ips(call)

    token = call.param("ClientToken")
    tokens = call.state.extension(ClientTokens).runs
    fingerprint = tuple(call.param(name) for name in _DIAGNOSE_PARAMS)
    if token is not None and token in tokens:
        seen_fingerprint, run_id = tokens[token]
        if seen_fingerprint != fingerprint:
            raise ErrorReply("IdempotentParameterMismatch")
        return {"DiagnoseId": run_id}

    run = call.state.runs.start(
        gateway,
        connection,
        call.now,
        private_ips=private_ips,
        stalled=call.fault(FaultKind.NEVER_FINISH) is not None,
    )
    if token is not None:
        tokens[token] = (fingerprint, run.diagnose_id)
    return {"DiagnoseId": run.diagnose_id}


ACTIONS: dict[str, Handler] = {
    "DiagnoseVpnGateway": diagnose_vpn_gateway,
    "GetVpnGatewayDiagnoseResult": get_vpn_gateway_diagnose_result,
}
