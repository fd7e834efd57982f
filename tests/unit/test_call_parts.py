"""The parts `deptmesh call` is made of: method names, the installed contracts, where the
Consul agent and token come from, and a failure explained."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from deptmesh.registry.local_mesh import write_local_mesh
from deptmesh.sidecar.cli.acting_as import consul_access
from deptmesh.sidecar.cli.details import explain_failure
from deptmesh.sidecar.contracts import Contracts, MethodName, parse_method_name
from deptmesh.sidecar.errors import FieldViolation, InvalidArgument, ServiceError
from tests.integration import streams


class TestMethodNames:
    @pytest.mark.parametrize(
        "text",
        [
            "deptmesh.hr.v1.EmployeeService/GetEmployee",
            "/deptmesh.hr.v1.EmployeeService/GetEmployee",
            "deptmesh.hr.v1.EmployeeService.GetEmployee",
        ],
    )
    def test_the_three_spellings_name_one_method(self, text):
        """Slash, leading slash (the HTTP/2 path) and grpcurl's dotted form."""
        name = parse_method_name(text)
        assert name == MethodName("deptmesh.hr.v1.EmployeeService", "GetEmployee")
        assert name.path == "/deptmesh.hr.v1.EmployeeService/GetEmployee"

    @pytest.mark.parametrize("text", ["GetEmployee", "hr/GetEmployee", "a.B/", "/a.B/C/D", ""])
    def test_anything_else_says_what_is_expected(self, text):
        """A name without a package-qualified service is refused with the expected form."""
        with pytest.raises(ValueError, match=r"write PACKAGE\.SERVICE/METHOD"):
            parse_method_name(text)


class TestContracts:
    def test_the_installed_contracts_are_found_without_importing_the_rest(self):
        """Every department's generated package is found, common/ included."""
        contracts = Contracts.installed()
        names = {file.name for file in contracts.files}
        assert {"deptmesh/hr/v1/hr.proto", "deptmesh/common/v1/money.proto"} <= names
        assert contracts.departments() == ["finance", "hr", "metering", "reimbursement", "travel"]
        method = contracts.method(parse_method_name("deptmesh.hr.v1.EmployeeService/GetEmployee"))
        assert method is not None
        assert method.input_type.full_name == "deptmesh.hr.v1.GetEmployeeRequest"

    def test_a_service_in_the_pool_that_is_no_contract_is_not_found(self):
        """The tests' Streams service is in the default pool, but no committed contract."""
        assert streams.DESCRIPTOR.full_name == "deptmesh.test.v1.Streams"
        contracts = Contracts.installed()
        assert contracts.service("deptmesh.test.v1.Streams") is None
        assert contracts.method(parse_method_name("deptmesh.test.v1.Streams/Echo")) is None


class TestConsulAccess:
    def test_an_explicit_address_then_the_environment_win(self, tmp_path):
        """--consul-address, then $CONSUL_HTTP_ADDR; the token stays the flag's or the
        environment's (None here)."""
        write_local_mesh(tmp_path, "127.0.0.1:1234")
        environ = {"DEPTMESH_DEV_DIR": str(tmp_path), "CONSUL_HTTP_ADDR": "10.0.0.1:8500"}
        access = consul_access("hr", "10.0.0.2:8500", None, environ)
        assert (access.address, access.token_file, access.local_mesh) == (
            "10.0.0.2:8500",
            None,
            None,
        )
        access = consul_access("hr", None, None, environ)
        assert (access.address, access.local_mesh) == ("10.0.0.1:8500", None)

    def test_the_local_mesh_gives_its_agent_and_the_identitys_token(self, tmp_path):
        """With no address given, the local mesh's agent and the token it made for the
        identity; a token file given still wins."""
        mesh = write_local_mesh(tmp_path, "127.0.0.1:1234")
        (mesh.tokens_directory / "hr.token").write_text("token\n")
        environ = {"DEPTMESH_DEV_DIR": str(tmp_path)}
        access = consul_access("hr", None, None, environ)
        assert access.address == "127.0.0.1:1234"
        assert access.token_file == mesh.tokens_directory / "hr.token"
        assert access.local_mesh == mesh
        given = tmp_path / "given.token"
        assert consul_access("hr", None, given, environ).token_file == given
        assert consul_access("payroll", None, None, environ).token_file is None

    def test_without_any_consul_is_asked_at_its_default_address(self, tmp_path):
        """No flag, no environment, no local mesh: 127.0.0.1:8500."""
        access = consul_access("hr", None, None, {"DEPTMESH_DEV_DIR": str(tmp_path / "none")})
        assert access.address == "127.0.0.1:8500"


class FailedCall(grpc.RpcError):
    """A failed call as grpc hands it over: code, details and trailers."""

    def __init__(self, status: grpc.Status) -> None:
        self._status = status

    def code(self) -> grpc.StatusCode:
        return self._status.code

    def details(self) -> str:
        return self._status.details

    def trailing_metadata(self):
        return self._status.trailing_metadata


class TestExplainFailure:
    def test_bad_request_lists_each_field(self):
        """One `field NAME: why` line per violation, under `CODE: message`."""
        error = InvalidArgument([FieldViolation("a", "is empty"), FieldViolation("b.c", "too big")])
        assert explain_failure(FailedCall(error.to_status())) == [
            "INVALID_ARGUMENT: invalid request: a, b.c",
            "  field a: is empty",
            "  field b.c: too big",
        ]

    def test_a_message_cannot_forge_a_line(self):
        """A newline in the server's message or a detail's text is printed as a space."""
        error = ServiceError("bad\nINTERNAL: forged", reason="R\nX", metadata={"k": "v\n w"})
        assert explain_failure(FailedCall(error.to_status())) == [
            "INTERNAL: bad INTERNAL: forged",
            "  reason R X (domain deptmesh)",
            "    k: v w",
        ]

    def test_a_detail_of_another_type_is_named(self):
        """A google.rpc detail without a decoder is shown by its type name."""

        class WithHelp(ServiceError):
            def detail_messages(self):
                return [error_details_pb2.Help()]

        assert explain_failure(FailedCall(WithHelp("see the docs").to_status())) == [
            "INTERNAL: see the docs",
            "  google.rpc.Help (not decoded)",
        ]
