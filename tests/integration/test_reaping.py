"""A SIGKILLed test run leaves nothing behind: every process its harness started dies with it.

The harness gets no chance to stop anything on a SIGKILL, so this is the
kernel's parent-death signal at work (deptmesh.registry.children), for each kind
of process the harness starts (tests/integration/reaped_harness.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc

_DEADLINE_SECONDS = 15.0


def descendants(pid: int) -> dict[int, str]:
    """Every live process under `pid` (children, theirs, ...), with its command line."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # exited while we looked
            children.setdefault(parent, []).append(int(entry.name))
    found: dict[int, str] = {}
    waiting = list(children.get(pid, []))
    while waiting:
        child = waiting.pop()
        if alive(child):
            found[child] = command_line(child)
        waiting += children.get(child, [])
    return found


def alive(pid: int) -> bool:
    """Running or sleeping: a zombie has died, it is only waiting to be collected."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


@pytest.fixture
def scratch() -> Iterator[Path]:
    """The harness's temporary folder: the kill leaves Consul's and PostgreSQL's folders
    behind, removed with it after the test. Not under tmp_path, which PostgreSQL's
    unprivileged user could not reach."""
    folder = Path(tempfile.mkdtemp(prefix="deptmesh-reaping-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


class TestHardKill:
    def test_nothing_the_harness_started_survives_a_sigkill(self, tmp_path, scratch):
        """Consul agents, department and service processes, PostgreSQL and Prometheus all
        die within seconds of the process that started them being SIGKILLed, even one
        started from a thread that had already ended."""
        harness = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.reaped_harness", str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "TMPDIR": str(scratch)},
        )
        try:
            line = harness.stdout.readline().split()
            assert line[:1] == ["ready"], f"the harness did not start: {line}"
            # Started from a thread that has ended, and still serving.
            with grpc.insecure_channel(line[1]) as channel:
                reply = hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(
                    hr_pb2.GetEmployeeRequest(employee_id="E1000"), timeout=10
                )
            assert reply.employee.display_name == "Ada Lovelace"
            started = descendants(harness.pid)
            commands = " ".join(started.values())
            for kind in ("consul agent -dev", "consul agent -config-file", "deptmesh.services.hr"):
                assert kind in commands, f"{kind} is not running: {started}"
            for kind in ("deptmesh.services.finance", "postgres", "prometheus"):
                assert kind in commands, f"{kind} is not running: {started}"
        finally:
            harness.send_signal(signal.SIGKILL)
            harness.wait()
            harness.stdout.close()
            harness.stdin.close()

        deadline = time.monotonic() + _DEADLINE_SECONDS
        survivors = started
        while survivors and time.monotonic() < deadline:
            time.sleep(0.05)
            survivors = {pid: cmd for pid, cmd in survivors.items() if alive(pid)}
        for pid in survivors:  # leave nothing behind, then fail
            os.kill(pid, signal.SIGKILL)
        assert survivors == {}, "still running after the harness was SIGKILLed"
