"""The policy document: its schema, line-numbered problems, TOML rendering and diffs,
and the company's own file."""

from __future__ import annotations

import json
import tomllib

import pytest

from deptmesh.services import intentions, quota_tiers
from deptmesh.services.company_policy import POLICY_FILE, company_policy, company_policy_text
from deptmesh.sidecar.authorization.sources import parse_policy_document
from deptmesh.sidecar.policy_document import (
    Change,
    PolicyDocumentInvalid,
    contract_declares,
    parse_policy_text,
    policy_changes,
    render_changes,
    render_policy,
)
from deptmesh.sidecar.policy_document.toml_lines import key_lines
from deptmesh.sidecar.quotas.policy import parse_quota_policy

PAYOUT = "/deptmesh.finance.v1.PaymentService/Payout"

VALID = """\
schema_version = 1

[departments]
hr = { description = "people" }
finance = {}
reimbursement = {}

[[intentions]]
source = "reimbursement"
destination = "finance"
action = "allow"

[[intentions]]
source = "*"
destination = "hr"
action = "deny"

[method_rules]
"/deptmesh.finance.v1.PaymentService/Payout" = ["reimbursement"]

[quotas]
default_tier = "standard"

[quotas.tiers.standard]
rate = 50
burst = 100
max_in_flight = 16

[quotas.services.finance.callers]
reimbursement = "standard"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyDocumentInvalid) as raised:
        parse_policy_text(text, name="policy.toml")
    return list(raised.value.lines)


def leaf_paths(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaf_paths(item, (*path, index))
    else:
        yield path


class TestCompanyPolicyFile:
    def test_the_shipped_file_validates(self):
        """The company's file, read from the installed package, is a valid document with
        every section."""
        document = company_policy()
        assert {"hr", "finance", "reimbursement", "travel", "self-service"} <= set(
            document.departments
        )
        assert document.quotas is not None
        assert document.method_rules[PAYOUT] == ("reimbursement",)

    def test_every_method_it_names_is_in_a_contract(self):
        """Each method rule and quota override names a method the contracts declare."""
        document = company_policy()
        named = set(document.method_rules)
        for rules in document.quotas["services"].values():
            named |= set(rules.get("methods", {}))
        assert named
        assert all(map(contract_declares, named))

    def test_the_python_views_are_the_files(self):
        """intentions.INTENTIONS, METHOD_RULES and quota_tiers.QUOTA_POLICY are read from it."""
        document = company_policy()
        assert len(intentions.INTENTIONS) == len(document.intentions)
        assert intentions.METHOD_RULES["methods"][PAYOUT] == ["reimbursement"]
        assert parse_quota_policy(quota_tiers.document()).describe()["default_tier"] == "standard"
        parse_policy_document(json.dumps(intentions.as_policy_document()))  # --policy-file

    def test_extra_intentions_declare_their_identities(self):
        """An extra intention for a test client adds it to the departments."""
        document = company_policy(("claims-e2e", "reimbursement", "allow"))
        assert "claims-e2e" in document.departments
        assert any(i.source == "claims-e2e" for i in document.intentions)

    def test_an_invalid_extra_intention_is_refused(self):
        """A name that is no department name is refused with the path of the problem."""
        with pytest.raises(PolicyDocumentInvalid, match="departments"):
            company_policy(("Not Valid", "hr", "allow"))


class TestProblems:
    def test_a_valid_document_parses(self):
        """A document that follows the schema gives its policy, canonically ordered."""
        document = parse_policy_text(VALID)
        assert [(i.source, i.destination) for i in document.intentions] == [
            ("reimbursement", "finance"),
            ("*", "hr"),
        ]
        assert document.departments["hr"].description == "people"

    def test_a_toml_syntax_error_names_its_line(self):
        """A TOML syntax error is one line with the file, tomllib's line and column."""
        text = VALID.replace('action = "deny"', "action = deny")
        [line] = problems(text)
        assert line.startswith("policy.toml:16: TOML syntax: Invalid value")
        assert "(column" in line

    def test_an_unknown_department_names_its_line_and_field(self):
        """A destination no department declares is reported at its line, by its path."""
        text = VALID.replace('destination = "hr"', 'destination = "hrr"')
        assert problems(text) == [
            "policy.toml:15: intentions[1].destination: unknown department 'hrr'"
            " (declare it under [departments])"
        ]

    def test_an_unknown_field_names_its_line(self):
        """A field the schema does not know is an error, not ignored."""
        text = VALID.replace('action = "allow"', 'action = "allow"\nreason = "x"')
        assert problems(text) == [
            "policy.toml:12: intentions[0].reason: unknown field of an intention"
            " (known: source, destination, action)"
        ]

    def test_an_unknown_method_names_its_line(self):
        """A method rule for a method no contract declares is reported."""
        text = VALID.replace("PaymentService/Payout", "PaymentService/Payot")
        [line] = problems(text)
        assert line.startswith(
            'policy.toml:19: method_rules."/deptmesh.finance.v1.PaymentService/Payot":'
            " unknown method"
        )

    def test_bad_quota_tiers_name_their_lines(self):
        """A tier with a bad rate and an assignment to a tier that does not exist."""
        text = VALID.replace("rate = 50", "rate = 0").replace(
            'reimbursement = "standard"', 'reimbursement = "gold"'
        )
        assert problems(text) == [
            "policy.toml:25: quotas.tiers.standard.rate: must be a positive number, not 0",
            "policy.toml:30: quotas.services.finance.callers.reimbursement:"
            " unknown tier 'gold' (tiers: standard)",
        ]

    def test_an_unknown_section_is_an_error(self):
        """A top-level key the schema does not know (a typo) is reported, not dropped."""
        [line] = problems(VALID + "\n[method_rule]\n")
        assert line.startswith("policy.toml:32: method_rule: unknown section")

    def test_a_newer_schema_is_refused(self):
        """A document written to a newer schema says to upgrade deptmesh."""
        [line] = problems(VALID.replace("schema_version = 1", "schema_version = 3"))
        assert line == (
            "policy.toml:1: schema_version: 3 is newer than this deptmesh knows (2):"
            " upgrade deptmesh"
        )

    def test_a_missing_schema_version_is_reported_at_the_top(self):
        """A document that does not say its schema is refused."""
        [line] = problems(VALID.replace("schema_version = 1\n", ""))
        assert line.startswith("policy.toml:1: schema_version: missing")

    def test_every_problem_is_reported_in_line_order(self):
        """Several problems: one line each, sorted by line."""
        text = VALID.replace('"*"', '"nobody"').replace("max_in_flight = 16", "max_in_flight = 0")
        lines = problems(text)
        assert [line.split(":")[1] for line in lines] == ["14", "27"]

    def test_a_pair_twice_is_reported(self):
        """The same source -> destination twice is an error naming the first."""
        text = VALID + '\n[[intentions]]\nsource = "reimbursement"\ndestination = "finance"\n'
        text += 'action = "deny"\n'
        [line] = problems(text)
        assert "is already intentions[0]" in line


class TestKeyLines:
    def test_every_key_of_the_company_file_has_its_line(self):
        """Each leaf of the company's file is found on a line that holds its key or value."""
        text = company_policy_text()
        lines = key_lines(text)
        source = text.splitlines()
        for path in leaf_paths(tomllib.loads(text)):
            line = source[lines[path] - 1]
            last = path[-1]
            assert isinstance(last, int) or str(last) in line, (path, line)

    def test_strings_that_look_like_structure_are_skipped(self):
        """Brackets, equals signs and hashes inside strings of every kind are content."""
        text = (
            'a = "[not] = #table"\n'
            "b = '''\n[c]\nd = 1\n'''\n"
            'e = """x ""\\"\n[f]"""""\n'
            '"g.h" = { i = ["]", { j = 1 }], "k\\"" = 2 }\n'
            "l = [\n  1, # comment ]\n  2,\n]\n"
            "[[m.n]]\no = 1\n[[m.n]]\no = 2\n[m.n.p]\nq = 3\n"
        )
        lines = key_lines(text)
        assert lines[("a",)] == 1
        assert lines[("b",)] == 2
        assert lines[("e",)] == 6
        assert lines[("g.h", "i", 1, "j")] == 8
        assert lines[("g.h", 'k"')] == 8
        assert lines[("l", 1)] == 11
        assert lines[("m", "n", 1, "o")] == 16
        assert lines[("m", "n", 1, "p", "q")] == 18
        assert ("c",) not in lines
        assert ("f",) not in lines


class TestRenderAndChanges:
    def test_a_rendered_document_reads_back_equal(self):
        """What `policy show` prints is a document equal to the one rendered."""
        for document in (parse_policy_text(VALID), company_policy()):
            assert parse_policy_text(render_policy(document, header="live\npolicy")) == document

    def test_changes_are_added_removed_and_changed_entries(self):
        """The diff names each intention, method rule and quota setting that differs."""
        before = parse_policy_text(VALID)
        after = parse_policy_text(
            VALID.replace('action = "deny"', 'action = "allow"')
            .replace("rate = 50", "rate = 60")
            .replace('\n"/deptmesh.finance.v1.PaymentService/Payout" = ["reimbursement"]', "")
        )
        changes = policy_changes(before, after)
        assert changes == (
            Change("intentions", "* -> hr", "deny", "allow"),
            Change(
                "method_rules",
                '"/deptmesh.finance.v1.PaymentService/Payout"',
                '["reimbursement"]',
                None,
            ),
            Change("quotas", "tiers.standard.rate", "50", "60"),
        )
        assert render_changes(changes).splitlines() == [
            "intentions:",
            "  ~ * -> hr: deny => allow",
            "method_rules:",
            '  - "/deptmesh.finance.v1.PaymentService/Payout": ["reimbursement"]',
            "quotas:",
            "  ~ tiers.standard.rate: 50 => 60",
        ]
        assert policy_changes(after, after) == ()

    def test_the_policy_file_name_is_the_packaged_one(self):
        """The file is read from the package, where the wheel ships it."""
        assert POLICY_FILE == "company_policy.toml"
        assert company_policy_text().startswith("# The company's policy")
