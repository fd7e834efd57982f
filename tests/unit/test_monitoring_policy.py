"""The policy document's [monitoring] section: SLOs per service and traffic thresholds,
validated with a line per problem and rendered back as TOML."""

from __future__ import annotations

import pytest

from deptmesh.services.company_policy import company_policy
from deptmesh.sidecar.metering.stage import LATENCY_BUCKETS_S
from deptmesh.sidecar.policy_document import PolicyDocumentInvalid, parse_policy_text, render_policy
from deptmesh.sidecar.policy_document.monitoring import (
    LATENCY_BOUNDS_S,
    MonitoringPolicy,
    ServiceObjective,
)

BASE = """\
schema_version = 2

[departments]
hr = {}
travel = {}

[[intentions]]
source = "travel"
destination = "hr"
action = "allow"

[quotas]
default_tier = "standard"

[quotas.tiers.standard]
rate = 50
burst = 100
max_in_flight = 16
"""


def _problems(section: str) -> list[str]:
    with pytest.raises(PolicyDocumentInvalid) as raised:
        parse_policy_text(BASE + section, name="policy.toml")
    return list(raised.value.lines)


class TestMonitoringSection:
    def test_a_full_section_is_read(self) -> None:
        """Shares, the `for` duration, per-tier thresholds and SLOs are read as written."""
        document = parse_policy_text(
            BASE
            + """
[monitoring]
traffic_share = 0.5
traffic_for = "2m"
[monitoring.traffic_thresholds]
standard = 30
[monitoring.slos.hr]
availability = 0.999
latency_seconds = 0.25
latency_objective = 0.99
""",
            name="policy.toml",
        )
        assert document.monitoring == MonitoringPolicy(
            traffic_share=0.5,
            traffic_for="2m",
            traffic_thresholds={"standard": 30.0},
            slos={"hr": ServiceObjective(0.999, 0.25, 0.99)},
        )

    def test_a_tier_threshold_is_its_share_of_the_rate_unless_given(self) -> None:
        """A tier without an explicit threshold is alerted on above traffic_share of its rate."""
        policy = MonitoringPolicy(traffic_share=0.8, traffic_thresholds={"batch": 3})
        assert policy.threshold("standard", 50) == 40
        assert policy.threshold("batch", 20) == 3

    def test_no_section_means_none(self) -> None:
        """A document without [monitoring] holds none (the rules then use the defaults)."""
        assert parse_policy_text(BASE, name="policy.toml").monitoring is None

    def test_every_problem_is_reported_with_its_line(self) -> None:
        """Wrong shares, durations, tiers, departments and latency bounds each get a line."""
        lines = _problems(
            """
[monitoring]
traffic_share = 2
traffic_for = "soon"
[monitoring.traffic_thresholds]
gold = 10
[monitoring.slos.payroll]
availability = 0.9
latency_seconds = 0.3
latency_objective = 0.99
[monitoring.slos.hr]
availability = 1
latency_seconds = 0.25
"""
        )
        text = "\n".join(lines)
        assert "monitoring.traffic_share: must be a number between 0 and 1" in text
        assert "monitoring.traffic_for: must be a duration" in text
        assert "monitoring.traffic_thresholds.gold: unknown tier 'gold'" in text
        assert "monitoring.slos.payroll.latency_seconds: must be one of the duration" in text
        assert "monitoring.slos.payroll: unknown department 'payroll'" in text
        assert "monitoring.slos.hr: missing latency_objective" in text
        assert all(line.startswith("policy.toml:") for line in lines)

    def test_the_section_renders_back_to_the_same_document(self) -> None:
        """render_policy writes [monitoring] so that reading it back gives the same policy."""
        document = company_policy()
        assert document.monitoring is not None
        assert document.monitoring.slos
        assert parse_policy_text(render_policy(document), name="rendered.toml") == document

    def test_the_latency_bounds_are_the_histograms(self) -> None:
        """An SLO's latency bound is checked against the duration histogram's own bounds."""
        assert LATENCY_BOUNDS_S == LATENCY_BUCKETS_S
