"""Runs the server chain around the handlers of a grpc.aio server.

The asyncio twin of _sync.py: the same stages and the same status mapping,
awaited handlers instead of called ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
import grpc.aio

from deptmesh.sidecar.chain._method_handlers import rewrap
from deptmesh.sidecar.chain.core import Call, Chain, RpcMethod, with_trailing
from deptmesh.sidecar.chain.status_mapping import status_of_error

__all__ = ["AioChainInterceptor"]

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]


async def _fail(
    call: Call, context: grpc.aio.ServicerContext[Any, Any], error: Exception
) -> NoReturn:
    status = status_of_error(call, error)
    if status is None:
        raise error  # the handler's own context.abort(): grpc already has the status
    await context.abort_with_status(with_trailing(status, call))


def _unary_response(chain: Chain, method: RpcMethod, behavior: Behavior) -> Behavior:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        call, refusal = chain.open(method, context, request)
        if refusal is not None:
            await context.abort_with_status(with_trailing(refusal, call))
        try:
            call.response = await behavior(request, context)
            return call.response
        except Exception as error:  # noqa: BLE001 -- the boundary: nothing unexpected may leak
            await _fail(call, context, error)
        finally:
            chain.finish(call)

    return handle


def _streaming_response(chain: Chain, method: RpcMethod, behavior: Behavior) -> Behavior:
    async def handle(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        call, refusal = chain.open(method, context, request)
        if refusal is not None:
            await context.abort_with_status(with_trailing(refusal, call))
        try:
            responses = behavior(request, context)
            if isinstance(responses, Awaitable):
                await responses  # a handler that writes with context.write()
            else:
                async for response in responses:
                    yield response
        except Exception as error:  # noqa: BLE001 -- the boundary, as above
            await _fail(call, context, error)
        finally:
            chain.finish(call)

    return handle


class AioChainInterceptor(grpc.aio.ServerInterceptor):
    """Applies one chain to every method of a grpc.aio server."""

    def __init__(self, chain: Chain) -> None:
        self._chain = chain
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        path: str = handler_call_details.method
        wrapped = self._wrapped.get(path)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: grpc answers UNIMPLEMENTED
        wrapped = rewrap(path, handler, self._wrap)
        self._wrapped[path] = wrapped  # one event loop: no lock needed
        return wrapped

    def _wrap(self, method: RpcMethod, behavior: Behavior) -> Behavior:
        wrap = _streaming_response if method.response_streaming else _unary_response
        return wrap(self._chain, method, behavior)
