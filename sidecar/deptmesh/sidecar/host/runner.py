"""Runs one department service as a process.

`python -m services.<dept> --port 0 --db PATH [--consul-address HOST:PORT]`
binds, registers itself in Consul (with a gRPC health check Consul runs), prints
the bound address on one line (`<name> serving on HOST:PORT`), and serves until
SIGTERM or SIGINT. Then it drains: marked critical in the registry so callers
stop choosing it, a pause for their watches to notice, NOT_SERVING, no new
calls, in-flight calls finish within the grace period, deregistered, exit 0.

Without Consul, `--policy-file PATH` enforces an access policy file
(sidecar.policy_sources.FileAccessPolicy). Such a service has no certificate, so
it is plaintext and every caller is `anonymous`: the policy denies every call
unless it allows `anonymous` (or `*`) to call the service.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.model import ServiceInstance
from deptmesh.registry.protocol import Registry, RegistryUnavailable
from deptmesh.sidecar.authorization import PolicySource
from deptmesh.sidecar.authorization.sources import ConsulAccessPolicy, FileAccessPolicy
from deptmesh.sidecar.errors import ControlPlaneUnavailable
from deptmesh.sidecar.identity import IdentitySource
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity, own_spiffe_id
from deptmesh.sidecar.logs import configure_logging
from deptmesh.sidecar.metering.access_log import AccessLog
from deptmesh.sidecar.metering.metrics import MetricsEndpoint
from deptmesh.sidecar.metering.report import UsageReporter
from deptmesh.sidecar.metering.stage import MeteringStage
from deptmesh.sidecar.quotas.sources import (
    ConsulReplicaCount,
    consul_quota_policy,
    file_quota_policy,
)
from deptmesh.sidecar.quotas.stage import QuotaPolicySource, QuotaStage
from deptmesh.sidecar.server import Server
from deptmesh.sidecar.tracing import Tracing

CONTRACT_VERSION = "v1"


def _alone() -> int:
    return 1


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """What every service is started with; services add their own flags."""

    host: str
    port: int
    db: Path
    seed_demo_data: bool
    grace_seconds: float
    # Where this service registers and finds the others; None runs it alone.
    registry: Registry | None
    # This service's certificate for mTLS, serving and calling; None is plaintext
    # (development without Consul only).
    identity: IdentitySource | None
    # Who may call this service and which methods: Consul's, or a policy file
    # without Consul; None turns nobody away (development without Consul only).
    policy: PolicySource | None
    # How long a draining instance keeps serving before it stops accepting calls.
    drain_seconds: float
    extra: argparse.Namespace
    # Each caller's quota by tier: Consul's, or a quota file without Consul;
    # None limits nobody. Rates are service-wide, shared by `replicas()` instances.
    quota_policy: QuotaPolicySource | None = None
    replicas: Callable[[], int] = _alone
    # Where this process's spans go; every server and outbound channel uses it.
    tracing: Tracing | None = None
    # Where the one-line-per-call access log goes (the log file, or standard error).
    access_log: AccessLog | None = None
    # The port of the Prometheus text endpoint (/metrics); 0 picks a free one.
    metrics_port: int = 0


@dataclass(frozen=True, slots=True)
class RunningService:
    """A built service: its server and what to close once the server has stopped."""

    server: Server
    close: Callable[[], None]


Builder = Callable[[ServiceOptions], RunningService]
AddArguments = Callable[[argparse.ArgumentParser], None]


def parse_options(
    name: str, argv: Sequence[str] | None, add_arguments: AddArguments | None = None
) -> ServiceOptions:
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--db", type=Path, required=True, help="SQLite database file")
    parser.add_argument(
        "--seed-demo-data", action="store_true", help="load demo data into an empty database"
    )
    parser.add_argument(
        "--grace-seconds",
        type=float,
        default=10.0,
        help="how long in-flight calls may run after SIGTERM",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=1.5,
        help="how long to keep serving after leaving the registry, while callers move away",
    )
    parser.add_argument(
        "--consul-address",
        default=os.environ.get("CONSUL_HTTP_ADDR"),
        help="Consul agent HOST:PORT (default $CONSUL_HTTP_ADDR; none: run unregistered)",
    )
    parser.add_argument(
        "--policy-file",
        type=Path,
        help="without Consul: enforce this access policy file, re-read when it changes"
        " (callers are anonymous on a service without Consul)",
    )
    parser.add_argument(
        "--quota-policy-file",
        type=Path,
        help="without Consul: enforce this quota policy file (sidecar/quota.py documents it),"
        " re-read when it changes",
    )
    parser.add_argument("--log-format", choices=["json", "console"], default="json")
    parser.add_argument(
        "--log-file",
        type=Path,
        default=os.environ.get("DEPTMESH_LOG_FILE"),
        help="append log lines (one access-log event per call among them) to this file"
        " instead of standard error (default $DEPTMESH_LOG_FILE)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="port of the Prometheus endpoint (/metrics); 0 picks a free one, which is"
        " logged and registered in Consul as the instance's metrics_port",
    )
    parser.add_argument(
        "--trace-exporter",
        choices=["store", "otlp", "none"],
        default=os.environ.get("DEPTMESH_TRACE_EXPORTER", "store"),
        help="where spans go: the local trace store (default), an OTLP/gRPC collector, or nowhere",
    )
    parser.add_argument(
        "--trace-store",
        type=Path,
        default=os.environ.get("DEPTMESH_TRACE_STORE"),
        help="the local trace store file (default $DEPTMESH_TRACE_STORE, else under"
        " $XDG_STATE_HOME/deptmesh)",
    )
    parser.add_argument(
        "--otlp-endpoint",
        default=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").removeprefix("http://"),
        help="HOST:PORT of the OTLP/gRPC collector (default $OTEL_EXPORTER_OTLP_ENDPOINT)",
    )
    parser.add_argument(
        "--trace-sample-ratio",
        type=float,
        default=float(os.environ.get("DEPTMESH_TRACE_SAMPLE_RATIO", "1.0")),
        help="share of new traces recorded, 0..1 (a caller's decision is followed)",
    )
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    for flag, port in (("--port", args.port), ("--metrics-port", args.metrics_port)):
        if not 0 <= port <= 65535:
            parser.error(f"{flag} must be 0 to 65535, got {port}")
    for flag, value in (
        ("--policy-file", args.policy_file),
        ("--quota-policy-file", args.quota_policy_file),
    ):
        if value is not None and args.consul_address:
            parser.error(
                f"{flag} is for running without Consul; with --consul-address"
                " (or $CONSUL_HTTP_ADDR) the policy comes from Consul"
            )
    if not 0.0 <= args.trace_sample_ratio <= 1.0:
        parser.error(f"--trace-sample-ratio must be within 0..1, got {args.trace_sample_ratio}")
    if args.trace_exporter == "otlp" and not args.otlp_endpoint:
        parser.error("--trace-exporter otlp needs --otlp-endpoint HOST:PORT")
    log_file = sys.stderr if args.log_file is None else args.log_file.open("a")
    configure_logging(args.log_format, file=log_file)
    log = structlog.get_logger("deptmesh.service").bind(service=name)
    registry = ConsulRegistry(args.consul_address) if args.consul_address else None
    quota_policy: QuotaPolicySource | None = None
    replicas: Callable[[], int] = _alone
    try:
        identity = None if registry is None else ConsulConnectIdentity(registry, name)
        policy: PolicySource | None = None if registry is None else ConsulAccessPolicy(registry)
        if registry is not None:
            quota_policy = consul_quota_policy(registry)
            replicas = ConsulReplicaCount(registry, name)
    except ControlPlaneUnavailable as error:
        log.error("consul_unreachable", error=str(error))
        raise SystemExit(1) from error
    if args.policy_file is not None:
        try:
            policy = FileAccessPolicy(args.policy_file)
        except (OSError, ValueError) as error:
            parser.error(f"--policy-file: {error}")
        # No certificate without Consul: the policy decides for `anonymous`.
        log.warning("access_policy_for_anonymous_callers", path=str(args.policy_file))
    if args.quota_policy_file is not None:
        try:
            quota_policy = file_quota_policy(args.quota_policy_file)
        except (OSError, ValueError) as error:
            parser.error(f"--quota-policy-file: {error}")
    tracing = Tracing.start(
        name,
        exporter=args.trace_exporter,
        store_path=args.trace_store,
        otlp_endpoint=args.otlp_endpoint,
        sampling_ratio=args.trace_sample_ratio,
        spiffe_id=own_spiffe_id(identity),
    )
    return ServiceOptions(
        host=args.host,
        port=args.port,
        db=args.db,
        seed_demo_data=args.seed_demo_data,
        grace_seconds=args.grace_seconds,
        registry=registry,
        identity=identity,
        policy=policy,
        drain_seconds=args.drain_seconds,
        extra=args,
        quota_policy=quota_policy,
        replicas=replicas,
        tracing=tracing,
        access_log=AccessLog(log_file),
        metrics_port=args.metrics_port,
    )


def server_for(name: str, options: ServiceOptions) -> Server:
    """The sidecar server a service runs on, with the identity and policies it was given.

    Every call is metered per caller (`server.metering`), logged and traced.
    """
    return Server(
        identity_source=options.identity,
        authorization=None if options.policy is None else (name, options.policy),
        metering=MeteringStage(name, access_log=options.access_log),
        quotas=None
        if options.quota_policy is None
        else QuotaStage(name, options.quota_policy, options.replicas),
        tracing=options.tracing,
    )


def instance_of(
    name: str, host: str, port: int, check_port: int = 0, metrics_port: int = 0
) -> ServiceInstance:
    """How an instance is registered; `metrics_port` (meta) is where Prometheus scrapes it."""
    metrics = {"metrics_port": str(metrics_port)} if metrics_port else {}
    return ServiceInstance(
        service=name,
        instance_id=f"{name}-{host}-{port}",
        address=host,
        port=port,
        check_port=check_port,
        tags=(f"contract-{CONTRACT_VERSION}",),
        meta={"department": name, "contract_version": CONTRACT_VERSION, **metrics},
    )


def run(name: str, options: ServiceOptions, build: Builder) -> int:
    log = structlog.get_logger("deptmesh.service").bind(service=name)
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    service = build(options)
    port = service.server.start(f"{options.host}:{options.port}")
    usages = [] if service.server.metering is None else [service.server.metering]
    metrics = MetricsEndpoint(usages, host=options.host, port=options.metrics_port)
    instance = instance_of(name, options.host, port, service.server.health_port, metrics.port)
    if options.registry is not None:
        try:
            options.registry.register(instance)
        except RegistryUnavailable as error:
            log.error("consul_unreachable", error=str(error))
            service.server.stop(0)
            metrics.close()
            service.close()
            return 1
    reporter = (
        UsageReporter(options.registry, service.server.metering, instance.instance_id)
        if isinstance(options.registry, ConsulRegistry) and service.server.metering is not None
        else None
    )
    sys.stdout.write(f"{name} serving on {instance.endpoint}\n")
    sys.stdout.flush()
    log.info(
        "serving",
        address=instance.endpoint,
        db=str(options.db),
        metrics=f"http://{options.host}:{metrics.port}/metrics",
    )

    stop_requested.wait()
    if options.registry is not None:
        options.registry.set_draining(instance.instance_id)
        # Callers' watches see the change within a round trip; calls they
        # already started keep landing here until then.
        time.sleep(options.drain_seconds)
    service.server.stop(options.grace_seconds)
    metrics.close()
    if reporter is not None:
        reporter.stop()  # after the last call: its usage is in the final report
    if options.registry is not None:
        options.registry.deregister(instance.instance_id)
    service.close()
    if options.tracing is not None:
        options.tracing.shutdown()  # exports the spans still buffered
    log.info("stopped")
    return 0
