"""Travel through its real server on port 0, asking a real HR server over mTLS."""

from __future__ import annotations

import datetime

import grpc
import pytest

from deptmesh.common.v1 import money_pb2
from deptmesh.services.hr.app import HR
from deptmesh.services.travel.app import TRAVEL
from deptmesh.travel.v1 import travel_pb2 as pb
from deptmesh.travel.v1 import travel_pb2_grpc
from tests.rpc_errors import bad_request_fields, error_reason, rpc_error

TODAY = datetime.datetime.now(datetime.UTC).date()
DEPARTURE = TODAY + datetime.timedelta(days=30)
EUR_900 = money_pb2.Money(currency_code="EUR", units=900)


def trip_request(request_id: str = "r1", **fields) -> pb.RequestTripRequest:
    values = {
        "traveller_id": "E1002",
        "destination": "Lisbon, Portugal",
        "purpose": "PyCon",
        "departure_date": DEPARTURE.isoformat(),
        "return_date": (DEPARTURE + datetime.timedelta(days=4)).isoformat(),
        "estimated_cost": EUR_900,
        "request_id": request_id,
        **fields,
    }
    return pb.RequestTripRequest(**values)


class Travel:
    def __init__(self, start_service) -> None:
        self.hr = start_service(HR)
        self.travel = start_service(TRAVEL, seed=False)
        self.trips = travel_pb2_grpc.TripServiceStub(self.travel.channel)

    def request(self, request: pb.RequestTripRequest) -> pb.Trip:
        return self.trips.RequestTrip(request, timeout=5).trip


@pytest.fixture
def travel(start_service) -> Travel:
    return Travel(start_service)


class TestRequestTrip:
    def test_files_the_trip_with_the_cost_centre_hr_names(self, travel):
        """A valid request is filed with HR's cost centre for the traveller, and reads back."""
        trip = travel.request(trip_request())
        assert trip.trip_id.startswith("trp_")
        assert (trip.traveller_id, trip.cost_center_id) == ("E1002", "CC-ENG")
        assert trip.estimated_cost == EUR_900
        assert trip.departure_date == DEPARTURE.isoformat()
        got = travel.trips.GetTrip(pb.GetTripRequest(trip_id=trip.trip_id), timeout=5).trip
        assert got == trip

    def test_every_bad_field_is_named_at_once(self, travel):
        """An empty request is INVALID_ARGUMENT naming each required field."""
        error = rpc_error(travel.trips.RequestTrip, pb.RequestTripRequest(), 5)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert set(bad_request_fields(error)) == {
            "traveller_id",
            "destination",
            "purpose",
            "departure_date",
            "return_date",
            "estimated_cost",
            "request_id",
        }

    @pytest.mark.parametrize(
        ("fields", "field", "description"),
        [
            ({"departure_date": "2031-02-30"}, "departure_date", "calendar date YYYY-MM-DD"),
            ({"departure_date": "20310203"}, "departure_date", "calendar date YYYY-MM-DD"),
            (
                {"departure_date": (TODAY - datetime.timedelta(days=1)).isoformat()},
                "departure_date",
                "must not be in the past",
            ),
            (
                {"return_date": (DEPARTURE - datetime.timedelta(days=1)).isoformat()},
                "return_date",
                "must not be before departure_date",
            ),
            (
                {"return_date": (DEPARTURE + datetime.timedelta(days=91)).isoformat()},
                "return_date",
                "at most 90 days",
            ),
            (
                {"estimated_cost": money_pb2.Money(currency_code="EUR", units=-1)},
                "estimated_cost",
                "must be positive",
            ),
            (
                {"estimated_cost": money_pb2.Money(currency_code="XYZ", units=1)},
                "estimated_cost.currency_code",
                "ISO 4217",
            ),
            ({"destination": "x" * 201}, "destination", "at most 200 characters"),
            ({"traveller_id": "E 1002"}, "traveller_id", "letters, digits"),
            ({"request_id": "has space"}, "request_id", "printable ASCII"),
        ],
        ids=[
            "no-such-day",
            "not-dashed",
            "in-the-past",
            "return-before-departure",
            "too-long",
            "negative-cost",
            "unknown-currency",
            "long-destination",
            "bad-traveller",
            "bad-request-id",
        ],
    )
    def test_a_bad_field_is_named_with_the_reason(self, travel, fields, field, description):
        """Each validation rule refuses with INVALID_ARGUMENT naming the field and why."""
        error = rpc_error(travel.trips.RequestTrip, trip_request(**fields), 5)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        violations = bad_request_fields(error)
        assert list(violations) == [field]
        assert description in violations[field]

    def test_a_one_day_trip_of_today_is_valid(self, travel):
        """Leaving today and coming back the same day is a trip."""
        today = datetime.datetime.now(datetime.UTC).date().isoformat()
        trip = travel.request(trip_request(departure_date=today, return_date=today))
        assert (trip.departure_date, trip.return_date) == (today, today)

    def test_unknown_traveller_is_a_failed_precondition(self, travel):
        """A traveller HR does not know is FAILED_PRECONDITION, TRAVELLER_NOT_FOUND."""
        error = rpc_error(travel.trips.RequestTrip, trip_request(traveller_id="E9999"), 5)
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(error) == "TRAVELLER_NOT_FOUND"

    def test_repeated_request_files_one_trip(self, travel):
        """The same request_id and request twice return one trip."""
        first = travel.request(trip_request())
        assert travel.request(trip_request()) == first
        listed = travel.trips.ListTrips(pb.ListTripsRequest(), timeout=5).trips
        assert [trip.trip_id for trip in listed] == [first.trip_id]

    def test_reused_request_id_is_already_exists(self, travel):
        """The same request_id with another destination is ALREADY_EXISTS."""
        travel.request(trip_request())
        error = rpc_error(travel.trips.RequestTrip, trip_request(destination="Porto"), 5)
        assert error.code() is grpc.StatusCode.ALREADY_EXISTS
        assert error_reason(error) == "IDEMPOTENCY_KEY_REUSED"

    def test_hr_gone_is_unavailable_and_files_nothing(self, travel):
        """With HR drained, a request is UNAVAILABLE (DEPENDENCY_UNAVAILABLE), nothing filed."""
        travel.hr.hosted.drain()
        error = rpc_error(travel.trips.RequestTrip, trip_request(), 5)
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert error_reason(error) == "DEPENDENCY_UNAVAILABLE"
        assert not travel.trips.ListTrips(pb.ListTripsRequest(), timeout=5).trips


class TestGetTrip:
    def test_unknown_trip_is_not_found(self, travel):
        """An id never filed is NOT_FOUND."""
        error = rpc_error(travel.trips.GetTrip, pb.GetTripRequest(trip_id="trp_missing"), 5)
        assert error.code() is grpc.StatusCode.NOT_FOUND

    def test_malformed_id_is_invalid(self, travel):
        """An empty trip_id is INVALID_ARGUMENT naming it."""
        error = rpc_error(travel.trips.GetTrip, pb.GetTripRequest(), 5)
        assert bad_request_fields(error) == {"trip_id": "required"}


class TestListTrips:
    def test_pages_through_one_travellers_trips(self, travel):
        """Pages of one traveller's trips, in the order filed, then an empty token."""
        mine = [travel.request(trip_request(f"r{n}")).trip_id for n in range(3)]
        travel.request(trip_request("r9", traveller_id="E1003"))
        first = travel.trips.ListTrips(
            pb.ListTripsRequest(traveller_id="E1002", page_size=2), timeout=5
        )
        second = travel.trips.ListTrips(
            pb.ListTripsRequest(
                traveller_id="E1002", page_size=2, page_token=first.next_page_token
            ),
            timeout=5,
        )
        assert [t.trip_id for t in [*first.trips, *second.trips]] == mine
        assert second.next_page_token == ""

    def test_token_of_another_filter_is_invalid(self, travel):
        """A page token from a list of another traveller is INVALID_ARGUMENT."""
        for n in range(2):
            travel.request(trip_request(f"r{n}"))
        token = travel.trips.ListTrips(pb.ListTripsRequest(page_size=1), timeout=5).next_page_token
        error = rpc_error(
            travel.trips.ListTrips,
            pb.ListTripsRequest(traveller_id="E1002", page_token=token),
            5,
        )
        assert set(bad_request_fields(error)) == {"page_token"}
