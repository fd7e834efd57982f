"""deptmesh.hr.v1.EmployeeService over HrStore."""

from __future__ import annotations

import grpc

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.services.hr.store import CostCenter, Employee, HrStore
from deptmesh.services.pagination import close_page, read_page
from deptmesh.services.validation import FieldViolations, require_identifier
from deptmesh.sidecar import NotFound


def employee_proto(employee: Employee) -> hr_pb2.Employee:
    return hr_pb2.Employee(
        employee_id=employee.employee_id,
        display_name=employee.display_name,
        email=employee.email,
        manager_id=employee.manager_id,
        cost_center_id=employee.cost_center_id,
        title=employee.title,
    )


def cost_center_proto(cost_center: CostCenter) -> hr_pb2.CostCenter:
    return hr_pb2.CostCenter(
        cost_center_id=cost_center.cost_center_id,
        name=cost_center.name,
        owner_id=cost_center.owner_id,
    )


class EmployeeServicer(hr_pb2_grpc.EmployeeServiceServicer):
    def __init__(self, store: HrStore) -> None:
        self._store = store

    def GetEmployee(
        self, request: hr_pb2.GetEmployeeRequest, context: grpc.ServicerContext
    ) -> hr_pb2.GetEmployeeResponse:
        employee = self._find_employee(request.employee_id)
        return hr_pb2.GetEmployeeResponse(employee=employee_proto(employee))

    def ListEmployees(
        self, request: hr_pb2.ListEmployeesRequest, context: grpc.ServicerContext
    ) -> hr_pb2.ListEmployeesResponse:
        violations = FieldViolations()
        violations.identifier("cost_center_id", request.cost_center_id, required=False)
        page = read_page(violations, request.page_size, request.page_token, request.cost_center_id)
        violations.raise_if_any()
        employees, token = close_page(
            self._store.list_employees(page, request.cost_center_id),
            page,
            request.cost_center_id,
            key=lambda employee: employee.employee_id,
        )
        return hr_pb2.ListEmployeesResponse(
            employees=[employee_proto(e) for e in employees], next_page_token=token
        )

    def GetManagerChain(
        self, request: hr_pb2.GetManagerChainRequest, context: grpc.ServicerContext
    ) -> hr_pb2.GetManagerChainResponse:
        employee = self._find_employee(request.employee_id)
        chain = self._store.manager_chain(employee)
        return hr_pb2.GetManagerChainResponse(managers=[employee_proto(m) for m in chain])

    def GetCostCenter(
        self, request: hr_pb2.GetCostCenterRequest, context: grpc.ServicerContext
    ) -> hr_pb2.GetCostCenterResponse:
        require_identifier("cost_center_id", request.cost_center_id)
        cost_center = self._store.get_cost_center(request.cost_center_id)
        if cost_center is None:
            raise NotFound(f"cost centre {request.cost_center_id} not found")
        return hr_pb2.GetCostCenterResponse(cost_center=cost_center_proto(cost_center))

    def _find_employee(self, employee_id: str) -> Employee:
        require_identifier("employee_id", employee_id)
        employee = self._store.get_employee(employee_id)
        if employee is None:
            raise NotFound(f"employee {employee_id} not found")
        return employee
