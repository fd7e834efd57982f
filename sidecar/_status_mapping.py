"""Turns what a handler raises into a status a caller can act on.

ServiceError subclasses become their status code with google.rpc details.
Anything unexpected is logged here with its stack trace and reaches the caller
only as INTERNAL "internal error": no traceback, no message, no type name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn

import grpc
import structlog
from google.rpc import status_pb2
from grpc_status import rpc_status

from sidecar._handlers import Behavior, RpcMethod
from sidecar.errors import ServiceError

_log = structlog.get_logger("deptmesh.sidecar")
_INTERNAL = rpc_status.to_status(
    status_pb2.Status(code=grpc.StatusCode.INTERNAL.value[0], message="internal error")
)


def map_errors(
    request: Any, context: grpc.ServicerContext, method: RpcMethod, call_next: Behavior
) -> Any:
    if method.response_streaming:
        return _mapped_stream(request, context, method, call_next)
    try:
        return call_next(request, context)
    except ServiceError as error:
        _abort(context, error)
    except Exception as error:  # noqa: BLE001 -- the boundary: nothing unexpected may leak
        _fail_closed(context, method, error)


def _mapped_stream(
    request: Any, context: grpc.ServicerContext, method: RpcMethod, call_next: Behavior
) -> Iterator[Any]:
    try:
        yield from call_next(request, context)
    except ServiceError as error:
        _abort(context, error)
    except Exception as error:  # noqa: BLE001 -- the boundary, as above
        _fail_closed(context, method, error)


def _fail_closed(context: grpc.ServicerContext, method: RpcMethod, error: Exception) -> None:
    """Re-raises a deliberate context.abort(); hides anything else behind INTERNAL."""
    code = context.code()  # type: ignore[attr-defined]
    # grpc's abort() sets the code and raises a bare Exception(); any other
    # exception, even after set_code(), may carry internals in its message.
    aborted = type(error) is Exception and not error.args
    if aborted and code is not None and code is not grpc.StatusCode.OK:
        raise error
    # A generated base servicer's method the service did not implement.
    if isinstance(error, NotImplementedError) and code is grpc.StatusCode.UNIMPLEMENTED:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "method not implemented")
    _log.exception("handler_failed", method=method.path)
    context.abort_with_status(_INTERNAL)


def _abort(context: grpc.ServicerContext, error: ServiceError) -> NoReturn:
    context.abort_with_status(rpc_status.to_status(error.to_status_proto()))
    raise AssertionError("unreachable: abort_with_status raises")
