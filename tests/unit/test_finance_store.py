"""FinanceStore on a real SQLite file and a real PostgreSQL database: budgets, reservations,
payouts, the ledger."""

from __future__ import annotations

import pytest

from deptmesh.services.finance import demo_data
from deptmesh.services.finance.records import (
    NewPayout,
    NewReservation,
    Reservation,
    ReservationState,
)
from deptmesh.services.finance.store import FinanceStore
from deptmesh.services.money import NANOS_PER_UNIT, Amount
from deptmesh.services.pagination import Page
from deptmesh.sidecar.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from tests.databases import RawConnection


def eur(units: int, nanos: int = 0) -> Amount:
    return Amount("EUR", units * NANOS_PER_UNIT + nanos)


@pytest.fixture
def store(database_target):
    store = FinanceStore(database_target)
    store.add_budget("CC-ENG", eur(1000))
    store.add_budget("CC-FIN", eur(500))
    yield store
    store.close()


def reserve(store, key="rsv-key-1", amount=None, cost_center_id="CC-ENG", caller="reimb"):
    return store.reserve(
        NewReservation(caller, key, cost_center_id, eur(100) if amount is None else amount)
    )


def payout_request(reservation: Reservation, key="pay-key-1", caller="reimb", **changes):
    fields = {
        "caller": caller,
        "idempotency_key": key,
        "reservation_id": reservation.reservation_id,
        "payee_employee_id": "E1002",
        "amount": reservation.amount,
        "memo": "claim clm_1",
    }
    return NewPayout(**{**fields, **changes})


def ledger(store, cost_center_id=""):
    return store.list_ledger_entries(Page(size=1000, after=None), cost_center_id)


class TestBudget:
    def test_new_budget_has_everything_available(self, store):
        """A new budget has nothing reserved or spent, so all of it is available."""
        budget = store.get_budget("CC-ENG")

        assert budget.allocated == eur(1000)
        assert budget.reserved == eur(0)
        assert budget.spent == eur(0)
        assert budget.available == eur(1000)

    def test_unknown_cost_center_has_no_budget(self, store):
        """A cost centre without a budget reads as None."""
        assert store.get_budget("CC-NOPE") is None


class TestReserve:
    def test_reserve_holds_the_amount(self, store):
        """A reservation is active and moves its amount from available to reserved."""
        reservation = reserve(store, amount=eur(120, 500_000_000))

        assert reservation.reservation_id.startswith("rsv_")
        assert reservation.state is ReservationState.ACTIVE
        assert reservation.amount == eur(120, 500_000_000)
        budget = store.get_budget("CC-ENG")
        assert budget.reserved == eur(120, 500_000_000)
        assert budget.available == eur(879, 500_000_000)

    def test_insufficient_funds(self, store):
        """Reserving more than is available fails with INSUFFICIENT_FUNDS and holds nothing."""
        reserve(store, key="first", amount=eur(900))

        with pytest.raises(FailedPrecondition) as raised:
            reserve(store, key="second", amount=eur(100, 1))

        assert raised.value.reason == "INSUFFICIENT_FUNDS"
        assert raised.value.metadata["available"] == "100.00 EUR"
        assert store.get_budget("CC-ENG").reserved == eur(900)

    def test_exactly_the_available_amount_can_be_reserved(self, store):
        """Available equal to the amount is enough."""
        reserve(store, amount=eur(1000))

        assert store.get_budget("CC-ENG").available == eur(0)

    def test_other_currency_is_invalid(self, store):
        """An amount in another currency than the budget's names amount.currency_code."""
        with pytest.raises(InvalidArgument) as raised:
            reserve(store, amount=Amount("USD", 10 * NANOS_PER_UNIT))

        assert [v.field for v in raised.value.violations] == ["amount.currency_code"]

    def test_unknown_cost_center(self, store):
        """Reserving against a cost centre without a budget is NotFound."""
        with pytest.raises(NotFound):
            reserve(store, cost_center_id="CC-NOPE")

    def test_replay_returns_the_original_reservation(self, store):
        """The same key with the same request returns the first reservation and holds once."""
        first = reserve(store)
        again = reserve(store)

        assert again == first
        assert store.get_budget("CC-ENG").reserved == eur(100)

    def test_key_reused_for_a_different_request(self, store):
        """The same key with a different amount is refused and holds nothing more."""
        reserve(store, amount=eur(100))

        with pytest.raises(AlreadyExists) as raised:
            reserve(store, amount=eur(101))

        assert raised.value.reason == "IDEMPOTENCY_KEY_REUSED"
        assert store.get_budget("CC-ENG").reserved == eur(100)

    def test_keys_are_scoped_per_caller(self, store):
        """Two callers using the same key get two reservations."""
        mine = reserve(store, caller="reimbursement")
        theirs = reserve(store, caller="payroll")

        assert mine.reservation_id != theirs.reservation_id
        assert store.get_budget("CC-ENG").reserved == eur(200)


class TestRelease:
    def test_release_gives_the_amount_back(self, store):
        """Releasing returns the amount to available and marks the reservation released."""
        reservation = reserve(store)

        released = store.release(reservation.reservation_id)

        assert released.state is ReservationState.RELEASED
        assert store.get_budget("CC-ENG").available == eur(1000)

    def test_release_twice_is_a_no_op(self, store):
        """A second release returns the released reservation and gives nothing back twice."""
        reserve(store, key="other", amount=eur(50))
        reservation = reserve(store)
        first = store.release(reservation.reservation_id)

        second = store.release(reservation.reservation_id)

        assert second == first
        assert store.get_budget("CC-ENG").reserved == eur(50)

    def test_release_after_payout_is_refused(self, store):
        """A consumed reservation cannot be released."""
        reservation = reserve(store)
        store.pay(payout_request(reservation))

        with pytest.raises(FailedPrecondition) as raised:
            store.release(reservation.reservation_id)

        assert raised.value.reason == "RESERVATION_CONSUMED"
        assert store.get_budget("CC-ENG").spent == eur(100)

    def test_unknown_reservation(self, store):
        """Releasing an id nobody handed out is NotFound."""
        with pytest.raises(NotFound):
            store.release("rsv_unknown")


class TestPay:
    def test_payout_consumes_the_reservation(self, store):
        """A payout moves the amount from reserved to spent and consumes the reservation."""
        reservation = reserve(store, amount=eur(100, 250_000_000))

        payout = store.pay(payout_request(reservation))

        assert payout.payout_id.startswith("pay_")
        assert payout.cost_center_id == "CC-ENG"
        assert payout.amount == eur(100, 250_000_000)
        budget = store.get_budget("CC-ENG")
        assert budget.reserved == eur(0)
        assert budget.spent == eur(100, 250_000_000)
        assert budget.available == eur(899, 750_000_000)
        with pytest.raises(FailedPrecondition, match="spent"):
            store.pay(payout_request(reservation, key="pay-key-2"))

    def test_payout_writes_one_ledger_entry(self, store):
        """The ledger entry names the payout, the cost centre, the payee and the amount."""
        reservation = reserve(store)

        payout = store.pay(payout_request(reservation))

        [entry] = ledger(store)
        assert entry.payout_id == payout.payout_id
        assert entry.cost_center_id == "CC-ENG"
        assert entry.payee_employee_id == "E1002"
        assert entry.amount == eur(100)
        assert entry.create_time_ns == payout.create_time_ns

    def test_replay_returns_the_original_payout(self, store):
        """The same key with the same request returns the first payout and pays once."""
        reservation = reserve(store)
        first = store.pay(payout_request(reservation))

        again = store.pay(payout_request(reservation))

        assert again == first
        assert len(ledger(store)) == 1
        assert store.get_budget("CC-ENG").spent == eur(100)

    @pytest.mark.parametrize(
        "changes",
        [{"amount": eur(99)}, {"payee_employee_id": "E1003"}, {"memo": "another claim"}],
    )
    def test_key_reused_for_a_different_request(self, store, changes):
        """The same key with any field changed is refused and writes nothing."""
        reservation = reserve(store)
        store.pay(payout_request(reservation))

        with pytest.raises(AlreadyExists) as raised:
            store.pay(payout_request(reservation, **changes))

        assert raised.value.reason == "IDEMPOTENCY_KEY_REUSED"
        assert len(ledger(store)) == 1
        assert store.get_budget("CC-ENG").spent == eur(100)

    def test_key_reused_for_another_reservation_leaves_it_active(self, store):
        """A reused key does not touch the other reservation it names."""
        paid = reserve(store, key="a")
        untouched = reserve(store, key="b")
        store.pay(payout_request(paid))

        with pytest.raises(AlreadyExists):
            store.pay(payout_request(untouched))

        assert store.release(untouched.reservation_id).state is ReservationState.RELEASED
        assert len(ledger(store)) == 1

    def test_amount_mismatch(self, store):
        """Paying another amount than the reserved one fails and leaves the reservation active."""
        reservation = reserve(store, amount=eur(100))

        with pytest.raises(FailedPrecondition) as raised:
            store.pay(payout_request(reservation, amount=eur(100, 1)))

        assert raised.value.reason == "AMOUNT_MISMATCH"
        assert raised.value.metadata["reserved"] == "100.00 EUR"
        assert ledger(store) == []
        assert store.get_budget("CC-ENG").reserved == eur(100)

    def test_released_reservation_cannot_be_paid(self, store):
        """Paying from a released reservation fails with RESERVATION_RELEASED."""
        reservation = reserve(store)
        store.release(reservation.reservation_id)

        with pytest.raises(FailedPrecondition) as raised:
            store.pay(payout_request(reservation))

        assert raised.value.reason == "RESERVATION_RELEASED"
        assert ledger(store) == []

    def test_consumed_reservation_cannot_be_paid_again(self, store):
        """A second payout with another key from the same reservation is refused."""
        reservation = reserve(store)
        store.pay(payout_request(reservation, key="first"))

        with pytest.raises(FailedPrecondition) as raised:
            store.pay(payout_request(reservation, key="second"))

        assert raised.value.reason == "RESERVATION_CONSUMED"
        assert len(ledger(store)) == 1

    def test_unknown_reservation(self, store):
        """Paying from an id nobody handed out is NotFound."""
        reservation = reserve(store)

        with pytest.raises(NotFound):
            store.pay(payout_request(reservation, reservation_id="rsv_unknown"))

    def test_get_payout(self, store):
        """A payout reads back as it was made; an unknown id reads as None."""
        payout = store.pay(payout_request(reserve(store)))

        assert store.get_payout(payout.payout_id) == payout
        assert store.get_payout("pay_unknown") is None

    def test_idempotency_survives_a_restart(self, database_target):
        """A replay after reopening the database still returns the original payout."""
        before = FinanceStore(database_target)
        before.add_budget("CC-ENG", eur(1000))
        reservation = reserve(before)
        first = before.pay(payout_request(reservation))
        before.close()

        after = FinanceStore(database_target)
        try:
            assert after.pay(payout_request(reservation)) == first
            assert len(ledger(after)) == 1
        finally:
            after.close()


class TestLedger:
    def test_entries_are_oldest_first_and_filtered(self, store):
        """Entries come in entry_id order; a cost centre filter keeps only its entries."""
        for key, cost_center_id in [("a", "CC-ENG"), ("b", "CC-FIN"), ("c", "CC-ENG")]:
            reservation = reserve(store, key=key, cost_center_id=cost_center_id)
            store.pay(payout_request(reservation, key=key))

        everything = ledger(store)
        engineering = ledger(store, "CC-ENG")

        assert [e.entry_id for e in everything] == sorted(e.entry_id for e in everything)
        assert [e.cost_center_id for e in everything] == ["CC-ENG", "CC-FIN", "CC-ENG"]
        assert [e.entry_id for e in engineering] == [everything[0].entry_id, everything[2].entry_id]

    def test_page_returns_one_extra_entry_after_the_cursor(self, store):
        """A page holds up to size + 1 entries after `after`, the extra one signalling more."""
        for key in "abcd":
            store.pay(payout_request(reserve(store, key=key), key=key))
        first_id = ledger(store)[0].entry_id

        page = store.list_ledger_entries(Page(size=2, after=first_id), "")

        assert [e.entry_id for e in page] == [first_id + 1, first_id + 2, first_id + 3]


class TestSchema:
    def test_budget_can_never_be_overspent(self, store, database_target):
        """The database itself refuses a budget whose reserved and spent exceed its allocation."""
        connection = RawConnection(database_target)
        try:
            with pytest.raises(connection.integrity_error):
                connection.execute(
                    "UPDATE budgets SET reserved_nanos = allocated_nanos + 1"
                    " WHERE cost_center_id = 'CC-ENG'"
                )
        finally:
            connection.close()


class TestDemoData:
    def test_seeds_an_empty_database_once(self, database_target):
        """Seeding loads the three EUR budgets and leaves a seeded database alone."""
        store = FinanceStore(database_target)
        try:
            demo_data.seed(store)
            demo_data.seed(store)

            assert store.get_budget("CC-EXEC").allocated == eur(100_000)
            assert store.get_budget("CC-ENG").allocated == eur(50_000)
            assert store.get_budget("CC-FIN").allocated == eur(20_000)
        finally:
            store.close()

    def test_leaves_a_non_empty_database_alone(self, store):
        """A database that already has budgets gets no demo budgets."""
        demo_data.seed(store)

        assert store.get_budget("CC-EXEC") is None
