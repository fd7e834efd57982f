"""Runs one department as a process: flags, identity and policy sources, registration,
health port, metrics, tracing, and a drain on SIGTERM."""

from deptmesh.sidecar.host.process import ServiceProcess
from deptmesh.sidecar.host.runner import (
    Builder,
    RunningService,
    ServiceOptions,
    instance_of,
    parse_options,
    run,
    server_for,
)

__all__ = [
    "Builder",
    "RunningService",
    "ServiceOptions",
    "ServiceProcess",
    "instance_of",
    "parse_options",
    "run",
    "server_for",
]
