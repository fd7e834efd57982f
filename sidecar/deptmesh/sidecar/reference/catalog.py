"""The reference's content: every package, service, method, message and enum of the
installed contracts, with their comments, declared errors, costs, callers and examples.

Pages are flat files: a package's page (`deptmesh.hr.v1.html`) holds its services'
method lists, messages and enums (each at an anchor named by its full name); a
method's page (`deptmesh.hr.v1.EmployeeService.GetEmployee.html`) holds the rest.
A type outside the contracts (google.protobuf.Timestamp) is named, not linked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    FileDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)
from google.protobuf.descriptor_pb2 import MethodOptions

from deptmesh.common.v1 import errors_pb2, quota_pb2
from deptmesh.sidecar.contract_comments import comments_of
from deptmesh.sidecar.contracts import Contracts
from deptmesh.sidecar.declared_errors import MESH_ERRORS, declared_errors
from deptmesh.sidecar.policy_document import PolicyDocument
from deptmesh.sidecar.reference.callers import Callers, callers_of
from deptmesh.sidecar.reference.examples import Example, ExampleRequest, method_example

__all__ = [
    "Catalog",
    "EnumDoc",
    "FieldDoc",
    "MessageDoc",
    "MethodDoc",
    "PackageDoc",
    "ServiceDoc",
    "TypeRef",
    "anchor",
    "catalog_of",
    "package_url",
]

_SCALAR_NAMES = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in vars(FieldDescriptor).items()
    if name.startswith("TYPE_") and isinstance(value, int)
}
_IDEMPOTENCY = {
    "NO_SIDE_EFFECTS": "no side effects: safe to retry and to repeat",
    "IDEMPOTENT": "idempotent: repeating the same request has the effect of one",
    "IDEMPOTENCY_UNKNOWN": "not declared: the sidecar never retries it once it was sent",
}


@dataclass(frozen=True, slots=True)
class TypeRef:
    """A type as a field names it, and the page and anchor describing it (None: outside
    the contracts, or a scalar)."""

    name: str
    url: str | None


@dataclass(frozen=True, slots=True)
class FieldDoc:
    name: str
    number: int
    label: str  # "repeated", "optional", "map", or ""
    types: tuple[TypeRef, ...]  # one; a map's key and value
    comment: str
    deprecated: bool
    oneof: str


@dataclass(frozen=True, slots=True)
class MessageDoc:
    full_name: str
    name: str
    comment: str
    fields: tuple[FieldDoc, ...]
    deprecated: bool
    url: str
    anchor: str


@dataclass(frozen=True, slots=True)
class EnumValueDoc:
    name: str
    number: int
    comment: str
    deprecated: bool


@dataclass(frozen=True, slots=True)
class EnumDoc:
    full_name: str
    name: str
    comment: str
    values: tuple[EnumValueDoc, ...]
    deprecated: bool
    url: str
    anchor: str


@dataclass(frozen=True, slots=True)
class MethodDoc:
    full_name: str
    name: str
    path: str
    service: str
    service_name: str
    department: str
    package: str
    comment: str
    request: MessageDoc
    response: MessageDoc
    client_streaming: bool
    server_streaming: bool
    idempotency: str
    idempotency_meaning: str
    quota_cost: int
    deprecated: bool
    errors: tuple[errors_pb2.ErrorCase, ...]
    callers: Callers
    example: Example | None
    url: str

    @property
    def summary(self) -> str:
        return self.comment.split("\n\n")[0].replace("\n", " ")


@dataclass(frozen=True, slots=True)
class ServiceDoc:
    full_name: str
    name: str
    comment: str
    deprecated: bool
    methods: tuple[MethodDoc, ...]


@dataclass(frozen=True, slots=True)
class PackageDoc:
    name: str
    department: str  # "" for a package without services (deptmesh.common.v1)
    description: str  # the policy's word for the department
    comment: str
    services: tuple[ServiceDoc, ...]
    messages: tuple[MessageDoc, ...]
    enums: tuple[EnumDoc, ...]
    url: str


@dataclass(frozen=True, slots=True)
class Catalog:
    packages: tuple[PackageDoc, ...]
    mesh_errors: tuple[errors_pb2.ErrorCase, ...]

    def methods(self) -> Iterator[MethodDoc]:
        for package in self.packages:
            for service in package.services:
                yield from service.methods


def _department_of(package: str) -> str:
    parts = package.split(".")  # deptmesh.<department>.v<N>
    return parts[1] if len(parts) == 3 and parts[0] == "deptmesh" else ""


def package_url(package: str) -> str:
    return f"{package}.html"


def anchor(package: str, full_name: str) -> str:
    """Where a package's page describes a type: its name inside the package, dots made
    dashes (an id of letters, digits, `-` and `_`): `Claim`, `Outer-Inner`."""
    return full_name.removeprefix(f"{package}.").replace(".", "-")


class _Builder:
    """Turns descriptors into docs; knows every contract file's comments."""

    def __init__(self, contracts: Contracts) -> None:
        self._ours = {file.name for file in contracts.files}
        self._comments: dict[str, str] = {}
        for file in contracts.files:
            self._comments.update(comments_of(file))

    def comment(self, full_name: str) -> str:
        return self._comments.get(full_name, "")

    def url(self, file: FileDescriptor, full_name: str) -> str | None:
        if file.name not in self._ours:
            return None
        return f"{package_url(file.package)}#{anchor(file.package, full_name)}"

    def type_ref(self, field: FieldDescriptor) -> TypeRef:
        if field.message_type is not None:
            return TypeRef(
                field.message_type.full_name,
                self.url(field.message_type.file, field.message_type.full_name),
            )
        if field.enum_type is not None:
            return TypeRef(
                field.enum_type.full_name, self.url(field.enum_type.file, field.enum_type.full_name)
            )
        return TypeRef(_SCALAR_NAMES[field.type], None)

    def field(self, field: FieldDescriptor) -> FieldDoc:
        entry = field.message_type
        types: tuple[TypeRef, ...]
        if entry is not None and entry.GetOptions().map_entry:
            label = "map"
            types = (
                self.type_ref(entry.fields_by_name["key"]),
                self.type_ref(entry.fields_by_name["value"]),
            )
        else:
            oneof = field.containing_oneof
            real_oneof = oneof is not None and not oneof.name.startswith("_")
            label = (
                "repeated"
                if field.is_repeated
                else "optional"
                if field.has_presence and field.message_type is None and not real_oneof
                else ""
            )
            types = (self.type_ref(field),)
        oneof = field.containing_oneof
        return FieldDoc(
            name=field.name,
            number=field.number,
            label=label,
            types=types,
            comment=self.comment(field.full_name),
            deprecated=field.GetOptions().deprecated,
            oneof="" if oneof is None or oneof.name.startswith("_") else oneof.name,
        )

    def message(self, message: Descriptor) -> MessageDoc:
        return MessageDoc(
            full_name=message.full_name,
            name=message.name,
            comment=self.comment(message.full_name),
            fields=tuple(self.field(f) for f in message.fields),
            deprecated=message.GetOptions().deprecated,
            url=self.url(message.file, message.full_name) or "",
            anchor=anchor(message.file.package, message.full_name),
        )

    def enum(self, enum: EnumDescriptor) -> EnumDoc:
        return EnumDoc(
            full_name=enum.full_name,
            name=enum.name,
            comment=self.comment(enum.full_name),
            values=tuple(
                EnumValueDoc(
                    v.name,
                    v.number,
                    self.comment(f"{enum.full_name}.{v.name}"),
                    v.GetOptions().deprecated,
                )
                for v in enum.values
            ),
            deprecated=enum.GetOptions().deprecated,
            url=self.url(enum.file, enum.full_name) or "",
            anchor=anchor(enum.file.package, enum.full_name),
        )

    def messages_and_enums(self, file: FileDescriptor) -> tuple[list[MessageDoc], list[EnumDoc]]:
        """Every message and enum of `file`, nested ones after their parent."""
        messages: list[MessageDoc] = []
        enums = [self.enum(e) for e in file.enum_types_by_name.values()]

        def visit(message: Descriptor) -> None:
            if message.GetOptions().map_entry:
                return
            messages.append(self.message(message))
            enums.extend(self.enum(e) for e in message.enum_types)
            for nested in message.nested_types:
                visit(nested)

        for message in file.message_types_by_name.values():
            visit(message)
        return messages, enums


def _method(
    builder: _Builder,
    method: MethodDescriptor,
    department: str,
    policy: PolicyDocument,
    examples: Mapping[str, ExampleRequest],
) -> MethodDoc:
    service = method.containing_service
    path = f"/{service.full_name}/{method.name}"
    options = method.GetOptions()
    idempotency = MethodOptions.IdempotencyLevel.Name(options.idempotency_level)
    callers = callers_of(policy, department, path)
    entry = examples.get(path)
    return MethodDoc(
        full_name=method.full_name,
        name=method.name,
        path=path,
        service=service.full_name,
        service_name=service.name,
        department=department,
        package=service.file.package,
        comment=builder.comment(method.full_name),
        request=builder.message(method.input_type),
        response=builder.message(method.output_type),
        client_streaming=method.client_streaming,
        server_streaming=method.server_streaming,
        idempotency=idempotency,
        idempotency_meaning=_IDEMPOTENCY.get(idempotency, ""),
        quota_cost=options.Extensions[quota_pb2.quota_cost] or 1,
        deprecated=options.deprecated,
        errors=declared_errors(method),
        callers=callers,
        example=None if entry is None else method_example(method, department, entry, callers),
        url=f"{method.full_name}.html",
    )


def _service(
    builder: _Builder,
    service: ServiceDescriptor,
    department: str,
    policy: PolicyDocument,
    examples: Mapping[str, ExampleRequest],
) -> ServiceDoc:
    return ServiceDoc(
        full_name=service.full_name,
        name=service.name,
        comment=builder.comment(service.full_name),
        deprecated=service.GetOptions().deprecated,
        methods=tuple(_method(builder, m, department, policy, examples) for m in service.methods),
    )


def catalog_of(
    contracts: Contracts, policy: PolicyDocument, examples: Mapping[str, ExampleRequest]
) -> Catalog:
    """The reference's content for `contracts` under `policy`, with `examples`."""
    builder = _Builder(contracts)
    by_package: dict[str, list[FileDescriptor]] = {}
    for file in contracts.files:
        by_package.setdefault(file.package, []).append(file)
    packages = []
    for name, package_files in sorted(by_package.items()):
        department = _department_of(name)
        services = [
            _service(builder, service, department, policy, examples)
            for file in package_files
            for service in file.services_by_name.values()
        ]
        messages: list[MessageDoc] = []
        enums: list[EnumDoc] = []
        for file in package_files:
            found_messages, found_enums = builder.messages_and_enums(file)
            messages += found_messages
            enums += found_enums
        described = policy.departments.get(department)
        packages.append(
            PackageDoc(
                name=name,
                department=department if services else "",
                description="" if described is None else described.description,
                comment="",
                services=tuple(services),
                messages=tuple(messages),
                enums=tuple(enums),
                url=package_url(name),
            )
        )
    return Catalog(tuple(packages), MESH_ERRORS)
