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
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor

from deptmesh.registry.cache import EndpointCache
from deptmesh.sidecar.channel import ServiceChannel, connect
from deptmesh.sidecar.cli.acting_as import (
    EXIT_FAILED,
    CommandRefused,
    ConsulAccess,
    add_consul_arguments,
    bad_invocation,
    consul_access,
    leaf_of,
)
from deptmesh.sidecar.cli.details import explain_failure
from deptmesh.sidecar.cli.reflected_contracts import reflected_method
from deptmesh.sidecar.contracts import Contracts, MethodName, parse_method_name

__all__ = ["add_call_command"]


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
    add_consul_arguments(call)


def _run(args: argparse.Namespace) -> int:
    try:
        print(_call(args))
    except CommandRefused as refusal:
        first, *details = str(refusal).splitlines()
        print(f"deptmesh call: {first}", *details, sep="\n", file=sys.stderr)
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
            raise bad_invocation(f"--json {argument}: cannot read {path}: {reason}") from None
    return argument


def _call(args: argparse.Namespace) -> str:
    """The response as JSON; raises CommandRefused with what to print otherwise."""
    try:
        name = parse_method_name(args.method)
    except ValueError as error:
        raise bad_invocation(str(error)) from None
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
    registry, leaf = leaf_of(identity, access, opened)
    cache = EndpointCache(registry)
    opened.callback(cache.close)
    return opened.enter_context(connect(service, cache, identity=leaf, default_timeout=timeout))


def _reflected(channel: ServiceChannel, service: str, name: MethodName) -> MethodDescriptor:
    try:
        method = reflected_method(channel, name)
    except grpc.RpcError as error:
        first, *details = explain_failure(error)
        asking = f"asking {service}'s reflection for {name.service}"
        raise CommandRefused("\n".join([f"{asking}: {first}", *details]), EXIT_FAILED) from None
    if method is None:
        raise bad_invocation(
            f"{name.path}: no installed contract has it, and {service} does not serve it"
            " (asked its reflection)"
        )
    return method


def _message_class(descriptor: Descriptor) -> Any:
    return message_factory.GetMessageClass(descriptor)


def _encode(method: MethodDescriptor, text: str) -> Any:
    if method.client_streaming or method.server_streaming:
        raise bad_invocation(f"{method.full_name} streams; deptmesh call makes unary calls only")
    request = _message_class(method.input_type)()
    try:
        json_format.Parse(text, request)
    except json_format.ParseError as error:
        detail = " ".join(str(error).split())
        raise bad_invocation(
            f"--json does not fit {method.input_type.full_name}: {detail}"
        ) from None
    return request


def _answered(call: Callable[..., Any], request: Any, timeout: float) -> Any:
    try:
        return call(request, timeout=timeout)
    except grpc.RpcError as error:
        raise CommandRefused("\n".join(explain_failure(error)), EXIT_FAILED) from None


def _as_json(message: Any) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2)
