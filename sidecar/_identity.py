"""The identity stage of the server chain: binds the caller for the handler."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from sidecar._handlers import Behavior, RpcMethod
from sidecar.caller import ANONYMOUS, Caller, bind_caller, unbind_caller


def bind_anonymous_caller(
    request: Any, context: grpc.ServicerContext, method: RpcMethod, call_next: Behavior
) -> Any:
    if method.response_streaming:
        return _bound_stream(ANONYMOUS, request, context, call_next)
    token = bind_caller(ANONYMOUS)
    try:
        return call_next(request, context)
    finally:
        unbind_caller(token)


def _bound_stream(
    caller: Caller, request: Any, context: grpc.ServicerContext, call_next: Behavior
) -> Iterator[Any]:
    token = bind_caller(caller)
    try:
        yield from call_next(request, context)
    finally:
        unbind_caller(token)
