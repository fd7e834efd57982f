"""FinanceStore: budgets, reservations and payouts as the database keeps them."""

from __future__ import annotations

import pytest

from services.finance import demo_data
from services.finance.store import FinanceStore, NewPayout, NewReservation, ReservationState
from services.money import Amount
from services.pagination import Page
from sidecar.errors import AlreadyExists, FailedPrecondition, NotFound

EUR_10 = Amount("EUR", 10_000_000_000)


@pytest.fixture
def store(tmp_path):
    store = FinanceStore(tmp_path / "finance.db")
    store.add_budget("CC-ENG", Amount("EUR", 100_000_000_000))
    yield store
    store.close()


def reserve(store, key="k1", amount=EUR_10, caller="reimbursement"):
    return store.reserve(NewReservation(caller, key, "CC-ENG", amount))


def pay(store, reservation_id, key="p1", amount=EUR_10, caller="reimbursement"):
    return store.pay(NewPayout(caller, key, reservation_id, "E1002", amount, "memo"))


def ledger(store):
    return store.list_ledger_entries(Page(100, None), "")


class TestReserve:
    def test_reserving_holds_the_amount(self, store):
        """A reservation moves its amount from available to reserved."""
        reservation = reserve(store)
        budget = store.get_budget("CC-ENG")
        assert reservation.state is ReservationState.ACTIVE
        assert budget.reserved == EUR_10
        assert budget.available == Amount("EUR", 90_000_000_000)

    def test_insufficient_funds_holds_nothing(self, store):
        """Asking for more than is available raises INSUFFICIENT_FUNDS and changes nothing."""
        with pytest.raises(FailedPrecondition) as caught:
            reserve(store, amount=Amount("EUR", 100_000_000_001))
        assert caught.value.reason == "INSUFFICIENT_FUNDS"
        assert store.get_budget("CC-ENG").reserved.nanos == 0

    def test_unknown_cost_center(self, store):
        """Reserving against a cost centre with no budget raises NotFound."""
        with pytest.raises(NotFound):
            store.reserve(NewReservation("r", "k", "CC-NONE", EUR_10))

    def test_keys_are_scoped_per_caller(self, store):
        """Two callers using the same key get two reservations."""
        assert reserve(store, caller="a") != reserve(store, caller="b")


class TestPay:
    def test_payout_consumes_and_writes_one_ledger_entry(self, store):
        """Paying spends the reservation and writes exactly one ledger entry."""
        reservation = reserve(store)
        payout = pay(store, reservation.reservation_id)
        [entry] = ledger(store)
        assert entry.payout_id == payout.payout_id
        budget = store.get_budget("CC-ENG")
        assert (budget.reserved.nanos, budget.spent) == (0, EUR_10)

    def test_replay_returns_the_original_and_writes_nothing(self, store):
        """The same key and request returns the first payout; the ledger keeps one entry."""
        reservation = reserve(store)
        first = pay(store, reservation.reservation_id)
        assert pay(store, reservation.reservation_id) == first
        assert len(ledger(store)) == 1

    def test_key_reuse_with_another_request_is_refused(self, store):
        """The same key with a different request raises IDEMPOTENCY_KEY_REUSED."""
        pay(store, reserve(store).reservation_id)
        other = reserve(store, key="k2")
        with pytest.raises(AlreadyExists) as caught:
            pay(store, other.reservation_id)
        assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
        assert len(ledger(store)) == 1

    def test_amount_must_match_the_reservation(self, store):
        """Paying a different amount than reserved raises AMOUNT_MISMATCH."""
        reservation = reserve(store)
        with pytest.raises(FailedPrecondition) as caught:
            pay(store, reservation.reservation_id, amount=Amount("EUR", 1))
        assert caught.value.reason == "AMOUNT_MISMATCH"

    def test_released_reservation_cannot_be_paid(self, store):
        """A released reservation raises RESERVATION_RELEASED when paid from."""
        reservation = reserve(store)
        store.release(reservation.reservation_id)
        assert store.release(reservation.reservation_id).state is ReservationState.RELEASED
        with pytest.raises(FailedPrecondition) as caught:
            pay(store, reservation.reservation_id)
        assert caught.value.reason == "RESERVATION_RELEASED"

    def test_consumed_reservation_cannot_be_released(self, store):
        """Releasing a spent reservation raises RESERVATION_CONSUMED and refunds nothing."""
        reservation = reserve(store)
        pay(store, reservation.reservation_id)
        with pytest.raises(FailedPrecondition) as caught:
            store.release(reservation.reservation_id)
        assert caught.value.reason == "RESERVATION_CONSUMED"
        assert store.get_budget("CC-ENG").spent == EUR_10


class TestDemoData:
    def test_seed_is_idempotent(self, tmp_path):
        """Seeding twice leaves the demo budgets as seeding once does."""
        store = FinanceStore(tmp_path / "f.db")
        demo_data.seed(store)
        demo_data.seed(store)
        assert store.get_budget("CC-ENG").allocated == demo_data.BUDGETS["CC-ENG"]
        store.close()
