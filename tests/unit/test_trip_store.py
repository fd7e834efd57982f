"""TripStore: trips filed once per (caller, request_id), read back as filed, on SQLite and
PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from deptmesh.services.money import Amount
from deptmesh.services.pagination import Page
from deptmesh.services.travel.store import TripRequest, TripStore
from deptmesh.sidecar import AlreadyExists, NotFound

LISBON = TripRequest(
    traveller_id="E1002",
    destination="Lisbon, Portugal",
    purpose="PyCon",
    departure_date=datetime.date(2031, 5, 4),
    return_date=datetime.date(2031, 5, 8),
    estimated_cost=Amount("EUR", 900_000_000_000),
)


@pytest.fixture
def store(database_target):
    store = TripStore(database_target)
    yield store
    store.close()


class TestTripStore:
    def test_filed_trip_reads_back_as_filed(self, store):
        """A filed trip has an id, the cost centre given, and every field of the request."""
        trip = store.file("self-service", "r1", LISBON, "CC-ENG")
        assert trip.trip_id.startswith("trp_")
        assert (trip.request, trip.cost_center_id) == (LISBON, "CC-ENG")
        assert store.get(trip.trip_id) == trip

    def test_repeated_request_returns_the_first_trip(self, store):
        """The same caller, request_id and request return the trip filed the first time."""
        first = store.file("self-service", "r1", LISBON, "CC-ENG")
        assert store.file("self-service", "r1", LISBON, "CC-ENG") == first
        assert len(store.page(Page(10, None), "")) == 1

    def test_request_id_is_scoped_per_caller(self, store):
        """Two callers using one request_id file two trips."""
        first = store.file("self-service", "r1", LISBON, "CC-ENG")
        assert store.file("travel-desk", "r1", LISBON, "CC-ENG") != first

    @pytest.mark.parametrize(
        "change",
        [
            {"traveller_id": "E1003"},
            {"destination": "Porto, Portugal"},
            {"purpose": "EuroPython"},
            {"departure_date": datetime.date(2031, 5, 3)},
            {"return_date": datetime.date(2031, 5, 9)},
            {"estimated_cost": Amount("EUR", 1)},
            {"estimated_cost": Amount("USD", 900_000_000_000)},
        ],
        ids=lambda change: next(iter(change)),
    )
    def test_request_id_reused_for_another_trip_is_refused(self, store, change):
        """A request_id used before for a request differing in any field is ALREADY_EXISTS."""
        first = store.file("self-service", "r1", LISBON, "CC-ENG")
        other = dataclasses.replace(LISBON, **change)
        with pytest.raises(AlreadyExists) as caught:
            store.file("self-service", "r1", other, "CC-ENG")
        assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
        assert caught.value.metadata == {"trip_id": first.trip_id}

    def test_unknown_trip_is_not_found(self, store):
        """get of an id never filed raises NotFound."""
        with pytest.raises(NotFound):
            store.get("trp_missing")

    def test_pages_follow_the_order_filed_and_the_filter(self, store):
        """Pages hold the trips in the order filed, after the given seq, of one traveller
        if asked, with one extra trip saying there is more."""
        ids = [store.file("self-service", f"r{n}", LISBON, "CC-ENG").trip_id for n in range(3)]
        someone_else = store.file(
            "self-service", "r9", dataclasses.replace(LISBON, traveller_id="E1003"), "CC-ENG"
        )
        first_page = store.page(Page(2, None), "E1002")
        assert [trip.trip_id for trip in first_page] == ids
        rest = store.page(Page(2, first_page[1].seq), "")
        assert [trip.trip_id for trip in rest] == [ids[2], someone_else.trip_id]
