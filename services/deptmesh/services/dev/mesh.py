"""`dev up`, `dev down` and `dev status`: a local mesh that lives between commands.

`up` starts Consul's agent (ACLs on, default deny), makes a token per identity
(each department, `self-service`, the platform, monitoring), applies the
company's policy with the platform's token, starts every department and waits
until Consul's own health checks pass for all of them; then Prometheus and
Alertmanager (dev/monitoring.py), until Prometheus scrapes every department; then
the developer portal (dev/portal.py); it records the mesh (`mesh.json`, read by
the commands that use a local mesh). Run again, it changes nothing when
everything runs; it starts again the departments (and the portal) that died,
with the tokens it made; and when the agent itself died (its state was in
memory, so every token died with it), it stops what is left and starts anew.

`down` stops the processes `up` recorded, and only while /proc shows they are
still those processes, then forgets the mesh (the tokens and the agent's
config, secrets of an agent that is gone); logs and databases stay unless
`purge`. `up` and `down` hold a lock on the directory, so two cannot interleave.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from deptmesh.registry.agent import consul_binary
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.local_mesh import write_local_mesh
from deptmesh.registry.protocol import RegistryError
from deptmesh.services.company_policy import apply_company_policy
from deptmesh.services.dev.consul_agent import configure_consul, wait_until_ready
from deptmesh.services.dev.departments import (
    DEPARTMENTS,
    IDENTITIES,
    department_argv,
    wait_until_passing,
    wait_until_serving,
)
from deptmesh.services.dev.detached import DetachedProcess, spawn, stop_all
from deptmesh.services.dev.layout import MeshLayout
from deptmesh.services.dev.monitoring import start_monitoring
from deptmesh.services.dev.portal import PORTAL, start_portal
from deptmesh.services.dev.record import MeshRecord, read_record, remove_record, write_record
from deptmesh.sidecar.tracing.store import default_store_path

__all__ = ["MeshStatus", "ProcessStatus", "down", "status", "up"]

Say = Callable[[str], None]


@contextlib.contextmanager
def _locked(layout: MeshLayout) -> Iterator[None]:
    """Holds the directory's lock: one `up` or `down` at a time."""
    layout.directory.mkdir(parents=True, exist_ok=True)
    with layout.lock.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def up(layout: MeshLayout, say: Say, timeout: float) -> MeshRecord:
    """Brings the local mesh up (see the module's docstring); its record."""
    with _locked(layout):
        record = read_record(layout.record)
        if record is not None and record.consul is not None and record.consul.running:
            dead = [
                name
                for name in DEPARTMENTS
                if name not in record.departments or not record.departments[name].running
            ]
            portal = record.departments.get(PORTAL)
            portal_dead = portal is None or not portal.running
            if not dead and not portal_dead:
                say(f"the local mesh is already up in {layout.directory}")
                return record
            restarted = [*dead, PORTAL] if portal_dead else dead
            say(f"starting again what is not running: {', '.join(restarted)}")
            if dead:
                record = _start_departments(layout, record, dead, say, timeout)
            if portal_dead:
                record = start_portal(layout, record, say, timeout)
        else:
            if record is not None:
                say("the previous local mesh's Consul agent is gone (and its tokens with it)")
                _stop(record, say, timeout)
                remove_record(layout.record)
            record = _start_anew(layout, say, timeout)
        write_local_mesh(layout.directory, record.consul_address)
        return record


def _start_anew(layout: MeshLayout, say: Say, timeout: float) -> MeshRecord:
    """Consul, the tokens, the policy, the departments; on any failure, stops what it
    started and forgets it before the error goes on."""
    layout.mesh_description.unlink(missing_ok=True)
    consul = configure_consul(layout, consul_binary())
    agent = spawn("consul", consul.argv, layout.consul_log, cwd=layout.directory)
    record = MeshRecord(consul.address, default_store_path(), consul=agent)
    write_record(layout.record, record)
    try:
        admin = wait_until_ready(consul, agent, timeout)
        say(f"started Consul's agent on {consul.address} (ACLs on, default deny)")
        tokens = admin.mesh_tokens(IDENTITIES)
        if layout.tokens.exists():
            shutil.rmtree(layout.tokens)
        layout.tokens.mkdir(mode=0o700, parents=True)
        for name, token in tokens.departments.items():
            token.write_file(layout.token(name))
        tokens.platform.write_file(layout.token("platform"))
        tokens.monitoring.write_file(layout.token("monitoring"))
        say(f"made a Consul token per identity in {layout.tokens}/")
        apply_company_policy(ConsulRegistry(consul.address, token_file=layout.token("platform")))
        say("applied the company's policy (intentions, method rules, quota tiers)")
        record = _start_departments(layout, record, DEPARTMENTS, say, timeout)
        record = start_monitoring(layout, record, say, timeout)
        return start_portal(layout, record, say, timeout)
    except BaseException:
        say("could not bring the local mesh up: stopping what was started")
        _stop(read_record(layout.record) or record, say, timeout)
        remove_record(layout.record)
        raise


def _start_departments(
    layout: MeshLayout, record: MeshRecord, names: Sequence[str], say: Say, timeout: float
) -> MeshRecord:
    """Starts `names` (each recorded as soon as it is started), waits until they serve and
    pass Consul's health check; the record with their addresses."""
    offsets: dict[str, int] = {}
    started: dict[str, DetachedProcess] = {}
    for name in names:
        log = layout.log(name)
        offsets[name] = log.stat().st_size if log.exists() else 0
        argv = department_argv(name, layout, record.consul_address, record.trace_store)
        started[name] = spawn(name, argv, log, cwd=layout.directory)
        record = record.with_department(started[name])
        write_record(layout.record, record)
    for name, address in wait_until_serving(started, offsets, timeout).items():
        say(f"started {name:<14} on {address} (mTLS), pid {started[name].pid}")
        record = record.with_address(name, address)
    write_record(layout.record, record)
    monitoring = ConsulRegistry(record.consul_address, token_file=layout.token("monitoring"))
    wait_until_passing(monitoring, started, timeout)
    say("Consul's gRPC health checks pass for every department")
    return record


def _stop(record: MeshRecord, say: Say, timeout: float) -> None:
    """Stops the recorded processes still running, the departments first (they leave Consul
    as they drain), then the agent; says what became of each."""
    for wave in (list(record.departments.values()), [record.consul] if record.consul else []):
        signalled = {id(process) for process in stop_all(wave, timeout)}
        for process in wave:
            if id(process) in signalled:
                say(f"stopped {process.name} (pid {process.pid})")
            else:
                say(f"{process.name} (pid {process.pid}) was no longer running")


def down(layout: MeshLayout, say: Say, timeout: float, *, purge: bool = False) -> None:
    """Stops what `up` started and forgets the mesh (see the module's docstring); with
    `purge` also removes its logs and databases."""
    if not layout.directory.exists():
        say(f"no local mesh is up in {layout.directory}")
        return
    with _locked(layout):
        record = read_record(layout.record)
        if record is None:
            say(f"no local mesh is up in {layout.directory}")
        else:
            _stop(record, say, timeout)
        # Secrets of an agent that is gone; the logs stay.
        layout.mesh_description.unlink(missing_ok=True)
        layout.monitoring_description.unlink(missing_ok=True)
        shutil.rmtree(layout.tokens, ignore_errors=True)
        layout.consul_config.unlink(missing_ok=True)
        layout.management_token.unlink(missing_ok=True)
        shutil.rmtree(layout.consul / "data", ignore_errors=True)
        remove_record(layout.record)
        if record is not None:
            say(f"the local mesh is down; its logs stay in {layout.directory}")
        if purge:
            for path in layout.owned_paths(DEPARTMENTS):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # left as it is if it holds anything else
                layout.directory.rmdir()
            say(f"removed its logs and databases from {layout.directory}")


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    name: str
    pid: int
    running: bool
    address: str
    log: Path


@dataclass(frozen=True, slots=True)
class MeshStatus:
    """What `status` found: the recorded processes, and Consul's passing instances."""

    directory: Path
    record: MeshRecord | None
    processes: tuple[ProcessStatus, ...] = ()
    # Consul's passing instances (HOST:PORT) per department; None if it could not be asked.
    passing: dict[str, list[str]] | None = None
    consul_error: str = ""

    @property
    def state(self) -> str:
        """ "up" (everything runs and passes), "down" (nothing runs) or "degraded"."""
        if self.record is None or not any(process.running for process in self.processes):
            return "down"
        complete = {process.name for process in self.processes} >= {"consul", *DEPARTMENTS}
        healthy = self.passing is not None and all(self.passing.get(n) for n in DEPARTMENTS)
        if complete and healthy and all(process.running for process in self.processes):
            return "up"
        return "degraded"


def status(layout: MeshLayout) -> MeshStatus:
    record = read_record(layout.record)
    if record is None:
        return MeshStatus(layout.directory, None)
    processes = tuple(
        ProcessStatus(
            process.name,
            process.pid,
            process.running,
            record.consul_address
            if process.name == "consul"
            else record.addresses.get(process.name, ""),
            process.log,
        )
        for process in ([record.consul] if record.consul else [])
        + list(record.departments.values())
    )
    if record.consul is None or not record.consul.running:
        return MeshStatus(layout.directory, record, processes, None, "the agent is not running")
    monitoring = ConsulRegistry(record.consul_address, token_file=layout.token("monitoring"))
    try:
        passing = {
            name: [instance.endpoint for instance in monitoring.resolve(name)]
            for name in DEPARTMENTS
        }
    except (RegistryError, ValueError) as error:
        return MeshStatus(layout.directory, record, processes, None, str(error))
    return MeshStatus(layout.directory, record, processes, passing)
