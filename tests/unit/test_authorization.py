"""The authorization policy core: intentions, method rules, default deny."""

from __future__ import annotations

import json

import pytest

from deptmesh.sidecar.authorization.policy import AccessPolicy, Intention, parse_method_rules

PAYOUT = "/deptmesh.finance.v1.PaymentService/Payout"
RULES = parse_method_rules(json.dumps({"methods": {PAYOUT: ["reimbursement"]}}))
POLICY = AccessPolicy(
    [
        Intention("reimbursement", "finance", "allow"),
        Intention("hr", "finance", "allow"),
        Intention("*", "hr", "allow"),
        Intention("batch", "hr", "deny"),
    ],
    RULES,
)


class TestAccessPolicy:
    def test_allowed_by_intention_and_method_rule(self):
        """reimbursement may pay: its intention allows finance and the rule names it."""
        assert POLICY.decide("reimbursement", "finance", PAYOUT).allowed

    def test_method_rule_denies_other_callers(self):
        """hr may call finance but not Payout; the decision names the rule."""
        decision = POLICY.decide("hr", "finance", PAYOUT)
        assert not decision.allowed
        assert PAYOUT in decision.rule

    def test_default_deny_without_intention(self):
        """A caller with no intention is denied, and the reason says default deny."""
        decision = POLICY.decide(
            "marketing", "finance", "/deptmesh.finance.v1.BudgetService/GetBudget"
        )
        assert not decision.allowed
        assert "default deny" in decision.rule

    def test_exact_deny_beats_wildcard_allow(self):
        """An explicit deny for a source wins over `* -> hr` allow."""
        assert POLICY.decide("finance", "hr", "/deptmesh.hr.v1.EmployeeService/GetEmployee").allowed
        assert not POLICY.decide(
            "batch", "hr", "/deptmesh.hr.v1.EmployeeService/GetEmployee"
        ).allowed

    @pytest.mark.parametrize(
        "path",
        [PAYOUT.lower(), PAYOUT + "/", PAYOUT.replace("/Payout", "//Payout"), "/" + PAYOUT],
    )
    def test_method_path_variants_do_not_match_the_rule(self, path):
        """Matching is exact: case, `//` and trailing `/` variants are other paths."""
        decision = POLICY.decide("hr", "finance", path)
        # grpc never dispatches such a path to Payout; the rule is not consulted for it
        assert "method rule" not in decision.rule


class TestMethodRulesDocument:
    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ("not json", "not JSON"),
            ("[]", "exactly one key"),
            ('{"methods": [], "x": 1}', "exactly one key"),
            ('{"methods": {"Payout": ["a"]}}', "method path"),
            ('{"methods": {"/a.B/C": "reimbursement"}}', "list of service names"),
            ('{"methods": {"/a.B/C": ["Bad Name"]}}', "not service names"),
        ],
    )
    def test_bad_documents_are_rejected_with_a_reason(self, document, message):
        """Every malformed document raises ValueError saying what is wrong."""
        with pytest.raises(ValueError, match=message):
            parse_method_rules(document)
