"""A real Consul dev agent with ACLs on, default deny (installed by scripts/install-consul
if missing), shared by the session, and the tokens each test plays its roles with.

Every request carries the token of the role the test plays: a department's
(`department("hr")`, made once per session per name), the platform's
(`platform`), monitoring's. Tests that revoke tokens, stop agents or rotate the
CA run agents of their own; the others register under names of their own
(`Replicas`, uuid suffixes) and remove what they registered, or put back what
they changed (test_acl.py), so the suite passes in any order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deptmesh.registry.acl import AclAdmin, Token
from deptmesh.registry.agent import DevAgent
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.model import ServiceInstance
from deptmesh.sidecar import Server
from deptmesh.sidecar.host import instance_of
from tests.integration.servers import serve_employee_service
from tests.integration.test_deadlines import RecordingHr

# A registry as department `name`: its token made once per session.
AsDepartment = Callable[[str], ConsulRegistry]


@pytest.fixture(scope="session")
def consul_agent() -> Iterator[DevAgent]:
    with DevAgent() as agent:
        yield agent


@pytest.fixture(scope="session")
def acl(consul_agent) -> AclAdmin:
    """The session agent's ACL administration, over its management token."""
    return consul_agent.admin()


@pytest.fixture(scope="session")
def department_tokens(acl) -> Callable[[str], Token]:
    """Department `name`'s token, made on first use."""
    made: dict[str, Token] = {}

    def token(name: str) -> Token:
        if name not in made:
            made[name] = acl.department_token(name)
        return made[name]

    return token


@pytest.fixture(scope="session")
def department(consul_agent, department_tokens) -> AsDepartment:
    """`department("hr")`: a registry that asks with hr's token."""
    return lambda name: ConsulRegistry(
        consul_agent.address, token=department_tokens(name).secret_id
    )


@pytest.fixture(scope="session")
def platform_token(acl) -> Token:
    return acl.platform_token()


@pytest.fixture
def platform(consul_agent, platform_token) -> ConsulRegistry:
    """A registry that asks with the platform team's token (intentions, policy documents)."""
    return ConsulRegistry(consul_agent.address, token=platform_token.secret_id)


@pytest.fixture(scope="session")
def monitoring_token(acl) -> Token:
    return acl.monitoring_token()


@pytest.fixture
def monitoring(consul_agent, monitoring_token) -> ConsulRegistry:
    """A registry that asks with the monitoring token (catalog and health, read only)."""
    return ConsulRegistry(consul_agent.address, token=monitoring_token.secret_id)


def token_file(token: Token, folder: Path) -> Path:
    """The token in a file of its own, as a process is given it (--consul-token-file)."""
    return token.write_file(folder / f"{uuid.uuid4().hex[:8]}.token")


class Replicas:
    """In-process servers registered in Consul under one fresh service name, with that
    service's own token."""

    def __init__(self, department: AsDepartment) -> None:
        self.service = f"svc-{uuid.uuid4().hex[:8]}"
        self.registry = department(self.service)
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
def replicas(department) -> Iterator[Replicas]:
    group = Replicas(department)
    yield group
    group.close()
