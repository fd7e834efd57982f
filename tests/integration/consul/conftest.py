"""A real Consul dev agent (installed by scripts/install-consul if missing)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from deptmesh.registry.agent import DevAgent
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.model import ServiceInstance
from deptmesh.sidecar import Server
from deptmesh.sidecar.host import instance_of
from tests.integration.servers import serve_employee_service
from tests.integration.test_deadlines import RecordingHr


@pytest.fixture(scope="session")
def consul_agent() -> Iterator[DevAgent]:
    with DevAgent() as agent:
        yield agent


@pytest.fixture
def consul(consul_agent) -> ConsulRegistry:
    return ConsulRegistry(consul_agent.address)


class Replicas:
    """In-process servers registered in Consul under one fresh service name."""

    def __init__(self, registry: ConsulRegistry) -> None:
        self.registry = registry
        self.service = f"svc-{uuid.uuid4().hex[:8]}"
        self.servers: dict[str, Server] = {}

    def add(self) -> ServiceInstance:
        server, address = serve_employee_service(RecordingHr())
        port = int(address.rpartition(":")[2])
        instance = instance_of(self.service, "127.0.0.1", port)
        self.registry.register(instance)
        self.servers[instance.instance_id] = server
        return instance

    def healthy(self) -> set[str]:
        return {i.endpoint for i in self.registry.resolve(self.service)}

    def close(self) -> None:
        for instance_id, server in self.servers.items():
            self.registry.deregister(instance_id)
            server.stop(0)


@pytest.fixture
def replicas(consul) -> Iterator[Replicas]:
    group = Replicas(consul)
    yield group
    group.close()
