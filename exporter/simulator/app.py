"""The simulator's ASGI app: the API on `/`, a control API under `/_simulator/`.

The control API (unsigned; the simulator is a test tool on loopback) switches faults at run
time and reports counters, for clients in another process such as benchmarks:
- `GET /_simulator/faults`: the faults in force, with how often each matched and fired;
- `POST /_simulator/faults` with a fault as JSON (`{"kind": "throttle", "action": …}`): 201;
- `DELETE /_simulator/faults` (all) or `/_simulator/faults/{id}` (one): 204;
- `GET /_simulator/stats`: requests by action and failures by action and code.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from exporter.simulator.faults import Fault

if TYPE_CHECKING:
    from exporter.simulator.simulator import Simulator

CONTROL_PREFIX = "/_simulator"


def build_app(simulator: Simulator) -> Starlette:
    async def list_faults(request: Request) -> Response:
        return JSONResponse([f.as_json() for f in simulator.faults.installed()])

    async def add_fault(request: Request) -> Response:
        try:
            fault = Fault.model_validate(json.loads(await request.body()))
        except ValueError as exc:  # JSON or validation error
            errors = exc.errors() if isinstance(exc, ValidationError) else [str(exc)]
            return JSONResponse({"errors": json.loads(json.dumps(errors, default=str))}, 422)
        return JSONResponse(simulator.faults.add(fault).as_json(), 201)

    async def clear_faults(request: Request) -> Response:
        simulator.faults.clear()
        return Response(status_code=204)

    async def remove_fault(request: Request) -> Response:
        found = simulator.faults.remove(request.path_params["fault_id"])
        return Response(status_code=204 if found else 404)

    async def stats(request: Request) -> Response:
        failures: dict[str, dict[str, int]] = {}
        for (action, code), count in simulator.journal.failures.items():
            failures.setdefault(action, {})[code] = count
        return JSONResponse({"calls": dict(simulator.journal.calls), "failures": failures})

    return Starlette(
        routes=[
            Route("/", simulator.handle, methods=["GET", "POST"]),
            Route(f"{CONTROL_PREFIX}/faults", list_faults, methods=["GET"]),
            Route(f"{CONTROL_PREFIX}/faults", add_fault, methods=["POST"]),
            Route(f"{CONTROL_PREFIX}/faults", clear_faults, methods=["DELETE"]),
            Route(f"{CONTROL_PREFIX}/faults/{{fault_id:int}}", remove_fault, methods=["DELETE"]),
            Route(f"{CONTROL_PREFIX}/stats", stats, methods=["GET"]),
        ]
    )
