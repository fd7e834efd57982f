"""Finance as a department: its store and both servicers on the host's server."""

from __future__ import annotations

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.services.finance import demo_data
from deptmesh.services.finance.servicer import BudgetServicer, PaymentServicer
from deptmesh.services.finance.store import FinanceStore
from deptmesh.sidecar import Closer, Department, HostContext


def build(host: HostContext) -> Closer:
    store = FinanceStore(host.db)
    if host.seed_demo_data:
        demo_data.seed(store)
    services = finance_pb2.DESCRIPTOR.services_by_name
    host.server.add_service(
        services["BudgetService"],
        finance_pb2_grpc.add_BudgetServiceServicer_to_server,
        BudgetServicer(store),
    )
    host.server.add_service(
        services["PaymentService"],
        finance_pb2_grpc.add_PaymentServiceServicer_to_server,
        PaymentServicer(store),
    )
    return store.close


FINANCE = Department(
    name="finance",
    contract_version="v1",
    build=build,
    description="Finance: budgets, reservations, payouts and the ledger (deptmesh.finance.v1).",
)
