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
from google.protobuf import descriptor_pool

from deptmesh.common.v1 import quota_pb2
from deptmesh.sidecar.caller import current_caller
from deptmesh.sidecar.chain.core import Call, QuotaNote
from deptmesh.sidecar.errors import QuotaExceeded
from deptmesh.sidecar.quotas.buckets import BucketKey, CallerBuckets, Limit, Throttle
from deptmesh.sidecar.quotas.policy import NO_QUOTAS, QuotaPolicy, Tier

__all__ = ["REMAINING_KEY", "QuotaPolicySource", "QuotaStage", "method_cost"]

REMAINING_KEY = "x-deptmesh-quota-remaining"

QuotaPolicySource = Callable[[], QuotaPolicy]
# How many healthy replicas of this service share its service-wide rates.
ReplicaCount = Callable[[], int]


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything the per-call path needs for one (caller, method), resolved once."""

    tier: Tier
    key: BucketKey
    cost: int
    limit: Limit
    # What an admitted call's note says; shared, as nothing changes a note.
    admitted: QuotaNote


def method_cost(path: str) -> int:
    """The method's `quota_cost` option from its descriptor; 1 when unset or unknown."""
    service, _, name = path.lstrip("/").partition("/")
    try:
        method = descriptor_pool.Default().FindMethodByName(f"{service}.{name}")
    except KeyError:
        return 1
    return method.GetOptions().Extensions[quota_pb2.quota_cost] or 1


class QuotaStage:
    """The quota stage for one service: pass it to the server as `quotas=`."""

    def __init__(self, service: str, policy: QuotaPolicySource, replicas: ReplicaCount) -> None:
        self._service = service
        self._policy = policy
        self._replicas = replicas
        self.buckets = CallerBuckets()
        # The (policy, replica count) plans were made under, and (caller, method) -> plan.
        self._plans: tuple[object, dict[tuple[str, str], _Plan]] = (None, {})

    def start(self, call: Call) -> grpc.Status | None:
        policy = self._policy()
        if policy is NO_QUOTAS:
            return None
        caller = current_caller().service
        plan = self._plan(policy, caller, call.method.path)
        shadow = plan.tier.shadow
        throttle, remaining = self.buckets.take(caller, plan.key, plan.limit, plan.cost, not shadow)
        call.trailing += ((REMAINING_KEY, str(int(remaining))),)
        if throttle is None:
            call.quota = plan.admitted  # the same note for every admitted call of the plan
            return None
        call.quota = QuotaNote(
            caller, plan.tier.name, throttled=not shadow, shadow_throttled=shadow
        )
        return None if shadow else self._throttled(call, plan, throttle)

    def finish(self, call: Call) -> None:
        if call.quota is not None:
            self.buckets.release(call.quota.caller)

    def _plan(self, policy: QuotaPolicy, caller: str, path: str) -> _Plan:
        replicas = max(1, self._replicas())
        made_under, plans = self._plans  # one read: the pair stays consistent
        if made_under != (policy, replicas):
            plans = {}
            self._plans = ((policy, replicas), plans)
        plan = plans.get((caller, path))
        if plan is None:
            limits = policy.limits(self._service, caller, path)
            cost = method_cost(path)
            key: BucketKey = (caller, path) if limits.bucket_method else caller
            plan = _Plan(
                limits.tier,
                key,
                cost,
                Limit.share_of(limits.tier, replicas, cost),
                QuotaNote(caller, limits.tier.name, throttled=False, shadow_throttled=False),
            )
            plans[(caller, path)] = plan
        return plan

    def _throttled(self, call: Call, plan: _Plan, throttle: Throttle) -> grpc.Status:
        tier = plan.tier
        limit = (
            f"{tier.max_in_flight} calls in flight"
            if throttle.reason == "in_flight"
            else f"{tier.rate:g} tokens/s, burst {tier.burst:g}; this call costs {plan.cost}"
        )
        caller = current_caller()
        spiffe_id = caller.spiffe_id or caller.service
        return QuotaExceeded(
            f"{caller.service} is over its {tier.name} quota: {limit}",
            subject=spiffe_id,
            limit=f"tier {tier.name}: {limit}",
            retry_after_seconds=throttle.retry_after,
            reason="QUOTA_EXCEEDED" if throttle.reason == "rate" else "TOO_MANY_IN_FLIGHT",
            metadata={
                "caller": spiffe_id,
                "target": f"{self._service}{call.method.path}",
                "tier": tier.name,
            },
        ).to_status()
