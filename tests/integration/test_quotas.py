"""The quota stage on a real mTLS server: per verified caller, explainable, bounded.

Every case runs on the sync and the asyncio server. (Rates over time, replicas
and the policy in Consul KV are in tests/integration/consul/test_quotas.py.)
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.rpc import error_details_pb2

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.sidecar.quotas.policy import NO_QUOTAS
from tests.integration.gated_finance import (
    MeteredFinance,
    quota_policy,
)
from tests.rpc_errors import detail_of, error_reason
from tests.security.mtls import CA, channel_as

PAYOUT = "/deptmesh.finance.v1.PaymentService/Payout"
# The trailer clients read their remaining quota from: a wire name, pinned here rather
# than imported, so that renaming it fails a test.
REMAINING_KEY = "x-deptmesh-quota-remaining"


class Finance(MeteredFinance):
    """The metered finance server, called the ways the quota tests need."""

    def payout(self, caller: str = "reimbursement", channel: grpc.Channel | None = None):
        """(response, trailing metadata) of one Payout as `caller`."""
        if channel is None:
            with channel_as(caller, self.address) as own:
                return self.payout(caller, own)
        stub = finance_pb2_grpc.PaymentServiceStub(channel)
        response, call = stub.Payout.with_call(finance_pb2.PayoutRequest(memo="m"), timeout=10)
        return response, dict(call.trailing_metadata())

    def refused(self, caller: str = "reimbursement") -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as raised:
            self.payout(caller)
        return raised.value


@pytest.fixture(params=["sync", "aio"])
def finance(request):
    server = Finance(request.param)
    yield server
    server.server.stop(0)


class TestThrottling:
    def test_throttled_call_is_resource_exhausted_and_says_why(self, finance):
        """Over its burst a caller gets RESOURCE_EXHAUSTED with QuotaFailure, RetryInfo and
        ErrorInfo; the handler does not run."""
        finance.payout()
        finance.payout()
        error = finance.refused()

        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert finance.handler.calls == 2
        failure = detail_of(error, error_details_pb2.QuotaFailure)
        assert failure is not None
        [violation] = failure.violations
        assert (
            violation.subject == f"spiffe://{CA.trust_domain}/ns/default/dc/dc1/svc/reimbursement"
        )
        assert violation.description == "tier standard: 0.001 tokens/s, burst 2; this call costs 1"
        retry = detail_of(error, error_details_pb2.RetryInfo)
        assert retry is not None
        assert retry.retry_delay.ToTimedelta().total_seconds() > 0
        assert error_reason(error) == "QUOTA_EXCEEDED"

    def test_every_response_carries_the_remaining_quota(self, finance):
        """Trailing metadata says how many tokens are left, on success and when throttled."""
        assert finance.payout()[1][REMAINING_KEY] == "1"
        assert finance.payout()[1][REMAINING_KEY] == "0"
        assert dict(finance.refused().trailing_metadata())[REMAINING_KEY] == "0"

    def test_one_callers_overload_does_not_throttle_another(self, finance):
        """Callers have their own buckets: payroll is unaffected by reimbursement's overload."""
        for _ in range(2):
            finance.payout("reimbursement")
        finance.refused("reimbursement")
        finance.payout("payroll")  # not raised

    def test_in_flight_limit(self, finance):
        """A caller at its in-flight limit is refused TOO_MANY_IN_FLIGHT until a call ends."""
        finance.policy = quota_policy(standard={"rate": 1000, "burst": 1000, "max_in_flight": 1})
        finance.handler.gate.clear()
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(finance.payout)
            assert finance.handler.entered.wait(10)
            error = finance.refused()
            finance.handler.gate.set()
            first.result(timeout=10)
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(error) == "TOO_MANY_IN_FLIGHT"
        finance.payout()  # the slot is free again

    def test_fifty_channels_are_one_caller(self, finance):
        """Quota follows the verified identity, not the connection: 50 channels share a bucket."""
        channels = [channel_as("reimbursement", finance.address) for _ in range(50)]
        outcomes = []
        for channel in channels:
            try:
                finance.payout(channel=channel)
                outcomes.append("ok")
            except grpc.RpcError as error:
                outcomes.append(error.code().name)
            channel.close()
        assert outcomes.count("ok") == 2
        assert outcomes.count("RESOURCE_EXHAUSTED") == 48

    def test_policy_change_applies_to_the_next_call(self, finance):
        """A new policy object from the source is used at once; NO_QUOTAS limits nobody."""
        for _ in range(2):
            finance.payout()
        finance.refused()
        finance.policy = NO_QUOTAS
        _response, trailing = finance.payout()
        assert REMAINING_KEY not in trailing


class TestShadowAndUsage:
    def test_shadow_tier_counts_but_does_not_throttle(self, finance):
        """In shadow mode calls over the limit succeed and are counted as shadow_throttled."""
        finance.policy = quota_policy(
            standard={"rate": 0.001, "burst": 1, "max_in_flight": 10, "shadow": True}
        )
        for _ in range(3):
            finance.payout()
        [record] = finance.usage.snapshot()
        assert (record["calls"], record["throttled"], record["shadow_throttled"]) == (3, 0, 2)

    def test_usage_per_caller_method_and_status(self, finance):
        """MeteringStage counts calls, throttles, bytes and latency per (caller, method, status)."""
        for _ in range(3):
            with contextlib.suppress(grpc.RpcError):
                finance.payout()
        finance.refused("hr")  # no intention: denied, counted, spends no quota
        records = {(r["caller"], r["status"]): r for r in finance.usage.snapshot()}
        ok = records[("reimbursement", "OK")]
        throttled = records[("reimbursement", "RESOURCE_EXHAUSTED")]
        denied = records[("hr", "PERMISSION_DENIED")]
        assert (ok["calls"], ok["errors"], ok["method"]) == (2, 0, PAYOUT)
        assert ok["request_bytes"] == 2 * finance_pb2.PayoutRequest(memo="m").ByteSize()
        assert ok["latency_ms_total"] > 0
        assert (throttled["calls"], throttled["throttled"], throttled["errors"]) == (1, 1, 0)
        assert (denied["calls"], denied["errors"]) == (1, 1)
        assert len(finance.quotas.buckets) == 1  # hr never reached the quota stage
