"""The HR service end to end: its real server on port 0, called through the generated stubs."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.services.hr import demo_data
from deptmesh.services.hr.app import HR
from tests.rpc_errors import bad_request_fields

TIMEOUT = 10.0
SERVICE = "deptmesh.hr.v1.EmployeeService"


@pytest.fixture
def hr(start_service):
    return start_service(HR)


@pytest.fixture
def stub(hr):
    return hr_pb2_grpc.EmployeeServiceStub(hr.channel)


def _fails(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=TIMEOUT)
    return raised.value


class TestGetEmployee:
    def test_returns_employee(self, stub):
        """A known id returns the employee with every field."""
        response = stub.GetEmployee(hr_pb2.GetEmployeeRequest(employee_id="E1002"), timeout=TIMEOUT)

        assert response.employee == hr_pb2.Employee(
            employee_id="E1002",
            display_name="Alan Turing",
            email="alan@example.com",
            manager_id="E1001",
            cost_center_id="CC-ENG",
            title="Engineer",
        )

    @pytest.mark.parametrize("employee_id", ["", "E 1002", "../E1002", "-E1", "x" * 65])
    def test_invalid_id(self, stub, employee_id):
        """An empty or malformed id is INVALID_ARGUMENT naming employee_id."""
        error = _fails(stub.GetEmployee, hr_pb2.GetEmployeeRequest(employee_id=employee_id))

        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert list(bad_request_fields(error)) == ["employee_id"]

    def test_unknown_id(self, stub):
        """An unknown id is NOT_FOUND."""
        error = _fails(stub.GetEmployee, hr_pb2.GetEmployeeRequest(employee_id="E9999"))

        assert error.code() is grpc.StatusCode.NOT_FOUND
        assert "E9999" in error.details()


class TestGetManagerChain:
    def test_direct_manager_first(self, stub):
        """The chain starts with the direct manager and ends at the top of the company."""
        response = stub.GetManagerChain(
            hr_pb2.GetManagerChainRequest(employee_id="E1002"), timeout=TIMEOUT
        )

        assert [m.employee_id for m in response.managers] == ["E1001", "E1000"]
        assert response.managers[0].display_name == "Grace Hopper"

    def test_top_of_company(self, stub):
        """The top of the company has an empty chain."""
        response = stub.GetManagerChain(
            hr_pb2.GetManagerChainRequest(employee_id="E1000"), timeout=TIMEOUT
        )

        assert list(response.managers) == []

    @pytest.mark.parametrize("employee_id", ["", "E1002 "])
    def test_invalid_id(self, stub, employee_id):
        """An empty or malformed id is INVALID_ARGUMENT naming employee_id."""
        error = _fails(stub.GetManagerChain, hr_pb2.GetManagerChainRequest(employee_id=employee_id))

        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert list(bad_request_fields(error)) == ["employee_id"]

    def test_unknown_id(self, stub):
        """An unknown id is NOT_FOUND."""
        error = _fails(stub.GetManagerChain, hr_pb2.GetManagerChainRequest(employee_id="E9999"))

        assert error.code() is grpc.StatusCode.NOT_FOUND


class TestGetCostCenter:
    def test_returns_cost_center(self, stub):
        """A known id returns the cost centre with its owner."""
        response = stub.GetCostCenter(
            hr_pb2.GetCostCenterRequest(cost_center_id="CC-ENG"), timeout=TIMEOUT
        )

        assert response.cost_center == hr_pb2.CostCenter(
            cost_center_id="CC-ENG", name="Engineering", owner_id="E1001"
        )

    @pytest.mark.parametrize("cost_center_id", ["", "CC ENG", "CC/ENG"])
    def test_invalid_id(self, stub, cost_center_id):
        """An empty or malformed id is INVALID_ARGUMENT naming cost_center_id."""
        error = _fails(
            stub.GetCostCenter, hr_pb2.GetCostCenterRequest(cost_center_id=cost_center_id)
        )

        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert list(bad_request_fields(error)) == ["cost_center_id"]

    def test_unknown_id(self, stub):
        """An unknown id is NOT_FOUND."""
        error = _fails(stub.GetCostCenter, hr_pb2.GetCostCenterRequest(cost_center_id="CC-NOPE"))

        assert error.code() is grpc.StatusCode.NOT_FOUND


class TestListEmployees:
    def _walk(self, stub, page_size: int, cost_center_id: str = "") -> list[list[str]]:
        pages: list[list[str]] = []
        token = ""
        while True:
            response = stub.ListEmployees(
                hr_pb2.ListEmployeesRequest(
                    page_size=page_size, page_token=token, cost_center_id=cost_center_id
                ),
                timeout=TIMEOUT,
            )
            pages.append([e.employee_id for e in response.employees])
            token = response.next_page_token
            if not token:
                return pages
            assert len(pages) <= 10, "pagination does not end"

    def test_single_page(self, stub):
        """The default page holds every seeded employee in id order and no next token."""
        response = stub.ListEmployees(hr_pb2.ListEmployeesRequest(), timeout=TIMEOUT)

        assert [e.employee_id for e in response.employees] == [
            e.employee_id for e in demo_data.EMPLOYEES
        ]
        assert response.next_page_token == ""

    @pytest.mark.parametrize("page_size", [1, 2, 4, 5])
    def test_walks_all_pages(self, stub, page_size):
        """Following next_page_token returns every seeded employee exactly once, in order."""
        pages = self._walk(stub, page_size)

        ids = [employee_id for page in pages for employee_id in page]
        assert ids == sorted(e.employee_id for e in demo_data.EMPLOYEES)
        assert all(1 <= len(page) <= page_size for page in pages)

    def test_walks_filtered_pages(self, stub):
        """Pagination under a cost centre filter returns just that cost centre's employees."""
        pages = self._walk(stub, 2, "CC-ENG")

        assert pages == [["E1001", "E1002"], ["E1003"]]

    @pytest.mark.parametrize("token", ["garbage", "eyJhIjoxfQ", "!!!"])
    def test_bad_page_token(self, stub, token):
        """A token this service did not hand out is INVALID_ARGUMENT naming page_token."""
        error = _fails(stub.ListEmployees, hr_pb2.ListEmployeesRequest(page_token=token))

        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert list(bad_request_fields(error)) == ["page_token"]

    def test_token_from_another_filter(self, stub):
        """A token from an unfiltered listing is rejected under a cost centre filter."""
        first = stub.ListEmployees(hr_pb2.ListEmployeesRequest(page_size=1), timeout=TIMEOUT)

        error = _fails(
            stub.ListEmployees,
            hr_pb2.ListEmployeesRequest(
                page_size=1, page_token=first.next_page_token, cost_center_id="CC-ENG"
            ),
        )

        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert list(bad_request_fields(error)) == ["page_token"]

    def test_negative_page_size(self, stub):
        """A negative page size is INVALID_ARGUMENT naming page_size."""
        error = _fails(stub.ListEmployees, hr_pb2.ListEmployeesRequest(page_size=-1))

        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert list(bad_request_fields(error)) == ["page_size"]

    def test_malformed_cost_center_filter(self, stub):
        """A malformed cost centre filter is INVALID_ARGUMENT naming cost_center_id."""
        error = _fails(stub.ListEmployees, hr_pb2.ListEmployeesRequest(cost_center_id="CC ENG"))

        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert list(bad_request_fields(error)) == ["cost_center_id"]


class TestHealth:
    @pytest.mark.parametrize("service", ["", SERVICE])
    def test_serving(self, hr, service):
        """grpc.health.v1 reports SERVING for the server and for the HR service."""
        health = health_pb2_grpc.HealthStub(hr.channel)

        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)

        assert response.status == health_pb2.HealthCheckResponse.SERVING

    def test_unknown_service(self, hr):
        """A service the server does not run is NOT_FOUND."""
        health = health_pb2_grpc.HealthStub(hr.channel)

        with pytest.raises(grpc.RpcError) as raised:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=TIMEOUT)

        assert raised.value.code() is grpc.StatusCode.NOT_FOUND


class TestReflection:
    def test_lists_services(self, hr):
        """Server reflection lists the HR service alongside health and reflection."""
        reflection = reflection_pb2_grpc.ServerReflectionStub(hr.channel)

        responses = list(
            reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=TIMEOUT
            )
        )

        assert len(responses) == 1
        names = {s.name for s in responses[0].list_services_response.service}
        assert {SERVICE, "grpc.health.v1.Health"} <= names

    def test_describes_service(self, hr):
        """Reflection returns the file that defines the HR service."""
        reflection = reflection_pb2_grpc.ServerReflectionStub(hr.channel)

        (response,) = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE)]),
            timeout=TIMEOUT,
        )

        assert response.WhichOneof("message_response") == "file_descriptor_response"
        assert response.file_descriptor_response.file_descriptor_proto
