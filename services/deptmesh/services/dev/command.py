"""`deptmesh dev up | down | status`: what each does and prints (its flags are in
deptmesh.services.commands, which `deptmesh --help` loads without this).

Exit codes: `up` 0 once the mesh is up (already, or now), 1 if it could not be
brought up (everything it started is stopped again); `down` 0, also when
nothing was up; `status` 0 when the mesh is up, 1 when it is partly up (a
process died, a health check fails), 3 when nothing is up.
"""

from __future__ import annotations

import argparse
import sys

from deptmesh.registry.local_mesh import local_mesh_directory
from deptmesh.registry.protocol import RegistryError
from deptmesh.services.dev.departments import IDENTITIES
from deptmesh.services.dev.layout import MeshLayout
from deptmesh.services.dev.mesh import MeshStatus, down, status, up
from deptmesh.services.dev.record import MeshRecord

__all__ = ["run"]

EXIT_UP, EXIT_PARTLY_UP, EXIT_NOT_UP = 0, 1, 3
_GET_EMPLOYEE = (
    "deptmesh call hr deptmesh.hr.v1.EmployeeService/GetEmployee --as reimbursement"
    """ --json '{"employee_id": "E1002"}'"""
)


def say(text: str) -> None:
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


def complain(text: str) -> None:
    sys.stderr.write(f"{text}\n")


def _layout() -> MeshLayout:
    return MeshLayout(local_mesh_directory())


def _up(args: argparse.Namespace) -> int:
    layout = _layout()
    try:
        record = up(layout, say, args.timeout)
    # ConsulNotFound, ConsulStartFailed, DepartmentStartFailed, and the ACL system not ready.
    except (RuntimeError, RegistryError, OSError, ValueError) as error:
        complain(f"deptmesh dev up: {error}")
        return 1
    say("")
    _describe(layout, record)
    return 0


def _describe(layout: MeshLayout, record: MeshRecord) -> None:
    """Where everything is, and what to try next."""
    directory = layout.directory
    say(f"local mesh up in {directory}")
    say(f"  consul          {record.consul_address}  log {layout.consul_log}")
    for name, process in record.departments.items():
        address = record.addresses.get(name, "?")
        say(f"  {name:<15} {address:<16} log {process.log}")
    say(f"  tokens          {layout.tokens}/<identity>.token: {', '.join(IDENTITIES)},")
    say(f"                  platform, monitoring (management token: {layout.management_token})")
    say(f"  traces          {record.trace_store}")
    if "portal" in record.addresses:
        say(f"  portal          http://{record.addresses['portal']}/  (the developer portal)")
    say("")
    say("try:")
    say(f"  {_GET_EMPLOYEE}")
    say(
        f"  deptmesh services --consul-address {record.consul_address}"
        f" --consul-token-file {layout.token('monitoring')}"
    )
    say(f"  deptmesh trace --last --store {record.trace_store}")
    if "prometheus" in record.addresses:
        say(f"  open http://{record.addresses['prometheus']}/classic/targets  # Prometheus's UI")
        say("  deptmesh alerts            # what fires, with its runbook line")
    if "portal" in record.addresses:
        say(f"  open http://{record.addresses['portal']}/graph  # the call graph, in a browser")
    say("  deptmesh dev status")
    say("  deptmesh dev down          # stops it all; --purge also removes logs and databases")


def _down(args: argparse.Namespace) -> int:
    try:
        down(_layout(), say, args.timeout, purge=args.purge)
    except ValueError as error:
        complain(f"deptmesh dev down: {error}")
        return 1
    return 0


def _status(_: argparse.Namespace) -> int:
    layout = _layout()
    try:
        found = status(layout)
    except ValueError as error:
        complain(f"deptmesh dev status: {error}")
        return EXIT_NOT_UP
    _print_status(found)
    return {"up": EXIT_UP, "degraded": EXIT_PARTLY_UP}.get(found.state, EXIT_NOT_UP)


def _print_status(found: MeshStatus) -> None:
    say(f"local mesh in {found.directory}: {found.state}")
    if found.record is None:
        say("  nothing was started (deptmesh dev up starts it)")
        return
    for process in found.processes:
        running = "running" if process.running else "NOT RUNNING"
        say(
            f"  {process.name:<15} {running:<12} pid {process.pid:<8}"
            f" {process.address or '-':<16} log {process.log}"
        )
    if found.passing is None:
        say(f"Consul's view: unknown ({found.consul_error})")
        return
    say("Consul's view (instances passing their health check):")
    for name, endpoints in found.passing.items():
        say(f"  {name:<15} {', '.join(endpoints) if endpoints else 'NONE'}")
    say(f"traces: {found.record.trace_store}")


def run(args: argparse.Namespace) -> int:
    """Runs `deptmesh dev ACTION` (the flags are in deptmesh.services.commands); its exit code."""
    actions = {"up": _up, "down": _down, "status": _status}
    return actions[args.action](args)
