"""What `deptmesh quota` prints: the quota policy in force and live usage per caller."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable

from deptmesh.sidecar.quotas.policy import QuotaPolicy

__all__ = ["policy_rows", "usage_rows"]

from deptmesh.sidecar.cli.tables import Row

_SUMMED = ("calls", "throttled", "shadow_throttled", "errors", "request_bytes", "response_bytes")
_USAGE_HEADER: Row = ("DESTINATION", "CALLER", "METHOD", "CALLS", "THROTTLED", "SHADOW")
_USAGE_HEADER += ("ERRORS", "REQ BYTES", "RESP BYTES", "MEAN MS", "MAX MS")


def policy_rows(policy: QuotaPolicy) -> tuple[list[Row], list[Row]]:
    """(the tiers, who is in which tier for which destination) as table rows."""
    tiers: list[Row] = [("TIER", "RATE/S", "BURST", "IN-FLIGHT", "MODE")]
    for tier in policy.tiers.values():
        mode = "shadow" if tier.shadow else "enforce"
        default = " (default)" if tier.name == policy.default_tier else ""
        tiers.append(
            (
                tier.name + default,
                f"{tier.rate:g}",
                f"{tier.burst:g}",
                str(tier.max_in_flight),
                mode,
            )
        )
    assignments: list[Row] = [("DESTINATION", "CALLER", "METHOD", "TIER")]
    for destination, rules in sorted(policy.describe()["services"].items()):
        for caller, tier_name in sorted(rules["callers"].items()):
            assignments.append((destination, caller, "*", tier_name))
        for method, callers in sorted(rules["methods"].items()):
            for caller, tier_name in sorted(callers.items()):
                assignments.append((destination, caller, method, tier_name))
    return tiers, assignments


def usage_rows(documents: Iterable[str]) -> list[Row]:
    """MeteringStage reports of every instance, summed per (destination, caller, method)."""
    totals: dict[tuple[str, str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for document in documents:
        report = json.loads(document)
        for record in report["usage"]:
            total = totals[(report["service"], record["caller"], record["method"])]
            for name in _SUMMED:
                total[name] += record[name]
            total["latency_ms_total"] += record["latency_ms_total"]
            total["latency_ms_max"] = max(total["latency_ms_max"], record["latency_ms_max"])
    rows: list[Row] = [_USAGE_HEADER]
    for (destination, caller, method), total in sorted(totals.items()):
        mean = total["latency_ms_total"] / total["calls"] if total["calls"] else 0.0
        counts = [str(int(total[name])) for name in _SUMMED]
        latency = [f"{mean:.2f}", f"{total['latency_ms_max']:.2f}"]
        rows.append((destination, caller, method, *counts, *latency))
    return rows
