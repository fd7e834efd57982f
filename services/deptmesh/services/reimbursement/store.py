"""Reimbursement's database: claims and where each is in its life, on SQLite or PostgreSQL.

Every state change is a conditional update on the expected current state, so
two concurrent approvals of one claim cannot both win, on one replica or many.
A claim is filed once per (caller, request_id): the insert is `ON CONFLICT DO
NOTHING` on that unique pair, and a copy that lost reads the claim that won.
"""

from __future__ import annotations

import enum
import hashlib
import time
import uuid
from dataclasses import dataclass

from deptmesh.services.database import DatabaseTarget, Row, Schema, Transaction, open_database
from deptmesh.services.money import Amount
from deptmesh.services.pagination import Page
from deptmesh.sidecar import AlreadyExists, FailedPrecondition, NotFound

_TABLES = """
CREATE TABLE IF NOT EXISTS claims (
    seq {auto_id},
    claim_id TEXT NOT NULL UNIQUE,
    caller TEXT NOT NULL,
    request_id TEXT,
    request_fingerprint TEXT NOT NULL,
    employee_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_nanos BIGINT NOT NULL CHECK (amount_nanos > 0),
    description TEXT NOT NULL,
    state TEXT NOT NULL,
    decided_by TEXT NOT NULL DEFAULT '',
    rejection_reason TEXT NOT NULL DEFAULT '',
    reservation_id TEXT NOT NULL DEFAULT '',
    payout_id TEXT NOT NULL DEFAULT '',
    create_time_ns BIGINT NOT NULL,
    update_time_ns BIGINT NOT NULL,
    UNIQUE (caller, request_id)
);
CREATE INDEX IF NOT EXISTS claims_by_state ON claims (state, seq);
CREATE INDEX IF NOT EXISTS claims_by_employee ON claims (employee_id, seq);
"""

SCHEMA = Schema("reimbursement", (_TABLES,))


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


# The reason a transition refuses a claim that is not in the state it starts from
# (literals: the contract tests read them).
_NOT_IN_STATE_REASONS = {
    ClaimState.SUBMITTED: "CLAIM_NOT_SUBMITTED",
    ClaimState.APPROVED: "CLAIM_NOT_APPROVED",
}


def _claim(row: Row) -> Claim:
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
    def __init__(self, target: DatabaseTarget) -> None:
        self._db = open_database(target, SCHEMA)

    def close(self) -> None:
        self._db.close()

    def submit(self, caller: str, request_id: str, claim: NewClaim) -> Claim:
        """Files a claim; with a request_id, a repeat of the same request returns the original."""
        fingerprint = claim.fingerprint()
        with self._db.write() as tx:
            if request_id:
                row = tx.fetch_one(
                    "SELECT * FROM claims WHERE caller = ? AND request_id = ?", (caller, request_id)
                )
                if row is not None:
                    return _same_claim(row, request_id, fingerprint)
            now = time.time_ns()
            claim_id = f"clm_{uuid.uuid4().hex}"
            inserted = tx.execute(
                "INSERT INTO claims (claim_id, caller, request_id, request_fingerprint,"
                " employee_id, currency, amount_nanos, description, state,"
                " create_time_ns, update_time_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (caller, request_id) DO NOTHING",
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
            if not inserted:
                # A copy of this request_id was filed first, by another replica or thread.
                row = tx.fetch_one(
                    "SELECT * FROM claims WHERE caller = ? AND request_id = ?", (caller, request_id)
                )
                if row is None:
                    raise RuntimeError("claims: a conflicting insert left no row for its key")
                return _same_claim(row, request_id, fingerprint)
            return _claim(self._select(tx, claim_id))

    def get(self, claim_id: str) -> Claim:
        with self._db.read() as tx:
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
        with self._db.read() as tx:
            return [_claim(row) for row in tx.fetch_all(query, params)]

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
        with self._db.read() as tx:
            rows = tx.fetch_all(
                "SELECT * FROM claims WHERE state = ? ORDER BY seq LIMIT ?",
                (ClaimState.APPROVED, limit),
            )
            return [_claim(row) for row in rows]

    def _transition(
        self, claim_id: str, expected: ClaimState, new: ClaimState, **columns: str
    ) -> Claim:
        assignments = "".join(f", {name} = ?" for name in columns)
        with self._db.write() as tx:
            # Only from the expected state: of two concurrent transitions, the second
            # waits for the first's row lock, then finds the state changed and updates nothing.
            changed = tx.execute(
                f"UPDATE claims SET state = ?, update_time_ns = ?{assignments}"
                " WHERE claim_id = ? AND state = ?",
                (new, time.time_ns(), *columns.values(), claim_id, expected),
            )
            current = _claim(self._select(tx, claim_id))
            if not changed:
                raise FailedPrecondition(
                    f"claim {claim_id} is {current.state}, not {expected}",
                    reason=_NOT_IN_STATE_REASONS[expected],
                    metadata={"claim_id": claim_id, "state": current.state},
                )
            return current

    @staticmethod
    def _select(tx: Transaction, claim_id: str) -> Row:
        row = tx.fetch_one("SELECT * FROM claims WHERE claim_id = ?", (claim_id,))
        if row is None:
            raise NotFound(f"claim {claim_id} not found")
        return row


def _same_claim(row: Row, request_id: str, fingerprint: str) -> Claim:
    """The claim filed under this request_id, if it is the same claim; AlreadyExists if not."""
    if row["request_fingerprint"] != fingerprint:
        raise AlreadyExists(
            f"request_id {request_id} was used for a different claim",
            reason="IDEMPOTENCY_KEY_REUSED",
            metadata={"claim_id": row["claim_id"]},
        )
    return _claim(row)
