"""The authorization stage of the server chain: the verified caller against the policy.

A denial is PERMISSION_DENIED with a google.rpc.ErrorInfo naming the caller,
the target and the rule that matched. The policy is read through a callable on
every call so that a watched policy (intentions, method rules) applies to
connections that are already open.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from sidecar._chain import Call, Gate
from sidecar.authorization import AccessPolicy
from sidecar.caller import current_caller
from sidecar.errors import ERROR_DOMAIN

PolicySource = Callable[[], AccessPolicy]


class Authorize(Gate):
    def __init__(self, service: str, policy: PolicySource) -> None:
        self._service = service
        self._policy = policy

    def start(self, call: Call) -> grpc.Status | None:
        caller = current_caller()
        path = call.method.path
        decision = self._policy().decide(caller.service, self._service, path)
        return None if decision.allowed else self._denial(caller.spiffe_id, path, decision.rule)

    def _denial(self, caller: str, method: str, rule: str) -> grpc.Status:
        info = error_details_pb2.ErrorInfo(
            reason="ACCESS_DENIED",
            domain=ERROR_DOMAIN,
            metadata={"caller": caller, "target": f"{self._service}{method}", "rule": rule},
        )
        detail = any_pb2.Any()
        detail.Pack(info)
        return rpc_status.to_status(
            status_pb2.Status(
                code=grpc.StatusCode.PERMISSION_DENIED.value[0],
                message=f"{caller or 'caller'} may not call {method}: {rule}",
                details=[detail],
            )
        )
