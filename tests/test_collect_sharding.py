"""Sharding: a stable hash splits the fleet, every gateway lands on exactly one shard, each
shard spends its share of the budget, and the StatefulSet example runs one pod per shard."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from exporter.app import Exporter, ListenSettings
from exporter.cli import build_parser, main
from exporter.collect.sharding import Shard, ShardError, ordinal_of, shard_from_flags, stable_hash
from exporter.config.model import Config
from exporter.simulator.generator import generated_scenario
from exporter.simulator.scenario import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from tests.required_tools import REPO, find, module

GATEWAY_IDS = st.from_regex(r"vpn-[a-z0-9]{1,24}", fullmatch=True)


def test_hash_is_64_bit_fnv1a_of_the_utf8_id() -> None:
    # Published FNV-1a 64 test vectors.
    assert stable_hash("") == 0xCBF29CE484222325
    assert stable_hash("a") == 0xAF63DC4C8601EC8C
    assert stable_hash("foobar") == 0x85944171F73967E8


def test_hash_is_the_same_in_another_process() -> None:
    script = (
        "from exporter.collect.sharding import stable_hash; "
        "print(stable_hash('vpn-bp1example0001'))"
    )
    other = subprocess.run(
        ["python", "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert int(other.stdout) == stable_hash("vpn-bp1example0001")


@given(st.lists(GATEWAY_IDS, unique=True, max_size=200), st.integers(min_value=1, max_value=16))
def test_n_shards_cover_every_gateway_exactly_once(gateways: list[str], total: int) -> None:
    owners = {
        gateway: [i for i in range(total) if Shard(i, total).owns(gateway)] for gateway in gateways
    }
    assert all(len(shards) == 1 for shards in owners.values())
    selected = [g for i in range(total) for g in Shard(i, total).select(gateways)]
    assert sorted(selected) == sorted(gateways)


def test_shards_get_a_fair_share_of_a_large_fleet() -> None:
    gateways = [f"vpn-bp1{i:020d}" for i in range(10_000)]
    sizes = [len(Shard(i, 4).select(gateways)) for i in range(4)]
    assert sum(sizes) == 10_000
    assert all(2_250 < size < 2_750 for size in sizes), sizes


def test_one_shard_owns_everything() -> None:
    assert Shard().owns("vpn-anything")
    assert not Shard().sharded


@pytest.mark.parametrize(
    ("pod", "ordinal"),
    [("aliyun-vpn-exporter-0", 0), ("aliyun-vpn-exporter-12", 12), ("web", None), ("x-1a", None)],
)
def test_statefulset_ordinal_is_the_pod_names_last_number(pod: str, ordinal: int | None) -> None:
    assert ordinal_of(pod) == ordinal


def test_auto_shard_reads_pod_name_before_hostname() -> None:
    environ = {"POD_NAME": "aliyun-vpn-exporter-2", "HOSTNAME": "aliyun-vpn-exporter-0"}
    assert shard_from_flags("auto", 3, environ) == Shard(2, 3)
    assert shard_from_flags("auto", 3, {"HOSTNAME": "aliyun-vpn-exporter-1"}) == Shard(1, 3)


@pytest.mark.parametrize(
    ("shard", "total", "environ", "message"),
    [
        ("1", None, {}, "--shard needs --total-shards"),
        (None, 3, {}, "--total-shards needs --shard"),
        ("3", 3, {}, "between 0 and 2"),
        ("-1", 3, {}, "a number or auto"),
        ("two", 3, {}, "a number or auto"),
        ("auto", 3, {}, "POD_NAME or HOSTNAME"),
        ("auto", 3, {"HOSTNAME": "laptop"}, "does not end in a StatefulSet ordinal"),
        ("auto", 3, {"POD_NAME": "aliyun-vpn-exporter-5"}, "between 0 and 2"),
        ("0", 0, {}, "at least 1"),
    ],
)
def test_unusable_shard_flags_say_what_to_change(
    shard: str | None, total: int | None, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ShardError, match=message):
        shard_from_flags(shard, total, environ)


def test_no_flags_or_one_shard_is_unsharded() -> None:
    assert shard_from_flags(None, None, {}) == Shard(0, 1)
    assert shard_from_flags(None, 1, {}) == Shard(0, 1)
    assert shard_from_flags("0", 1, {}) == Shard(0, 1)


def test_cli_has_the_shard_flags() -> None:
    args = build_parser().parse_args(["--demo", "--shard=1", "--total-shards=3"])
    assert (args.shard, args.total_shards) == ("1", 3)


def test_cli_refuses_bad_shard_flags_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--demo", "--shard=5", "--total-shards=3"])
    assert exit_info.value.code == 2
    assert "--shard must be between 0 and 2" in capsys.readouterr().err


# --- shards end to end: discovery against a generated fleet ------------------------------


def sharded_config(endpoint: str) -> Config:
    return Config.model_validate(
        {
            "credentials": {
                "default": {
                    "source": "access_key",
                    "access_key_id": DEMO_ACCESS_KEY_ID,
                    "access_key_secret": DEMO_ACCESS_KEY_SECRET,
                }
            },
            "poll": {"interval": "10m"},
            "api": {"endpoint": endpoint, "timeout": "5s"},
            "targets": [{"region_id": "cn-hangzhou", "discover": {}}],
        }
    )


async def test_three_shards_discover_and_poll_every_gateway_exactly_once() -> None:
    simulator = Simulator(generated_scenario(120, ["cn-hangzhou"]), throttling=False)
    fleet_ids = {gateway.id for gateway in simulator.fleet.find_gateways("cn-hangzhou", {})}
    assert len(fleet_ids) == 120
    async with SimulatorServer(simulator) as server:
        shards = [
            Exporter(
                sharded_config(server.url),
                listen=ListenSettings(address="127.0.0.1:0"),
                metrics=SelfMetrics(),
                shard=Shard(index, 3),
            )
            for index in range(3)
        ]
        for exporter in shards:
            await exporter.start()
        try:
            polled: list[set[str]] = []
            for exporter in shards:
                polled.append(await _discovered(exporter))
        finally:
            for exporter in shards:
                await exporter.stop()
    assert set().union(*polled) == fleet_ids
    assert sum(len(p) for p in polled) == len(fleet_ids), "a gateway was polled by two shards"
    for index, gateways in enumerate(polled):
        assert all(Shard(index, 3).owns(g) for g in gateways)


async def _discovered(exporter: Exporter) -> set[str]:
    """The gateways the exporter's fleet holds once discovery ran (up to a generous 10 s)."""
    for _ in range(1000):
        target = next(iter(exporter.inventory.targets.values()))
        if target.gateways_refreshed:
            return {key.vpn_gateway_id for key in exporter.fleet.records}
        await asyncio.sleep(0.01)
    raise AssertionError("discovery did not run within 10 s")


def test_each_shard_takes_its_share_of_every_budget() -> None:
    config = sharded_config("http://127.0.0.1:9")
    whole = Exporter(config, listen=ListenSettings(address="127.0.0.1:0"), metrics=SelfMetrics())
    third = Exporter(
        config,
        listen=ListenSettings(address="127.0.0.1:0"),
        metrics=SelfMetrics(),
        shard=Shard(1, 3),
    )
    for action in ("GetVpnGatewayDiagnoseResult", "DescribeVpnGateways", "DiagnoseVpnGateway"):
        calls, period = whole.budgets.limit(action)
        assert third.budgets.limit(action) == pytest.approx((calls / 3, period))


# --- the StatefulSet example -------------------------------------------------------------

SHARDED = REPO / "deploy" / "kubernetes" / "sharded"


def _documents() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted(SHARDED.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            docs[doc["kind"]] = doc
    return docs


@pytest.mark.parametrize("version", ["1.28.0", "1.37.0"])
def test_sharded_manifests_pass_strict_validation(version: str) -> None:
    kubernetes_validate = module("kubernetes_validate", "pip install kubernetes-validate")
    docs = _documents()
    assert {"StatefulSet", "PodDisruptionBudget", "Service", "Component"} <= set(docs)
    for kind, doc in docs.items():
        if kind != "Component":
            kubernetes_validate.validate(doc, version, strict=True)


def test_statefulset_runs_one_auto_shard_per_pod() -> None:
    docs = _documents()
    statefulset = docs["StatefulSet"]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert "--shard=auto" in args
    assert f"--total-shards={statefulset['spec']['replicas']}" in args
    pod_name = next(e for e in container["env"] if e["name"] == "POD_NAME")
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert statefulset["spec"]["serviceName"] == docs["Service"]["metadata"]["name"]
    assert docs["Service"]["spec"]["clusterIP"] == "None"


def test_statefulset_pods_match_the_base_service_and_the_budget() -> None:
    docs = _documents()
    labels = docs["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    base_service = yaml.safe_load((SHARDED.parent / "service.yaml").read_text(encoding="utf-8"))
    assert base_service["spec"]["selector"].items() <= labels.items(), "scraped through the base"
    pdb = docs["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    monitor = yaml.safe_load((SHARDED.parent / "servicemonitor.yaml").read_text(encoding="utf-8"))
    headless = docs["Service"]["metadata"]["labels"]
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= headless.items(), (
        "the ServiceMonitor would scrape every pod twice"
    )


def test_statefulset_runs_the_same_container_as_the_deployment_but_sharded() -> None:
    statefulset = _documents()["StatefulSet"]
    deployment = yaml.safe_load((SHARDED.parent / "deployment.yaml").read_text(encoding="utf-8"))
    pod, base = statefulset["spec"]["template"]["spec"], deployment["spec"]["template"]["spec"]
    (container,), (base_container,) = pod["containers"], base["containers"]
    assert container["args"][: len(base_container["args"])] == base_container["args"]
    for field in ("image", "securityContext", "readinessProbe", "livenessProbe", "volumeMounts"):
        assert container[field] == base_container[field], field
    assert pod["securityContext"] == base["securityContext"]


def test_component_replaces_the_deployment_with_the_statefulset(tmp_path: Path) -> None:
    kubectl = find("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (its kustomize builds the example)")
    base = os.path.relpath(SHARDED.parent, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [{base}]\ncomponents: [{base}/sharded]\n", encoding="utf-8"
    )
    built = subprocess.run(
        [kubectl, "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(built.stdout)]
    assert "Deployment" not in kinds
    assert kinds.count("StatefulSet") == 1 and "PodDisruptionBudget" in kinds
