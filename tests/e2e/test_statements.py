"""Metering end to end: known traffic through real departments, priced exactly by the real ledger.

Consul with ACLs and the company's policy (its rate cards included), the usage
ledger, two hr replicas over one database and finance, each a process shipping
its usage to the ledger through the mesh. The test calls as reimbursement and as
travel (Connect identities of their own) and reads, as the platform, what the
ledger counted and what reimbursement's statement says. Then it SIGKILLs an hr
replica right after calls only that replica served (the ledger may miss at
most those: its unflushed window, and counts nothing twice when it restarts on
its spool), and stops the ledger for 30 s while calls go on (they are spooled,
then delivered: the totals are exact again).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.metering.v1 import metering_pb2, metering_pb2_grpc
from deptmesh.registry.agent import DevAgent
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.services.company_policy import apply_company_policy
from deptmesh.sidecar import ServiceChannel
from deptmesh.sidecar.channel import client
from deptmesh.sidecar.channel.endpoints import FixedEndpoint
from deptmesh.sidecar.channel.mtls import mtls_channel_factory
from deptmesh.sidecar.host import DepartmentProcess
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity
from tests.integration.servers import wait_for

pytestmark = pytest.mark.timeout(240)

GET_EMPLOYEE = "/deptmesh.hr.v1.EmployeeService/GetEmployee"
GET_BUDGET = "/deptmesh.finance.v1.BudgetService/GetBudget"
HR_FLUSH_SECONDS = 3.0  # an hr replica's unflushed window: long enough to SIGKILL inside it
OTHERS_FLUSH_SECONDS = 0.5


@dataclass
class Mesh:
    workdir: Path
    consul: str
    tokens: dict[str, Path]
    stack: ExitStack
    processes: dict[str, DepartmentProcess]

    def start(self, name: str, department: str, flush_seconds: float) -> DepartmentProcess:
        process = DepartmentProcess(
            f"deptmesh.services.{department}",
            [
                *("--port", "0", "--db", str(self.workdir / f"{department}.db")),
                *("--seed-demo-data", "--consul-address", self.consul),
                *("--consul-token-file", str(self.tokens[department])),
                *("--usage-spool", str(self.workdir / f"{name}.spool")),
                *("--usage-flush-seconds", str(flush_seconds)),
                *("--drain-seconds", "0", "--trace-exporter", "none"),
            ],
            self.workdir / f"{name}.log",
        )
        process.start()
        self.processes[name] = process
        self.stack.callback(process.stop)
        return process

    def identity(self, name: str) -> ConsulConnectIdentity:
        registry = ConsulRegistry(self.consul, token_file=self.tokens[name])
        identity = ConsulConnectIdentity(registry, name)
        self.stack.callback(identity.stop)
        return identity

    def channel(self, service: str, caller: str) -> ServiceChannel:
        registry = ConsulRegistry(self.consul, token_file=self.tokens[caller])
        cache = self.stack.enter_context(closing(EndpointCache(registry)))
        channel = client.connect(service, cache, identity=self.identity(caller))
        self.stack.callback(channel.close)
        return channel

    def pinned(self, service: str, address: str, caller: str) -> ServiceChannel:
        """A channel to one replica only."""
        identity = self.identity(caller)
        channel = ServiceChannel(
            service,
            FixedEndpoint(address),
            channel_factory=mtls_channel_factory(service, identity),
            identity=identity,
            default_timeout=10,
        )
        self.stack.callback(channel.close)
        return channel


@pytest.fixture(scope="module")
def mesh(tmp_path_factory) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("statements")
    with ExitStack() as stack:
        agent = stack.enter_context(DevAgent())
        names = ("hr", "finance", "metering", "reimbursement", "travel", "platform")
        made = agent.admin().mesh_tokens(names)
        tokens = {
            name: made.department(name).write_file(workdir / f"{name}.token") for name in names
        }
        apply_company_policy(ConsulRegistry(agent.address, token=made.platform.secret_id))
        mesh = Mesh(workdir, agent.address, tokens, stack, {})
        mesh.start("metering", "metering", OTHERS_FLUSH_SECONDS)
        mesh.start("hr-1", "hr", HR_FLUSH_SECONDS)
        mesh.start("hr-2", "hr", HR_FLUSH_SECONDS)
        mesh.start("finance", "finance", OTHERS_FLUSH_SECONDS)
        monitoring = ConsulRegistry(agent.address, token=made.monitoring.secret_id)
        wait_for(
            lambda: (
                len(monitoring.resolve("hr")) == 2
                and monitoring.resolve("finance")
                and monitoring.resolve("metering")
            ),
            30,
            "the departments passing in Consul",
        )
        yield mesh


class Ledger:
    """The ledger as the platform reads it."""

    def __init__(self, mesh: Mesh) -> None:
        self._stub = metering_pb2_grpc.UsageLedgerServiceStub(mesh.channel("metering", "platform"))
        self._since = Timestamp()
        self._since.FromDatetime(datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1))

    def calls(self, caller: str, callee: str, method: str) -> int:
        """OK calls of `caller` to `method` the ledger counted."""
        usage = self._stub.QueryUsage(
            metering_pb2.QueryUsageRequest(department=caller, start_time=self._since), timeout=10
        ).usage
        return sum(
            row.calls - row.errors - row.throttled - row.denied
            for row in usage
            if (row.caller, row.callee, row.method) == (caller, callee, method)
        )

    def statement(self, department: str) -> metering_pb2.Statement:
        month = datetime.datetime.now(datetime.UTC).strftime("%Y-%m")
        return self._stub.GetStatement(
            metering_pb2.GetStatementRequest(department=department, month=month), timeout=10
        ).statement


def get_employees(channel: ServiceChannel, count: int) -> None:
    stub = hr_pb2_grpc.EmployeeServiceStub(channel)
    for _ in range(count):
        stub.GetEmployee(hr_pb2.GetEmployeeRequest(employee_id="E1002"), timeout=10)


def money(value) -> tuple[str, int, int]:
    return (value.currency_code, value.units, value.nanos)


class TestStatements:
    def test_known_traffic_is_counted_and_priced_exactly(self, mesh):
        """30 GetEmployee (1 unit each, over both hr replicas), 20 GetBudget (1 unit) and 5
        ListLedgerEntries (10 units) by reimbursement, 12 GetEmployee by travel: the ledger
        counts each call once, and reimbursement's statement prices them with the company's
        card: 5 units free (taken from finance, first in order), 65 finance units at 0.0020,
        finance's 25.00 subscription, 30 hr units in its first tier at 0.0010."""
        ledger = Ledger(mesh)
        travel_before = ledger.calls("travel", "hr", GET_EMPLOYEE)
        get_employees(mesh.channel("hr", "reimbursement"), 30)
        get_employees(mesh.channel("hr", "travel"), 12)
        budgets = finance_pb2_grpc.BudgetServiceStub(mesh.channel("finance", "reimbursement"))
        payments = finance_pb2_grpc.PaymentServiceStub(mesh.channel("finance", "reimbursement"))
        for _ in range(20):
            budgets.GetBudget(finance_pb2.GetBudgetRequest(cost_center_id="CC-ENG"), timeout=10)
        for _ in range(5):
            payments.ListLedgerEntries(finance_pb2.ListLedgerEntriesRequest(), timeout=10)

        wait_for(
            lambda: (
                ledger.calls("reimbursement", "hr", GET_EMPLOYEE) == 30
                and ledger.calls("travel", "hr", GET_EMPLOYEE) == travel_before + 12
                and ledger.calls(
                    "reimbursement", "finance", "/deptmesh.finance.v1.BudgetService/GetBudget"
                )
                == 20
            ),
            30,
            "the ledger counting every call",
        )
        statement = ledger.statement("reimbursement")
        assert [
            (
                item.callee,
                item.method,
                item.tier,
                item.units,
                money(item.unit_price),
                money(item.amount),
            )
            for item in statement.line_items
        ] == [
            ("finance", "*", "all units", 65, ("EUR", 0, 2_000_000), ("EUR", 0, 130_000_000)),
            ("hr", "*", "first 10k", 30, ("EUR", 0, 1_000_000), ("EUR", 0, 30_000_000)),
        ]
        assert [(s.callee, money(s.amount)) for s in statement.subscriptions] == [
            ("finance", ("EUR", 25, 0))
        ]
        assert statement.free_units == 5
        assert money(statement.total) == ("EUR", 25, 160_000_000)
        assert not statement.closed

    def test_a_killed_replica_loses_at_most_its_unflushed_window_and_counts_nothing_twice(
        self, mesh
    ):
        """After the ledger has everything, 7 calls served by hr-2 alone and a SIGKILL within
        its flush interval: the ledger misses at most those 7; hr-2 restarted on its spool
        delivers what it had spooled, and no call is ever counted twice."""
        ledger = Ledger(mesh)
        counted = ledger.calls("travel", "hr", GET_EMPLOYEE)
        get_employees(mesh.channel("hr", "travel"), 10)
        wait_for(
            lambda: ledger.calls("travel", "hr", GET_EMPLOYEE) == counted + 10,
            30,
            "the ledger counting the first calls",
        )
        window = 7
        get_employees(mesh.pinned("hr", mesh.processes["hr-2"].address, "travel"), window)
        mesh.processes["hr-2"].kill()
        # Restarted on its spool, then drained: whatever it had is delivered by then.
        mesh.start("hr-2", "hr", HR_FLUSH_SECONDS)
        assert mesh.processes["hr-2"].stop() == 0
        sent = counted + 10 + window
        after = ledger.calls("travel", "hr", GET_EMPLOYEE)
        assert sent - window <= after <= sent, (after, sent)

    def test_usage_made_while_the_ledger_is_down_is_delivered_when_it_returns(self, mesh):
        """The ledger stopped for 30 s while finance keeps calling hr: every call is counted
        once the ledger is back, exactly."""
        ledger = Ledger(mesh)
        counted = ledger.calls("finance", "hr", GET_EMPLOYEE)
        mesh.processes["metering"].stop()
        channel = mesh.channel("hr", "finance")
        deadline = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
        sent = 0
        while datetime.datetime.now(datetime.UTC) < deadline:
            get_employees(channel, 1)
            sent += 1
        mesh.start("metering", "metering", OTHERS_FLUSH_SECONDS)
        ledger = Ledger(mesh)

        def delivered() -> bool:
            try:
                return ledger.calls("finance", "hr", GET_EMPLOYEE) == counted + sent
            except grpc.RpcError:  # until Consul's check of the new ledger passes
                return False

        wait_for(delivered, 60, "the spooled usage delivered")
