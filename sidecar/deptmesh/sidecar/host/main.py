"""`run_department`: a department as a process, from its flags to its exit status.

    # services/<dept>/__main__.py
    sys.exit(run_department(DEPARTMENT))

It parses the flags, configures logging, wires the mesh (Consul, or policy
files without it), starts the department (lifecycle.py), prints one line,
`<name> serving on HOST:PORT`, and serves until SIGTERM or SIGINT. Then it
drains and exits 0. Exit status 1: Consul could not be asked at start;
2: a bad flag or setting. Either way nothing is left registered or running.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

import structlog

from deptmesh.sidecar.errors import ControlPlaneUnavailable
from deptmesh.sidecar.host.department import Department
from deptmesh.sidecar.host.lifecycle import start_department
from deptmesh.sidecar.host.mesh import wire_mesh
from deptmesh.sidecar.host.options import parse_options, usage_error
from deptmesh.sidecar.logs import configure_logging

__all__ = ["run_department"]

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _program(department: Department) -> str:
    """`python -m <the module run>`, as the usage line should say."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is None:
        return department.name
    return f"python -m {spec.name.removesuffix('.__main__')}"


def run_department(department: Department, argv: Sequence[str] | None = None) -> int:
    """Runs `department` in this process until SIGTERM or SIGINT; returns the exit status."""
    prog = _program(department)
    options = parse_options(department, argv, prog=prog)
    log_file = sys.stderr if options.log_file is None else options.log_file.open("a")
    configure_logging(options.log_format, file=log_file)
    log = structlog.get_logger("deptmesh.service").bind(service=department.name)
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        stop_requested.set()

    # Installed first: a signal during start-up drains once the department is up.
    previous = {number: signal.signal(number, request_stop) for number in _STOP_SIGNALS}
    try:
        try:
            mesh = wire_mesh(department.name, options, log_file)
        except ControlPlaneUnavailable as error:
            log.error("consul_unreachable", error=str(error))
            return 1
        except ValueError as error:  # a policy file that cannot be used
            usage_error(department, str(error), prog=prog)
        try:
            hosted = start_department(department, options, mesh)
        except ControlPlaneUnavailable as error:
            mesh.close()
            log.error("consul_unreachable", error=str(error))
            return 1
        except ValueError as error:
            mesh.close()
            log.error("not_started", error=str(error))
            return 2
        except BaseException:
            mesh.close()
            raise
        sys.stdout.write(f"{department.name} serving on {hosted.address}\n")
        sys.stdout.flush()
        stop_requested.wait()
        hosted.drain()
        mesh.close()  # last: the spans of the final calls are exported
        return 0
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
