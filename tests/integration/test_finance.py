"""Finance through its real gRPC server on port 0: budgets, reservations, payouts once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from deptmesh.common.v1 import money_pb2
from deptmesh.finance.v1 import finance_pb2 as pb
from deptmesh.finance.v1 import finance_pb2_grpc
from deptmesh.services.finance.app import FINANCE
from deptmesh.services.money import Amount
from tests.rpc_errors import bad_request_fields, error_reason, rpc_error

EUR_100 = money_pb2.Money(currency_code="EUR", units=100)


class Finance:
    def __init__(self, start_service) -> None:
        running = start_service(FINANCE)
        self.budgets = finance_pb2_grpc.BudgetServiceStub(running.channel)
        self.payments = finance_pb2_grpc.PaymentServiceStub(running.channel)

    def reserve(self, key: str, amount=EUR_100, cost_center_id="CC-ENG") -> pb.Reservation:
        request = pb.ReserveFundsRequest(
            idempotency_key=key, cost_center_id=cost_center_id, amount=amount
        )
        return self.budgets.ReserveFunds(request, timeout=5).reservation

    def payout_request(self, key: str, reservation_id: str, amount=EUR_100) -> pb.PayoutRequest:
        return pb.PayoutRequest(
            idempotency_key=key,
            reservation_id=reservation_id,
            payee_employee_id="E1002",
            amount=amount,
            memo="claim",
        )

    def budget(self, cost_center_id="CC-ENG") -> pb.Budget:
        request = pb.GetBudgetRequest(cost_center_id=cost_center_id)
        return self.budgets.GetBudget(request, timeout=5).budget

    def ledger(self, **filters) -> list[pb.LedgerEntry]:
        request = pb.ListLedgerEntriesRequest(**filters)
        return list(self.payments.ListLedgerEntries(request, timeout=5).entries)


@pytest.fixture
def finance(start_service) -> Finance:
    return Finance(start_service)


def nanos(money: money_pb2.Money) -> int:
    return Amount.from_proto(money).nanos


class TestPayoutOnce:
    def test_twenty_concurrent_identical_payouts_pay_once(self, finance):
        """20 simultaneous Payouts with one key: one payout, one ledger entry, spent once."""
        reservation = finance.reserve("claim-1")
        request = finance.payout_request("claim-1", reservation.reservation_id)
        barrier = threading.Barrier(20)

        def pay(_: int) -> str:
            barrier.wait(timeout=10)
            return finance.payments.Payout(request, timeout=10).payout.payout_id

        with ThreadPoolExecutor(20) as pool:
            payout_ids = list(pool.map(pay, range(20)))

        assert len(payout_ids) == 20
        assert len(set(payout_ids)) == 1
        assert [e.payout_id for e in finance.ledger()] == payout_ids[:1]
        assert nanos(finance.budget().spent) == nanos(EUR_100)
        assert nanos(finance.budget().reserved) == 0

    def test_same_key_different_request_is_already_exists_and_pays_nothing(self, finance):
        """Reusing a payout key for a different request fails and writes nothing."""
        first = finance.reserve("k1")
        second = finance.reserve("k2")
        finance.payments.Payout(finance.payout_request("p1", first.reservation_id), timeout=5)

        error = rpc_error(
            finance.payments.Payout, finance.payout_request("p1", second.reservation_id)
        )

        assert error.code() is grpc.StatusCode.ALREADY_EXISTS
        assert error_reason(error) == "IDEMPOTENCY_KEY_REUSED"
        assert len(finance.ledger()) == 1
        assert nanos(finance.budget().reserved) == nanos(EUR_100)

    def test_same_key_different_amount_is_already_exists_and_pays_nothing(self, finance):
        """Reusing a payout key with another amount fails before any reservation check."""
        reservation = finance.reserve("k1")
        paid = finance.payments.Payout(
            finance.payout_request("p1", reservation.reservation_id), timeout=5
        ).payout
        other_amount = money_pb2.Money(currency_code="EUR", units=99)

        error = rpc_error(
            finance.payments.Payout,
            finance.payout_request("p1", reservation.reservation_id, other_amount),
        )

        assert error.code() is grpc.StatusCode.ALREADY_EXISTS
        assert error_reason(error) == "IDEMPOTENCY_KEY_REUSED"
        assert [e.payout_id for e in finance.ledger()] == [paid.payout_id]
        assert nanos(finance.budget().spent) == nanos(EUR_100)

    def test_unknown_reservation_is_not_found(self, finance):
        """Paying from a reservation nobody made is NOT_FOUND and writes nothing."""
        error = rpc_error(finance.payments.Payout, finance.payout_request("p1", "rsv_none"))
        assert error.code() is grpc.StatusCode.NOT_FOUND
        assert finance.ledger() == []

    def test_reservation_cannot_be_spent_twice(self, finance):
        """A second payout with another key on a consumed reservation is refused."""
        reservation = finance.reserve("k1")
        finance.payments.Payout(finance.payout_request("p1", reservation.reservation_id), timeout=5)
        error = rpc_error(
            finance.payments.Payout, finance.payout_request("p2", reservation.reservation_id)
        )
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(error) == "RESERVATION_CONSUMED"

    def test_payout_must_match_the_reserved_amount(self, finance):
        """Paying a different amount than reserved fails with AMOUNT_MISMATCH."""
        reservation = finance.reserve("k1")
        request = finance.payout_request(
            "p1", reservation.reservation_id, money_pb2.Money(currency_code="EUR", units=99)
        )
        error = rpc_error(finance.payments.Payout, request)
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(error) == "AMOUNT_MISMATCH"

    def test_get_payout_returns_what_was_paid(self, finance):
        """GetPayout returns the payout as Payout made it; unknown ids are NOT_FOUND."""
        reservation = finance.reserve("k1")
        request = finance.payout_request("p1", reservation.reservation_id)
        paid = finance.payments.Payout(request, timeout=5).payout
        fetched = finance.payments.GetPayout(
            pb.GetPayoutRequest(payout_id=paid.payout_id), timeout=5
        )
        assert fetched.payout == paid
        error = rpc_error(finance.payments.GetPayout, pb.GetPayoutRequest(payout_id="pay_none"))
        assert error.code() is grpc.StatusCode.NOT_FOUND


class TestReservations:
    def test_seeded_budget_is_all_available(self, finance):
        """The demo budget of CC-EXEC is 100000 EUR, none of it reserved or spent."""
        budget = finance.budget("CC-EXEC")
        assert budget.allocated == money_pb2.Money(currency_code="EUR", units=100_000)
        assert budget.available == budget.allocated
        assert nanos(budget.reserved) == nanos(budget.spent) == 0

    def test_new_reservation_is_active(self, finance):
        """A reservation gets an rsv_ id, the ACTIVE state and a creation time."""
        reservation = finance.reserve("k1")
        assert reservation.reservation_id.startswith("rsv_")
        assert reservation.state == pb.RESERVATION_STATE_ACTIVE
        assert reservation.amount == EUR_100
        assert reservation.create_time.seconds > 0
        assert nanos(finance.budget().available) == nanos(finance.budget().allocated) - nanos(
            EUR_100
        )

    def test_reserve_is_idempotent_by_key(self, finance):
        """Repeating a ReserveFunds request returns the same reservation and holds once."""
        first = finance.reserve("k1")
        assert finance.reserve("k1") == first
        assert nanos(finance.budget().reserved) == nanos(EUR_100)

    def test_insufficient_funds(self, finance):
        """Reserving more than is available fails with INSUFFICIENT_FUNDS and holds nothing."""
        error = rpc_error(
            finance.budgets.ReserveFunds,
            pb.ReserveFundsRequest(
                idempotency_key="big",
                cost_center_id="CC-ENG",
                amount=money_pb2.Money(currency_code="EUR", units=50_001),
            ),
        )
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(error) == "INSUFFICIENT_FUNDS"
        assert nanos(finance.budget().reserved) == 0

    def test_currency_must_be_the_budgets(self, finance):
        """Reserving USD against a EUR budget names amount.currency_code."""
        error = rpc_error(
            finance.budgets.ReserveFunds,
            pb.ReserveFundsRequest(
                idempotency_key="usd",
                cost_center_id="CC-ENG",
                amount=money_pb2.Money(currency_code="USD", units=1),
            ),
        )
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "amount.currency_code" in bad_request_fields(error)

    def test_release_returns_funds_and_is_idempotent(self, finance):
        """Releasing gives the amount back; releasing again changes nothing."""
        reservation = finance.reserve("k1")
        request = pb.ReleaseReservationRequest(reservation_id=reservation.reservation_id)
        released = finance.budgets.ReleaseReservation(request, timeout=5).reservation
        again = finance.budgets.ReleaseReservation(request, timeout=5).reservation
        assert released.state == again.state == pb.RESERVATION_STATE_RELEASED
        assert nanos(finance.budget().reserved) == 0
        error = rpc_error(
            finance.payments.Payout, finance.payout_request("p1", reservation.reservation_id)
        )
        assert error_reason(error) == "RESERVATION_RELEASED"

    def test_consumed_reservation_cannot_be_released(self, finance):
        """Releasing a reservation a payout spent is RESERVATION_CONSUMED and refunds nothing."""
        reservation = finance.reserve("k1")
        finance.payments.Payout(finance.payout_request("p1", reservation.reservation_id), timeout=5)
        error = rpc_error(
            finance.budgets.ReleaseReservation,
            pb.ReleaseReservationRequest(reservation_id=reservation.reservation_id),
        )
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(error) == "RESERVATION_CONSUMED"
        assert nanos(finance.budget().spent) == nanos(EUR_100)

    def test_unknown_reservation_is_not_found(self, finance):
        """Releasing a reservation nobody made is NOT_FOUND."""
        error = rpc_error(
            finance.budgets.ReleaseReservation,
            pb.ReleaseReservationRequest(reservation_id="rsv_none"),
        )
        assert error.code() is grpc.StatusCode.NOT_FOUND

    def test_unknown_cost_center_is_not_found(self, finance):
        """A budget that does not exist is NOT_FOUND, for reading and for reserving."""
        error = rpc_error(finance.budgets.GetBudget, pb.GetBudgetRequest(cost_center_id="CC-X"))
        assert error.code() is grpc.StatusCode.NOT_FOUND
        error = rpc_error(
            finance.budgets.ReserveFunds,
            pb.ReserveFundsRequest(idempotency_key="k1", cost_center_id="CC-X", amount=EUR_100),
        )
        assert error.code() is grpc.StatusCode.NOT_FOUND


class TestBadInput:
    @pytest.mark.parametrize(
        ("amount", "field"),
        [
            (money_pb2.Money(currency_code="EUR", units=-1), "amount"),
            (money_pb2.Money(currency_code="EUR", units=1, nanos=-1), "amount.nanos"),
            (money_pb2.Money(currency_code="EUR", nanos=2_000_000_000), "amount.nanos"),
            (money_pb2.Money(currency_code="XXX", units=1), "amount.currency_code"),
            (money_pb2.Money(currency_code="eur", units=1), "amount.currency_code"),
        ],
    )
    def test_malformed_amounts(self, finance, amount, field):
        """Bad amounts on a payout are INVALID_ARGUMENT naming the field; nothing is paid."""
        reservation = finance.reserve("k1")
        request = finance.payout_request("p1", reservation.reservation_id, amount)
        error = rpc_error(finance.payments.Payout, request)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field in bad_request_fields(error)
        assert finance.ledger() == []

    def test_empty_payout_names_every_required_field(self, finance):
        """An empty Payout request lists all its missing fields."""
        error = rpc_error(finance.payments.Payout, pb.PayoutRequest())
        assert set(bad_request_fields(error)) == {
            "idempotency_key",
            "reservation_id",
            "payee_employee_id",
            "amount",
        }

    def test_empty_reserve_names_every_required_field(self, finance):
        """An empty ReserveFunds request lists all its missing fields and holds nothing."""
        error = rpc_error(finance.budgets.ReserveFunds, pb.ReserveFundsRequest())
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert set(bad_request_fields(error)) == {"idempotency_key", "cost_center_id", "amount"}

    def test_memo_longer_than_500_characters(self, finance):
        """A memo over 500 characters is INVALID_ARGUMENT naming memo; nothing is paid."""
        reservation = finance.reserve("k1")
        request = finance.payout_request("p1", reservation.reservation_id)
        request.memo = "m" * 501
        error = rpc_error(finance.payments.Payout, request)
        assert set(bad_request_fields(error)) == {"memo"}
        assert finance.ledger() == []

    @pytest.mark.parametrize(
        ("call", "request_", "field"),
        [
            ("GetBudget", pb.GetBudgetRequest(cost_center_id="CC ENG"), "cost_center_id"),
            ("ReleaseReservation", pb.ReleaseReservationRequest(), "reservation_id"),
            ("GetPayout", pb.GetPayoutRequest(payout_id="pay/1"), "payout_id"),
            ("ListLedgerEntries", pb.ListLedgerEntriesRequest(page_size=-1), "page_size"),
        ],
    )
    def test_malformed_ids_and_page_sizes(self, finance, call, request_, field):
        """Missing or malformed ids and negative page sizes are INVALID_ARGUMENT naming them."""
        stub = finance.payments if hasattr(finance.payments, call) else finance.budgets
        error = rpc_error(getattr(stub, call), request_)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert set(bad_request_fields(error)) == {field}

    def test_malformed_idempotency_key(self, finance):
        """Keys with spaces or over 128 characters are refused."""
        for key in ["has space", "k" * 129]:
            error = rpc_error(
                finance.budgets.ReserveFunds,
                pb.ReserveFundsRequest(
                    idempotency_key=key, cost_center_id="CC-ENG", amount=EUR_100
                ),
            )
            assert "idempotency_key" in bad_request_fields(error)


class TestLedger:
    def test_ledger_pages_oldest_first(self, finance):
        """ListLedgerEntries walks every entry once, oldest first, filtered by cost centre."""
        paid = []
        for n in range(5):
            reservation = finance.reserve(f"r{n}")
            request = finance.payout_request(f"p{n}", reservation.reservation_id)
            paid.append(finance.payments.Payout(request, timeout=5).payout.payout_id)
        reservation = finance.reserve("other", cost_center_id="CC-FIN")
        finance.payments.Payout(
            finance.payout_request("p-fin", reservation.reservation_id), timeout=5
        )

        seen, token = [], ""
        while True:
            response = finance.payments.ListLedgerEntries(
                pb.ListLedgerEntriesRequest(page_size=2, page_token=token, cost_center_id="CC-ENG"),
                timeout=5,
            )
            seen += [e.payout_id for e in response.entries]
            token = response.next_page_token
            if not token:
                break
        assert seen == paid

    def test_token_from_another_filter_is_refused(self, finance):
        """A page token is only valid with the filter that produced it."""
        for n in range(3):
            reservation = finance.reserve(f"r{n}")
            request = finance.payout_request(f"p{n}", reservation.reservation_id)
            finance.payments.Payout(request, timeout=5)
        token = finance.payments.ListLedgerEntries(
            pb.ListLedgerEntriesRequest(page_size=1), timeout=5
        ).next_page_token
        error = rpc_error(
            finance.payments.ListLedgerEntries,
            pb.ListLedgerEntriesRequest(page_token=token, cost_center_id="CC-ENG"),
        )
        assert "page_token" in bad_request_fields(error)
