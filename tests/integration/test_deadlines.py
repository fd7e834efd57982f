"""Outbound calls always carry a deadline, and never one beyond the inbound call's."""

from __future__ import annotations

import grpc
import pytest

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.sidecar.channel import client
from tests.integration.servers import serve_employee_service

# grpc converts deadlines between clocks with coarse granularity: the server can
# see a few milliseconds more than the client asked for.
SLACK = 0.1


class RecordingHr(hr_pb2_grpc.EmployeeServiceServicer):
    """An HR stand-in that reports the time its caller left it, in seconds."""

    def __init__(self) -> None:
        self.remaining: list[float] = []

    def GetEmployee(self, request, context):
        self.remaining.append(context.time_remaining())
        return hr_pb2.GetEmployeeResponse()


class Forwarder(hr_pb2_grpc.EmployeeServiceServicer):
    """A service that handles each call by making one outbound call through the sidecar."""

    def __init__(self, target: str) -> None:
        self._stub = hr_pb2_grpc.EmployeeServiceStub(client.dial(target, default_timeout=30))

    def GetEmployee(self, request, context):
        return self._stub.GetEmployee(request)


@pytest.fixture
def recording_hr():
    hr = RecordingHr()
    server, address = serve_employee_service(hr)
    yield hr, address
    server.stop(0)


class TestOutboundDeadline:
    def test_call_without_timeout_gets_the_default(self, recording_hr):
        """A stub call with no timeout is sent with the channel's default deadline."""
        hr, address = recording_hr
        with client.dial(address, default_timeout=7.0) as channel:
            hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(hr_pb2.GetEmployeeRequest())
        assert 0 < hr.remaining[0] <= 7.0 + SLACK

    def test_explicit_timeout_wins_over_the_default(self, recording_hr):
        """A stub call's own timeout is kept when it is shorter than the default."""
        hr, address = recording_hr
        with client.dial(address, default_timeout=30.0) as channel:
            stub = hr_pb2_grpc.EmployeeServiceStub(channel)
            stub.GetEmployee(hr_pb2.GetEmployeeRequest(), timeout=2.0)
        assert 0 < hr.remaining[0] <= 2.0 + SLACK

    def test_inbound_deadline_caps_outbound_calls(self, recording_hr):
        """A call made while handling a call with 1.5 s left gets at most 1.5 s."""
        hr, hr_address = recording_hr
        forwarder, forwarder_address = serve_employee_service(Forwarder(hr_address))
        try:
            with grpc.insecure_channel(forwarder_address) as channel:
                stub = hr_pb2_grpc.EmployeeServiceStub(channel)
                stub.GetEmployee(hr_pb2.GetEmployeeRequest(), timeout=1.5)
        finally:
            forwarder.stop(0)
        assert 0 < hr.remaining[0] <= 1.5 + SLACK

    def test_default_timeout_must_be_positive(self):
        """A channel without a usable default deadline is refused at construction."""
        with pytest.raises(ValueError, match="default_timeout"):
            client.dial("127.0.0.1:1", default_timeout=0)
