"""Simulator answers without HTTP, fed to the exporter through its real poll path.

Loading 10,000 gateways over HTTP takes the simulator about 20 s (it answers some 500
calls per second on this machine); the scrape and update benchmarks are about what
happens *after* an answer arrives, so they take the simulator's answers straight from its
request handler instead: the same `GetVpnGatewayDiagnoseResult` JSON bytes it would send
(generated fleet, every item kind, both probes), decoded with `json.loads` and handed to
the exporter's `Poller.poll`, which parses them, swaps the gateway's record and
re-renders it exactly as after a real call. Gateways without a diagnosis raise the same
`CloudError` (`InvalidVpnGatewayId.NotFound`) the client would.

Answers at a later simulated time are new diagnoses (the simulator re-diagnoses every
gateway each minute): new IDs and times, drifted RTT, loss and quota values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from exporter.cloud.errors import CloudError
from exporter.simulator.call import Call
from exporter.simulator.diagnose import get_vpn_gateway_diagnose_result
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


class FeedSource:
    """A `DiagnosisSource` answering from prepared simulator bodies, as the client would:
    the JSON object of a 2xx body, or the `CloudError` of an error body."""

    def __init__(self, answers: dict[str, Answer] | None = None) -> None:
        self.answers: dict[str, Answer] = answers or {}

    async def get_vpn_gateway_diagnose_result(
        self, *, vpn_gateway_id: str | None = None, diagnose_id: str | None = None
    ) -> dict[str, Any]:
        answer = self.answers[vpn_gateway_id or ""]
        if isinstance(answer, ErrorReply):
            raise CloudError(
                ACTION, answer.message, status=answer.status, code=answer.code, request_id="bench"
            )
        document: dict[str, Any] = json.loads(answer)
        return document
