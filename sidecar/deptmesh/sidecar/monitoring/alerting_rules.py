"""Alerting rules, generated from the policy document; each carries a `runbook` line.

Every alert is labelled `department` (whose owners it reaches: the callee's, or
the instance's), `severity` (page, warning or info) and, for a caller's
traffic, `kind="traffic"` and `caller` (whose owners it reaches too): the
Alertmanager routing of deptmesh.sidecar.monitoring.alertmanager_config reads
these labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deptmesh.sidecar.monitoring.recording_rules import budget_ratio, windowed
from deptmesh.sidecar.policy_document.monitoring import MonitoringPolicy, ServiceObjective

__all__ = ["ALERTS", "RuleTiming", "alerting_group"]

# Every alert's name, in the order the group holds them (one rule or several each).
ALERTS = (
    "DeptmeshCallerTrafficAboveThreshold",
    "DeptmeshCallerCloseToQuota",
    "DeptmeshCallerThrottled",
    "DeptmeshErrorBudgetBurnFast",
    "DeptmeshErrorBudgetBurnSlow",
    "DeptmeshLatencyBudgetBurnFast",
    "DeptmeshLatencyBudgetBurnSlow",
    "DeptmeshInstanceDown",
    "DeptmeshDepartmentNoHealthyInstance",
    "DeptmeshConnectLeafExpiring",
    "DeptmeshRegistryCacheStale",
    "DeptmeshTraceStoreNearBound",
    "DeptmeshUsageSpoolNearBound",
)
# The scrape job the generated Prometheus configuration names (prometheus_config).
JOB = "deptmesh"
# (long window, short window, burn rate, severity): the SRE workbook's table.
_FAST_BURNS = (("1h", "5m", 14.4), ("6h", "30m", 6.0))
_SLOW_BURNS = (("1d", "2h", 3.0), ("3d", "6h", 1.0))
_IN_SERVICE = "{{ $labels.service }}"


@dataclass(frozen=True, slots=True)
class RuleTiming:
    """How fast the rules react. Production keeps the defaults; tests shorten them.

    `traffic_for` None: the policy's `traffic_for`.
    """

    rate_window: str = "1m"
    traffic_for: str | None = None
    throttled_for: str = "5m"
    instance_for: str = "1m"
    fast_burn_for: str = "2m"
    slow_burn_for: str = "15m"
    bound_for: str = "10m"


def _alert(
    name: str,
    expr: str,
    duration: str,
    severity: str,
    summary: str,
    runbook: str,
    **labels: str,
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity, **labels},
        "annotations": {"summary": summary, "runbook": runbook},
    }


def _one_of(names: Iterable[str]) -> str:
    return "|".join(sorted(names))


def _traffic(
    quotas: Mapping[str, Any] | None,
    destinations: Iterable[str],
    policy: MonitoringPolicy,
    timing: RuleTiming,
) -> list[dict[str, Any]]:
    """One rule per (destination, tier): its callers of that tier above the tier's threshold."""
    if quotas is None:
        return []  # no quotas: no tiers to hold callers to
    tiers, default = quotas["tiers"], quotas["default_tier"]
    rate = windowed("caller", "requests", "rate", timing.rate_window)
    rules = []
    for service in sorted(destinations):
        assigned: dict[str, str] = quotas.get("services", {}).get(service, {}).get("callers", {})
        everyone = assigned.get("*", default)
        named = {caller: tier for caller, tier in assigned.items() if caller != "*"}
        for tier in sorted(set(named.values()) | {everyone}):
            callers = [caller for caller, t in named.items() if t == tier]
            others = [caller for caller, t in named.items() if t != tier]
            matchers = [f'service="{service}"']
            if tier == everyone:
                if others:
                    matchers.append(f'caller!~"{_one_of(others)}"')
            else:
                matchers.append(f'caller=~"{_one_of(callers)}"')
            threshold = policy.threshold(tier, tiers[tier]["rate"])
            rules.append(
                _alert(
                    "DeptmeshCallerTrafficAboveThreshold",
                    f"{rate}{{{', '.join(matchers)}}} > {threshold:g}",
                    timing.traffic_for or policy.traffic_for,
                    "warning",
                    f"{{{{ $labels.caller }}}} calls {service} at {{{{ $value | humanize }}}}"
                    f" calls/s, above the {tier} tier's threshold of {threshold:g}",
                    f"Ask {{{{ $labels.caller }}}}'s owners whether this traffic is expected;"
                    f" if so, move it to a higher tier in the policy's [quotas], else have it"
                    f" back off before {service}'s quota refuses it (deptmesh quota).",
                    department=service,
                    kind="traffic",
                    tier=tier,
                )
            )
    return rules


def _throttling(policy: MonitoringPolicy, timing: RuleTiming) -> list[dict[str, Any]]:
    ratio = windowed("caller", "throttled", "ratio_rate", timing.rate_window)
    return [
        _alert(
            "DeptmeshCallerCloseToQuota",
            f"{ratio} > {policy.close_to_quota_share:g}",
            timing.throttled_for,
            "info",
            f"{{{{ $labels.caller }}}} has {{{{ $value | humanizePercentage }}}} of its calls"
            f" to {_IN_SERVICE} refused by its quota",
            "The caller's bursts reach its quota: have it smooth its calls or retry with"
            " backoff (RetryInfo), or raise its tier in the policy's [quotas].",
            department=_IN_SERVICE,
            kind="traffic",
        ),
        _alert(
            "DeptmeshCallerThrottled",
            f"{ratio} > {policy.throttled_share:g}",
            timing.throttled_for,
            "warning",
            f"{{{{ $labels.caller }}}} has {{{{ $value | humanizePercentage }}}} of its calls"
            f" to {_IN_SERVICE} refused by its quota",
            "The caller sends more than its tier allows and fails calls: find what it is"
            " doing (deptmesh quota, the access log), stop it or raise its tier.",
            department=_IN_SERVICE,
            kind="traffic",
        ),
    ]


def _burn(
    kind: str,
    slos: Mapping[str, ServiceObjective],
    timing: RuleTiming,
) -> list[dict[str, Any]]:
    """Multiwindow, multi-burn-rate alerts on the `kind` ("errors" or "slow") budget."""
    what = "Error" if kind == "errors" else "Latency"
    rules = []
    for speed, burns, duration, severity in (
        ("Fast", _FAST_BURNS, timing.fast_burn_for, "page"),
        ("Slow", _SLOW_BURNS, timing.slow_burn_for, "warning"),
    ):
        for service, slo in slos.items():
            objective = slo.availability if kind == "errors" else slo.latency_objective
            budget = 1 - objective
            selector = f'{{service="{service}"}}'
            clauses = [
                f"({budget_ratio(kind, long)}{selector} > {rate * budget:.6g}"
                f" and {budget_ratio(kind, short)}{selector} > {rate * budget:.6g})"
                for long, short, rate in burns
            ]
            bad = "fail" if kind == "errors" else f"take over {slo.latency_seconds:g}s"
            rules.append(
                _alert(
                    f"Deptmesh{what}BudgetBurn{speed}",
                    " or ".join(clauses),
                    duration,
                    severity,
                    f"{service}'s {{{{ $labels.method }}}}: {{{{ $value | humanizePercentage }}}}"
                    f" of calls {bad}; the {objective:g} objective's budget burns too fast",
                    f"Look at {service}'s recent changes and its dependencies (deptmesh trace"
                    f" --last, the access log); roll back or shed load before the month's"
                    f" budget is spent.",
                    department=service,
                )
            )
    return rules


def _health(services: Iterable[str], timing: RuleTiming) -> list[dict[str, Any]]:
    rules = [
        _alert(
            "DeptmeshInstanceDown",
            f'up{{job="{JOB}"}} == 0',
            timing.instance_for,
            "warning",
            "{{ $labels.department }} instance {{ $labels.instance }} does not answer scrapes",
            "Check the instance's process and host (deptmesh services); Consul stops"
            " routing to it once its health check fails.",
        )
    ]
    for service in sorted(services):
        rules.append(
            _alert(
                "DeptmeshDepartmentNoHealthyInstance",
                f'absent(up{{job="{JOB}", department="{service}"}} == 1)',
                timing.instance_for,
                "page",
                f"{service} has no instance answering: every call to it fails",
                f"Start {service} again (its deployment, or deptmesh dev up); check its"
                " database and its Consul agent (deptmesh services).",
                department=service,
            )
        )
    return rules


def _sidecar(timing: RuleTiming) -> list[dict[str, Any]]:
    return [
        _alert(
            "DeptmeshConnectLeafExpiring",
            "deptmesh_connect_leaf_expiry_timestamp_seconds - time() < 86400",
            timing.bound_for,
            "warning",
            "{{ $labels.instance }}'s Connect leaf certificate expires within 24 h"
            " and has not been renewed",
            "The instance cannot renew its leaf from Consul: check its Consul token and"
            " the Connect CA (deptmesh certificate); restart it once Consul answers.",
        ),
        _alert(
            "DeptmeshRegistryCacheStale",
            "deptmesh_registry_cache_staleness_seconds > 300",
            timing.instance_for,
            "warning",
            "{{ $labels.instance }} routes to {{ $labels.watched_service }} on endpoints"
            " not refreshed for {{ $value | humanizeDuration }}",
            "The instance cannot reach its Consul agent: check the agent on its host and"
            " its token; it keeps serving from the last endpoints it knew.",
        ),
        _alert(
            "DeptmeshTraceStoreNearBound",
            "deptmesh_trace_store_spans / deptmesh_trace_store_capacity_spans > 0.9",
            timing.bound_for,
            "info",
            "{{ $labels.instance }}'s trace store is {{ $value | humanizePercentage }} full",
            "The oldest traces are about to be dropped: export them if they are needed, or"
            " give the store a larger bound.",
        ),
        _alert(
            "DeptmeshUsageSpoolNearBound",
            "deptmesh_usage_spool_records / deptmesh_usage_spool_capacity_records > 0.9",
            timing.bound_for,
            "warning",
            "{{ $labels.instance }}'s usage spool is {{ $value | humanizePercentage }} full",
            "The metering ledger does not take this instance's usage: check the metering"
            " department; once the spool is full, usage records are lost.",
        ),
    ]


def alerting_group(
    *,
    quotas: Mapping[str, Any] | None,
    destinations: Iterable[str],
    policy: MonitoringPolicy,
    timing: RuleTiming,
    interval: str | None,
) -> dict[str, Any]:
    """The rule group of every alert; `destinations` are the departments called."""
    group: dict[str, Any] = {"name": "deptmesh-alerts"}
    if interval is not None:
        group["interval"] = interval
    group["rules"] = [
        *_traffic(quotas, destinations, policy, timing),
        *_throttling(policy, timing),
        *_burn("errors", policy.slos, timing),
        *_burn("slow", policy.slos, timing),
        *_health(policy.slos, timing),
        *_sidecar(timing),
    ]
    return group
