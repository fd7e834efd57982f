"""Finance's database: budgets, the reservations held against them, payouts and the ledger.

Every operation that checks and then writes runs in one transaction, so two
concurrent copies of a request cannot both pass the check: one writes, the
other finds what the first wrote. Amounts are stored as an integer total of
nanos beside their currency code, never as a float.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import replace
from pathlib import Path

from deptmesh.services.database import Database
from deptmesh.services.finance.records import (
    Budget,
    LedgerEntry,
    NewPayout,
    NewReservation,
    Payout,
    Reservation,
    ReservationState,
    budget_from_row,
    ledger_entry_from_row,
    payout_from_row,
    reservation_from_row,
)
from deptmesh.services.money import Amount
from deptmesh.services.pagination import Page
from deptmesh.sidecar import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS budgets (
    cost_center_id TEXT PRIMARY KEY,
    currency TEXT NOT NULL,
    allocated_nanos INTEGER NOT NULL CHECK (allocated_nanos >= 0),
    reserved_nanos INTEGER NOT NULL DEFAULT 0 CHECK (reserved_nanos >= 0),
    spent_nanos INTEGER NOT NULL DEFAULT 0 CHECK (spent_nanos >= 0),
    CHECK (reserved_nanos + spent_nanos <= allocated_nanos)
);
CREATE TABLE IF NOT EXISTS reservations (
    reservation_id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_fingerprint TEXT NOT NULL,
    cost_center_id TEXT NOT NULL REFERENCES budgets (cost_center_id),
    currency TEXT NOT NULL,
    amount_nanos INTEGER NOT NULL CHECK (amount_nanos > 0),
    state TEXT NOT NULL CHECK (state IN ('active', 'released', 'consumed')),
    create_time_ns INTEGER NOT NULL,
    UNIQUE (caller, idempotency_key)
);
CREATE TABLE IF NOT EXISTS payouts (
    payout_id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_fingerprint TEXT NOT NULL,
    reservation_id TEXT NOT NULL UNIQUE REFERENCES reservations (reservation_id),
    cost_center_id TEXT NOT NULL REFERENCES budgets (cost_center_id),
    payee_employee_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_nanos INTEGER NOT NULL CHECK (amount_nanos > 0),
    memo TEXT NOT NULL,
    create_time_ns INTEGER NOT NULL,
    UNIQUE (caller, idempotency_key)
);
CREATE TABLE IF NOT EXISTS ledger_entries (
    entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
    payout_id TEXT NOT NULL UNIQUE REFERENCES payouts (payout_id),
    cost_center_id TEXT NOT NULL REFERENCES budgets (cost_center_id),
    payee_employee_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_nanos INTEGER NOT NULL CHECK (amount_nanos > 0),
    create_time_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_entries_by_cost_center
    ON ledger_entries (cost_center_id, entry_id);
"""

KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


def _refuse_other_request(row: sqlite3.Row, fingerprint: str) -> None:
    """A key stands for one request: the same key with a different request is refused."""
    if row["request_fingerprint"] != fingerprint:
        raise AlreadyExists(
            f"idempotency key {row['idempotency_key']!r} was used for a different request",
            reason=KEY_REUSED,
            metadata={"idempotency_key": row["idempotency_key"]},
        )


def _find_budget(tx: sqlite3.Connection, cost_center_id: str) -> Budget:
    row = tx.execute("SELECT * FROM budgets WHERE cost_center_id = ?", (cost_center_id,))
    found = row.fetchone()
    if found is None:
        raise NotFound(f"cost centre {cost_center_id} has no budget")
    return budget_from_row(found)


def _check_can_reserve(budget: Budget, amount: Amount) -> None:
    if amount.currency != budget.allocated.currency:
        raise InvalidArgument(
            [
                FieldViolation(
                    "amount.currency_code",
                    f"must be the budget's currency, {budget.allocated.currency}",
                )
            ]
        )
    if budget.available.nanos < amount.nanos:
        raise FailedPrecondition(
            f"cost centre {budget.cost_center_id} has {budget.available} available, not {amount}",
            reason="INSUFFICIENT_FUNDS",
            metadata={
                "cost_center_id": budget.cost_center_id,
                "available": str(budget.available),
                "requested": str(amount),
            },
        )


def _find_reservation(tx: sqlite3.Connection, reservation_id: str) -> Reservation:
    row = tx.execute("SELECT * FROM reservations WHERE reservation_id = ?", (reservation_id,))
    found = row.fetchone()
    if found is None:
        raise NotFound(f"reservation {reservation_id} not found")
    return reservation_from_row(found)


# Why a reservation that is no longer active can be neither paid from nor released.
_NOT_ACTIVE = {
    ReservationState.RELEASED: ("was released", "RESERVATION_RELEASED"),
    ReservationState.CONSUMED: ("was spent by a payout", "RESERVATION_CONSUMED"),
}


def _not_active(reservation: Reservation) -> FailedPrecondition:
    what, reason = _NOT_ACTIVE[reservation.state]
    return FailedPrecondition(
        f"reservation {reservation.reservation_id} {what}",
        reason=reason,
        metadata={"reservation_id": reservation.reservation_id},
    )


def _check_can_pay(reservation: Reservation, amount: Amount) -> None:
    if reservation.state is not ReservationState.ACTIVE:
        raise _not_active(reservation)
    if amount != reservation.amount:
        raise FailedPrecondition(
            f"reservation {reservation.reservation_id} holds {reservation.amount}, not {amount}",
            reason="AMOUNT_MISMATCH",
            metadata={
                "reservation_id": reservation.reservation_id,
                "reserved": str(reservation.amount),
                "requested": str(amount),
            },
        )


def _set_state(tx: sqlite3.Connection, reservation: Reservation, state: ReservationState) -> None:
    tx.execute(
        "UPDATE reservations SET state = ? WHERE reservation_id = ?",
        (state.value, reservation.reservation_id),
    )


def _insert_reservation(
    tx: sqlite3.Connection, request: NewReservation, reservation: Reservation
) -> None:
    tx.execute(
        "INSERT INTO reservations (reservation_id, caller, idempotency_key,"
        " request_fingerprint, cost_center_id, currency, amount_nanos, state, create_time_ns)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            reservation.reservation_id,
            request.caller,
            request.idempotency_key,
            request.fingerprint(),
            reservation.cost_center_id,
            reservation.amount.currency,
            reservation.amount.nanos,
            reservation.state.value,
            reservation.create_time_ns,
        ),
    )


def _insert_payout(tx: sqlite3.Connection, request: NewPayout, payout: Payout) -> None:
    tx.execute(
        "INSERT INTO payouts (payout_id, caller, idempotency_key, request_fingerprint,"
        " reservation_id, cost_center_id, payee_employee_id, currency, amount_nanos, memo,"
        " create_time_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            payout.payout_id,
            request.caller,
            request.idempotency_key,
            request.fingerprint(),
            payout.reservation_id,
            payout.cost_center_id,
            payout.payee_employee_id,
            payout.amount.currency,
            payout.amount.nanos,
            payout.memo,
            payout.create_time_ns,
        ),
    )


def _insert_ledger_entry(tx: sqlite3.Connection, payout: Payout) -> None:
    tx.execute(
        "INSERT INTO ledger_entries (payout_id, cost_center_id, payee_employee_id, currency,"
        " amount_nanos, create_time_ns) VALUES (?, ?, ?, ?, ?, ?)",
        (
            payout.payout_id,
            payout.cost_center_id,
            payout.payee_employee_id,
            payout.amount.currency,
            payout.amount.nanos,
            payout.create_time_ns,
        ),
    )


class FinanceStore:
    def __init__(self, path: str | Path) -> None:
        self._db = Database(path, SCHEMA)

    def close(self) -> None:
        self._db.close()

    def is_empty(self) -> bool:
        with self._db.transaction() as tx:
            return tx.execute("SELECT 1 FROM budgets LIMIT 1").fetchone() is None

    def add_budget(self, cost_center_id: str, allocated: Amount) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO budgets (cost_center_id, currency, allocated_nanos) VALUES (?, ?, ?)",
                (cost_center_id, allocated.currency, allocated.nanos),
            )

    def get_budget(self, cost_center_id: str) -> Budget | None:
        with self._db.transaction() as tx:
            row = tx.execute(
                "SELECT * FROM budgets WHERE cost_center_id = ?", (cost_center_id,)
            ).fetchone()
        return budget_from_row(row) if row else None

    def reserve(self, request: NewReservation) -> Reservation:
        """Holds the amount against the budget, or returns the reservation this key made."""
        with self._db.transaction() as tx:
            earlier = tx.execute(
                "SELECT * FROM reservations WHERE caller = ? AND idempotency_key = ?",
                (request.caller, request.idempotency_key),
            ).fetchone()
            if earlier is not None:
                _refuse_other_request(earlier, request.fingerprint())
                return reservation_from_row(earlier)
            budget = _find_budget(tx, request.cost_center_id)
            _check_can_reserve(budget, request.amount)
            reservation = Reservation(
                reservation_id=f"rsv_{uuid.uuid4().hex}",
                cost_center_id=budget.cost_center_id,
                amount=request.amount,
                state=ReservationState.ACTIVE,
                create_time_ns=time.time_ns(),
            )
            _insert_reservation(tx, request, reservation)
            tx.execute(
                "UPDATE budgets SET reserved_nanos = reserved_nanos + ? WHERE cost_center_id = ?",
                (reservation.amount.nanos, reservation.cost_center_id),
            )
            return reservation

    def release(self, reservation_id: str) -> Reservation:
        """Gives an active reservation back to its budget; a released one stays as it is."""
        with self._db.transaction() as tx:
            reservation = _find_reservation(tx, reservation_id)
            if reservation.state is ReservationState.CONSUMED:
                raise _not_active(reservation)
            if reservation.state is ReservationState.RELEASED:
                return reservation
            _set_state(tx, reservation, ReservationState.RELEASED)
            tx.execute(
                "UPDATE budgets SET reserved_nanos = reserved_nanos - ? WHERE cost_center_id = ?",
                (reservation.amount.nanos, reservation.cost_center_id),
            )
            return replace(reservation, state=ReservationState.RELEASED)

    def pay(self, request: NewPayout) -> Payout:
        """Spends the reservation and writes one ledger entry, or returns this key's payout."""
        with self._db.transaction() as tx:
            earlier = tx.execute(
                "SELECT * FROM payouts WHERE caller = ? AND idempotency_key = ?",
                (request.caller, request.idempotency_key),
            ).fetchone()
            if earlier is not None:
                _refuse_other_request(earlier, request.fingerprint())
                return payout_from_row(earlier)
            reservation = _find_reservation(tx, request.reservation_id)
            _check_can_pay(reservation, request.amount)
            payout = Payout(
                payout_id=f"pay_{uuid.uuid4().hex}",
                idempotency_key=request.idempotency_key,
                reservation_id=reservation.reservation_id,
                cost_center_id=reservation.cost_center_id,
                payee_employee_id=request.payee_employee_id,
                amount=reservation.amount,
                memo=request.memo,
                create_time_ns=time.time_ns(),
            )
            _insert_payout(tx, request, payout)
            _set_state(tx, reservation, ReservationState.CONSUMED)
            tx.execute(
                "UPDATE budgets SET reserved_nanos = reserved_nanos - ?,"
                " spent_nanos = spent_nanos + ? WHERE cost_center_id = ?",
                (payout.amount.nanos, payout.amount.nanos, payout.cost_center_id),
            )
            _insert_ledger_entry(tx, payout)
            return payout

    def get_payout(self, payout_id: str) -> Payout | None:
        with self._db.transaction() as tx:
            row = tx.execute("SELECT * FROM payouts WHERE payout_id = ?", (payout_id,)).fetchone()
        return payout_from_row(row) if row else None

    def list_ledger_entries(self, page: Page, cost_center_id: str) -> list[LedgerEntry]:
        """Up to page.size + 1 entries after page.after (the extra one says there is more)."""
        query = "SELECT * FROM ledger_entries WHERE entry_id > ?"
        params: list[object] = [page.after or 0]
        if cost_center_id:
            query += " AND cost_center_id = ?"
            params.append(cost_center_id)
        query += " ORDER BY entry_id LIMIT ?"
        params.append(page.size + 1)
        with self._db.transaction() as tx:
            return [ledger_entry_from_row(row) for row in tx.execute(query, params)]
