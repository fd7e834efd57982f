"""Recording rules: per-caller and per-method rate, error ratio and latency quantiles.

Built on the metrics every deptmesh process serves (deptmesh.sidecar.metering.metrics),
summed over instances, so that each series is service-wide:

    service_caller:deptmesh_rpc_server_requests:rate<W>      {service, caller}
    service_caller:deptmesh_rpc_server_errors:ratio_rate<W>
    service_caller:deptmesh_rpc_server_throttled:ratio_rate<W>
    service_caller:deptmesh_rpc_server_duration_seconds:p50_rate<W>  (p90, p99)
    service_method:...                                       the same per {service, method}
    service_method:deptmesh_rpc_server_errors:ratio_rate<B>  B: each error-budget window
    service_method:deptmesh_rpc_server_slow:ratio_rate<B>    calls over the service's SLO bound

<W> is the rate window (1m in production); the error-budget windows are the
Google SRE workbook's (5m, 30m, 1h, 2h, 6h, 1d, 3d). Names follow Prometheus's
`level:metric:operations` convention.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deptmesh.sidecar.policy_document.monitoring import ServiceObjective

__all__ = ["BUDGET_WINDOWS", "budget_ratio", "recording_group", "windowed"]

# The windows of the multiwindow, multi-burn-rate alerts (SRE workbook, chapter 5).
BUDGET_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
_METRIC = "deptmesh_rpc_server"
_LEVELS = {"caller": "service_caller", "method": "service_method"}
_QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))


def windowed(level: str, metric: str, operation: str, window: str) -> str:
    """A recording rule's name: windowed("caller", "requests", "rate", "1m")."""
    return f"{_LEVELS[level]}:{_METRIC}_{metric}:{operation}{window}"


def budget_ratio(kind: str, window: str) -> str:
    """The per-method bad-call ratio over a budget window: kind "errors" or "slow"."""
    return windowed("method", kind, "ratio_rate", window)


def _rate(metric: str, by: str, window: str, selector: str = "") -> str:
    return f"sum by (service, {by}) (rate({_METRIC}_{metric}{selector}[{window}]))"


def _per_level(level: str, window: str) -> list[dict[str, str]]:
    requests = _rate("requests_total", level, window)
    rules = [
        {"record": windowed(level, "requests", "rate", window), "expr": requests},
        {
            "record": windowed(level, "errors", "ratio_rate", window),
            "expr": f"{_rate('errors_total', level, window)} / {requests}",
        },
        {
            "record": windowed(level, "throttled", "ratio_rate", window),
            "expr": f"{_rate('throttled_total', level, window)} / {requests}",
        },
    ]
    for name, quantile in _QUANTILES:
        buckets = (
            f"sum by (service, {level}, le) (rate({_METRIC}_duration_seconds_bucket[{window}]))"
        )
        rules.append(
            {
                "record": windowed(level, "duration_seconds", f"{name}_rate", window),
                "expr": f"histogram_quantile({quantile}, {buckets})",
            }
        )
    return rules


def _budget(slos: Mapping[str, ServiceObjective]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for window in BUDGET_WINDOWS:
        rules.append(
            {
                "record": budget_ratio("errors", window),
                "expr": f"{_rate('errors_total', 'method', window)}"
                f" / {_rate('requests_total', 'method', window)}",
            }
        )
        for service, slo in slos.items():
            selector = f'{{service="{service}"}}'
            within = f'{{service="{service}", le="{slo.latency_seconds!r}"}}'
            rules.append(
                {
                    "record": budget_ratio("slow", window),
                    # One rule per service: the label tells them apart for promtool's lint.
                    "labels": {"service": service},
                    "expr": f"1 - {_rate('duration_seconds_bucket', 'method', window, within)}"
                    f" / {_rate('duration_seconds_count', 'method', window, selector)}",
                }
            )
    return rules


def recording_group(
    slos: Mapping[str, ServiceObjective], *, rate_window: str, interval: str | None
) -> dict[str, Any]:
    """The rule group of every recording rule; `interval` None: Prometheus's global one."""
    group: dict[str, Any] = {"name": "deptmesh-recording"}
    if interval is not None:
        group["interval"] = interval
    group["rules"] = [
        *_per_level("caller", rate_window),
        *_per_level("method", rate_window),
        *_budget(slos),
    ]
    return group
