"""The server chain around handlers whose behaviour the tests control.

Every case runs on the sync server (deptmesh.sidecar.Server) and on the asyncio
one (deptmesh.sidecar.AioServer): one chain, two adapters.
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from structlog.testing import capture_logs

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.sidecar import Server
from deptmesh.sidecar.caller import ANONYMOUS, current_caller
from deptmesh.sidecar.errors import FieldViolation, InvalidArgument, NotFound
from tests.aio_servers import AioServerThread
from tests.rpc_errors import bad_request_fields, error_reason

TIMEOUT = 10.0
PROBE_SERVICE = "deptmesh.test.v1.Probe"


class ScriptedServicer(hr_pb2_grpc.EmployeeServiceServicer):
    """Each RPC does one thing a test needs; what the handler saw is recorded."""

    def __init__(self) -> None:
        self.callers: list[object] = []

    def GetEmployee(self, request, context):
        if request.employee_id == "crash":
            raise RuntimeError("secret internals")
        if request.employee_id == "set-code-then-crash":
            context.set_code(grpc.StatusCode.NOT_FOUND)
            raise KeyError("secret internals")
        if request.employee_id == "not-found":
            raise NotFound("employee not-found not found", reason="EMPLOYEE_UNKNOWN")
        if request.employee_id == "invalid":
            raise InvalidArgument([FieldViolation("employee_id", "bad")])
        self.callers.append(current_caller())
        return hr_pb2.GetEmployeeResponse(employee=hr_pb2.Employee(employee_id="E1"))

    def GetCostCenter(self, request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "no such cost centre")


class AsyncScriptedServicer(ScriptedServicer):
    """The same script for the asyncio server."""

    async def GetEmployee(self, request, context):  # type: ignore[override]
        return super().GetEmployee(request, context)

    async def GetCostCenter(self, request, context):  # type: ignore[override]
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such cost centre")


def _probe_descriptor():
    """A server-streaming service that exists only in this test."""
    file = descriptor_pb2.FileDescriptorProto(name="probe.proto", package="deptmesh.test.v1")
    file.message_type.add(name="Empty")
    service = file.service.add(name="Probe")
    service.method.add(
        name="Stream",
        input_type=".deptmesh.test.v1.Empty",
        output_type=".deptmesh.test.v1.Empty",
        server_streaming=True,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return pool.FindServiceByName(PROBE_SERVICE)


def _stream(request: bytes, context):
    """Yields the caller's service name, then fails the way the request says."""
    yield current_caller().service.encode()
    if request == b"crash":
        raise RuntimeError("secret internals")
    yield b"done"


async def _async_stream(request: bytes, context):
    for response in _stream(request, context):
        yield response


@pytest.fixture(params=["sync", "aio"])
def flavour(request) -> str:
    return request.param


@pytest.fixture
def servicer(flavour):
    return AsyncScriptedServicer() if flavour == "aio" else ScriptedServicer()


@pytest.fixture
def channel(flavour, servicer):
    aio = flavour == "aio"
    server = AioServerThread() if aio else Server(max_workers=4)
    server.add_service(
        hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
        hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
        servicer,
    )
    probe = grpc.method_handlers_generic_handler(
        PROBE_SERVICE,
        {"Stream": grpc.unary_stream_rpc_method_handler(_async_stream if aio else _stream)},
    )
    server.add_service(
        _probe_descriptor(),
        lambda handler, grpc_server: grpc_server.add_generic_rpc_handlers((handler,)),
        probe,
    )
    port = server.start("127.0.0.1:0")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    channel.close()
    server.stop(0)


@pytest.fixture
def stub(channel):
    return hr_pb2_grpc.EmployeeServiceStub(channel)


def _get_employee_error(stub, employee_id: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetEmployee(hr_pb2.GetEmployeeRequest(employee_id=employee_id), timeout=TIMEOUT)
    return raised.value


class TestStatusMapping:
    def test_unexpected_exception_is_internal_without_internals(self, stub):
        """An unexpected exception reaches the caller only as INTERNAL 'internal error'."""
        error = _get_employee_error(stub, "crash")

        assert error.code() is grpc.StatusCode.INTERNAL
        assert error.details() == "internal error"
        assert "secret" not in str(error.debug_error_string())
        assert "secret" not in repr(error.trailing_metadata())

    def test_unexpected_exception_is_logged(self, stub):
        """The hidden exception is logged on the server with its stack trace and method."""
        with capture_logs() as logs:
            _get_employee_error(stub, "crash")

        failures = [entry for entry in logs if entry["event"] == "handler_failed"]
        assert len(failures) == 1
        assert failures[0]["method"] == "/deptmesh.hr.v1.EmployeeService/GetEmployee"
        assert isinstance(failures[0]["exc_info"], RuntimeError)  # rendered as a traceback

    def test_unexpected_exception_after_set_code_leaks_nothing(self, stub):
        """A handler that set a code and then fails unexpectedly still leaks no exception text."""
        error = _get_employee_error(stub, "set-code-then-crash")

        assert "secret" not in (error.details() or "")
        assert error.code() is grpc.StatusCode.INTERNAL
        assert error.details() == "internal error"

    def test_abort_keeps_its_code(self, stub):
        """A handler's own context.abort() keeps its code and details."""
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetCostCenter(hr_pb2.GetCostCenterRequest(cost_center_id="X"), timeout=TIMEOUT)

        assert raised.value.code() is grpc.StatusCode.NOT_FOUND
        assert raised.value.details() == "no such cost centre"

    def test_service_error_becomes_its_status(self, stub):
        """A ServiceError becomes its status code, message and ErrorInfo reason."""
        error = _get_employee_error(stub, "not-found")

        assert error.code() is grpc.StatusCode.NOT_FOUND
        assert error.details() == "employee not-found not found"
        assert error_reason(error) == "EMPLOYEE_UNKNOWN"

    def test_invalid_argument_carries_bad_request(self, stub):
        """InvalidArgument becomes INVALID_ARGUMENT with a BadRequest naming the field."""
        error = _get_employee_error(stub, "invalid")

        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(error) == {"employee_id": "bad"}

    def test_streaming_failure_is_internal(self, channel):
        """A server stream that fails unexpectedly ends INTERNAL after what it already sent."""
        call = channel.unary_stream(f"/{PROBE_SERVICE}/Stream")(b"crash", timeout=TIMEOUT)
        received = []

        with pytest.raises(grpc.RpcError) as raised:
            received.extend(call)

        assert received == [b"anonymous"]
        assert raised.value.code() is grpc.StatusCode.INTERNAL
        assert raised.value.details() == "internal error"


class TestCurrentCaller:
    def test_anonymous_on_plaintext_server(self, stub, servicer):
        """Inside a handler on a plaintext server the caller is ANONYMOUS."""
        stub.GetEmployee(hr_pb2.GetEmployeeRequest(employee_id="E1"), timeout=TIMEOUT)

        assert servicer.callers == [ANONYMOUS]

    def test_anonymous_in_server_stream(self, channel):
        """A server-streaming handler sees the caller while its responses are produced."""
        responses = list(channel.unary_stream(f"/{PROBE_SERVICE}/Stream")(b"", timeout=TIMEOUT))

        assert responses == [b"anonymous", b"done"]

    def test_raises_outside_a_call(self, stub):
        """Outside a call, even after calls were handled, current_caller() raises RuntimeError."""
        stub.GetEmployee(hr_pb2.GetEmployeeRequest(employee_id="E1"), timeout=TIMEOUT)

        with pytest.raises(RuntimeError, match="only available while handling a call"):
            current_caller()


class TestRouting:
    @pytest.mark.parametrize(
        "method", ["/deptmesh.hr.v1.EmployeeService/FireEveryone", "/no.such.Service/Method"]
    )
    def test_unknown_method(self, channel, method):
        """A method the server does not have is UNIMPLEMENTED."""
        with pytest.raises(grpc.RpcError) as raised:
            channel.unary_unary(method)(b"", timeout=TIMEOUT)

        assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED

    def test_repeated_calls_use_the_chain_each_time(self, stub):
        """The cached wrapped handler maps errors on every call, not just the first."""
        for _ in range(3):
            assert _get_employee_error(stub, "crash").details() == "internal error"
