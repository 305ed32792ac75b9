"""A simulated Alibaba Cloud VPC API for VPN gateway diagnoses: a real HTTP server.

It speaks the wire format the official SDK speaks (RPC style, V3 and V1 signatures), keeps
state, throttles, and injects faults, so the exporter, its benchmarks and the demo run
without a cloud account. See DESIGN's "The simulator" and the modules below:

- `scenario`, `generator`, `demo.yaml`: what a simulator serves;
- `simulator` (pipeline), `auth`, `throttle`, `faults`, `journal`: how it serves it;
- `actions` (the registry), `diagnose`, `gateways`, `routes`: the API actions;
- `server`: uvicorn in the current loop or in a thread; `cli`: `aliyun-vpn-exporter simulate`.
"""

from exporter.simulator.cli import main
from exporter.simulator.clock import ManualClock
from exporter.simulator.faults import DescriptionMode, Fault, FaultKind
from exporter.simulator.generator import generated_scenario
from exporter.simulator.journal import RecordedRequest
from exporter.simulator.scenario import (
    DEMO_ACCESS_KEY_ID,
    DEMO_ACCESS_KEY_SECRET,
    KeyPair,
    Scenario,
    ScenarioError,
    demo_scenario,
    load_scenario,
)
from exporter.simulator.server import SimulatorServer, run_simulator_in_thread
from exporter.simulator.simulator import Simulator

__all__ = [
    "DEMO_ACCESS_KEY_ID",
    "DEMO_ACCESS_KEY_SECRET",
    "DescriptionMode",
    "Fault",
    "FaultKind",
    "KeyPair",
    "ManualClock",
    "RecordedRequest",
    "Scenario",
    "ScenarioError",
    "Simulator",
    "SimulatorServer",
    "demo_scenario",
    "generated_scenario",
    "load_scenario",
    "main",
    "run_simulator_in_thread",
]
