"""Monitoring a mesh with Prometheus and Alertmanager, generated from the policy document.

recording_rules.py and alerting_rules.py write Prometheus's rules (rules.py
puts them together); prometheus_config.py makes Prometheus find every instance
through Consul; alertmanager_config.py routes each alert to its department's
owners; firing_alerts.py reads what Alertmanager holds; instance_metrics.py exports
what the rules need of an instance beyond its calls (leaf expiry, cache ages); programs.py finds and
starts Prometheus and Alertmanager for a local mesh or a test. The configurations are
plain data: `render` writes them as JSON, which Prometheus, promtool and
Alertmanager read as the YAML it is. `deptmesh monitor` and `deptmesh alerts`
are built on these (deptmesh.sidecar.cli.monitor).
"""

import json
from typing import Any

from deptmesh.sidecar.monitoring.alerting_rules import ALERTS, JOB, RuleTiming
from deptmesh.sidecar.monitoring.alertmanager_config import PLATFORM_RECEIVER, alertmanager_config
from deptmesh.sidecar.monitoring.firing_alerts import (
    AlertmanagerUnavailable,
    FiringAlert,
    firing_alerts,
)
from deptmesh.sidecar.monitoring.instance_metrics import InstanceCollector, usage_spool_fill
from deptmesh.sidecar.monitoring.programs import (
    MonitoringPrograms,
    MonitoringProgramsNotFound,
    alertmanager_argv,
    find_monitoring_programs,
    prometheus_argv,
    wait_until_ready,
)
from deptmesh.sidecar.monitoring.prometheus_config import PrometheusSetup, prometheus_config
from deptmesh.sidecar.monitoring.rules import prometheus_rules

__all__ = [
    "ALERTS",
    "JOB",
    "PLATFORM_RECEIVER",
    "AlertmanagerUnavailable",
    "FiringAlert",
    "InstanceCollector",
    "MonitoringPrograms",
    "MonitoringProgramsNotFound",
    "PrometheusSetup",
    "RuleTiming",
    "alertmanager_argv",
    "alertmanager_config",
    "find_monitoring_programs",
    "firing_alerts",
    "prometheus_argv",
    "prometheus_config",
    "prometheus_rules",
    "render",
    "usage_spool_fill",
    "wait_until_ready",
]


def render(content: dict[str, Any]) -> str:
    """A configuration or rule file's text."""
    return json.dumps(content, indent=2) + "\n"
