"""Test servers on port 0, and polling with a deadline."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.registry.children import start_child
from deptmesh.sidecar import Server


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


class ServiceProcessUnderTest:
    """`python -m services.<name> ARGS...` as a child process, for the length of a `with`."""

    def __init__(self, name: str, *args: str) -> None:
        self.process = start_child(
            [sys.executable, "-m", f"deptmesh.services.{name}", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = (self.process.stdout.readline() if self.process.stdout else "").strip()
        match = re.fullmatch(rf"{name} serving on (\S+)", line)
        if match is None:
            self.process.kill()
            _, stderr = self.process.communicate(timeout=10)
            raise AssertionError(f"{name} did not start: {line!r}\n{stderr}")
        self.address = match[1]
        self.stderr = ""

    def __enter__(self) -> ServiceProcessUnderTest:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, self.stderr = self.process.communicate(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.communicate()

    def log_events(self) -> list[str]:
        """The `event` of every JSON log line the service wrote (after it exited)."""
        return [json.loads(line)["event"] for line in self.stderr.splitlines() if line[:1] == "{"]


def run_service_until_exit(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m services.<name> --port 0 ARGS...` for a service expected to refuse to
    start: its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", f"deptmesh.services.{name}", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
