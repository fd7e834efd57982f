"""Why a department did not start, in one line: the flag or resource, and what to do.

`StartupError` is raised by the host (a port that cannot be bound) and by a
department's `build` for a resource it was given and cannot use (its `--db`,
see deptmesh.services.database). `run_department` reports it as one line,
`not_started`, and exits 1: no traceback, nothing left serving or registered.

The ports are tried before gRPC binds them: gRPC's own failure is a
RuntimeError saying only "Failed to bind", after a line of its core's log.
"""

from __future__ import annotations

import errno
import socket

from deptmesh.sidecar.host.options import HostOptions

__all__ = ["StartupError", "check_bindable", "check_ports", "consul_unreachable", "unbindable"]


class StartupError(Exception):
    """The department cannot start as configured; the message is one line naming the
    flag or the resource, and what to do about it."""


def unbindable(flag: str, host: str, port: int, error: OSError) -> StartupError:
    """What binding `host`:`port`, given by `flag`, failing with `error` means."""
    if error.errno == errno.EADDRINUSE:
        return StartupError(
            f"{flag} {port} is in use by another process; choose another port or {flag} 0"
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return StartupError(
            f"--host {host} is not an address of this machine; give one of its own"
            " (127.0.0.1, or 0.0.0.0 for all)"
        )
    if error.errno == errno.EACCES:
        return StartupError(
            f"{flag} {port} needs privileges this process does not have;"
            f" choose a port from 1024 up, or {flag} 0"
        )
    return StartupError(f"{flag} {port} on {host} cannot be bound ({error.strerror or error})")


def check_bindable(flag: str, host: str, port: int) -> None:
    """Raises StartupError when no address `host` resolves to can be bound on `port`.

    The probe binds as gRPC does (SO_REUSEADDR, so a port left in TIME_WAIT is
    free) and lets go at once; a race with another process in between is
    still reported by the caller, less precisely.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise StartupError(
            f"--host {host} does not resolve ({error.strerror}); give an address of this machine"
        ) from error
    failure: OSError | None = None
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                failure = failure or error
                continue
        return  # gRPC binds what it can of `addresses`; one is enough
    if failure is not None:
        raise unbindable(flag, host, port, failure) from failure


def check_ports(options: HostOptions) -> None:
    """Raises StartupError when --port or --metrics-port cannot be bound: checked before
    Consul is asked for anything, so a taken port is the one line a failed start prints."""
    check_bindable("--port", options.host, options.port)
    if options.metrics_port:
        check_bindable("--metrics-port", options.host, options.metrics_port)


def _root_cause(error: BaseException) -> BaseException:
    """The innermost exception behind `error`: through `raise ... from`, the exception
    being handled, and urllib3's `reason`, as requests nests them."""
    seen: set[int] = set()
    current = error
    while id(current) not in seen:
        seen.add(id(current))
        reason = getattr(current, "reason", None)
        first = current.args[0] if current.args else None
        following = next(
            (
                candidate
                for candidate in (current.__cause__, reason, first, current.__context__)
                if isinstance(candidate, BaseException)
            ),
            None,
        )
        if following is None:
            break
        current = following
    return current


def _why(cause: BaseException) -> str:
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused: no agent listens there"
    if isinstance(cause, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(cause, TimeoutError) or "timed out" in str(cause).lower():
        return "it did not answer in time"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    lines = str(cause).strip().splitlines()
    return lines[0][:200] if lines else type(cause).__name__


def consul_unreachable(address: str, error: BaseException) -> str:
    """One line for a Consul agent that could not be asked at start, from the error
    chain of a ControlPlaneUnavailable (whose own message holds the HTTP client's)."""
    return (
        f"--consul-address {address}: Consul could not be asked ({_why(_root_cause(error))});"
        " start the agent (deptmesh dev up starts a local one) or fix --consul-address"
    )
