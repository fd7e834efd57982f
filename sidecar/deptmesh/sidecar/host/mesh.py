"""What a department's process is plugged into: registry, certificate, policies, tracing.

`wire_mesh` decides it once from the options: with a Consul address everything
comes from Consul (the Connect leaf, intentions and method rules, the quota
policy and the replica count, each watched); without one the service runs
unregistered and plaintext, with the policy files it was given, if any. A
test builds a `Mesh` by hand instead (a StaticRegistry, dev-CA identities).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import structlog

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.protocol import Registry
from deptmesh.sidecar.authorization import ConsulAccessPolicy, FileAccessPolicy, PolicySource
from deptmesh.sidecar.host.options import HostOptions
from deptmesh.sidecar.identity import ConsulConnectIdentity, IdentitySource, own_spiffe_id
from deptmesh.sidecar.metering import AccessLog
from deptmesh.sidecar.quotas import (
    ConsulReplicaCount,
    QuotaPolicySource,
    consul_quota_policy,
    file_quota_policy,
)
from deptmesh.sidecar.tracing import Tracing

__all__ = ["Mesh", "wire_mesh"]

_log = structlog.get_logger("deptmesh.service")


def _alone() -> int:
    return 1


def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Mesh:
    """Where a department registers, who it is, who may call it, and where its spans go.

    Every field may be left out: an unregistered, plaintext department that turns
    nobody away, for development and tests only.
    """

    # Where the department registers and finds the others; None runs it alone.
    registry: Registry | None = None
    # Its certificate for mTLS, serving and calling; None is plaintext.
    identity: IdentitySource | None = None
    # Who may call it and which methods; None turns nobody away.
    policy: PolicySource | None = None
    # Each caller's quota by tier; None limits nobody. Rates are service-wide,
    # shared by `replicas()` instances.
    quota_policy: QuotaPolicySource | None = None
    replicas: Callable[[], int] = _alone
    # Where its spans go; its server and its outbound channels use it.
    tracing: Tracing | None = None
    # Where its one-line-per-call access log goes; None writes none.
    access_log: AccessLog | None = None
    # Stops the watches and flushes the spans; the host calls it last.
    close: Callable[[], None] = _nothing


def wire_mesh(name: str, options: HostOptions, log_file: TextIO) -> Mesh:
    """The mesh `options` describe for department `name`, access log into `log_file`.

    Raises ControlPlaneUnavailable when Consul cannot be asked,
    ControlPlaneRefused when it refuses the token, and ValueError naming the
    flag or file when a policy or token file cannot be used; whatever was
    started by then is stopped first.
    """
    with contextlib.ExitStack() as started:
        mesh = (
            _from_consul(
                name,
                ConsulRegistry(options.consul_address, token_file=options.consul_token_file),
                started,
            )
            if options.consul_address is not None
            else _from_files(options)
        )
        tracing = Tracing.start(
            name,
            exporter=options.trace_exporter,
            store_path=options.trace_store,
            otlp_endpoint=options.otlp_endpoint,
            sampling_ratio=options.trace_sample_ratio,
            spiffe_id=own_spiffe_id(mesh.identity),
        )
        started.callback(tracing.shutdown)
        stop = started.pop_all()
    return dataclasses.replace(
        mesh,
        tracing=tracing,
        access_log=AccessLog(log_file, options.log_format),
        close=stop.close,
    )


def _from_consul(name: str, registry: ConsulRegistry, started: contextlib.ExitStack) -> Mesh:
    # Each source asks Consul once before it returns (ControlPlaneUnavailable if
    # it cannot, ControlPlaneRefused if the token may not), then follows its key
    # with a watch of its own. The leaf comes first: a token that is not this
    # department's is refused there, before anything else is asked.
    identity = ConsulConnectIdentity(registry, name)
    started.callback(identity.stop)
    policy = ConsulAccessPolicy(registry)
    started.callback(policy.stop)
    quota_policy = consul_quota_policy(registry)
    started.callback(quota_policy.stop)
    replicas = ConsulReplicaCount(registry, name)
    started.callback(replicas.stop)
    return Mesh(
        registry=registry,
        identity=identity,
        policy=policy,
        quota_policy=quota_policy,
        replicas=replicas,
    )


def _from_files(options: HostOptions) -> Mesh:
    policy: PolicySource | None = None
    quota_policy: QuotaPolicySource | None = None
    if options.policy_file is not None:
        try:
            policy = FileAccessPolicy(options.policy_file)
        except (OSError, ValueError) as error:
            raise ValueError(f"--policy-file: {error}") from error
        # No certificate without Consul: the policy decides for `anonymous`.
        _log.warning("access_policy_for_anonymous_callers", path=str(options.policy_file))
    if options.quota_policy_file is not None:
        try:
            quota_policy = file_quota_policy(options.quota_policy_file)
        except (OSError, ValueError) as error:
            raise ValueError(f"--quota-policy-file: {error}") from error
    return Mesh(policy=policy, quota_policy=quota_policy)
