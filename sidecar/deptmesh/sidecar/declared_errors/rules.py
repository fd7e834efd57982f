"""The rules every contract's error declarations keep, checked over its descriptors.

Each case names a gRPC status code and, in UPPER_SNAKE_CASE, the ErrorInfo
reason it carries: always for the codes our error tree sends with an ErrorInfo,
never for INVALID_ARGUMENT (which names its bad fields in a BadRequest). It
says when it happens and what to do, each in a sentence. A method declares each
(code, reason) once, counting its service's cases and the mesh's, and every
method declares at least one case of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import grpc
from google.protobuf.descriptor_pb2 import FileDescriptorProto, MethodDescriptorProto

from deptmesh.common.v1.errors_pb2 import ErrorCase, errors, service_errors
from deptmesh.sidecar.declared_errors.mesh import MESH_ERRORS

__all__ = ["REASON_REQUIRED", "contract_problems"]

_CODES = frozenset(code.name for code in grpc.StatusCode) - {"OK"}
# The codes deptmesh.sidecar.errors sends with an ErrorInfo, whose reason says why.
REASON_REQUIRED = frozenset(
    {"ALREADY_EXISTS", "FAILED_PRECONDITION", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED"}
)
_UPPER_SNAKE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
_MESH = {(case.code, case.reason) for case in MESH_ERRORS}


def _shown(case: ErrorCase) -> str:
    return case.code + (f" {case.reason}" if case.reason else "")


def _case_problems(case: ErrorCase) -> Iterator[str]:
    if case.code not in _CODES:
        yield (
            f"code {case.code!r} is not a gRPC status code name; use one of"
            f" {', '.join(sorted(_CODES))}"
        )
    if case.reason and not _UPPER_SNAKE.fullmatch(case.reason):
        yield f"reason {case.reason!r} is not UPPER_SNAKE_CASE; spell it like INSUFFICIENT_FUNDS"
    if not case.reason and case.code in REASON_REQUIRED:
        yield f"{case.code} carries an ErrorInfo: give the reason it carries"
    if case.reason and case.code == "INVALID_ARGUMENT":
        yield "INVALID_ARGUMENT carries a BadRequest, not an ErrorInfo: remove the reason"
    if not case.meaning.strip():
        yield "meaning is empty: say in one sentence when it happens"
    if not case.action.strip():
        yield "action is empty: say in one sentence what the caller should do"


def _method_problems(method: MethodDescriptorProto, shared: tuple[ErrorCase, ...]) -> Iterator[str]:
    own = tuple(method.options.Extensions[errors])
    if not own:
        yield (
            "declares no error case: add a (deptmesh.common.v1.errors) option for each way it fails"
        )
    seen: set[tuple[str, str]] = set()
    for number, case in enumerate((*own, *shared), start=1):
        where = (
            f"error case {number} ({_shown(case)})"
            if number <= len(own)
            else (f"service error case {number - len(own)} ({_shown(case)})")
        )
        for problem in _case_problems(case):
            yield f"{where}: {problem}"
        key = (case.code, case.reason)
        if key in seen:
            yield f"{where}: declared twice for this method: keep one"
        elif key in _MESH:
            yield f"{where}: the mesh declares it for every call (MESH_ERRORS): remove it"
        seen.add(key)


def contract_problems(files: Iterable[FileDescriptorProto], root: str = "protos") -> list[str]:
    """What is wrong with the error declarations of `files` (descriptors as buf or protoc
    build them), one line each: the file (under `root`), the method, what to fix."""
    problems: list[str] = []
    for file in files:
        for service in file.service:
            shared = tuple(service.options.Extensions[service_errors])
            for method in service.method:
                problems += (
                    f"{root}/{file.name}: {file.package}.{service.name}/{method.name}: {problem}"
                    for problem in _method_problems(method, shared)
                )
    return problems
