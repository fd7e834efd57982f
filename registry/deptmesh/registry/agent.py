"""A local Consul dev agent: started on free ports, stopped without a trace.

One helper for the tests, the demo and the CLI. The binary comes from the
installer `install-consul` (a `consul` on PATH, or Debian's package unpacked
into a tools folder), whose one source is the repository's
scripts/install-consul: a wheel ships it next to this module, and a clone runs
it from scripts/.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["ConsulNotFound", "DevAgent", "consul_binary", "consul_installer", "terminate"]

# In a wheel the installer is package data (hatch force-include); in a clone,
# including an editable install, it is only in the repository's scripts/.
_INSTALLERS = (
    Path(__file__).with_name("install-consul"),
    Path(__file__).resolve().parents[3] / "scripts" / "install-consul",
)


class ConsulNotFound(RuntimeError):
    """No Consul >= 1.8 was found or could be installed; the message says what to do in one
    line, a note holds the installer's whole output."""


def consul_installer() -> Path:
    """The install-consul script this installation runs: the wheel's copy, else the clone's."""
    for installer in _INSTALLERS:
        if installer.is_file():
            return installer
    raise ConsulNotFound(
        f"install-consul is neither next to {__file__} nor in a clone's scripts/;"
        " reinstall deptmesh, or install Consul 1.8 or newer and put it on PATH"
    )


def consul_binary() -> str:
    """The Consul binary, installing it first if needed; raises ConsulNotFound if that fails."""
    installer = consul_installer()
    # Run by bash, so a copy without its executable bit runs too.
    bash = shutil.which("bash")
    if bash is None:
        raise ConsulNotFound(
            f"{installer.name} needs bash on PATH;"
            " or install Consul 1.8 or newer and put it on PATH"
        )
    result = subprocess.run(  # noqa: S603 -- our own script
        [bash, str(installer)], capture_output=True, text=True, check=False, timeout=600
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode == 0 and lines:
        return lines[-1]
    said = result.stderr.strip().splitlines()
    error = ConsulNotFound(said[-1] if said else f"{installer} failed ({result.returncode})")
    error.add_note(f"{installer} (exit code {result.returncode}):\n{result.stderr}")
    raise error


def terminate(process: subprocess.Popen[Any], timeout: float) -> int:
    """SIGTERM, then SIGKILL if the process is still there after `timeout`; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _free_ports(count: int) -> list[int]:
    # Bound together so they are distinct; Consul binds them right after.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class DevAgent:
    """`consul agent -dev` bound to 127.0.0.1 on free ports, with its own data dir."""

    def __init__(self, binary: str | None = None) -> None:
        self._binary = binary or consul_binary()
        self._workdir = Path(tempfile.mkdtemp(prefix="deptmesh-consul-"))
        self._process: subprocess.Popen[bytes] | None = None
        self.http_port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 30.0) -> str:
        """Starts the agent and waits until it has a leader; returns its HTTP address."""
        if self.http_port == 0:
            http, serf_lan, serf_wan, server = _free_ports(4)
            self.http_port = http
            config = {
                "ports": {
                    "http": http,
                    "serf_lan": serf_lan,
                    "serf_wan": serf_wan,
                    "server": server,
                    "dns": -1,
                    "grpc": -1,
                },
            }
            (self._workdir / "ports.json").write_text(json.dumps(config))
        log = (self._workdir / "consul.log").open("ab")
        self._process = subprocess.Popen(  # noqa: S603 -- the installed consul binary
            [
                self._binary,
                "agent",
                "-dev",
                "-bind=127.0.0.1",
                "-client=127.0.0.1",
                f"-config-file={self._workdir / 'ports.json'}",
                f"-data-dir={self._workdir / 'data'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._wait_for_leader(timeout)
        return self.address

    def stop(self, timeout: float = 15.0) -> None:
        """Stops the agent (its state is lost; the ports stay ours for a restart)."""
        process, self._process = self._process, None
        if process is not None:
            terminate(process, timeout)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def log(self) -> str:
        return (self._workdir / "consul.log").read_text(errors="replace")

    def _wait_for_leader(self, timeout: float) -> None:
        """Waits until the agent has a leader and its Connect CA has a root."""
        deadline = time.monotonic() + timeout
        checks: list[tuple[str, Callable[[Any], bool]]] = [
            ("/v1/status/leader", bool),
            ("/v1/agent/connect/ca/roots", lambda body: bool(body.get("Roots"))),
        ]
        while checks and time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                break
            path, ready = checks[0]
            try:
                with urllib.request.urlopen(f"http://{self.address}{path}", timeout=1) as response:
                    if ready(json.loads(response.read())):
                        checks.pop(0)
                        continue
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.05)
        if not checks:
            return
        self.stop(timeout=5)
        raise RuntimeError(f"consul dev agent did not start within {timeout}s:\n{self.log()}")

    def __enter__(self) -> DevAgent:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
