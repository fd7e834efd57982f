"""MESH_ERRORS lists what the sidecar itself answers on any call: each refusing stage of
the server chain, and the status mapping of an unexpected handler failure, is driven
to refuse here, and its (code, reason) must be one MESH_ERRORS declares.

The stages run directly, with a context saying what each needs (no certificate, no
time left), as in tests/unit/test_deadline_stage.py: a call refused for a missing
certificate or a passed deadline cannot be made on demand through a real server.
"""

from __future__ import annotations

import contextvars
import json

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from deptmesh.sidecar.authorization.policy import AccessPolicy, Intention, MethodRules
from deptmesh.sidecar.authorization.stage import AuthorizationStage
from deptmesh.sidecar.caller import CURRENT_CALLER, Caller
from deptmesh.sidecar.chain import Call, RpcMethod
from deptmesh.sidecar.chain.status_mapping import status_of_error
from deptmesh.sidecar.deadline import DeadlineStage
from deptmesh.sidecar.declared_errors import MESH_ERRORS
from deptmesh.sidecar.identity.stage import IdentityStage
from deptmesh.sidecar.quotas.policy import parse_quota_policy
from deptmesh.sidecar.quotas.stage import QuotaStage

GET_EMPLOYEE = RpcMethod(
    "/deptmesh.hr.v1.EmployeeService/GetEmployee",
    "deptmesh.hr.v1.EmployeeService",
    "GetEmployee",
    request_streaming=False,
    response_streaming=False,
)
CALLER = Caller("travel", "spiffe://deptmesh.test/ns/default/dc/dc1/svc/travel", "travel")
# What the caller's own side answers (grpc, the client channel), not a server stage.
FROM_THE_CALLERS_SIDE = {("UNAVAILABLE", ""), ("DEADLINE_EXCEEDED", "")}


class Context:
    """What the stages ask of a servicer context: no certificate, the time left given."""

    def __init__(self, time_remaining: float | None = None) -> None:
        self._time_remaining = time_remaining

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def time_remaining(self) -> float | None:
        return self._time_remaining

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def code(self) -> None:
        return None

    def set_trailing_metadata(self, trailing_metadata: object) -> None:
        return None


def new_call(time_remaining: float | None = None) -> Call:
    CURRENT_CALLER.set(CALLER)
    return Call(GET_EMPLOYEE, Context(time_remaining), None)


def case_of(refusal) -> tuple[str, str]:
    """The (code name, ErrorInfo reason) a refusal ends the call with; the caller it binds
    stays in a context of its own."""
    status = contextvars.copy_context().run(refusal)
    assert status is not None, "the stage let the call through"
    details = dict(status.trailing_metadata or ())
    reason = ""
    if "grpc-status-details-bin" in details:
        for detail in status_pb2.Status.FromString(details["grpc-status-details-bin"]).details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                reason = info.reason
    return status.code.name, reason


def quota_stage(**tier: float) -> QuotaStage:
    document = {"tiers": {"only": {"rate": 0.001, **tier}}, "default_tier": "only"}
    policy = parse_quota_policy(json.dumps(document))
    return QuotaStage("hr", lambda: policy, lambda: 1)


def identity_refusal() -> grpc.Status | None:
    return IdentityStage("deptmesh.test").start(new_call())


def deadline_refusal() -> grpc.Status | None:
    return DeadlineStage().start(new_call(time_remaining=-1.0))


def authorization_refusal() -> grpc.Status | None:
    policy = AccessPolicy([Intention("travel", "hr", "deny")], MethodRules({}))
    return AuthorizationStage("hr", lambda: policy).start(new_call())


def rate_refusal() -> grpc.Status | None:
    stage = quota_stage(burst=1, max_in_flight=10)
    first = new_call()
    assert stage.start(first) is None
    stage.finish(first)
    return stage.start(new_call())


def in_flight_refusal() -> grpc.Status | None:
    stage = quota_stage(burst=10, max_in_flight=1)
    assert stage.start(new_call()) is None  # still running
    return stage.start(new_call())


def handler_failure() -> grpc.Status | None:
    return status_of_error(new_call(), RuntimeError("a bug with secrets in its message"))


REFUSALS = {
    "identity": identity_refusal,
    "deadline": deadline_refusal,
    "authorization": authorization_refusal,
    "quota, rate": rate_refusal,
    "quota, in flight": in_flight_refusal,
    "status mapping": handler_failure,
}


class TestMeshErrors:
    @pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
    def test_each_refusing_stage_answers_a_declared_case(self, refusal):
        """The (code, reason) a stage refuses a call with is one MESH_ERRORS declares."""
        declared = {(case.code, case.reason) for case in MESH_ERRORS}
        assert case_of(refusal) in declared

    def test_every_declared_case_is_answered_by_a_stage_or_the_callers_side(self):
        """MESH_ERRORS declares nothing the sidecar never answers."""
        answered = {case_of(refusal) for refusal in REFUSALS.values()}
        declared = {(case.code, case.reason) for case in MESH_ERRORS}
        assert declared == answered | FROM_THE_CALLERS_SIDE

    def test_every_case_says_what_it_means_and_what_to_do(self):
        """Each mesh case has a meaning and an action, as contracts' cases do."""
        assert all(case.meaning and case.action for case in MESH_ERRORS)
