"""Consul agents run by deptmesh itself: a dev agent for the demo and the tests, and the
`AgentProcess` the cluster harness (cluster.py) runs its servers and clients with.

Every agent binds 127.0.0.1 on free ports, keeps its config, data and log in a
folder of its own, and runs with ACLs on and default deny, as in production:
its agent token and (for servers) the management token, `acl.tokens.master`,
are in its config file, readable by its owner only.

The binary comes from the installer `install-consul` (a `consul` on PATH, or
Debian's package unpacked into a tools folder), whose one source is the
repository's scripts/install-consul: a wheel ships it next to this module, and
a clone runs it from scripts/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from deptmesh.registry.acl import AclAdmin
from deptmesh.registry.children import start_child
from deptmesh.registry.consul import ConsulRegistry

__all__ = [
    "AgentProcess",
    "ConsulNotFound",
    "DevAgent",
    "acl_config",
    "consul_binary",
    "consul_installer",
    "free_ports",
    "terminate",
]

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


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 now (Consul binds them right after)."""
    # Bound together so they are distinct.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def acl_config(agent_token: str, master_token: str | None = None) -> dict[str, Any]:
    """The `acl` block every deptmesh agent runs with (Consul 1.8's names): on, default
    deny, the agent's token, and on servers the management token."""
    tokens = {"agent": agent_token}
    if master_token is not None:
        tokens["master"] = master_token
    return {
        "enabled": True,
        "default_policy": "deny",
        # A client agent cut off from the servers keeps using the tokens it resolved.
        "down_policy": "extend-cache",
        "enable_token_persistence": True,
        "tokens": tokens,
    }


class AgentProcess:
    """One `consul agent` with its config, data and log in `workdir`; it can be started
    again on the same ports and data after `stop()` or `kill()`."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        config: Mapping[str, Any],
        *,
        dev: bool = False,
    ) -> None:
        self.workdir = workdir
        self.http_port = int(config["ports"]["http"])
        self._binary = binary
        self._dev = dev
        self._process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        # Holds tokens: readable by its owner only.
        descriptor = os.open(workdir / "config.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump({"data_dir": str(workdir / "data"), **config}, file)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Starts the process (it serves HTTP a moment later; see wait_http)."""
        if self.running:
            return
        log = (self.workdir / "consul.log").open("ab")
        # Its own session: Ctrl-C reaches us, and we stop it in order. Tied to this
        # process: a SIGKILL of ours kills it too (children.py).
        self._process = start_child(
            [
                self._binary,
                "agent",
                *(["-dev"] if self._dev else []),
                f"-config-file={self.workdir / 'config.json'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (SIGKILL after `timeout`): the agent stops without leaving the cluster."""
        process, self._process = self._process, None
        if process is not None:
            terminate(process, timeout)

    def kill(self) -> None:
        """SIGKILL: the agent gets no chance to say anything to anyone."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()

    def pause(self) -> None:
        """SIGSTOP: the agent is frozen, answering nothing, until `resume()`."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT: a paused agent carries on where it stopped."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def forget_state(self) -> None:
        """Empties the data folder of a stopped agent: it restarts knowing nothing."""
        if self.running:
            raise RuntimeError("stop the agent before its state is removed")
        shutil.rmtree(self.workdir / "data", ignore_errors=True)

    def wait_http(self, path: str, ready: Callable[[Any], bool], deadline: float) -> bool:
        """Polls GET `path` (no token) until `ready(its JSON)`; False if the process died
        or `deadline` (monotonic) passed first."""
        while time.monotonic() < deadline:
            if not self.running:
                return False
            try:
                with urllib.request.urlopen(f"http://{self.address}{path}", timeout=1) as answer:
                    if ready(json.loads(answer.read())):
                        return True
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.05)
        return False

    def log(self) -> str:
        path = self.workdir / "consul.log"
        return path.read_text(errors="replace") if path.exists() else ""


class DevAgent:
    """`consul agent -dev` on 127.0.0.1, free ports, its own data dir, ACLs on (default deny).

    `admin()` is the AclAdmin over its management token, for making the
    tokens everything else runs with. A dev agent keeps its state in memory:
    after `stop()` and `start()` it has forgotten every token, registration and
    key but its own management and agent tokens.
    """

    NODE = "deptmesh-dev"

    def __init__(self, binary: str | None = None) -> None:
        self._binary = binary or consul_binary()
        self._workdir = Path(tempfile.mkdtemp(prefix="deptmesh-consul-"))
        self._master = str(uuid.uuid4())
        self._agent_token = str(uuid.uuid4())
        self._process: AgentProcess | None = None

    @property
    def address(self) -> str:
        return "" if self._process is None else self._process.address

    @property
    def http_port(self) -> int:
        return 0 if self._process is None else self._process.http_port

    def admin(self) -> AclAdmin:
        """Makes policies and tokens with the agent's management token."""
        return AclAdmin(ConsulRegistry(self.address, token=self._master))

    def start(self, timeout: float = 30.0) -> str:
        """Starts the agent and waits until it has a leader, a Connect CA root and its
        ACL tokens; returns its HTTP address."""
        if self._process is None:
            http, serf_lan, serf_wan, server = free_ports(4)
            config = {
                "node_name": self.NODE,
                "bind_addr": "127.0.0.1",
                "client_addr": "127.0.0.1",
                "ports": {
                    "http": http,
                    "serf_lan": serf_lan,
                    "serf_wan": serf_wan,
                    "server": server,
                    "dns": -1,
                    "grpc": -1,
                },
                "primary_datacenter": "dc1",
                "acl": acl_config(self._agent_token, self._master),
                "disable_update_check": True,
            }
            self._process = AgentProcess(self._binary, self._workdir, config, dev=True)
        process = self._process
        process.start()
        deadline = time.monotonic() + timeout
        ready = process.wait_http("/v1/status/leader", bool, deadline) and process.wait_http(
            "/v1/agent/connect/ca/roots", lambda body: bool(body.get("Roots")), deadline
        )
        if not ready:
            self.stop(timeout=5)
            raise RuntimeError(f"consul dev agent did not start within {timeout}s:\n{self.log()}")
        admin = self.admin()
        admin.wait_until_ready(max(1.0, deadline - time.monotonic()))
        # A dev agent starts empty every time: its own token is made anew.
        admin.agent_token(self.NODE, secret_id=self._agent_token)
        return self.address

    def stop(self, timeout: float = 15.0) -> None:
        """Stops the agent (its state is lost; the ports stay ours for a restart)."""
        if self._process is not None:
            self._process.stop(timeout)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def log(self) -> str:
        return "" if self._process is None else self._process.log()

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
