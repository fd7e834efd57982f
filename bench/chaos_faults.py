"""The faults bench/chaos.py injects into a running mesh, and how soon calls succeed again.

Each fault is a function of the `Faults` object, run by one thread one after
another while the payouts go on: a finance replica SIGKILLed and started again,
a replica drained (SIGTERM) and started again, the Consul leader frozen
(SIGSTOP) for a while, the Connect CA rotated to a new key, and PostgreSQL
restarted (a fast shutdown that ends every session). `Recovery` measures, for
every fault, the time from the fault to the end of the first call that started
after it and succeeded.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from deptmesh.registry.cluster import ClusterMember
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.sidecar.host import DepartmentProcess
from tests.integration.consul.cluster_mesh import ClusterMesh
from tests.postgres import PostgresServer

__all__ = ["FAULTS", "Faults", "Recovery"]

FINANCE = "finance"


class Recovery:
    """Fault -> the first successful call that started after it, per fault."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[str, float]] = []
        self.seconds: dict[str, list[float]] = defaultdict(list)

    def fault(self, name: str) -> None:
        with self._lock:
            self._pending.append((name, time.monotonic()))

    def succeeded(self, started: float, ended: float) -> None:
        with self._lock:
            if not self._pending or started < self._pending[0][1]:
                return
            still = []
            for name, at in self._pending:
                if at <= started:
                    self.seconds[name].append(ended - at)
                else:
                    still.append((name, at))
            self._pending = still

    def unrecovered(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self._pending]


class Faults:
    """Injects faults into `mesh` (and `postgres`), telling `recovery` when each begins."""

    def __init__(
        self,
        mesh: ClusterMesh,
        postgres: PostgresServer,
        recovery: Recovery,
        *,
        pause_seconds: float,
        rotate_token: str,
    ) -> None:
        self._mesh = mesh
        self._postgres = postgres
        self._recovery = recovery
        self._pause_seconds = pause_seconds
        self._rotate_token = rotate_token
        self._hosts = itertools.cycle(mesh.cluster.hosts)

    def _finance_replica_on_next_host(self) -> tuple[ClusterMember, DepartmentProcess]:
        host = next(self._hosts)
        [replica] = [p for p in self._mesh.on(host) if p.module.endswith(f".{FINANCE}")]
        return host, replica

    def kill_replica(self) -> None:
        host, replica = self._finance_replica_on_next_host()
        self._recovery.fault("kill_replica")
        replica.kill()
        self._mesh.stop_department(replica)
        self._mesh.start_department(host, FINANCE)

    def drain_replica(self) -> None:
        host, replica = self._finance_replica_on_next_host()
        self._recovery.fault("drain_replica")
        self._mesh.stop_department(replica)
        self._mesh.start_department(host, FINANCE)

    def pause_consul_leader(self) -> None:
        cluster = self._mesh.cluster
        leader = cluster.wait_for_leader()
        self._recovery.fault("pause_consul_leader")
        leader.pause()
        try:
            time.sleep(self._pause_seconds)  # the fault's length, not a wait for anything
        finally:
            leader.resume()
        cluster.wait_until_whole()

    def rotate_connect_ca(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        platform = ConsulRegistry(self._mesh.cluster.hosts[0].address, token=self._rotate_token)
        self._recovery.fault("rotate_connect_ca")
        platform.rotate_connect_ca(pem)

    def restart_postgresql(self) -> None:
        self._recovery.fault("restart_postgresql")
        self._postgres.restart()


FAULTS: tuple[Callable[[Faults], None], ...] = (
    Faults.kill_replica,
    Faults.drain_replica,
    Faults.pause_consul_leader,
    Faults.rotate_connect_ca,
    Faults.restart_postgresql,
)
