"""EndpointCache over an in-memory registry: an empty answer is believed only once it lasts."""

from __future__ import annotations

import threading

import pytest
from structlog.testing import capture_logs

from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.model import Health, ServiceInstance
from deptmesh.registry.static import StaticRegistry
from tests.integration.servers import wait_for

INSTANCE = ServiceInstance("finance", "finance-1", "127.0.0.1", 5001)


class Told:
    """What a cache told its listener, with an event per change."""

    def __init__(self) -> None:
        self.changes: list[list[str]] = []
        self.changed = threading.Condition()

    def __call__(self, instances: list[ServiceInstance]) -> None:
        with self.changed:
            self.changes.append([i.instance_id for i in instances])
            self.changed.notify_all()

    def wait_for(self, change: list[str], timeout: float = 5.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: change in self.changes, timeout), self.changes


@pytest.fixture
def registry() -> StaticRegistry:
    return StaticRegistry([INSTANCE])


class TestEmptyAnswers:
    def test_a_short_empty_answer_keeps_the_last_endpoints(self, registry):
        """The only instance critical, then passing again within the grace: the listener is
        never told there is none, and the cache says why it kept them."""
        cache = EndpointCache(registry, wait_seconds=0.1, empty_grace_seconds=30)
        told = Told()
        try:
            assert cache.subscribe("finance", told) == [INSTANCE]
            with capture_logs() as logs:
                registry.set_health("finance-1", Health.CRITICAL)
                wait_for(lambda: any(e["event"] == "endpoints_kept" for e in logs), 5)
            assert cache.instances("finance") == [INSTANCE]
            second = ServiceInstance("finance", "finance-2", "127.0.0.1", 5002)
            registry.register(second)
            told.wait_for(["finance-2"])
            assert [] not in told.changes
        finally:
            cache.close()

    def test_an_empty_answer_that_lasts_is_believed(self, registry):
        """The only instance stays critical past the grace: the listener is told there is
        none."""
        cache = EndpointCache(registry, wait_seconds=0.1, empty_grace_seconds=0.2)
        told = Told()
        try:
            cache.subscribe("finance", told)
            registry.set_health("finance-1", Health.CRITICAL)
            told.wait_for([])
            assert cache.instances("finance") == []
        finally:
            cache.close()

    def test_a_service_without_instances_from_the_start_is_empty_at_once(self):
        """Nothing to keep: a service with no healthy instance when first asked has none."""
        cache = EndpointCache(StaticRegistry(), empty_grace_seconds=30)
        try:
            assert cache.instances("finance") == []
        finally:
            cache.close()
