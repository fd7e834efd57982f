"""Runs a department as a child process and stops it, leaving nothing behind, even when
the process that started it is SIGKILLed.

Used by the demo and the end-to-end tests: the child is `python -m <module>
--port 0 ...` for any module whose entry point is `run_department`, and its
first line on standard output (`<name> serving on HOST:PORT`) says where it
listens.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from deptmesh.registry.agent import terminate
from deptmesh.registry.children import start_child

__all__ = ["DepartmentProcess"]

_SERVING = re.compile(r"^(?P<name>\S+) serving on (?P<address>\S+:\d+)$")


class DepartmentProcess:
    """One department in its own process; a context manager that always stops it."""

    def __init__(self, module: str, args: Sequence[str], log_path: Path) -> None:
        self.module = module
        self._args = [sys.executable, "-m", module, *args]
        self._log_path = log_path
        self._process: subprocess.Popen[str] | None = None
        # Known once it serves: the department's name and HOST:PORT.
        self.name = ""
        self.address = ""

    def start(self, timeout: float = 30.0) -> str:
        """Starts the process and returns the address it prints once it is serving."""
        log = self._log_path.open("w")
        # Its own session: Ctrl-C reaches us, and we drain it. Tied to this process:
        # a SIGKILL of ours kills it too (deptmesh.registry.children).
        self._process = start_child(
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
            exited = self._process.poll()
            self.stop()
            why = f"exited with status {exited}" if exited is not None else f"took over {timeout}s"
            raise RuntimeError(
                f"{self.module} did not start ({why}); its log:\n" + self._log_path.read_text()
            )
        self.name, self.address = match["name"], match["address"]
        return self.address

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        process = self._process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused process could not drain
        returncode = terminate(process, timeout)
        if process.stdout is not None:
            process.stdout.close()
        return returncode

    def send_signal(self, signal_number: int) -> None:
        """Sends a signal (SIGTERM to drain it while the caller watches) to the process."""
        if self._process is not None:
            self._process.send_signal(signal_number)

    def pause(self, timeout: float = 10.0) -> None:
        """SIGSTOP, returning once it has stopped: it answers nothing until `resume()`."""
        process = self._running()
        process.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + timeout
        # WNOWAIT: only looks; the stop stays to be collected by nobody, the exit by Popen.
        while os.waitid(os.P_PID, process.pid, os.WSTOPPED | os.WNOHANG | os.WNOWAIT) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.module} did not stop within {timeout}s")
            time.sleep(0.005)

    def resume(self) -> None:
        """SIGCONT: a paused process carries on where it stopped."""
        self._running().send_signal(signal.SIGCONT)

    def wait(self, timeout: float) -> int:
        """Waits for the process to exit on its own; its exit code."""
        if self._process is None:
            return 0
        return self._process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to drain or deregister."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()

    def _running(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError(f"{self.module} is not running")
        return self._process

    def log(self) -> str:
        return self._log_path.read_text()

    def __enter__(self) -> DepartmentProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.stop()
