"""The exporter as one object: config in, running scheduler and listeners out.

`Exporter` wires the one-way data flow config → client → parser → state → exposition →
HTTP. It owns the shared HTTP client, the rate budgets (per account and region, this
shard's share), one VPC client per (credentials profile, region), the fleet, the
inventory (discovery, connection status, the budget plan), the scheduler and the
scheduled diagnoses, and knows how to report health.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from starlette.types import ASGIApp

from exporter.clock import Clock, SystemClock
from exporter.cloud.client import VpcClient, make_http_client
from exporter.cloud.credentials import build_providers
from exporter.cloud.keys import CredentialsProvider
from exporter.cloud.profiles import MonitoredProvider
from exporter.cloud.ratelimit import RateBudgets
from exporter.cloud.retry import RetryPolicy
from exporter.collect.inventory import Inventory
from exporter.collect.poller import Poller
from exporter.collect.scheduled_diagnoses import Diagnoses
from exporter.collect.scheduler import PollScheduler
from exporter.collect.sharding import UNSHARDED, Shard
from exporter.collect.state_keeper import StateKeeper, read_state
from exporter.config.model import Config
from exporter.exposition.fleet import Fleet
from exporter.exposition.render import Exposition
from exporter.exposition.state_file import SavedState, records_of
from exporter.telemetry.loop_lag import LoopLagProbe
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web.authentication import secure_app
from exporter.web.health_app import build_health_app
from exporter.web.listener import Listener
from exporter.web.metrics_app import MetricsEndpoint, build_metrics_app
from exporter.web.status_page import StatusPage
from exporter.web.web_config import WebConfig

log = logging.getLogger(__name__)


_CONFIGURED = (
    "config",
    "providers",
    "http",
    "budgets",
    "clients",
    "inventory",
    "scheduler",
    "diagnoses",
    "state",
)
"""The attributes `Exporter._assemble` sets from a configuration (a reload swaps them)."""


def _transport(config: Config) -> tuple[object, ...]:
    """The settings baked into the shared HTTP client."""
    api = config.api
    return (api.timeout, api.proxy, api.ca_file)


@dataclass(frozen=True, slots=True)
class ListenSettings:
    """Where and how the metrics listener serves (`--web.*` flags)."""

    address: str = ":9747"
    web_config: WebConfig | None = None
    lifecycle: Callable[[ASGIApp], ASGIApp] | None = None
    """Wraps the listener's app with the lifecycle endpoints (`--web.enable-lifecycle`:
    `exporter.process.reload.Lifecycle`), behind the web config's authentication."""
    health_address: str | None = None
    """The loopback health listener (`--web.health-listen-address`), if any."""


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
        shard: Shard = UNSHARDED,
    ) -> None:
        self.clock = clock or SystemClock()
        self.metrics = metrics or SelfMetrics()
        self.shard = shard
        self._given_providers = providers
        self.exposition = Exposition()
        self.fleet = Fleet(self.exposition)
        # One poller for the process: it remembers each gateway's failing condition, so a
        # reload that ends a fault still logs "poll recovered".
        self.poller = Poller(self.fleet, self.metrics, self.clock)
        saved = read_state(config.state)
        self._assemble(config, saved=saved)
        if saved is not None:
            self.metrics.state_restored(self.clock.time())
        self._bind()
        self.metrics.config_reload_success.set(1)
        self.metrics.config_reload_timestamp.set(self.clock.time())
        endpoint = MetricsEndpoint(self.exposition, self.metrics)
        self.app = build_metrics_app(
            endpoint,
            healthy=self.health,
            ready=self.readiness,
            status_page=StatusPage(
                lambda: self.fleet.records,
                lambda: self.config.web.grafana_url,
                self.clock.time,
                lambda: {name: t.diagnose_max_age for name, t in self.fleet.targets.items()},
            ),
        )
        listen = listen or ListenSettings()
        web_config = listen.web_config or WebConfig()
        app = self.app if listen.lifecycle is None else listen.lifecycle(self.app)
        self.listener = Listener(
            secure_app(app, web_config), listen.address, web_config.tls_settings()
        )
        self.loop_lag = LoopLagProbe(self.metrics.event_loop_lag)
        self.health_listener = (
            None
            if listen.health_address is None
            else Listener(
                build_health_app(healthy=self.health, ready=self.readiness),
                listen.health_address,
                None,
            )
        )
        self._started = False

    def _assemble(
        self,
        config: Config,
        http: httpx.AsyncClient | None = None,
        previous: Inventory | None = None,
        saved: SavedState | None = None,
    ) -> None:
        """Create every part that depends on the configuration (the attributes named in
        `_CONFIGURED`); nothing starts and nothing is exported yet (but `saved`, a state
        file's content at start, is restored). On a reload, `http` is the HTTP client to
        keep and `previous` the inventory being replaced."""
        self.config = config
        built = (
            self._given_providers if self._given_providers is not None else build_providers(config)
        )
        self.providers: dict[str, MonitoredProvider] = {
            name: MonitoredProvider(
                provider,
                self.metrics,
                [target.name for target in config.targets if target.credentials == name],
            )
            for name, provider in built.items()
        }
        api = config.api
        self.http: httpx.AsyncClient = http or make_http_client(
            timeout=api.timeout,
            proxy=api.proxy.get_secret_value() if api.proxy else None,
            ca_file=str(api.ca_file) if api.ca_file else None,
        )
        self.budgets = RateBudgets(
            {action: (rate.calls, rate.period) for action, rate in api.rate_limits.items()},
            share=api.budget_fraction,
            shards=self.shard.total,
        )
        self.clients: dict[tuple[str, str], VpcClient] = {}
        self.inventory = Inventory(
            config,
            client_for=self.client,
            budgets=self.budgets,
            fleet=self.fleet,
            clock=self.clock,
            shard=self.shard,
        )
        if previous is not None:
            self.inventory.adopt(previous)
        if saved is not None:
            self.inventory.restore(saved.targets)
        self.scheduler = PollScheduler(
            self.inventory.poll_plans(), self.poller, self.fleet, self.clock
        )
        if saved is not None:
            self._restore(saved)
        self.state = StateKeeper(
            config.state, self.fleet, self.inventory.targets, self.scheduler, self.clock
        )
        self.diagnoses: Diagnoses | None = None
        if config.diagnose.enabled:
            self.diagnoses = Diagnoses(
                config.diagnose, self.inventory, self.fleet, self.metrics, self.clock
            )

    def _restore(self, saved: SavedState) -> None:
        """Serve the saved state of the gateways still configured, with its original
        timestamps, before the first cycle; and the paces the targets achieved."""
        keys = [key for plan in self.scheduler.plans for key in plan.keys]
        self.fleet.restore(records_of(saved, keys), self.clock.time())
        for plan in self.scheduler.plans:
            target = saved.targets.get(plan.name)
            if target is not None and target.effective_interval is not None:
                self.scheduler.restore_pace(plan.name, target.effective_interval)

    def _bind(self) -> None:
        """Register the inventory's, diagnoses' and state file's jobs with the scheduler
        (they run once it starts) and render the inventory's series."""
        self.inventory.bind(self.scheduler.scheduler, self.scheduler)
        if self.diagnoses is not None:
            self.diagnoses.bind(self.scheduler.scheduler)
        self.state.bind(self.scheduler.scheduler)

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
                account=self.config.account_of(profile),
                sleep=self.clock.sleep,
                verdicts=self.providers[profile],
            )
        return self.clients[key]

    def region_client(self, region_id: str) -> VpcClient:
        """The client of the first target covering `region_id` (for the admin API)."""
        for target in self.config.targets:
            if target.region_id == region_id:
                return self.client(target.credentials, region_id)
        raise KeyError(f"no target covers region {region_id}")

    async def start(self) -> None:
        self.loop_lag.start()
        await self.listener.start()
        if self.health_listener is not None:
            await self.health_listener.start()
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
                    "shard": str(self.shard),
                }
            },
        )

    async def reconfigure(self, config: Config) -> bool:
        """Swap in a new configuration while serving (a reload): targets, gateways,
        credentials, API settings and schedules change; the listener, the self-metrics and
        the last good data of the gateways that stay are kept, and gateways that went lose
        their series. The HTTP client is kept unless `api.timeout`, `proxy` or `ca_file`
        changed (then calls in flight on the old one, admin calls included, fail).

        Returns False when `config` is the running one (nothing to do). Raises, leaving the
        running configuration untouched, when the new parts cannot be built.
        """
        if config == self.config:
            return False
        previous = {name: getattr(self, name) for name in _CONFIGURED}
        keep_http = _transport(config) == _transport(self.config)
        try:
            self._assemble(config, http=self.http if keep_http else None, previous=self.inventory)
        except BaseException:
            if not keep_http and self.http is not previous["http"]:
                await self.http.aclose()
            for name, value in previous.items():
                setattr(self, name, value)
            raise
        await self._stop_polling(
            previous["scheduler"], previous["inventory"], previous["diagnoses"]
        )
        for plan in self.scheduler.plans:
            # The pace a kept target achieved stays until the new scheduler measures one:
            # "data stale" thresholds derived from it must not shrink with a reload.
            achieved = previous["scheduler"].achieved(plan.name)
            if achieved is not None:
                self.scheduler.restore_pace(plan.name, achieved)
        # No await from here to the start: a scrape sees the old series or the new ones.
        previous["inventory"].withdraw()
        self.fleet.retain_targets({target.name for target in config.targets})
        self.poller.retain_targets({target.name for target in config.targets})
        for profile in previous["providers"].keys() - self.providers.keys():
            with contextlib.suppress(KeyError):
                self.metrics.credentials_success.remove(profile)
        self._bind()
        if self._started:
            self.scheduler.start()
        if previous["http"] is not self.http:
            await previous["http"].aclose()
        return True

    async def stop_polling(self) -> None:
        """Stop the scheduler, the inventory refreshes and the diagnoses, cancelling their
        calls in flight; the listener keeps serving the last data."""
        await self._stop_polling(self.scheduler, self.inventory, self.diagnoses)

    @staticmethod
    async def _stop_polling(
        scheduler: PollScheduler, inventory: Inventory, diagnoses: Diagnoses | None
    ) -> None:
        await scheduler.stop()
        await inventory.stop()
        if diagnoses is not None:
            await diagnoses.stop()

    async def stop(self) -> None:
        """Stop polling, then serving; safe to call twice."""
        self._started = False
        await self.stop_polling()
        await self.state.save()
        await self.listener.stop()
        if self.health_listener is not None:
            await self.health_listener.stop()
        await self.http.aclose()
        self.loop_lag.stop()

    def health(self) -> tuple[bool, str]:
        """Liveness: the scheduler runs and poll cycles keep starting."""
        return self.scheduler.liveness()

    def readiness(self) -> tuple[bool, str]:
        """Readiness: config loaded, listener up, scheduler running; polls are not awaited."""
        if not self._started or not self.listener.running:
            return False, "starting"
        return self.health()
