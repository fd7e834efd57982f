"""Rebuilds a grpc method handler around a new behavior, for the sync and aio chains.

Bytes that do not parse as the request message would make grpc answer before
our chain runs (INTERNAL on the sync server, UNKNOWN with the parser's message
on the asyncio one). Instead they reach the chain as a marker, so the caller is
identified and authorized first and then told INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from deptmesh.sidecar.chain.core import RpcMethod
from deptmesh.sidecar.errors import FieldViolation, InvalidArgument

__all__ = ["rewrap"]

# What a chain adapter makes of a method's behavior.
Wrap = Callable[[RpcMethod, Any], Any]

_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


_MALFORMED = object()


def _tolerant(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # noqa: BLE001 -- any parser failure means the same to the caller
            return _MALFORMED

    return deserialize


def _refusing_malformed(behavior: Any, message_name: str) -> Any:
    refusal = FieldViolation("request", f"not a valid {message_name} message")

    def checked(request: Any, context: Any) -> Any:
        if request is _MALFORMED:
            raise InvalidArgument([refusal])
        return behavior(request, context)

    return checked


def rewrap(
    path: str, handler: grpc.RpcMethodHandler[Any, Any], wrap: Wrap
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same method (shape, serializers), its behavior replaced by `wrap(method, behavior)`."""
    behavior = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )
    if behavior is None:
        raise ValueError(f"grpc method handler for {path} has no behavior")
    method = RpcMethod.from_path(path, handler)
    deserializer = handler.request_deserializer
    if deserializer is not None and not method.request_streaming:
        message = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
        behavior = _refusing_malformed(behavior, getattr(message, "full_name", "request"))
        deserializer = _tolerant(deserializer)
    return _FACTORIES[(method.request_streaming, method.response_streaming)](
        wrap(method, behavior),
        request_deserializer=deserializer,
        response_serializer=handler.response_serializer,
    )
