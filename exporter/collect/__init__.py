"""Collecting: what to poll, when, and what each answer changes.

- `scheduler`: the APScheduler jobs that launch polls spread over each target's interval;
- `poller`: one GetVpnGatewayDiagnoseResult poll and its outcome for the fleet;
- `planner`: the pace the shared API budgets allow; `sharding`: this shard's gateways;
- `inventory`: which gateways each target polls (listing, discovery, connection refresh);
- `scheduled_diagnoses`: starting diagnoses on a schedule (DiagnoseVpnGateway).

May import: `exporter.cloud`, `exporter.exposition`, `exporter.model`, `exporter.config`,
`exporter.telemetry`, `exporter.clock`. Never `exporter.web` or `exporter.admin`.
"""
