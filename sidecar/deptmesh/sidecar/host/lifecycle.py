"""A department's life in one process: started and registered, then drained and gone.

`start_department` builds the department on a sidecar server wired to the mesh
(identity, authorization, metering with the access log, quotas, tracing),
starts serving, opens the Prometheus endpoint, registers the instance with a
gRPC health check on the health-only port, reports its usage to Consul, and
ships its usage per minute to the usage ledger (`--usage-ledger`, with a
registry to find it in; a spool keeps it meanwhile: metering/shipper.py).
If any step fails, the steps already done are undone in reverse order and the
error is raised: the instance is never left half registered. A port that cannot
be bound (`--port`, `--metrics-port`) is a StartupError naming the flag.

`HostedDepartment.drain()` is the way out: marked draining in the registry (so
callers stop choosing it), `drain_seconds` for their watches to notice,
NOT_SERVING and no new calls, in-flight calls finish within `grace_seconds`,
the last usage shipment and usage report, deregistration, the department's own
closer, its outbound channels. The mesh (watches, buffered spans) is its owner's to close.

The process entry point (main.py) and the in-process tests take this same path.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.model import ServiceInstance
from deptmesh.sidecar.host.department import Department, HostContext
from deptmesh.sidecar.host.mesh import Mesh
from deptmesh.sidecar.host.options import HostOptions, default_usage_spool
from deptmesh.sidecar.host.outbound import OutboundChannels
from deptmesh.sidecar.host.registration import Registration, instance_of
from deptmesh.sidecar.host.startup import StartupError, check_bindable, unbindable
from deptmesh.sidecar.metering import (
    MeteringStage,
    MetricsEndpoint,
    UsageByMinute,
    UsageReporter,
    UsageShipper,
    UsageSpool,
    run_id,
)
from deptmesh.sidecar.monitoring import InstanceCollector, usage_spool_fill
from deptmesh.sidecar.quotas import QuotaStage
from deptmesh.sidecar.quotas.stage import method_cost
from deptmesh.sidecar.server import Server

__all__ = ["HostedDepartment", "start_department"]

_log = structlog.get_logger("deptmesh.service")


class HostedDepartment:
    """A department serving in this process; `drain()` stops it for good."""

    def __init__(
        self,
        server: Server,
        instance: ServiceInstance,
        options: HostOptions,
        registration: Registration | None,
        stop_the_rest: Callable[[], None],
    ) -> None:
        self.server = server
        # How it is registered: its address, health port and metrics port.
        self.instance = instance
        self._options = options
        self._registration = registration
        self._stop_the_rest = stop_the_rest
        self._draining = threading.Lock()
        self._drained = False

    @property
    def address(self) -> str:
        """HOST:PORT where it serves."""
        return self.instance.endpoint

    def drain(self) -> None:
        """Leaves the registry, lets in-flight calls finish, and closes everything it opened.

        Draining again does nothing.
        """
        with self._draining:
            if self._drained:
                return
            self._drained = True
        if self._registration is not None:
            self._registration.drain()
            # Callers' watches see the change within a round trip; calls they
            # already started keep landing here until then.
            time.sleep(self._options.drain_seconds)
        self.server.stop(self._options.grace_seconds)
        self._stop_the_rest()
        _log.info("stopped", service=self.instance.service)


def _server_for(name: str, mesh: Mesh, by_minute: UsageByMinute | None) -> Server:
    """The sidecar server a department runs on: every call metered, logged and traced."""
    return Server(
        identity_source=mesh.identity,
        authorization=None if mesh.policy is None else (name, mesh.policy),
        metering=MeteringStage(name, access_log=mesh.access_log, by_minute=by_minute),
        quotas=None
        if mesh.quota_policy is None
        else QuotaStage(name, mesh.quota_policy, mesh.replicas),
        tracing=mesh.tracing,
    )


def _open_spool(path: Path) -> UsageSpool:
    try:
        return UsageSpool(path)
    except (OSError, sqlite3.Error) as error:
        raise ValueError(f"--usage-spool {path}: {error}") from error


def _stop_now(server: Server) -> None:
    """Stops a server that failed to start up; after drain() it has stopped already."""
    if not server.wait_stopped(0):
        server.stop(0)


def start_department(department: Department, options: HostOptions, mesh: Mesh) -> HostedDepartment:
    """Builds, starts and registers `department`; raises (having undone it all) if it cannot.

    Registration failing raises ControlPlaneUnavailable (ControlPlaneRefused when
    Consul refuses the token); a port that cannot be bound raises StartupError;
    `department.build` may raise StartupError for a resource it cannot use and
    ValueError for a setting it cannot run with, and so does a usage spool that
    cannot be opened.
    """
    name = department.name
    # Before the department opens anything: a port in use is the commonest mistake.
    check_bindable("--port", options.host, options.port)
    # Usage per minute is counted only for a ledger that can be found.
    ledger = options.usage_ledger if mesh.registry is not None else None
    by_minute = None if ledger is None else UsageByMinute(name, cost_of=method_cost)
    server = _server_for(name, mesh, by_minute)
    # Undone in reverse order, on failure here or by drain() after the server stopped.
    with contextlib.ExitStack() as undo:
        outbound = OutboundChannels(name, mesh)
        undo.callback(outbound.close)
        context = HostContext(
            name=name,
            db=options.db,
            seed_demo_data=options.seed_demo_data,
            server=server,
            flags=options.flags,
            connect=outbound.connect,
            registry=mesh.registry,
        )
        undo.callback(department.build(context))
        try:
            port = server.start(f"{options.host}:{options.port}")
        except RuntimeError as error:  # taken since the check: gRPC says only "Failed to bind"
            raise StartupError(
                f"--port {options.port} on {options.host} could not be bound ({error});"
                " choose another port or --port 0"
            ) from error
        undo.callback(_stop_now, server)
        spool = None
        if ledger is not None and server.metering is not None:
            spool = _open_spool(options.usage_spool or default_usage_spool(name, options.db))
            undo.callback(spool.close)
        metrics_port = 0
        if options.metrics_port is not None and server.metering is not None:
            try:
                metrics = MetricsEndpoint(
                    [server.metering], host=options.host, port=options.metrics_port
                )
            except OSError as error:
                raise unbindable(
                    "--metrics-port", options.host, options.metrics_port, error
                ) from error
            undo.callback(metrics.close)
            metrics.registry.register(
                InstanceCollector(
                    mesh.identity,
                    outbound.staleness,
                    mesh.tracing.store_fill if mesh.tracing is not None else lambda: None,
                    usage_spool_fill(spool),
                )
            )
            metrics_port = metrics.port
        instance = instance_of(
            name,
            options.host,
            port,
            server.health_port,
            metrics_port,
            contract_version=department.contract_version,
        )
        registration = None
        if mesh.registry is not None:
            registration = Registration(mesh.registry, instance)
            undo.callback(registration.withdraw)
        # Usage goes to Consul KV (for `deptmesh quota` and chargeback); other
        # registries have nowhere to keep it.
        if isinstance(mesh.registry, ConsulRegistry) and server.metering is not None:
            reporter = UsageReporter(mesh.registry, server.metering, instance.instance_id)
            undo.callback(reporter.stop)  # after the last call: it is in the final report
        if ledger is not None and server.metering is not None and spool is not None:
            shipper = UsageShipper(
                server.metering,
                outbound.connect(ledger),
                spool,
                run_id=run_id(instance.instance_id),
                flush_seconds=options.usage_flush_seconds,
            )
            undo.callback(shipper.stop)  # after the last call, before the channel closes
        hosted = HostedDepartment(server, instance, options, registration, undo.pop_all().close)
    _log.info(
        "serving",
        service=name,
        address=instance.endpoint,
        db=str(options.db),
        metrics=f"http://{options.host}:{metrics_port}/metrics" if metrics_port else None,
    )
    return hosted
