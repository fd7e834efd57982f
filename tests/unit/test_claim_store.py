"""ClaimStore: the claim lifecycle as the database enforces it, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from deptmesh.services.money import Amount
from deptmesh.services.pagination import Page
from deptmesh.services.reimbursement.store import ClaimState, ClaimStore, NewClaim
from deptmesh.sidecar.errors import AlreadyExists, FailedPrecondition, NotFound

CLAIM = NewClaim("E1002", Amount("EUR", 42_500_000_000), "Train")


@pytest.fixture
def store(database_target):
    store = ClaimStore(database_target)
    yield store
    store.close()


class TestClaimStore:
    def test_submitted_claim_starts_in_submitted(self, store):
        """A new claim is SUBMITTED, undecided and unpaid."""
        claim = store.submit("reimbursement", "", CLAIM)
        assert claim.state is ClaimState.SUBMITTED
        assert (claim.decided_by, claim.reservation_id, claim.payout_id) == ("", "", "")
        assert store.get(claim.claim_id) == claim

    def test_request_id_replay_returns_the_original(self, store):
        """The same caller and request_id with the same claim returns the first claim."""
        first = store.submit("web", "r1", CLAIM)
        assert store.submit("web", "r1", CLAIM) == first

    def test_request_id_is_scoped_per_caller(self, store):
        """Two callers using the same request_id get two claims."""
        assert store.submit("web", "r1", CLAIM) != store.submit("mobile", "r1", CLAIM)

    def test_request_id_reuse_for_another_claim_is_refused(self, store):
        """Reusing a request_id for a different claim raises AlreadyExists."""
        store.submit("web", "r1", CLAIM)
        other = NewClaim("E1002", Amount("EUR", 1), "Train")
        with pytest.raises(AlreadyExists) as caught:
            store.submit("web", "r1", other)
        assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"

    def test_approve_then_pay(self, store):
        """A claim moves SUBMITTED -> APPROVED -> PAID, recording who and what."""
        claim = store.submit("web", "", CLAIM)
        approved = store.approve(claim.claim_id, "E1001", "rsv_1")
        assert (approved.state, approved.decided_by, approved.reservation_id) == (
            ClaimState.APPROVED,
            "E1001",
            "rsv_1",
        )
        assert store.awaiting_payout(10) == [approved]
        paid = store.mark_paid(claim.claim_id, "pay_1")
        assert (paid.state, paid.payout_id) == (ClaimState.PAID, "pay_1")
        assert store.awaiting_payout(10) == []

    @pytest.mark.parametrize("decide", ["approve", "reject"])
    def test_only_submitted_claims_can_be_decided(self, store, decide):
        """Deciding a claim that was already decided raises CLAIM_NOT_SUBMITTED."""
        claim = store.submit("web", "", CLAIM)
        store.reject(claim.claim_id, "E1001", "no receipt")
        with pytest.raises(FailedPrecondition) as caught:
            getattr(store, decide)(claim.claim_id, "E1001", "x")
        assert caught.value.reason == "CLAIM_NOT_SUBMITTED"

    def test_paying_an_unapproved_claim_is_refused(self, store):
        """mark_paid needs an APPROVED claim."""
        claim = store.submit("web", "", CLAIM)
        with pytest.raises(FailedPrecondition):
            store.mark_paid(claim.claim_id, "pay_1")

    def test_unknown_claim_is_not_found(self, store):
        """Looking up a claim that does not exist raises NotFound."""
        with pytest.raises(NotFound):
            store.get("clm_missing")

    def test_page_filters_by_employee_and_state(self, store):
        """Listing filters by employee and state, newest first."""
        mine = [store.submit("web", "", CLAIM) for _ in range(3)]
        store.submit("web", "", NewClaim("E1003", Amount("EUR", 1), "Lunch"))
        store.reject(mine[0].claim_id, "E1001", "no")
        listed = store.page(Page(10, None), "E1002", ClaimState.SUBMITTED)
        assert [c.claim_id for c in listed] == [mine[2].claim_id, mine[1].claim_id]

    def test_claims_survive_reopening_the_database(self, database_target):
        """A claim written before a restart is there after it."""
        first = ClaimStore(database_target)
        claim = first.submit("web", "", CLAIM)
        first.close()
        second = ClaimStore(database_target)
        assert second.get(claim.claim_id) == claim
        second.close()
