"""Wires finance together: its store, both servicers, the sidecar server."""

from __future__ import annotations

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.services.finance import demo_data
from deptmesh.services.finance.servicer import BudgetServicer, PaymentServicer
from deptmesh.services.finance.store import FinanceStore
from deptmesh.sidecar.host.runner import RunningService, ServiceOptions, server_for

NAME = "finance"


def build(options: ServiceOptions) -> RunningService:
    store = FinanceStore(options.db)
    if options.seed_demo_data:
        demo_data.seed(store)
    server = server_for(NAME, options)
    services = finance_pb2.DESCRIPTOR.services_by_name
    server.add_service(
        services["BudgetService"],
        finance_pb2_grpc.add_BudgetServiceServicer_to_server,
        BudgetServicer(store),
    )
    server.add_service(
        services["PaymentService"],
        finance_pb2_grpc.add_PaymentServiceServicer_to_server,
        PaymentServicer(store),
    )
    return RunningService(server=server, close=store.close)
