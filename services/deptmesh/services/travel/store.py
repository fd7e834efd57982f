"""Travel's database: the trips employees asked for.

A trip is filed once per (caller, request_id), on one replica or many: the
insert is `ON CONFLICT DO NOTHING` on that unique pair, and the request's
fingerprint is kept, so a repeat returns the first trip and a different
request under the same id is refused.
"""

from __future__ import annotations

import datetime
import hashlib
import time
import uuid
from dataclasses import dataclass

from deptmesh.services.database import DatabaseTarget, Row, Schema, Transaction, open_database
from deptmesh.services.money import Amount
from deptmesh.services.pagination import Page
from deptmesh.sidecar import AlreadyExists, NotFound

_TABLES = """
CREATE TABLE IF NOT EXISTS trips (
    seq {auto_id},
    trip_id TEXT NOT NULL UNIQUE,
    caller TEXT NOT NULL,
    request_id TEXT NOT NULL,
    request_fingerprint TEXT NOT NULL,
    traveller_id TEXT NOT NULL,
    cost_center_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    purpose TEXT NOT NULL,
    departure_date TEXT NOT NULL,
    return_date TEXT NOT NULL CHECK (return_date >= departure_date),
    currency TEXT NOT NULL,
    cost_nanos BIGINT NOT NULL CHECK (cost_nanos > 0),
    create_time_ns BIGINT NOT NULL,
    UNIQUE (caller, request_id)
);
CREATE INDEX IF NOT EXISTS trips_by_traveller ON trips (traveller_id, seq);
"""

SCHEMA = Schema("travel", (_TABLES,))


@dataclass(frozen=True, slots=True)
class TripRequest:
    """What a caller asks for, validated."""

    traveller_id: str
    destination: str
    purpose: str
    departure_date: datetime.date
    return_date: datetime.date
    estimated_cost: Amount

    def fingerprint(self) -> str:
        fields = (
            self.traveller_id,
            self.destination,
            self.purpose,
            self.departure_date.isoformat(),
            self.return_date.isoformat(),
            self.estimated_cost.currency,
            str(self.estimated_cost.nanos),
        )
        return hashlib.sha256("\0".join(fields).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Trip:
    seq: int
    trip_id: str
    cost_center_id: str
    request: TripRequest
    create_time_ns: int


def _trip(row: Row) -> Trip:
    return Trip(
        seq=row["seq"],
        trip_id=row["trip_id"],
        cost_center_id=row["cost_center_id"],
        request=TripRequest(
            traveller_id=row["traveller_id"],
            destination=row["destination"],
            purpose=row["purpose"],
            departure_date=datetime.date.fromisoformat(row["departure_date"]),
            return_date=datetime.date.fromisoformat(row["return_date"]),
            estimated_cost=Amount(row["currency"], row["cost_nanos"]),
        ),
        create_time_ns=row["create_time_ns"],
    )


class TripStore:
    def __init__(self, target: DatabaseTarget) -> None:
        self._db = open_database(target, SCHEMA)

    def close(self) -> None:
        self._db.close()

    def file(self, caller: str, request_id: str, request: TripRequest, cost_center_id: str) -> Trip:
        """Files a trip; a repeat of the same request (caller, request_id) returns the first.

        Raises AlreadyExists (IDEMPOTENCY_KEY_REUSED) for a different request under
        a request_id the caller used before.
        """
        fingerprint = request.fingerprint()
        with self._db.write() as tx:
            tx.execute(
                "INSERT INTO trips (trip_id, caller, request_id, request_fingerprint,"
                " traveller_id, cost_center_id, destination, purpose, departure_date,"
                " return_date, currency, cost_nanos, create_time_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (caller, request_id) DO NOTHING",
                (
                    f"trp_{uuid.uuid4().hex}",
                    caller,
                    request_id,
                    fingerprint,
                    request.traveller_id,
                    cost_center_id,
                    request.destination,
                    request.purpose,
                    request.departure_date.isoformat(),
                    request.return_date.isoformat(),
                    request.estimated_cost.currency,
                    request.estimated_cost.nanos,
                    time.time_ns(),
                ),
            )
            # This request's trip, or the one filed first under its request_id.
            row = tx.fetch_one(
                "SELECT * FROM trips WHERE caller = ? AND request_id = ?", (caller, request_id)
            )
            if row is None:
                raise RuntimeError("trips: a conflicting insert left no row for its key")
            if row["request_fingerprint"] != fingerprint:
                raise AlreadyExists(
                    f"request_id {request_id} was used for a different trip",
                    reason="IDEMPOTENCY_KEY_REUSED",
                    metadata={"trip_id": row["trip_id"]},
                )
            return _trip(row)

    def get(self, trip_id: str) -> Trip:
        with self._db.read() as tx:
            return _trip(self._select(tx, trip_id))

    def page(self, page: Page, traveller_id: str) -> list[Trip]:
        """Up to page.size + 1 trips in the order filed, after page.after (a seq)."""
        query = "SELECT * FROM trips WHERE seq > ?"
        params: list[object] = [page.after if isinstance(page.after, int) else 0]
        if traveller_id:
            query += " AND traveller_id = ?"
            params.append(traveller_id)
        query += " ORDER BY seq LIMIT ?"
        params.append(page.size + 1)
        with self._db.read() as tx:
            return [_trip(row) for row in tx.fetch_all(query, params)]

    @staticmethod
    def _select(tx: Transaction, trip_id: str) -> Row:
        row = tx.fetch_one("SELECT * FROM trips WHERE trip_id = ?", (trip_id,))
        if row is None:
            raise NotFound(f"trip {trip_id} not found")
        return row
