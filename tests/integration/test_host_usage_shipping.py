"""The host ships a department's usage to the ledger it finds in the registry: the flags,
the spool's stable default place, and the last shipment when the department drains."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc
import pytest

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.metering.v1 import metering_pb2
from deptmesh.registry.model import ServiceInstance
from deptmesh.registry.static import StaticRegistry
from deptmesh.sidecar import Department, HostContext
from deptmesh.sidecar.host import Mesh, parse_options, start_department
from deptmesh.sidecar.host.options import default_usage_spool
from tests.integration.fake_ledger import LedgerServer


class Desk(hr_pb2_grpc.EmployeeServiceServicer):
    def GetEmployee(self, request, context):
        return hr_pb2.GetEmployeeResponse(employee=hr_pb2.Employee(employee_id="E1"))


def build(host: HostContext) -> object:
    host.server.add_service(
        hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
        hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
        Desk(),
    )
    return lambda: None


DESK = Department(name="desk", build=build)


def options(tmp_path: Path, *flags: str):
    parsed = parse_options(
        DESK, ["--db", str(tmp_path / "desk.db"), "--drain-seconds", "0", *flags]
    )
    return dataclasses.replace(parsed, metrics_port=None)


@pytest.fixture
def ledger_server():
    server = LedgerServer()
    yield server
    server.stop()


def call_desk(address: str, count: int) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = hr_pb2_grpc.EmployeeServiceStub(channel)
        for _ in range(count):
            stub.GetEmployee(hr_pb2.GetEmployeeRequest(employee_id="E1"), timeout=5)


class TestUsageFlags:
    def test_with_consul_usage_goes_to_metering_by_default(self, tmp_path):
        """With a Consul address the ledger is `metering` unless --usage-ledger none."""
        consul = ("--consul-address", "127.0.0.1:8500")
        assert options(tmp_path, *consul).usage_ledger == "metering"
        assert options(tmp_path, *consul, "--usage-ledger", "none").usage_ledger is None
        assert options(tmp_path, *consul, "--usage-ledger", "ledger2").usage_ledger == "ledger2"

    def test_without_consul_no_usage_is_shipped_by_default(self, tmp_path):
        """Without Consul (file mode) shipping is off unless a ledger is named."""
        assert options(tmp_path).usage_ledger is None
        assert options(tmp_path).usage_flush_seconds == 2.0

    def test_the_flush_interval_must_be_positive(self, tmp_path, capsys):
        """--usage-flush-seconds 0 exits 2, naming the flag."""
        with pytest.raises(SystemExit) as exited:
            options(tmp_path, "--usage-flush-seconds", "0")
        assert exited.value.code == 2
        assert "--usage-flush-seconds" in capsys.readouterr().err

    def test_the_spool_sits_beside_a_sqlite_database(self, tmp_path):
        """The default spool of a SQLite department is a file beside its database."""
        assert default_usage_spool("hr", tmp_path / "hr.db") == tmp_path / "hr.usage-spool.sqlite"

    def test_with_postgresql_the_spool_is_in_the_state_directory(self):
        """The default spool of a PostgreSQL department is under $XDG_STATE_HOME/deptmesh."""
        spool = default_usage_spool(
            "hr", "postgresql://hr@db:5432/hr", {"XDG_STATE_HOME": "/var/state"}
        )
        assert spool == Path("/var/state/deptmesh/usage-spool/hr.sqlite")


class TestHostedDepartmentShipsUsage:
    def test_a_drained_department_has_shipped_every_call(self, tmp_path, ledger_server):
        """Calls served until the drain reach the ledger found in the registry, once each,
        through the spool beside the database."""
        registry = StaticRegistry(
            [ServiceInstance("metering", "metering-1", "127.0.0.1", ledger_server.port)]
        )
        hosted = start_department(
            DESK,
            options(tmp_path, "--usage-ledger", "metering", "--usage-flush-seconds", "3600"),
            Mesh(registry=registry),
        )
        call_desk(hosted.address, 9)
        hosted.drain()

        records = list(ledger_server.ledger.records.values())
        assert sum(record.calls for record in records) == 9
        assert {(r.caller, r.callee, r.status_class) for r in records} == {
            ("anonymous", "desk", metering_pb2.STATUS_CLASS_OK)
        }
        assert (tmp_path / "desk.usage-spool.sqlite").exists()

    def test_without_a_ledger_nothing_is_spooled(self, tmp_path):
        """A department told of no ledger keeps no spool."""
        hosted = start_department(DESK, options(tmp_path), Mesh(registry=StaticRegistry()))
        call_desk(hosted.address, 1)
        hosted.drain()
        assert not (tmp_path / "desk.usage-spool.sqlite").exists()

    def test_a_spool_that_cannot_be_opened_stops_the_start(self, tmp_path):
        """A --usage-spool that is not a usable file is a ValueError naming the flag."""
        (tmp_path / "a-directory").mkdir()
        with pytest.raises(ValueError, match="--usage-spool"):
            start_department(
                DESK,
                options(
                    tmp_path,
                    "--usage-ledger",
                    "metering",
                    "--usage-spool",
                    str(tmp_path / "a-directory"),
                ),
                Mesh(registry=StaticRegistry()),
            )
