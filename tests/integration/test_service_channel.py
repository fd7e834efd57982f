"""Service channels over a StaticRegistry: balancing, ejection, safe retries, asyncio.

The asyncio channel has its own file (test_aio_service_channel.py); every call
shape is in test_channel_shapes.py.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.model import Health
from deptmesh.registry.static import StaticRegistry
from deptmesh.sidecar import aio_connect
from deptmesh.sidecar.channel import client
from deptmesh.sidecar.channel.idempotency import is_idempotent
from deptmesh.sidecar.errors import NoEndpoint
from deptmesh.sidecar.host import instance_of
from tests.integration.servers import serve_employee_service, wait_for
from tests.integration.streams import Streams, StreamsStub, Text, serve_streams, texts
from tests.integration.test_deadlines import RecordingHr


class Flaky(hr_pb2_grpc.EmployeeServiceServicer):
    """Answers UNAVAILABLE from the handler: the call reached this server."""

    def __init__(self) -> None:
        self.calls = 0

    def GetEmployee(self, request, context):
        self.calls += 1
        context.abort(grpc.StatusCode.UNAVAILABLE, "overloaded")


class HoldFirstCall(hr_pb2_grpc.EmployeeServiceServicer):
    """Answers at once, except its first call, held until `release` is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def GetEmployee(self, request, context):
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            self.release.wait(10)
        return hr_pb2.GetEmployeeResponse()


@pytest.fixture
def registry():
    return StaticRegistry()


@pytest.fixture
def cache(registry):
    cache = EndpointCache(registry)
    yield cache
    cache.close()


@pytest.fixture
def serve(registry):
    servers = []

    def start(servicer, service="hr-test"):
        server, address = serve_employee_service(servicer)
        instance = instance_of(service, "127.0.0.1", int(address.rpartition(":")[2]))
        registry.register(instance)
        servers.append(server)
        return server, instance

    yield start
    for server in servers:
        server.stop(0)


def get(channel):
    return hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(
        hr_pb2.GetEmployeeRequest(), timeout=5
    )


class TestIdempotencyFromContracts:
    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("/deptmesh.hr.v1.EmployeeService/GetEmployee", True),
            ("/deptmesh.finance.v1.PaymentService/Payout", True),
            ("/deptmesh.reimbursement.v1.ReimbursementService/ApproveClaim", False),
            ("/unknown.Service/Method", False),
        ],
    )
    def test_declared_idempotency_is_read_from_descriptors(self, path, expected):
        """idempotency_level in the .proto decides; unknown methods are never safe."""
        from deptmesh.finance.v1 import finance_pb2  # noqa: F401 -- registers descriptors
        from deptmesh.reimbursement.v1 import reimbursement_pb2  # noqa: F401

        assert is_idempotent(path) is expected


class TestRetries:
    def test_idempotent_call_that_reached_a_server_is_retried_elsewhere(self, serve, cache):
        """An UNAVAILABLE from a server on an idempotent method moves the call to another
        endpoint: the flaky endpoint is certain to be picked (the healthy one has a call in
        flight), it is hit once, and the call succeeds on the healthy one."""
        flaky = Flaky()
        healthy = HoldFirstCall()
        _, healthy_instance = serve(healthy)
        channel = client.connect("hr-test", cache)
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(get, channel)
            assert healthy.entered.wait(5)
            _, flaky_instance = serve(flaky)
            wait_for(
                lambda: flaky_instance.endpoint in channel.balancer().call_counts(),
                timeout=5,
                what="flaky endpoint known to the channel",
            )
            # Power of two choices: the flaky endpoint has no call outstanding, the healthy
            # one has the held call, so this call is sent to the flaky endpoint first.
            get(channel)
            assert flaky.calls == 1
            assert healthy.calls == 2
            healthy.release.set()
            held.result(5)
        assert channel.balancer().call_counts() == {
            flaky_instance.endpoint: 1,
            healthy_instance.endpoint: 2,
        }
        channel.close()

    def test_dead_endpoint_is_ejected_and_calls_succeed(self, serve, cache, registry):
        """A stopped server's endpoint is ejected on its first connection failure."""
        dead, dead_instance = serve(RecordingHr())
        serve(RecordingHr())
        channel = client.connect("hr-test", cache)
        get(channel)
        dead.stop(0)
        for _ in range(20):
            get(channel)
        endpoint = channel.balancer().endpoint(dead_instance.endpoint)
        assert endpoint.consecutive_failures >= 1
        assert endpoint.calls <= 2 + 1  # before the stop, the failing attempt, at most one more
        channel.close()

    def test_unhealthy_instance_stops_getting_calls(self, serve, cache, registry):
        """Marking an instance critical removes it from the channel without recreating stubs."""
        _, first = serve(RecordingHr())
        _, second = serve(RecordingHr())
        channel = client.connect("hr-test", cache)
        stub = hr_pb2_grpc.EmployeeServiceStub(channel)
        stub.GetEmployee(hr_pb2.GetEmployeeRequest(), timeout=5)
        registry.set_health(first.instance_id, Health.CRITICAL)

        def removed():
            return first.endpoint not in channel.balancer().call_counts()

        wait_for(removed, timeout=5, what="critical instance removed")
        before = channel.balancer().call_counts()[second.endpoint]
        for _ in range(5):
            stub.GetEmployee(hr_pb2.GetEmployeeRequest(), timeout=5)
        assert channel.balancer().call_counts() == {second.endpoint: before + 5}
        channel.close()


@pytest.fixture
def serve_streams_as(registry):
    """Starts a Streams handler registered as `streams`."""
    servers = []

    def start(handler):
        server, port = serve_streams(handler)
        registry.register(instance_of("streams", "127.0.0.1", port))
        servers.append(server)

    yield start
    for server in servers:
        server.stop(0)


# Calls attempted once: a future, and a stream in each direction.
ATTEMPTED_ONCE = {
    "unary future": lambda stub: stub.Echo.future(Text(value="a"), timeout=5).result(),
    "unary_stream": lambda stub: list(stub.Watch(Text(value="a"), timeout=5)),
    "stream_unary": lambda stub: stub.Collect(texts("a"), timeout=5),
    "stream_unary future": lambda stub: stub.Collect.future(texts("a"), timeout=5).result(),
    "stream_stream": lambda stub: list(stub.Chat(texts("a"), timeout=5)),
}


class TestAttemptedOnce:
    @pytest.mark.parametrize("shape", ATTEMPTED_ONCE)
    def test_streams_and_futures_are_not_retried(self, shape, serve_streams_as, cache):
        """A future or a stream that a server answers UNAVAILABLE reaches the caller after
        one attempt, though the method is declared idempotent."""
        flaky = Streams(fail_with=grpc.StatusCode.UNAVAILABLE)
        serve_streams_as(flaky)
        with client.connect("streams", cache) as channel, pytest.raises(grpc.RpcError) as caught:
            ATTEMPTED_ONCE[shape](StreamsStub(channel))
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        assert flaky.calls == 1

    def test_a_blocking_unary_call_is_retried(self, serve_streams_as, cache):
        """The same failure on a unary call the caller waits for is attempted again."""
        flaky = Streams(fail_with=grpc.StatusCode.UNAVAILABLE)
        serve_streams_as(flaky)
        with client.connect("streams", cache) as channel, pytest.raises(grpc.RpcError):
            StreamsStub(channel).Echo(Text(value="a"), timeout=5)
        assert flaky.calls > 1

    @pytest.mark.parametrize("shape", ["unary", *ATTEMPTED_ONCE])
    def test_an_unknown_service_is_no_endpoint(self, shape, cache):
        """Any call to a service never seen raises NoEndpoint: UNAVAILABLE naming it."""
        call = ATTEMPTED_ONCE.get(shape, lambda stub: stub.Echo(Text(value="a"), timeout=5))
        with client.connect("streams", cache) as channel, pytest.raises(NoEndpoint) as caught:
            call(StreamsStub(channel))
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "streams" in caught.value.details()


class TestAsyncioTwin:
    def test_aio_stub_calls_through_the_service_channel(self, serve, cache):
        """A grpc.aio stub over deptmesh.sidecar.aio_connect reaches the service."""
        hr = RecordingHr()
        serve(hr)

        async def scenario():
            async with aio_connect("hr-test", cache) as channel:
                stub = hr_pb2_grpc.EmployeeServiceStub(channel)
                await stub.GetEmployee(hr_pb2.GetEmployeeRequest(), timeout=3)
                return sum(channel.balancer().call_counts().values())

        assert asyncio.run(scenario()) == 1
        assert 0 < hr.remaining[0] <= 3.1

    def test_aio_unknown_service_is_unavailable(self, cache):
        """The asyncio twin fails like the sync one for a service never seen."""

        async def scenario():
            async with aio_connect("nobody", cache) as channel:
                stub = hr_pb2_grpc.EmployeeServiceStub(channel)
                await stub.GetEmployee(hr_pb2.GetEmployeeRequest(), timeout=3)

        with pytest.raises(grpc.RpcError) as caught:
            asyncio.run(scenario())
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "nobody" in caught.value.details()
