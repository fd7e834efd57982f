"""Server reflection on both servers answers what third-party tools ask, methods included."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.sidecar import Server
from tests.aio_servers import AioServerThread


@pytest.fixture(params=["sync", "aio"])
def reflection(request) -> Iterator[reflection_pb2_grpc.ServerReflectionStub]:
    """A plaintext hr server of each kind (no handler is called), and a reflection stub."""
    server = Server() if request.param == "sync" else AioServerThread()
    server.add_service(
        hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
        hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
        hr_pb2_grpc.EmployeeServiceServicer(),
    )
    port = server.start("127.0.0.1:0")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield reflection_pb2_grpc.ServerReflectionStub(channel)
    server.stop(0)


def file_containing(stub, symbol: str) -> reflection_pb2.ServerReflectionResponse:
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
    [response] = stub.ServerReflectionInfo(iter([request]), timeout=10)
    return response


class TestReflection:
    @pytest.mark.parametrize(
        "symbol",
        [
            "deptmesh.hr.v1.EmployeeService",
            "deptmesh.hr.v1.EmployeeService.GetEmployee",
            "deptmesh.hr.v1.Employee",
            "deptmesh.hr.v1.Employee.manager_id",
        ],
    )
    def test_the_file_of_a_service_method_message_or_field(self, reflection, symbol):
        """Each symbol is answered with hr.proto (a method too, which grpcio-reflection
        alone reports not found on protobuf's upb runtime)."""
        response = file_containing(reflection, symbol)
        assert response.WhichOneof("message_response") == "file_descriptor_response"
        files = response.file_descriptor_response.file_descriptor_proto
        assert hr_pb2.DESCRIPTOR.serialized_pb in files

    @pytest.mark.parametrize(
        "symbol", ["deptmesh.hr.v1.EmployeeService.FireEveryone", "deptmesh.hr.v1.Nothing.Get"]
    )
    def test_an_unknown_symbol_is_not_found(self, reflection, symbol):
        """A method the service lacks, or one of a service that does not exist: NOT_FOUND."""
        response = file_containing(reflection, symbol)
        assert response.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
