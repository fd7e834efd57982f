"""A department run with --log-format console writes no JSON, access log included."""

from __future__ import annotations

import grpc

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.sidecar.host import DepartmentProcess


def test_console_format_covers_the_access_log(tmp_path):
    """hr with --log-format console, called once: every line of its log, the call's
    access-log line among them, is a console line, none JSON."""
    args = ["--port", "0", "--db", str(tmp_path / "hr.db"), "--seed-demo-data"]
    args += ["--log-format", "console", "--trace-exporter", "none"]
    with DepartmentProcess("deptmesh.services.hr", args, tmp_path / "hr.log") as hr:
        address = hr.start()
        with grpc.insecure_channel(address) as channel:
            hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(
                hr_pb2.GetEmployeeRequest(employee_id="E1000"), timeout=5
            )
        assert hr.stop() == 0
    lines = hr.log().splitlines()
    assert not [line for line in lines if line.startswith("{")]
    [call] = [line for line in lines if "] call " in line]
    assert "method=/deptmesh.hr.v1.EmployeeService/GetEmployee" in call
    assert "status=OK" in call
