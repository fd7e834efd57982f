"""HR through its real gRPC server on port 0, plus health and reflection."""

from __future__ import annotations

import grpc
import pytest
from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.hr.app import build
from services.hr.demo_data import EMPLOYEES
from tests.rpc_errors import bad_request_fields, rpc_error


@pytest.fixture
def hr(start_service):
    return start_service("hr", build)


@pytest.fixture
def stub(hr):
    return hr_pb2_grpc.EmployeeServiceStub(hr.channel)


class TestEmployeeService:
    def test_get_employee(self, stub):
        """GetEmployee returns the stored employee."""
        reply = stub.GetEmployee(hr_pb2.GetEmployeeRequest(employee_id="E1002"), timeout=5)
        assert (reply.employee.display_name, reply.employee.manager_id) == ("Alan Turing", "E1001")

    def test_manager_chain_runs_to_the_top(self, stub):
        """GetManagerChain lists the direct manager first and the top of the company last."""
        reply = stub.GetManagerChain(hr_pb2.GetManagerChainRequest(employee_id="E1002"))
        assert [m.employee_id for m in reply.managers] == ["E1001", "E1000"]

    def test_cost_center(self, stub):
        """GetCostCenter returns the cost centre and its owner."""
        reply = stub.GetCostCenter(hr_pb2.GetCostCenterRequest(cost_center_id="CC-ENG"))
        assert reply.cost_center.owner_id == "E1001"

    def test_list_walks_every_employee_once(self, stub):
        """Paging through ListEmployees returns each employee exactly once, in id order."""
        seen, token = [], ""
        while True:
            reply = stub.ListEmployees(hr_pb2.ListEmployeesRequest(page_size=2, page_token=token))
            seen += [e.employee_id for e in reply.employees]
            token = reply.next_page_token
            if not token:
                break
        assert seen == sorted(e.employee_id for e in EMPLOYEES)

    @pytest.mark.parametrize(
        ("method", "request_", "field"),
        [
            ("GetEmployee", hr_pb2.GetEmployeeRequest(), "employee_id"),
            ("GetEmployee", hr_pb2.GetEmployeeRequest(employee_id="E 1"), "employee_id"),
            ("GetManagerChain", hr_pb2.GetManagerChainRequest(), "employee_id"),
            ("GetCostCenter", hr_pb2.GetCostCenterRequest(cost_center_id="x\n"), "cost_center_id"),
            ("ListEmployees", hr_pb2.ListEmployeesRequest(page_token="garbage"), "page_token"),
            ("ListEmployees", hr_pb2.ListEmployeesRequest(page_size=-1), "page_size"),
        ],
    )
    def test_bad_input_names_the_field(self, stub, method, request_, field):
        """Malformed requests are INVALID_ARGUMENT with a BadRequest naming the field."""
        error = rpc_error(getattr(stub, method), request_)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field in bad_request_fields(error)

    @pytest.mark.parametrize(
        ("method", "request_"),
        [
            ("GetEmployee", hr_pb2.GetEmployeeRequest(employee_id="E9999")),
            ("GetManagerChain", hr_pb2.GetManagerChainRequest(employee_id="E9999")),
            ("GetCostCenter", hr_pb2.GetCostCenterRequest(cost_center_id="CC-NONE")),
        ],
    )
    def test_unknown_ids_are_not_found(self, stub, method, request_):
        """Lookups of ids HR does not have are NOT_FOUND."""
        assert rpc_error(getattr(stub, method), request_).code() is grpc.StatusCode.NOT_FOUND


class TestServingInfrastructure:
    @pytest.mark.parametrize("service", ["", "deptmesh.hr.v1.EmployeeService"])
    def test_health_reports_serving(self, hr, service):
        """grpc.health.v1 reports SERVING for the server and for the service."""
        reply = health_pb2_grpc.HealthStub(hr.channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

    def test_reflection_lists_the_service(self, hr):
        """Server reflection lists the department's service, so grpcurl works."""
        stub = reflection_pb2_grpc.ServerReflectionStub(hr.channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [reply] = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
        names = {s.name for s in reply.list_services_response.service}
        assert "deptmesh.hr.v1.EmployeeService" in names
