"""Token buckets and in-flight counts per caller, on a clock the test moves."""

from __future__ import annotations

import pytest

from deptmesh.sidecar.quotas.buckets import CallerBuckets, Limit
from deptmesh.sidecar.quotas.policy import Tier

TIER = Tier("standard", rate=10, burst=5, max_in_flight=100)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def buckets(clock):
    return CallerBuckets(clock)


def take(buckets, caller="hr", tier=TIER, share=1, cost=1, enforce=True):
    return buckets.take(caller, caller, Limit.share_of(tier, share, cost), cost, enforce)


def admitted(buckets, calls: int, caller="hr", tier=TIER, share=1, cost=1) -> int:
    count = 0
    for _ in range(calls):
        throttle, _ = take(buckets, caller, tier, share, cost)
        if throttle is None:
            count += 1
            buckets.release(caller)
    return count


class TestTokenBucket:
    def test_burst_then_rate(self, buckets, clock):
        """A full bucket admits `burst` calls at once, then `rate` per second."""
        assert admitted(buckets, 20) == 5
        clock.now += 1.0
        assert admitted(buckets, 20) == 5  # refilled to burst, capped there
        clock.now += 0.35
        assert admitted(buckets, 20) == 3  # 3.5 tokens

    def test_throttle_says_when_a_token_returns(self, buckets):
        """A throttled call learns the remaining tokens and when enough will be back."""
        admitted(buckets, 5)
        throttle, remaining = take(buckets, cost=2)
        assert throttle is not None
        assert (throttle.reason, remaining) == ("rate", 0)
        assert throttle.retry_after == pytest.approx(0.2)

    def test_cost_takes_that_many_tokens(self, buckets):
        assert admitted(buckets, 10, cost=2) == 2

    def test_replicas_share_the_rate(self, buckets, clock):
        """With two replicas each enforces half the rate and half the burst."""
        assert admitted(buckets, 20, share=2) == 2
        clock.now += 1.0
        assert admitted(buckets, 20, share=2) == 2  # 2.5 tokens, integer calls

    def test_callers_do_not_share_buckets(self, buckets):
        assert admitted(buckets, 20, caller="hr") == 5
        assert admitted(buckets, 20, caller="finance") == 5


class TestInFlight:
    def test_limit_counts_calls_not_yet_released(self, buckets):
        """The in-flight limit refuses a caller's extra concurrent call until one ends."""
        tier = Tier("t", rate=1000, burst=1000, max_in_flight=2)
        for _ in range(2):
            assert take(buckets, tier=tier)[0] is None
        refused, _ = take(buckets, tier=tier)
        assert refused is not None
        assert refused.reason == "in_flight"
        buckets.release("hr")
        assert take(buckets, tier=tier)[0] is None

    def test_shadow_mode_lets_the_call_through_and_says_so(self, buckets):
        """Not enforcing, an over-limit call is reported throttled but takes no tokens."""
        admitted(buckets, 5)
        throttle, _ = take(buckets, enforce=False)
        assert throttle is not None
        buckets.release("hr")  # it ran, so it was in flight
        assert take(buckets, enforce=False)[1] == 0  # and took no tokens


class TestMemory:
    def test_full_idle_buckets_are_dropped(self, buckets, clock):
        """Many one-off callers do not grow the table without bound."""
        for n in range(50_000):
            admitted(buckets, 1, caller=f"caller-{n}")
            clock.now += 0.001  # each bucket is full again 0.1 s after its call
        assert len(buckets) < 10_000

    def test_a_partly_spent_bucket_survives_a_sweep(self, buckets, clock):
        """A bucket still refilling keeps its state through a sweep."""
        slow = Tier("slow", rate=0.001, burst=5, max_in_flight=10)
        assert admitted(buckets, 10, caller="spender", tier=slow) == 5
        for n in range(10_000):
            admitted(buckets, 1, caller=f"caller-{n}")
            clock.now += 0.001
        assert admitted(buckets, 10, caller="spender", tier=slow) == 0
