"""A plaintext sidecar server that ships its usage, as its own process, for kill tests.

    python -m tests.integration.usage_shipping_child LEDGER_ADDRESS SPOOL FLUSH_SECONDS

Serves hr's GetEmployee (every caller is anonymous) with usage per minute
counted and shipped to the ledger at LEDGER_ADDRESS through SPOOL; prints its
port, and serves until its standard input closes (then stops the shipper, as
the host does on SIGTERM) or it is killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.sidecar.channel import dial
from deptmesh.sidecar.metering import MeteringStage, UsageByMinute, UsageShipper, UsageSpool, run_id
from deptmesh.sidecar.quotas.stage import method_cost
from deptmesh.sidecar.server import Server


class Employees(hr_pb2_grpc.EmployeeServiceServicer):
    def GetEmployee(self, request, context):
        return hr_pb2.GetEmployeeResponse(employee=hr_pb2.Employee(employee_id=request.employee_id))


def main() -> None:
    ledger_address, spool_path, flush_seconds = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    metering = MeteringStage("hr", by_minute=UsageByMinute("hr", cost_of=method_cost))
    server = Server(metering=metering)
    server.add_service(
        hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
        hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
        Employees(),
    )
    port = server.start("127.0.0.1:0")
    channel = dial(ledger_address)
    spool = UsageSpool(spool_path)
    shipper = UsageShipper(
        metering,
        channel,
        spool,
        run_id=run_id(f"hr-127.0.0.1-{port}"),
        flush_seconds=flush_seconds,
        max_backoff_seconds=0.5,
    )
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    sys.stdin.read()
    server.stop(1)
    shipper.stop()
    spool.close()
    channel.close()


if __name__ == "__main__":
    main()
