"""Prometheus's configuration for a mesh: every instance found through Consul.

Prometheus's own Consul service discovery lists every registered instance,
with the monitoring token (read-only: catalog and health; the configuration
holds its secret, so it is written readable by its owner only); the relabelling
keeps the instances that registered a `metrics_port` meta
(deptmesh.sidecar.host.registration) and scrapes that port on the instance's
address, labelled with its `department`. A new replica is scraped as soon as
it registers, with no change here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deptmesh.sidecar.monitoring.alerting_rules import JOB

__all__ = ["PrometheusSetup", "prometheus_config"]


@dataclass(frozen=True, slots=True)
class PrometheusSetup:
    """Where Prometheus finds Consul, its token, its rules and its Alertmanagers."""

    consul_address: str
    consul_token: str = field(repr=False)  # the monitoring token's secret
    rule_files: Sequence[Path] = ()
    alertmanagers: Sequence[str] = ()  # HOST:PORT each
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    # How often Prometheus asks Consul again (it also watches, with blocking queries).
    refresh_interval: str = "30s"
    # Named, so that Prometheus need not ask the agent (/v1/agent/self needs agent
    # read, which the monitoring token does not have).
    datacenter: str = "dc1"
    external_labels: dict[str, str] = field(default_factory=dict)


def prometheus_config(setup: PrometheusSetup) -> dict[str, Any]:
    """The configuration's content (JSON, which Prometheus reads as the YAML it is)."""
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": setup.scrape_interval,
            "evaluation_interval": setup.evaluation_interval,
        },
        "rule_files": [str(path) for path in setup.rule_files],
        "scrape_configs": [
            {
                "job_name": JOB,
                "consul_sd_configs": [
                    {
                        "server": setup.consul_address,
                        "datacenter": setup.datacenter,
                        # Inline: Prometheus 2.24 (Debian's last with Consul discovery)
                        # reads no token file. Keep the configuration private.
                        "token": setup.consul_token,
                        "refresh_interval": setup.refresh_interval,
                    }
                ],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_consul_service_metadata_metrics_port"],
                        "regex": "[0-9]+",
                        "action": "keep",
                    },
                    {
                        "source_labels": [
                            "__meta_consul_service_address",
                            "__meta_consul_service_metadata_metrics_port",
                        ],
                        "separator": ":",
                        "target_label": "__address__",
                    },
                    {
                        "source_labels": ["__meta_consul_service_metadata_department"],
                        "target_label": "department",
                    },
                    {
                        "source_labels": ["__meta_consul_service_id"],
                        "target_label": "consul_instance",
                    },
                ],
            }
        ],
    }
    if setup.external_labels:
        config["global"]["external_labels"] = dict(setup.external_labels)
    if setup.alertmanagers:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(setup.alertmanagers)}]}]
        }
    return config
