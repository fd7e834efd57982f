"""Test servers on port 0, and polling with a deadline."""

from __future__ import annotations

import time

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc

from sidecar.server import Server


def serve_employee_service(servicer: hr_pb2_grpc.EmployeeServiceServicer) -> tuple[Server, str]:
    """Starts `servicer` behind the sidecar chain; returns the server and its address."""
    server = Server()
    server.add_service(
        hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
        hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
        servicer,
    )
    return server, f"127.0.0.1:{server.start('127.0.0.1:0')}"


def wait_for(condition, timeout: float = 15.0, what: str = "condition"):
    """Polls `condition` until it is truthy; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not met within {timeout}s"
        time.sleep(0.02)
