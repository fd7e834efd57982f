"""The access policy file: its schema, and FileAccessPolicy reloading it with a last good."""

from __future__ import annotations

import json

import pytest
from structlog.testing import capture_logs

from deptmesh.services import intentions
from deptmesh.sidecar.authorization.policy import parse_method_rules
from deptmesh.sidecar.authorization.sources import (
    MAX_POLICY_FILE_BYTES,
    FileAccessPolicy,
    parse_policy_document,
)

PAYOUT = "/deptmesh.finance.v1.PaymentService/Payout"
GET_BUDGET = "/deptmesh.finance.v1.BudgetService/GetBudget"

DOCUMENT = {
    "intentions": [
        {"source": "reimbursement", "destination": "finance", "action": "allow"},
        {"source": "hr", "destination": "finance", "action": "allow"},
        {"source": "*", "destination": "hr", "action": "allow"},
        {"source": "batch", "destination": "hr", "action": "deny"},
    ],
    "methods": {PAYOUT: ["reimbursement"]},
}


def allow(source: str, destination: str) -> dict[str, str]:
    return {"source": source, "destination": destination, "action": "allow"}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path, document) -> None:
    path.write_text(document if isinstance(document, str) else json.dumps(document))


def rejections(logs) -> list[dict]:
    return [entry for entry in logs if entry["event"] == "access_policy_rejected"]


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "policy.json"
    write(path, DOCUMENT)
    return path


class TestPolicyDocument:
    def test_intentions_and_method_rules_are_read(self):
        """A valid document yields its intentions, in order, and its method rules."""
        found, rules = parse_policy_document(json.dumps(DOCUMENT))
        assert [(i.source, i.destination, i.action) for i in found] == [
            ("reimbursement", "finance", "allow"),
            ("hr", "finance", "allow"),
            ("*", "hr", "allow"),
            ("batch", "hr", "deny"),
        ]
        assert rules.allowed_callers == {PAYOUT: frozenset({"reimbursement"})}

    def test_empty_policy_is_valid(self):
        """No intentions and no rules is a valid document: it denies everything."""
        found, rules = parse_policy_document('{"intentions": [], "methods": {}}')
        assert (found, dict(rules.allowed_callers)) == ([], {})

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ("{not json", "not JSON"),
            (b"\xff\xfe\x00garbage", "not JSON"),
            ("[" * 100_000 + "]" * 100_000, "not JSON"),  # nested past the recursion limit
            ("[]", "must be an object"),
            ('{"intentions": [], "methods": {}, "quota": 1}', r"unknown keys \['quota'\]"),
            ('{"intentions": [], "method": {}}', r"unknown keys \['method'\]"),
            ('{"intentions": []}', r"lacks \['methods'\]"),
            ('{"intentions": {}, "methods": {}}', '"intentions" must be a list'),
            (
                '{"intentions": ["reimbursement"], "methods": {}}',
                r"intentions\[0\] must be an object",
            ),
            (
                '{"intentions": [{"source": "a", "destination": "b"}], "methods": {}}',
                "exactly the keys action, destination, source",
            ),
            (
                json.dumps({"intentions": [{**allow("a", "b"), "note": "x"}], "methods": {}}),
                "exactly the keys",
            ),
            (
                json.dumps({"intentions": [allow("Reimbursement", "hr")], "methods": {}}),
                "source 'Reimbursement' is not a service name",
            ),
            (
                json.dumps(
                    {"intentions": [{**allow("a", "hr"), "source": 7}], "methods": {}},
                ),
                "source 7 is not a service name",
            ),
            (
                json.dumps({"intentions": [allow("a", "hr\n")], "methods": {}}),
                "destination 'hr\\\\n' is not a service name",
            ),
            (
                json.dumps({"intentions": [allow("a", "*")], "methods": {}}),
                "destination must name one service, not",
            ),
            (
                json.dumps(
                    {"intentions": [{**allow("a", "hr"), "action": "permit"}], "methods": {}}
                ),
                'action \'permit\' is not "allow" or "deny"',
            ),
            (
                json.dumps(
                    {
                        "intentions": [allow("a", "hr"), {**allow("a", "hr"), "action": "deny"}],
                        "methods": {},
                    }
                ),
                r"intentions\[1\]: a -> hr appears more than once",
            ),
            ('{"intentions": [], "methods": []}', '"methods" must map'),
            ('{"intentions": [], "methods": {"Payout": ["a"]}}', "not a method path"),
            (json.dumps({"intentions": [], "methods": {PAYOUT: "a"}}), "list of service names"),
            (json.dumps({"intentions": [], "methods": {PAYOUT: ["A B"]}}), "not service names"),
        ],
    )
    def test_bad_documents_are_rejected_with_a_reason(self, document, message):
        """Unknown keys, wrong types, bad names and actions raise ValueError saying what."""
        with pytest.raises(ValueError, match=message):
            parse_policy_document(document)


class TestMethodRulesDocumentNesting:
    def test_nesting_past_the_recursion_limit_is_a_bad_document(self):
        """Consul's method-rules document nested too deeply is a ValueError like any other
        bad document (the watch that applies it handles only ValueError)."""
        with pytest.raises(ValueError, match="not JSON"):
            parse_method_rules('{"methods": ' + "[" * 100_000)


class TestFileAccessPolicy:
    def test_decides_by_the_file(self, policy_file):
        """Intentions and method rules from the file decide calls; the rest is denied."""
        policy = FileAccessPolicy(policy_file)()
        assert policy.decide("reimbursement", "finance", PAYOUT).allowed
        assert not policy.decide("hr", "finance", PAYOUT).allowed
        assert policy.decide("hr", "finance", GET_BUDGET).allowed
        assert "default deny" in policy.decide("marketing", "finance", GET_BUDGET).rule
        assert not policy.decide(
            "batch", "hr", "/deptmesh.hr.v1.EmployeeService/GetEmployee"
        ).allowed

    def test_bad_file_at_start_is_an_error_naming_it(self, policy_file):
        """A file that does not validate fails construction with the file and the reason."""
        write(policy_file, {**DOCUMENT, "extra": True})
        with pytest.raises(ValueError, match=r"policy\.json: .*unknown keys"):
            FileAccessPolicy(policy_file)

    def test_missing_file_at_start_is_an_error(self, tmp_path):
        """A file that is not there fails construction."""
        with pytest.raises(FileNotFoundError):
            FileAccessPolicy(tmp_path / "absent.json")

    def test_negative_interval_is_refused(self, policy_file):
        """The check interval is validated at construction."""
        with pytest.raises(ValueError, match="check_interval"):
            FileAccessPolicy(policy_file, check_interval=-1)

    def test_change_applies_after_the_check_interval(self, policy_file):
        """A rewritten file is not read before the interval has passed, then applies."""
        clock = Clock()
        source = FileAccessPolicy(policy_file, check_interval=1.0, clock=clock)
        write(policy_file, {**DOCUMENT, "methods": {}})
        clock.now += 0.5
        assert not source().decide("hr", "finance", PAYOUT).allowed  # not looked at yet
        clock.now += 0.5
        assert source().decide("hr", "finance", PAYOUT).allowed

    def test_unchanged_file_keeps_the_same_policy(self, policy_file):
        """Looking again at an unchanged file builds nothing new."""
        clock = Clock()
        source = FileAccessPolicy(policy_file, clock=clock)
        first = source()
        clock.now += 5
        assert source() is first

    def test_bad_update_is_logged_once_and_the_last_good_stays(self, policy_file):
        """A bad rewrite is rejected with a log event and the reason; the last good
        policy stays in force, and the same bad content is not logged again."""
        clock = Clock()
        source = FileAccessPolicy(policy_file, clock=clock)
        with capture_logs() as logs:
            write(policy_file, {**DOCUMENT, "intentions": [allow("hr", "finance") | {"x": 1}]})
            for _ in range(3):
                clock.now += 1
                policy = source()
        assert len(rejections(logs)) == 1
        assert "exactly the keys" in rejections(logs)[0]["reason"]
        assert rejections(logs)[0]["path"] == str(policy_file)
        assert policy.decide("reimbursement", "finance", PAYOUT).allowed

        with capture_logs() as logs:
            write(policy_file, {**DOCUMENT, "intentions": []})
            clock.now += 1
            assert not source().decide("reimbursement", "finance", PAYOUT).allowed
        assert [entry["event"] for entry in logs] == ["access_policy_applied"]

    def test_half_written_file_is_rejected_until_complete(self, policy_file):
        """A truncated rewrite seen mid-write is rejected; the complete file then applies."""
        clock = Clock()
        source = FileAccessPolicy(policy_file, clock=clock)
        complete = json.dumps({**DOCUMENT, "intentions": [allow("marketing", "finance")]})
        with capture_logs() as logs:
            write(policy_file, complete[: len(complete) // 2])
            clock.now += 1
            assert source().decide("reimbursement", "finance", PAYOUT).allowed
            write(policy_file, complete)
            clock.now += 1
            assert source().decide("marketing", "finance", GET_BUDGET).allowed
        assert "not JSON" in rejections(logs)[0]["reason"]

    def test_removed_file_keeps_the_last_good(self, policy_file):
        """A file that disappears is logged as unreadable; the last good policy stays."""
        clock = Clock()
        source = FileAccessPolicy(policy_file, clock=clock)
        with capture_logs() as logs:
            policy_file.unlink()
            clock.now += 1
            assert source().decide("reimbursement", "finance", PAYOUT).allowed
            write(policy_file, DOCUMENT)  # the same content again: applied afresh
            clock.now += 1
            source()
        assert "cannot read" in rejections(logs)[0]["reason"]
        assert logs[-1]["event"] == "access_policy_applied"

    def test_oversized_file_is_rejected(self, policy_file):
        """A file larger than the limit is never parsed; the last good policy stays."""
        clock = Clock()
        source = FileAccessPolicy(policy_file, clock=clock)
        with capture_logs() as logs:
            write(policy_file, " " * MAX_POLICY_FILE_BYTES + json.dumps(DOCUMENT))
            clock.now += 1
            assert source().decide("reimbursement", "finance", PAYOUT).allowed
        assert "larger than" in rejections(logs)[0]["reason"]


class TestCompanyPolicyFile:
    def test_written_file_enforces_the_company_policy(self, tmp_path):
        """The file written from deptmesh.services.intentions decides as the Consul policy does."""
        path = tmp_path / "policy.json"
        intentions.write_policy_file(path)
        policy = FileAccessPolicy(path)()
        for source, destination, _ in intentions.INTENTIONS:
            assert policy.decide(source, destination, "/deptmesh.x.v1.S/M").allowed
        assert policy.decide("reimbursement", "finance", PAYOUT).allowed
        assert not policy.decide("hr", "finance", PAYOUT).allowed
        assert not policy.decide("anonymous", "hr", "/deptmesh.x.v1.S/M").allowed

    def test_document_holds_exactly_the_intentions_and_rules(self):
        """The document is INTENTIONS plus METHOD_RULES, nothing added or dropped."""
        document = intentions.as_policy_document()
        assert [tuple(i.values()) for i in document["intentions"]] == list(intentions.INTENTIONS)
        assert document["methods"] == intentions.METHOD_RULES["methods"]

    def test_extra_intention_from_the_command_line(self, tmp_path):
        """`python -m deptmesh.services.intentions PATH --allow anonymous:hr` adds it."""
        path = tmp_path / "policy.json"
        assert intentions.main([str(path), "--allow", "anonymous:hr"]) == 0
        policy = FileAccessPolicy(path)()
        assert policy.decide(
            "anonymous", "hr", "/deptmesh.hr.v1.EmployeeService/GetEmployee"
        ).allowed

    def test_invalid_extra_intention_writes_nothing(self, tmp_path):
        """An extra intention that does not validate leaves no file behind, not even a temp."""
        with pytest.raises(ValueError, match="not a service name"):
            intentions.write_policy_file(tmp_path / "policy.json", ("Not Valid", "hr", "allow"))
        assert list(tmp_path.iterdir()) == []
