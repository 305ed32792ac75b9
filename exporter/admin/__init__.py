"""The optional admin API: adding destination-based routes to IPsec connections safely.

Off by default; see DESIGN's "Admin API" and the README. Modules, one job each:

- `server`: `AdminServer` (its own listener) and `load_admin_web_config` (start-up checks);
- `auth`: the gate (authentication, body cap, draining) in front of the app;
- `app`: routes, error handlers and the OpenAPI document;
- `validation`: the request body and the route rules checked before any cloud call;
- `idempotency`: `Idempotency-Key` answers;
- `service`: the cloud calls, serialised per connection, with retries and waiting;
- `problems`: RFC 9457 problem documents and the cloud code → HTTP status table;
- `schemas`: success answers; `audit`: audit lines and counters; `settings`: time limits.
"""
