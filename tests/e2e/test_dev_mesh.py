"""`deptmesh dev up | down | status`, run as a user runs them: the installed command, in a
directory of the test's own ($DEPTMESH_DEV_DIR), against a real Consul agent with ACLs and
the departments as real processes that outlive the command.

Every mesh a test brings up is taken down by its fixture, whatever the test did; if
`down` itself failed, the fixture kills what the record names, so that nothing is left
running.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.registry import ConsulRegistry, EndpointCache
from deptmesh.registry.local_mesh import find_local_mesh
from deptmesh.services.dev.detached import DetachedProcess, spawn
from deptmesh.services.dev.layout import MeshLayout
from deptmesh.services.dev.record import MeshRecord, read_record, write_record
from deptmesh.sidecar import connect
from deptmesh.sidecar.identity import ConsulConnectIdentity
from deptmesh.travel.v1 import travel_pb2, travel_pb2_grpc
from tests.integration.servers import wait_for
from tests.rpc_errors import error_reason, rpc_error

DEPARTMENTS = ("hr", "finance", "reimbursement", "travel", "metering")
IDENTITIES = (*DEPARTMENTS, "self-service", "platform", "monitoring")
DEPTMESH = Path(sys.executable).with_name("deptmesh")


@dataclass
class DevMesh:
    """A local mesh directory and the `deptmesh dev` command run against it."""

    directory: Path

    @property
    def environ(self) -> dict[str, str]:
        # A trace store of the mesh's own: the session's is written by every other test.
        return {
            **os.environ,
            "DEPTMESH_DEV_DIR": str(self.directory),
            "DEPTMESH_TRACE_STORE": str(self.directory / "traces.sqlite"),
        }

    def dev(self, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(DEPTMESH), "dev", *args],
            capture_output=True,
            text=True,
            check=False,
            env=self.environ,
            timeout=timeout,
        )

    def up(self) -> subprocess.CompletedProcess[str]:
        finished = self.dev("up", "--timeout", "90")
        assert finished.returncode == 0, f"{finished.stdout}\n{finished.stderr}"
        return finished

    def record(self) -> MeshRecord:
        record = read_record(MeshLayout(self.directory).record)
        assert record is not None
        return record

    def registry(self, identity: str) -> ConsulRegistry:
        return ConsulRegistry(
            self.record().consul_address, token_file=self.directory / "tokens" / f"{identity}.token"
        )

    def tear_down(self) -> None:
        """`down`; should that fail, every recorded process still running is killed."""
        try:
            self.dev("down", "--timeout", "10")
        finally:
            left = read_record(MeshLayout(self.directory).record)
            for process in [] if left is None else left.processes:
                process.signal(signal.SIGKILL)


def _mesh(directory: Path) -> Iterator[DevMesh]:
    mesh = DevMesh(directory)
    try:
        yield mesh
    finally:
        mesh.tear_down()


@pytest.fixture(scope="module")
def running_mesh(tmp_path_factory) -> Iterator[DevMesh]:
    """One mesh brought up for the tests that only look at it."""
    for mesh in _mesh(tmp_path_factory.mktemp("dev")):
        mesh.up()
        yield mesh


@pytest.fixture
def dev_mesh(tmp_path) -> Iterator[DevMesh]:
    """A mesh directory of the test's own, taken down at the end whatever happened."""
    yield from _mesh(tmp_path / "dev")


@pytest.fixture
def unrelated_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process the mesh did not start, which must outlive `dev down`."""
    process = subprocess.Popen(["sleep", "600"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def get_employee(mesh: DevMesh, identity: str, employee_id: str) -> hr_pb2.Employee:
    """hr's GetEmployee through the mesh as `identity`, with its token and Connect leaf."""
    registry = mesh.registry(identity)
    source = ConsulConnectIdentity(registry, identity)
    cache = EndpointCache(registry)
    try:
        with connect("hr", cache, identity=source) as channel:
            stub = hr_pb2_grpc.EmployeeServiceStub(channel)
            request = hr_pb2.GetEmployeeRequest(employee_id=employee_id)
            return stub.GetEmployee(request, timeout=15).employee
    finally:
        cache.close()
        source.stop()


class TestDevUp:
    def test_every_department_passes_consuls_health_check(self, running_mesh):
        """Once `up` returns, Consul's own gRPC health check passes for every department,
        at the address `up` printed."""
        printed = running_mesh.up().stdout
        monitoring = running_mesh.registry("monitoring")
        for name in DEPARTMENTS:
            [instance] = monitoring.resolve(name)
            assert running_mesh.record().addresses[name] == instance.endpoint
            assert instance.endpoint in printed

    def test_a_department_calls_another_through_the_mesh(self, running_mesh):
        """reimbursement's token and Connect leaf reach hr over mTLS, as the quick start's
        `deptmesh call ... --as reimbursement` does."""
        employee = get_employee(running_mesh, "reimbursement", "E1002")
        assert (employee.employee_id, employee.display_name) == ("E1002", "Alan Turing")

    def test_the_printed_trace_command_shows_a_call(self, running_mesh):
        """The `deptmesh trace --last --store ...` that `up` printed shows the call just made
        through the mesh: hr's departments write their spans where it looks."""
        [command] = [
            line.strip()
            for line in running_mesh.up().stdout.splitlines()
            if line.strip().startswith("deptmesh trace --last")
        ]

        def last_trace() -> str:
            finished = subprocess.run(
                [str(DEPTMESH), *shlex.split(command)[1:]],
                capture_output=True,
                text=True,
                check=False,
                # Wide enough that the view need not shorten the peer's name.
                env={**running_mesh.environ, "COLUMNS": "200"},
                timeout=30,
            )
            return finished.stdout

        before = last_trace().partition("\n")[0]  # "trace <id> ..." of an earlier call, if any
        get_employee(running_mesh, "reimbursement", "E1003")

        def shown() -> str:
            now = last_trace()
            is_new = now.partition("\n")[0] != before and "EmployeeService/GetEmployee" in now
            return now if is_new else ""

        # The department writes its spans in batches, off the call's path.
        assert "from reimbursement" in wait_for(shown, timeout=30, what="hr's span in the store")

    def test_the_company_policy_is_applied(self, running_mesh):
        """The method rules are in force too: finance may call travel (an intention), but
        RequestTrip is the self-service app's alone, so finance is refused by that rule."""
        registry = running_mesh.registry("finance")
        source = ConsulConnectIdentity(registry, "finance")
        cache = EndpointCache(registry)
        try:
            with connect("travel", cache, identity=source) as channel:
                stub = travel_pb2_grpc.TripServiceStub(channel)
                request = travel_pb2.RequestTripRequest(request_id="r1")
                error = rpc_error(lambda: stub.RequestTrip(request, timeout=15))
        finally:
            cache.close()
            source.stop()
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(error) == "ACCESS_DENIED"
        assert "allows only ['self-service']" in str(error.details())

    def test_the_mesh_is_recorded_for_the_other_commands(self, running_mesh):
        """mesh.json names the agent and tokens/ holds one token per identity, readable by
        its owner only, as `deptmesh call` looks for them."""
        mesh = find_local_mesh({"DEPTMESH_DEV_DIR": str(running_mesh.directory)})
        assert mesh is not None
        assert mesh.consul_address == running_mesh.record().consul_address
        for identity in IDENTITIES:
            token = mesh.token_file(identity)
            assert token is not None, identity
            assert token.stat().st_mode & 0o777 == 0o600
        management = running_mesh.directory / "consul" / "management.token"
        assert management.stat().st_mode & 0o777 == 0o600

    def test_status_shows_every_process_and_exits_0(self, running_mesh):
        """`status` names the directory, each process running with its pid, address and log,
        and Consul's passing instances; exit 0."""
        finished = running_mesh.dev("status")
        assert finished.returncode == 0, finished.stdout
        lines = finished.stdout.splitlines()
        assert lines[0] == f"local mesh in {running_mesh.directory}: up"
        record = running_mesh.record()
        for process in record.processes:
            [line] = [line for line in lines if line.split()[0] == process.name and "pid" in line]
            assert "running" in line.split()
            assert f"pid {process.pid}" in " ".join(line.split())
            assert str(process.log) in line
        for name in DEPARTMENTS:
            assert any(line.split() == [name, record.addresses[name]] for line in lines)

    def test_up_again_changes_nothing(self, running_mesh):
        """A second `up` says the mesh is up, exits 0 and starts nothing: same processes."""
        before = running_mesh.record().processes
        finished = running_mesh.up()
        assert finished.stdout.startswith("the local mesh is already up")
        assert running_mesh.record().processes == before
        assert all(process.running for process in before)


class TestDevDown:
    def test_down_stops_exactly_what_up_started(self, dev_mesh, unrelated_process):
        """`down` stops every process `up` recorded and no other, forgets the mesh, keeps the
        logs; `status` then exits 3, and `down` again exits 0 saying nothing is up."""
        dev_mesh.up()
        started = dev_mesh.record().processes
        assert len(started) == len(DEPARTMENTS) + 4  # Consul, Prometheus, Alertmanager, the portal
        assert all(process.running for process in started)

        finished = dev_mesh.dev("down")
        assert finished.returncode == 0, finished.stderr
        assert not any(process.running for process in started)
        assert unrelated_process.poll() is None
        assert find_local_mesh({"DEPTMESH_DEV_DIR": str(dev_mesh.directory)}) is None
        assert not (dev_mesh.directory / "tokens").exists()
        assert "hr serving on" in (dev_mesh.directory / "hr.log").read_text()

        status = dev_mesh.dev("status")
        assert status.returncode == 3
        assert status.stdout.splitlines()[0] == f"local mesh in {dev_mesh.directory}: down"
        again = dev_mesh.dev("down")
        assert again.returncode == 0
        assert again.stdout.strip() == f"no local mesh is up in {dev_mesh.directory}"

    def test_down_when_nothing_was_ever_up(self, tmp_path):
        """`down` in a directory that does not exist exits 0 and says nothing is up."""
        finished = DevMesh(tmp_path / "never").dev("down")
        assert finished.returncode == 0
        assert finished.stdout.strip() == f"no local mesh is up in {tmp_path / 'never'}"

    def test_down_signals_no_process_that_is_not_the_recorded_one(
        self, dev_mesh, unrelated_process, tmp_path
    ):
        """A recorded pid that has exited, and one now held by another process (its start
        time differs), are reported as gone and left alone; `down` exits 0."""
        gone = spawn("consul", ["/bin/true"], tmp_path / "true.log", cwd=tmp_path)
        os.waitpid(gone.pid, 0)  # collected: the pid names no process now
        unrelated = DetachedProcess(
            "finance",
            unrelated_process.pid,
            start_time=1,  # not when the sleep started: the pid was reused
            argv=("sleep", "600"),
            log=tmp_path / "finance.log",
        )
        dev_mesh.directory.mkdir()
        record = MeshRecord("127.0.0.1:1", tmp_path / "traces.sqlite", consul=gone)
        write_record(MeshLayout(dev_mesh.directory).record, record.with_department(unrelated))

        finished = dev_mesh.dev("down", "--timeout", "2")
        assert finished.returncode == 0, finished.stderr
        assert f"finance (pid {unrelated_process.pid}) was no longer running" in finished.stdout
        assert f"consul (pid {gone.pid}) was no longer running" in finished.stdout
        assert unrelated_process.poll() is None
        assert read_record(MeshLayout(dev_mesh.directory).record) is None

    def test_purge_removes_what_the_mesh_made_and_nothing_else(self, dev_mesh):
        """`down --purge` removes the logs, databases, tokens and the agent's folder, and
        leaves a file of the user's in the directory."""
        directory = dev_mesh.directory
        (directory / "tokens").mkdir(parents=True)
        (directory / "tokens" / "hr.token").write_text("x\n")
        (directory / "consul").mkdir()
        (directory / "consul" / "consul.log").write_text("x\n")
        for name in ("hr.log", "hr.db", "hr.db-wal", "travel.log", "mesh.json"):
            (directory / name).write_text("x\n")
        (directory / "notes.txt").write_text("mine\n")

        finished = dev_mesh.dev("down", "--purge")
        assert finished.returncode == 0, finished.stderr
        assert sorted(path.name for path in directory.iterdir()) == ["notes.txt"]


class TestDevUpAfterAFailure:
    def test_up_starts_again_a_department_that_died(self, dev_mesh):
        """With a department killed, `status` exits 1 naming it; `up` starts only that one
        again, with the tokens it made, and the mesh is whole (status 0)."""
        dev_mesh.up()
        before = dev_mesh.record()
        os.kill(before.departments["travel"].pid, signal.SIGKILL)
        wait_for(lambda: not before.departments["travel"].running, what="travel dying")

        status = dev_mesh.dev("status")
        assert status.returncode == 1
        assert status.stdout.splitlines()[0].endswith(": degraded")
        # Consul may still count it passing until its next check: only the process is sure.
        travel = [line.split() for line in status.stdout.splitlines() if "pid" in line]
        assert ["travel", "NOT", "RUNNING"] in [words[:3] for words in travel]

        finished = dev_mesh.up()
        assert "starting again what is not running: travel" in finished.stdout
        after = dev_mesh.record()
        assert after.consul == before.consul
        for name in ("hr", "finance", "reimbursement"):
            assert after.departments[name] == before.departments[name]
        assert after.departments["travel"].pid != before.departments["travel"].pid
        assert dev_mesh.dev("status").returncode == 0
        assert json.loads((dev_mesh.directory / "mesh.json").read_text()) == {
            "consul_address": before.consul_address
        }
