"""Runs the server chain around the handlers of a sync grpc server.

The four handler shapes are wrapped once per method and cached, not once per
call. The wrapper runs the stages, then the handler; what the handler raises
becomes a status (see status_mapping.py); the stages see the call end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc

from deptmesh.sidecar.chain._method_handlers import rewrap
from deptmesh.sidecar.chain.core import Call, Chain, RpcMethod, with_trailing
from deptmesh.sidecar.chain.status_mapping import status_of_error

__all__ = ["ChainInterceptor"]

Behavior = Callable[[Any, grpc.ServicerContext], Any]


def _fail(call: Call, context: grpc.ServicerContext, error: Exception) -> NoReturn:
    status = status_of_error(call, error)
    if status is None:
        raise error  # the handler's own context.abort(): grpc already has the status
    context.abort_with_status(with_trailing(status, call))
    raise AssertionError("unreachable: abort_with_status raises")


def _unary_response(chain: Chain, method: RpcMethod, behavior: Behavior) -> Behavior:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        # types-grpcio's ServicerContext lacks code(), which grpc has had since 1.38.
        call, refusal = chain.open(method, context, request)  # type: ignore[arg-type]
        if refusal is not None:
            context.abort_with_status(with_trailing(refusal, call))
        try:
            call.response = behavior(request, context)
            return call.response
        except Exception as error:  # noqa: BLE001 -- the boundary: nothing unexpected may leak
            _fail(call, context, error)
        finally:
            chain.finish(call)

    return handle


def _streaming_response(chain: Chain, method: RpcMethod, behavior: Behavior) -> Behavior:
    # grpc iterates the responses on the same worker thread after this returns,
    # so the stages run when iteration starts and finish when it ends.
    def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        # types-grpcio's ServicerContext lacks code(), which grpc has had since 1.38.
        call, refusal = chain.open(method, context, request)  # type: ignore[arg-type]
        if refusal is not None:
            context.abort_with_status(with_trailing(refusal, call))
        try:
            yield from behavior(request, context)
        except Exception as error:  # noqa: BLE001 -- the boundary, as above
            _fail(call, context, error)
        finally:
            chain.finish(call)

    return handle


class ChainInterceptor(grpc.ServerInterceptor):
    """Applies one chain to every method of a sync server."""

    def __init__(self, chain: Chain) -> None:
        self._chain = chain
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        self._lock = threading.Lock()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        path: str = handler_call_details.method
        wrapped = self._wrapped.get(path)
        if wrapped is not None:
            return wrapped
        handler = continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: grpc answers UNIMPLEMENTED
        wrapped = rewrap(path, handler, self._wrap)
        with self._lock:
            self._wrapped[path] = wrapped
        return wrapped

    def _wrap(self, method: RpcMethod, behavior: Behavior) -> Behavior:
        wrap = _streaming_response if method.response_streaming else _unary_response
        return wrap(self._chain, method, behavior)
