"""HR as travel uses it: is the traveller an employee, and which cost centre pays.

The one place travel calls another department. The channel is the one the
host opened (`host.connect("hr")`: found through the registry, over mTLS,
traced, with a deadline); HR's failures become travel's own errors here, so
the servicer never handles grpc errors.
"""

from __future__ import annotations

import grpc

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.sidecar import FailedPrecondition, Unavailable

# HR's answers that may change if travel's caller asks again later.
_LATER = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

# HR's refusals of the question itself, by the statuses HR's contract and the mesh
# declare without an ErrorInfo reason, and the reason travel says each with
# (literals: the contract tests read them). Any other status is not in HR's
# contract: it is taken as HR being unable to answer now.
_REFUSAL_REASONS = {
    grpc.StatusCode.INVALID_ARGUMENT: "HR_INVALID_ARGUMENT",
    grpc.StatusCode.PERMISSION_DENIED: "HR_PERMISSION_DENIED",
    grpc.StatusCode.UNAUTHENTICATED: "HR_UNAUTHENTICATED",
    grpc.StatusCode.INTERNAL: "HR_INTERNAL",
}


class Employees:
    def __init__(self, hr: grpc.Channel) -> None:
        """`hr` gives each call its deadline (host.connect's timeout, at most what is left
        of the inbound call's)."""
        self._employees = hr_pb2_grpc.EmployeeServiceStub(hr)

    def cost_center_of(self, employee_id: str) -> str:
        """The cost centre paying for `employee_id`.

        Raises FailedPrecondition (TRAVELLER_NOT_FOUND) when HR has no such
        employee, Unavailable when HR cannot answer now, FailedPrecondition
        (HR_<code>) when HR refuses to answer.
        """
        try:
            response = self._employees.GetEmployee(
                hr_pb2.GetEmployeeRequest(employee_id=employee_id)
            )
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            if code is grpc.StatusCode.NOT_FOUND:
                raise FailedPrecondition(
                    f"HR has no employee {employee_id}",
                    reason="TRAVELLER_NOT_FOUND",
                    metadata={"traveller_id": employee_id},
                ) from error
            refusal = _REFUSAL_REASONS.get(code)
            if code in _LATER or refusal is None:
                raise Unavailable(
                    f"hr could not answer ({code.name})",
                    reason="DEPENDENCY_UNAVAILABLE",
                    metadata={"department": "hr"},
                ) from error
            # HR refused the question itself (for example PERMISSION_DENIED when
            # the policy does not let travel ask): asking again will not help.
            raise FailedPrecondition(
                f"hr: {error.details() or code.name}",
                reason=refusal,
                metadata={"department": "hr"},
            ) from error
        return response.employee.cost_center_id
