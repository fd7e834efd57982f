"""The client chain's decisions, called directly: the deadline a call gets, the endpoint
each attempt goes to, and when a failed attempt is repeated."""

from __future__ import annotations

import contextvars
import time

import grpc
import pytest

from deptmesh.hr.v1 import hr_pb2  # noqa: F401 -- registers hr's contract (idempotent methods)
from deptmesh.reimbursement.v1 import reimbursement_pb2  # noqa: F401 -- and a non-idempotent one
from deptmesh.sidecar.channel.balancer import Balancer
from deptmesh.sidecar.channel.client_chain import MAX_ATTEMPTS, ClientChain
from deptmesh.sidecar.deadline.budget import set_inbound_deadline
from deptmesh.sidecar.errors import QuotaExceeded

IDEMPOTENT = "/deptmesh.hr.v1.EmployeeService/GetEmployee"
NOT_IDEMPOTENT = "/deptmesh.reimbursement.v1.ReimbursementService/ApproveClaim"
REFUSED = "failed to connect to all addresses; last error: Connection refused"


class Closeable:
    """Stands in for a channel: the chain never calls through it."""

    def close(self) -> None:
        pass


class Listed:
    """An endpoint source that knows a fixed list of addresses."""

    def __init__(self, addresses):
        self._addresses = list(addresses)

    def subscribe(self, listener):
        return self._addresses

    def check(self):
        return None


class Failed(grpc.RpcError):
    """A failed attempt as grpc reports it: a code, details, trailing metadata."""

    def __init__(self, code, details="", trailing_metadata=()):
        super().__init__()
        self._code, self._details, self._trailing = code, details, tuple(trailing_metadata)

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailing


def throttled(retry_after_seconds: float) -> Failed:
    """What our quota stage answers: RESOURCE_EXHAUSTED with RetryInfo and ErrorInfo."""
    status = QuotaExceeded(
        "over quota",
        subject="reimbursement",
        limit="rate",
        retry_after_seconds=retry_after_seconds,
        reason="QUOTA_EXCEEDED",
        metadata={},
    ).to_status()
    return Failed(status.code, status.details, status.trailing_metadata)


def chain_over(*addresses: str, default_timeout: float = 5.0) -> ClientChain:
    return ClientChain(
        "hr",
        Listed(addresses),
        Balancer("hr", lambda address: Closeable()),
        default_timeout=default_timeout,
        tracing=None,
    )


def failed_attempt(method, error):
    """Starts a call, makes one attempt fail with `error`: (the pause, the call, the endpoint)."""
    call = method.start(None, ())
    endpoint = method.attempt(call)
    return method.after_failure(call, endpoint, error), call, endpoint


class TestDeadline:
    def test_a_call_without_timeout_gets_the_default(self):
        """With no timeout of its own, a call's deadline is the channel's default."""
        call = (
            chain_over("a:1", default_timeout=7.0).method(IDEMPOTENT, retries=True).start(None, ())
        )
        assert 6.9 < call.time_left() <= 7.0

    def test_the_callers_timeout_wins_when_shorter(self):
        """A timeout of the caller's own is kept."""
        method = chain_over("a:1", default_timeout=7.0).method(IDEMPOTENT, retries=True)
        assert method.start(2.0, ()).time_left() <= 2.0

    def test_the_inbound_deadline_caps_it(self):
        """Inside a call with 1 s left, an outbound call gets at most 1 s."""
        method = chain_over("a:1", default_timeout=7.0).method(IDEMPOTENT, retries=True)

        def inside_a_call():
            set_inbound_deadline(time.monotonic() + 1.0)
            return method.start(None, ())

        call = contextvars.copy_context().run(inside_a_call)
        assert 0 < call.time_left() <= 1.0


class TestRetryRules:
    def test_an_attempt_that_never_connected_is_repeated_and_its_endpoint_ejected(self):
        """A connection failure is repeated at once, even for a method not declared
        idempotent, and ejects the endpoint."""
        method = chain_over("a:1", "b:2").method(NOT_IDEMPOTENT, retries=True)
        pause, _, endpoint = failed_attempt(method, Failed(grpc.StatusCode.UNAVAILABLE, REFUSED))
        assert pause == 0.0
        assert endpoint.ejected_until > time.monotonic()

    def test_the_next_attempt_goes_to_an_endpoint_not_tried(self):
        """A repeated call prefers an endpoint it has not tried."""
        method = chain_over("a:1", "b:2").method(IDEMPOTENT, retries=True)
        _, call, first = failed_attempt(method, Failed(grpc.StatusCode.UNAVAILABLE, REFUSED))
        assert method.attempt(call).address != first.address

    def test_an_answered_unavailable_is_repeated_only_for_an_idempotent_method(self):
        """UNAVAILABLE from a server is repeated when the contract declares the method
        idempotent, and not otherwise."""
        answered = Failed(grpc.StatusCode.UNAVAILABLE, "overloaded")
        idempotent = chain_over("a:1").method(IDEMPOTENT, retries=True)
        not_idempotent = chain_over("a:1").method(NOT_IDEMPOTENT, retries=True)
        assert failed_attempt(idempotent, answered)[0] == 0.0
        assert failed_attempt(not_idempotent, answered)[0] is None

    @pytest.mark.parametrize(
        "code",
        [grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.NOT_FOUND],
    )
    def test_other_failures_are_not_repeated(self, code):
        """Only UNAVAILABLE and our quota's throttling are ever repeated."""
        method = chain_over("a:1").method(IDEMPOTENT, retries=True)
        assert failed_attempt(method, Failed(code, "no"))[0] is None

    def test_a_shape_attempted_once_is_never_repeated(self):
        """A stream or a future is not repeated, even after a connection failure."""
        method = chain_over("a:1", "b:2").method(IDEMPOTENT, retries=False)
        pause, _, endpoint = failed_attempt(method, Failed(grpc.StatusCode.UNAVAILABLE, REFUSED))
        assert pause is None
        assert endpoint.consecutive_failures == 1  # still ejected

    def test_attempts_stop_at_the_maximum(self):
        """A call is attempted at most MAX_ATTEMPTS times."""
        method = chain_over("a:1", "b:2").method(IDEMPOTENT, retries=True)
        call = method.start(None, ())
        failure = Failed(grpc.StatusCode.UNAVAILABLE, REFUSED)
        pauses = [
            method.after_failure(call, method.attempt(call), failure) for _ in range(MAX_ATTEMPTS)
        ]
        assert pauses == [0.0] * (MAX_ATTEMPTS - 1) + [None]

    def test_a_throttled_call_waits_for_its_retry_delay(self):
        """A call our quota stage throttled is repeated after the delay RetryInfo names."""
        method = chain_over("a:1").method(NOT_IDEMPOTENT, retries=True)
        assert failed_attempt(method, throttled(0.25))[0] == pytest.approx(0.25)

    def test_a_throttled_call_is_not_repeated_past_its_deadline(self):
        """When the retry delay outlasts the deadline, the throttling is the answer."""
        method = chain_over("a:1", default_timeout=0.1).method(IDEMPOTENT, retries=True)
        assert failed_attempt(method, throttled(0.5))[0] is None

    def test_an_exhausted_resource_without_our_retry_info_is_not_repeated(self):
        """RESOURCE_EXHAUSTED that is not our quota's says nothing about when to come back."""
        method = chain_over("a:1").method(IDEMPOTENT, retries=True)
        assert failed_attempt(method, Failed(grpc.StatusCode.RESOURCE_EXHAUSTED, "full"))[0] is None
