"""The host: runs any department as a process, so that a department is only its servicers.

A department declares itself (department.py: `Department(name, build=...)`,
its `build(host: HostContext) -> Closer`) and its `__main__` calls
`run_department` (main.py). The host does the rest, one module per idea:

- options.py: the flags every department shares, parsed once into HostOptions;
- mesh.py: what the process is plugged into, from Consul or from policy files:
  registry, certificate, access and quota policies, tracing, access log;
- lifecycle.py: start (build, serve, metrics endpoint, registration with a
  gRPC health check on the health-only port, usage reports) and drain;
- registration.py: the instance as the registry knows it, kept registered;
- outbound.py: the channels a department opens to others (`host.connect`);
- process.py: a department as a child process, for the demo and the tests;
- startup.py: why a department did not start, in one line (StartupError).

Tests host a department in their own process with `start_department` and a
`Mesh` of their own (a StaticRegistry, dev-CA identities): the same path as
`run_department`, minus flags, signals and Consul.
"""

from deptmesh.sidecar.host.department import (
    AddFlags,
    Build,
    Closer,
    Connect,
    Department,
    HostContext,
)
from deptmesh.sidecar.host.lifecycle import HostedDepartment, start_department
from deptmesh.sidecar.host.main import run_department
from deptmesh.sidecar.host.mesh import Mesh, wire_mesh
from deptmesh.sidecar.host.options import HostOptions, parse_options
from deptmesh.sidecar.host.process import DepartmentProcess
from deptmesh.sidecar.host.registration import Registration, instance_of
from deptmesh.sidecar.host.startup import StartupError

__all__ = [
    "AddFlags",
    "Build",
    "Closer",
    "Connect",
    "Department",
    "DepartmentProcess",
    "HostContext",
    "HostOptions",
    "HostedDepartment",
    "Mesh",
    "Registration",
    "StartupError",
    "instance_of",
    "parse_options",
    "run_department",
    "start_department",
    "wire_mesh",
]
