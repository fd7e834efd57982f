"""Finance's records: budgets, reservations, payouts, ledger entries, and the requests
that make them, with their mapping from database rows."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum

from deptmesh.services.database import Row
from deptmesh.services.money import Amount


class ReservationState(StrEnum):
    ACTIVE = "active"
    RELEASED = "released"
    CONSUMED = "consumed"


@dataclass(frozen=True, slots=True)
class Budget:
    cost_center_id: str
    allocated: Amount
    reserved: Amount
    spent: Amount

    @property
    def available(self) -> Amount:
        left = self.allocated.nanos - self.reserved.nanos - self.spent.nanos
        return Amount(self.allocated.currency, left)


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: str
    cost_center_id: str
    amount: Amount
    state: ReservationState
    create_time_ns: int


@dataclass(frozen=True, slots=True)
class Payout:
    payout_id: str
    idempotency_key: str
    reservation_id: str
    cost_center_id: str
    payee_employee_id: str
    amount: Amount
    memo: str
    create_time_ns: int


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    entry_id: int
    payout_id: str
    cost_center_id: str
    payee_employee_id: str
    amount: Amount
    create_time_ns: int


def _fingerprint(*parts: str | int) -> str:
    # JSON keeps the parts apart, so ("a", "bc") and ("ab", "c") never collide.
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewReservation:
    """A ReserveFunds request: `caller` and `idempotency_key` together name it."""

    caller: str
    idempotency_key: str
    cost_center_id: str
    amount: Amount

    def fingerprint(self) -> str:
        return _fingerprint(self.cost_center_id, self.amount.currency, self.amount.nanos)


@dataclass(frozen=True, slots=True)
class NewPayout:
    """A Payout request: `caller` and `idempotency_key` together name it."""

    caller: str
    idempotency_key: str
    reservation_id: str
    payee_employee_id: str
    amount: Amount
    memo: str

    def fingerprint(self) -> str:
        return _fingerprint(
            self.reservation_id,
            self.payee_employee_id,
            self.amount.currency,
            self.amount.nanos,
            self.memo,
        )


def _amount(row: Row, column: str = "amount_nanos") -> Amount:
    return Amount(row["currency"], row[column])


def budget_from_row(row: Row) -> Budget:
    return Budget(
        cost_center_id=row["cost_center_id"],
        allocated=_amount(row, "allocated_nanos"),
        reserved=_amount(row, "reserved_nanos"),
        spent=_amount(row, "spent_nanos"),
    )


def reservation_from_row(row: Row) -> Reservation:
    return Reservation(
        reservation_id=row["reservation_id"],
        cost_center_id=row["cost_center_id"],
        amount=_amount(row),
        state=ReservationState(row["state"]),
        create_time_ns=row["create_time_ns"],
    )


def payout_from_row(row: Row) -> Payout:
    return Payout(
        payout_id=row["payout_id"],
        idempotency_key=row["idempotency_key"],
        reservation_id=row["reservation_id"],
        cost_center_id=row["cost_center_id"],
        payee_employee_id=row["payee_employee_id"],
        amount=_amount(row),
        memo=row["memo"],
        create_time_ns=row["create_time_ns"],
    )


def ledger_entry_from_row(row: Row) -> LedgerEntry:
    return LedgerEntry(
        entry_id=row["entry_id"],
        payout_id=row["payout_id"],
        cost_center_id=row["cost_center_id"],
        payee_employee_id=row["payee_employee_id"],
        amount=_amount(row),
        create_time_ns=row["create_time_ns"],
    )
