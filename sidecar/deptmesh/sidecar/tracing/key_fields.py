"""Which fields of a method's messages carry business keys, as its contract declares.

A contract marks a field with the `deptmesh.common.v1.business_key` option
(protos/deptmesh/common/v1/business_key.proto):

    string employee_id = 1 [(deptmesh.common.v1.business_key) = "employee"];

`method_keys` reads a method's request and response descriptors once and finds
every such field, in the message itself and in its singular message fields at
any depth (GetEmployeeResponse.employee.employee_id). Repeated fields are not looked
into, as a list of records is not what a call is about, nor is a message from
inside itself (an employee's manager's id is not the call's employee). What it
finds, `MethodKeys`, then reads the values of one call's messages and tags its
span (tracing/tags.py). A declaration the sidecar cannot honour (a name with
other characters, a field that is repeated or neither a string nor an integer)
is logged when the method is first read, and skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import structlog
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from opentelemetry import trace

from deptmesh.common.v1 import business_key_pb2
from deptmesh.sidecar.tracing.tags import is_key_name, key_attribute, tag

__all__ = ["NO_KEYS", "KeyField", "MethodKeys", "method_keys"]

_log = structlog.get_logger("deptmesh.sidecar")

_KEY_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_STRING,
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


@dataclass(frozen=True, slots=True)
class KeyField:
    """A field that carries a business key, and the way to it from the top message."""

    attribute: str  # the span attribute: deptmesh.key.<name>
    path: tuple[str, ...]  # the singular message fields leading to the field
    name: str  # the field itself

    def value_in(self, message: Message) -> str:
        """The key's value in `message`; empty when it is not set."""
        for step in self.path:
            if not message.HasField(step):
                return ""
            message = getattr(message, step)
        value = getattr(message, self.name)
        return str(value) if value else ""


@dataclass(frozen=True, slots=True)
class MethodKeys:
    """The key fields of one method's request and response."""

    request: tuple[KeyField, ...] = ()
    response: tuple[KeyField, ...] = ()

    def tag(self, span: trace.Span, request: Message | None, response: Message | None) -> None:
        """Tags the call's span with every key value its request and response carry."""
        for fields, message in ((self.request, request), (self.response, response)):
            if message is not None:
                for field in fields:
                    value = field.value_in(message)
                    if value:
                        tag(span, field.attribute, value)


NO_KEYS = MethodKeys()


def method_keys(service: str, method: str) -> MethodKeys:
    """The key fields of `service`'s `method` (full names, as grpc's path has them);
    NO_KEYS when it has none or its descriptor is not known."""
    try:
        descriptor = descriptor_pool.Default().FindMethodByName(f"{service}.{method}")
    except KeyError:
        return NO_KEYS
    keys = MethodKeys(
        tuple(_key_fields(descriptor.input_type)), tuple(_key_fields(descriptor.output_type))
    )
    return keys if keys.request or keys.response else NO_KEYS


def _key_fields(
    message: Descriptor, path: tuple[str, ...] = (), enclosing: frozenset[str] = frozenset()
) -> Iterator[KeyField]:
    inside = enclosing | {message.full_name}
    for field in message.fields:
        name = field.GetOptions().Extensions[business_key_pb2.business_key]
        if name:
            problem = _problem(field, name)
            if problem:
                _log.warning("business_key_ignored", field=field.full_name, reason=problem)
            else:
                yield KeyField(key_attribute(name), path, field.name)
        elif (
            field.message_type is not None
            and not field.is_repeated
            and field.message_type.full_name not in inside  # a message that holds itself
        ):
            yield from _key_fields(field.message_type, (*path, field.name), inside)


def _problem(field: FieldDescriptor, name: str) -> str:
    if not is_key_name(name):
        return f"the key name {name!r} has characters other than letters, digits, _ . -"
    if field.is_repeated:
        return "a repeated field is not what a call is about"
    if field.type not in _KEY_TYPES:
        return "a business key is a string or an integer field"
    return ""
