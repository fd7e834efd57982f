"""HR as a department: its store and its servicer on the host's server."""

from __future__ import annotations

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.services.hr import demo_data
from deptmesh.services.hr.servicer import EmployeeServicer
from deptmesh.services.hr.store import HrStore
from deptmesh.sidecar import Closer, Department, HostContext


def build(host: HostContext) -> Closer:
    store = HrStore(host.db)
    if host.seed_demo_data:
        demo_data.seed(store)
    host.server.add_service(
        hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
        hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
        EmployeeServicer(store),
    )
    return store.close


HR = Department(
    name="hr",
    contract_version="v1",
    build=build,
    description="HR: employees, who reports to whom, and cost centres (deptmesh.hr.v1).",
)
