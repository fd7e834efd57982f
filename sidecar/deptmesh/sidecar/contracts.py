"""The contracts this installation carries: the committed descriptors of every department.

Each department's contract is a generated package `deptmesh.<department>.v<N>`
(protos/deptmesh/<department>/v<N>/ in the repository); importing its `_pb2`
modules puts its files in protobuf's default descriptor pool. `Contracts` finds
them all without importing anything else of deptmesh, and looks services and
methods up among them only: a descriptor some other code put in the pool is
not a committed contract.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf.descriptor import FileDescriptor, MethodDescriptor, ServiceDescriptor

__all__ = ["Contracts", "MethodName", "parse_method_name"]

_VERSION_PACKAGE = re.compile(r"v\d+")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FULL_SERVICE = re.compile(rf"{_NAME}(?:\.{_NAME})+")
_METHOD = re.compile(_NAME)


@dataclass(frozen=True, slots=True)
class MethodName:
    """A method as the command line names it: its service's full name and its own name."""

    service: str
    method: str

    @property
    def path(self) -> str:
        """The HTTP/2 path gRPC calls it by: `/deptmesh.hr.v1.EmployeeService/GetEmployee`."""
        return f"/{self.service}/{self.method}"

    @property
    def full_name(self) -> str:
        return f"{self.service}.{self.method}"


def parse_method_name(text: str) -> MethodName:
    """`pkg.Service/Method`, `/pkg.Service/Method` or `pkg.Service.Method` (as grpcurl
    writes it); ValueError saying the expected form otherwise."""
    service, slash, method = text.removeprefix("/").partition("/")
    if not slash:
        service, _, method = text.rpartition(".")
    if not (_FULL_SERVICE.fullmatch(service) and _METHOD.fullmatch(method)):
        raise ValueError(
            f"{text!r} is not a method: write PACKAGE.SERVICE/METHOD, for example"
            " deptmesh.hr.v1.EmployeeService/GetEmployee"
        )
    return MethodName(service, method)


def _contract_module_names() -> Iterator[str]:
    """`deptmesh.<x>.v<N>.<y>_pb2` for every such module installed, without importing
    any package but `deptmesh` itself (a namespace)."""
    namespace = importlib.util.find_spec("deptmesh")
    if namespace is None or namespace.submodule_search_locations is None:
        return
    for department in pkgutil.iter_modules(namespace.submodule_search_locations):
        if not department.ispkg:
            continue
        found = importlib.util.find_spec(f"deptmesh.{department.name}")
        if found is None or found.submodule_search_locations is None:
            continue
        for version in pkgutil.iter_modules(found.submodule_search_locations):
            if not (version.ispkg and _VERSION_PACKAGE.fullmatch(version.name)):
                continue
            package = f"deptmesh.{department.name}.{version.name}"
            spec = importlib.util.find_spec(package)
            if spec is None or spec.submodule_search_locations is None:
                continue
            for module in pkgutil.iter_modules(spec.submodule_search_locations):
                if module.name.endswith("_pb2"):
                    yield f"{package}.{module.name}"


@dataclass(frozen=True)
class Contracts:
    """The committed contract files, and their services by full name."""

    files: tuple[FileDescriptor, ...]

    @classmethod
    def installed(cls) -> Contracts:
        """Every contract installed with deptmesh (or beside it, under `deptmesh.`)."""
        names = sorted(set(_contract_module_names()))
        return cls(tuple(importlib.import_module(name).DESCRIPTOR for name in names))

    def services(self) -> list[ServiceDescriptor]:
        return [
            service
            for file in self.files
            for service in sorted(file.services_by_name.values(), key=lambda s: s.full_name)
        ]

    def service(self, full_name: str) -> ServiceDescriptor | None:
        return next((s for s in self.services() if s.full_name == full_name), None)

    def method(self, name: MethodName) -> MethodDescriptor | None:
        service = self.service(name.service)
        return None if service is None else service.methods_by_name.get(name.method)

    def departments(self) -> list[str]:
        """The departments whose contracts define services (`hr`, `finance`, ...)."""
        return sorted({_department_of(service) for service in self.services()})

    def services_of(self, department: str) -> list[ServiceDescriptor]:
        """The services of `department`'s contract (`hr` -> deptmesh.hr.v1.EmployeeService)."""
        return [s for s in self.services() if _department_of(s) == department]


def _department_of(service: ServiceDescriptor) -> str:
    # deptmesh.<department>.v<N>.<Service>
    parts = service.full_name.split(".")
    return parts[1] if len(parts) > 3 and parts[0] == "deptmesh" else ""
