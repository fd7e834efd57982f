"""`deptmesh describe`: the committed contracts, with their comments and declared errors."""

from __future__ import annotations

import pytest

from deptmesh.sidecar.cli.command import main


def describe(capsys, target: str) -> tuple[int, list[str], str]:
    status = main(["describe", target])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


class TestDescribeService:
    @pytest.mark.parametrize("target", ["hr", "deptmesh.hr.v1.EmployeeService"])
    def test_a_service_shows_its_comment_and_each_method_with_its_codes(self, capsys, target):
        """By department or by full name: the service's comment, every method's signature
        and summary, and the status codes each declares (its own, then its service's)."""
        status, lines, _ = describe(capsys, target)
        assert status == 0
        assert lines[0] == "service deptmesh.hr.v1.EmployeeService  (deptmesh/hr/v1/hr.proto)"
        assert (
            "  Who works here, who reports to whom, and which cost centre pays for them." in lines
        )
        at = lines.index("  rpc GetEmployee(GetEmployeeRequest) returns (GetEmployeeResponse)")
        assert lines[at + 1 : at + 3] == [
            "    Returns one employee.",
            "    status codes: INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, DEADLINE_EXCEEDED",
        ]
        assert "  rpc ListEmployees(ListEmployeesRequest) returns (ListEmployeesResponse)" in lines

    def test_a_department_with_two_services_shows_both(self, capsys):
        """finance's contract has two services: both are described."""
        status, lines, _ = describe(capsys, "finance")
        assert status == 0
        services = [line.split()[1] for line in lines if line.startswith("service ")]
        assert services == [
            "deptmesh.finance.v1.BudgetService",
            "deptmesh.finance.v1.PaymentService",
        ]

    def test_an_unknown_service_is_one_line_naming_the_departments(self, capsys):
        """A name no contract has: exit 2, one line listing the departments there are."""
        status, lines, err = describe(capsys, "payroll")
        assert (status, lines) == (2, [])
        [line] = err.splitlines()
        assert "no contract of 'payroll'" in line
        assert "finance, hr, metering, reimbursement, travel" in line


class TestDescribeMethod:
    @pytest.mark.parametrize(
        "target",
        [
            "reimbursement/ApproveClaim",
            "deptmesh.reimbursement.v1.ReimbursementService/ApproveClaim",
            "deptmesh.reimbursement.v1.ReimbursementService.ApproveClaim",
        ],
    )
    def test_a_method_shows_fields_types_comments_and_declared_errors(self, capsys, target):
        """The request's and the response's fields with types and comments, the messages
        and enums they use, each declared error case with when and what to do, then the
        mesh's."""
        status, lines, _ = describe(capsys, target)
        assert status == 0
        assert lines[0] == "rpc deptmesh.reimbursement.v1.ReimbursementService/ApproveClaim"
        assert lines[1].startswith("  Approves a SUBMITTED claim and pays it.")
        assert "request deptmesh.reimbursement.v1.ApproveClaimRequest" in lines
        assert any(
            line.split()[:2] == ["approver_id", "string"] and "direct manager" in line
            for line in lines
        )
        assert "message deptmesh.reimbursement.v1.Claim" in lines
        assert any(line.split()[:2] == ["amount", "deptmesh.common.v1.Money"] for line in lines)
        assert any(line.split()[:2] == ["state", "ClaimState"] for line in lines)
        assert "enum deptmesh.reimbursement.v1.ClaimState" in lines
        assert "message deptmesh.common.v1.Money" in lines
        declared = lines.index("error cases the contract declares")
        mesh = lines.index("error cases of every call (the mesh)")
        at = lines.index("  PERMISSION_DENIED (reason NOT_THE_MANAGER)", declared, mesh)
        assert lines[at + 1] == (
            "    when: approver_id is not the direct manager of the claim's employee, as HR says."
        )
        assert lines[at + 2] == "    do:   Have the claimant's direct manager approve it."
        # the service's database cases, then every call's
        assert "  UNAVAILABLE (reason DATABASE_BUSY)" in lines[declared:mesh]
        assert "  PERMISSION_DENIED (reason ACCESS_DENIED)" in lines[mesh:]
        assert "  RESOURCE_EXHAUSTED (reason QUOTA_EXCEEDED)" in lines[mesh:]

    def test_options_the_contract_sets_are_shown(self, capsys):
        """Idempotency and quota cost, where the method sets them."""
        _, lines, _ = describe(capsys, "hr/ListEmployees")
        assert "  idempotency: NO_SIDE_EFFECTS (safe to retry)" in lines
        assert "  quota cost: 5 per call" in lines

    def test_map_and_repeated_fields_are_typed_as_in_the_proto(self, capsys):
        """A repeated message field reads `repeated Employee`."""
        _, lines, _ = describe(capsys, "hr/ListEmployees")
        assert any(line.split()[:3] == ["employees", "repeated", "Employee"] for line in lines)

    def test_an_unknown_method_is_one_line_listing_the_methods(self, capsys):
        """A method the service does not have: exit 2, one line with the ones it has."""
        status, lines, err = describe(capsys, "hr/FireEveryone")
        assert (status, lines) == (2, [])
        [line] = err.splitlines()
        assert "GetEmployee, ListEmployees, GetManagerChain, GetCostCenter" in line
