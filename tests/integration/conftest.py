"""Real departments on port 0, hosted in this process, each with its own database.

Each is started by the host's own `start_department`, as `python -m` would, but
plugged into a mesh made here: an in-memory StaticRegistry per test (the
departments find each other there), leaves from a dev CA (mTLS) and the
company's access policy (company_policy.toml), enforced as in production. The
test calls each department as the caller the policy allows to use all of its
methods (`TEST_CALLERS`). `start(..., policy=False)` is the development mode
that turns nobody away. The Consul-backed tests live in tests/integration/consul/.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from deptmesh.registry.static import StaticRegistry
from deptmesh.services import intentions
from deptmesh.sidecar import Department
from deptmesh.sidecar.authorization.policy import AccessPolicy
from deptmesh.sidecar.authorization.sources import parse_policy_document
from deptmesh.sidecar.channel import mtls_channel_factory
from deptmesh.sidecar.host import HostedDepartment, Mesh, parse_options, start_department
from deptmesh.sidecar.identity import DevCertificateAuthority, dev_ca_identity

# The test company's CA: every department and the test client hold its leaves.
CA = DevCertificateAuthority()

# Who the test is when it calls a department: the caller the company's policy lets use
# every method of it, as in production.
TEST_CALLERS = {"hr": "reimbursement", "finance": "reimbursement", "travel": "self-service"}
# The test's identity for the others: nobody calls reimbursement in the company's policy
# (its users come through an app that is not a department), so this one intention is
# added to the policy for the tests.
TEST_CLIENT = "test-client"
COMPANY_POLICY = AccessPolicy(
    *parse_policy_document(
        json.dumps(intentions.as_policy_document((TEST_CLIENT, "reimbursement", "allow")))
    )
)


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

    def start(
        department: Department,
        *,
        seed: bool = True,
        flags: Sequence[str] = (),
        policy: bool = True,
        caller: str | None = None,
    ) -> Running:
        """`policy=False`: the development mode, no access policy; `caller`: whom the test
        calls as (default: TEST_CALLERS)."""
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
        mesh = Mesh(
            registry=static_registry,
            identity=dev_ca_identity(CA, name),
            policy=(lambda: COMPANY_POLICY) if policy else None,
        )
        hosted = start_department(department, options, mesh)
        as_caller = caller or TEST_CALLERS.get(name, TEST_CLIENT)
        channel = mtls_channel_factory(name, dev_ca_identity(CA, as_caller))(hosted.address)
        running = Running(hosted.address, channel, hosted)
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        running.channel.close()
        running.hosted.drain()
