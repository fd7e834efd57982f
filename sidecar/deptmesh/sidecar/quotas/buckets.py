"""Token buckets and in-flight counts per caller: the state quota enforcement keeps.

O(1) per call: one dict lookup for the bucket, one for the in-flight count,
arithmetic to refill. Memory stays bounded with many distinct callers: a bucket
that has refilled to full is no different from a new one, so once the table
has grown, such buckets are dropped in one sweep whose cost is spread over the
insertions that made the table grow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from deptmesh.sidecar.quotas.policy import Tier

__all__ = ["CallerBuckets", "Limit", "Throttle"]

_FIRST_SWEEP_AT = 4096

# A bucket is one caller's (`str`), or one caller's for one method (`(caller, path)`).
BucketKey = str | tuple[str, str]


class _Bucket:
    __slots__ = ("full_at", "stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
        self.full_at = stamp  # when, left alone, it holds `capacity` tokens again


@dataclass(frozen=True, slots=True)
class Limit:
    """What one bucket allows on this replica: its share of a tier."""

    rate: float  # tokens per second
    capacity: float  # the most tokens it holds
    max_in_flight: int  # calls of the caller running at once

    @classmethod
    def share_of(cls, tier: Tier, replicas: int, cost: int) -> Limit:
        # A bucket must hold at least one call's cost, or that method could never run.
        return cls(
            tier.rate / replicas, max(tier.burst / replicas, float(cost)), tier.max_in_flight
        )


class Throttle:
    """Why a call was (or, in shadow mode, would have been) throttled."""

    __slots__ = ("reason", "retry_after")

    def __init__(self, reason: str, retry_after: float) -> None:
        self.reason = reason  # "rate" or "in_flight"
        self.retry_after = retry_after  # seconds until the call would be admitted


class CallerBuckets:
    """Every caller's bucket on this replica, refilled lazily when the caller calls."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[BucketKey, _Bucket] = {}
        self._in_flight: dict[str, int] = {}
        self._sweep_at = _FIRST_SWEEP_AT
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(
        self, caller: str, key: BucketKey, limit: Limit, cost: int, enforce: bool
    ) -> tuple[Throttle | None, float]:
        """Takes `cost` tokens for a call of `caller`: (why it is throttled or None, tokens left).

        With `enforce` false (shadow mode) a call that would be throttled is
        still let through and counted in flight, but takes no tokens.
        """
        throttle = None
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._sweep_at:
                    self._sweep(now)
                bucket = self._buckets[key] = _Bucket(limit.capacity, now)
            else:
                refilled = bucket.tokens + (now - bucket.stamp) * limit.rate
                bucket.tokens = min(limit.capacity, refilled)
                bucket.stamp = now
            in_flight = self._in_flight.get(caller, 0)
            if in_flight >= limit.max_in_flight:
                throttle = Throttle("in_flight", 1.0 / limit.rate)
            elif bucket.tokens < cost:
                throttle = Throttle("rate", (cost - bucket.tokens) / limit.rate)
            else:
                bucket.tokens -= cost
                bucket.full_at = now + (limit.capacity - bucket.tokens) / limit.rate
            if throttle is None or not enforce:
                self._in_flight[caller] = in_flight + 1
            return throttle, bucket.tokens

    def release(self, caller: str) -> None:
        """A call `take` let through has ended."""
        with self._lock:
            left = self._in_flight[caller] - 1
            if left:
                self._in_flight[caller] = left
            else:
                del self._in_flight[caller]

    def _sweep(self, now: float) -> None:
        # A bucket that is full again carries no state: drop it.
        self._buckets = {
            key: bucket for key, bucket in self._buckets.items() if bucket.full_at > now
        }
        self._sweep_at = max(_FIRST_SWEEP_AT, 2 * len(self._buckets))
