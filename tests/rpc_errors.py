"""Reads the google.rpc details a failed call carries, for assertions."""

from __future__ import annotations

from typing import TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

T = TypeVar("T")


def _details(error: grpc.RpcError) -> list:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    return [] if status is None else list(status.details)


def bad_request_fields(error: grpc.RpcError) -> dict[str, str]:
    """field path -> description for every BadRequest violation of a failed call."""
    fields: dict[str, str] = {}
    for detail in _details(error):
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields.update({v.field: v.description for v in bad_request.field_violations})
    return fields


def error_reason(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of a failed call, or '' when it has none."""
    for detail in _details(error):
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def rpc_error(call, *args) -> grpc.RpcError:
    """The error a call fails with; fails the test if the call succeeds."""
    try:
        call(*args)
    except grpc.RpcError as error:
        return error
    raise AssertionError(f"{call} succeeded; expected an RpcError")


def detail_of(error: grpc.RpcError, message_type: type[T]) -> T | None:
    """The google.rpc detail of `message_type` a failed call carries, or None."""
    for detail in _details(error):
        if detail.Is(message_type.DESCRIPTOR):  # type: ignore[attr-defined]
            unpacked = message_type()
            detail.Unpack(unpacked)  # type: ignore[arg-type]
            return unpacked
    return None
