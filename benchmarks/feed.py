"""Simulator answers without HTTP, fed to the exporter through its real paths.

Loading 10,000 gateways over HTTP takes the simulator about 20 s (it answers some 500
calls per second on this machine); the scrape and update benchmarks are about what
happens *after* an answer arrives, so they take the simulator's answers straight from its
request handlers instead: the same JSON bytes it would send (generated fleet, every item
kind, both probes, connections with their tunnels), decoded with `json.loads` and handed
to the exporter where the client's answers go: `GetVpnGatewayDiagnoseResult` to
`Poller.poll`, `DescribeVpnGateways` and `DescribeVpnConnections` to the inventory's
refreshes. Gateways without a diagnosis raise the same `CloudError`
(`InvalidVpnGatewayId.NotFound`) the client would. The fleet served is therefore the one
the command line serves against the same simulator scenario (a test checks it).

Answers at a later simulated time are new diagnoses (the simulator re-diagnoses every
gateway each minute): new IDs and times, drifted RTT, loss and quota values.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from exporter.cloud.errors import CloudError
from exporter.simulator.call import Call, Handler
from exporter.simulator.diagnose import get_vpn_gateway_diagnose_result
from exporter.simulator.gateways import describe_vpn_connections, describe_vpn_gateways
from exporter.simulator.generator import generated_scenario
from exporter.simulator.replies import ErrorReply, dump_json
from exporter.simulator.simulator import Simulator

ACTION = "GetVpnGatewayDiagnoseResult"
Answer = bytes | ErrorReply


def regions_of(count: int) -> list[str]:
    """`count` region names for a generated fleet."""
    names = [
        "cn-hangzhou",
        "cn-shanghai",
        "cn-beijing",
        "cn-shenzhen",
        "cn-qingdao",
        "cn-zhangjiakou",
        "cn-huhehaote",
        "cn-chengdu",
        "cn-hongkong",
        "ap-southeast-1",
        "ap-southeast-3",
        "ap-southeast-5",
        "ap-northeast-1",
        "ap-south-1",
        "us-west-1",
        "us-east-1",
        "eu-central-1",
        "eu-west-1",
        "me-east-1",
        "ap-southeast-2",
        "ap-southeast-6",
    ]
    if count <= len(names):
        return names[:count]
    return [*names, *(f"xx-region-{n}" for n in range(len(names), count))]


class GeneratedFleet:
    """A generated simulator fleet and its answers at any simulated time."""

    def __init__(self, gateways: int, regions: Sequence[str], seed: int = 0) -> None:
        self.simulator = Simulator(generated_scenario(gateways, regions, seed), throttling=False)
        fleet = self.simulator.fleet
        self.by_region: dict[str, list[str]] = {
            region: [gateway.id for gateway in fleet.find_gateways(region, {})]
            for region in fleet.regions()
        }

    @property
    def gateway_ids(self) -> list[str]:
        return [gateway for ids in self.by_region.values() for gateway in ids]

    def answer(self, region_id: str, gateway_id: str, now: float) -> Answer:
        """The body the simulator would send for the gateway's latest diagnosis at `now`."""
        call = Call(
            action=ACTION,
            params={"RegionId": region_id, "VpnGatewayId": gateway_id},
            state=self.simulator.state,
            access_key_id="benchmark",
            now=now,
        )
        try:
            body = get_vpn_gateway_diagnose_result(call)
        except ErrorReply as error:
            return error
        body["RequestId"] = f"bench-{gateway_id}-{int(now)}"
        return dump_json(body)

    def answers(self, keys: Iterable[tuple[str, str]], now: float) -> dict[str, Answer]:
        """Answers for `(region_id, gateway_id)` pairs at `now`."""
        return {gateway: self.answer(region, gateway, now) for region, gateway in keys}

    def describe(
        self, action: str, handler: Handler, params: Mapping[str, str], now: float
    ) -> dict[str, Any]:
        """A listing's answer, decoded from the bytes the simulator would send."""
        call = Call(
            action=action,
            params=params,
            state=self.simulator.state,
            access_key_id="benchmark",
            now=now,
        )
        body = handler(call)
        body["RequestId"] = f"bench-{action}-{int(now)}"
        document: dict[str, Any] = json.loads(dump_json(body))
        return document


class FeedSource:
    """What the exporter's VPC client of one region would answer, from the generated fleet:
    the JSON object of a 2xx body, or the `CloudError` of an error body. Diagnosis results
    come from prepared bodies (`answers`, set per burst); listings are answered on call."""

    def __init__(self, fleet: GeneratedFleet, region_id: str, now: float) -> None:
        self.fleet = fleet
        self.region_id = region_id
        self.now = now
        self.answers: dict[str, Answer] = {}

    @property
    def profile(self) -> str:
        return "default"

    async def get_vpn_gateway_diagnose_result(
        self,
        *,
        vpn_gateway_id: str | None = None,
        diagnose_id: str | None = None,
        on_launch: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        if on_launch is not None:
            on_launch()
        answer = self.answers[vpn_gateway_id or ""]
        if isinstance(answer, ErrorReply):
            raise CloudError(
                ACTION, answer.message, status=answer.status, code=answer.code, request_id="bench"
            )
        document: dict[str, Any] = json.loads(answer)
        return document

    async def describe_vpn_gateways(
        self,
        page_number: int = 1,
        page_size: int = 50,
        *,
        vpn_gateway_id: str | None = None,
        **filters: Any,
    ) -> dict[str, Any]:
        if any(filters.values()):
            raise NotImplementedError("the benchmark fleet lists gateways by ID only")
        params = self._params(page_number, page_size, VpnGatewayId=vpn_gateway_id)
        return self.fleet.describe("DescribeVpnGateways", describe_vpn_gateways, params, self.now)

    async def describe_vpn_connections(
        self,
        page_number: int = 1,
        page_size: int = 50,
        *,
        vpn_gateway_id: str | None = None,
        vpn_connection_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        if tags:
            raise NotImplementedError("the benchmark fleet lists connections without tags")
        params = self._params(
            page_number,
            page_size,
            VpnGatewayId=vpn_gateway_id,
            VpnConnectionId=vpn_connection_id,
        )
        return self.fleet.describe(
            "DescribeVpnConnections", describe_vpn_connections, params, self.now
        )

    def _params(self, page_number: int, page_size: int, **optional: str | None) -> dict[str, str]:
        params = {
            "RegionId": self.region_id,
            "PageNumber": str(page_number),
            "PageSize": str(page_size),
        }
        params.update({name: value for name, value in optional.items() if value})
        return params
