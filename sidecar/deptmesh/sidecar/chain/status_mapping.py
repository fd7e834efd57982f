"""Turns what a handler raises into a status a caller can act on.

ServiceError subclasses become their status code with google.rpc details.
Anything unexpected is logged here with its stack trace and reaches the caller
only as INTERNAL "internal error": no traceback, no message, no type name.
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio
import structlog
from google.rpc import status_pb2
from grpc_status import rpc_status

from deptmesh.sidecar.chain.core import Call
from deptmesh.sidecar.errors import ServiceError

__all__ = ["status_of_error"]

_log = structlog.get_logger("deptmesh.sidecar")


def _status(code: grpc.StatusCode, message: str) -> grpc.Status:
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message))


_INTERNAL = _status(grpc.StatusCode.INTERNAL, "internal error")
_UNIMPLEMENTED = _status(grpc.StatusCode.UNIMPLEMENTED, "method not implemented")


def _is_deliberate_abort(error: Exception, context: Any) -> bool:
    """True for the exception grpc raises from context.abort(): the status is already set."""
    if isinstance(error, grpc.aio.AbortError):
        return True
    # The sync server's abort() sets the code and raises a bare Exception(); any
    # other exception, even after set_code(), may carry internals in its message.
    code = context.code()
    return type(error) is Exception and not error.args and code not in (None, grpc.StatusCode.OK)


def status_of_error(call: Call, error: Exception) -> grpc.Status | None:
    """The status to end the call with; None when the handler aborted it deliberately.

    Records the code on the call either way, for the stages that see it end.
    """
    context = call.context
    if isinstance(error, ServiceError):
        status = error.to_status()
    elif _is_deliberate_abort(error, context):
        call.code = context.code() or grpc.StatusCode.UNKNOWN
        return None
    elif isinstance(error, NotImplementedError) and context.code() is grpc.StatusCode.UNIMPLEMENTED:
        # A generated base servicer's method the service did not implement.
        status = _UNIMPLEMENTED
    else:
        _log.error("handler_failed", method=call.method.path, exc_info=error)
        status = _INTERNAL
    call.code = status.code
    return status
