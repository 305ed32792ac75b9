"""Prometheus exporter for Alibaba Cloud VPN gateway quick diagnoses."""

__version__ = "0.2.0"
