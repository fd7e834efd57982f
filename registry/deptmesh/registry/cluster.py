"""A Consul cluster on 127.0.0.1, as in production: servers, and a client agent per host.

For fault tests and benchmarks: three servers (a quorum survives one loss)
and one client agent per "host", every agent with its own ports, data folder
and node id, ACLs on with default deny. A department on a host is given that
host's client agent address, as a department process in production is given
its own machine's agent; the agents find the servers by `retry_join` and
rejoin within a second of coming back.

    with ConsulCluster(servers=3, hosts=2) as cluster:
        tokens = cluster.admin().mesh_tokens(["hr", "finance"])
        # run departments with --consul-address cluster.hosts[0].address ...
        cluster.leader().kill()
        cluster.wait_for_leader()

Faults are a member's `kill()` (SIGKILL), `stop()` (SIGTERM: it stops without
leaving) and `forget_state()` (a data folder emptied while it is down); each
starts again with `start()` on its old ports. Raft runs with
`raft_multiplier = 1`, so a new leader is elected about a second after the
old one is gone.
"""

from __future__ import annotations

import json
import shutil
import string
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from deptmesh.registry.acl import AclAdmin
from deptmesh.registry.agent import AgentProcess, acl_config, consul_binary, free_ports
from deptmesh.registry.consul import ConsulRegistry

__all__ = ["ClusterMember", "ConsulCluster"]


class ClusterMember:
    """One agent of the cluster: a server, or the client agent of a host."""

    def __init__(self, name: str, process: AgentProcess, server_port: int) -> None:
        self.name = name
        self.process = process
        # The server RPC port: how /v1/status/leader names a server.
        self.server_port = server_port

    def __repr__(self) -> str:
        return f"ClusterMember({self.name!r}, {self.address})"

    @property
    def address(self) -> str:
        """HOST:PORT of its HTTP API: what a department on this host is given."""
        return self.process.address

    @property
    def running(self) -> bool:
        return self.process.running

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def pause(self) -> None:
        self.process.pause()

    def resume(self) -> None:
        self.process.resume()

    def forget_state(self) -> None:
        self.process.forget_state()

    def log(self) -> str:
        return self.process.log()

    def status(self, what: str) -> Any:
        """GET /v1/status/<what> (`leader`, `peers`; no token needed), None when the
        agent does not answer."""
        url = f"http://{self.address}/v1/status/{what}"
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                return json.loads(answer.read())
        except (OSError, urllib.error.URLError, ValueError):
            return None


class ConsulCluster:
    """`servers` Consul servers and `hosts` client agents on 127.0.0.1, ACLs on."""

    def __init__(
        self,
        *,
        servers: int = 3,
        hosts: int = 2,
        binary: str | None = None,
        datacenter: str = "dc1",
    ) -> None:
        if servers < 1 or hosts < 0 or hosts > len(string.ascii_lowercase):
            raise ValueError("a cluster has at least one server and at most 26 hosts")
        self.datacenter = datacenter
        self._binary = binary or consul_binary()
        self._workdir = Path(tempfile.mkdtemp(prefix="deptmesh-cluster-"))
        self._master = str(uuid.uuid4())
        self._agent_tokens: dict[str, str] = {}
        ports = [free_ports(4) for _ in range(servers + hosts)]
        joins = [f"127.0.0.1:{serf_lan}" for _, serf_lan, _, _ in ports[:servers]]
        self.servers = [
            self._member(f"server-{i + 1}", ports[i], joins, server=True) for i in range(servers)
        ]
        self.hosts = [
            self._member(f"host-{string.ascii_lowercase[i]}", ports[servers + i], joins)
            for i in range(hosts)
        ]

    @property
    def members(self) -> list[ClusterMember]:
        return [*self.servers, *self.hosts]

    def _member(
        self, name: str, ports: list[int], joins: list[str], *, server: bool = False
    ) -> ClusterMember:
        http, serf_lan, serf_wan, server_port = ports
        self._agent_tokens[name] = str(uuid.uuid4())
        config: dict[str, Any] = {
            "node_name": name,
            # Fixed, so an agent whose data folder was emptied is still the same node.
            "node_id": str(uuid.uuid4()),
            "datacenter": self.datacenter,
            "primary_datacenter": self.datacenter,
            "bind_addr": "127.0.0.1",
            "client_addr": "127.0.0.1",
            "ports": {
                "http": http,
                "serf_lan": serf_lan,
                "serf_wan": serf_wan,
                "server": server_port,
                "dns": -1,
                "grpc": -1,
            },
            "retry_join": [join for join in joins if join != f"127.0.0.1:{serf_lan}"],
            "retry_interval": "1s",
            "leave_on_terminate": False,
            "skip_leave_on_interrupt": True,
            "acl": acl_config(self._agent_tokens[name], self._master if server else None),
            "disable_update_check": True,
            "log_level": "INFO",
        }
        if server:
            config |= {
                "server": True,
                "bootstrap_expect": len(joins),
                "connect": {"enabled": True},
                # A second of silence from the leader starts an election.
                "performance": {"raft_multiplier": 1},
                # A server that comes back votes again after 2 s instead of 10.
                "autopilot": {"server_stabilization_time": "2s"},
            }
        process = AgentProcess(self._binary, self._workdir / name, config)
        return ClusterMember(name, process, server_port)

    def admin(self) -> AclAdmin:
        """Makes policies and tokens with the management token, through a running server."""
        server = next((s for s in self.servers if s.running), self.servers[0])
        return AclAdmin(ConsulRegistry(server.address, token=self._master))

    def start(self, timeout: float = 60.0) -> None:
        """Starts the servers, waits for a leader and the ACL system, makes every agent's
        token, then starts the hosts' agents and waits until they reach the servers."""
        deadline = time.monotonic() + timeout
        try:
            for server in self.servers:
                server.start()
            self.wait_for_leader(deadline - time.monotonic())
            for server in self.servers:
                if not server.process.wait_http(
                    "/v1/agent/connect/ca/roots", lambda body: bool(body.get("Roots")), deadline
                ):
                    self._wait(lambda: False, deadline, f"the Connect CA on {server.name}")
            admin = self.admin()
            admin.wait_until_ready(max(1.0, deadline - time.monotonic()))
            # Made before the clients start, so no agent ever asks with a token
            # Consul does not know yet.
            for member in self.members:
                admin.agent_token(
                    member.name,
                    datacenter=self.datacenter,
                    secret_id=self._agent_tokens[member.name],
                )
            for host in self.hosts:
                host.start()
            self.wait_until_whole(deadline - time.monotonic())
        except BaseException:
            self.close()
            raise

    def leader(self) -> ClusterMember:
        """The server that leads now (RuntimeError when none does)."""
        for server in self.servers:
            if not server.running:
                continue
            answer = server.status("leader")
            if answer:
                port = int(str(answer).rpartition(":")[2])
                return next(s for s in self.servers if s.server_port == port)
        raise RuntimeError("no server of the cluster knows a leader")

    def wait_for_leader(self, timeout: float = 30.0) -> ClusterMember:
        """The leader, once a running server leads and the others agree."""
        deadline = time.monotonic() + timeout
        found: list[ClusterMember] = []

        def elected() -> bool:
            answers = {s.status("leader") for s in self.servers if s.running}
            if len(answers) != 1 or not next(iter(answers)):
                return False
            leader = self.leader()
            found[:] = [leader]
            return leader.running

        self._wait(elected, deadline, "a leader")
        return found[0]

    def wait_until_whole(self, timeout: float = 60.0) -> None:
        """Waits until every member runs, every server counts all servers as raft peers
        and agrees on the leader, every server votes (the cluster survives the loss of
        any one), and every host's agent reaches the servers."""
        deadline = time.monotonic() + timeout
        for member in self.members:
            if not member.running:
                member.start()
        self.wait_for_leader(deadline - time.monotonic())

        def whole() -> bool:
            peers = [s.status("peers") for s in self.servers]
            leaders = {m.status("leader") for m in self.members}
            return (
                all(p is not None and len(p) == len(self.servers) for p in peers)
                and (len(leaders) == 1 and bool(next(iter(leaders))))
                and self._voters() == len(self.servers)
            )

        self._wait(whole, deadline, "every member in the cluster")

    def _voters(self) -> int:
        """How many servers vote in the raft configuration, asked of a running server; 0
        when none answers. A server back from an outage is a peer at once but rejoins as
        a non-voter until autopilot promotes it: losing the leader before then loses the
        quorum."""
        for server in self.servers:
            if not server.running:
                continue
            request = urllib.request.Request(
                f"http://{server.address}/v1/operator/raft/configuration",
                headers={"X-Consul-Token": self._master},
            )
            try:
                with urllib.request.urlopen(request, timeout=1) as answer:  # noqa: S310 -- http to our agent
                    configuration = json.loads(answer.read())
            except (OSError, urllib.error.URLError, ValueError):
                continue
            return sum(1 for member in configuration.get("Servers") or [] if member.get("Voter"))
        return 0

    def _wait(self, condition: Callable[[], bool], deadline: float, what: str) -> None:
        while not condition():
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {m.name}\n{m.log()[-3000:]}" for m in self.members)
                raise RuntimeError(f"consul cluster: {what} not ready in time\n{logs}")
            time.sleep(0.05)

    def close(self) -> None:
        """Stops every agent and removes their folders."""
        for member in self.members:
            member.kill()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> ConsulCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
