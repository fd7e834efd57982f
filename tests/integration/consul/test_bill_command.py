"""`deptmesh bill` and `deptmesh usage` against a ledger on the mesh, as the platform.

Real Consul with ACLs, the company's policy applied (its rate cards written
where the ledger reads them), the platform's token obtaining the `platform`
leaf, mTLS to a `metering` department. Until the real ledger
(deptmesh.services.metering) is merged, the ledger here is a small
UsageLedgerService in this process that answers known statements and usage
and refuses, as the contract says, anyone but the platform and the department
itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from deptmesh.metering.v1 import metering_pb2, metering_pb2_grpc
from deptmesh.registry.agent import DevAgent
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.services.company_policy import apply_company_policy, company_policy
from deptmesh.sidecar import Server, current_caller
from deptmesh.sidecar.cli.acting_as import EXIT_BAD_INVOCATION, EXIT_FAILED
from deptmesh.sidecar.cli.command import main
from deptmesh.sidecar.host import instance_of
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity
from deptmesh.sidecar.metering.rate_card import RATE_CARDS_KEY, RateCards
from tests.integration.servers import wait_for
from tests.statements import PAYOUT, reimbursement_statement
from tests.unit.test_statement_view import CSV, TABLE


@dataclass
class Ledger(metering_pb2_grpc.UsageLedgerServiceServicer):
    """Answers reimbursement's known statement (an empty one for anyone else) and usage."""

    asked: list[tuple[str, str, str]] = field(default_factory=list)  # (caller, dept, month)

    def _may_read(self, department: str, context: grpc.ServicerContext) -> str:
        caller = current_caller().service
        if caller not in ("platform", department):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{caller} may not read {department}")
        return caller

    def GetStatement(self, request, context):
        caller = self._may_read(request.department, context)
        self.asked.append((caller, request.department, request.month))
        if request.department == "reimbursement":
            statement = reimbursement_statement()
        else:
            statement = metering_pb2.Statement(department=request.department, month=request.month)
        return metering_pb2.GetStatementResponse(statement=statement)

    def QueryUsage(self, request, context):
        self._may_read(request.department, context)
        usage = [
            metering_pb2.UsageSummary(
                caller="reimbursement",
                callee="hr",
                method="/deptmesh.hr.v1.EmployeeService/GetEmployee",
                calls=30,
                cost_units=30,
                errors=2,
            ),
            metering_pb2.UsageSummary(
                caller="reimbursement",
                callee="finance",
                method=PAYOUT,
                calls=4,
                cost_units=4,
                throttled=1,
                denied=0,
            ),
        ]
        return metering_pb2.QueryUsageResponse(usage=usage)


@dataclass
class Mesh:
    agent: DevAgent
    ledger: Ledger
    tokens: dict[str, Path]

    def run(self, capsys, command: str, *argv: str, identity: str = "platform"):
        """`deptmesh COMMAND ARGV --as IDENTITY` with that identity's token file."""
        status = main(
            [
                command,
                *argv,
                *("--as", identity, "--consul-address", self.agent.address),
                *("--consul-token-file", str(self.tokens[identity])),
            ]
        )
        captured = capsys.readouterr()
        return status, captured.out, captured.err


@pytest.fixture(scope="module")
def mesh(tmp_path_factory) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("bill-mesh")
    with DevAgent() as agent, ExitStack() as stack:
        tokens = agent.admin().mesh_tokens(("metering", "hr", "reimbursement"))
        files = {n: t.write_file(workdir / f"{n}.token") for n, t in tokens.departments.items()}
        files["platform"] = tokens.platform.write_file(workdir / "platform.token")
        apply_company_policy(ConsulRegistry(agent.address, token_file=files["platform"]))
        metering = ConsulRegistry(agent.address, token_file=files["metering"])
        leaf = ConsulConnectIdentity(metering, "metering")
        stack.callback(leaf.stop)
        ledger = Ledger()
        server = Server(identity_source=leaf)
        server.add_service(
            metering_pb2.DESCRIPTOR.services_by_name["UsageLedgerService"],
            metering_pb2_grpc.add_UsageLedgerServiceServicer_to_server,
            ledger,
        )
        port = server.start("127.0.0.1:0")
        stack.callback(server.stop, 0)
        instance = instance_of("metering", "127.0.0.1", port, check_port=server.health_port)
        metering.register(instance)
        wait_for(lambda: metering.resolve("metering"), timeout=30, what="metering passing")
        yield Mesh(agent, ledger, files)


class TestRateCardsInConsul:
    def test_apply_writes_the_cards_where_the_ledger_reads_them(self, mesh):
        """The company's policy puts its rate cards at RATE_CARDS_KEY, as the ledger parses them."""
        reader = ConsulRegistry(mesh.agent.address, token_file=mesh.tokens["metering"])
        _, text = reader.kv_entry(RATE_CARDS_KEY)
        assert RateCards.from_json(text or "") == company_policy().rate_cards


class TestBill:
    def test_a_closed_month_prints_the_same_bytes_twice(self, mesh, capsys):
        """As the platform (its own leaf, from its token): reimbursement's statement, as a
        table and as CSV, identical on a second run."""
        argv = ("--month", "2026-11", "--department", "reimbursement")
        first = mesh.run(capsys, "bill", *argv)
        assert first == (0, TABLE, "")
        assert mesh.run(capsys, "bill", *argv) == first
        assert mesh.run(capsys, "bill", *argv, "--format", "csv") == (0, CSV, "")
        assert mesh.ledger.asked[-1] == ("platform", "reimbursement", "2026-11")

    def test_the_platform_gets_every_department_that_used_something(self, mesh, capsys):
        """Without --department the platform asks for every department of the policy and
        prints those with charges."""
        del mesh.ledger.asked[:]
        status, out, _ = mesh.run(capsys, "bill", "--month", "2026-11", "--format", "json")
        assert status == 0
        assert [s["department"] for s in json.loads(out)["statements"]] == ["reimbursement"]
        assert {d for _, d, _ in mesh.ledger.asked} == set(company_policy().departments)

    def test_a_department_reads_its_own_statement_only(self, mesh, capsys):
        """hr asking for reimbursement's statement is refused by the ledger: exit 1."""
        status, out, err = mesh.run(
            capsys, "bill", "--department", "reimbursement", "--month", "2026-11", identity="hr"
        )
        assert (status, out) == (EXIT_FAILED, "")
        assert err.startswith("deptmesh bill: the statement of reimbursement for 2026-11:")
        assert "PERMISSION_DENIED" in err

    def test_a_malformed_month_is_a_usage_error(self, mesh, capsys):
        """--month 2026-13 is refused before the mesh is asked."""
        status, _, err = mesh.run(capsys, "bill", "--month", "2026-13")
        assert status == EXIT_BAD_INVOCATION
        assert "'2026-13' is not YYYY-MM" in err


class TestUsage:
    def test_usage_per_caller_and_callee_with_headroom(self, mesh, capsys):
        """Calls, units, errors and throttles per (caller, callee); the headroom against the
        company's tiers (reimbursement is critical for hr and finance)."""
        status, out, err = mesh.run(capsys, "usage", "--department", "reimbursement")
        assert (status, err) == (0, "")
        lines = out.splitlines()
        assert lines[1].split() == [
            "CALLER",
            "CALLEE",
            "CALLS",
            "UNITS",
            "ERRORS",
            "THROTTLED",
            "DENIED",
        ]
        assert lines[2].split() == ["reimbursement", "finance", "4", "4", "0", "1", "0"]
        assert lines[3].split() == ["reimbursement", "hr", "30", "30", "2", "0", "0"]
        headroom = out.split("quota headroom")[1].splitlines()
        assert headroom[2].split() == [
            "reimbursement",
            "finance",
            "*",
            "critical",
            "200",
            "0.01",
            "100%",
        ]

    def test_a_bad_duration_is_a_usage_error(self, mesh, capsys):
        """--since takes 90s, 30m, 1h or 7d."""
        status, _, err = mesh.run(capsys, "usage", "--since", "an hour")
        assert status == EXIT_BAD_INVOCATION
        assert "is not a duration" in err
