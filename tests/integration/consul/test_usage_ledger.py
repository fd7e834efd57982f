"""The usage ledger as a real process on the mesh: a Consul dev agent of its own with ACLs
(default deny) holding the company's policy and a rate card in KV, the ledger started by
the host with its own token, a department reporting over mTLS with its Connect leaf, and
the platform reading with its own."""

from __future__ import annotations

import datetime
from contextlib import ExitStack

import grpc
import pytest

from deptmesh.metering.v1 import metering_pb2 as pb
from deptmesh.metering.v1 import metering_pb2_grpc
from deptmesh.registry import ConsulRegistry, DevAgent, EndpointCache
from deptmesh.services.company_policy import apply_company_policy
from deptmesh.services.metering.months import Month
from deptmesh.sidecar import connect
from deptmesh.sidecar.host import DepartmentProcess
from deptmesh.sidecar.identity import ConsulConnectIdentity
from deptmesh.sidecar.metering.rate_card import RATE_CARDS_KEY, parse_rate_cards
from tests.integration.servers import wait_for
from tests.rpc_errors import error_reason, rpc_error

GET = "/deptmesh.hr.v1.EmployeeService/GetEmployee"
# Every unit of hr costs 0.001 EUR, whatever the volume.
RATE_CARDS = parse_rate_cards(
    [{"effective_month": "2020-01", "currency": "EUR", "services": {"hr": {"unit_price": "0.001"}}}]
)


class MeshIdentity:
    """A stub to the ledger as `name`: its token, its Connect leaf, mTLS to metering."""

    def __init__(self, stack: ExitStack, agent: DevAgent, name: str) -> None:
        token = agent.admin().department_token(name)
        registry = ConsulRegistry(agent.address, token=token.secret_id)
        identity = ConsulConnectIdentity(registry, name)
        stack.callback(identity.stop)
        cache = EndpointCache(registry)
        stack.callback(cache.close)
        channel = stack.enter_context(connect("metering", cache, identity=identity))
        self.ledger = metering_pb2_grpc.UsageLedgerServiceStub(channel)


def usage_record(record_id: str, minute: int, *, callee: str = "hr") -> pb.UsageRecord:
    return pb.UsageRecord(
        record_id=record_id,
        caller="reimbursement",
        callee=callee,
        method=GET,
        status_class=pb.STATUS_CLASS_OK,
        minute={"seconds": minute},
        calls=10,
        cost_units=20,
        request_bytes=100,
        response_bytes=400,
        latency_sum_micros=5000,
    )


@pytest.fixture
def mesh(tmp_path):
    with DevAgent() as agent, ExitStack() as stack:
        admin = agent.admin()
        tokens = admin.mesh_tokens(["hr", "finance", "reimbursement", "travel", "metering"])
        platform = ConsulRegistry(agent.address, token=tokens.platform.secret_id)
        apply_company_policy(platform)
        platform.kv_put(RATE_CARDS_KEY, RATE_CARDS.to_json())
        token = tokens.department("metering").write_file(tmp_path / "metering.token")
        ledger = stack.enter_context(
            DepartmentProcess(
                "deptmesh.services.metering",
                [
                    *("--port", "0", "--db", str(tmp_path / "metering.db")),
                    *("--consul-address", agent.address, "--consul-token-file", str(token)),
                    *("--metrics-port", "0", "--trace-exporter", "none"),
                ],
                tmp_path / "metering.log",
            )
        )
        ledger.start()
        monitoring = ConsulRegistry(agent.address, token=tokens.monitoring.secret_id)
        wait_for(lambda: monitoring.resolve("metering"), what="metering passing in Consul")
        yield agent, stack


def test_a_department_reports_over_the_mesh_and_the_platform_reads(mesh):
    """hr reports usage it served (a redelivery counted once, another callee's usage
    refused NOT_THE_CALLEE); the platform reads reimbursement's usage and its month-to-date
    statement priced with the rate card from Consul KV; hr may not read reimbursement's."""
    agent, stack = mesh
    hr = MeshIdentity(stack, agent, "hr")
    # The platform's identity: a leaf of its own (the platform's ACL token may not have one).
    platform = MeshIdentity(stack, agent, "platform")
    now = datetime.datetime.now(datetime.UTC)
    minute = int(now.timestamp()) // 60 * 60
    batch = pb.ReportUsageRequest(
        records=[usage_record("hr-1/1/1", minute), usage_record("hr-1/1/2", minute)]
    )

    assert hr.ledger.ReportUsage(batch, timeout=10) == pb.ReportUsageResponse(recorded=2)
    assert hr.ledger.ReportUsage(batch, timeout=10) == pb.ReportUsageResponse(duplicates=2)
    refused = rpc_error(
        hr.ledger.ReportUsage,
        pb.ReportUsageRequest(records=[usage_record("hr-1/2/1", minute, callee="finance")]),
    )
    assert refused.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(refused) == "NOT_THE_CALLEE"

    usage = platform.ledger.QueryUsage(
        pb.QueryUsageRequest(department="reimbursement", start_time={"seconds": minute - 3600}),
        timeout=10,
    )
    assert [(u.caller, u.callee, u.method, u.calls, u.cost_units) for u in usage.usage] == [
        ("reimbursement", "hr", GET, 20, 40)
    ]
    month = str(Month.of(now))
    statement = platform.ledger.GetStatement(
        pb.GetStatementRequest(department="reimbursement", month=month), timeout=10
    ).statement
    assert (statement.department, statement.month, statement.closed) == (
        "reimbursement",
        month,
        False,
    )
    assert [(i.callee, i.method, i.units) for i in statement.line_items] == [("hr", "*", 40)]
    total = statement.total
    assert (total.currency_code, total.units, total.nanos) == ("EUR", 0, 40_000_000)
    assert statement.rate_card.startswith("2020-01 ")

    not_hers = rpc_error(
        hr.ledger.GetStatement, pb.GetStatementRequest(department="reimbursement", month=month)
    )
    assert not_hers.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(not_hers) == "NOT_YOUR_USAGE"
