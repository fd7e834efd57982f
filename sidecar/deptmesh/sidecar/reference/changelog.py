"""What changed in the contracts from one published version to the next.

Each version is a FileDescriptorSet (protos/published/<n>.binpb, as `make
publish-protos` keeps them); the installed contracts, not yet published, are
one more. Two versions are compared element by element, by full name:
services, methods, messages, fields, enums and enum values added, removed,
deprecated (`deprecated = true`) or no longer deprecated, and custom options
(the extensions a contract declares, such as quota_cost) added or removed. Only deptmesh's own
files are compared: the well-known types they import are not our contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumDescriptorProto,
    FileDescriptorProto,
    FileDescriptorSet,
)

__all__ = ["ContractChange", "Release", "changelog", "contract_changes"]

Kind = Literal["service", "method", "message", "field", "enum", "enum value", "option"]
Change = Literal["added", "removed", "deprecated", "no longer deprecated"]


@dataclass(frozen=True, slots=True)
class ContractChange:
    """One element of the contracts and what happened to it."""

    kind: Kind
    full_name: str
    change: Change


@dataclass(frozen=True, slots=True)
class Release:
    """A version of the contracts and its changes from the version before it."""

    title: str
    anchor: str
    changes: tuple[ContractChange, ...]


@dataclass(frozen=True, slots=True)
class _Element:
    kind: Kind
    deprecated: bool


def _enum_elements(prefix: str, enum: EnumDescriptorProto) -> Iterator[tuple[str, _Element]]:
    name = f"{prefix}.{enum.name}"
    yield name, _Element("enum", enum.options.deprecated)
    for value in enum.value:
        yield f"{name}.{value.name}", _Element("enum value", value.options.deprecated)


def _message_elements(prefix: str, message: DescriptorProto) -> Iterator[tuple[str, _Element]]:
    name = f"{prefix}.{message.name}"
    if message.options.map_entry:
        return  # a map field's entry type is the field's, not an element of its own
    yield name, _Element("message", message.options.deprecated)
    for field in message.field:
        yield f"{name}.{field.name}", _Element("field", field.options.deprecated)
    for nested in message.nested_type:
        yield from _message_elements(name, nested)
    for enum in message.enum_type:
        yield from _enum_elements(name, enum)


def _elements(files: Iterable[FileDescriptorProto]) -> dict[str, _Element]:
    """Every element of deptmesh's files, by full name."""
    elements: dict[str, _Element] = {}
    for file in files:
        if not file.name.startswith("deptmesh/"):
            continue
        for service in file.service:
            name = f"{file.package}.{service.name}"
            elements[name] = _Element("service", service.options.deprecated)
            for method in service.method:
                elements[f"{name}.{method.name}"] = _Element("method", method.options.deprecated)
        for message in file.message_type:
            elements.update(_message_elements(file.package, message))
        for enum in file.enum_type:
            elements.update(_enum_elements(file.package, enum))
        for extension in file.extension:  # a custom option, such as quota_cost
            elements[f"{file.package}.{extension.name}"] = _Element("option", False)
    return elements


def contract_changes(
    before: FileDescriptorSet, after: FileDescriptorSet
) -> tuple[ContractChange, ...]:
    """What changed from `before` to `after`, by full name. An element removed with its
    parent is listed too: a caller reading the list looks up the names it uses."""
    old, new = _elements(before.file), _elements(after.file)
    changes: list[ContractChange] = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            changes.append(ContractChange(old[name].kind, name, "removed"))
        elif name not in old:
            changes.append(ContractChange(new[name].kind, name, "added"))
        elif new[name].deprecated != old[name].deprecated:
            change: Change = "deprecated" if new[name].deprecated else "no longer deprecated"
            changes.append(ContractChange(new[name].kind, name, change))
    return tuple(changes)


def changelog(
    published: Sequence[FileDescriptorSet], installed: FileDescriptorSet
) -> list[Release]:
    """The releases newest first: the installed contracts' changes not yet published (when
    there are any), then each published version's changes from the one before it (the
    first: everything it holds, added)."""
    releases: list[Release] = []
    before = FileDescriptorSet()
    for number, image in enumerate(published, start=1):
        releases.append(Release(f"Version {number}", f"v{number}", contract_changes(before, image)))
        before = image
    unpublished = contract_changes(before, installed)
    if unpublished:
        releases.append(Release("Not yet published", "unpublished", unpublished))
    return releases[::-1]
