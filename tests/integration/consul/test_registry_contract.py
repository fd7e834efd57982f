"""StaticRegistry and ConsulRegistry behave the same (the second against a real agent)."""

from __future__ import annotations

import threading
import uuid

import pytest

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.static import StaticRegistry
from deptmesh.sidecar.host import instance_of
from tests.integration.servers import serve_employee_service, wait_for
from tests.integration.test_deadlines import RecordingHr


@pytest.fixture
def service_name() -> str:
    return f"contract-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["static", "consul"])
def registry(request, service_name):
    """In memory, or Consul asked with the service's own token."""
    if request.param == "static":
        return StaticRegistry()
    return request.getfixturevalue("department")(service_name)


@pytest.fixture
def instance(registry, service_name):
    server, address = serve_employee_service(RecordingHr())
    registered = instance_of(service_name, "127.0.0.1", int(address.rpartition(":")[2]))
    yield registered
    registry.deregister(registered.instance_id)
    server.stop(0)


class TestRegistryContract:
    def test_registered_instance_resolves_once_healthy(self, registry, instance):
        """An instance registered with a serving health endpoint is resolved."""
        registry.register(instance)
        found = wait_for(lambda: registry.resolve(instance.service), what="resolved")
        assert [i.endpoint for i in found] == [instance.endpoint]

    def test_draining_and_deregistering_hide_the_instance(self, registry, instance):
        """set_draining removes the instance from resolve at once; deregister from services."""
        registry.register(instance)
        wait_for(lambda: registry.resolve(instance.service), what="resolved")
        registry.set_draining(instance.instance_id)
        assert registry.resolve(instance.service) == []
        registry.deregister(instance.instance_id)
        assert instance.instance_id not in {i.instance_id for i in registry.services()}

    def test_query_blocks_until_a_change(self, registry, instance):
        """A query at the current index is still waiting half a second later; it returns
        when the catalog changes, with the new index."""
        registry.register(instance)
        wait_for(lambda: registry.resolve(instance.service), what="resolved")
        index, _ = registry.query(instance.service, 0, 0)
        asking = threading.Event()
        result = {}

        def blocked_query():
            asking.set()
            result["value"] = registry.query(instance.service, index, 10)

        waiter = threading.Thread(target=blocked_query)
        waiter.start()
        assert asking.wait(5)
        waiter.join(0.5)  # a query that does not block has answered by now
        assert waiter.is_alive(), f"the query returned with no change: {result}"
        registry.set_draining(instance.instance_id)
        waiter.join(10)
        assert not waiter.is_alive(), "the query did not return after the change"
        new_index, instances = result["value"]
        assert new_index > index
        assert instances == []

    def test_unknown_service_resolves_empty(self, registry):
        """A service nobody registered has no instances (not an error)."""
        assert registry.resolve("nobody-registered-this") == []


class TestConsulClient:
    def test_explicit_token_wins_over_the_environment(self, monkeypatch, consul_agent):
        """An explicit token argument is used even when CONSUL_HTTP_TOKEN is set."""
        monkeypatch.setenv("CONSUL_HTTP_TOKEN", "from-environment")
        assert ConsulRegistry(consul_agent.address, token="explicit")._client.token == "explicit"
        assert ConsulRegistry(consul_agent.address)._client.token == "from-environment"

    def test_the_token_never_shows_in_the_repr(self, consul_agent):
        """A registry's repr says whether it has a token, never which."""
        registry = ConsulRegistry(consul_agent.address, token="s3cr3t-t0ken")
        assert "s3cr3t" not in repr(registry)
        assert "token=yes" in repr(registry)
