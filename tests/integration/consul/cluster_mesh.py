"""Departments on a Consul cluster's hosts, as in production, and load across them.

`ClusterMesh` runs department processes on the hosts of a `ConsulCluster`
(deptmesh.registry.cluster): each is given its own host's client agent and its
own token file, and the platform's token writes the company's intentions. A
`Caller` is a Connect service of the test's (or a benchmark's) own on a host:
its token, its leaf and its endpoint cache all through that host's agent.
`Load` keeps calls going from threads and counts what fails.

Used by the cluster fault tests (test_cluster.py) and meant for benchmarks that
run calls while killing things (bench/ may import it, as it imports tests'
servers).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from deptmesh.registry.acl import MeshTokens, Token
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.cluster import ClusterMember, ConsulCluster
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.services import intentions
from deptmesh.sidecar.channel import ServiceChannel, client
from deptmesh.sidecar.host import DepartmentProcess
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity
from tests.integration.servers import wait_for

__all__ = ["Caller", "ClusterMesh", "Load"]


class Caller:
    """A Connect service of our own on one host: its token, leaf and endpoint cache go
    through that host's agent; `connect(service)` opens a channel over mTLS."""

    def __init__(self, name: str, host: ClusterMember, token: Token) -> None:
        self.name = name
        self.host = host
        self.registry = ConsulRegistry(host.address, token=token.secret_id)
        self.identity = ConsulConnectIdentity(self.registry, name, wait_seconds=5)
        self.cache = EndpointCache(self.registry)
        self._channels: list[ServiceChannel] = []

    def connect(self, service: str) -> ServiceChannel:
        channel = client.connect(service, self.cache, identity=self.identity)
        self._channels.append(channel)
        return channel

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        self.cache.close()
        self.identity.stop()


class ClusterMesh:
    """Department processes placed on a cluster's hosts; a context manager that stops all.

    `placement` maps a host's name (`host-a`) to the departments it runs; a
    department on several hosts has a replica on each, over one database.
    `callers` are the names of the Connect services the test calls as, each
    with the intentions `allow` lists ((source, destination) pairs). A
    department's replicas share a SQLite file in `workdir`, or the
    `databases` URL given for it (postgresql://...).
    """

    def __init__(
        self,
        cluster: ConsulCluster,
        workdir: Path,
        placement: Mapping[str, Sequence[str]],
        *,
        callers: Iterable[str] = (),
        allow: Iterable[tuple[str, str]] = (),
        databases: Mapping[str, str] | None = None,
    ) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self._databases = dict(databases or {})
        self._placement = placement
        self._callers = list(callers)
        self._allow = list(allow)
        self.processes: list[tuple[ClusterMember, DepartmentProcess]] = []
        self._started_callers: list[Caller] = []
        self.tokens: MeshTokens | None = None

    def host(self, name: str) -> ClusterMember:
        return next(host for host in self.cluster.hosts if host.name == name)

    def start(self, timeout: float = 60.0) -> None:
        """Makes the tokens, writes the policy, starts every department (in parallel) and
        waits until Consul's checks pass for all of them."""
        departments = sorted({name for names in self._placement.values() for name in names})
        admin = self.cluster.admin()
        self.tokens = admin.mesh_tokens([*departments, *self._callers])
        platform = ConsulRegistry(self.cluster.servers[0].address, token=self.platform_secret)
        intentions.apply(platform, *((source, target, "allow") for source, target in self._allow))
        wanted = [
            (self.host(host), name) for host, names in self._placement.items() for name in names
        ]
        with ThreadPoolExecutor(len(wanted)) as pool:
            list(pool.map(lambda placed: self.start_department(*placed), wanted))
        self.wait_until_passing(timeout)

    @property
    def platform_secret(self) -> str:
        assert self.tokens is not None, "start() first"
        return self.tokens.platform.secret_id

    def start_department(self, host: ClusterMember, name: str) -> DepartmentProcess:
        """One more replica of `name` on `host`; returns it once it serves."""
        assert self.tokens is not None, "start() first"
        token = self.workdir / f"{name}.token"
        if not token.exists():
            self.tokens.department(name).write_file(token)
        process = DepartmentProcess(
            f"deptmesh.services.{name}",
            [
                *("--port", "0", "--db", self.database(name), "--seed-demo-data"),
                *("--consul-address", host.address, "--consul-token-file", str(token)),
                *("--drain-seconds", "0.5", "--grace-seconds", "5", "--trace-exporter", "none"),
            ],
            self.workdir / f"{name}-{host.name}-{uuid.uuid4().hex[:6]}.log",
        )
        self.processes.append((host, process))
        process.start()
        return process

    def database(self, name: str) -> str:
        """What the replicas of `name` are given as `--db`."""
        return self._databases.get(name, str(self.workdir / f"{name}.db"))

    def stop_department(self, process: DepartmentProcess) -> int:
        """Drains one replica and forgets it; its exit code."""
        self.processes = [placed for placed in self.processes if placed[1] is not process]
        return process.stop()

    def on(self, host: ClusterMember) -> list[DepartmentProcess]:
        """The department processes running on `host`."""
        return [process for where, process in self.processes if where is host]

    def passing(self, service: str, through: ClusterMember | None = None) -> set[str]:
        """The endpoints of `service` whose checks pass, as `through`'s agent tells."""
        assert self.tokens is not None, "start() first"
        agent = through or self.cluster.hosts[0]
        monitoring = ConsulRegistry(agent.address, token=self.tokens.monitoring.secret_id)
        return {instance.endpoint for instance in monitoring.resolve(service)}

    def wait_until_passing(self, timeout: float = 30.0) -> None:
        """Until every department process is passing in Consul, seen through every host."""

        def all_passing() -> bool:
            for host in self.cluster.hosts:
                for _, process in self.processes:
                    name = process.module.rpartition(".")[2]
                    if process.address not in self.passing(name, through=host):
                        return False
            return True

        wait_for(all_passing, timeout, "every department passing on every host")

    def caller(self, name: str, host: ClusterMember) -> Caller:
        assert self.tokens is not None, "start() first"
        started = Caller(name, host, self.tokens.department(name))
        self._started_callers.append(started)
        return started

    def close(self) -> None:
        for caller in self._started_callers:
            caller.close()
        with ThreadPoolExecutor(max(1, len(self.processes))) as pool:
            list(pool.map(lambda placed: placed[1].stop(), self.processes))

    def __enter__(self) -> ClusterMesh:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Load:
    """Threads each making one kind of call back to back, counting successes and keeping
    every failure, until the `with` ends."""

    def __init__(self, calls: Mapping[str, Callable[[], object]]) -> None:
        self._calls = calls
        self.succeeded = dict.fromkeys(calls, 0)
        self.failures: list[tuple[str, grpc.RpcError]] = []
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(name,), name=f"load-{name}") for name in calls
        ]

    def _run(self, name: str) -> None:
        call = self._calls[name]
        while not self._stopping.is_set():
            try:
                call()
            except grpc.RpcError as error:
                self.failures.append((name, error))
            else:
                self.succeeded[name] += 1

    def wait_for_calls(self, more: int, timeout: float = 30.0) -> None:
        """Until every kind of call has succeeded `more` more times."""
        targets = {name: count + more for name, count in self.succeeded.items()}
        wait_for(
            lambda: all(self.succeeded[name] >= n for name, n in targets.items()),
            timeout,
            f"{more} more calls of each kind",
        )

    def failed(self) -> list[str]:
        """Each failure as `kind: CODE details`, for an assertion message."""
        return [f"{name}: {error.code().name} {error.details()}" for name, error in self.failures]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(30)
