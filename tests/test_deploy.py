"""deploy/: the image, docker-compose, Kubernetes, Alertmanager, systemd and RAM files.

Each file goes through the validator its users' tools would apply (hadolint, the
compose-spec schema, kubernetes-validate --strict, the Prometheus Operator's models,
promtool, amtool, systemd-analyze, yamllint), and the tests check what those cannot: that
the pieces agree with each other and with the exporter's command line. The image's CMD and
HEALTHCHECK commands run against the real exporter installed in this environment.

Missing validators skip locally and fail under CI=true (tests/required_tools.py).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import __version__
from exporter.web.listener import Limits
from tests.required_tools import (
    AMTOOL,
    APT,
    CHECK_JSONSCHEMA,
    HADOLINT,
    PROMTOOL,
    REPO,
    SYSTEMD_ANALYZE,
    YAMLLINT,
    find,
    module,
    tool,
)

DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
KUBERNETES = DEPLOY / "kubernetes"
SHARDED = KUBERNETES / "sharded"
RULES = DEPLOY / "prometheus" / "aliyun-vpn-exporter.rules.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
UNIT = DEPLOY / "systemd" / "aliyun-vpn-exporter.service"
EXPORTER_INSTALL = "pip install -e . (the project itself)"
OPERATOR_MODELS_INSTALL = "pip install 'cloudcoil-models-prometheus-operator==0.80.1.*'"
METRICS_PORT, ADMIN_PORT = 9747, 9748
CONFIG_PATH = "/etc/aliyun-vpn-exporter/config.yml"
HEALTH_ADDRESS = "127.0.0.1:9746"
CMD = [
    f"--config.file={CONFIG_PATH}",
    f"--web.listen-address=:{METRICS_PORT}",
    f"--web.health-listen-address={HEALTH_ADDRESS}",
]
HEALTHCHECK = ["aliyun-vpn-exporter", "healthcheck", f"--address={HEALTH_ADDRESS}"]
POD_LABELS = {
    "app.kubernetes.io/name": "aliyun-vpn-exporter",
    "app.kubernetes.io/component": "exporter",
}
# The highest `systemd-analyze security` exposure the unit may drift up to (it is 1.1).
MAX_EXPOSURE = 1.5


def _run(*args: str | Path, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


@functools.cache
def _parsed(path: Path) -> tuple[dict[str, Any], ...]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(doc for doc in yaml.load_all(path.read_text(encoding="utf-8"), loader) if doc)


def _yaml_documents(path: Path) -> list[dict[str, Any]]:
    """The documents of a YAML file, fresh copies a test may change."""
    return copy.deepcopy(list(_parsed(path)))


def _manifest(kind: str) -> dict[str, Any]:
    (doc,) = [
        doc
        for path in sorted(KUBERNETES.glob("*.yaml"))
        for doc in _yaml_documents(path)
        if doc.get("kind") == kind
    ]
    return doc


# The slow validators (the Prometheus Operator's models take seconds to import) and the
# exporter the HEALTHCHECK is tried on start together with this module's first test, in
# processes of their own, and each test collects its result: the module then takes about
# as long as the slowest of them, not their sum.
_OPERATOR_CHECK = """
import sys, yaml
from cloudcoil.models.prometheus_operator import v1
for path, model in ((sys.argv[1], v1.ServiceMonitor), (sys.argv[2], v1.PrometheusRule)):
    model.model_validate(yaml.safe_load(open(path, encoding="utf-8")))
    print("valid", path)
"""


class Background:
    """Commands started at once; `result` waits for one of them."""

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self.exporter_port = _free_port()
        self.health_port = _free_port()
        self.exporter: subprocess.Popen[str] | None = None

    def start(self, name: str, *argv: str | Path, **kwargs: Any) -> None:
        self.processes[name] = subprocess.Popen(
            [str(a) for a in argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **kwargs,
        )

    def result(self, name: str) -> tuple[int, str]:
        process = self.processes[name]
        output, _ = process.communicate(timeout=120)
        return process.returncode, output

    def stop(self) -> None:
        processes = [*self.processes.values(), *([self.exporter] if self.exporter else [])]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module", autouse=True)
def background(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    jobs = Background()
    jobs.start(
        "operator-models",
        sys.executable,
        "-c",
        _OPERATOR_CHECK,
        KUBERNETES / "servicemonitor.yaml",
        KUBERNETES / "prometheusrule.yaml",
    )
    if check_jsonschema := find(CHECK_JSONSCHEMA[0]):
        jobs.start(
            "compose-spec", check_jsonschema, "--builtin-schema", "vendor.compose-spec", COMPOSE
        )
    if yamllint := find(YAMLLINT[0]):
        jobs.start(
            "yamllint",
            yamllint,
            "--strict",
            "-c",
            DEPLOY / ".yamllint.yml",
            "deploy",
            "grafana/provisioning",
            cwd=REPO,
        )
    if importlib.util.find_spec("exporter") is not None:
        directory = tmp_path_factory.mktemp("image-cmd")
        config = directory / "config.yml"
        config.write_text((KUBERNETES / "config.yml").read_text(encoding="utf-8"))
        cmd = [a.replace(CONFIG_PATH, str(config)) for a in _exec_form("CMD")]
        jobs.start("image-cmd", *_entrypoint_argv(), *cmd, "--check-config")
        # The exporter the HEALTHCHECK is tried on requires basic auth of every request on
        # its metrics listener: the probe must get through all the same.
        web_config = directory / "web.yml"
        web_config.write_text(f"basic_auth_users:\n  prometheus: '{_bcrypt_hash()}'\n")
        jobs.exporter = subprocess.Popen(
            [
                *_entrypoint_argv(),
                "--demo",
                f"--web.listen-address=127.0.0.1:{jobs.exporter_port}",
                f"--web.config.file={web_config}",
                f"--web.health-listen-address=127.0.0.1:{jobs.health_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    yield jobs
    jobs.stop()


# Dockerfile


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            found.append((instruction.upper(), arguments.strip()))
    return found


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def _exec_form(instruction: str) -> list[str]:
    (arguments,) = [args for name, args in _final_stage() if name == instruction]
    if instruction == "HEALTHCHECK":
        arguments = arguments[arguments.index("CMD ") + len("CMD ") :]
    value: list[str] = json.loads(arguments)
    return value


def test_dockerfile_passes_hadolint() -> None:
    result = _run(tool(*HADOLINT), "--no-color", DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_fail_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    assert _run(tool(*HADOLINT), "--no-color", bad).returncode != 0


def test_image_is_multi_stage_and_runs_as_an_unprivileged_user() -> None:
    stages = [args for name, args in _instructions() if name == "FROM"]
    assert len(stages) >= 2
    users = [args for name, args in _final_stage() if name == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) > 0


def test_final_image_has_no_build_tools() -> None:
    final = " ".join(args for name, args in _final_stage() if name == "RUN")
    assert not re.search(r"\b(gcc|g\+\+|build-essential|make|curl|wget|apt-get install)\b", final)
    assert "pip uninstall" in final, "the base image's pip, setuptools and wheel are removed"
    copies = [args for name, args in _final_stage() if name == "COPY"]
    assert copies and all(c.startswith("--from=") for c in copies), "only built artefacts"


def test_image_entrypoint_and_cmd_are_the_documented_command_line() -> None:
    assert _exec_form("ENTRYPOINT") == ["aliyun-vpn-exporter"]
    assert _exec_form("CMD") == CMD
    exposed = [args for name, args in _final_stage() if name == "EXPOSE"]
    assert exposed == [str(METRICS_PORT)], "the admin port is never exposed"


def test_healthcheck_asks_the_health_listener_the_cmd_starts() -> None:
    assert _exec_form("HEALTHCHECK") == HEALTHCHECK
    assert f"--web.health-listen-address={HEALTH_ADDRESS}" in _exec_form("CMD")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _entrypoint_argv() -> list[str]:
    """The image's ENTRYPOINT as installed here (the console script, else `python -m`)."""
    (name,) = _exec_form("ENTRYPOINT")
    found = find(name)
    return [found] if found else [sys.executable, "-m", "exporter"]


def _healthcheck(address: str) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK as installed here, asking `address` instead of its own."""
    _, *args = _exec_form("HEALTHCHECK")
    args = [f"--address={address}" if a.startswith("--address=") else a for a in args]
    return _run(*_entrypoint_argv(), *args, timeout=30)


def _bcrypt_hash() -> str:
    import bcrypt

    return bcrypt.hashpw(b"not-for-probes", bcrypt.gensalt(rounds=4)).decode()


def test_build_context_ignore_file_keeps_what_the_image_copies() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    for name in ("pyproject.toml", "README.md", "LICENSE", "exporter/"):
        assert f"!{name}" in ignore
        assert (REPO / name.rstrip("/")).exists(), name


# docker-compose


def test_compose_builds_the_image_and_mounts_files_that_exist() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"exporter", "prometheus", "alertmanager", "grafana"}
    build = services["exporter"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert services["exporter"]["command"][0] == "--demo"
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), volume


def test_compose_prometheus_config_loads_our_rules_and_scrapes_the_exporter() -> None:
    config_path = DEPLOY / "prometheus" / "prometheus.yml"
    result = _run(tool(*PROMTOOL), "check", "config", config_path)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    assert [(config_path.parent / f).resolve() for f in config["rule_files"]] == [RULES]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "aliyun-vpn-exporter"
    assert job["static_configs"] == [{"targets": [f"exporter:{METRICS_PORT}"]}]


# Alertmanager


def test_alertmanager_config_passes_amtool() -> None:
    result = _run(tool(*AMTOOL), "check-config", ALERTMANAGER_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


# Kubernetes

CORE_KINDS = {"ServiceAccount", "ConfigMap", "Deployment", "Service", "NetworkPolicy"}
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def _kustomized(directory: Path) -> list[dict[str, Any]]:
    """What `kubectl apply -k directory` would apply."""
    result = _run(tool("kubectl", f"{APT} kubernetes-client"), "kustomize", directory)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.parametrize("version", ["1.28.0", "1.37.0"])
def test_kubernetes_manifests_pass_strict_validation(version: str) -> None:
    """Every manifest file as written (no kubectl needed), and the config's ConfigMap as
    the generator makes it."""
    kubernetes_validate = module("kubernetes_validate", "pip install kubernetes-validate")
    generated = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aliyun-vpn-exporter"},
        "data": {"config.yml": (KUBERNETES / "config.yml").read_text(encoding="utf-8")},
    }
    files = [*KUBERNETES.glob("*.yaml"), *(KUBERNETES / "dashboards").glob("*.yaml")]
    kinds = set()
    for doc in [generated, *(doc for path in files for doc in _yaml_documents(path))]:
        if doc["kind"] not in OPERATOR_KINDS | {"Kustomization"}:
            kubernetes_validate.validate(doc, version, strict=True)
        kinds.add(doc["kind"])
    assert kinds == CORE_KINDS | OPERATOR_KINDS | {"Secret", "Kustomization"}


@pytest.mark.parametrize("version", ["1.28.0", "1.37.0"])
def test_what_kustomize_applies_passes_strict_validation(version: str) -> None:
    kubernetes_validate = module("kubernetes_validate", "pip install kubernetes-validate")
    rendered = _kustomized(KUBERNETES) + _kustomized(KUBERNETES / "dashboards")
    kinds = set()
    for doc in rendered:
        if doc["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(doc, version, strict=True)
        kinds.add(doc["kind"])
    assert kinds == CORE_KINDS | OPERATOR_KINDS


def test_strict_validation_rejects_an_unknown_field() -> None:
    kubernetes_validate = module("kubernetes_validate", "pip install kubernetes-validate")
    deployment = _manifest("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.37.0", strict=True)


def test_prometheusrule_carries_exactly_the_rules_file() -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert _manifest("PrometheusRule")["spec"] == {"groups": rules["groups"]}


def test_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))
    manifests = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests - {"secret.example.yaml"}
    (generated,) = kustomization["configMapGenerator"]
    assert generated["files"] == ["config.yml"]


def _config_map_name(docs: list[dict[str, Any]]) -> str:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    name: str = volume["configMap"]["name"]
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config_map["metadata"]["name"] == name
    return name


def test_a_config_change_rolls_the_pods_onto_it(tmp_path: Path) -> None:
    """The ConfigMap's name carries a hash of config.yml and the pod template names it: a
    changed config is a changed pod template, which Kubernetes rolls out."""
    before = _kustomized(KUBERNETES)
    (config_map,) = [d for d in before if d["kind"] == "ConfigMap"]
    assert config_map["data"] == {"config.yml": (KUBERNETES / "config.yml").read_text()}
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    (copy / "config.yml").write_text(
        (KUBERNETES / "config.yml").read_text().replace("interval: 5m", "interval: 10m")
    )
    after = _kustomized(copy)
    assert _config_map_name(before).startswith("aliyun-vpn-exporter-")
    assert _config_map_name(before) != _config_map_name(after)


@pytest.mark.parametrize("path", [KUBERNETES / "deployment.yaml", SHARDED / "statefulset.yaml"])
def test_the_state_file_is_on_a_writable_volume(path: Path) -> None:
    """The root filesystem is read-only: the state file needs a volume of its own."""
    config = yaml.safe_load((KUBERNETES / "config.yml").read_text(encoding="utf-8"))
    state = Path(config["state"]["path"])
    (doc,) = _yaml_documents(path)
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (mount,) = [m for m in container["volumeMounts"] if state.parent == Path(m["mountPath"])]
    assert not mount.get("readOnly", False)
    volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes[mount["name"]] or "persistentVolumeClaim" in volumes[mount["name"]]


# Grafana dashboards for the sidecar

DASHBOARDS_KUSTOMIZATION = KUBERNETES / "dashboards"


def test_dashboard_config_maps_carry_every_dashboard_verbatim() -> None:
    result = _run(sys.executable, KUBERNETES / "sync_dashboards.py", "--check")
    assert result.returncode == 0, result.stderr
    carried = {}
    for doc in _kustomized(DASHBOARDS_KUSTOMIZATION):
        assert doc["kind"] == "ConfigMap"
        assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert doc["metadata"]["annotations"]["grafana_folder"]
        carried.update(doc["data"])
    dashboards = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
    assert dashboards and sorted(carried) == [path.name for path in dashboards]
    for path in dashboards:
        assert carried[path.name] == path.read_text(encoding="utf-8")
        assert json.loads(carried[path.name])["uid"]


def test_dashboard_drift_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    (copy / "deploy" / "kubernetes" / "dashboards").mkdir(parents=True)
    shutil.copytree(REPO / "grafana" / "dashboards", copy / "grafana" / "dashboards")
    shutil.copy(KUBERNETES / "sync_dashboards.py", copy / "deploy" / "kubernetes")
    shutil.copy(
        DASHBOARDS_KUSTOMIZATION / "dashboards.yaml", copy / "deploy" / "kubernetes" / "dashboards"
    )
    script = copy / "deploy" / "kubernetes" / "sync_dashboards.py"
    assert _run(sys.executable, script, "--check").returncode == 0
    (copy / "grafana" / "dashboards" / "new.json").write_text('{"uid": "new"}\n')
    assert _run(sys.executable, script, "--check").returncode == 1


def test_deployment_runs_one_restricted_non_root_container() -> None:
    deployment = _manifest("Deployment")
    assert deployment["spec"]["replicas"] == 1, "replicas poll on their own: shard instead"
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert not container["image"].endswith(":latest")
    name, tag = container["image"].split(":")
    assert "/" not in name, "no image is published: the one built from deploy/Dockerfile"
    assert tag == __version__, "the image built from this version"
    assert container["resources"]["limits"]["memory"]


def test_every_image_tag_the_docs_build_or_use_is_this_version() -> None:
    files = [REPO / "README.md", DOCKERFILE, *KUBERNETES.glob("*.yaml"), *SHARDED.glob("*.yaml")]
    tags = {
        tag
        for path in files
        for tag in re.findall(r"aliyun-vpn-exporter:(\d+\.\d+\.\d+)", path.read_text())
    }
    assert tags == {__version__}


def test_deployment_probes_and_arguments() -> None:
    (container,) = _manifest("Deployment")["spec"]["template"]["spec"]["containers"]
    # exec probes through the loopback health listener: they keep working under basic auth
    # or mutual TLS on the metrics listener, where an httpGet probe would be refused.
    assert container["livenessProbe"]["exec"]["command"] == HEALTHCHECK
    assert container["readinessProbe"]["exec"]["command"] == [
        *HEALTHCHECK[:2],
        "--ready",
        *HEALTHCHECK[2:],
    ]
    assert container["ports"] == [
        {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}
    ]
    assert container["args"][: len(CMD)] == CMD
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "config"]
    assert CONFIG_PATH.startswith(mount["mountPath"] + "/") and mount["readOnly"]


def test_deployment_takes_credentials_from_the_example_secret() -> None:
    secret = _manifest("Secret")
    (container,) = _manifest("Deployment")["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert set(refs) == {"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"}
    for ref in refs.values():
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]


def test_service_and_servicemonitor_publish_only_the_metrics_port() -> None:
    service = _manifest("Service")
    assert service["spec"]["selector"] == POD_LABELS
    assert [p["port"] for p in service["spec"]["ports"]] == [METRICS_PORT]
    monitor = _manifest("ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    # The operator names the job after the Service: the rules and dashboards expect this one.
    assert service["metadata"]["name"] == "aliyun-vpn-exporter"


def test_networkpolicy_admits_the_metrics_port_only() -> None:
    policy = _manifest("NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == POD_LABELS
    assert "Ingress" in policy["policyTypes"]
    ports = [port for rule in policy["ingress"] for port in rule["ports"]]
    assert ports == [{"port": METRICS_PORT, "protocol": "TCP"}]
    assert all("ports" in rule for rule in policy["ingress"]), "a rule without ports opens all"
    assert ADMIN_PORT not in [p["port"] for p in ports]


# systemd


def _unit_with_stub_executable(tmp_path: Path) -> Path:
    """The unit, its ExecStart program replaced by a stub (verify insists it exists)."""
    text = UNIT.read_text(encoding="utf-8")
    (exec_start,) = re.findall(r"^ExecStart=(\S+)", text, flags=re.M)
    stub = tmp_path / "aliyun-vpn-exporter"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(f"ExecStart={exec_start}", f"ExecStart={stub}"), encoding="utf-8")
    return unit


def test_systemd_unit_passes_verify(tmp_path: Path) -> None:
    result = _run(tool(*SYSTEMD_ANALYZE), "verify", _unit_with_stub_executable(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stderr.strip(), result.stderr


def test_systemd_unit_stays_hardened(tmp_path: Path) -> None:
    result = _run(
        tool(*SYSTEMD_ANALYZE), "security", "--offline=true", _unit_with_stub_executable(tmp_path)
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE
    assert f"rates\n# this unit {exposure}" in UNIT.read_text(encoding="utf-8"), (
        f"update the score quoted in the unit's comment to {exposure}"
    )


def test_systemd_unit_runs_the_documented_command_line() -> None:
    text = UNIT.read_text(encoding="utf-8")
    (exec_start,) = re.findall(r"^ExecStart=(.+)$", text, flags=re.M)
    program, *args = shlex.split(exec_start)
    assert Path(program).name == "aliyun-vpn-exporter"
    assert args == CMD
    assert re.search(r"^DynamicUser=yes$", text, flags=re.M)


def test_systemd_reload_sends_sighup_and_the_fd_limit_fits_the_listeners() -> None:
    text = UNIT.read_text(encoding="utf-8")
    assert re.findall(r"^ExecReload=(.+)$", text, flags=re.M) == ["/bin/kill -HUP $MAINPID"]
    (limit,) = re.findall(r"^LimitNOFILE=(\d+)$", text, flags=re.M)
    # Two listeners of Limits.max_connections each, with room for the API client and files.
    assert int(limit) >= 4 * Limits().max_connections


# Sizing


def _sizing_rows() -> dict[int, tuple[str, str]]:
    """README "Sizing": gateways per pod -> (resident memory, memory limit)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Sizing") :]
    rows = {}
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        cells = [cell.strip(" `") for cell in line.strip().strip("|").split("|")]
        if cells and cells[0].replace(",", "").isdigit():
            rows[int(cells[0].replace(",", ""))] = (cells[1], cells[2])
    return rows


def _mebibytes(quantity: str) -> float:
    number = float(re.search(r"[\d.]+", quantity)[0])  # type: ignore[index]
    return (
        number
        * {"Mi": 1, "MiB": 1, "Gi": 1024, "MB": 1e6 / 2**20}[quantity.lstrip("~0123456789., ")]
    )


@pytest.mark.parametrize("path", [KUBERNETES / "deployment.yaml", SHARDED / "statefulset.yaml"])
def test_memory_limit_holds_the_fleet_the_manifest_is_sized_for(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    sized_for = int(re.search(r"Sized for up to ([\d,]+) gateways", text)[1].replace(",", ""))  # type: ignore[index]
    resident, limit = _sizing_rows()[sized_for]
    (doc,) = _yaml_documents(path)
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    manifest_limit = _mebibytes(container["resources"]["limits"]["memory"])
    assert manifest_limit >= _mebibytes(limit) > _mebibytes(resident)
    assert _mebibytes(container["resources"]["requests"]["memory"]) >= _mebibytes(resident)


def test_sizing_table_matches_the_measured_footprint() -> None:
    """The 10,000-gateway row is the benchmark's figure (benchmarks/RESULTS-footprint.md, the
    footprint re-run that supersedes RESULTS.md's, else RESULTS.md)."""
    rerun = REPO / "benchmarks" / "RESULTS-footprint.md"
    results = (rerun if rerun.exists() else REPO / "benchmarks" / "RESULTS.md").read_text(
        encoding="utf-8"
    )
    measured = re.search(r"resident memory at 10,000 gateways[^|]*\| (\d+) (MiB|MB)", results)
    assert measured, "the benchmark results report the footprint at 10,000 gateways"
    resident, _ = _sizing_rows()[10_000]
    figure = _mebibytes(f"{measured[1]}{measured[2]}")
    assert abs(_mebibytes(resident) - figure) <= 0.1 * _mebibytes(resident)


# RAM policies

READ_ACTIONS = {
    "vpc:GetVpnGatewayDiagnoseResult",
    "vpc:DescribeVpnGateways",
    "vpc:DescribeVpnConnections",
}
DIAGNOSE_ACTIONS = {"vpc:DiagnoseVpnGateway"}
ADMIN_ACTIONS = {"vpc:CreateVcoRouteEntry", "vpc:DescribeVcoRouteEntries"}
POLICIES = ("ram-policy.json", "ram-policy-diagnose.json", "ram-policy-admin.json")


def _allowed_actions(path: Path) -> set[str]:
    policy = json.loads(path.read_text(encoding="utf-8"))
    assert policy["Version"] == "1"
    actions: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert set(statement) <= {"Effect", "Action", "Resource", "Condition"}
        actions.update(statement["Action"])
    return actions


def test_ram_policy_allows_exactly_the_actions_the_exporter_calls() -> None:
    from exporter.cloud import actions, connection_listing, gateway_listing

    assert _allowed_actions(DEPLOY / "ram-policy.json") == READ_ACTIONS
    called = {actions.RESULT_ACTION, gateway_listing.ACTION, connection_listing.ACTION}
    assert {f"vpc:{action}" for action in called} == READ_ACTIONS


def test_diagnose_policy_is_separate_and_allows_only_starting_diagnoses() -> None:
    """Needed only with diagnose.enabled: the read-only policy cannot start a diagnosis."""
    from exporter.cloud import actions

    assert _allowed_actions(DEPLOY / "ram-policy-diagnose.json") == DIAGNOSE_ACTIONS
    assert {f"vpc:{actions.DIAGNOSE_ACTION}"} == DIAGNOSE_ACTIONS
    assert not DIAGNOSE_ACTIONS & _allowed_actions(DEPLOY / "ram-policy.json")


def test_admin_ram_policy_is_separate_and_allows_only_route_actions() -> None:
    assert _allowed_actions(DEPLOY / "ram-policy-admin.json") == ADMIN_ACTIONS
    assert not ADMIN_ACTIONS & _allowed_actions(DEPLOY / "ram-policy.json")


def test_ram_policies_have_no_wildcard_actions() -> None:
    for name in POLICIES:
        assert not any("*" in action for action in _allowed_actions(DEPLOY / name)), name


# Results of the validators and the exporter started in the background: last, so that
# the tests above run while they work.


def test_image_cmd_runs_with_the_example_config(background: Background) -> None:
    # ENTRYPOINT + CMD, the config path pointed at the Kubernetes example, plus --check-config.
    module("exporter.cli", EXPORTER_INSTALL)
    returncode, output = background.result("image-cmd")
    assert returncode == 0, output


def test_image_healthcheck_passes_on_a_running_exporter_and_fails_once_it_stops(
    background: Background,
) -> None:
    module("exporter.cli", EXPORTER_INSTALL)
    exporter = background.exporter
    assert exporter is not None
    address = f"127.0.0.1:{background.health_port}"
    deadline = time.monotonic() + 20  # proves an answer comes at all, no speed claim
    while (result := _healthcheck(address)).returncode != 0:
        assert exporter.poll() is None, "the exporter exited"
        assert time.monotonic() < deadline, result.stderr
        time.sleep(0.1)
    assert result.stdout.strip() == f"http://{address}/healthz: 200 ok"
    with pytest.raises(urllib.error.HTTPError) as refused:  # the metrics listener wants a password
        urllib.request.urlopen(f"http://127.0.0.1:{background.exporter_port}/healthz", timeout=5)
    assert refused.value.code == 401
    exporter.terminate()
    exporter.wait(timeout=10)
    assert _healthcheck(address).returncode != 0


def test_compose_file_passes_the_compose_spec_schema(background: Background) -> None:
    tool(*CHECK_JSONSCHEMA)
    returncode, output = background.result("compose-spec")
    assert returncode == 0, output


def test_operator_resources_pass_the_prometheus_operator_models(background: Background) -> None:
    returncode, output = background.result("operator-models")
    if "No module named 'cloudcoil" in output:
        module("cloudcoil.models.prometheus_operator", OPERATOR_MODELS_INSTALL)
    assert returncode == 0, output
    assert output.count("valid ") == 2


def test_yaml_files_pass_yamllint(background: Background) -> None:
    tool(*YAMLLINT)
    returncode, output = background.result("yamllint")
    assert returncode == 0, output
