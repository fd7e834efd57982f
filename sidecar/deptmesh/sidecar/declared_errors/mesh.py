"""What any call may end with whatever its contract declares: the sidecar's own answers.

The server chain's stages refuse a call before its handler runs (identity,
deadline, authorization, quota: server/stages.py), the status mapping turns an
unexpected handler failure into INTERNAL, and the caller's side of the mesh ends
a call that never reached a server, or ran out of time, itself. Each refusing
stage's reason is here; tests/contracts/test_mesh_errors.py keeps it so.
"""

from __future__ import annotations

from deptmesh.common.v1.errors_pb2 import ErrorCase

__all__ = ["MESH_ERRORS"]

MESH_ERRORS: tuple[ErrorCase, ...] = (
    ErrorCase(
        code="UNAUTHENTICATED",
        meaning="The call came without a verified client certificate naming one service of"
        " the mesh's trust domain (identity/stage.py).",
        action="Call through the mesh with your department's own certificate"
        " (deptmesh.sidecar.connect); repeating will not help.",
    ),
    ErrorCase(
        code="PERMISSION_DENIED",
        reason="ACCESS_DENIED",
        meaning="The policy (intentions and method rules) does not let the caller call this"
        " method; the ErrorInfo names the rule that matched.",
        action="Ask the platform team to allow the call in the policy; repeating will not"
        " help until then.",
    ),
    ErrorCase(
        code="RESOURCE_EXHAUSTED",
        reason="QUOTA_EXCEEDED",
        meaning="The caller spent its tier's rate of calls to this service; QuotaFailure"
        " names the tier and RetryInfo when a token will be there.",
        action="Wait for the RetryInfo delay before calling again, or ask for a higher tier.",
    ),
    ErrorCase(
        code="RESOURCE_EXHAUSTED",
        reason="TOO_MANY_IN_FLIGHT",
        meaning="The caller already has as many calls running on this replica as its tier allows.",
        action="Wait for the RetryInfo delay, or for calls of yours to finish, before calling"
        " again.",
    ),
    ErrorCase(
        code="DEADLINE_EXCEEDED",
        reason="DEADLINE_PASSED",
        meaning="The call's deadline had passed before the service began its work, so"
        " nothing was done.",
        action="Repeat the call with a longer deadline.",
    ),
    ErrorCase(
        code="DEADLINE_EXCEEDED",
        meaning="The caller's deadline ran out while the call was on its way or running; it"
        " may or may not have taken effect.",
        action="Repeat an idempotent call with a longer deadline; check the state before"
        " repeating any other.",
    ),
    ErrorCase(
        code="UNAVAILABLE",
        meaning="No instance of the service could be reached (none registered, connection"
        " refused, or draining).",
        action="Repeat the call after a backoff; the sidecar's client repeats calls that"
        " never reached a server itself.",
    ),
    ErrorCase(
        code="INTERNAL",
        meaning="The service failed in a way it did not expect; the details stay in its logs.",
        action="Repeat later, and tell the service's team with the call's trace id if it persists.",
    ),
)
