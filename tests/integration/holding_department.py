"""A department whose GetEmployee calls wait for the test, as its own process, for SIGTERM tests.

    python -m tests.integration.holding_department --hold-dir DIR --db PATH [host flags]

Each GetEmployee call creates DIR/entered, then waits (up to 30 s) until the test
creates DIR/release, and answers employee E1. Files, because the test and the
handler are in different processes; the host's own SIGTERM handling is under test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.sidecar import Department, HostContext, run_department

_HOLD_SECONDS = 30.0


class HoldingEmployees(hr_pb2_grpc.EmployeeServiceServicer):
    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def GetEmployee(self, request, context):
        (self._folder / "entered").touch()
        deadline = time.monotonic() + _HOLD_SECONDS
        while not (self._folder / "release").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the test never released the call")
            time.sleep(0.01)
        return hr_pb2.GetEmployeeResponse(employee=hr_pb2.Employee(employee_id="E1"))


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hold-dir", type=Path, required=True)


def build(host: HostContext) -> object:
    host.server.add_service(
        hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
        hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
        HoldingEmployees(host.flags.hold_dir),
    )
    return lambda: None


HOLDING = Department(name="holding", build=build, add_flags=add_flags)

if __name__ == "__main__":
    sys.exit(run_department(HOLDING))
