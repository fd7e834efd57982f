"""Outbound calls always carry a deadline, and never one beyond the inbound call's."""

from __future__ import annotations

import grpc
import pytest

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.static import StaticRegistry
from deptmesh.sidecar.channel import client
from deptmesh.sidecar.host import instance_of
from tests.aio_servers import AioServerThread
from tests.integration.servers import serve_employee_service

# grpc converts deadlines between clocks with coarse granularity: the server can
# see a few milliseconds more than the client asked for.
SLACK = 0.1
# What a call may spend between the client and the handler on a loaded machine: a
# deadline the server sees is at most this much below the one the client set.
TRANSIT = 2.0


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


class AioForwarder(hr_pb2_grpc.EmployeeServiceServicer):
    """The same on a grpc.aio server, calling out through the asyncio service channel."""

    def __init__(self, cache: EndpointCache) -> None:
        self.channel = client.aio_connect("hr", cache, default_timeout=30)
        self._stub = hr_pb2_grpc.EmployeeServiceStub(self.channel)

    async def GetEmployee(self, request, context):
        return await self._stub.GetEmployee(request)


def serve_forwarder(flavour: str, hr_address: str):
    """A forwarder to hr on a sync or a grpc.aio server: its address, and how to stop it."""
    if flavour == "sync":
        server, address = serve_employee_service(Forwarder(hr_address))
        return address, lambda: server.stop(0)
    cache = EndpointCache(
        StaticRegistry([instance_of("hr", "127.0.0.1", int(hr_address.rpartition(":")[2]))])
    )
    forwarder = AioForwarder(cache)
    server = AioServerThread()
    server.add_service(
        hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
        hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
        forwarder,
    )
    port = server.start("127.0.0.1:0")

    def stop() -> None:
        server.run(forwarder.channel.close())
        server.stop(0)
        cache.close()

    return f"127.0.0.1:{port}", stop


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
        assert 7.0 - TRANSIT <= hr.remaining[0] <= 7.0 + SLACK

    def test_channel_default_is_five_seconds(self, recording_hr):
        """A channel made without a default_timeout sends calls with a 5 s deadline."""
        hr, address = recording_hr
        with client.dial(address) as channel:
            hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(hr_pb2.GetEmployeeRequest())
        assert 5.0 - TRANSIT <= hr.remaining[0] <= 5.0 + SLACK

    def test_explicit_timeout_wins_over_the_default(self, recording_hr):
        """A stub call's own timeout is kept when it is shorter than the default."""
        hr, address = recording_hr
        with client.dial(address, default_timeout=30.0) as channel:
            stub = hr_pb2_grpc.EmployeeServiceStub(channel)
            stub.GetEmployee(hr_pb2.GetEmployeeRequest(), timeout=2.0)
        assert 0 < hr.remaining[0] <= 2.0 + SLACK

    @pytest.mark.parametrize("flavour", ["sync", "aio"])
    def test_inbound_deadline_caps_outbound_calls(self, flavour, recording_hr):
        """A call made while handling a call with 1.5 s left gets at most 1.5 s, from a sync
        server through dial() and from a grpc.aio server through aio_connect()."""
        hr, hr_address = recording_hr
        forwarder_address, stop_forwarder = serve_forwarder(flavour, hr_address)
        try:
            with grpc.insecure_channel(forwarder_address) as channel:
                stub = hr_pb2_grpc.EmployeeServiceStub(channel)
                stub.GetEmployee(hr_pb2.GetEmployeeRequest(), timeout=1.5)
        finally:
            stop_forwarder()
        assert 0 < hr.remaining[0] <= 1.5 + SLACK

    def test_default_timeout_must_be_positive(self):
        """A channel without a usable default deadline is refused at construction."""
        with pytest.raises(ValueError, match="default_timeout"):
            client.dial("127.0.0.1:1", default_timeout=0)
