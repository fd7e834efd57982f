"""The rules of the contracts' error declarations (deptmesh.sidecar.declared_errors.rules):
each fails on a contract that breaks it, naming the file, the method and what to fix."""

from __future__ import annotations

import pytest
from google.protobuf import text_format
from google.protobuf.descriptor_pb2 import FileDescriptorProto

from deptmesh.sidecar.declared_errors.rules import contract_problems

GOOD_CASE = 'code: "NOT_FOUND" meaning: "No employee has that id." action: "Check the id."'


def contract(*cases: str, service_cases: tuple[str, ...] = ()) -> FileDescriptorProto:
    """A one-method contract, deptmesh/hr/v1/bad.proto, declaring `cases` (ErrorCase text)."""
    method_options = "".join(f"[deptmesh.common.v1.errors] {{ {case} }} " for case in cases)
    service_options = "".join(
        f"[deptmesh.common.v1.service_errors] {{ {case} }} " for case in service_cases
    )
    return text_format.Parse(
        f"""
        name: "deptmesh/hr/v1/bad.proto" package: "deptmesh.hr.v1"
        service {{
          name: "EmployeeService" options {{ {service_options} }}
          method {{ name: "GetEmployee" input_type: ".x.In" output_type: ".x.Out"
                   options {{ {method_options} }} }}
        }}""",
        FileDescriptorProto(),
    )


def problems_of(file: FileDescriptorProto) -> list[str]:
    return contract_problems([file])


PREFIX = "protos/deptmesh/hr/v1/bad.proto: deptmesh.hr.v1.EmployeeService/GetEmployee: "


class TestErrorDeclarationRules:
    def test_a_well_formed_declaration_passes(self):
        """A known code, no reason where none is carried, a meaning and an action: no problem."""
        assert problems_of(contract(GOOD_CASE)) == []

    def test_an_rpc_without_a_case_fails(self):
        """Every RPC declares at least one case of its own; its service's do not count."""
        assert problems_of(contract(service_cases=(GOOD_CASE,))) == [
            PREFIX + "declares no error case: add a (deptmesh.common.v1.errors) option"
            " for each way it fails"
        ]

    def test_an_unknown_code_fails(self):
        """The code must be a gRPC status code's name, as grpc spells it."""
        [problem] = problems_of(contract(GOOD_CASE.replace("NOT_FOUND", "NOTFOUND")))
        assert problem.startswith(
            PREFIX + "error case 1 (NOTFOUND): code 'NOTFOUND' is not a gRPC status code name"
        )

    @pytest.mark.parametrize("reason", ["InsufficientFunds", "INSUFFICIENT-FUNDS", "_FUNDS"])
    def test_a_reason_not_in_upper_snake_case_fails(self, reason):
        """A reason is UPPER_SNAKE_CASE."""
        case = f'code: "FAILED_PRECONDITION" reason: "{reason}" meaning: "m." action: "a."'
        assert problems_of(contract(case)) == [
            PREFIX + f"error case 1 (FAILED_PRECONDITION {reason}): reason {reason!r} is not"
            " UPPER_SNAKE_CASE; spell it like INSUFFICIENT_FUNDS"
        ]

    @pytest.mark.parametrize(
        "code", ["ALREADY_EXISTS", "FAILED_PRECONDITION", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED"]
    )
    def test_a_code_that_carries_error_info_without_a_reason_fails(self, code):
        """The codes the error tree sends with an ErrorInfo must name its reason."""
        case = f'code: "{code}" meaning: "m." action: "a."'
        assert problems_of(contract(case)) == [
            PREFIX + f"error case 1 ({code}): {code} carries an ErrorInfo: give the reason it"
            " carries"
        ]

    def test_invalid_argument_with_a_reason_fails(self):
        """INVALID_ARGUMENT names its fields in a BadRequest: it has no reason."""
        case = 'code: "INVALID_ARGUMENT" reason: "BAD" meaning: "m." action: "a."'
        assert problems_of(contract(case)) == [
            PREFIX + "error case 1 (INVALID_ARGUMENT BAD): INVALID_ARGUMENT carries a"
            " BadRequest, not an ErrorInfo: remove the reason"
        ]

    def test_an_empty_meaning_or_action_fails(self):
        """Meaning and action each say something."""
        case = 'code: "NOT_FOUND" meaning: " " action: ""'
        assert problems_of(contract(case)) == [
            PREFIX + "error case 1 (NOT_FOUND): meaning is empty: say in one sentence when it"
            " happens",
            PREFIX + "error case 1 (NOT_FOUND): action is empty: say in one sentence what the"
            " caller should do",
        ]

    def test_a_case_declared_twice_for_one_method_fails(self):
        """One (code, reason) once per method, counting its service's cases."""
        assert problems_of(contract(GOOD_CASE, service_cases=(GOOD_CASE,))) == [
            PREFIX + "service error case 1 (NOT_FOUND): declared twice for this method: keep one"
        ]

    def test_a_case_the_mesh_declares_fails(self):
        """What the mesh answers on every call (MESH_ERRORS) is not repeated per method."""
        case = 'code: "PERMISSION_DENIED" reason: "ACCESS_DENIED" meaning: "m." action: "a."'
        assert problems_of(contract(GOOD_CASE, case)) == [
            PREFIX + "error case 2 (PERMISSION_DENIED ACCESS_DENIED): the mesh declares it for"
            " every call (MESH_ERRORS): remove it"
        ]
