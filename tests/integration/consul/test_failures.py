"""Failures around discovery: a killed replica, a drained replica, Consul going away."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass

import grpc
import pytest

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.registry.agent import DevAgent
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.sidecar.channel import client
from deptmesh.sidecar.host import DepartmentProcess, instance_of
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity
from tests.integration.consul.conftest import Replicas, token_file
from tests.integration.consul.test_discovery import call
from tests.integration.servers import wait_for


class SteadyLoad:
    """One thread calling GetBudget back to back, counting outcomes, until stopped."""

    def __init__(self, channel) -> None:
        self._stub = finance_pb2_grpc.BudgetServiceStub(channel)
        self.ok = 0
        self.failures: list[grpc.RpcError] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._stub.GetBudget(finance_pb2.GetBudgetRequest(cost_center_id="CC-ENG"))
                self.ok += 1
            except grpc.RpcError as error:
                self.failures.append(error)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(30)

    def wait_for_calls(self, more: int) -> None:
        target = self.ok + more
        wait_for(lambda: self.ok >= target, timeout=10, what=f"{more} more calls")


@dataclass(frozen=True)
class Names:
    """This test's own service names in the shared agent: the finance replicas' and the
    caller's."""

    finance: str
    caller: str


@pytest.fixture
def names() -> Names:
    suffix = uuid.uuid4().hex[:8]
    return Names(finance=f"finance-{suffix}", caller=f"load-test-{suffix}")


@pytest.fixture
def finance_replicas(consul_agent, platform, department, department_tokens, names, tmp_path):
    """Two finance processes over one database, registered in Consul under this test's own
    name with that name's token; deregistered (a killed one too) and the intention removed
    after the test."""
    platform.set_intention(names.caller, names.finance, "allow")
    registry = department(names.caller)
    finance = department(names.finance)
    finance_token = token_file(department_tokens(names.finance), tmp_path)
    with contextlib.ExitStack() as stack:  # stops whatever started, even if setup fails
        stack.callback(remove_intentions, platform, names.finance)
        processes = []
        for replica in range(2):
            process = DepartmentProcess(
                "tests.integration.consul.renamed_finance",
                [
                    names.finance,
                    *("--port", "0", "--db", str(tmp_path / "finance.db")),
                    *("--seed-demo-data", "--drain-seconds", "1.5"),
                    *("--consul-address", consul_agent.address),
                    *("--consul-token-file", str(finance_token)),
                ],
                tmp_path / f"finance-{replica}.log",
            )
            # Deregistered once stopped: a running replica would register itself again.
            stack.callback(deregister, finance, names.finance, process)
            stack.enter_context(process)
            process.start()
            processes.append(process)
        addresses = {p.address for p in processes}
        wait_for(
            lambda: addresses <= {i.endpoint for i in registry.resolve(names.finance)},
            what="both finance replicas passing",
        )
        yield processes
    assert [i for i in finance.services() if i.service == names.finance] == []


def deregister(registry: ConsulRegistry, service: str, process: DepartmentProcess) -> None:
    """Removes the instance a stopped replica registered, whether it drained or was killed."""
    if process.address:
        host, _, port = process.address.rpartition(":")
        registry.deregister(instance_of(service, host, int(port)).instance_id)


def remove_intentions(platform: ConsulRegistry, destination: str) -> None:
    _, intentions = platform.intentions(0, 0)
    for intention in intentions:
        if intention["DestinationName"] == destination:
            platform.delete_intention(intention["ID"])


@pytest.fixture
def finance_channel(department, names):
    """A channel to this test's finance over mTLS, as a Connect service of the test's own."""
    consul = department(names.caller)
    cache = EndpointCache(consul)
    identity = ConsulConnectIdentity(consul, names.caller)
    channel = client.connect(names.finance, cache, identity=identity)
    yield channel
    channel.close()
    identity.stop()
    cache.close()


class TestReplicaFailure:
    def test_sigkill_fails_no_idempotent_call_and_ejects_at_once(
        self, finance_replicas, finance_channel
    ):
        """A replica killed with SIGKILL under load: no call fails, its endpoint is ejected
        by the channel at its first failed connection (before Consul's check notices)."""
        victim = finance_replicas[0]
        with SteadyLoad(finance_channel) as load:
            load.wait_for_calls(50)
            victim_endpoint = finance_channel.balancer().endpoint(victim.address)
            victim.kill()
            killed_at = time.monotonic()
            calls_at_kill = victim_endpoint.calls
            load.wait_for_calls(200)
        assert load.failures == []
        # At most the call in flight at the kill plus one more attempt reached it.
        assert victim_endpoint.calls - calls_at_kill <= 2
        assert victim_endpoint.consecutive_failures >= 1, "never ejected by the channel"
        assert victim_endpoint.ejected_until > killed_at

    def test_draining_a_replica_under_load_loses_no_call(self, finance_replicas, finance_channel):
        """SIGTERM on one replica under steady load: it drains and no call fails."""
        leaving = finance_replicas[0]
        with SteadyLoad(finance_channel) as load:
            load.wait_for_calls(50)
            assert leaving.stop() == 0
            load.wait_for_calls(100)
        assert load.failures == []
        assert leaving.address not in finance_channel.balancer().call_counts()


class TestConsulOutage:
    def test_known_services_keep_working_while_consul_is_down(self, tmp_path):
        """Consul stopped for 30 s: every call to a known service succeeds; unknown ones
        fail fast naming the service; when Consul returns the watch resumes."""
        agent = DevAgent()
        agent.start()
        tokens = {}

        def department(name: str) -> ConsulRegistry:
            tokens[name] = agent.admin().department_token(name)
            return ConsulRegistry(agent.address, token=tokens[name].secret_id)

        replicas = Replicas(department)
        registry = replicas.registry
        cache = EndpointCache(registry)
        try:
            first = replicas.add()
            wait_for(lambda: first.endpoint in replicas.healthy(), what="passing")
            channel = client.connect(replicas.service, cache)
            call(channel)

            agent.stop()
            outage_ends = time.monotonic() + 30
            calls = 0
            while time.monotonic() < outage_ends:
                call(channel)  # raises, failing the test, if any call fails
                calls += 1
            assert calls > 100

            unknown = client.connect("never-seen", cache)
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as caught:
                call(unknown)
            assert time.monotonic() - started < 0.1
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "never-seen" in caught.value.details()

            # A dev agent forgets everything: the token (restored with its secret) and
            # the registration.
            agent.start()
            agent.admin().department_token(
                replicas.service, secret_id=tokens[replicas.service].secret_id
            )
            registry.register(first)
            second = replicas.add()
            wait_for(
                lambda: second.endpoint in channel.balancer().call_counts(),
                what="watch resumed after Consul returned",
            )
            channel.close()
        finally:
            cache.close()
            for server in replicas.servers.values():
                server.stop(0)
            agent.close()
