"""Each method's examples: a `deptmesh call` line and a Python program with the sidecar.

The requests come from examples.toml beside this module (what each holds: its
header); who calls comes from the policy. An example whose request needs a value
from an earlier call (a claim's id, say) names it by a placeholder, CLAIM_ID,
and says which call gives it: the reader, and the test that runs every example
(tests/reference), put that call's answer in its place. An example of a method
no one may call under the policy calls as YOUR_SERVICE.
"""

from __future__ import annotations

import json
import pprint
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message_factory import GetMessageClass

from deptmesh.sidecar.reference.callers import Callers

__all__ = [
    "ANY_CALLER",
    "Example",
    "ExampleRequest",
    "Given",
    "example_requests",
    "method_example",
]

# The caller an example names when the policy allows no one to call the method.
ANY_CALLER = "YOUR_SERVICE"
EXAMPLES_FILE = "examples.toml"
_SCALARS = frozenset(
    {
        FieldDescriptor.TYPE_STRING,
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_BOOL,
    }
)


@dataclass(frozen=True, slots=True)
class Given:
    """A placeholder in a request, and the call whose response holds its value."""

    placeholder: str
    method_path: str
    field: str
    request: Mapping[str, Any] | None  # None: that method's own example request


@dataclass(frozen=True, slots=True)
class ExampleRequest:
    """One method's entry of examples.toml."""

    request: Mapping[str, Any]
    caller: str | None = None
    given: tuple[Given, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Example:
    """A method's examples, as the reference shows them and the tests run them."""

    method_path: str
    department: str
    caller: str
    request: Mapping[str, Any]
    given: tuple[Given, ...]
    command: str
    python: str


def example_requests(text: str | None = None) -> dict[str, ExampleRequest]:
    """The example requests by method path, from `text` (TOML) or the shipped file;
    ValueError saying which entry is malformed."""
    if text is None:
        text = files("deptmesh.sidecar.reference").joinpath(EXAMPLES_FILE).read_text("utf-8")
    entries: dict[str, ExampleRequest] = {}
    for path, entry in tomllib.loads(text).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
            raise ValueError(f"{EXAMPLES_FILE}: {path}: needs a `request` table")
        given = tuple(
            Given(name, str(source["method"]), str(source["field"]), source.get("request"))
            for name, source in entry.get("given", {}).items()
        )
        entries[path] = ExampleRequest(entry["request"], entry.get("caller"), given)
    return entries


def _parsed(request: Mapping[str, Any], descriptor: Descriptor) -> None:
    """ValueError unless `request` is a valid JSON form of `descriptor`'s message."""
    try:
        json_format.ParseDict(dict(request), GetMessageClass(descriptor)())
    except json_format.ParseError as error:
        raise ValueError(f"the example request is not a {descriptor.full_name}: {error}") from None


def _module(file_name: str, suffix: str) -> str:
    return file_name.removesuffix(".proto").replace("/", ".") + suffix


def _is_simple(request: Mapping[str, Any], descriptor: Descriptor) -> bool:
    """Whether the request is scalars only: written with the message's constructor."""
    fields = descriptor.fields_by_name
    return all(
        name in fields and fields[name].type in _SCALARS and not fields[name].is_repeated
        for name in request
    )


def _python(
    method: MethodDescriptor, department: str, caller: str, request: Mapping[str, Any]
) -> str:
    request_type = method.input_type
    messages = _module(request_type.file.name, "_pb2")
    stubs = _module(method.containing_service.file.name, "_pb2_grpc")
    messages_package, _, messages_module = messages.rpartition(".")
    stubs_package, _, stubs_module = stubs.rpartition(".")
    imports = (
        [f"from {messages_package} import {messages_module}, {stubs_module}"]
        if messages_package == stubs_package
        else [
            f"from {messages_package} import {messages_module}",
            f"from {stubs_package} import {stubs_module}",
        ]
    )
    if _is_simple(request, request_type):
        arguments = ", ".join(f"{name}={value!r}" for name, value in request.items())
        build = f"request = {messages_module}.{request_type.name}({arguments})"
    else:
        literal = pprint.pformat(dict(request), indent=4, width=80, sort_dicts=False)
        literal = literal.replace("\n", "\n" + " " * 8)
        build = (
            f"request = json_format.ParseDict(\n            {literal},\n"
            f"            {messages_module}.{request_type.name}(),\n        )"
        )
    return "\n".join(
        [
            "from google.protobuf import json_format",
            "",
            *sorted([*imports, "from deptmesh.registry import ConsulRegistry, EndpointCache"]),
            "from deptmesh.sidecar import connect",
            "from deptmesh.sidecar.identity import ConsulConnectIdentity",
            "",
            "# The agent at $CONSUL_HTTP_ADDR; the caller's own token in $CONSUL_HTTP_TOKEN_FILE.",
            "registry = ConsulRegistry()",
            f"identity = ConsulConnectIdentity(registry, {caller!r})",
            "cache = EndpointCache(registry)",
            "try:",
            f"    with connect({department!r}, cache, identity=identity) as channel:",
            f"        stub = {stubs_module}.{method.containing_service.name}Stub(channel)",
            f"        {build}",
            f"        response = stub.{method.name}(request)",
            "        print(json_format.MessageToJson(response, preserving_proto_field_name=True))",
            "finally:",
            "    cache.close()",
            "    identity.stop()",
            "",
        ]
    )


def method_example(
    method: MethodDescriptor, department: str, entry: ExampleRequest, callers: Callers
) -> Example:
    """The examples of `method` (served by `department`) from its entry of examples.toml,
    calling as the entry's caller if the policy allows it, else as the first it allows;
    ValueError when the request is not one of the method's."""
    _parsed(entry.request, method.input_type)
    if entry.caller is not None and (entry.caller in callers.allowed or callers.anyone):
        caller = entry.caller
    else:
        caller = callers.allowed[0] if callers.allowed else ANY_CALLER
    path = f"/{method.containing_service.full_name}/{method.name}"
    target = f"{method.containing_service.full_name}/{method.name}"
    body = json.dumps(entry.request, separators=(", ", ": "))
    command = shlex.join(["deptmesh", "call", department, target, "--as", caller, "--json", body])
    return Example(
        method_path=path,
        department=department,
        caller=caller,
        request=entry.request,
        given=entry.given,
        command=command,
        python=_python(method, department, caller, entry.request),
    )
