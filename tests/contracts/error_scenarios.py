"""How to make each department's method answer each error case its contract declares.

SCENARIOS is the table: (method, code, reason) -> how to provoke it, in words
(`how`) and as a function that makes the call in one of the meshes of
company_meshes.py and lets its RpcError out. HR's, finance's and the ledger's
rows are in own_data_scenarios.py, reimbursement's and travel's in
passed_on_scenarios.py; the calls they make in scenario_calls.py.
"""

from __future__ import annotations

from tests.contracts.own_data_scenarios import OWN_DATA_SCENARIOS
from tests.contracts.passed_on_scenarios import PASSED_ON_SCENARIOS
from tests.contracts.scenario import Scenario

__all__ = ["SCENARIOS", "Scenario"]

SCENARIOS: tuple[Scenario, ...] = (*OWN_DATA_SCENARIOS, *PASSED_ON_SCENARIOS)
