"""`aliyun_vpn_credentials_success{profile}`: 1 while the profile's credentials resolve and
the cloud accepts them, 0 when either fails; no series before the profile is used."""

from __future__ import annotations

from exporter.cloud.credentials import StaticCredentialsProvider
from exporter.cloud.keys import Credential
from exporter.cloud.profiles import MonitoredProvider
from exporter.telemetry.self_metrics import SelfMetrics


def gauge(metrics: SelfMetrics) -> float | None:
    return metrics.registry.get_sample_value("aliyun_vpn_credentials_success", {"profile": "p"})


async def test_a_rejection_holds_the_gauge_at_0_until_the_cloud_accepts_a_call() -> None:
    metrics = SelfMetrics()
    provider = MonitoredProvider(StaticCredentialsProvider("p", Credential("id", "s")), metrics)
    assert gauge(metrics) is None, "no series before the profile is used"
    await provider.get()
    assert gauge(metrics) == 1
    provider.rejected("SignatureDoesNotMatch")
    assert gauge(metrics) == 0
    await provider.get()  # the keys still resolve: the cloud's verdict stands
    assert gauge(metrics) == 0
    assert provider.failure == "SignatureDoesNotMatch"
    provider.accepted()
    assert gauge(metrics) == 1
    assert provider.failure is None
