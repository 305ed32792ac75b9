"""The metrics listener: `/metrics`, `/healthz`, `/readyz`, the status page, reloads.

- `metrics_app`: the Starlette app; `status_page`: the HTML page at `/`;
- `listener`: the uvicorn server with its connection limits and TLS; `acceptor`: who may
  connect (per address, handshakes, the process's file-descriptor budget);
- `web_config`: the exporter-toolkit web config (TLS, basic auth) of both listeners;
- `authentication`: basic auth and bearer tokens checked per request, ASGI wrappers.

May import: `exporter.exposition`, `exporter.model`, `exporter.config`,
`exporter.telemetry`.
"""
