"""The quota stage of the server chain: each verified caller within its tier's limits.

After authorization, so a caller who may not call spends nothing. A throttled
call is RESOURCE_EXHAUSTED (never UNAVAILABLE, which clients retry at once)
with google.rpc QuotaFailure (the caller; the tier and its limit), RetryInfo
(when a token will be there) and ErrorInfo. Every response, throttled or not,
carries the caller's remaining tokens in the trailing metadata
`x-deptmesh-quota-remaining`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc
from deptmesh.common.v1 import quota_pb2
from google.protobuf import any_pb2, descriptor_pool, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from sidecar._buckets import BucketKey, CallerBuckets, Outcome
from sidecar._chain import Call
from sidecar.caller import current_caller
from sidecar.errors import ERROR_DOMAIN
from sidecar.quota import NO_QUOTAS, Limits, QuotaPolicy, Tier

__all__ = ["REMAINING_KEY", "QuotaNote", "QuotaPolicySource", "Quotas", "method_cost"]

REMAINING_KEY = "x-deptmesh-quota-remaining"

QuotaPolicySource = Callable[[], QuotaPolicy]
# How many healthy replicas of this service share its service-wide rates.
ReplicaCount = Callable[[], int]


@dataclass(frozen=True, slots=True)
class QuotaNote:
    """What the quota stage decided for a call, for the stages that report on it."""

    tier: str
    outcome: Outcome
    shadow: bool  # throttling is only counted for this tier

    @property
    def throttled(self) -> bool:
        return self.outcome.throttled and not self.shadow


def method_cost(path: str) -> int:
    """The method's `quota_cost` option from its descriptor; 1 when unset or unknown."""
    service, _, name = path.lstrip("/").partition("/")
    try:
        method = descriptor_pool.Default().FindMethodByName(f"{service}.{name}")
    except KeyError:
        return 1
    return method.GetOptions().Extensions[quota_pb2.quota_cost] or 1


class Quotas:
    """The quota stage for one service: pass it to the server as `quotas=`."""

    def __init__(self, service: str, policy: QuotaPolicySource, replicas: ReplicaCount) -> None:
        self._service = service
        self._policy = policy
        self._replicas = replicas
        self.buckets = CallerBuckets()
        self._costs: dict[str, int] = {}
        # The policy limits were resolved under, and (caller, method) -> limits.
        self._resolved: tuple[QuotaPolicy | None, dict[tuple[str, str], Limits]] = (None, {})

    def start(self, call: Call) -> grpc.Status | None:
        policy = self._policy()
        if policy is NO_QUOTAS:
            return None
        caller = current_caller().service
        path = call.method.path
        limits = self._limits(policy, caller, path)
        cost = self._costs.get(path)
        if cost is None:
            cost = self._costs[path] = method_cost(path)
        key: BucketKey = (caller, path) if limits.bucket_method else caller
        tier = limits.tier
        outcome = self.buckets.take(
            caller, key, tier, max(1, self._replicas()), cost, enforce=not tier.shadow
        )
        note = call.quota = QuotaNote(tier.name, outcome, tier.shadow)
        call.trailing += ((REMAINING_KEY, str(int(outcome.remaining))),)
        return self._throttled(call, tier, outcome, cost) if note.throttled else None

    def finish(self, call: Call) -> None:
        if call.quota is not None:
            self.buckets.release(current_caller().service)

    def _limits(self, policy: QuotaPolicy, caller: str, path: str) -> Limits:
        resolved_for, resolved = self._resolved  # one read: the pair stays consistent
        if resolved_for is not policy:
            resolved = {}
            self._resolved = (policy, resolved)
        limits = resolved.get((caller, path))
        if limits is None:
            limits = resolved[(caller, path)] = policy.limits(self._service, caller, path)
        return limits

    def _throttled(self, call: Call, tier: Tier, outcome: Outcome, cost: int) -> grpc.Status:
        limit = (
            f"{tier.max_in_flight} calls in flight"
            if outcome.reason == "in_flight"
            else f"{tier.rate:g} tokens/s, burst {tier.burst:g}; this call costs {cost}"
        )
        caller = current_caller()
        spiffe_id = caller.spiffe_id or caller.service
        retry = duration_pb2.Duration()
        retry.FromNanoseconds(max(1_000_000, int(outcome.retry_after * 1e9)))
        details = [
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(
                        subject=spiffe_id, description=f"tier {tier.name}: {limit}"
                    )
                ]
            ),
            error_details_pb2.RetryInfo(retry_delay=retry),
            error_details_pb2.ErrorInfo(
                reason="QUOTA_EXCEEDED" if outcome.reason == "rate" else "TOO_MANY_IN_FLIGHT",
                domain=ERROR_DOMAIN,
                metadata={
                    "caller": spiffe_id,
                    "target": f"{self._service}{call.method.path}",
                    "tier": tier.name,
                },
            ),
        ]
        packed = []
        for detail in details:
            wrapped = any_pb2.Any()
            wrapped.Pack(detail)
            packed.append(wrapped)
        return rpc_status.to_status(
            status_pb2.Status(
                code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
                message=f"{caller.service} is over its {tier.name} quota: {limit}",
                details=packed,
            )
        )
