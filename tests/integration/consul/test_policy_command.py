"""`deptmesh policy check|apply|show` against a real Consul agent with ACLs on.

The module runs an agent of its own: an apply makes the file the whole truth
and so removes every intention it does not hold, which other tests' would be.
Each test starts from an empty policy.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deptmesh.registry.agent import DevAgent
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.local_mesh import write_local_mesh
from deptmesh.services.company_policy import company_policy_text
from deptmesh.sidecar.authorization.sources import ConsulAccessPolicy
from deptmesh.sidecar.cli.command import main
from deptmesh.sidecar.policy_document import (
    ConcurrentPolicyApply,
    commit_plan,
    parse_policy_text,
    plan_policy,
    read_live_policy,
)
from deptmesh.sidecar.policy_document.apply import ABANDONED_AFTER
from deptmesh.sidecar.policy_document.live import APPLIED_KEY
from deptmesh.sidecar.quotas.sources import QUOTA_POLICY_KEY, consul_quota_policy

PAYOUT = "/deptmesh.finance.v1.PaymentService/Payout"
POLICY_PREFIX = "deptmesh/policy/"
# The company's file with one quota changed, one intention gone and one added.
CHANGES = (
    ("rate = 20\n", "rate = 25\n"),
    ('source = "travel"\ndestination = "hr"', 'source = "travel"\ndestination = "finance"'),
)
INVALID = {
    "syntax": ('action = "allow"', "action = allow", "TOML syntax: Invalid value"),
    "unknown field": ('action = "allow"', 'action = "allow"\nactor = "x"', "intentions[0].actor"),
    "unknown department": (
        'source = "travel"\ndestination = "hr"',
        'source = "travel"\ndestination = "hrr"',
        "intentions[4].destination: unknown department 'hrr'",
    ),
    "unknown method": (
        "BudgetService/ReserveFunds",
        "BudgetService/ReserveFundz",
        'method_rules."/deptmesh.finance.v1.BudgetService/ReserveFundz": unknown method',
    ),
    "bad quota tier": (
        'finance = "critical"',
        'finance = "platinum"',
        "quotas.services.hr.callers.finance: unknown tier 'platinum'",
    ),
}


@pytest.fixture(scope="module")
def agent() -> Iterator[DevAgent]:
    with DevAgent() as agent:
        yield agent


@dataclass
class Mesh:
    address: str
    platform_token: Path
    hr_token: Path
    platform: ConsulRegistry
    hr: ConsulRegistry
    folder: Path

    def policy(self, *argv: str, token: Path | None = None) -> int:
        """`deptmesh policy ARGV` against the agent, with the platform's token unless told."""
        flags = ["--consul-address", self.address]
        flags += ["--consul-token-file", str(token or self.platform_token)]
        return main(["policy", *argv, *flags])

    def file(self, text: str, name: str = "policy.toml") -> Path:
        path = self.folder / name
        path.write_text(text)
        return path

    def state(self) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
        """Every intention and every policy document in Consul."""
        _, entries = self.platform.intentions(0, 0)
        intentions = sorted((e["SourceName"], e["DestinationName"], e["Action"]) for e in entries)
        return intentions, self.platform.kv_values(POLICY_PREFIX)


@pytest.fixture(scope="module")
def tokens(agent, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tokens")
    admin = agent.admin()
    return (
        admin.platform_token().write_file(folder / "platform.token"),
        admin.department_token("hr").write_file(folder / "hr.token"),
    )


@pytest.fixture
def mesh(agent, tokens, tmp_path, monkeypatch) -> Mesh:
    """The module's agent with no policy in force, and no environment pointing elsewhere."""
    for name in ("CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEPTMESH_DEV_DIR", str(tmp_path / "no-local-mesh"))
    platform = ConsulRegistry(agent.address, token_file=tokens[0])
    _, entries = platform.intentions(0, 0)
    for entry in entries:
        platform.delete_intention(entry["ID"])
    for key in platform.kv_values(POLICY_PREFIX):
        platform.kv_delete(key)
    hr = ConsulRegistry(agent.address, token_file=tokens[1])
    return Mesh(agent.address, tokens[0], tokens[1], platform, hr, tmp_path)


def company_file(mesh: Mesh, *replacements: tuple[str, str], name: str = "policy.toml") -> Path:
    text = company_policy_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return mesh.file(text, name)


class TestCheck:
    def test_check_prints_what_apply_would_change(self, mesh, capsys):
        """Against a mesh running the company's policy, check of a changed file prints the
        intention added and removed and the quota changed, and changes nothing."""
        assert mesh.policy("apply", str(company_file(mesh))) == 0
        capsys.readouterr()
        before = mesh.state()
        changed = company_file(mesh, *CHANGES, name="changed.toml")
        assert mesh.policy("check", str(changed)) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith(f"{changed}: valid, schema 2: 7 departments, 13 intentions")
        assert out[1] == f"applying it to consul {mesh.address} would make 3 changes:"
        assert out[2:] == [
            "intentions:",
            "  + travel -> finance: allow",
            "  - travel -> hr: allow",
            "quotas:",
            "  ~ tiers.batch.rate: 20 => 25",
        ]
        assert mesh.state() == before

    def test_check_without_a_token_only_validates(self, mesh, capsys):
        """With no token from anywhere, check validates and says it did not compare."""
        argv = ["policy", "check", str(company_file(mesh)), "--consul-address", mesh.address]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "valid" in out
        assert "not compared with the live policy: no Consul token" in out

    @pytest.mark.parametrize("kind", sorted(INVALID))
    def test_an_invalid_document_names_line_and_field_and_changes_nothing(self, mesh, capsys, kind):
        """check and apply of an invalid file print `FILE:LINE: field: problem`, exit 1,
        and leave the policy in force as it was."""
        assert mesh.policy("apply", str(company_file(mesh))) == 0
        before = mesh.state()
        old, new, expected = INVALID[kind]
        bad = company_file(mesh, (old, new), name="bad.toml")
        capsys.readouterr()
        for action in ("check", "apply"):
            assert mesh.policy(action, str(bad)) == 1
            err = capsys.readouterr().err.splitlines()
            assert re.fullmatch(rf"{re.escape(str(bad))}:\d+: .+", err[0])
            assert expected in err[0]
            line = int(err[0].split(":")[1])
            assert new.splitlines()[-1] in bad.read_text().splitlines()[line - 1]
        assert mesh.state() == before


class TestApply:
    def test_apply_then_show_round_trips(self, mesh, capsys):
        """What apply writes, show prints back as a document equal to the file's."""
        path = company_file(mesh)
        assert mesh.policy("apply", str(path)) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[-1].startswith(f"applied {path} to consul {mesh.address}:")
        assert mesh.policy("show") == 0
        shown = capsys.readouterr().out
        assert shown.startswith(f"# the policy in force at consul {mesh.address} (apply serial 1")
        assert parse_policy_text(shown) == parse_policy_text(path.read_text())

    def test_apply_is_idempotent(self, mesh, capsys):
        """A second apply of the same file changes nothing, not even the apply record."""
        path = company_file(mesh)
        assert mesh.policy("apply", str(path)) == 0
        index, _ = mesh.platform.kv_entry(APPLIED_KEY)
        capsys.readouterr()
        assert mesh.policy("apply", str(path)) == 0
        assert capsys.readouterr().out.startswith("no changes")
        assert mesh.platform.kv_entry(APPLIED_KEY)[0] == index

    def test_the_services_read_what_apply_writes(self, mesh):
        """A department's own token reads the applied intentions, method rules and quotas as
        its sidecar does: reimbursement may pay, hr may not; reimbursement is critical."""
        assert mesh.policy("apply", str(company_file(mesh))) == 0
        access = ConsulAccessPolicy(mesh.hr)
        quotas = consul_quota_policy(mesh.hr)
        try:
            assert access().decide("reimbursement", "finance", PAYOUT).allowed
            assert not access().decide("hr", "finance", PAYOUT).allowed
            assert quotas().limits("hr", "reimbursement", PAYOUT).tier.name == "critical"
        finally:
            access.stop()
            quotas.stop()

    def test_hrs_token_cannot_apply(self, mesh, capsys):
        """hr's token is refused in one clear line, and nothing is changed."""
        assert mesh.policy("apply", str(company_file(mesh))) == 0
        before = mesh.state()
        capsys.readouterr()
        changed = company_file(mesh, *CHANGES, name="changed.toml")
        assert mesh.policy("apply", str(changed), token=mesh.hr_token) == 1
        [line] = capsys.readouterr().err.splitlines()
        assert line.startswith("deptmesh policy apply: consul refused writing")
        assert "Permission denied" in line
        assert "takes the platform's token" in line
        assert mesh.state() == before

    def test_a_local_mesh_is_used_without_flags(self, mesh, monkeypatch, capsys):
        """With no address or token given, show asks the local mesh's agent with its
        platform token."""
        assert mesh.policy("apply", str(company_file(mesh))) == 0
        local = write_local_mesh(mesh.folder / "dev", mesh.address)
        (local.tokens_directory / "platform.token").write_bytes(mesh.platform_token.read_bytes())
        monkeypatch.setenv("DEPTMESH_DEV_DIR", str(local.directory))
        capsys.readouterr()
        assert main(["policy", "show"]) == 0
        assert "[[intentions]]" in capsys.readouterr().out


class TestConcurrentApplies:
    def test_an_apply_planned_before_another_committed_changes_nothing(self, mesh):
        """Two applies read the same state; the second to commit fails its check-and-set on
        the apply record and leaves the first one's policy in force."""
        first = parse_policy_text(company_file(mesh).read_text())
        second = parse_policy_text(company_file(mesh, *CHANGES).read_text())
        winner = plan_policy(mesh.platform, second)
        loser = plan_policy(mesh.platform, first)
        assert commit_plan(mesh.platform, winner)
        after_winner = mesh.state()
        with pytest.raises(ConcurrentPolicyApply, match="nothing was changed"):
            commit_plan(mesh.platform, loser)
        assert mesh.state() == after_winner
        assert read_live_policy(mesh.platform).document == second

    def test_an_apply_under_way_refuses_another(self, mesh, capsys):
        """While the record says another apply is under way, apply refuses and changes
        nothing; a record left by an apply killed long ago is taken over."""
        record = {"serial": 7, "state": "applying", "at": time.time(), "sha256": ""}
        mesh.platform.kv_put(APPLIED_KEY, json.dumps(record))
        before = mesh.state()
        assert mesh.policy("apply", str(company_file(mesh))) == 1
        err = capsys.readouterr().err
        assert "another policy apply (serial 7) has been under way since" in err
        assert mesh.state() == before
        later = time.time() + ABANDONED_AFTER + 1
        plan = plan_policy(mesh.platform, company_file_document(mesh), clock=lambda: later)
        assert commit_plan(mesh.platform, plan, clock=lambda: later)
        assert read_live_policy(mesh.platform).applied.serial == 8

    def test_a_document_changed_during_the_apply_undoes_the_intentions(self, mesh):
        """A quota document written by hand after the plan makes the final transaction
        fail: the intentions already written are put back, and nothing else changes."""
        assert commit_plan(mesh.platform, plan_policy(mesh.platform, company_file_document(mesh)))
        plan = plan_policy(
            mesh.platform, parse_policy_text(company_file(mesh, *CHANGES).read_text())
        )
        by_hand = json.loads(mesh.platform.kv_values(QUOTA_POLICY_KEY)[QUOTA_POLICY_KEY])
        by_hand["tiers"]["batch"]["rate"] = 30
        mesh.platform.kv_put(QUOTA_POLICY_KEY, json.dumps(by_hand))
        before = mesh.state()
        with pytest.raises(ConcurrentPolicyApply, match="changed in Consul while this apply ran"):
            commit_plan(mesh.platform, plan)
        assert mesh.state() == before


def company_file_document(mesh: Mesh):
    return parse_policy_text(company_file(mesh).read_text())
