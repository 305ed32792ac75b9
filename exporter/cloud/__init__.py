"""The Alibaba Cloud VPC API as the exporter calls it: everything that crosses the network.

- `client`: the VPC client (httpx) with rate budgets, retries and typed errors;
- `signing` (canonical request, shared with the simulator) and `signer` (V3 `httpx.Auth`);
- `credentials`, `profiles`: the credentials chain per profile, and its health;
- `ratelimit`, `retry`, `errors`: budgets per (account, region, action), backoff, codes;
- `paging`, `gateway_listing`, `connection_listing`: paged DescribeVpnGateways and
  DescribeVpnConnections calls, returning `exporter.model` values.

May import: `exporter.model`, `exporter.config`, `exporter.telemetry`, `exporter.clock`.
"""
