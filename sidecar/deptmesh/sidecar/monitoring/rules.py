"""Prometheus's rules for a mesh, from its policy document: what `deptmesh monitor rules`
prints and Prometheus loads (`rule_files`)."""

from __future__ import annotations

from typing import Any

from deptmesh.sidecar.monitoring.alerting_rules import RuleTiming, alerting_group
from deptmesh.sidecar.monitoring.recording_rules import recording_group
from deptmesh.sidecar.policy_document.monitoring import MonitoringPolicy
from deptmesh.sidecar.policy_document.schema import PolicyDocument

__all__ = ["prometheus_rules"]


def prometheus_rules(
    document: PolicyDocument, *, timing: RuleTiming | None = None, interval: str | None = None
) -> dict[str, Any]:
    """The rule file's content (its groups) for `document`; a document without a
    [monitoring] section gets the section's defaults and no SLOs. `interval` sets the
    groups' evaluation interval (None: Prometheus's global one)."""
    timing = timing or RuleTiming()
    policy = document.monitoring or MonitoringPolicy()
    destinations = {intention.destination for intention in document.intentions}
    return {
        "groups": [
            recording_group(policy.slos, rate_window=timing.rate_window, interval=interval),
            alerting_group(
                quotas=document.quotas,
                destinations=destinations,
                policy=policy,
                timing=timing,
                interval=interval,
            ),
        ]
    }
