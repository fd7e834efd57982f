"""Finance's database: budgets, the reservations held against them, payouts and the ledger.

SQLite (one file) or PostgreSQL (replicas on several hosts), with the same
guarantees: a reservation or payout happens once per (caller, idempotency key),
however many replicas receive copies of the request at once. Every operation
that checks and then writes runs in one transaction that first locks the row
it decides on (the budget, the reservation), so concurrent copies run one after
the other and the later one finds what the earlier one wrote; the unique
constraint on (caller, idempotency_key) settles the rest: the insert is
`ON CONFLICT DO NOTHING`, and a copy that lost reads the row that won. Amounts
are stored as an integer total of nanos beside their currency code, never as a
float.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import replace

from deptmesh.services.database import DatabaseTarget, Row, Schema, Transaction, open_database
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

_TABLES = """
CREATE TABLE IF NOT EXISTS budgets (
    cost_center_id TEXT PRIMARY KEY,
    currency TEXT NOT NULL,
    allocated_nanos BIGINT NOT NULL CHECK (allocated_nanos >= 0),
    reserved_nanos BIGINT NOT NULL DEFAULT 0 CHECK (reserved_nanos >= 0),
    spent_nanos BIGINT NOT NULL DEFAULT 0 CHECK (spent_nanos >= 0),
    CHECK (reserved_nanos + spent_nanos <= allocated_nanos)
);
CREATE TABLE IF NOT EXISTS reservations (
    reservation_id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_fingerprint TEXT NOT NULL,
    cost_center_id TEXT NOT NULL REFERENCES budgets (cost_center_id),
    currency TEXT NOT NULL,
    amount_nanos BIGINT NOT NULL CHECK (amount_nanos > 0),
    state TEXT NOT NULL CHECK (state IN ('active', 'released', 'consumed')),
    create_time_ns BIGINT NOT NULL,
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
    amount_nanos BIGINT NOT NULL CHECK (amount_nanos > 0),
    memo TEXT NOT NULL,
    create_time_ns BIGINT NOT NULL,
    UNIQUE (caller, idempotency_key)
);
CREATE TABLE IF NOT EXISTS ledger_entries (
    entry_id {auto_id},
    payout_id TEXT NOT NULL UNIQUE REFERENCES payouts (payout_id),
    cost_center_id TEXT NOT NULL REFERENCES budgets (cost_center_id),
    payee_employee_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_nanos BIGINT NOT NULL CHECK (amount_nanos > 0),
    create_time_ns BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_entries_by_cost_center
    ON ledger_entries (cost_center_id, entry_id);
"""

SCHEMA = Schema("finance", (_TABLES,))

KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


def _refuse_other_request(row: Row, fingerprint: str) -> None:
    """A key stands for one request: the same key with a different request is refused."""
    if row["request_fingerprint"] != fingerprint:
        raise AlreadyExists(
            f"idempotency key {row['idempotency_key']!r} was used for a different request",
            reason=KEY_REUSED,
            metadata={"idempotency_key": row["idempotency_key"]},
        )


def _earlier(tx: Transaction, table: str, request: NewReservation | NewPayout) -> Row | None:
    """The row this (caller, key) made in `table` before, if any; AlreadyExists when
    the key was used for a different request."""
    row = tx.fetch_one(
        f"SELECT * FROM {table} WHERE caller = ? AND idempotency_key = ?",
        (request.caller, request.idempotency_key),
    )
    if row is not None:
        _refuse_other_request(row, request.fingerprint())
    return row


def _winner(tx: Transaction, table: str, request: NewReservation | NewPayout) -> Row:
    """The row of a concurrent request under the same key that was inserted first."""
    row = _earlier(tx, table, request)
    if row is None:
        raise RuntimeError(f"{table}: a conflicting insert left no row for its key")
    return row


def _lock_budget(tx: Transaction, cost_center_id: str) -> Budget:
    found = tx.fetch_one(
        "SELECT * FROM budgets WHERE cost_center_id = ?", (cost_center_id,), for_update=True
    )
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


def _lock_reservation(tx: Transaction, reservation_id: str) -> Reservation:
    found = tx.fetch_one(
        "SELECT * FROM reservations WHERE reservation_id = ?", (reservation_id,), for_update=True
    )
    if found is None:
        raise NotFound(f"reservation {reservation_id} not found")
    return reservation_from_row(found)


# Why a reservation that is no longer active can be neither paid from nor released,
# and the reason that says so (literals: the contract tests read them).
_NOT_ACTIVE = {
    ReservationState.RELEASED: "was released",
    ReservationState.CONSUMED: "was spent by a payout",
}
_NOT_ACTIVE_REASONS = {
    ReservationState.RELEASED: "RESERVATION_RELEASED",
    ReservationState.CONSUMED: "RESERVATION_CONSUMED",
}


def _not_active(reservation: Reservation) -> FailedPrecondition:
    return FailedPrecondition(
        f"reservation {reservation.reservation_id} {_NOT_ACTIVE[reservation.state]}",
        reason=_NOT_ACTIVE_REASONS[reservation.state],
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


def _set_state(tx: Transaction, reservation: Reservation, state: ReservationState) -> None:
    tx.execute(
        "UPDATE reservations SET state = ? WHERE reservation_id = ?",
        (state.value, reservation.reservation_id),
    )


def _insert_reservation(tx: Transaction, request: NewReservation, reservation: Reservation) -> bool:
    """Inserts the reservation; False when the key is taken (nothing inserted)."""
    inserted = tx.execute(
        "INSERT INTO reservations (reservation_id, caller, idempotency_key,"
        " request_fingerprint, cost_center_id, currency, amount_nanos, state, create_time_ns)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (caller, idempotency_key) DO NOTHING",
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
    return inserted == 1


def _insert_payout(tx: Transaction, request: NewPayout, payout: Payout) -> bool:
    """Inserts the payout; False when the key is taken (nothing inserted)."""
    inserted = tx.execute(
        "INSERT INTO payouts (payout_id, caller, idempotency_key, request_fingerprint,"
        " reservation_id, cost_center_id, payee_employee_id, currency, amount_nanos, memo,"
        " create_time_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (caller, idempotency_key) DO NOTHING",
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
    return inserted == 1


def _insert_ledger_entry(tx: Transaction, payout: Payout) -> None:
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
    def __init__(self, target: DatabaseTarget) -> None:
        self._db = open_database(target, SCHEMA)

    def close(self) -> None:
        self._db.close()

    def is_empty(self) -> bool:
        with self._db.read() as tx:
            return tx.fetch_one("SELECT 1 FROM budgets LIMIT 1") is None

    def add_budget(self, cost_center_id: str, allocated: Amount) -> None:
        with self._db.write() as tx:
            tx.execute(
                "INSERT INTO budgets (cost_center_id, currency, allocated_nanos) VALUES (?, ?, ?)",
                (cost_center_id, allocated.currency, allocated.nanos),
            )

    def add_budgets_if_empty(self, budgets: Mapping[str, Amount]) -> None:
        """Adds `budgets` to a database that has none, in one transaction. Replicas starting
        together on one database may all call it: whichever commits first adds them, the
        others add nothing and fail on nothing."""
        with self._db.write() as tx:
            if tx.fetch_one("SELECT 1 FROM budgets LIMIT 1") is not None:
                return
            for cost_center_id, allocated in budgets.items():
                tx.execute(
                    "INSERT INTO budgets (cost_center_id, currency, allocated_nanos)"
                    " VALUES (?, ?, ?) ON CONFLICT (cost_center_id) DO NOTHING",
                    (cost_center_id, allocated.currency, allocated.nanos),
                )

    def get_budget(self, cost_center_id: str) -> Budget | None:
        with self._db.read() as tx:
            row = tx.fetch_one("SELECT * FROM budgets WHERE cost_center_id = ?", (cost_center_id,))
        return budget_from_row(row) if row else None

    def reserve(self, request: NewReservation) -> Reservation:
        """Holds the amount against the budget, or returns the reservation this key made."""
        with self._db.write() as tx:
            earlier = _earlier(tx, "reservations", request)
            if earlier is not None:
                return reservation_from_row(earlier)
            budget = _lock_budget(tx, request.cost_center_id)
            # A copy of this request may have reserved while this one waited for the budget.
            earlier = _earlier(tx, "reservations", request)
            if earlier is not None:
                return reservation_from_row(earlier)
            _check_can_reserve(budget, request.amount)
            reservation = Reservation(
                reservation_id=f"rsv_{uuid.uuid4().hex}",
                cost_center_id=budget.cost_center_id,
                amount=request.amount,
                state=ReservationState.ACTIVE,
                create_time_ns=time.time_ns(),
            )
            if not _insert_reservation(tx, request, reservation):
                # The same key, for another budget, was reserved first: that request owns it.
                return reservation_from_row(_winner(tx, "reservations", request))
            tx.execute(
                "UPDATE budgets SET reserved_nanos = reserved_nanos + ? WHERE cost_center_id = ?",
                (reservation.amount.nanos, reservation.cost_center_id),
            )
            return reservation

    def release(self, reservation_id: str) -> Reservation:
        """Gives an active reservation back to its budget; a released one stays as it is."""
        with self._db.write() as tx:
            reservation = _lock_reservation(tx, reservation_id)
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
        with self._db.write() as tx:
            earlier = _earlier(tx, "payouts", request)
            if earlier is not None:
                return payout_from_row(earlier)
            reservation = _lock_reservation(tx, request.reservation_id)
            # A copy of this request may have paid while this one waited for the reservation.
            earlier = _earlier(tx, "payouts", request)
            if earlier is not None:
                return payout_from_row(earlier)
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
            if not _insert_payout(tx, request, payout):
                # The same key, from another reservation, was paid first: that request owns it.
                return payout_from_row(_winner(tx, "payouts", request))
            _set_state(tx, reservation, ReservationState.CONSUMED)
            tx.execute(
                "UPDATE budgets SET reserved_nanos = reserved_nanos - ?,"
                " spent_nanos = spent_nanos + ? WHERE cost_center_id = ?",
                (payout.amount.nanos, payout.amount.nanos, payout.cost_center_id),
            )
            _insert_ledger_entry(tx, payout)
            return payout

    def get_payout(self, payout_id: str) -> Payout | None:
        with self._db.read() as tx:
            row = tx.fetch_one("SELECT * FROM payouts WHERE payout_id = ?", (payout_id,))
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
        with self._db.read() as tx:
            return [ledger_entry_from_row(row) for row in tx.fetch_all(query, params)]
