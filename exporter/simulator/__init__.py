"""A simulated Alibaba Cloud VPC API for VPN gateway diagnoses: a real HTTP server.

It speaks the wire format the official SDK speaks (RPC style, V3 and V1 signatures), keeps
state, throttles, and injects faults, so the exporter, its benchmarks and the demo run
without a cloud account. See DESIGN's "The simulator" and the modules below:

- `scenario`, `generator`, `demo.yaml`: what a simulator serves;
- `simulator` (pipeline), `auth`, `throttle`, `faults`, `journal`: how it serves it;
- `actions` (the registry), `diagnose`, `gateways`, `routes`: the API actions;
- `server`: uvicorn in the current loop or in a thread; `cli`: `aliyun-vpn-exporter simulate`.
"""
