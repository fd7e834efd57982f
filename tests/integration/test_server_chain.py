"""The sidecar server chain around a handler: error mapping and the caller."""

from __future__ import annotations

import grpc
import pytest
from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc

from sidecar.caller import ANONYMOUS, current_caller
from tests.integration.servers import serve_employee_service


class ScriptedHr(hr_pb2_grpc.EmployeeServiceServicer):
    """Each RPC does one thing a real handler might do."""

    def __init__(self) -> None:
        self.callers = []

    def GetEmployee(self, request, context):
        raise RuntimeError("secret internals: password=hunter2")

    def GetCostCenter(self, request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "no such cost centre")

    def GetManagerChain(self, request, context):
        self.callers.append(current_caller())
        return hr_pb2.GetManagerChainResponse()


@pytest.fixture
def served():
    servicer = ScriptedHr()
    server, address = serve_employee_service(servicer)
    channel = grpc.insecure_channel(address)
    yield servicer, hr_pb2_grpc.EmployeeServiceStub(channel), channel
    channel.close()
    server.stop(0)


class TestStatusMapping:
    def test_unexpected_exception_is_internal_without_details(self, served):
        """A handler crash reaches the caller as INTERNAL 'internal error', nothing more."""
        _, stub, _ = served
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetEmployee(hr_pb2.GetEmployeeRequest(), timeout=5)
        assert caught.value.code() is grpc.StatusCode.INTERNAL
        assert caught.value.details() == "internal error"
        trailers = str(caught.value.trailing_metadata())
        assert "secret" not in trailers
        assert "Traceback" not in trailers

    def test_handler_abort_keeps_its_code(self, served):
        """A handler that aborts with a status keeps that status."""
        _, stub, _ = served
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetCostCenter(hr_pb2.GetCostCenterRequest(), timeout=5)
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND

    def test_unknown_method_is_unimplemented(self, served):
        """A method the server does not have is UNIMPLEMENTED."""
        _, _, channel = served
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary("/deptmesh.hr.v1.EmployeeService/Nope")(b"", timeout=5)
        assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED


class TestCurrentCaller:
    def test_plaintext_server_sees_the_anonymous_caller(self, served):
        """Without a certificate the handler's caller is ANONYMOUS, never a claimed identity."""
        servicer, stub, _ = served
        stub.GetManagerChain(
            hr_pb2.GetManagerChainRequest(), metadata=[("x-caller", "finance")], timeout=5
        )
        assert servicer.callers == [ANONYMOUS]

    def test_outside_a_call_it_raises(self):
        """current_caller() outside a call is a programming error, not an empty identity."""
        with pytest.raises(RuntimeError, match="only available"):
            current_caller()
