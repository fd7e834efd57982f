"""deptmesh.finance.v1.BudgetService and PaymentService over FinanceStore."""

from __future__ import annotations

import grpc
from google.protobuf import timestamp_pb2

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.services.finance.records import (
    Budget,
    LedgerEntry,
    NewPayout,
    NewReservation,
    Payout,
    Reservation,
    ReservationState,
)
from deptmesh.services.finance.store import FinanceStore
from deptmesh.services.money import Amount, check_money
from deptmesh.services.pagination import Page, close_page, read_page
from deptmesh.services.validation import FieldViolations, require_identifier
from deptmesh.sidecar import NotFound, current_caller

MAX_MEMO_LENGTH = 500

_STATES = {
    ReservationState.ACTIVE: finance_pb2.RESERVATION_STATE_ACTIVE,
    ReservationState.RELEASED: finance_pb2.RESERVATION_STATE_RELEASED,
    ReservationState.CONSUMED: finance_pb2.RESERVATION_STATE_CONSUMED,
}


def timestamp_proto(unix_nanos: int) -> timestamp_pb2.Timestamp:
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromNanoseconds(unix_nanos)
    return timestamp


def budget_proto(budget: Budget) -> finance_pb2.Budget:
    return finance_pb2.Budget(
        cost_center_id=budget.cost_center_id,
        allocated=budget.allocated.to_proto(),
        reserved=budget.reserved.to_proto(),
        spent=budget.spent.to_proto(),
        available=budget.available.to_proto(),
    )


def reservation_proto(reservation: Reservation) -> finance_pb2.Reservation:
    return finance_pb2.Reservation(
        reservation_id=reservation.reservation_id,
        cost_center_id=reservation.cost_center_id,
        amount=reservation.amount.to_proto(),
        state=_STATES[reservation.state],
        create_time=timestamp_proto(reservation.create_time_ns),
    )


def payout_proto(payout: Payout) -> finance_pb2.Payout:
    return finance_pb2.Payout(
        payout_id=payout.payout_id,
        idempotency_key=payout.idempotency_key,
        reservation_id=payout.reservation_id,
        cost_center_id=payout.cost_center_id,
        payee_employee_id=payout.payee_employee_id,
        amount=payout.amount.to_proto(),
        memo=payout.memo,
        create_time=timestamp_proto(payout.create_time_ns),
    )


def ledger_entry_proto(entry: LedgerEntry) -> finance_pb2.LedgerEntry:
    return finance_pb2.LedgerEntry(
        entry_id=entry.entry_id,
        payout_id=entry.payout_id,
        cost_center_id=entry.cost_center_id,
        payee_employee_id=entry.payee_employee_id,
        amount=entry.amount.to_proto(),
        create_time=timestamp_proto(entry.create_time_ns),
    )


class BudgetServicer(finance_pb2_grpc.BudgetServiceServicer):
    def __init__(self, store: FinanceStore) -> None:
        self._store = store

    def GetBudget(
        self, request: finance_pb2.GetBudgetRequest, context: grpc.ServicerContext
    ) -> finance_pb2.GetBudgetResponse:
        require_identifier("cost_center_id", request.cost_center_id)
        budget = self._store.get_budget(request.cost_center_id)
        if budget is None:
            raise NotFound(f"cost centre {request.cost_center_id} has no budget")
        return finance_pb2.GetBudgetResponse(budget=budget_proto(budget))

    def ReserveFunds(
        self, request: finance_pb2.ReserveFundsRequest, context: grpc.ServicerContext
    ) -> finance_pb2.ReserveFundsResponse:
        violations = FieldViolations()
        violations.key("idempotency_key", request.idempotency_key)
        violations.identifier("cost_center_id", request.cost_center_id)
        check_money(violations, "amount", request.amount, present=request.HasField("amount"))
        violations.raise_if_any()
        # The store checks the currency against the budget's, in the same
        # transaction that reserves.
        reservation = self._store.reserve(
            NewReservation(
                caller=current_caller().service,
                idempotency_key=request.idempotency_key,
                cost_center_id=request.cost_center_id,
                amount=Amount.from_proto(request.amount),
            )
        )
        return finance_pb2.ReserveFundsResponse(reservation=reservation_proto(reservation))

    def ReleaseReservation(
        self, request: finance_pb2.ReleaseReservationRequest, context: grpc.ServicerContext
    ) -> finance_pb2.ReleaseReservationResponse:
        require_identifier("reservation_id", request.reservation_id)
        reservation = self._store.release(request.reservation_id)
        return finance_pb2.ReleaseReservationResponse(reservation=reservation_proto(reservation))


class PaymentServicer(finance_pb2_grpc.PaymentServiceServicer):
    def __init__(self, store: FinanceStore) -> None:
        self._store = store

    def Payout(
        self, request: finance_pb2.PayoutRequest, context: grpc.ServicerContext
    ) -> finance_pb2.PayoutResponse:
        violations = FieldViolations()
        violations.key("idempotency_key", request.idempotency_key)
        violations.identifier("reservation_id", request.reservation_id)
        violations.identifier("payee_employee_id", request.payee_employee_id)
        check_money(violations, "amount", request.amount, present=request.HasField("amount"))
        violations.text("memo", request.memo, max_length=MAX_MEMO_LENGTH, required=False)
        violations.raise_if_any()
        payout = self._store.pay(
            NewPayout(
                # Keys are scoped per caller: two services may pick the same key.
                caller=current_caller().service,
                idempotency_key=request.idempotency_key,
                reservation_id=request.reservation_id,
                payee_employee_id=request.payee_employee_id,
                amount=Amount.from_proto(request.amount),
                memo=request.memo,
            )
        )
        return finance_pb2.PayoutResponse(payout=payout_proto(payout))

    def GetPayout(
        self, request: finance_pb2.GetPayoutRequest, context: grpc.ServicerContext
    ) -> finance_pb2.GetPayoutResponse:
        require_identifier("payout_id", request.payout_id)
        payout = self._store.get_payout(request.payout_id)
        if payout is None:
            raise NotFound(f"payout {request.payout_id} not found")
        return finance_pb2.GetPayoutResponse(payout=payout_proto(payout))

    def ListLedgerEntries(
        self, request: finance_pb2.ListLedgerEntriesRequest, context: grpc.ServicerContext
    ) -> finance_pb2.ListLedgerEntriesResponse:
        violations = FieldViolations()
        violations.identifier("cost_center_id", request.cost_center_id, required=False)
        page = read_page(violations, request.page_size, request.page_token, request.cost_center_id)
        page = _entry_id_page(violations, page)
        violations.raise_if_any()
        entries, token = close_page(
            self._store.list_ledger_entries(page, request.cost_center_id),
            page,
            request.cost_center_id,
            key=lambda entry: entry.entry_id,
        )
        return finance_pb2.ListLedgerEntriesResponse(
            entries=[ledger_entry_proto(e) for e in entries], next_page_token=token
        )


def _entry_id_page(violations: FieldViolations, page: Page) -> Page:
    """The page, provided it starts after an entry id: ledger tokens only ever carry one."""
    if page.after is None or (isinstance(page.after, int) and not isinstance(page.after, bool)):
        return page
    violations.add("page_token", "not a token returned by this list with the same filter")
    return Page(page.size, None)
