"""Real department services on port 0, in this process, each with its own database.

Services find each other through an in-memory StaticRegistry per test and talk
mTLS with leaves from a dev CA; the test itself calls as "test-client". The
Consul-backed tests live in tests/integration/consul/.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from deptmesh.registry.static import StaticRegistry
from deptmesh.sidecar.channel.client import mtls_channel_factory
from deptmesh.sidecar.host.runner import Builder, RunningService, ServiceOptions, instance_of
from deptmesh.sidecar.identity.dev_ca import DevCertificateAuthority
from deptmesh.sidecar.identity.sources import dev_ca_identity

# The test company's CA: every service and the test client hold its leaves.
CA = DevCertificateAuthority()


@dataclass
class Running:
    """A started service: where it listens and a channel to it."""

    address: str
    channel: grpc.Channel
    service: RunningService


StartService = Callable[..., Running]


@pytest.fixture
def static_registry() -> StaticRegistry:
    return StaticRegistry()


@pytest.fixture
def start_service(tmp_path: Path, static_registry: StaticRegistry) -> Iterator[StartService]:
    """Starts a service's real server on 127.0.0.1:0; stops all of them after the test."""
    started: list[Running] = []

    def start(name: str, build: Builder, *, seed: bool = True, **extra: object) -> Running:
        options = ServiceOptions(
            host="127.0.0.1",
            port=0,
            db=tmp_path / f"{name}.db",
            seed_demo_data=seed,
            grace_seconds=5.0,
            registry=static_registry,
            identity=dev_ca_identity(CA, name),
            policy=None,
            drain_seconds=0.0,
            extra=argparse.Namespace(**extra),
        )
        service = build(options)
        port = service.server.start(f"{options.host}:{options.port}")
        static_registry.register(instance_of(name, "127.0.0.1", port))
        address = f"127.0.0.1:{port}"
        channel = mtls_channel_factory(name, dev_ca_identity(CA, "test-client"))(address)
        running = Running(address, channel, service)
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        running.channel.close()
        running.service.server.stop(0)
        running.service.close()
