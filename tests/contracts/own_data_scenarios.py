"""The error scenarios of HR, finance and the usage ledger: answers about their own data."""

from __future__ import annotations

from deptmesh.finance.v1 import finance_pb2 as fin
from deptmesh.hr.v1 import hr_pb2 as hr
from deptmesh.metering.v1 import metering_pb2 as met
from tests.contracts.company_meshes import NO_BUDGET
from tests.contracts.scenario import BUDGETS, HR, LEDGER, PAYMENTS, Scenario
from tests.contracts.scenario_calls import (
    MALFORMED_ID,
    TIMEOUT,
    UNKNOWN_EMPLOYEE,
    budgets,
    employees,
    eur,
    fresh,
    last_week,
    ledger,
    pay,
    pay_a_released_reservation,
    pay_a_reservation_twice,
    pay_another_amount,
    pay_with_a_used_key,
    payments,
    release,
    release_a_spent_reservation,
    report,
    report_one_record_twice,
    reserve,
    reserve_twice_with_one_key,
    this_month,
    usage_record,
)

__all__ = ["OWN_DATA_SCENARIOS"]

OWN_DATA_SCENARIOS: tuple[Scenario, ...] = (
    # HR
    Scenario(
        HR + "GetEmployee",
        "INVALID_ARGUMENT",
        "",
        "a malformed id",
        lambda m: employees(m.healthy).GetEmployee(
            hr.GetEmployeeRequest(employee_id=MALFORMED_ID), timeout=TIMEOUT
        ),
    ),
    Scenario(
        HR + "GetEmployee",
        "NOT_FOUND",
        "",
        "an unknown id",
        lambda m: employees(m.healthy).GetEmployee(
            hr.GetEmployeeRequest(employee_id=UNKNOWN_EMPLOYEE), timeout=TIMEOUT
        ),
    ),
    Scenario(
        HR + "ListEmployees",
        "INVALID_ARGUMENT",
        "",
        "a negative page size",
        lambda m: employees(m.healthy).ListEmployees(
            hr.ListEmployeesRequest(page_size=-1), timeout=TIMEOUT
        ),
    ),
    Scenario(
        HR + "GetManagerChain",
        "INVALID_ARGUMENT",
        "",
        "an empty id",
        lambda m: employees(m.healthy).GetManagerChain(
            hr.GetManagerChainRequest(), timeout=TIMEOUT
        ),
    ),
    Scenario(
        HR + "GetManagerChain",
        "NOT_FOUND",
        "",
        "an unknown id",
        lambda m: employees(m.healthy).GetManagerChain(
            hr.GetManagerChainRequest(employee_id=UNKNOWN_EMPLOYEE), timeout=TIMEOUT
        ),
    ),
    Scenario(
        HR + "GetCostCenter",
        "INVALID_ARGUMENT",
        "",
        "an empty id",
        lambda m: employees(m.healthy).GetCostCenter(hr.GetCostCenterRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        HR + "GetCostCenter",
        "NOT_FOUND",
        "",
        "an unknown id",
        lambda m: employees(m.healthy).GetCostCenter(
            hr.GetCostCenterRequest(cost_center_id="CC-NONE"), timeout=TIMEOUT
        ),
    ),
    # finance: budgets
    Scenario(
        BUDGETS + "GetBudget",
        "INVALID_ARGUMENT",
        "",
        "an empty cost centre",
        lambda m: budgets(m.healthy).GetBudget(fin.GetBudgetRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        BUDGETS + "GetBudget",
        "NOT_FOUND",
        "",
        "a cost centre without a budget",
        lambda m: budgets(m.healthy).GetBudget(
            fin.GetBudgetRequest(cost_center_id=NO_BUDGET.cost_center_id), timeout=TIMEOUT
        ),
    ),
    Scenario(
        BUDGETS + "ReserveFunds",
        "INVALID_ARGUMENT",
        "",
        "an empty request",
        lambda m: budgets(m.healthy).ReserveFunds(fin.ReserveFundsRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        BUDGETS + "ReserveFunds",
        "NOT_FOUND",
        "",
        "a cost centre without a budget",
        lambda m: budgets(m.healthy).ReserveFunds(
            fin.ReserveFundsRequest(
                idempotency_key=fresh("key"),
                cost_center_id=NO_BUDGET.cost_center_id,
                amount=eur(1),
            ),
            timeout=TIMEOUT,
        ),
    ),
    Scenario(
        BUDGETS + "ReserveFunds",
        "FAILED_PRECONDITION",
        "INSUFFICIENT_FUNDS",
        "more than the whole budget",
        lambda m: reserve(m.healthy, eur(10_000_000)),
    ),
    Scenario(
        BUDGETS + "ReserveFunds",
        "ALREADY_EXISTS",
        "IDEMPOTENCY_KEY_REUSED",
        "one key, two amounts",
        reserve_twice_with_one_key,
    ),
    Scenario(
        BUDGETS + "ReleaseReservation",
        "INVALID_ARGUMENT",
        "",
        "an empty id",
        lambda m: release(m.healthy, ""),
    ),
    Scenario(
        BUDGETS + "ReleaseReservation",
        "NOT_FOUND",
        "",
        "an unknown id",
        lambda m: release(m.healthy, fresh("rsv")),
    ),
    Scenario(
        BUDGETS + "ReleaseReservation",
        "FAILED_PRECONDITION",
        "RESERVATION_CONSUMED",
        "a reservation paid out",
        release_a_spent_reservation,
    ),
    # finance: payments
    Scenario(
        PAYMENTS + "Payout",
        "INVALID_ARGUMENT",
        "",
        "an empty request",
        lambda m: payments(m.healthy).Payout(fin.PayoutRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        PAYMENTS + "Payout",
        "NOT_FOUND",
        "",
        "an unknown reservation",
        lambda m: pay(m.healthy, fresh("rsv"), eur(10)),
    ),
    Scenario(
        PAYMENTS + "Payout",
        "FAILED_PRECONDITION",
        "RESERVATION_RELEASED",
        "a released reservation",
        pay_a_released_reservation,
    ),
    Scenario(
        PAYMENTS + "Payout",
        "FAILED_PRECONDITION",
        "RESERVATION_CONSUMED",
        "a reservation paid under another key",
        pay_a_reservation_twice,
    ),
    Scenario(
        PAYMENTS + "Payout",
        "FAILED_PRECONDITION",
        "AMOUNT_MISMATCH",
        "an amount other than the reservation's",
        pay_another_amount,
    ),
    Scenario(
        PAYMENTS + "Payout",
        "ALREADY_EXISTS",
        "IDEMPOTENCY_KEY_REUSED",
        "one key, two memos",
        pay_with_a_used_key,
    ),
    Scenario(
        PAYMENTS + "GetPayout",
        "INVALID_ARGUMENT",
        "",
        "an empty id",
        lambda m: payments(m.healthy).GetPayout(fin.GetPayoutRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        PAYMENTS + "GetPayout",
        "NOT_FOUND",
        "",
        "an unknown id",
        lambda m: payments(m.healthy).GetPayout(
            fin.GetPayoutRequest(payout_id=fresh("pay")), timeout=TIMEOUT
        ),
    ),
    Scenario(
        PAYMENTS + "ListLedgerEntries",
        "INVALID_ARGUMENT",
        "",
        "a negative page size",
        lambda m: payments(m.healthy).ListLedgerEntries(
            fin.ListLedgerEntriesRequest(page_size=-1), timeout=TIMEOUT
        ),
    ),
    # metering
    Scenario(
        LEDGER + "ReportUsage",
        "INVALID_ARGUMENT",
        "",
        "a record without an id",
        lambda m: report(m, usage_record("", "hr")),
    ),
    Scenario(
        LEDGER + "ReportUsage",
        "PERMISSION_DENIED",
        "NOT_THE_CALLEE",
        "HR reports finance's usage",
        lambda m: report(m, usage_record(fresh("rec"), "finance")),
    ),
    Scenario(
        LEDGER + "ReportUsage",
        "ALREADY_EXISTS",
        "RECORD_ID_REUSED",
        "one record id, two counts",
        report_one_record_twice,
    ),
    Scenario(
        LEDGER + "QueryUsage",
        "INVALID_ARGUMENT",
        "",
        "an empty request",
        lambda m: ledger(m.healthy, "hr").QueryUsage(met.QueryUsageRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        LEDGER + "QueryUsage",
        "PERMISSION_DENIED",
        "NOT_YOUR_USAGE",
        "HR reads finance's usage",
        lambda m: ledger(m.healthy, "hr").QueryUsage(
            met.QueryUsageRequest(department="finance", start_time=last_week()), timeout=TIMEOUT
        ),
    ),
    Scenario(
        LEDGER + "GetStatement",
        "INVALID_ARGUMENT",
        "",
        "a month that is not YYYY-MM",
        lambda m: ledger(m.healthy, "hr").GetStatement(
            met.GetStatementRequest(department="hr", month="May"), timeout=TIMEOUT
        ),
    ),
    Scenario(
        LEDGER + "GetStatement",
        "PERMISSION_DENIED",
        "NOT_YOUR_USAGE",
        "HR reads finance's statement",
        lambda m: ledger(m.healthy, "hr").GetStatement(
            met.GetStatementRequest(department="finance", month=this_month()), timeout=TIMEOUT
        ),
    ),
    Scenario(
        LEDGER + "GetStatement",
        "FAILED_PRECONDITION",
        "NO_RATE_CARD",
        "a ledger with no rate card",
        lambda m: ledger(m.healthy, "hr").GetStatement(
            met.GetStatementRequest(department="hr", month=this_month()), timeout=TIMEOUT
        ),
    ),
)
