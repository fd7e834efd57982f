"""The deadline stage: it publishes the inbound deadline, and refuses a call whose
deadline has passed before anything is decided for it or its handler runs.

A late call cannot be made to reach the handler through a real grpc server on
demand (grpc cancels a call whose caller gave up while the server is running;
the case is a process frozen between receiving the call and handling it), so
the stage runs here in a real chain, around a real metering stage, with a
context that says how much time is left.
"""

from __future__ import annotations

import contextvars

import grpc
import pytest

from deptmesh.sidecar.caller import CURRENT_CALLER, Caller
from deptmesh.sidecar.chain import Call, Chain, Gate, RpcMethod
from deptmesh.sidecar.deadline import DeadlineStage, remaining_seconds
from deptmesh.sidecar.metering import MeteringStage
from tests.rpc_errors import error_reason

PAYOUT = RpcMethod(
    "/deptmesh.finance.v1.PaymentService/Payout",
    "deptmesh.finance.v1.PaymentService",
    "Payout",
    request_streaming=False,
    response_streaming=False,
)
CALLER = Caller("reimbursement", "spiffe://td/ns/default/dc/dc1/svc/reimbursement", "r")


class Context:
    """What the stages ask a servicer context, with the time left the test says."""

    def __init__(self, time_remaining: float | None) -> None:
        self._time_remaining = time_remaining

    def time_remaining(self) -> float | None:
        return self._time_remaining

    def set_trailing_metadata(self, trailing_metadata: object) -> None:
        return None


class Decisions(Gate):
    """Stands in for the stages after the deadline (authorization, quota): records calls."""

    def __init__(self) -> None:
        self.started: list[Call] = []

    def start(self, call: Call) -> None:
        self.started.append(call)


def open_call(time_remaining: float | None):
    """Opens one call through metering, deadline, decisions; what each saw."""
    metering, decisions = MeteringStage("finance"), Decisions()
    chain = Chain([metering, DeadlineStage(), decisions])

    def run():
        CURRENT_CALLER.set(CALLER)
        call, refusal = chain.open(PAYOUT, Context(time_remaining), None)
        left = remaining_seconds()
        if refusal is None:
            chain.finish(call)
        return refusal, left

    refusal, left = contextvars.copy_context().run(run)
    return refusal, left, metering, decisions


class TestDeadlineStage:
    @pytest.mark.parametrize("time_remaining", [0.0, -4.5])
    def test_a_call_past_its_deadline_is_refused_before_anything_is_decided(self, time_remaining):
        """DEADLINE_EXCEEDED with ErrorInfo DEADLINE_PASSED; the stages after it never start."""
        refusal, _, _, decisions = open_call(time_remaining)
        assert refusal is not None
        assert refusal.code is grpc.StatusCode.DEADLINE_EXCEEDED
        assert error_reason(_AsCall(refusal)) == "DEADLINE_PASSED"
        assert decisions.started == []

    def test_a_refused_late_call_is_metered(self):
        """The stages before it (metering) see the late call end with DEADLINE_EXCEEDED."""
        _, _, metering, _ = open_call(-1.0)
        [record] = metering.snapshot()
        assert (record["caller"], record["status"], record["calls"]) == (
            "reimbursement",
            "DEADLINE_EXCEEDED",
            1,
        )

    def test_a_call_with_time_left_goes_on_and_publishes_its_deadline(self):
        """With 2 s left, the call reaches the next stage and outbound calls see ~2 s."""
        refusal, left, _, decisions = open_call(2.0)
        assert refusal is None
        assert len(decisions.started) == 1
        assert left is not None
        assert 1.9 < left <= 2.0

    @pytest.mark.parametrize("time_remaining", [None, 2.0**63])
    def test_a_call_without_a_deadline_goes_on_with_none(self, time_remaining):
        """No deadline (None, or grpc's 2**63 s) is not a passed one: the call goes on."""
        refusal, left, _, decisions = open_call(time_remaining)
        assert refusal is None
        assert left is None
        assert len(decisions.started) == 1


class _AsCall(grpc.RpcError):
    """A refusal as the failed call the caller sees: its code, details, trailing metadata."""

    def __init__(self, status: grpc.Status) -> None:
        self._status = status

    def code(self):
        return self._status.code

    def details(self):
        return self._status.details

    def trailing_metadata(self):
        return self._status.trailing_metadata
