"""A failed call as a person reads it: the code, the message, and the google.rpc details.

Servers built on the sidecar explain a failure in google.rpc.Status details
(see deptmesh.sidecar.errors): BadRequest names every bad field, ErrorInfo a
machine-readable reason and its metadata, QuotaFailure the limit a caller hit,
RetryInfo when to try again. A detail of another type is shown by its type name.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = ["explain_failure"]


def _bad_request(detail: any_pb2.Any) -> list[str]:
    message = error_details_pb2.BadRequest()
    detail.Unpack(message)
    return [
        f"field {violation.field}: {violation.description}"
        for violation in message.field_violations
    ]


def _error_info(detail: any_pb2.Any) -> list[str]:
    message = error_details_pb2.ErrorInfo()
    detail.Unpack(message)
    domain = f" (domain {message.domain})" if message.domain else ""
    return [
        f"reason {message.reason}{domain}",
        *(f"  {key}: {message.metadata[key]}" for key in sorted(message.metadata)),
    ]


def _quota_failure(detail: any_pb2.Any) -> list[str]:
    message = error_details_pb2.QuotaFailure()
    detail.Unpack(message)
    return [
        f"quota of {violation.subject}: {violation.description}" for violation in message.violations
    ]


def _retry_info(detail: any_pb2.Any) -> list[str]:
    message = error_details_pb2.RetryInfo()
    detail.Unpack(message)
    seconds = message.retry_delay.ToNanoseconds() / 1e9
    return [f"retry after {seconds:.3g}s"]


_EXPLAINERS: dict[str, Callable[[any_pb2.Any], list[str]]] = {
    error_details_pb2.BadRequest.DESCRIPTOR.full_name: _bad_request,
    error_details_pb2.ErrorInfo.DESCRIPTOR.full_name: _error_info,
    error_details_pb2.QuotaFailure.DESCRIPTOR.full_name: _quota_failure,
    error_details_pb2.RetryInfo.DESCRIPTOR.full_name: _retry_info,
}


def _detail_lines(error: grpc.RpcError) -> list[str]:
    # A failure raised before any call was made (no endpoint, say) has no trailers.
    if not callable(getattr(error, "trailing_metadata", None)):
        return []
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:
        return ["(the status details do not match the status: not shown)"]
    if status is None:
        return []
    lines: list[str] = []
    for detail in status.details:
        type_name = detail.TypeName()
        explain = _EXPLAINERS.get(type_name)
        lines += [f"{type_name} (not decoded)"] if explain is None else explain(detail)
    return lines


def explain_failure(error: grpc.RpcError) -> list[str]:
    """`CODE: message`, then one indented line per decoded detail."""
    code: grpc.StatusCode = error.code()
    message: str | None = error.details()
    first = _one_line(f"{code.name}: {message or '(no message)'}")
    return [first, *(f"  {_one_line(line)}" for line in _detail_lines(error))]


def _one_line(text: str) -> str:
    """`text` with its indent kept and any other run of white space (a newline a server
    put in its message to forge a line of ours, say) made one space."""
    indent = text[: len(text) - len(text.lstrip(" "))]
    return indent + " ".join(text.split())
