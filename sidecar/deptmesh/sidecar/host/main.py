"""`run_department`: a department as a process, from its flags to its exit status.

    # services/<dept>/__main__.py
    sys.exit(run_department(DEPARTMENT))

It parses the flags, configures logging, wires the mesh (Consul, or policy
files without it), starts the department (lifecycle.py), prints one line,
`<name> serving on HOST:PORT`, and serves until SIGTERM or SIGINT. Then it
drains and exits 0. Exit status 1: Consul could not be asked at start
(`consul_unreachable`), refused the department's token (`consul_refused`,
naming what was refused, never the token), or the department could not start
as configured (`not_started`: a port in use, a --db that cannot be used; see
startup.py); 2: a bad flag or setting. Each is one line, no traceback: a JSON
log line, or plain `<name>: <what and what to do>` with --log-format console
(on standard error too when the log goes to a --log-file). Either way nothing
is left registered or running.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TextIO

import structlog

from deptmesh.sidecar.errors import ControlPlaneRefused, ControlPlaneUnavailable
from deptmesh.sidecar.host.department import Department
from deptmesh.sidecar.host.lifecycle import start_department
from deptmesh.sidecar.host.mesh import wire_mesh
from deptmesh.sidecar.host.options import HostOptions, parse_options, usage_error
from deptmesh.sidecar.host.startup import StartupError, check_ports, consul_unreachable
from deptmesh.sidecar.logs import configure_logging

__all__ = ["run_department"]


class _StopSignals:
    """SIGTERM and SIGINT, awaited by the main thread while the server's threads work.

    The kernel hands a process's signal to any one of its threads, and Python
    runs the handler in the main thread only when that thread runs Python code:
    a main thread blocked on a lock (Event.wait) would sleep through a signal
    that a gRPC thread received. So the main thread waits on a socket that the
    C-level handler writes to (signal.set_wakeup_fd), whichever thread it ran in.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        # Only recorded here: the handler interrupts the main thread anywhere, even
        # halfway through writing a log line.
        self._received: signal.Signals | None = None
        self._reader, self._writer = socket.socketpair()
        for end in (self._reader, self._writer):
            end.setblocking(False)
        self._previous_wakeup = signal.set_wakeup_fd(self._writer.fileno())
        self._previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self._received = signal.Signals(signum)

    def wait(self) -> signal.Signals:
        """The stop signal, once one has arrived (at once if one already has)."""
        while self._received is None:  # the handler has run by the next pass
            select.select([self._reader], [], [])
            with contextlib.suppress(BlockingIOError):
                self._reader.recv(4096)
        return self._received

    def restore(self) -> None:
        """Puts back the handlers and wakeup descriptor that were there before."""
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        signal.set_wakeup_fd(self._previous_wakeup)
        self._reader.close()
        self._writer.close()


def _program(department: Department) -> str:
    """`python -m <the module run>`, as the usage line should say."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is None:
        return department.name
    return f"python -m {spec.name.removesuffix('.__main__')}"


class _NotStarted:
    """Says in one line why the department did not start: a JSON log line (the event
    and the message as `error`), or plain `<name>: <message>` for a console log."""

    def __init__(self, name: str, options: HostOptions, log_file: TextIO) -> None:
        self._name = name
        self._options = options
        self._log_file = log_file
        self._log = structlog.get_logger("deptmesh.service").bind(service=name)

    def __call__(self, event: str, message: str) -> None:
        if self._options.log_format == "console":
            self._log_file.write(f"{self._name}: {message}\n")
            self._log_file.flush()
        else:
            self._log.error(event, error=message)
        if self._log_file is not sys.stderr:  # whoever started it is told too
            sys.stderr.write(f"{self._name}: {message}\n")

    def consul(self, error: ControlPlaneRefused | ControlPlaneUnavailable) -> None:
        if isinstance(error, ControlPlaneRefused):
            self("consul_refused", str(error))
        else:
            self(
                "consul_unreachable", consul_unreachable(self._options.consul_address or "", error)
            )


def run_department(department: Department, argv: Sequence[str] | None = None) -> int:
    """Runs `department` in this process until SIGTERM or SIGINT; returns the exit status."""
    prog = _program(department)
    options = parse_options(department, argv, prog=prog)
    log_file = sys.stderr if options.log_file is None else options.log_file.open("a")
    configure_logging(options.log_format, file=log_file)
    log = structlog.get_logger("deptmesh.service").bind(service=department.name)
    not_started = _NotStarted(department.name, options, log_file)
    # Installed first: a signal during start-up drains once the department is up.
    stop_signals = _StopSignals()
    try:
        try:
            check_ports(options)
        except StartupError as error:
            not_started("not_started", str(error))
            return 1
        try:
            mesh = wire_mesh(department.name, options, log_file)
        except (ControlPlaneRefused, ControlPlaneUnavailable) as error:
            not_started.consul(error)
            return 1
        except ValueError as error:  # a policy file that cannot be used
            usage_error(department, str(error), prog=prog)
        try:
            hosted = start_department(department, options, mesh)
        except (ControlPlaneRefused, ControlPlaneUnavailable) as error:
            mesh.close()
            not_started.consul(error)
            return 1
        except StartupError as error:
            mesh.close()
            not_started("not_started", str(error))
            return 1
        except ValueError as error:
            mesh.close()
            not_started("not_started", str(error))
            return 2
        except BaseException:
            mesh.close()
            raise
        sys.stdout.write(f"{department.name} serving on {hosted.address}\n")
        sys.stdout.flush()
        log.info("stop_requested", signal=stop_signals.wait().name)
        hosted.drain()
        mesh.close()  # last: the spans of the final calls are exported
        return 0
    finally:
        stop_signals.restore()
