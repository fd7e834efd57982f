"""Every error case a method declares is answered by the real department, as declared.

For each method of each department's contract, every case of its own
`(deptmesh.common.v1.errors)` option has a scenario (tests/contracts/
error_scenarios.py: method, code, reason -> how to provoke it) that drives a
real server into answering it: the department's own servicer and store on a
temporary SQLite database, hosted by the sidecar host on port 0 with mTLS, in
a small mesh of real departments (company_meshes.py). Reasons reimbursement and
travel pass on come from real HR and finance servers in a state that produces
them, or whose sidecar is configured to refuse (a policy that denies, a spent
quota, a trust domain that is not the caller's); a stand-in HR answers the two
cases no real one can (stand_in_hr.py says which and why).

The test asserts the status code and the ErrorInfo reason exactly, and that
the scenarios of each method are exactly its declared cases: a new declaration
without a scenario fails, and so does a scenario for a case no longer declared.

Not here, as they are driven elsewhere: the cases of the services'
`service_errors` (the database layer's UNAVAILABLE and DEADLINE_EXCEEDED
reasons, which tests/unit/test_database.py provokes on both backends, and
tests/integration/test_department_databases.py through a department), and the
mesh's own (MESH_ERRORS, which tests/contracts/test_mesh_errors.py has each
refusing stage of the sidecar answer).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor

from deptmesh.common.v1 import errors_pb2
from deptmesh.finance.v1 import finance_pb2
from deptmesh.hr.v1 import hr_pb2
from deptmesh.metering.v1 import metering_pb2
from deptmesh.reimbursement.v1 import reimbursement_pb2
from deptmesh.sidecar.declared_errors import MESH_ERRORS, declared_errors
from deptmesh.travel.v1 import travel_pb2
from tests.contracts.company_meshes import Meshes
from tests.contracts.error_scenarios import SCENARIOS, Scenario
from tests.rpc_errors import error_reason

CONTRACTS = (hr_pb2, finance_pb2, reimbursement_pb2, travel_pb2, metering_pb2)
METHODS: dict[str, MethodDescriptor] = {
    method.full_name: method
    for contract in CONTRACTS
    for service in contract.DESCRIPTOR.services_by_name.values()
    for method in service.methods
}

Case = tuple[str, str]


def own_cases(method: MethodDescriptor) -> set[Case]:
    """The (code, reason) pairs of the method's own errors option."""
    return {(case.code, case.reason) for case in method.GetOptions().Extensions[errors_pb2.errors]}


def scenario_cases(method: str) -> list[Case]:
    return [(s.code, s.reason) for s in SCENARIOS if s.method == method]


@pytest.fixture(scope="module")
def meshes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Meshes]:
    started = Meshes(tmp_path_factory.mktemp("meshes"))
    try:
        yield started
    finally:
        started.close()


class TestScenarioTable:
    @pytest.mark.parametrize("method", sorted(METHODS))
    def test_each_declared_case_has_one_scenario(self, method):
        """The scenarios of a method are exactly the cases its errors option declares, once each."""
        declared = own_cases(METHODS[method])
        listed = scenario_cases(method)
        assert sorted(set(listed)) == sorted(listed), f"{method}: a case has two scenarios"
        assert set(listed) == declared, (
            f"{method}: declared without a scenario {sorted(declared - set(listed))}; scenario"
            f" for a case not declared {sorted(set(listed) - declared)}"
        )

    def test_every_scenario_names_a_method_of_a_contract(self):
        """A scenario for a method that no contract has (renamed, removed) is not silently kept."""
        assert {s.method for s in SCENARIOS} <= set(METHODS)


def _answer(scenario: Scenario, meshes: Meshes) -> grpc.RpcError:
    try:
        scenario.provoke(meshes)
    except grpc.RpcError as error:
        return error
    raise AssertionError(f"{scenario.method} succeeded; {scenario.how} should fail it")


def _declared_anywhere(method: MethodDescriptor) -> set[Case]:
    """Every case the method may answer: its own, its service's, and the mesh's."""
    return {(c.code, c.reason) for c in (*declared_errors(method), *MESH_ERRORS)}


class TestExercisedCodes:
    @pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
    def test_method_answers_the_declared_case(self, scenario, meshes):
        """The real department answers the scenario with exactly its declared code and reason."""
        error = _answer(scenario, meshes)
        answered = (error.code().name, error_reason(error))
        detail = f"{scenario.method}, {scenario.how}: answered {answered} ({error.details()})"
        assert answered in _declared_anywhere(METHODS[scenario.method]), (
            f"{detail}, which its contract does not declare"
        )
        assert answered == (scenario.code, scenario.reason), detail
