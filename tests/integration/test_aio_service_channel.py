"""The asyncio service channel over a StaticRegistry: one grpc.aio channel per endpoint,
balancing, ejection, the retry rules, following the identity, no endpoint."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest

from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.model import Health
from deptmesh.registry.static import StaticRegistry
from deptmesh.sidecar import aio_connect
from deptmesh.sidecar.channel.client_chain import MAX_ATTEMPTS
from deptmesh.sidecar.errors import NoEndpoint
from deptmesh.sidecar.host import instance_of
from deptmesh.sidecar.identity.sources import ServerIdentity, dev_ca_identity
from tests.integration.servers import wait_for
from tests.integration.streams import Streams, StreamsStub, Text, serve_streams
from tests.security.mtls import CA

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


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
    """Starts a Streams handler registered as `streams`; returns (server, instance)."""
    servers = []

    def start(handler, **options):
        server, port = serve_streams(handler, **options)
        instance = instance_of("streams", "127.0.0.1", port)
        registry.register(instance)
        servers.append(server)
        return server, instance

    yield start
    for server in servers:
        server.stop(0)


def run(cache, scenario, **options):
    """Runs `scenario(stub, channel)` on a fresh event loop, with an aio channel to streams."""

    async def main():
        async with aio_connect("streams", cache, **options) as channel:
            return await scenario(StreamsStub(channel), channel)

    return asyncio.run(main())


async def echo_times(stub, times, method="Echo"):
    for _ in range(times):
        await getattr(stub, method)(Text(value="a"), timeout=5)


class TestBalancing:
    def test_calls_spread_over_every_endpoint(self, serve, cache):
        """Calls go to every instance (power of two choices), each over its own channel."""
        first, second = Streams(), Streams()
        serve(first)
        serve(second)

        async def scenario(stub, channel):
            await echo_times(stub, 20)
            return channel.balancer().call_counts()

        counts = run(cache, scenario)
        assert first.calls > 0
        assert second.calls > 0
        assert first.calls + second.calls == sum(counts.values()) == 20

    def test_each_endpoint_keeps_one_grpc_aio_channel(self, serve, cache):
        """Successive calls to an endpoint reuse its one grpc.aio channel."""
        _, instance = serve(Streams())

        async def scenario(stub, channel):
            await echo_times(stub, 1)
            opened = channel.balancer().endpoint(instance.endpoint).channel
            await echo_times(stub, 3)
            return opened, channel.balancer().endpoint(instance.endpoint).channel

        before, after = run(cache, scenario)
        assert isinstance(before, grpc.aio.Channel)
        assert after is before

    def test_critical_instance_stops_getting_calls(self, serve, cache, registry):
        """An instance marked critical leaves the channel; calls go to the others."""
        leaving, healthy = Streams(), Streams()
        _, leaving_instance = serve(leaving)
        serve(healthy)

        async def scenario(stub, channel):
            await echo_times(stub, 1)
            registry.set_health(leaving_instance.instance_id, Health.CRITICAL)
            await asyncio.to_thread(
                wait_for,
                lambda: leaving_instance.endpoint not in channel.balancer().call_counts(),
                5,
                "critical instance removed",
            )
            calls_before = leaving.calls
            await echo_times(stub, 5)
            return calls_before

        calls_before = run(cache, scenario)
        assert leaving.calls == calls_before


class TestRetries:
    def test_idempotent_call_answered_unavailable_is_retried_elsewhere(self, serve, cache):
        """An UNAVAILABLE from a server on an idempotent method moves to another endpoint."""
        serve(Streams(fail_with=UNAVAILABLE))
        healthy = Streams()
        serve(healthy)
        run(cache, lambda stub, _: echo_times(stub, 10))  # never fails
        assert healthy.calls == 10

    def test_call_not_declared_idempotent_is_not_repeated_once_answered(self, serve, cache):
        """An UNAVAILABLE from a server on a method the contract does not declare idempotent
        reaches the caller after one attempt."""
        flaky = Streams(fail_with=UNAVAILABLE)
        serve(flaky)
        with pytest.raises(grpc.RpcError) as caught:
            run(cache, lambda stub, _: echo_times(stub, 1, method="Send"))
        assert caught.value.code() is UNAVAILABLE
        assert flaky.calls == 1

    def test_attempts_are_bounded(self, serve, cache):
        """An idempotent call that keeps failing is attempted MAX_ATTEMPTS times, then fails."""
        flaky = Streams(fail_with=UNAVAILABLE)
        serve(flaky)
        with pytest.raises(grpc.RpcError):
            run(cache, lambda stub, _: echo_times(stub, 1))
        assert flaky.calls == MAX_ATTEMPTS

    @pytest.mark.parametrize("shape", ["Watch", "Collect", "Chat"])
    def test_a_stream_is_not_retried_even_when_idempotent(self, shape, serve, cache):
        """A stream in any direction is attempted once, though its method is idempotent."""
        flaky = Streams(fail_with=UNAVAILABLE)
        serve(flaky)

        async def scenario(stub, _):
            method = getattr(stub, shape)
            if shape == "Watch":
                return [reply async for reply in method(Text(value="a"), timeout=5)]
            if shape == "Collect":
                return await method(iter([Text(value="a")]), timeout=5)
            return [reply async for reply in method(iter([Text(value="a")]), timeout=5)]

        with pytest.raises(grpc.RpcError) as caught:
            run(cache, scenario)
        assert caught.value.code() is UNAVAILABLE
        assert flaky.calls == 1

    def test_dead_endpoint_is_ejected_and_calls_succeed(self, serve, cache):
        """A call that cannot connect is retried elsewhere, even for a method not declared
        idempotent, and the dead endpoint is ejected."""
        dead, dead_instance = serve(Streams())
        serve(Streams())

        async def scenario(stub, channel):
            await echo_times(stub, 20)  # both endpoints have a connection
            await asyncio.to_thread(dead.stop, 0)
            dead_endpoint = channel.balancer().endpoint(dead_instance.endpoint)
            calls_at_stop = dead_endpoint.calls
            # Once our side has seen the connection go, a call there cannot connect.
            await asyncio.wait_for(until_not_ready(dead_endpoint.channel), timeout=5)
            await echo_times(stub, 20, method="Send")  # never fails
            return dead_endpoint, calls_at_stop

        endpoint, calls_at_stop = run(cache, scenario)
        assert endpoint.consecutive_failures >= 1
        assert endpoint.calls - calls_at_stop <= 2  # the failing attempt, at most one more


class TestUnaryCall:
    def test_a_call_that_succeeded_reports_ok(self, serve, cache):
        """The call object of a unary call answers for its outcome like grpc.aio's own: done,
        OK, its deadline, and its done callbacks run."""
        serve(Streams())

        async def scenario(stub, _):
            call = stub.Echo(Text(value="a"), timeout=4)
            assert 0 < call.time_remaining() <= 4
            finished = asyncio.Event()
            call.add_done_callback(lambda done: finished.set() if done is call else None)
            reply = await call
            await asyncio.wait_for(finished.wait(), timeout=5)
            return reply.value, call.done(), await call.code(), await call.details()

        assert run(cache, scenario) == ("a", True, grpc.StatusCode.OK, "")

    def test_a_call_that_failed_reports_the_servers_status(self, serve, cache):
        """A failed call raises grpc.aio's error and reports the server's code and details,
        also to a caller that asks after awaiting."""
        serve(Streams(fail_with=grpc.StatusCode.FAILED_PRECONDITION))

        async def scenario(stub, _):
            call = stub.Echo(Text(value="a"), timeout=4)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            return await call.code(), await call.details(), call.cancelled()

        assert run(cache, scenario) == (grpc.StatusCode.FAILED_PRECONDITION, "overloaded", False)


class TestIdentity:
    def test_a_new_identity_reopens_the_channels(self, serve, cache):
        """After a renewal the next call goes over a new grpc.aio channel presenting the new
        certificate, and the old channel is closed."""
        handler = Streams()
        _, instance = serve(handler, identity_source=dev_ca_identity(CA, "streams"))
        current = [renewed_leaf()]

        async def scenario(stub, channel):
            await echo_times(stub, 1)
            old = channel.balancer().endpoint(instance.endpoint).channel
            current[0] = renewed_leaf()
            await echo_times(stub, 1)
            new = channel.balancer().endpoint(instance.endpoint).channel
            await asyncio.wait_for(until_shut_down(old), timeout=5)
            return old, new

        old, new = run(cache, scenario, identity=lambda: current[0])
        assert new is not old
        first, second = handler.certificates
        assert first != second
        assert second == current[0].certificate_pem


def renewed_leaf() -> ServerIdentity:
    leaf = CA.issue("reimbursement")
    return ServerIdentity(leaf.private_key_pem, leaf.certificate_pem, CA.ca_pem, CA.trust_domain)


async def until_not_ready(channel):
    while channel.get_state() is grpc.ChannelConnectivity.READY:
        await asyncio.sleep(0.01)


async def until_shut_down(channel):
    while channel.get_state() is not grpc.ChannelConnectivity.SHUTDOWN:
        await asyncio.sleep(0.01)


class TestNoEndpoint:
    @pytest.mark.parametrize("shape", ["Echo", "Watch"])
    def test_an_unknown_service_is_no_endpoint(self, shape, cache):
        """Calling a service never seen raises NoEndpoint: UNAVAILABLE naming the service."""

        async def scenario(stub, _):
            call = getattr(stub, shape)(Text(value="a"), timeout=3)
            return await call if shape == "Echo" else [reply async for reply in call]

        with pytest.raises(NoEndpoint) as caught:
            run(cache, scenario)
        assert caught.value.code() is UNAVAILABLE
        assert "streams" in caught.value.details()

    def test_a_service_without_a_healthy_instance_is_no_endpoint(self, serve, cache, registry):
        """When every instance is critical, a call raises NoEndpoint naming the service."""
        _, instance = serve(Streams())
        registry.set_health(instance.instance_id, Health.CRITICAL)
        with pytest.raises(NoEndpoint) as caught:
            run(cache, lambda stub, _: echo_times(stub, 1))
        assert "streams" in caught.value.details()
