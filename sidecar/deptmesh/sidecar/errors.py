"""The one error tree of deptmesh, mapped to gRPC statuses at the boundary.

    ServiceError                  a failure a caller should see: a status code,
    │                             a message and google.rpc details
    ├── InvalidArgument           INVALID_ARGUMENT, BadRequest naming every bad field
    ├── NotFound                  NOT_FOUND
    ├── AlreadyExists             ALREADY_EXISTS, ErrorInfo
    ├── FailedPrecondition        FAILED_PRECONDITION, ErrorInfo
    ├── Unauthenticated           UNAUTHENTICATED
    │   └── IdentityError         a certificate or SPIFFE ID that names no acceptable
    │                             workload (also a ValueError)
    ├── PermissionDenied          PERMISSION_DENIED, ErrorInfo with the rule that matched
    ├── QuotaExceeded             RESOURCE_EXHAUSTED, QuotaFailure + RetryInfo + ErrorInfo
    ├── DeadlineExceeded          DEADLINE_EXCEEDED: the call's deadline passed before its
    │                             work was done, and nothing of it was committed
    └── Unavailable               UNAVAILABLE: retrying later may succeed
        ├── NoEndpoint            no usable instance of a service is known (also a
        │                         grpc.RpcError, raised where a call would have been)
        ├── ControlPlaneUnavailable   Consul could not be asked (from the registry's
        │                         RegistryUnavailable)
        ├── ControlPlaneRefused   Consul refused this process's token: none, unknown,
        │                         revoked or without the permission (from the
        │                         registry's RegistryRefused)
        └── TraceStoreError       the trace store is missing or cannot be read

A handler raises one of these; the server chain's status mapping turns it into
a status code with google.rpc details; the chain's own refusals are built from
the same classes, and the sidecar raises them to the code that uses it.
Anything else a handler raises becomes INTERNAL with no detail, so internals
never reach a caller. Errors of the layer below (deptmesh.registry) are mapped
into this tree where the sidecar meets them (`raise ... from error`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "AlreadyExists",
    "ControlPlaneRefused",
    "ControlPlaneUnavailable",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "IdentityError",
    "InvalidArgument",
    "NoEndpoint",
    "NotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "ServiceError",
    "TraceStoreError",
    "Unauthenticated",
    "Unavailable",
]

ERROR_DOMAIN = "deptmesh"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request: its path (for example `amount.nanos`) and why."""

    field: str
    description: str


class ServiceError(Exception):
    """A failure a caller should see, with a status code and a machine-readable reason."""

    status_code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(
        self, message: str, *, reason: str = "", metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})

    def detail_messages(self) -> list[Message]:
        """The google.rpc detail messages that explain this error."""
        if not self.reason:
            return []
        return [
            error_details_pb2.ErrorInfo(
                reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata
            )
        ]

    def to_status_proto(self) -> status_pb2.Status:
        packed = []
        for detail in self.detail_messages():
            container = any_pb2.Any()
            container.Pack(detail)
            packed.append(container)
        return status_pb2.Status(
            code=self.status_code.value[0], message=self.message, details=packed
        )

    def to_status(self) -> grpc.Status:
        """The status a call ends with for this error."""
        return rpc_status.to_status(self.to_status_proto())


class InvalidArgument(ServiceError):
    """The request is malformed; `violations` names every bad field."""

    status_code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: Iterable[FieldViolation]) -> None:
        self.violations = tuple(violations)
        fields = ", ".join(v.field for v in self.violations)
        super().__init__(f"invalid request: {fields}")

    def detail_messages(self) -> list[Message]:
        return [
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in self.violations
                ]
            )
        ]


class NotFound(ServiceError):
    """The named resource does not exist."""

    status_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ServiceError):
    """A resource with that key exists and differs from what was asked for."""

    status_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ServiceError):
    """The system is not in a state where the request can be carried out."""

    status_code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(ServiceError):
    """The caller is not who it must be: no verified certificate naming one of our services."""

    status_code = grpc.StatusCode.UNAUTHENTICATED


class IdentityError(Unauthenticated, ValueError):
    """A certificate or SPIFFE ID that does not name exactly one acceptable workload."""


class PermissionDenied(ServiceError):
    """The caller may not do this."""

    status_code = grpc.StatusCode.PERMISSION_DENIED


class QuotaExceeded(ServiceError):
    """The caller is over its quota: who (`subject`), which limit, and when to try again."""

    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(
        self,
        message: str,
        *,
        subject: str,
        limit: str,
        retry_after_seconds: float,
        reason: str,
        metadata: Mapping[str, str],
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.subject = subject
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds

    def detail_messages(self) -> list[Message]:
        retry = duration_pb2.Duration()
        retry.FromNanoseconds(max(1_000_000, int(self.retry_after_seconds * 1e9)))
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=self.subject, description=self.limit
        )
        return [
            error_details_pb2.QuotaFailure(violations=[violation]),
            error_details_pb2.RetryInfo(retry_delay=retry),
            *super().detail_messages(),
        ]


class DeadlineExceeded(ServiceError):
    """The call's deadline passed before its work was done; nothing of it was committed."""

    status_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unavailable(ServiceError):
    """A dependency could not be reached; retrying later may succeed."""

    status_code = grpc.StatusCode.UNAVAILABLE


class NoEndpoint(Unavailable, grpc.RpcError):
    """No usable instance of the service is known: raised where the call would have been.

    It is also a grpc.RpcError with code() and details(), so callers of a stub
    handle it as they handle any other UNAVAILABLE call.
    """

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return self.message

    def initial_metadata(self) -> tuple[()]:
        return ()

    def trailing_metadata(self) -> tuple[()]:
        return ()


class ControlPlaneUnavailable(Unavailable):
    """Consul, the control plane, could not be asked (unreachable, no leader, timed out)."""


class ControlPlaneRefused(Unavailable):
    """Consul, the control plane, refused what this process asked with its token: the
    token is missing, unknown or revoked, or lacks the permission. The message names
    what was refused, never the token; retrying helps only once the token is fixed."""


class TraceStoreError(Unavailable):
    """The trace store is missing or cannot be read."""
