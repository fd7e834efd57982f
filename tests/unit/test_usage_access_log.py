"""The metering stage's queue: counted before every read, logged once per call, escaped."""

from __future__ import annotations

import contextvars
import io
import json
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import grpc

from deptmesh.hr.v1 import hr_pb2
from deptmesh.sidecar.caller import CURRENT_CALLER, Caller
from deptmesh.sidecar.chain.core import Call, RpcMethod
from deptmesh.sidecar.metering.access_log import AccessLog
from deptmesh.sidecar.metering.stage import MeteringStage

GET_EMPLOYEE = RpcMethod(
    "/deptmesh.hr.v1.EmployeeService/GetEmployee",
    "deptmesh.hr.v1.EmployeeService",
    "GetEmployee",
    request_streaming=False,
    response_streaming=False,
)


def _run_call(usage: MeteringStage, caller: Caller, code: grpc.StatusCode) -> None:
    """One call through the stage as the chain runs it: start, the handler, finish."""

    def call() -> None:
        CURRENT_CALLER.set(caller)
        ongoing = Call(GET_EMPLOYEE, None, hr_pb2.GetEmployeeRequest(employee_id="E1001"))
        usage.start(ongoing)
        ongoing.response = hr_pb2.GetEmployeeResponse()
        ongoing.code = code
        usage.finish(ongoing)

    contextvars.copy_context().run(call)


def _lines(log: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.getvalue().splitlines()]


REIMBURSEMENT = Caller("reimbursement", "spiffe://td/ns/default/dc/dc1/svc/reimbursement", "r")


def test_a_call_that_ended_is_counted_by_the_next_read_without_waiting_for_the_drain() -> None:
    usage = MeteringStage("hr")
    _run_call(usage, REIMBURSEMENT, grpc.StatusCode.OK)
    _run_call(usage, REIMBURSEMENT, grpc.StatusCode.NOT_FOUND)

    records = {record["status"]: record for record in usage.snapshot()}

    assert records["OK"]["calls"] == 1
    assert records["OK"]["request_bytes"] == len(
        hr_pb2.GetEmployeeRequest(employee_id="E1001").SerializeToString()
    )
    assert records["NOT_FOUND"]["errors"] == 1
    assert usage.in_flight() == {}


def test_a_call_is_in_flight_from_its_start_to_its_end() -> None:
    usage = MeteringStage("hr")

    def call() -> dict[tuple[str, str], int]:
        CURRENT_CALLER.set(REIMBURSEMENT)
        ongoing = Call(GET_EMPLOYEE, None, hr_pb2.GetEmployeeRequest(employee_id="E1001"))
        usage.start(ongoing)
        while_running = usage.in_flight()
        usage.finish(ongoing)
        return while_running

    assert contextvars.copy_context().run(call) == {("reimbursement", GET_EMPLOYEE.path): 1}
    assert usage.in_flight() == {}


def test_each_call_is_written_to_the_access_log_once() -> None:
    log = io.StringIO()
    usage = MeteringStage("hr", access_log=AccessLog(log))
    _run_call(usage, REIMBURSEMENT, grpc.StatusCode.OK)

    usage.drain()
    usage.drain()  # nothing new: nothing written twice

    [line] = _lines(log)
    assert line["event"] == "call"
    assert line["caller"] == "reimbursement"
    assert line["method"] == GET_EMPLOYEE.path
    assert line["status"] == "OK"
    assert line["trace_id"] == line["span_id"] == ""  # the call had no span
    assert str(line["timestamp"]).endswith("Z")


def test_control_characters_from_outside_are_escaped_in_the_access_log() -> None:
    log = io.StringIO()
    usage = MeteringStage("hr", access_log=AccessLog(log))
    hostile = Caller('evil"\n{"event": "forged"}\x1b[2J', "spiffe://td/x", "x")
    _run_call(usage, hostile, grpc.StatusCode.PERMISSION_DENIED)

    usage.drain()

    assert log.getvalue().count("\n") == 1  # one line, whatever the caller's name holds
    [line] = _lines(log)
    assert line["caller"] == hostile.service


def test_calls_still_queued_when_the_process_exits_are_written(tmp_path) -> None:
    log_path = tmp_path / "access.log"
    program = f"""
from grpc import StatusCode
from deptmesh.sidecar.metering.access_log import AccessLog
from deptmesh.sidecar.metering.stage import MeteringStage
from tests.unit.test_usage_access_log import REIMBURSEMENT, _run_call

usage = MeteringStage("hr", access_log=AccessLog(open({str(log_path)!r}, "a")))
for _ in range(3):
    _run_call(usage, REIMBURSEMENT, StatusCode.OK)
"""  # exits at once: before the drain thread's first turn
    subprocess.run(
        [sys.executable, "-c", program], check=True, cwd=Path(__file__).parents[2], timeout=60
    )

    assert len(log_path.read_text().splitlines()) == 3


def test_an_access_log_on_a_full_disk_loses_its_lines_but_no_count() -> None:
    full_disk = open("/dev/full", "w")  # noqa: SIM115 -- every write fails with ENOSPC
    usage = MeteringStage("hr", access_log=AccessLog(full_disk))
    _run_call(usage, REIMBURSEMENT, grpc.StatusCode.OK)
    usage.drain()
    _run_call(usage, REIMBURSEMENT, grpc.StatusCode.OK)

    [record] = usage.snapshot()

    assert record["calls"] == 2
    with suppress(OSError):  # what is still buffered cannot be written either
        full_disk.close()
