"""Wraps the four gRPC handler shapes once, so that concerns see one call shape.

A concern is a `Middleware`: it gets the request (or request iterator), the
servicer context, what is being called, and the next step; it returns the
response (or, for server streaming, an iterator of responses). The wrapped
handlers are built once per method and cached, not once per call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc

Behavior = Callable[[Any, grpc.ServicerContext], Any]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RpcMethod:
    """The method a call dispatched to, as grpc names it: `/pkg.Service/Method`."""

    path: str
    service: str
    name: str
    request_streaming: bool
    response_streaming: bool

    @classmethod
    def from_path(cls, path: str, handler: grpc.RpcMethodHandler[Any, Any]) -> RpcMethod:
        service, _, name = path.lstrip("/").partition("/")
        return cls(path, service, name, handler.request_streaming, handler.response_streaming)


class Middleware(Protocol):
    """One concern of the server chain."""

    def __call__(
        self, request: Any, context: grpc.ServicerContext, method: RpcMethod, call_next: Behavior
    ) -> Any: ...


def compose(middlewares: Sequence[Middleware], method: RpcMethod, behavior: Behavior) -> Behavior:
    """The behavior with every middleware around it, the first one outermost."""
    for middleware in reversed(middlewares):
        behavior = _bind(middleware, method, behavior)
    return behavior


def call_with_var(
    var: ContextVar[T],
    value: T,
    request: Any,
    context: grpc.ServicerContext,
    method: RpcMethod,
    call_next: Behavior,
) -> Any:
    """Runs the rest of the chain with `var` set to `value`, restored afterwards.

    A server-streaming handler runs while grpc iterates its responses, so the
    variable is set around the iteration rather than around the call.
    """
    if method.response_streaming:
        return _stream_with_var(var, value, request, context, call_next)
    token = var.set(value)
    try:
        return call_next(request, context)
    finally:
        var.reset(token)


def _stream_with_var(
    var: ContextVar[T], value: T, request: Any, context: grpc.ServicerContext, call_next: Behavior
) -> Iterator[Any]:
    token = var.set(value)
    try:
        yield from call_next(request, context)
    finally:
        var.reset(token)


def _bind(middleware: Middleware, method: RpcMethod, call_next: Behavior) -> Behavior:
    def step(request: Any, context: grpc.ServicerContext) -> Any:
        return middleware(request, context, method, call_next)

    return step


_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _original_behavior(handler: grpc.RpcMethodHandler[Any, Any]) -> Behavior:
    behavior = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )
    if behavior is None:
        raise ValueError("grpc method handler has no behavior")
    return behavior


class ChainInterceptor(grpc.ServerInterceptor):
    """Applies a fixed list of middlewares to every method of a server."""

    def __init__(self, middlewares: Sequence[Middleware]) -> None:
        self._middlewares = tuple(middlewares)
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
        wrapped = self._wrap(path, handler)
        with self._lock:
            self._wrapped[path] = wrapped
        return wrapped

    def _wrap(
        self, path: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = RpcMethod.from_path(path, handler)
        behavior = compose(self._middlewares, method, _original_behavior(handler))
        factory = _FACTORIES[(method.request_streaming, method.response_streaming)]
        return factory(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
