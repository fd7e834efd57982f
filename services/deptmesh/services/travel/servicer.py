"""deptmesh.travel.v1.TripService: validation and messages over TripStore and HR."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from deptmesh.services.money import Amount, check_money
from deptmesh.services.pagination import close_page, read_page
from deptmesh.services.travel.employees import Employees
from deptmesh.services.travel.store import Trip, TripRequest, TripStore
from deptmesh.services.validation import FieldViolations, require_identifier
from deptmesh.sidecar import current_caller
from deptmesh.travel.v1 import travel_pb2 as pb
from deptmesh.travel.v1 import travel_pb2_grpc

MAX_DESTINATION_LENGTH = 200
MAX_PURPOSE_LENGTH = 500
MAX_TRIP_DAYS = 90
# Exactly YYYY-MM-DD: date.fromisoformat alone also takes 20250314 and week dates.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def utc_today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def trip_proto(trip: Trip) -> pb.Trip:
    request = trip.request
    created = Timestamp()
    created.FromNanoseconds(trip.create_time_ns)
    return pb.Trip(
        trip_id=trip.trip_id,
        traveller_id=request.traveller_id,
        cost_center_id=trip.cost_center_id,
        destination=request.destination,
        purpose=request.purpose,
        departure_date=request.departure_date.isoformat(),
        return_date=request.return_date.isoformat(),
        estimated_cost=request.estimated_cost.to_proto(),
        create_time=created,
    )


def _date(violations: FieldViolations, field: str, value: str) -> datetime.date | None:
    """The calendar date `value` names, or None after adding why it names none."""
    if not value:
        violations.add(field, "required")
        return None
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        return datetime.date.fromisoformat(value)
    except ValueError:
        violations.add(field, "must be a calendar date YYYY-MM-DD")
        return None


def _trip_request(request: pb.RequestTripRequest, today: datetime.date) -> TripRequest:
    """The validated request; INVALID_ARGUMENT naming every bad field otherwise."""
    violations = FieldViolations()
    violations.identifier("traveller_id", request.traveller_id)
    violations.text("destination", request.destination, max_length=MAX_DESTINATION_LENGTH)
    violations.text("purpose", request.purpose, max_length=MAX_PURPOSE_LENGTH)
    departure = _date(violations, "departure_date", request.departure_date)
    returning = _date(violations, "return_date", request.return_date)
    if departure is not None and departure < today:
        violations.add("departure_date", f"must not be in the past (today is {today})")
    if departure is not None and returning is not None:
        if returning < departure:
            violations.add("return_date", "must not be before departure_date")
        elif (returning - departure).days > MAX_TRIP_DAYS:
            violations.add(
                "return_date", f"must be at most {MAX_TRIP_DAYS} days after departure_date"
            )
    check_money(
        violations,
        "estimated_cost",
        request.estimated_cost,
        present=request.HasField("estimated_cost"),
    )
    violations.key("request_id", request.request_id)
    violations.raise_if_any()
    if departure is None or returning is None:  # _date added a violation: raised above
        raise RuntimeError("a date was refused without a field violation")
    return TripRequest(
        traveller_id=request.traveller_id,
        destination=request.destination,
        purpose=request.purpose,
        departure_date=departure,
        return_date=returning,
        estimated_cost=Amount.from_proto(request.estimated_cost),
    )


class TripServicer(travel_pb2_grpc.TripServiceServicer):
    def __init__(
        self,
        store: TripStore,
        employees: Employees,
        *,
        today: Callable[[], datetime.date] = utc_today,
    ) -> None:
        self._store = store
        self._employees = employees
        self._today = today

    def RequestTrip(
        self, request: pb.RequestTripRequest, context: grpc.ServicerContext
    ) -> pb.RequestTripResponse:
        trip_request = _trip_request(request, self._today())
        cost_center_id = self._employees.cost_center_of(trip_request.traveller_id)
        trip = self._store.file(
            current_caller().service, request.request_id, trip_request, cost_center_id
        )
        return pb.RequestTripResponse(trip=trip_proto(trip))

    def GetTrip(
        self, request: pb.GetTripRequest, context: grpc.ServicerContext
    ) -> pb.GetTripResponse:
        require_identifier("trip_id", request.trip_id)
        return pb.GetTripResponse(trip=trip_proto(self._store.get(request.trip_id)))

    def ListTrips(
        self, request: pb.ListTripsRequest, context: grpc.ServicerContext
    ) -> pb.ListTripsResponse:
        violations = FieldViolations()
        violations.identifier("traveller_id", request.traveller_id, required=False)
        page = read_page(violations, request.page_size, request.page_token, request.traveller_id)
        violations.raise_if_any()
        trips, token = close_page(
            self._store.page(page, request.traveller_id),
            page,
            request.traveller_id,
            key=lambda trip: trip.seq,
        )
        return pb.ListTripsResponse(trips=[trip_proto(t) for t in trips], next_page_token=token)
