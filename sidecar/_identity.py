"""The identity stage of the server chain: binds the caller for the handler."""

from __future__ import annotations

from typing import Any

import grpc

from sidecar._handlers import Behavior, RpcMethod, call_with_var
from sidecar.caller import ANONYMOUS, CURRENT_CALLER


def bind_anonymous_caller(
    request: Any, context: grpc.ServicerContext, method: RpcMethod, call_next: Behavior
) -> Any:
    return call_with_var(CURRENT_CALLER, ANONYMOUS, request, context, method, call_next)
