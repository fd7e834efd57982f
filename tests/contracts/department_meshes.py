"""Small meshes of real departments hosted in this process, each refusing in one chosen way.

A mesh is what `deptmesh.sidecar.host` would run: each department built by the
host's own `start_department` on port 0, on a SQLite database of its own, found
through a StaticRegistry of the mesh's own, with a dev-CA leaf for mTLS. What
differs from one mesh to the next is how the sidecar in front of a dependency is
configured (a policy that denies everyone, a quota of one call, an in-flight
limit of one, a trust domain that is not the callers'), so that reimbursement
and travel meet their dependencies' refusals from the real thing. The test
calls as any identity of the mesh's CA (`stub`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import grpc

from deptmesh.registry.static import StaticRegistry
from deptmesh.sidecar import Department
from deptmesh.sidecar.authorization import AccessPolicy, MethodRules
from deptmesh.sidecar.channel import mtls_channel_factory
from deptmesh.sidecar.host import HostedDepartment, Mesh, parse_options, start_department
from deptmesh.sidecar.identity import DevCertificateAuthority, dev_ca_identity
from deptmesh.sidecar.identity.sources import IdentitySource
from deptmesh.sidecar.quotas import QuotaPolicy, parse_quota_policy

__all__ = [
    "CA",
    "TEST_CLIENT",
    "DepartmentMesh",
    "deny_everyone",
    "foreign_trust_domain",
    "one_call_at_a_time",
    "one_call_per_thousand_seconds",
]

# The company's CA: every department of every mesh, and the test, hold its leaves.
CA = DevCertificateAuthority()
TEST_CLIENT = "test-client"

Stub = TypeVar("Stub")


def deny_everyone() -> Callable[[], AccessPolicy]:
    """An access policy with no intention: the default deny, for every caller."""
    policy = AccessPolicy((), MethodRules({}))
    return lambda: policy


def _one_tier(tier: dict[str, object]) -> Callable[[], QuotaPolicy]:
    policy = parse_quota_policy(json.dumps({"tiers": {"only": tier}, "default_tier": "only"}))
    return lambda: policy


def one_call_per_thousand_seconds() -> Callable[[], QuotaPolicy]:
    """A quota whose bucket holds one call and refills one per thousand seconds: each
    caller's second call is QUOTA_EXCEEDED."""
    return _one_tier({"rate": 0.001, "burst": 1, "max_in_flight": 64})


def one_call_at_a_time() -> Callable[[], QuotaPolicy]:
    """A quota that lets each caller run one call at a time: a second is TOO_MANY_IN_FLIGHT."""
    return _one_tier({"rate": 1000, "burst": 1000, "max_in_flight": 1})


def foreign_trust_domain(service: str) -> IdentitySource:
    """`service`'s own leaf and the company's CA, but set to accept callers of another trust
    domain only: the TLS handshake succeeds, the identity stage refuses every caller."""
    own = dev_ca_identity(CA, service)()
    identity = dataclasses.replace(own, trust_domain="elsewhere.example")
    return lambda: identity


class DepartmentMesh:
    """Departments started into one registry; all drained by `close`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.registry = StaticRegistry()
        self.hosted: dict[str, HostedDepartment] = {}
        self._channels: dict[tuple[str, str], grpc.Channel] = {}
        self._leaves: dict[str, IdentitySource] = {}

    def start(
        self,
        department: Department,
        *,
        identity: IdentitySource | None = None,
        policy: Callable[[], AccessPolicy] | None = None,
        quota_policy: Callable[[], QuotaPolicy] | None = None,
        flags: tuple[str, ...] = (),
    ) -> HostedDepartment:
        """Starts `department` on 127.0.0.1:0 with the demo data, its sidecar configured so."""
        name = department.name
        options = parse_options(
            department,
            [
                *("--db", str(self.database(name)), "--seed-demo-data"),
                *("--grace-seconds", "0", "--drain-seconds", "0", *flags),
            ],
        )
        options = dataclasses.replace(options, metrics_port=None)
        mesh = Mesh(
            registry=self.registry,
            identity=identity or self.leaf(name),
            policy=policy,
            quota_policy=quota_policy,
        )
        self.hosted[name] = start_department(department, options, mesh)
        return self.hosted[name]

    def database(self, name: str) -> Path:
        """Where department `name` of this mesh keeps its data."""
        return self.root / f"{name}.db"

    def leaf(self, service: str) -> IdentitySource:
        """`service`'s certificate from the company's CA (one per name and mesh)."""
        if service not in self._leaves:
            self._leaves[service] = dev_ca_identity(CA, service)
        return self._leaves[service]

    def stub(
        self, make: Callable[[grpc.Channel], Stub], department: str, *, caller: str = TEST_CLIENT
    ) -> Stub:
        """A `make` stub to `department`, calling as `caller` over mTLS."""
        key = (department, caller)
        if key not in self._channels:
            open_channel = mtls_channel_factory(department, self.leaf(caller))
            self._channels[key] = open_channel(self.hosted[department].address)
        return make(self._channels[key])

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        for hosted in reversed(self.hosted.values()):
            hosted.drain()
