"""Reimbursement's database: claims and where each is in its life.

Every state change is a conditional update on the expected current state, so
two concurrent approvals of one claim cannot both win.
"""

from __future__ import annotations

import enum
import hashlib
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from deptmesh.services.database import Database
from deptmesh.services.money import Amount
from deptmesh.services.pagination import Page
from deptmesh.sidecar import AlreadyExists, FailedPrecondition, NotFound

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    claim_id TEXT NOT NULL UNIQUE,
    caller TEXT NOT NULL,
    request_id TEXT,
    request_fingerprint TEXT NOT NULL,
    employee_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_nanos INTEGER NOT NULL CHECK (amount_nanos > 0),
    description TEXT NOT NULL,
    state TEXT NOT NULL,
    decided_by TEXT NOT NULL DEFAULT '',
    rejection_reason TEXT NOT NULL DEFAULT '',
    reservation_id TEXT NOT NULL DEFAULT '',
    payout_id TEXT NOT NULL DEFAULT '',
    create_time_ns INTEGER NOT NULL,
    update_time_ns INTEGER NOT NULL,
    UNIQUE (caller, request_id)
);
CREATE INDEX IF NOT EXISTS claims_by_state ON claims (state, seq);
CREATE INDEX IF NOT EXISTS claims_by_employee ON claims (employee_id, seq);
"""


class ClaimState(enum.StrEnum):
    SUBMITTED = "SUBMITTED"
    APPROVED = "APPROVED"
    PAID = "PAID"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class Claim:
    seq: int
    claim_id: str
    employee_id: str
    amount: Amount
    description: str
    state: ClaimState
    decided_by: str
    rejection_reason: str
    reservation_id: str
    payout_id: str
    create_time_ns: int
    update_time_ns: int


@dataclass(frozen=True, slots=True)
class NewClaim:
    employee_id: str
    amount: Amount
    description: str

    def fingerprint(self) -> str:
        text = (
            f"{self.employee_id}\0{self.amount.currency}\0{self.amount.nanos}\0{self.description}"
        )
        return hashlib.sha256(text.encode()).hexdigest()


def _claim(row: sqlite3.Row) -> Claim:
    return Claim(
        seq=row["seq"],
        claim_id=row["claim_id"],
        employee_id=row["employee_id"],
        amount=Amount(row["currency"], row["amount_nanos"]),
        description=row["description"],
        state=ClaimState(row["state"]),
        decided_by=row["decided_by"],
        rejection_reason=row["rejection_reason"],
        reservation_id=row["reservation_id"],
        payout_id=row["payout_id"],
        create_time_ns=row["create_time_ns"],
        update_time_ns=row["update_time_ns"],
    )


class ClaimStore:
    def __init__(self, path: str | Path) -> None:
        self._db = Database(path, SCHEMA)

    def close(self) -> None:
        self._db.close()

    def submit(self, caller: str, request_id: str, claim: NewClaim) -> Claim:
        """Files a claim; with a request_id, a repeat of the same request returns the original."""
        fingerprint = claim.fingerprint()
        with self._db.transaction() as tx:
            if request_id:
                row = tx.execute(
                    "SELECT * FROM claims WHERE caller = ? AND request_id = ?", (caller, request_id)
                ).fetchone()
                if row is not None:
                    if row["request_fingerprint"] != fingerprint:
                        raise AlreadyExists(
                            f"request_id {request_id} was used for a different claim",
                            reason="IDEMPOTENCY_KEY_REUSED",
                            metadata={"claim_id": row["claim_id"]},
                        )
                    return _claim(row)
            now = time.time_ns()
            claim_id = f"clm_{uuid.uuid4().hex}"
            tx.execute(
                "INSERT INTO claims (claim_id, caller, request_id, request_fingerprint,"
                " employee_id, currency, amount_nanos, description, state,"
                " create_time_ns, update_time_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    claim_id,
                    caller,
                    request_id or None,
                    fingerprint,
                    claim.employee_id,
                    claim.amount.currency,
                    claim.amount.nanos,
                    claim.description,
                    ClaimState.SUBMITTED,
                    now,
                    now,
                ),
            )
            return _claim(self._select(tx, claim_id))

    def get(self, claim_id: str) -> Claim:
        with self._db.transaction() as tx:
            return _claim(self._select(tx, claim_id))

    def page(self, page: Page, employee_id: str, state: ClaimState | None) -> list[Claim]:
        """Up to page.size + 1 claims, newest first, after page.after (a seq)."""
        query = "SELECT * FROM claims WHERE seq < ?"
        params: list[object] = [page.after if isinstance(page.after, int) else 2**63 - 1]
        if employee_id:
            query += " AND employee_id = ?"
            params.append(employee_id)
        if state is not None:
            query += " AND state = ?"
            params.append(state)
        query += " ORDER BY seq DESC LIMIT ?"
        params.append(page.size + 1)
        with self._db.transaction() as tx:
            return [_claim(row) for row in tx.execute(query, params)]

    def approve(self, claim_id: str, approver_id: str, reservation_id: str) -> Claim:
        return self._transition(
            claim_id,
            ClaimState.SUBMITTED,
            ClaimState.APPROVED,
            decided_by=approver_id,
            reservation_id=reservation_id,
        )

    def reject(self, claim_id: str, approver_id: str, reason: str) -> Claim:
        return self._transition(
            claim_id,
            ClaimState.SUBMITTED,
            ClaimState.REJECTED,
            decided_by=approver_id,
            rejection_reason=reason,
        )

    def mark_paid(self, claim_id: str, payout_id: str) -> Claim:
        return self._transition(claim_id, ClaimState.APPROVED, ClaimState.PAID, payout_id=payout_id)

    def awaiting_payout(self, limit: int) -> list[Claim]:
        """APPROVED claims, oldest first: the payouts still to make."""
        with self._db.transaction() as tx:
            rows = tx.execute(
                "SELECT * FROM claims WHERE state = ? ORDER BY seq LIMIT ?",
                (ClaimState.APPROVED, limit),
            )
            return [_claim(row) for row in rows]

    def _transition(
        self, claim_id: str, expected: ClaimState, new: ClaimState, **columns: str
    ) -> Claim:
        assignments = "".join(f", {name} = ?" for name in columns)
        with self._db.transaction() as tx:
            current = _claim(self._select(tx, claim_id))
            if current.state is not expected:
                raise FailedPrecondition(
                    f"claim {claim_id} is {current.state}, not {expected}",
                    reason=f"CLAIM_NOT_{expected}",
                    metadata={"claim_id": claim_id, "state": current.state},
                )
            tx.execute(
                f"UPDATE claims SET state = ?, update_time_ns = ?{assignments} WHERE claim_id = ?",
                (new, time.time_ns(), *columns.values(), claim_id),
            )
            return _claim(self._select(tx, claim_id))

    @staticmethod
    def _select(tx: sqlite3.Connection, claim_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = tx.execute(
            "SELECT * FROM claims WHERE claim_id = ?", (claim_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"claim {claim_id} not found")
        return row
