"""The quota policy document: tiers, assignments, overrides, and what a bad one says."""

from __future__ import annotations

import json

import pytest

from deptmesh.sidecar.quotas.policy import parse_quota_policy
from deptmesh.sidecar.quotas.stage import method_cost

LEDGER = "/deptmesh.finance.v1.PaymentService/ListLedgerEntries"
POLICY = {
    "tiers": {
        "critical": {"rate": 200, "burst": 400, "max_in_flight": 64},
        "standard": {"rate": 50, "burst": 100, "max_in_flight": 16},
        "batch": {"rate": 5, "burst": 10, "max_in_flight": 2, "shadow": True},
    },
    "default_tier": "standard",
    "services": {
        "finance": {
            "callers": {"reimbursement": "critical", "payroll": "batch"},
            "methods": {LEDGER: {"*": "batch", "reimbursement": "standard"}},
        }
    },
}


def policy(**changes):
    return parse_quota_policy(json.dumps({**POLICY, **changes}))


class TestLimits:
    def test_assigned_caller_gets_its_tier(self):
        """A caller listed for a destination gets that tier, on the caller's own bucket."""
        limits = policy().limits("finance", "reimbursement", "/deptmesh.finance.v1.X/Y")
        assert (limits.tier.name, limits.bucket_method) == ("critical", "")

    def test_unlisted_caller_gets_the_default_tier(self):
        """Any other authenticated caller, or another destination, gets default_tier."""
        assert policy().limits("finance", "hr", "/a.B/C").tier.name == "standard"
        assert policy().limits("hr", "reimbursement", "/a.B/C").tier.name == "standard"

    def test_method_override_for_one_caller_beats_the_wildcard(self):
        """A per-method rule naming the caller wins over '*'; both use a per-method bucket."""
        limits = policy().limits("finance", "reimbursement", LEDGER)
        assert (limits.tier.name, limits.bucket_method) == ("standard", LEDGER)
        assert policy().limits("finance", "hr", LEDGER).tier.name == "batch"

    def test_tier_fields(self):
        """Rates, burst, in-flight limit and shadow mode are read as given."""
        batch = policy().tiers["batch"]
        assert (batch.rate, batch.burst, batch.max_in_flight, batch.shadow) == (5, 10, 2, True)
        assert policy().tiers["critical"].shadow is False


class TestValidation:
    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ("not json", "not JSON"),
            ("[]", "must be an object"),
            (json.dumps({**POLICY, "extra": 1}), "unknown keys"),
            (json.dumps({**POLICY, "default_tier": "gold"}), "default_tier"),
            (json.dumps({**POLICY, "tiers": {}}), "at least one tier"),
            (json.dumps({**POLICY, "tiers": {"t": {"rate": 1}}}), "missing"),
            (
                json.dumps(
                    {**POLICY, "tiers": {"standard": {"rate": 0, "burst": 1, "max_in_flight": 1}}}
                ),
                "rate must be a positive number",
            ),
            (
                json.dumps(
                    {
                        **POLICY,
                        "tiers": {"standard": {"rate": 1, "burst": 1, "max_in_flight": 0}},
                    }
                ),
                "max_in_flight",
            ),
            (
                json.dumps({**POLICY, "services": {"finance": {"callers": {"hr": "gold"}}}}),
                "no tier named 'gold'",
            ),
            (
                json.dumps({**POLICY, "services": {"finance": {"methods": {"Payout": {}}}}}),
                "not a /package.Service/Method path",
            ),
        ],
    )
    def test_bad_documents_say_what_is_wrong(self, document, message):
        """Every kind of mistake is a ValueError naming the problem."""
        with pytest.raises(ValueError, match=message):
            parse_quota_policy(document)

    def test_describe_round_trips(self):
        """What `deptmesh quota` prints parses back to the same policy."""
        again = parse_quota_policy(json.dumps(policy().describe()))
        assert again.describe() == policy().describe()


class TestMethodCost:
    def test_cost_comes_from_the_contract(self):
        """The quota_cost method option declared in protos/ is the call's cost."""
        import deptmesh.finance.v1.finance_pb2  # noqa: F401 -- registers the descriptors

        assert method_cost(LEDGER) == 10
        assert method_cost("/deptmesh.finance.v1.PaymentService/GetPayout") == 1

    def test_unknown_method_costs_one(self):
        assert method_cost("/no.such.Service/Method") == 1
