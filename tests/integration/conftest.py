"""Real departments on port 0, hosted in this process, each with its own database.

Each is started by the host's own `start_department`, as `python -m` would, but
plugged into a mesh made here: an in-memory StaticRegistry per test (the
departments find each other there) and leaves from a dev CA (mTLS). The test
itself calls as "test-client". The Consul-backed tests live in
tests/integration/consul/.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from deptmesh.registry.static import StaticRegistry
from deptmesh.sidecar import Department
from deptmesh.sidecar.channel import mtls_channel_factory
from deptmesh.sidecar.host import HostedDepartment, Mesh, parse_options, start_department
from deptmesh.sidecar.identity import DevCertificateAuthority, dev_ca_identity

# The test company's CA: every department and the test client hold its leaves.
CA = DevCertificateAuthority()


@dataclass
class Running:
    """A started department: where it listens, a channel to it, and the department itself."""

    address: str
    channel: grpc.Channel
    hosted: HostedDepartment


StartService = Callable[..., Running]


@pytest.fixture
def static_registry() -> StaticRegistry:
    return StaticRegistry()


@pytest.fixture
def start_service(tmp_path: Path, static_registry: StaticRegistry) -> Iterator[StartService]:
    """Starts a department on 127.0.0.1:0 (`flags` as on its command line); drains them all
    after the test."""
    started: list[Running] = []

    def start(department: Department, *, seed: bool = True, flags: Sequence[str] = ()) -> Running:
        name = department.name
        options = parse_options(
            department,
            [
                *("--db", str(tmp_path / f"{name}.db"), *(["--seed-demo-data"] if seed else [])),
                *("--grace-seconds", "0", "--drain-seconds", "0", *flags),
            ],
        )
        # Counts are read from hosted.server here: no Prometheus endpoint to open and close.
        options = dataclasses.replace(options, metrics_port=None)
        mesh = Mesh(registry=static_registry, identity=dev_ca_identity(CA, name))
        hosted = start_department(department, options, mesh)
        channel = mtls_channel_factory(name, dev_ca_identity(CA, "test-client"))(hosted.address)
        running = Running(hosted.address, channel, hosted)
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        running.channel.close()
        running.hosted.drain()
