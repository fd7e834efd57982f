"""The host: a department declared as data, started, registered and drained in this process
(start_department, as `run_department` does it), and run as a process."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

import deptmesh.sidecar
from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.registry.model import ServiceInstance
from deptmesh.registry.protocol import RegistryUnavailable
from deptmesh.registry.static import StaticRegistry
from deptmesh.services.reimbursement.app import REIMBURSEMENT
from deptmesh.sidecar import Department, HostContext, host
from deptmesh.sidecar.errors import ControlPlaneUnavailable
from deptmesh.sidecar.host import Mesh, parse_options, start_department
from tests.integration.servers import run_service_until_exit, wait_for

DEPARTMENTS = ("hr", "finance", "reimbursement", "travel")


class Desk(hr_pb2_grpc.EmployeeServiceServicer):
    """GetEmployee answers at once, or holds each call until released when told to."""

    def __init__(self, *, hold: bool = False) -> None:
        self.hold = hold
        self.entered = threading.Event()
        self.release = threading.Event()

    def GetEmployee(self, request, context):
        self.entered.set()
        if self.hold and not self.release.wait(10):
            raise RuntimeError("the test never released the call")
        return hr_pb2.GetEmployeeResponse(employee=hr_pb2.Employee(employee_id="E1"))


class DeskDepartment:
    """A department of one servicer, recording what the host gave it and when it closed."""

    def __init__(self, desk: Desk | None = None, *, calls: str = "") -> None:
        self.desk = desk or Desk()
        self.calls = calls
        self.context: HostContext | None = None
        self.closed = threading.Event()
        self.department = Department(name="desk", contract_version="v3", build=self.build)

    def build(self, host: HostContext) -> object:
        self.context = host
        if self.calls:
            host.connect(self.calls, timeout=2.0)
        host.server.add_service(
            hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
            hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
            self.desk,
        )
        return self.closed.set


class UnreachableRegistry(StaticRegistry):
    """A registry that can be read but refuses every registration."""

    def register(self, instance: ServiceInstance) -> None:
        raise RegistryUnavailable("connection refused")


def options_for(department: Department, tmp_path: Path, *flags: str):
    options = parse_options(
        department,
        ["--db", str(tmp_path / "desk.db"), "--drain-seconds", "0", "--grace-seconds", "5", *flags],
    )
    return dataclasses.replace(options, metrics_port=None)


def get_employee(address: str, timeout: float = 5.0) -> hr_pb2.GetEmployeeResponse:
    with grpc.insecure_channel(address) as channel:
        return hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(
            hr_pb2.GetEmployeeRequest(employee_id="E1"), timeout=timeout
        )


def refused(address: str) -> bool:
    try:
        get_employee(address, timeout=0.5)
    except grpc.RpcError as error:
        return error.code() is grpc.StatusCode.UNAVAILABLE
    return False


class TestPublicNames:
    def test_the_host_exports_what_it_lists(self):
        """deptmesh.sidecar.host's __all__ is sorted and every name in it exists."""
        assert host.__all__ == sorted(host.__all__)
        assert all(hasattr(host, name) for name in host.__all__)

    def test_the_face_offers_what_a_department_needs(self):
        """A department imports Department, HostContext, Closer and run_department from
        deptmesh.sidecar, the host's own objects."""
        for name in ("Closer", "Department", "HostContext", "run_department"):
            assert name in deptmesh.sidecar.__all__
            assert getattr(deptmesh.sidecar, name) is getattr(host, name)


class TestDepartment:
    def test_name_must_be_a_service_name(self):
        """A department whose name Consul and the policy could not use is refused."""
        with pytest.raises(ValueError, match="lower-case"):
            Department(name="Travel Desk", build=lambda host: lambda: None)

    def test_contract_version_must_look_like_v1(self):
        """A contract version other than v<N> is refused."""
        with pytest.raises(ValueError, match="v1, v2"):
            Department(name="desk", contract_version="1.0", build=lambda host: lambda: None)


class TestParseOptions:
    def test_department_flags_reach_it_and_only_them(self, tmp_path):
        """A department's own flags are in HostOptions.flags, the host's are not."""
        options = parse_options(
            REIMBURSEMENT, ["--db", str(tmp_path / "r.db"), "--payout-retry-seconds", "0.5"]
        )
        assert vars(options.flags) == {"payout_retry_seconds": 0.5}
        assert (options.db, options.port, options.metrics_port) == (tmp_path / "r.db", 0, 0)

    def test_bad_flag_exits_2_naming_it(self, tmp_path, capsys):
        """An out-of-range port is a usage error, status 2, naming the flag."""
        with pytest.raises(SystemExit) as exited:
            parse_options(REIMBURSEMENT, ["--db", str(tmp_path / "r.db"), "--port", "70000"])
        assert exited.value.code == 2
        assert "--port must be 0 to 65535" in capsys.readouterr().err


class TestStartDepartment:
    def test_registers_with_its_contract_and_drain_withdraws_it(self, tmp_path):
        """Started: registered with its contract version, health port and the context it
        was built with; drained: gone from the registry, serving no more, closed."""
        registry = StaticRegistry()
        desk = DeskDepartment()
        hosted = start_department(
            desk.department, options_for(desk.department, tmp_path), Mesh(registry=registry)
        )
        [instance] = registry.resolve("desk")
        assert instance.endpoint == hosted.address
        assert instance.tags == ("contract-v3",)
        assert instance.meta == {"department": "desk", "contract_version": "v3"}
        assert instance.check_port == hosted.server.health_port
        assert desk.context is not None
        assert (desk.context.name, desk.context.db) == ("desk", tmp_path / "desk.db")
        assert get_employee(hosted.address).employee.employee_id == "E1"

        hosted.drain()
        assert registry.services() == []
        assert desk.closed.is_set()
        assert refused(hosted.address)
        hosted.drain()  # again: nothing left to do

    def test_drain_lets_the_call_in_flight_finish(self, tmp_path):
        """During drain a call already running completes OK while new calls are refused."""
        desk = DeskDepartment(Desk(hold=True))
        hosted = start_department(
            desk.department,
            options_for(desk.department, tmp_path),
            Mesh(registry=StaticRegistry()),
        )
        with ThreadPoolExecutor(2) as pool:
            in_flight = pool.submit(get_employee, hosted.address, 10)
            assert desk.desk.entered.wait(5)
            draining = pool.submit(hosted.drain)
            wait_for(lambda: refused(hosted.address), what="new calls refused")
            assert not desk.closed.is_set()  # closed only after its last call
            desk.desk.release.set()
            assert in_flight.result(5).employee.employee_id == "E1"
            draining.result(5)
        assert desk.closed.is_set()

    def test_failed_registration_undoes_everything(self, tmp_path):
        """Registration refused: ControlPlaneUnavailable, the department closed, its port
        closed and its outbound channels gone; nothing is left registered."""
        registry = UnreachableRegistry()
        desk = DeskDepartment(calls="hr")
        options = options_for(desk.department, tmp_path)
        with pytest.raises(ControlPlaneUnavailable, match="registering desk-"):
            start_department(desk.department, options, Mesh(registry=registry))
        assert desk.closed.is_set()
        assert registry.services() == []
        server_port = desk.context.server.health_port  # the same port: plaintext server
        assert refused(f"127.0.0.1:{server_port}")

    def test_connect_without_a_registry_is_refused_at_build(self, tmp_path):
        """A department that calls another, hosted without a registry, fails to start with
        ValueError saying to give --consul-address; it never serves."""
        desk = DeskDepartment(calls="hr")
        with pytest.raises(ValueError, match="--consul-address"):
            start_department(desk.department, options_for(desk.department, tmp_path), Mesh())
        assert not desk.closed.is_set()  # build never returned its closer


class TestRunDepartment:
    @pytest.mark.parametrize("name", DEPARTMENTS)
    def test_help_lists_the_hosts_flags(self, name):
        """`python -m deptmesh.services.<name> --help` works and lists the host's flags."""
        result = subprocess.run(
            [sys.executable, "-m", f"deptmesh.services.{name}", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert f"usage: python -m deptmesh.services.{name}" in result.stdout
        for flag in ("--db", "--consul-address", "--grace-seconds", "--metrics-port"):
            assert flag in result.stdout

    def test_department_that_calls_others_needs_consul(self, tmp_path):
        """Travel without Consul exits 2, saying why, leaving nothing running."""
        result = run_service_until_exit("travel", "--db", str(tmp_path / "travel.db"))
        assert result.returncode == 2
        assert "not_started" in result.stderr
        assert "give --consul-address" in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
