"""The authorization stage of the server chain: the verified caller against the policy.

A denial is PERMISSION_DENIED with a google.rpc.ErrorInfo naming the caller,
the target and the rule that matched. The policy is read through a callable on
every call so that a watched policy (intentions, method rules) applies to
connections that are already open.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from deptmesh.sidecar.authorization.policy import AccessPolicy
from deptmesh.sidecar.caller import current_caller
from deptmesh.sidecar.chain.core import Call, Gate
from deptmesh.sidecar.errors import PermissionDenied

PolicySource = Callable[[], AccessPolicy]


class AuthorizationStage(Gate):
    def __init__(self, service: str, policy: PolicySource) -> None:
        self._service = service
        self._policy = policy

    def start(self, call: Call) -> grpc.Status | None:
        caller = current_caller()
        path = call.method.path
        decision = self._policy().decide(caller.service, self._service, path)
        return None if decision.allowed else self._denial(caller.spiffe_id, path, decision.rule)

    def _denial(self, caller: str, method: str, rule: str) -> grpc.Status:
        return PermissionDenied(
            f"{caller or 'caller'} may not call {method}: {rule}",
            reason="ACCESS_DENIED",
            metadata={"caller": caller, "target": f"{self._service}{method}", "rule": rule},
        ).to_status()
