"""The departments a local mesh runs, how each is started, and how `dev up` knows it serves.

Each runs as `python -m deptmesh.services.<name>`, detached, with its token file,
the agent's address, a free port, its SQLite database (demo data loaded into an
empty one; kept across `down` and `up`), console logs in its log file, and its
spans in the trace store `deptmesh trace` reads by default.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.protocol import RegistryError
from deptmesh.services.dev.detached import DetachedProcess
from deptmesh.services.dev.layout import MeshLayout

__all__ = [
    "DEPARTMENTS",
    "IDENTITIES",
    "DepartmentStartFailed",
    "department_argv",
    "wait_until_passing",
    "wait_until_serving",
]

# metering is the usage ledger the others' sidecars report to.
DEPARTMENTS = ("hr", "finance", "reimbursement", "travel", "metering")
# Every identity the mesh makes a token for: the departments, and the callers the
# company's policy names that are not departments (the self-service app files trips).
IDENTITIES = (*DEPARTMENTS, "self-service")

# The host's one line on standard output once it serves (deptmesh.sidecar.host).
_SERVING = re.compile(r"^(?P<name>\S+) serving on (?P<address>\S+:\d+)$", re.MULTILINE)


class DepartmentStartFailed(RuntimeError):
    """A department exited, or did not serve or pass its health check in time; the
    message names its log."""


def department_argv(
    name: str, layout: MeshLayout, consul_address: str, trace_store: Path
) -> list[str]:
    return [
        sys.executable,
        "-m",
        f"deptmesh.services.{name}",
        *("--port", "0", "--db", str(layout.database(name)), "--seed-demo-data"),
        *("--metrics-port", "0"),  # registered in Consul, where Prometheus finds it
        *("--consul-address", consul_address, "--consul-token-file", str(layout.token(name))),
        *("--log-format", "console", "--trace-store", str(trace_store)),
    ]


def wait_until_serving(
    processes: Mapping[str, DetachedProcess], log_offsets: Mapping[str, int], timeout: float
) -> dict[str, str]:
    """Polls each department's log (from `log_offsets`, where this start's output begins)
    until it says where it serves; their addresses (DepartmentStartFailed if one exits
    or `timeout` passes first)."""
    deadline = time.monotonic() + timeout
    addresses: dict[str, str] = {}
    while len(addresses) < len(processes):
        for name, process in processes.items():
            if name in addresses:
                continue
            with process.log.open("rb") as log:
                log.seek(log_offsets.get(name, 0))
                match = _SERVING.search(log.read().decode(errors="replace"))
            if match is not None:
                addresses[name] = match["address"]
            elif not process.running:
                raise DepartmentStartFailed(f"{name} exited while starting; its log: {process.log}")
        if len(addresses) < len(processes):
            if time.monotonic() > deadline:
                late = sorted(set(processes) - set(addresses))
                raise DepartmentStartFailed(
                    f"{', '.join(late)} did not start within {timeout:g}s; see "
                    + ", ".join(str(processes[name].log) for name in late)
                )
            time.sleep(0.1)
    return addresses


def wait_until_passing(
    registry: ConsulRegistry, processes: Mapping[str, DetachedProcess], timeout: float
) -> None:
    """Polls Consul until its gRPC health check passes for an instance of each department
    (DepartmentStartFailed if one exits or `timeout` passes first)."""
    deadline = time.monotonic() + timeout
    waiting = dict(processes)
    while waiting:
        for name, process in list(waiting.items()):
            if not process.running:
                raise DepartmentStartFailed(f"{name} exited; its log: {process.log}")
            try:
                passing = bool(registry.resolve(name))
            except RegistryError:
                passing = False
            if passing:
                del waiting[name]
        if waiting:
            if time.monotonic() > deadline:
                raise DepartmentStartFailed(
                    f"Consul's health check of {', '.join(sorted(waiting))} did not pass"
                    f" within {timeout:g}s"
                )
            time.sleep(0.1)
