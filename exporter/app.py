"""The exporter as one object: config in, running scheduler and listeners out.

`Exporter` wires the one-way data flow config → client → parser → state → exposition →
HTTP. It owns the shared HTTP client, the rate budgets, one VPC client per (credentials
profile, region), the fleet and the scheduler, and knows how to report health.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import httpx

from exporter.client import VpcClient, make_http_client
from exporter.clock import Clock, SystemClock
from exporter.config import Config
from exporter.credentials import CredentialsProvider, build_providers
from exporter.exposition import Exposition
from exporter.fleet import Fleet
from exporter.listener import Listener, TlsSettings
from exporter.poller import ACTION, Poller
from exporter.ratelimit import RateBudgets
from exporter.retry import RetryPolicy
from exporter.scheduler import PollScheduler, TargetPlan, effective_interval
from exporter.self_metrics import SelfMetrics
from exporter.status_page import render_status_page
from exporter.web import MetricsEndpoint, build_metrics_app

log = logging.getLogger(__name__)

STALE_AFTER_INTERVALS = 3


@dataclass(frozen=True, slots=True)
class ListenSettings:
    """Where and how the metrics listener serves."""

    address: str = ":9747"
    tls: TlsSettings | None = None


class Exporter:
    """A configured exporter; `start` begins polling and serving, `stop` ends both."""

    def __init__(
        self,
        config: Config,
        *,
        listen: ListenSettings | None = None,
        providers: dict[str, CredentialsProvider] | None = None,
        clock: Clock | None = None,
        metrics: SelfMetrics | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.metrics = metrics or SelfMetrics()
        self.providers = providers if providers is not None else build_providers(config)
        self.exposition = Exposition()
        self.fleet = Fleet(self.exposition)
        self.poller = Poller(self.fleet, self.metrics, self.clock)
        api = config.api
        self.http: httpx.AsyncClient = make_http_client(
            timeout=api.timeout,
            proxy=api.proxy.get_secret_value() if api.proxy else None,
            ca_file=str(api.ca_file) if api.ca_file else None,
        )
        self.budgets = RateBudgets(
            {action: (rate.calls, rate.period) for action, rate in api.rate_limits.items()},
            share=api.budget_fraction,
        )
        self.clients: dict[tuple[str, str], VpcClient] = {}
        self.scheduler = PollScheduler(self._plans(), self.poller, self.fleet, self.clock)
        endpoint = MetricsEndpoint(self.exposition, self.metrics)
        self.app = build_metrics_app(
            endpoint,
            healthy=self.health,
            ready=self.readiness,
            status_page=lambda: render_status_page(self.fleet.records.values()),
        )
        listen = listen or ListenSettings()
        self.listener = Listener(self.app, listen.address, listen.tls)
        self._started = False

    def client(self, profile: str, region_id: str) -> VpcClient:
        """The VPC client of one account and region (created once, shared by targets)."""
        key = (profile, region_id)
        if key not in self.clients:
            api = self.config.api
            self.clients[key] = VpcClient(
                self.http,
                self.providers[profile],
                region_id,
                budgets=self.budgets,
                metrics=self.metrics,
                endpoint=api.endpoint,
                retry=RetryPolicy(max_retries=api.max_retries),
                timeout=api.timeout,
                max_response_bytes=int(api.max_response_bytes),
            )
        return self.clients[key]

    def _plans(self) -> list[TargetPlan]:
        """One plan per target, with its share of the account and region's budget."""
        config = self.config
        gateways_per_budget: Counter[tuple[str, str]] = Counter()
        for target in config.targets:
            gateways_per_budget[(target.credentials, target.region_id)] += len(target.gateways)
        plans = []
        for target in config.targets:
            interval = config.interval_for(target)
            budget_key = (target.credentials, target.region_id)
            rate = self.budgets.rate_per_second(ACTION)
            share = len(target.gateways) / max(gateways_per_budget[budget_key], 1)
            effective = effective_interval(interval, len(target.gateways), rate * share)
            plans.append(
                TargetPlan(
                    name=target.name,
                    region_id=target.region_id,
                    gateways=list(target.gateways),
                    client=self.client(target.credentials, target.region_id),
                    interval=interval,
                    effective_interval=effective,
                    stale_after=config.poll.stale_after or STALE_AFTER_INTERVALS * effective,
                    jitter=config.poll.jitter * effective,
                    startup_spacing=1.0 / (rate * share) if rate * share > 0 else 0.0,
                )
            )
        return plans

    async def start(self) -> None:
        await self.listener.start()
        self.scheduler.start()
        self._started = True
        log.info(
            "exporter started",
            extra={
                "fields": {
                    "listen_address": self.listener.address,
                    "port": self.listener.port,
                    "targets": len(self.scheduler.plans),
                    "gateways": sum(len(plan.keys) for plan in self.scheduler.plans),
                }
            },
        )

    async def stop(self) -> None:
        """Stop polling, then serving; safe to call twice."""
        self._started = False
        await self.scheduler.stop()
        await self.listener.stop()
        await self.http.aclose()

    def health(self) -> tuple[bool, str]:
        """Liveness: the scheduler runs and poll cycles keep starting."""
        return self.scheduler.liveness()

    def readiness(self) -> tuple[bool, str]:
        """Readiness: config loaded, listener up, scheduler running; polls are not awaited."""
        if not self._started or not self.listener.running:
            return False, "starting"
        return self.health()
