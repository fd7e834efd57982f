"""A department as the host sees it: a name, a contract version, and how to build it.

A department declares itself as data and leaves every process concern to the
host (flags, certificates, policy, registration, metrics, tracing, drain):

    HR = Department(name="hr", contract_version="v1", build=build)

    def build(host: HostContext) -> Closer:
        store = HrStore(host.db)
        host.server.add_service(descriptor, add_EmployeeServiceServicer_to_server, servicer)
        return store.close

    # __main__.py
    sys.exit(run_department(HR))

`build` runs once, before the server starts; what it returns is called once,
after the server has stopped and its last call has ended.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from deptmesh.registry.protocol import Registry
from deptmesh.sidecar.channel import DEFAULT_TIMEOUT_SECONDS, ServiceChannel
from deptmesh.sidecar.server import Server

__all__ = ["AddFlags", "Build", "Closer", "Connect", "Department", "HostContext"]

# What a department closes once its server has stopped (its store, its threads).
Closer = Callable[[], None]
# A department's own flags, added to the host's (for example `--payout-retry-seconds`).
AddFlags = Callable[[argparse.ArgumentParser], None]

# Service names as Consul and the access policy know them.
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_CONTRACT_VERSION = re.compile(r"v[1-9][0-9]*")


class Connect(Protocol):
    """Opens a channel to another department by name (see HostContext.connect)."""

    def __call__(
        self, service: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> ServiceChannel: ...


@dataclass(frozen=True, slots=True)
class HostContext:
    """What the host gives a department's `build`, and nothing else."""

    # The department's own name, as it is registered and authorized.
    name: str
    # Its database (`--db`): a SQLite file (a Path; the directory may not exist
    # yet) or a PostgreSQL server (a postgresql:// URL, a str).
    db: Path | str
    # Whether to load demo data into an empty database (`--seed-demo-data`).
    seed_demo_data: bool
    # The sidecar server to add servicers to; the host starts and stops it.
    server: Server
    # The department's own flags, parsed (see Department.add_flags).
    flags: argparse.Namespace
    # `connect("hr", timeout=3.0)`: a channel to another department, found through
    # the registry, over mTLS with this process's certificate, traced, every call
    # with a deadline of at most `timeout`. The host closes these channels after
    # the department's closer. ValueError when the process has no registry.
    connect: Connect
    # The registry the department registers in (a ConsulRegistry with --consul-address,
    # whose policy documents a department may watch); None when it runs alone.
    registry: Registry | None = None


Build = Callable[[HostContext], Closer]


@dataclass(frozen=True, slots=True)
class Department:
    """A department the host can run: `python -m` it with `run_department(department)`."""

    name: str
    build: Build
    # Registered as the `contract-<version>` tag and `contract_version` meta.
    contract_version: str = "v1"
    # Adds the department's own flags to the host's; they reach build as `host.flags`.
    add_flags: AddFlags | None = None
    # One line for `--help`.
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"department name {self.name!r} must be 1 to 63 lower-case letters,"
                " digits or '-' (it is a service name in Consul and in the access policy)"
            )
        if not _CONTRACT_VERSION.fullmatch(self.contract_version):
            raise ValueError(
                f"contract_version {self.contract_version!r} must look like v1, v2, ..."
            )
