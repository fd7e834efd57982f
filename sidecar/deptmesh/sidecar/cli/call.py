"""`deptmesh call SERVICE METHOD --as IDENTITY --json '{...}'`: one call, as a person would
make it, with everything a department's own calls go through.

The service is found through Consul; the identity's Connect leaf is obtained
with the token given (or the local mesh's token for it); the channel accepts
only a server holding SERVICE's certificate (deptmesh.sidecar.channel). The
request is encoded from JSON with the committed contract's descriptors, or,
for a service this installation has no contract for, with the descriptors its
server sends over reflection. The response is printed as JSON; a failure as
its code, message and decoded details.

Exit status: 0 the call succeeded; 1 the call failed (a status from the
service or the mesh, Consul unreachable or refusing the identity's token);
2 the command line is wrong (unknown method, JSON that does not fit the
request, a file that cannot be read, a malformed address).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor

from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.sidecar.channel import ServiceChannel, connect
from deptmesh.sidecar.cli.consul_access import ConsulAccess, consul_access
from deptmesh.sidecar.cli.contracts import Contracts, MethodName, parse_method_name
from deptmesh.sidecar.cli.details import explain_failure
from deptmesh.sidecar.cli.reflected_contracts import reflected_method
from deptmesh.sidecar.errors import ControlPlaneRefused, ControlPlaneUnavailable
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity

__all__ = ["EXIT_BAD_INVOCATION", "EXIT_CALL_FAILED", "add_call_command"]

EXIT_CALL_FAILED = 1
EXIT_BAD_INVOCATION = 2
_HOST_PORT = re.compile(r"(?:http://)?[^:/\s]*:\d{1,5}")


class _Refusal(Exception):
    """Ends the command: a one-line message and the exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _bad(message: str) -> _Refusal:
    return _Refusal(message, EXIT_BAD_INVOCATION)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def add_call_command(commands: Any) -> None:
    """Adds `call` to the `deptmesh` command's subparsers."""
    call = commands.add_parser(
        "call",
        help="call a method of a service as an identity, with a JSON request",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    call.set_defaults(run=_run)
    call.add_argument("service", metavar="SERVICE", help="the service, as registered: hr")
    call.add_argument(
        "method",
        metavar="METHOD",
        help="PACKAGE.SERVICE/METHOD, for example deptmesh.hr.v1.EmployeeService/GetEmployee",
    )
    call.add_argument(
        "--as",
        dest="identity",
        required=True,
        metavar="IDENTITY",
        help="the identity to call as (a service name: its Connect leaf is presented)",
    )
    call.add_argument(
        "--json",
        default="{}",
        metavar="JSON",
        help="the request as JSON, @FILE to read it from a file, @- from standard input"
        " (default {})",
    )
    call.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=5.0,
        metavar="SECONDS",
        help="the call's deadline (default 5)",
    )
    call.add_argument(
        "--consul-address",
        help="Consul agent HOST:PORT (default $CONSUL_HTTP_ADDR, else the local mesh of"
        " `deptmesh dev up`, else 127.0.0.1:8500)",
    )
    call.add_argument(
        "--consul-token-file",
        type=Path,
        help="the file holding IDENTITY's Consul ACL token (default $CONSUL_HTTP_TOKEN_FILE,"
        " else $CONSUL_HTTP_TOKEN; with the local mesh, the token it made for IDENTITY)",
    )


def _run(args: argparse.Namespace) -> int:
    try:
        print(_call(args))
    except _Refusal as refusal:
        for line in str(refusal).splitlines():
            print(f"deptmesh call: {line}" if line[:1] != " " else line, file=sys.stderr)
        return refusal.status
    return 0


def _request_json(argument: str) -> str:
    if argument == "@-":
        return sys.stdin.read()
    if argument.startswith("@"):
        path = Path(argument[1:])
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or error
            raise _bad(f"--json {argument}: cannot read {path}: {reason}") from None
    return argument


def _call(args: argparse.Namespace) -> str:
    """The response as JSON; raises _Refusal with what to print otherwise."""
    try:
        name = parse_method_name(args.method)
    except ValueError as error:
        raise _bad(str(error)) from None
    text = _request_json(args.json)
    method = Contracts.installed().method(name)
    if method is not None:
        _encode(method, text)  # a request that does not fit fails before the mesh is asked
    access = consul_access(args.identity, args.consul_address, args.consul_token_file)
    with ExitStack() as opened:
        channel = _channel(args.service, args.identity, access, args.timeout, opened)
        if method is None:
            method = _reflected(channel, args.service, name)
        request = _encode(method, text)
        call: Callable[..., Any] = channel.unary_unary(
            name.path,
            request_serializer=type(request).SerializeToString,
            response_deserializer=_message_class(method.output_type).FromString,
        )
        return _as_json(_answered(call, request, args.timeout))


def _channel(
    service: str, identity: str, access: ConsulAccess, timeout: float, opened: ExitStack
) -> ServiceChannel:
    """A channel to `service`'s instances presenting `identity`'s leaf, closed with `opened`."""
    if not _HOST_PORT.fullmatch(access.address):
        raise _bad(f"the Consul address {access.address!r} is not HOST:PORT")
    try:
        registry = ConsulRegistry(access.address, token_file=access.token_file)
    except ValueError as error:  # a token file that cannot be used
        raise _bad(str(error)) from None
    try:
        leaf = ConsulConnectIdentity(registry, identity)
    except ControlPlaneRefused as error:
        hint = (
            f"; the local mesh in {access.local_mesh.directory} has no token for {identity}"
            if access.local_mesh is not None and access.token_file is None
            else f"; give {identity}'s token with --consul-token-file"
        )
        raise _Refusal(f"{error}{hint}", EXIT_CALL_FAILED) from None
    except ControlPlaneUnavailable as error:
        raise _Refusal(str(error), EXIT_CALL_FAILED) from None
    opened.callback(leaf.stop)
    cache = EndpointCache(registry)
    opened.callback(cache.close)
    return opened.enter_context(connect(service, cache, identity=leaf, default_timeout=timeout))


def _reflected(channel: ServiceChannel, service: str, name: MethodName) -> MethodDescriptor:
    try:
        method = reflected_method(channel, name)
    except grpc.RpcError as error:
        first, *details = explain_failure(error)
        asking = f"asking {service}'s reflection for {name.service}"
        raise _Refusal("\n".join([f"{asking}: {first}", *details]), EXIT_CALL_FAILED) from None
    if method is None:
        raise _bad(
            f"{name.path}: no installed contract has it, and {service} does not serve it"
            " (asked its reflection)"
        )
    return method


def _message_class(descriptor: Descriptor) -> Any:
    return message_factory.GetMessageClass(descriptor)


def _encode(method: MethodDescriptor, text: str) -> Any:
    if method.client_streaming or method.server_streaming:
        raise _bad(f"{method.full_name} streams; deptmesh call makes unary calls only")
    request = _message_class(method.input_type)()
    try:
        json_format.Parse(text, request)
    except json_format.ParseError as error:
        detail = " ".join(str(error).split())
        raise _bad(f"--json does not fit {method.input_type.full_name}: {detail}") from None
    return request


def _answered(call: Callable[..., Any], request: Any, timeout: float) -> Any:
    try:
        return call(request, timeout=timeout)
    except grpc.RpcError as error:
        raise _Refusal("\n".join(explain_failure(error)), EXIT_CALL_FAILED) from None


def _as_json(message: Any) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2)
