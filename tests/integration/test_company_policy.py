"""The departments of these tests run with the company's access policy, as in production;
the development mode without a policy is the exception, asked for by name."""

from __future__ import annotations

import grpc
import pytest

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.services.finance.app import FINANCE
from deptmesh.services.hr.app import HR
from tests.rpc_errors import error_reason


def get_employee(channel: grpc.Channel) -> hr_pb2.GetEmployeeResponse:
    request = hr_pb2.GetEmployeeRequest(employee_id="E1000")
    return hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(request, timeout=5)


class TestCompanyPolicy:
    def test_caller_without_an_intention_is_denied(self, start_service):
        """A caller the company's intentions do not name is PERMISSION_DENIED by hr."""
        hr = start_service(HR, caller="stranger")
        with pytest.raises(grpc.RpcError) as caught:
            get_employee(hr.channel)
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(caught.value) == "ACCESS_DENIED"

    def test_method_rule_is_enforced(self, start_service):
        """hr may call finance, but only reimbursement may ask for a payout."""
        finance = start_service(FINANCE, caller="hr")
        budgets = finance_pb2_grpc.BudgetServiceStub(finance.channel)
        budgets.GetBudget(finance_pb2.GetBudgetRequest(cost_center_id="CC-ENG"), timeout=5)
        with pytest.raises(grpc.RpcError) as caught:
            finance_pb2_grpc.PaymentServiceStub(finance.channel).Payout(
                finance_pb2.PayoutRequest(), timeout=5
            )
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED

    def test_development_mode_serves_any_caller(self, start_service):
        """Without a policy (development only) hr answers a caller no intention names."""
        hr = start_service(HR, caller="stranger", policy=False)
        assert get_employee(hr.channel).employee.display_name == "Ada Lovelace"
