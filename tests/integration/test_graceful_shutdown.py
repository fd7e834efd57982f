"""SIGTERM and stop(): no new calls, in-flight calls finish, the process exits cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.registry.children import start_child
from deptmesh.sidecar.host import DepartmentProcess
from tests.integration.servers import run_service_until_exit, serve_employee_service

_SERVING = re.compile(r"^hr serving on (127\.0\.0\.1:\d+)$")


class BlockingHr(hr_pb2_grpc.EmployeeServiceServicer):
    """Holds every GetEmployee call until released, announcing when one arrives."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def GetEmployee(self, request, context):
        self.entered.set()
        if not self.release.wait(10):
            raise RuntimeError("test never released the call")
        return hr_pb2.GetEmployeeResponse(employee=hr_pb2.Employee(employee_id="E1"))


def poll(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class TestServerStop:
    def test_in_flight_call_finishes_and_new_calls_are_refused(self):
        """During stop(grace) a running call completes OK while a new call is refused."""
        servicer = BlockingHr()
        server, address = serve_employee_service(servicer)
        with grpc.insecure_channel(address) as channel, ThreadPoolExecutor(2) as pool:
            stub = hr_pb2_grpc.EmployeeServiceStub(channel)
            in_flight = pool.submit(stub.GetEmployee, hr_pb2.GetEmployeeRequest(), timeout=10)
            assert servicer.entered.wait(5)
            stopping = pool.submit(server.stop, 5.0)
            poll(lambda: refused(address))
            servicer.release.set()
            assert in_flight.result(5).employee.employee_id == "E1"
            stopping.result(5)
        assert server.wait_stopped(0)


class TestServiceProcess:
    def test_sigterm_drains_and_exits_zero(self, tmp_path):
        """`python -m deptmesh.services.hr` prints its address, serves, and exits 0 on SIGTERM."""
        db = str(tmp_path / "hr.db")
        process = start_child(
            [
                sys.executable,
                "-m",
                "deptmesh.services.hr",
                "--port",
                "0",
                "--db",
                db,
                "--seed-demo-data",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = process.stdout.readline().strip()
            match = _SERVING.match(line)
            assert match, f"unexpected first line {line!r}"
            address = match[1]
            with grpc.insecure_channel(address) as channel:
                stub = hr_pb2_grpc.EmployeeServiceStub(channel)
                reply = stub.GetEmployee(hr_pb2.GetEmployeeRequest(employee_id="E1000"), timeout=5)
                assert reply.employee.display_name == "Ada Lovelace"

            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0

            with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as error:
                hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(
                    hr_pb2.GetEmployeeRequest(employee_id="E1000"), timeout=1
                )
            assert error.value.code() is grpc.StatusCode.UNAVAILABLE
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=10)

    def test_sigterm_lets_the_call_in_flight_finish_and_refuses_new_ones(self, tmp_path):
        """SIGTERM while a call is held in the handler: new calls are refused, the held call
        completes OK, and then the process exits 0."""
        hold = tmp_path / "hold"
        hold.mkdir()
        process = DepartmentProcess(
            "tests.integration.holding_department",
            [
                *("--port", "0", "--db", str(tmp_path / "holding.db"), "--hold-dir", str(hold)),
                *("--drain-seconds", "0", "--grace-seconds", "20"),
            ],
            tmp_path / "holding.log",
        )
        with process, grpc.insecure_channel(process.start()) as channel:
            with ThreadPoolExecutor(1) as pool:
                stub = hr_pb2_grpc.EmployeeServiceStub(channel)
                in_flight = pool.submit(stub.GetEmployee, hr_pb2.GetEmployeeRequest(), timeout=30)
                poll(lambda: (hold / "entered").exists(), timeout=10)
                process.send_signal(signal.SIGTERM)
                poll(lambda: refused(process.address), timeout=10)
                assert not in_flight.done(), "the held call ended before it was released"
                (hold / "release").touch()
                assert in_flight.result(10).employee.employee_id == "E1"
            assert process.wait(15) == 0, process.log()


def refused(address: str) -> bool:
    """A new call on a new connection is refused UNAVAILABLE (the server stopped accepting)."""
    try:
        with grpc.insecure_channel(address) as fresh:
            hr_pb2_grpc.EmployeeServiceStub(fresh).GetEmployee(
                hr_pb2.GetEmployeeRequest(), timeout=0.5
            )
    except grpc.RpcError as error:
        return error.code() is grpc.StatusCode.UNAVAILABLE
    return False


class TestRegistrationFailure:
    def test_unreachable_consul_exits_nonzero_with_a_message(self, tmp_path):
        """A service that cannot reach Consul exits 1 and says why, instead of serving unseen."""
        db = str(tmp_path / "hr.db")
        result = run_service_until_exit("hr", "--db", db, "--consul-address", "127.0.0.1:1")
        assert result.returncode == 1
        assert "consul_unreachable" in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
