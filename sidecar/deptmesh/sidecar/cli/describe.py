"""`deptmesh describe SERVICE[/METHOD]`: a contract as its readers need it, from the
committed descriptors and the comments of their .proto sources.

SERVICE is a department (`hr`: the services of its contract package
deptmesh.hr.v<N>) or a service's full name (`deptmesh.hr.v1.EmployeeService`).
A service shows its comment and each method with the status codes it
declares; a method shows its request and response fields (and every message
and enum they use) with their types and comments, and the error cases its
contract declares (code, reason, when, what to do), then those of every call.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)
from google.protobuf.descriptor_pb2 import MethodOptions

from deptmesh.common.v1 import errors_pb2, quota_pb2
from deptmesh.sidecar.cli.tables import table
from deptmesh.sidecar.contract_comments import comments_of
from deptmesh.sidecar.contracts import Contracts
from deptmesh.sidecar.declared_errors import MESH_ERRORS, declared_errors

__all__ = ["EXIT_UNKNOWN_TARGET", "add_describe_command", "describe_method", "describe_service"]

EXIT_UNKNOWN_TARGET = 2

_SCALARS = {
    number: name.removeprefix("TYPE_").lower()
    for name, number in vars(FieldDescriptor).items()
    if name.startswith("TYPE_") and name not in ("TYPE_MESSAGE", "TYPE_ENUM", "TYPE_GROUP")
}
_IDEMPOTENCY = {
    MethodOptions.NO_SIDE_EFFECTS: "NO_SIDE_EFFECTS (safe to retry)",
    MethodOptions.IDEMPOTENT: "IDEMPOTENT (safe to retry)",
}

Comments = Callable[[str], str]


def add_describe_command(commands: Any) -> None:
    """Adds `describe` to the `deptmesh` command's subparsers."""
    describe = commands.add_parser(
        "describe",
        help="show a service's methods, or a method's fields and status codes, from its contract",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    describe.set_defaults(run=_run)
    describe.add_argument(
        "target",
        metavar="SERVICE[/METHOD]",
        help="hr, hr/GetEmployee, deptmesh.hr.v1.EmployeeService or"
        " deptmesh.hr.v1.EmployeeService/GetEmployee",
    )


def _run(args: argparse.Namespace) -> int:
    contracts = Contracts.installed()
    comments: dict[str, str] = {}
    for file in contracts.files:
        comments.update(comments_of(file))

    def comment(full_name: str) -> str:
        return comments.get(full_name, "")

    service_part, _, method_name = args.target.partition("/")
    services = (
        contracts.services_of(service_part)
        if "." not in service_part
        else [s for s in [contracts.service(service_part)] if s is not None]
    )
    if not services and "." in service_part and not method_name:
        # grpcurl's spelling of a method: deptmesh.hr.v1.EmployeeService.GetEmployee
        service_part, _, method_name = service_part.rpartition(".")
        services = [s for s in [contracts.service(service_part)] if s is not None]
    if not services:
        known = ", ".join(contracts.departments())
        print(
            f"deptmesh describe: no contract of {service_part!r} is installed (departments:"
            f" {known}; or a service's full name, such as deptmesh.hr.v1.EmployeeService)",
            file=sys.stderr,
        )
        return EXIT_UNKNOWN_TARGET
    if not method_name:
        print("\n\n".join(describe_service(service, comment) for service in services))
        return 0
    methods = [s.methods_by_name[method_name] for s in services if method_name in s.methods_by_name]
    if not methods:
        names = ", ".join(m.name for s in services for m in s.methods)
        print(
            f"deptmesh describe: {service_part} has no method {method_name!r} (it has: {names})",
            file=sys.stderr,
        )
        return EXIT_UNKNOWN_TARGET
    print("\n\n".join(describe_method(method, comment) for method in methods))
    return 0


def _indented(text: str, indent: str = "  ") -> list[str]:
    return [f"{indent}{line}".rstrip() for line in text.splitlines()]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def describe_service(service: ServiceDescriptor, comment: Comments) -> str:
    """The service's comment, then each method's signature, summary and declared codes."""
    lines = [f"service {service.full_name}  ({service.file.name})"]
    lines += _indented(comment(service.full_name))
    for method in service.methods:
        lines += ["", f"  rpc {_signature(method)}", *_indented(comment(method.full_name), "    ")]
        codes = ", ".join(dict.fromkeys(case.code for case in declared_errors(method)))
        if codes:
            lines.append(f"    status codes: {codes}")
    lines += ["", f"`deptmesh describe {service.full_name}/METHOD` shows a method's fields."]
    return "\n".join(lines)


def _signature(method: MethodDescriptor) -> str:
    package = method.containing_service.file.package

    def shape(message: Descriptor, streams: bool) -> str:
        return f"{'stream ' if streams else ''}{_short(message.full_name, package)}"

    request = shape(method.input_type, method.client_streaming)
    response = shape(method.output_type, method.server_streaming)
    return f"{method.name}({request}) returns ({response})"


def _short(full_name: str, package: str) -> str:
    """A type's name without `package`, where it is in it."""
    return full_name.removeprefix(f"{package}.") if package else full_name


def describe_method(method: MethodDescriptor, comment: Comments) -> str:
    """The method's comment and options, its request and response fields and the messages
    and enums they use, and the error cases its contract declares, then every call's."""
    service = method.containing_service
    lines = [f"rpc {service.full_name}/{method.name}", *_indented(comment(method.full_name))]
    options = method.GetOptions()
    if options.idempotency_level in _IDEMPOTENCY:
        lines.append(f"  idempotency: {_IDEMPOTENCY[options.idempotency_level]}")
    if options.HasExtension(quota_pb2.quota_cost):
        lines.append(f"  quota cost: {options.Extensions[quota_pb2.quota_cost]} per call")
    lines += ["", *_message(f"request {method.input_type.full_name}", method.input_type, comment)]
    lines += [
        "",
        *_message(f"response {method.output_type.full_name}", method.output_type, comment),
    ]
    for used in _types_used(method):
        if isinstance(used, EnumDescriptor):
            lines += ["", *_enum(used, comment)]
        else:
            lines += ["", *_message(f"message {used.full_name}", used, comment)]
    lines += ["", "error cases the contract declares", *_error_cases(declared_errors(method))]
    lines += ["", "error cases of every call (the mesh)", *_error_cases(MESH_ERRORS)]
    return "\n".join(lines)


def _error_cases(cases: tuple[errors_pb2.ErrorCase, ...]) -> list[str]:
    """Each case as its code and reason, then when it happens and what to do."""
    if not cases:
        return ["  none declared"]
    lines: list[str] = []
    for case in cases:
        lines.append(f"  {case.code}" + (f" (reason {case.reason})" if case.reason else ""))
        lines += [f"    when: {case.meaning}", f"    do:   {case.action}"]
    return lines


def _message(title: str, message: Descriptor, comment: Comments) -> list[str]:
    lines = [title, *_indented(comment(message.full_name))]
    if not message.fields:
        return [*lines, "  (no fields)"]
    rows = [
        (field.name, _type_of(field, message), _one_line(comment(field.full_name)))
        for field in message.fields
    ]
    return [*lines, *_indented(table([("FIELD", "TYPE", "DESCRIPTION"), *rows]))]


def _enum(enum: EnumDescriptor, comment: Comments) -> list[str]:
    rows = [
        (value.name, str(value.number), _one_line(comment(f"{enum.full_name}.{value.name}")))
        for value in enum.values
    ]
    return [
        f"enum {enum.full_name}",
        *_indented(comment(enum.full_name)),
        *_indented(table([("VALUE", "NUMBER", "DESCRIPTION"), *rows])),
    ]


def _type_of(field: FieldDescriptor, near: Descriptor) -> str:
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        key, value = (message.fields_by_name[name] for name in ("key", "value"))
        return f"map<{_type_of(key, near)}, {_type_of(value, near)}>"
    if message is not None:
        name = _short(message.full_name, near.file.package)
    elif field.enum_type is not None:
        name = _short(field.enum_type.full_name, near.file.package)
    else:
        name = _SCALARS.get(field.type, "?")
    # is_repeated replaces `label` in protobuf 7; a map (above) is repeated too.
    return f"repeated {name}" if field.is_repeated else name


def _types_used(method: MethodDescriptor) -> Iterator[Descriptor | EnumDescriptor]:
    """The messages and enums of the request and response, breadth first, each once;
    the well-known google.protobuf types are only named."""
    seen = {method.input_type.full_name, method.output_type.full_name}
    queue = [method.input_type, method.output_type]
    while queue:
        message = queue.pop(0)
        for field in message.fields:
            used: Descriptor | EnumDescriptor | None = field.message_type or field.enum_type
            if used is None or used.full_name in seen:
                continue
            seen.add(used.full_name)
            if isinstance(used, Descriptor) and used.GetOptions().map_entry:
                queue.append(used)  # its value type, not the entry itself
                continue
            if used.full_name.startswith("google.protobuf."):
                continue
            yield used
            if isinstance(used, Descriptor):
                queue.append(used)
