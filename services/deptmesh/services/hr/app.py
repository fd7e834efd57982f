"""Wires HR together: its store, its servicer, the sidecar server."""

from __future__ import annotations

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.services.hr import demo_data
from deptmesh.services.hr.servicer import EmployeeServicer
from deptmesh.services.hr.store import HrStore
from deptmesh.sidecar.host.runner import RunningService, ServiceOptions, server_for

NAME = "hr"


def build(options: ServiceOptions) -> RunningService:
    store = HrStore(options.db)
    if options.seed_demo_data:
        demo_data.seed(store)
    server = server_for(NAME, options)
    server.add_service(
        hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
        hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
        EmployeeServicer(store),
    )
    return RunningService(server=server, close=store.close)
