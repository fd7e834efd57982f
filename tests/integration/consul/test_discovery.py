"""Discovery through a real Consul agent: registration, health, watches, balancing."""

from __future__ import annotations

import time

import grpc
import pytest

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.model import Health
from deptmesh.sidecar.channel import client
from tests.integration.servers import wait_for


@pytest.fixture
def cache(department):
    """The endpoints a caller with a token of its own sees."""
    cache = EndpointCache(department("discovery-caller"))
    yield cache
    cache.close()


def call(channel) -> None:
    hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(hr_pb2.GetEmployeeRequest(), timeout=5)


class TestRegistration:
    def test_registered_instance_turns_passing_through_consuls_grpc_check(self, replicas):
        """Consul itself calls grpc.health.v1 on the instance and marks it passing."""
        instance = replicas.add()
        wait_for(lambda: instance.endpoint in replicas.healthy(), what="passing")
        [listed] = [i for i in replicas.registry.services() if i.service == replicas.service]
        assert listed.health is Health.PASSING
        assert listed.contract_version == "v1"
        assert listed.department == replicas.service

    def test_stopped_server_turns_critical(self, replicas):
        """An instance whose server stops is no longer resolved."""
        instance = replicas.add()
        wait_for(lambda: instance.endpoint in replicas.healthy(), what="passing")
        replicas.servers[instance.instance_id].stop(0)
        wait_for(lambda: instance.endpoint not in replicas.healthy(), what="critical")


class TestConvergence:
    def test_new_healthy_instance_gets_traffic_within_a_second(self, replicas, cache):
        """From the moment Consul reports it passing, the channel routes to it within 1 s."""
        first = replicas.add()
        wait_for(lambda: first.endpoint in replicas.healthy(), what="first passing")
        channel = client.connect(replicas.service, cache)
        call(channel)

        second = replicas.add()
        wait_for(lambda: second.endpoint in replicas.healthy(), what="second passing")
        healthy_at = time.monotonic()

        def routed() -> bool:
            call(channel)
            return channel.balancer().call_counts().get(second.endpoint, 0) > 0

        wait_for(routed, timeout=5, what="traffic to the new instance")
        assert time.monotonic() - healthy_at < 1.0
        channel.close()

    def test_draining_instance_stops_getting_calls_within_a_second(self, replicas, cache):
        """After set_draining, new calls stop reaching the instance within 1 s."""
        instances = [replicas.add(), replicas.add()]
        wait_for(lambda: len(replicas.healthy()) == 2, what="both passing")
        channel = client.connect(replicas.service, cache)
        call(channel)
        replicas.registry.set_draining(instances[0].instance_id)
        drained_at = time.monotonic()
        wait_for(
            lambda: instances[0].endpoint not in channel.balancer().call_counts(),
            timeout=5,
            what="endpoint removed",
        )
        assert time.monotonic() - drained_at < 1.0
        counts = channel.balancer().call_counts()
        for _ in range(20):
            call(channel)
        assert channel.balancer().call_counts() == {
            instances[1].endpoint: counts[instances[1].endpoint] + 20
        }
        channel.close()

    def test_calls_spread_over_replicas(self, replicas, cache):
        """With two healthy replicas, power of two choices uses both."""
        for _ in range(2):
            replicas.add()
        wait_for(lambda: len(replicas.healthy()) == 2, what="both passing")
        channel = client.connect(replicas.service, cache)
        for _ in range(40):
            call(channel)
        counts = channel.balancer().call_counts()
        assert len(counts) == 2
        assert all(n > 0 for n in counts.values())
        channel.close()


class TestUnknownService:
    def test_service_never_seen_fails_fast_naming_it(self, cache):
        """A service with no instance fails at once with UNAVAILABLE naming it."""
        channel = client.connect("no-such-service", cache)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            call(channel)
        assert time.monotonic() - started < 0.1
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "no-such-service" in caught.value.details()


def test_plain_grpc_error_codes_pass_through(replicas, cache):
    """A status the server returns reaches the caller unchanged and is not retried."""
    replicas.add()
    wait_for(lambda: len(replicas.healthy()) == 1, what="passing")
    channel = client.connect(replicas.service, cache)
    stub = hr_pb2_grpc.EmployeeServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetCostCenter(hr_pb2.GetCostCenterRequest(), timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert sum(channel.balancer().call_counts().values()) == 1
    channel.close()
