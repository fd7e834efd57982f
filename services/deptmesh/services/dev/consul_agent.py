"""The local mesh's Consul agent: `consul agent -dev` as deptmesh's DevAgent runs it (ACLs
on, default deny, 127.0.0.1, free ports), but detached and in the mesh's directory.

DevAgent owns its process and a temporary folder, and stops both with itself;
here the agent must outlive `dev up` and be found by `dev down`, so it is
configured from the same parts (`acl_config`, `free_ports`, the installed
binary), started by `spawn`, and waited for the way DevAgent waits: a leader, a
Connect CA root, the management token known, the agent's own token made. Its
state is in memory (dev mode): a stopped agent has forgotten every token.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deptmesh.registry.acl import AclAdmin
from deptmesh.registry.agent import DevAgent, acl_config, free_ports
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.services.dev.detached import DetachedProcess
from deptmesh.services.dev.layout import MeshLayout

__all__ = ["ConsulStartFailed", "DevConsul", "configure_consul", "wait_until_ready"]


class ConsulStartFailed(RuntimeError):
    """The agent exited, or was not ready in time; the message names its log."""


@dataclass(frozen=True, slots=True)
class DevConsul:
    """The agent as configured: how to start it, where it will listen, its tokens."""

    argv: tuple[str, ...]
    address: str
    management_token: str = ""
    agent_token: str = ""

    def admin(self) -> AclAdmin:
        return AclAdmin(ConsulRegistry(self.address, token=self.management_token))


def _write_private(path: Path, text: str) -> None:
    """Writes `text` to `path`, readable by its owner only (it holds a token)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(file.fileno(), 0o600)  # it may have existed with a wider mode
        file.write(text)


def configure_consul(layout: MeshLayout, binary: str) -> DevConsul:
    """Writes the agent's config (new tokens, free ports) and its management token."""
    http, serf_lan, serf_wan, server = free_ports(4)
    management, agent = str(uuid.uuid4()), str(uuid.uuid4())
    config = {
        "node_name": DevAgent.NODE,
        "data_dir": str(layout.consul / "data"),
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
        "acl": acl_config(agent, management),
        "disable_update_check": True,
    }
    layout.consul.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(layout.consul_config, json.dumps(config, indent=2) + "\n")
    _write_private(layout.management_token, management + "\n")
    return DevConsul(
        argv=(binary, "agent", "-dev", f"-config-file={layout.consul_config}"),
        address=f"127.0.0.1:{http}",
        management_token=management,
        agent_token=agent,
    )


def wait_until_ready(consul: DevConsul, process: DetachedProcess, timeout: float) -> AclAdmin:
    """Waits as DevAgent.start does, then makes the agent's own token; the AclAdmin over the
    management token (ConsulStartFailed if the agent exits or `timeout` passes first)."""
    deadline = time.monotonic() + timeout
    ready = _poll(consul.address, "/v1/status/leader", bool, process, deadline) and _poll(
        consul.address,
        "/v1/agent/connect/ca/roots",
        lambda body: bool(body.get("Roots")),
        process,
        deadline,
    )
    if not ready:
        why = "exited" if not process.running else f"was not ready within {timeout:g}s"
        raise ConsulStartFailed(f"the Consul agent {why}; its log: {process.log}")
    admin = consul.admin()
    admin.wait_until_ready(max(1.0, deadline - time.monotonic()))
    # A dev agent starts empty: its own token is made with the secret its config names.
    admin.agent_token(DevAgent.NODE, secret_id=consul.agent_token)
    return admin


def _poll(
    address: str,
    path: str,
    ready: Callable[[Any], bool],
    process: DetachedProcess,
    deadline: float,
) -> bool:
    """Polls GET `path` (no token) until `ready(its JSON)`; False if the agent exited or
    `deadline` passed first."""
    while time.monotonic() < deadline:
        if not process.running:
            return False
        try:
            with urllib.request.urlopen(f"http://{address}{path}", timeout=1) as answer:
                if ready(json.loads(answer.read())):
                    return True
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.05)
    return False
