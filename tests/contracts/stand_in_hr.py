"""Stand-in HR departments, for the two answers no real HR gives to a well-formed question.

The last resort of tests/contracts/error_scenarios.py, each hosted like any
department (the real host and sidecar in front of it); only GetEmployee's
handler is a stand-in:

- `refusing_hr`: reimbursement and travel check an employee id with the same
  rule HR does before they ask, so a real HR never calls their question
  malformed; this one answers INVALID_ARGUMENT to every question, as an HR
  with a stricter rule would.
- `holding_hr`: no real HR call lasts long enough for a test to keep one in
  flight (its reads wait for no lock), so this one holds every GetEmployee
  until `release()`. The refusal of the next call, TOO_MANY_IN_FLIGHT, is the
  real quota stage's.
"""

from __future__ import annotations

import threading

import grpc

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.services.hr.demo_data import EMPLOYEES
from deptmesh.services.hr.servicer import employee_proto
from deptmesh.sidecar import Closer, Department, FieldViolation, HostContext, InvalidArgument

__all__ = ["HoldingHr", "holding_hr", "refusing_hr"]

# How long a held call waits at most, so that a failed test never hangs on one.
_HOLD_AT_MOST_SECONDS = 60.0


class _RefusingEmployees(hr_pb2_grpc.EmployeeServiceServicer):
    def GetEmployee(
        self, request: hr_pb2.GetEmployeeRequest, context: grpc.ServicerContext
    ) -> hr_pb2.GetEmployeeResponse:
        raise InvalidArgument(
            [FieldViolation("employee_id", "not an id this HR knows how to read")]
        )


class HoldingHr(hr_pb2_grpc.EmployeeServiceServicer):
    """Answers GetEmployee with the demo CEO, once released; `held` is set by the first call."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def GetEmployee(
        self, request: hr_pb2.GetEmployeeRequest, context: grpc.ServicerContext
    ) -> hr_pb2.GetEmployeeResponse:
        self.held.set()
        self._released.wait(_HOLD_AT_MOST_SECONDS)
        return hr_pb2.GetEmployeeResponse(employee=employee_proto(EMPLOYEES[0]))


def _hr(servicer: hr_pb2_grpc.EmployeeServiceServicer) -> Department:
    def build(host: HostContext) -> Closer:
        host.server.add_service(
            hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
            hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
            servicer,
        )
        return lambda: None

    return Department(name="hr", contract_version="v1", build=build)


def refusing_hr() -> Department:
    """An "hr" department that answers every GetEmployee INVALID_ARGUMENT."""
    return _hr(_RefusingEmployees())


def holding_hr() -> tuple[Department, HoldingHr]:
    """An "hr" department whose GetEmployee calls wait for `release()`, and its handler."""
    servicer = HoldingHr()
    return _hr(servicer), servicer
