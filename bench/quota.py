"""What quota enforcement costs and how exact it is, in one run.

- ns_per_check: the quota stage's start + finish for one call, in-process
  (identity already bound, the policy resolved: the per-call path).
- admitted_ratio: one caller offering 5x its tier's rate to a real mTLS server
  for `--seconds`; what was admitted over what the bucket allows (rate x
  elapsed + burst). 1.000 is exact.
- mib_100k_callers: the memory the buckets take for 100,000 distinct callers.

    python -m bench.quota [--seconds S] [--calls N]

The last line is for scripts:
`quota ns_per_check=<n> admitted_ratio=<r> mib_100k_callers=<n>`
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
import tracemalloc

import grpc

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.sidecar import Server
from deptmesh.sidecar.authorization.policy import AccessPolicy, Intention, MethodRules
from deptmesh.sidecar.caller import CURRENT_CALLER, Caller
from deptmesh.sidecar.chain.core import Call, RpcMethod
from deptmesh.sidecar.identity.sources import dev_ca_identity
from deptmesh.sidecar.quotas.buckets import CallerBuckets, Limit
from deptmesh.sidecar.quotas.policy import QuotaPolicy, Tier, parse_quota_policy
from deptmesh.sidecar.quotas.stage import QuotaStage
from tests.security.mtls import CA, CountingPayments, channel_as

PAYOUT = RpcMethod("/deptmesh.finance.v1.PaymentService/Payout", "", "", False, False)
RATE, BURST = 50.0, 20.0


def _policy(rate: float, burst: float) -> QuotaPolicy:
    tier = {"rate": rate, "burst": burst, "max_in_flight": 1000}
    return parse_quota_policy(json.dumps({"tiers": {"standard": tier}, "default_tier": "standard"}))


def ns_per_check(calls: int = 300_000) -> float:
    policy = _policy(1e12, 1e12)
    quotas = QuotaStage("finance", lambda: policy, lambda: 1)
    CURRENT_CALLER.set(Caller("reimbursement", "spiffe://x/svc/reimbursement", "reimbursement"))
    call = Call(PAYOUT, None, None)
    for _ in range(1000):  # warm the caches
        call.trailing = ()
        quotas.start(call)
        quotas.finish(call)
    started = time.perf_counter_ns()
    for _ in range(calls):
        call.trailing = ()
        quotas.start(call)
        quotas.finish(call)
    elapsed = time.perf_counter_ns() - started
    started = time.perf_counter_ns()
    for _ in range(calls):
        call.trailing = ()
    loop = time.perf_counter_ns() - started
    return (elapsed - loop) / calls


def admitted_ratio(seconds: float) -> tuple[float, int, float]:
    """(admitted / allowed, admitted, allowed) for 5x the rate over `seconds`."""
    policy = _policy(RATE, BURST)
    access = AccessPolicy([Intention("*", "finance", "allow")], MethodRules({}))
    server = Server(
        identity_source=dev_ca_identity(CA, "finance"),
        authorization=("finance", lambda: access),
        quotas=QuotaStage("finance", lambda: policy, lambda: 1),
    )
    server.add_service(
        finance_pb2.DESCRIPTOR.services_by_name["PaymentService"],
        finance_pb2_grpc.add_PaymentServiceServicer_to_server,
        CountingPayments(),
    )
    address = f"127.0.0.1:{server.start('127.0.0.1:0')}"
    admitted = 0
    try:
        with channel_as("payroll", address) as channel:
            stub = finance_pb2_grpc.PaymentServiceStub(channel)
            interval = 1 / (5 * RATE)
            started = time.monotonic()
            sent = 0
            while (now := time.monotonic()) - started < seconds:
                due = started + sent * interval
                if now < due:
                    time.sleep(due - now)  # pacing the offered load
                sent += 1
                try:
                    stub.Payout(finance_pb2.PayoutRequest(), timeout=5)
                    admitted += 1
                except grpc.RpcError as error:
                    if error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:
                        raise
            elapsed = time.monotonic() - started
    finally:
        server.stop(0)
    allowed = RATE * elapsed + BURST
    return admitted / allowed, admitted, allowed


def mib_for_callers(count: int = 100_000) -> float:
    """MiB the buckets of `count` distinct callers take, each caller with one call in flight."""
    limit = Limit.share_of(Tier("standard", rate=1.0, burst=10.0, max_in_flight=10), 1, 1)
    names = [f"caller-{n:06d}" for n in range(count)]  # the callers exist anyway
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    # A clock that ticks 1 us per reading: all insertions span 0.1 s of its time, so
    # every bucket is still partly drained at each sweep and kept, however long they
    # take under tracemalloc (on the real clock a slow machine passed the 1 s refill
    # mid-run and the sweeps dropped buckets). Each reading is a new float, as a
    # real clock's, so the stamps the buckets keep are counted.
    buckets = CallerBuckets(clock=itertools.count(0.0, 1e-6).__next__)
    for name in names:
        buckets.take(name, name, limit, 1, enforce=True)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(buckets) == count
    return used / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quota")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the overload run")
    parser.add_argument("--calls", type=int, default=300_000, help="checks timed for the cost")
    arguments = parser.parse_args()
    check = ns_per_check(arguments.calls)
    print(f"quota stage per call (start + finish): {check:.0f} ns")
    ratio, admitted, allowed = admitted_ratio(arguments.seconds)
    print(
        f"5x overload for {arguments.seconds:g} s at {RATE:g}/s burst {BURST:g}:"
        f" admitted {admitted} of {allowed:.1f} allowed"
    )
    memory = mib_for_callers()
    print(f"buckets for 100000 distinct callers: {memory:.1f} MiB")
    print(
        f"quota ns_per_check={check:.0f} admitted_ratio={ratio:.3f} mib_100k_callers={memory:.1f}"
    )


if __name__ == "__main__":
    main()
