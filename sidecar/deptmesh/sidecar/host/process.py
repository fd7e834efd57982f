"""Starts department services as child processes and stops them, leaving nothing behind.

Used by the demo and the end-to-end tests: each service runs as
`python -m services.<name> --port 0 ...`, and its first stdout line tells where
it listens.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from deptmesh.registry.agent import terminate

_SERVING = re.compile(r"^(?P<name>\S+) serving on (?P<address>\S+:\d+)$")


class ServiceProcess:
    """One service in its own process; a context manager that always stops it."""

    def __init__(self, name: str, args: Sequence[str], log_path: Path) -> None:
        self.name = name
        self._args = [sys.executable, "-m", f"deptmesh.services.{name}", *args]
        self._log_path = log_path
        self._process: subprocess.Popen[str] | None = None
        self.address = ""

    def start(self, timeout: float = 30.0) -> str:
        """Starts the process and returns the address it prints once it is serving."""
        log = self._log_path.open("w")
        self._process = subprocess.Popen(  # noqa: S603 -- our interpreter running our module
            self._args, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True
        )
        log.close()
        first_line: list[str] = []
        stdout = self._process.stdout
        if stdout is None:
            raise RuntimeError("Popen was given stdout=PIPE but has no stdout")
        reader = threading.Thread(target=lambda: first_line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        match = _SERVING.match(first_line[0].strip()) if first_line else None
        if match is None:
            self.stop()
            raise RuntimeError(
                f"{self.name} did not start within {timeout}s; its log:\n"
                + self._log_path.read_text()
            )
        self.address = match["address"]
        return self.address

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        process = self._process
        if process is None:
            return 0
        returncode = terminate(process, timeout)
        if process.stdout is not None:
            process.stdout.close()
        return returncode

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to drain or deregister."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()

    def log(self) -> str:
        return self._log_path.read_text()

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.stop()
