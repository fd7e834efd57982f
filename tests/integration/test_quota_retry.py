"""The sidecar client and a throttling server: never again sooner than RetryInfo says,
on the sync and the asyncio channel."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import grpc
import pytest

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.static import StaticRegistry
from deptmesh.sidecar import Server
from deptmesh.sidecar.authorization.policy import AccessPolicy, Intention, MethodRules
from deptmesh.sidecar.channel import client
from deptmesh.sidecar.host import instance_of
from deptmesh.sidecar.identity.sources import dev_ca_identity
from deptmesh.sidecar.metering.stage import MeteringStage
from deptmesh.sidecar.quotas.policy import parse_quota_policy
from deptmesh.sidecar.quotas.stage import QuotaStage
from tests.rpc_errors import error_reason
from tests.security.mtls import CA

RATE = 10.0  # one token every 100 ms
PAYOUT = "/deptmesh.finance.v1.PaymentService/Payout"


class TimedPayments(finance_pb2_grpc.PaymentServiceServicer):
    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self._lock = threading.Lock()

    def Payout(self, request, context):
        with self._lock:
            self.arrivals.append(time.monotonic())
        return finance_pb2.PayoutResponse()


def payouts(flavour, cache, timeouts):
    """One Payout per timeout, in order, through a sync or an asyncio channel of one
    caller: per call, the error it raised (None for success) and how long it took."""
    identity = dev_ca_identity(CA, "reimbursement")
    request = finance_pb2.PayoutRequest()
    outcomes = []
    if flavour == "sync":
        with client.connect("finance", cache, identity=identity) as channel:
            stub = finance_pb2_grpc.PaymentServiceStub(channel)
            for timeout in timeouts:
                started = time.monotonic()
                try:
                    stub.Payout(request, timeout=timeout)
                    outcomes.append((None, time.monotonic() - started))
                except grpc.RpcError as error:
                    outcomes.append((error, time.monotonic() - started))
        return outcomes

    async def scenario():
        async with client.aio_connect("finance", cache, identity=identity) as channel:
            stub = finance_pb2_grpc.PaymentServiceStub(channel)
            for timeout in timeouts:
                started = time.monotonic()
                try:
                    await stub.Payout(request, timeout=timeout)
                    outcomes.append((None, time.monotonic() - started))
                except grpc.RpcError as error:
                    outcomes.append((error, time.monotonic() - started))

    asyncio.run(scenario())
    return outcomes


@pytest.fixture(params=["sync", "aio"])
def flavour(request):
    return request.param


@pytest.fixture
def finance():
    handler = TimedPayments()
    tier = {"rate": RATE, "burst": 1, "max_in_flight": 10}
    policy = parse_quota_policy(json.dumps({"tiers": {"t": tier}, "default_tier": "t"}))
    access = AccessPolicy([Intention("*", "finance", "allow")], MethodRules({}))
    usage = MeteringStage("finance")
    server = Server(
        identity_source=dev_ca_identity(CA, "finance"),
        authorization=("finance", lambda: access),
        metering=usage,
        quotas=QuotaStage("finance", lambda: policy, lambda: 1),
    )
    server.add_service(
        finance_pb2.DESCRIPTOR.services_by_name["PaymentService"],
        finance_pb2_grpc.add_PaymentServiceServicer_to_server,
        handler,
    )
    port = server.start("127.0.0.1:0")
    cache = EndpointCache(StaticRegistry([instance_of("finance", "127.0.0.1", port)]))
    yield cache, handler, usage
    cache.close()
    server.stop(0)


def test_throttled_call_is_repeated_after_the_retry_delay(flavour, finance):
    """A call throttled for lack of a token succeeds on a repeat made no sooner than the
    token returns (RetryInfo), with the caller seeing only the success."""
    cache, handler, usage = finance
    # The second finds the bucket empty: throttled once.
    assert [error for error, _ in payouts(flavour, cache, [5, 5])] == [None, None]

    first, second = handler.arrivals
    assert second - first >= 1 / RATE - 0.002  # the refill time; 2 ms for clock granularity
    throttled = sum(record["throttled"] for record in usage.snapshot())
    assert throttled == 1


def test_no_repeat_when_the_delay_outlasts_the_deadline(flavour, finance):
    """When the token would come back after the deadline the caller gets the
    RESOURCE_EXHAUSTED at once, and the server saw a single attempt."""
    cache, handler, usage = finance
    [(first, _), (error, took)] = payouts(flavour, cache, [5, 0.05])
    assert first is None
    assert took < 1 / RATE
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(error) == "QUOTA_EXCEEDED"
    assert len(handler.arrivals) == 1
    assert sum(record["throttled"] for record in usage.snapshot()) == 1
