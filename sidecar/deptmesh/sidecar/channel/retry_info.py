"""Reads when a throttled call may be repeated, from the status details of the error."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from deptmesh.sidecar.errors import ERROR_DOMAIN

__all__ = ["quota_retry_delay"]

# The ErrorInfo reasons of the quota stage (quotas/stage.py): refused before the handler ran.
_QUOTA_REASONS = frozenset({"QUOTA_EXCEEDED", "TOO_MANY_IN_FLIGHT"})


def quota_retry_delay(error: grpc.RpcError) -> float | None:
    """Seconds the server's RetryInfo asks to wait, if our quota stage throttled the call."""
    if error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    info = error_details_pb2.ErrorInfo()
    retry = error_details_pb2.RetryInfo()
    ours = delay = None
    for detail in status.details:
        if detail.Unpack(info):
            ours = info.domain == ERROR_DOMAIN and info.reason in _QUOTA_REASONS
        elif detail.Unpack(retry):
            delay = retry.retry_delay.ToNanoseconds() / 1e9
    return delay if ours else None
