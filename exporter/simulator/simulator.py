"""The simulator: state, authentication, throttling, faults and the request pipeline.

A request goes: parse → action and version → signature → faults → throttling → handler.
Every request, answered or not, lands in the journal.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import parse_qsl

from pydantic import SecretStr
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response

from exporter.simulator.actions import ACTIONS, API_VERSION
from exporter.simulator.app import build_app
from exporter.simulator.auth import Authenticator, Principal, WireRequest
from exporter.simulator.call import Call
from exporter.simulator.clock import Clock
from exporter.simulator.faults import Fault, FaultInjector, FaultKind
from exporter.simulator.fleet import Fleet
from exporter.simulator.journal import SIGNATURE_PARAMS, Journal, RecordedRequest
from exporter.simulator.replies import (
    DEFAULT_CODE_FOR_STATUS,
    DroppedConnection,
    ErrorReply,
    dump_json,
    error_response,
    json_response,
    new_request_id,
)
from exporter.simulator.scenario import KeyPair, Scenario
from exporter.simulator.state import SimulatorState
from exporter.simulator.streams import (
    DEFAULT_DRIP_SECONDS,
    DEFAULT_HUGE_BODY_BYTES,
    Drip,
    HugeBody,
    ResetMidBody,
)
from exporter.simulator.throttle import DEFAULT_LIMITS, RateLimiter

log = logging.getLogger(__name__)

_HTML_PAGE = (
    "<html><head><title>{status} {phrase}</title></head><body>"
    "<center><h1>{status} {phrase}</h1></center><hr><center>Tengine</center>"
    "</body></html>"
)

DEFAULT_LATENCY_SECONDS = 1.0
DEFAULT_HANG_SECONDS = 3600.0
"""A timeout fault says nothing this long: longer than any client timeout."""


@dataclass(slots=True)
class _Trace:
    """What the journal will say about the request being answered."""

    action: str = ""
    principal: Principal | None = None
    status: int | None = None
    code: str | None = None
    faults: list[str] = field(default_factory=list)


def _form_pairs(raw: bytes) -> list[tuple[str, str]]:
    """Form-decode (`+` is a space, `%XX` UTF-8), keeping empty values."""
    return parse_qsl(raw.decode("latin-1"), keep_blank_values=True, errors="replace")


async def _wire_request(request: Request) -> WireRequest:
    body = await request.body()
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    return WireRequest(
        method=request.method,
        path=request.url.path,
        query=_form_pairs(request.scope["query_string"]),
        headers=headers,
        body=body,
        body_params=_form_pairs(body) if form else [],
    )


class Simulator:
    """A simulated VPC API: the state of a scenario's fleet and the ASGI app that serves it.

    `throttling`: True applies the published limits (and the scenario's overrides), False
    turns throttling off, a mapping overrides limits per action (calls per 60 s).
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        clock: Clock = time.time,
        throttling: bool | Mapping[str, int] = True,
        journal_size: int = 10_000,
    ) -> None:
        self.scenario = scenario
        self.clock = clock
        self.state = SimulatorState(scenario, clock)
        self.faults = FaultInjector(scenario.faults)
        self.journal = Journal(journal_size)
        self._auth = Authenticator(scenario.key_pairs, clock)
        self._retry_after_header = scenario.retry_after_header
        self.rate_limiter: RateLimiter | None = None
        if throttling is not False:
            overrides = throttling if isinstance(throttling, Mapping) else {}
            limits = {**DEFAULT_LIMITS, **scenario.rate_limits, **overrides}
            self.rate_limiter = RateLimiter(limits, clock)
        self._hangs: set[asyncio.Future[None]] = set()

        self.app = build_app(self)

    @property
    def fleet(self) -> Fleet:
        return self.state.fleet

    @property
    def requests(self) -> deque[RecordedRequest]:
        """The journal's recent requests, oldest first."""
        return self.journal.requests

    @property
    def calls(self) -> Counter[str]:
        """Requests per action, failures included."""
        return self.journal.calls

    def add_key_pair(
        self,
        access_key_id: str,
        access_key_secret: str,
        *,
        security_token: str | None = None,
        account_id: str | None = None,
    ) -> None:
        """Accept one more key pair (an STS key when `security_token` is given)."""
        self._auth.add(
            KeyPair(
                access_key_id=access_key_id,
                access_key_secret=SecretStr(access_key_secret),
                security_token=SecretStr(security_token) if security_token else None,
                account_id=account_id,
            )
        )

    def release_hangs(self) -> None:
        """End every pending timeout or drip fault now (their connections are dropped).

        Call from the loop that serves the simulator, e.g. when its server stops.
        """
        for hang in self._hangs:
            if not hang.done():
                hang.set_result(None)

    async def handle(self, request: Request) -> Response:
        """Answer one API request (the ASGI app routes `/` here)."""
        arrived = self.clock()
        request_id = new_request_id()
        try:
            wire = await _wire_request(request)
        except ClientDisconnect:  # gone before its request was read: nobody to answer
            return Response(status_code=400)
        params = dict([*wire.query, *wire.body_params])
        trace = _Trace()
        try:
            response = await self._answer(wire, params, request_id, trace)
        except ErrorReply as error:
            response = self._error(error, request_id, wire, trace)
        except Exception:
            log.exception("simulator failed on %s", trace.action or "a request")
            response = self._error(ErrorReply("InternalError"), request_id, wire, trace)
        principal = trace.principal
        own_params = {k: v for k, v in params.items() if k not in SIGNATURE_PARAMS}
        self.journal.record(
            RecordedRequest(
                action=trace.action,
                params=own_params,
                access_key_id=principal.access_key_id if principal else None,
                status=trace.status,
                code=trace.code,
                signature_version=principal.signature_version if principal else None,
                faults=tuple(trace.faults),
                time=arrived,
            )
        )
        log.debug("%s %s -> %s %s", trace.action, own_params, trace.status, trace.code or "")
        # The API's clock, not the host's: a client measures its clock offset by it.
        response.headers["date"] = formatdate(self.clock(), usegmt=True)
        return response

    def _error(
        self, error: ErrorReply, request_id: str, wire: WireRequest, trace: _Trace
    ) -> Response:
        trace.status, trace.code = error.status, error.code
        return error_response(error, request_id, wire.headers.get("host", "vpc.aliyuncs.com"))

    async def _answer(
        self, wire: WireRequest, params: dict[str, str], request_id: str, trace: _Trace
    ) -> Response:
        action = wire.headers.get("x-acs-action") if wire.v3 else params.get("Action")
        version = wire.headers.get("x-acs-version") if wire.v3 else params.get("Version")
        trace.action = action or ""
        if not action:
            raise ErrorReply.missing("Action")
        handler = ACTIONS.get(action)
        if handler is None:
            raise ErrorReply(
                "InvalidAction.NotFound",
                f"Specified api {action} is not found, please check your url and method.",
            )
        if version != API_VERSION:
            raise ErrorReply(
                "InvalidVersion", f"Specified parameter Version {version!r} is not valid."
            )
        principal = trace.principal = self._auth.verify(wire)

        fired = self.faults.fire(action, self._subject_gateway(params))
        trace.faults = [fault.kind.value for fault in fired]
        delay = sum(
            DEFAULT_LATENCY_SECONDS if f.seconds is None else f.seconds
            for f in fired
            if f.kind is FaultKind.LATENCY
        )
        if delay:
            await asyncio.sleep(delay)
        terminal = next((f for f in fired if f.terminal), None)
        if terminal is not None:
            return await self._fault_answer(terminal, action, principal, trace, request_id)

        if self.rate_limiter is not None:
            region = params.get("RegionId", "")
            wait = self.rate_limiter.acquire(principal.account, region, action)
            if wait is not None:
                retry_after = max(1, math.ceil(wait * 1000)) if self._retry_after_header else None
                raise ErrorReply("Throttling.User", retry_after_ms=retry_after)

        call = Call(
            action=action,
            params=params,
            state=self.state,
            access_key_id=principal.access_key_id,
            now=self.clock(),
            faults=tuple(f for f in fired if f.kind is not FaultKind.LATENCY),
        )
        body = handler(call)
        body["RequestId"] = request_id
        content = dump_json(body)
        if any(f.kind is FaultKind.TRUNCATED_JSON for f in fired):
            content = content[: len(content) // 2]
        trace.status = 200
        if any(f.kind is FaultKind.RESET_MID_BODY for f in fired):
            return ResetMidBody(content, {"x-acs-request-id": request_id})
        return json_response(content, headers={"x-acs-request-id": request_id})

    def _subject_gateway(self, params: Mapping[str, str]) -> str | None:
        """The gateway a call is about, for faults scoped to a gateway."""
        if gateway_id := params.get("VpnGatewayId"):
            return gateway_id
        if connection_id := params.get("VpnConnectionId") or params.get("ResourceId"):
            connection = self.state.fleet.connection(connection_id)
            return connection.gateway_id if connection else None
        if diagnose_id := params.get("DiagnoseId"):
            run = self.state.runs.get(diagnose_id)
            return run.gateway.id if run else None
        return None

    async def _fault_answer(
        self, fault: Fault, action: str, principal: Principal, trace: _Trace, request_id: str
    ) -> Response:
        match fault.kind:
            case FaultKind.ERROR:
                code = fault.code or DEFAULT_CODE_FOR_STATUS.get(
                    fault.status or 500, "InternalError"
                )
                detail = None
                if code == "Forbidden.RAM":
                    detail = {
                        "AccessDeniedDetail": {
                            "AuthAction": f"vpc:{action}",
                            "AuthPrincipalType": "SubUser",
                            "AuthPrincipalDisplayName": principal.account,
                            "NoPermissionType": "ImplicitDeny",
                            "PolicyType": "AccountLevelIdentityBasedPolicy",
                        }
                    }
                raise ErrorReply(code, fault.message, status=fault.status, detail=detail)
            case FaultKind.THROTTLE:
                raise ErrorReply(
                    fault.code or "Throttling.User", retry_after_ms=fault.retry_after_ms
                )
            case FaultKind.HTML:
                status = trace.status = fault.status or 502
                page = _HTML_PAGE.format(status=status, phrase=HTTPStatus(status).phrase)
                return HTMLResponse(page, status)
            case FaultKind.TIMEOUT:
                await self._hang(DEFAULT_HANG_SECONDS if fault.seconds is None else fault.seconds)
                return DroppedConnection()
            case FaultKind.HUGE_BODY:
                trace.status = 200
                return HugeBody(fault.size or DEFAULT_HUGE_BODY_BYTES, request_id)
            case FaultKind.DRIP:
                trace.status = 200
                stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._hangs.add(stop)
                seconds = DEFAULT_DRIP_SECONDS if fault.seconds is None else fault.seconds
                return Drip(seconds, stop, lambda: self._hangs.discard(stop))
            case _:  # RESET
                return DroppedConnection()

    async def _hang(self, seconds: float) -> None:
        hang: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._hangs.add(hang)
        try:
            await asyncio.wait([hang], timeout=seconds)
        finally:
            self._hangs.discard(hang)
