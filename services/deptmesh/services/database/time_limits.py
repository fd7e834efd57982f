"""How long a transaction may wait for the database, decided by the call it serves.

A transaction waits for locks (another replica's transaction on the same rows,
SQLite's single writer) and for a connection, but never past the deadline of
the call being handled (`deptmesh.sidecar.deadline.remaining_seconds()`): it
may wait `WAIT_SHARE` of the time left, leaving the rest for its own work and
for the answer to reach the caller in time, and at most `max_lock_wait_seconds`
(also the limit outside a call: a retrier, a seed, a migration). A wait that
runs out is UNAVAILABLE (reason DATABASE_BUSY): the client chain repeats calls
the contract declares idempotent, and a repeat is safe (payouts, reservations,
claims and trips are idempotent by key).

Before it commits, a transaction checks the deadline once more: a process that
stalled (frozen, swapped out, starved) after its wait must not commit work the
caller has given up on. It rolls back instead, and the call ends
DEADLINE_EXCEEDED with nothing written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deptmesh.sidecar.deadline import remaining_seconds
from deptmesh.sidecar.errors import DeadlineExceeded, Unavailable

__all__ = [
    "WAIT_SHARE",
    "Timeouts",
    "check_deadline_before_commit",
    "database_busy",
    "database_conflict",
    "database_unreachable",
    "lock_wait_seconds",
]

# The share of a call's remaining time a transaction may spend waiting.
WAIT_SHARE = 0.8


@dataclass(frozen=True, slots=True)
class Timeouts:
    """A database's limits in time, decided when it is opened."""

    # The longest a transaction waits for a lock or a connection, in a call or not.
    max_lock_wait_seconds: float = 5.0
    # PostgreSQL: the server ends a session of ours that stays this long idle
    # inside a transaction, releasing its locks. Our transactions never wait for
    # anything but the database, so such a session belongs to a frozen or stuck
    # replica, which must not block the others for long.
    idle_in_transaction_seconds: float = 2.0

    def __post_init__(self) -> None:
        for name in ("max_lock_wait_seconds", "idle_in_transaction_seconds"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")


def lock_wait_seconds(timeouts: Timeouts) -> float:
    """How long the transaction starting now may wait for the database.

    Raises DeadlineExceeded when the call's deadline has passed already.
    """
    left = remaining_seconds()
    if left is None:
        return timeouts.max_lock_wait_seconds
    if left <= 0:
        raise DeadlineExceeded(
            "the call's deadline passed before its transaction began",
            reason="DEADLINE_PASSED",
        )
    return min(timeouts.max_lock_wait_seconds, left * WAIT_SHARE)


def check_deadline_before_commit() -> None:
    """Raises DeadlineExceeded when the call's deadline passed during the transaction."""
    left = remaining_seconds()
    if left is not None and left <= 0:
        raise DeadlineExceeded(
            "the call's deadline passed before its transaction could commit;"
            " it was rolled back and wrote nothing",
            reason="DEADLINE_PASSED_BEFORE_COMMIT",
        )


def database_busy(database: str, waited_seconds: float) -> Unavailable:
    """A lock (or a connection) was not had within the time the call could wait."""
    return Unavailable(
        f"the {database} database is busy: not granted within {waited_seconds:.3f}s",
        reason="DATABASE_BUSY",
        metadata={"database": database},
    )


def database_conflict(database: str) -> Unavailable:
    """The database ended the transaction to break a conflict (a deadlock, a
    serialization failure): the whole request may be repeated."""
    return Unavailable(
        f"the {database} database ended the transaction in a conflict with another",
        reason="DATABASE_CONFLICT",
        metadata={"database": database},
    )


def database_unreachable(database: str) -> Unavailable:
    """The connection failed or the server went away; the outcome of a commit in
    flight is unknown, which a repeat of an idempotent request settles."""
    return Unavailable(
        f"the {database} database could not be reached",
        reason="DATABASE_UNREACHABLE",
        metadata={"database": database},
    )
